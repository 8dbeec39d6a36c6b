"""Sync/async twins of blocking work, written once and typed from one place.

Database work, notifiers and checks block: their logic is written once as a
sync function. Its async twin runs it in a worker thread (asyncio and trio,
through anyio); a sync entry point over an async engine runs it in an event
loop of its own. Either way the twin keeps the original's parameters for type
checkers (``ParamSpec``), so no signature is copied by hand.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

__all__ = ["run_in_event_loop", "run_in_worker_thread"]

P = ParamSpec("P")
T = TypeVar("T")


def _named(twin: Callable[..., object], name: str, doc: str) -> None:
    twin.__name__ = name
    twin.__qualname__ = name
    twin.__doc__ = doc


def run_in_worker_thread(fn: Callable[P, T], *, name: str, doc: str) -> Callable[P, Awaitable[T]]:
    """The async twin of blocking ``fn``: same parameters, run in a worker thread."""

    @functools.wraps(fn)
    async def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    _named(twin, name, doc)
    return twin


def run_in_event_loop(afn: Callable[P, Awaitable[T]], *, name: str, doc: str) -> Callable[P, T]:
    """The sync twin of async ``afn``: same parameters, run in an event loop of its own."""

    @functools.wraps(afn)
    def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        import anyio

        async def main() -> T:
            return await afn(*args, **kwargs)

        return anyio.run(main)

    _named(twin, name, doc)
    return twin
