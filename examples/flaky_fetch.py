"""A flaky fetch, retried: the smallest end-to-end use of resilient-pipeline.

A local HTTP server (127.0.0.1, a random port) plays an ad platform's API:
the first request is throttled (429 with ``Retry-After: 1``), the second
fails with a 503, the third returns the day's campaigns. The fetch function
is decorated with ``retry_with_backoff``; every retry is an event that the
library logs through stdlib ``logging`` (printed here to stdout).

Run it:  python examples/flaky_fetch.py
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from resilient_pipeline import retry_with_backoff

FAILURES = [(429, {"Retry-After": "1"}), (503, {})]


class FlakyAdsAPI(BaseHTTPRequestHandler):
    """Fails with the statuses in ``server.failures`` first, then answers."""

    server: FlakyServer

    def do_GET(self) -> None:
        with self.server.lock:
            failure = self.server.failures.pop(0) if self.server.failures else None
            self.server.requests += 1
        if failure is not None:
            status, headers = failure
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            return
        body = json.dumps([{"campaign": "brand", "spend": 120.5}, {"campaign": "retarget"}])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        """Keep the demo's output to the library's own events."""


class FlakyServer(ThreadingHTTPServer):
    def __init__(self, failures: list[tuple[int, dict[str, str]]]) -> None:
        super().__init__(("127.0.0.1", 0), FlakyAdsAPI)
        self.failures = list(failures)
        self.requests = 0
        self.lock = threading.Lock()


@contextmanager
def flaky_server(failures: list[tuple[int, dict[str, str]]]) -> Iterator[FlakyServer]:
    """Serve the flaky API in a background thread for the duration of the block."""
    server = FlakyServer(failures)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def is_transient(error: Exception) -> bool:
    """Retry throttling, server errors and network errors; never a 4xx bug."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code in {408, 429, 500, 502, 503, 504}
    return isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError))


def make_fetch(base_url: str) -> Callable[[str], list[dict[str, object]]]:
    """A fetch function for ``base_url``, retried on transient errors within 10 s."""

    @retry_with_backoff(
        max_attempts=4, base_delay=0.2, deadline=10.0, retry_if=is_transient, name="fetch_campaigns"
    )
    def fetch_campaigns(day: str) -> list[dict[str, object]]:
        url = f"{base_url}/campaigns?date={day}"  # always http://127.0.0.1 here
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            rows: list[dict[str, object]] = json.load(response)
        return rows

    return fetch_campaigns


def main() -> int:
    """Run the demo; returns the process exit code."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(levelname)-7s %(name)s: %(message)s"
    )
    with flaky_server(FAILURES) as server:
        fetch = make_fetch(f"http://127.0.0.1:{server.server_port}")
        rows = fetch("2026-11-28")
    print(f"fetched {len(rows)} campaigns in {server.requests} requests: {rows}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
