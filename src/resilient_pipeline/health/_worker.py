"""One probe run in a daemon thread of its own, so a caller can stop waiting for it.

A blocking call (a socket that never answers, a database behind a dropped
firewall rule) cannot be interrupted from outside. Running it in a daemon
thread lets the registry give up after the check's timeout and report
``failing``; the thread is abandoned and ends whenever the call returns (a
daemon thread never keeps the process from exiting). The registry keeps at
most one such run per check: a later probe joins it instead of piling up
threads behind a server that hangs.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._values import timed_out

__all__ = ["Pending", "bounded"]


async def bounded(probe: Callable[[], Awaitable[Any]], timeout: float) -> object:
    """Await ``probe()`` for at most ``timeout`` seconds; the timed-out marker if it is late."""
    import anyio

    with anyio.move_on_after(timeout):
        return await probe()
    return timed_out()


class Pending:
    """A probe running (or run) in its daemon thread: its answer or error once done.

    ``started`` and ``finished`` are ``time.perf_counter()`` readings: the
    thread really blocks, so its deadline and latency are real time.
    """

    __slots__ = ("_done", "answer", "error", "finished", "started", "timeout")

    def __init__(self, name: str, probe: Callable[[], Any], timeout: float, *, run_async: bool):
        self.timeout = timeout
        self.answer: object = None
        self.error: BaseException | None = None
        self.finished: float | None = None
        self._done = threading.Event()
        self.started = time.perf_counter()
        target = self._run_async if run_async else self._run
        thread = threading.Thread(
            target=target, args=(probe,), name=f"resilient-pipeline health: {name}", daemon=True
        )
        thread.start()

    def _run(self, probe: Callable[[], Any]) -> None:
        try:
            answer = probe()
            if inspect.isawaitable(answer):
                # A sync callable handing back a coroutine: say so rather than leak it unawaited.
                close = getattr(answer, "close", None)
                if close is not None:
                    close()
            self.answer = answer
        except BaseException as exc:  # reported as the check's failure
            self.error = exc
        finally:
            self.finished = time.perf_counter()
            self._done.set()

    def _run_async(self, probe: Callable[[], Awaitable[Any]]) -> None:
        import anyio

        # An async probe called from sync code gets an event loop of its own in this thread.
        self._run(lambda: anyio.run(bounded, probe, self.timeout))

    @property
    def done(self) -> bool:
        """Whether the probe returned or raised."""
        return self._done.is_set()

    def remaining(self) -> float:
        """Seconds left before this run's timeout (never negative)."""
        return max(0.0, self.started + self.timeout - time.perf_counter())

    def wait(self, seconds: float) -> bool:
        """Block for at most ``seconds`` until the probe is done; whether it is."""
        return self._done.wait(max(0.0, seconds))

    def latency(self) -> float:
        """Seconds the probe took, or has been running so far."""
        end = self.finished if self.finished is not None else time.perf_counter()
        return end - self.started
