"""``fallback()``: a default value or an alternative call when chosen errors happen."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import attrs

from resilient_pipeline._core import (
    EventHandler,
    callable_or_none,
    check_callable,
    describe_error,
    emit,
    exception_types,
    is_async,
    is_permanent,
    normalize_handlers,
    source_of,
)
from resilient_pipeline.exceptions import ConfigurationError

from ._trail import PolicyEvent

__all__ = ["Fallback", "FallbackUsed", "fallback"]

P = ParamSpec("P")
T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


@attrs.frozen(kw_only=True)
class FallbackUsed(PolicyEvent):
    """A call failed and the fallback answered instead.

    Attributes:
        error: The failure it replaced, secrets masked.
    """

    logger_name = "resilient_pipeline.limits"
    level = logging.WARNING
    template = "{source}: failed ({error}); fallback used"

    error: str


@attrs.frozen(kw_only=True)
class Fallback:
    """Answer with ``value``, or with ``call(*args, **kwargs)``, when the call fails with ``on``.

    A frozen, reusable value and a decorator (sync or async). A
    :class:`~resilient_pipeline.exceptions.PermanentError`, a database error
    the store did not classify as transient, and ``BaseException``-only types
    (cancellation, Ctrl-C) are never replaced: the same rule retry follows.
    Every use emits :class:`FallbackUsed`.

    Args:
        value: What to return instead.
        call: A function with the decorated function's parameters, called
            instead (async, or sync, for an async function; sync for a sync one).
        on: Exception types replaced (default: ``Exception``).
        when: A further predicate on the exception.
        name: The name in events.
        on_event: Handlers for this policy's events.

    Examples:
        >>> @Fallback(value=[], on=ConnectionError)
        ... def fetch_campaigns(day: str) -> list[str]:
        ...     raise ConnectionError("reset by peer")
        >>> fetch_campaigns("2026-11-28")
        []
    """

    value: Any = _MISSING
    call: Callable[..., Any] | None = attrs.field(default=None, validator=callable_or_none())
    on: type[Exception] | tuple[type[Exception], ...] = attrs.field(
        default=Exception, validator=exception_types()
    )
    when: Callable[[Exception], bool] | None = attrs.field(
        default=None, validator=callable_or_none()
    )
    name: str | None = None
    on_event: tuple[EventHandler, ...] = attrs.field(default=(), converter=normalize_handlers)

    def __attrs_post_init__(self) -> None:
        if (self.value is _MISSING) == (self.call is None):
            raise ConfigurationError.for_option(
                "value", self.value, "give exactly one of value= and call="
            )

    def _replaces(self, error: Exception) -> bool:
        return (
            isinstance(error, self.on)
            and not is_permanent(error)
            and (self.when is None or bool(self.when(error)))
        )

    def _used(self, source: str, error: Exception) -> None:
        emit(FallbackUsed(source=source, error=describe_error(error)), self.on_event)

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate ``fn`` (sync or async); the signature is kept."""
        check_callable(fn, "fallback")
        source = source_of(self.name, fn)
        alternative = self.call
        if is_async(fn):
            afn = cast("Callable[P, Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def aguarded(*args: P.args, **kwargs: P.kwargs) -> Any:
                try:
                    return await afn(*args, **kwargs)
                except Exception as exc:
                    if not self._replaces(exc):
                        raise
                    self._used(source, exc)
                if alternative is None:
                    return self.value
                answer = alternative(*args, **kwargs)
                return await answer if inspect.isawaitable(answer) else answer

            return cast("Callable[P, T]", aguarded)

        if alternative is not None and is_async(alternative):
            raise ConfigurationError.for_option(
                "call", alternative, f"is async but {source} is sync; it could not be awaited"
            )

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not self._replaces(exc):
                    raise
                self._used(source, exc)
            return cast("T", self.value if alternative is None else alternative(*args, **kwargs))

        return guarded


def fallback(
    value: Any = _MISSING,
    *,
    call: Callable[..., Any] | None = None,
    on: type[Exception] | tuple[type[Exception], ...] = Exception,
    when: Callable[[Exception], bool] | None = None,
    name: str | None = None,
    on_event: EventHandler | tuple[EventHandler, ...] = (),
) -> Fallback:
    """Return ``value`` (or ``call``'s answer) when the decorated function fails with ``on``.

    See :class:`Fallback` for the options.

    Examples:
        >>> def from_cache(day: str) -> int:
        ...     return 7
        >>> @fallback(call=from_cache, on=TimeoutError)
        ... def fetch_clicks(day: str) -> int:
        ...     raise TimeoutError("upstream slow")
        >>> fetch_clicks("2026-11-28")
        7
    """
    return Fallback(value=value, call=call, on=on, when=when, name=name, on_event=on_event)
