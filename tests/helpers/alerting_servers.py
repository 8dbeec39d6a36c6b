"""Real local servers on 127.0.0.1 for notifier tests: an HTTP endpoint and an SMTP sink."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.define
class FlakyEndpoint:
    """Answers ``failures`` (status, headers) first, then 200; records every JSON body."""

    failures: list[tuple[int, dict[str, str]]] = attrs.field(factory=list)
    bodies: list[Any] = attrs.field(factory=list)
    url: str = ""


@contextmanager
def flaky_http_server(endpoint: FlakyEndpoint) -> Iterator[FlakyEndpoint]:
    """Serve ``endpoint`` on a free port of 127.0.0.1 for the duration of the block."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            with lock:
                endpoint.bodies.append(body)
                status, headers = endpoint.failures.pop(0) if endpoint.failures else (200, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=s3cret"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@attrs.define
class SmtpSink:
    """What the SMTP sink received: one (sender, recipients, data) per message."""

    messages: list[tuple[str, list[str], str]] = attrs.field(factory=list)
    port: int = 0


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    """A minimal SMTP server (EHLO, MAIL, RCPT, DATA, QUIT) on a free port of 127.0.0.1."""
    sink = SmtpSink()

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 sink ready")
            sender, recipients = "", []
            while True:
                line = self.rfile.readline().decode().rstrip("\r\n")
                verb = line[:4].upper()
                if verb in ("EHLO", "HELO"):
                    self.reply("250 sink")
                elif verb == "MAIL":
                    sender = line.split(":", 1)[1].strip(" <>")
                    self.reply("250 ok")
                elif verb == "RCPT":
                    recipients.append(line.split(":", 1)[1].strip(" <>"))
                    self.reply("250 ok")
                elif verb == "DATA":
                    self.reply("354 go on")
                    lines = []
                    while (data := self.rfile.readline().decode()) not in (".\r\n", ""):
                        lines.append(data)
                    sink.messages.append((sender, recipients, "".join(lines)))
                    self.reply("250 queued")
                elif verb == "QUIT" or not line:
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 ok")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    sink.port = server.server_address[1]
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
