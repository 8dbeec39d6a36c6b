"""``Flags``: evaluate flags from layered sources, fast, and pick old or new code paths."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

import anyio.to_thread

from resilient_pipeline._core import (
    DEFAULT_CLOCK,
    OBSERVED,
    Clock,
    EventHandler,
    describe_error,
    emit,
    is_async,
    normalize_handlers,
)
from resilient_pipeline.exceptions import ConfigurationError

from ._bucket import salted
from ._events import FlagEvaluated, FlagSourceFailed
from ._flag import Flag, FlagReason, check_name
from ._sources import FlagSource

__all__ = ["Flags"]

P = ParamSpec("P")
T = TypeVar("T")

_logger = logging.getLogger(FlagEvaluated.logger_name)
_CACHE_SIZE = 65_536  # bucket cache entries per flag; cleared when full


class _Compiled:
    """One flag, ready for the hot path: its sets, threshold and prebuilt events."""

    __slots__ = (
        "allow",
        "allowed",
        "bucket_of",
        "buckets",
        "denied",
        "deny",
        "flag",
        "keyless",
        "killed",
        "name",
        "off",
        "on",
        "partial",
        "switched_on",
        "threshold",
    )

    def __init__(self, flag: Flag, buckets: dict[str, int]) -> None:
        name = flag.name

        def event(enabled: bool, reason: FlagReason) -> FlagEvaluated:
            return FlagEvaluated(source=name, flag=name, enabled=enabled, reason=reason)

        self.flag, self.name, self.buckets = flag, name, buckets
        self.bucket_of = salted(name)
        self.switched_on = flag.enabled
        self.allow, self.deny = flag.allow, flag.deny
        self.threshold = flag.percentage * 100
        self.partial = 0 < flag.percentage < 100
        self.killed = event(False, "kill_switch")
        self.denied = event(False, "deny_list")
        self.allowed = event(True, "allow_list")
        self.on = event(True, "percentage")
        self.off = event(False, "percentage")
        if self.partial:
            self.keyless = event(False, "no_key")
        else:
            self.keyless = self.on if flag.percentage >= 100 else self.off


class Flags:
    """Feature flags from layered sources: percentage rollouts, kill switch, allow/deny lists.

    The first source that defines a flag decides it (``[EnvSource(),
    StoreSource(store), FileSource(path)]``: an environment variable overrides
    the shared store, which overrides the file). Each source is read again
    every ``reload_interval`` seconds, during the next evaluation after that;
    a read that fails keeps the source's last good flags and emits
    :class:`~resilient_pipeline.flags.FlagSourceFailed`. Building ``Flags``
    reads every source once and raises if one cannot be read.

    Every evaluation emits :class:`~resilient_pipeline.flags.FlagEvaluated`
    (count it in metrics; it is not logged unless ``DEBUG`` is on), and
    costs nothing extra when nobody listens.

    Args:
        sources: Where flags come from, first one winning.
        default: The answer for a flag no source defines.
        clock: When sources are due (default: the library's default clock).
        on_event: Handlers for this object's events, before the global ones.

    Examples:
        >>> from resilient_pipeline.flags import Flags, MemorySource
        >>> flags = Flags([MemorySource({"new_conversions_endpoint": "50%"})])
        >>> flags.enabled("new_conversions_endpoint", key="client-42")
        False
        >>> flags.enabled("new_conversions_endpoint", key="client-7")
        True
        >>> flags.enabled("no_such_flag", key="client-7")
        False
    """

    __slots__ = (
        "_buckets",
        "_clock",
        "_default",
        "_due",
        "_layers",
        "_lock",
        "_next",
        "_on_event",
        "_sources",
        "_table",
        "_unknown",
    )

    def __init__(
        self,
        sources: Iterable[FlagSource] = (),
        *,
        default: bool = False,
        clock: Clock | None = None,
        on_event: EventHandler | Iterable[EventHandler] | None = None,
    ) -> None:
        if isinstance(sources, FlagSource):
            sources = [sources]
        self._sources: tuple[FlagSource, ...] = tuple(sources)
        for source in self._sources:
            if not isinstance(source, FlagSource):
                raise ConfigurationError.for_option(
                    "sources", source, "must be flag sources (load(), where, reload_interval)"
                )
        if not isinstance(default, bool):
            raise ConfigurationError.for_option("default", default, "must be True or False")
        self._default = default
        self._clock: list[Clock] = DEFAULT_CLOCK if clock is None else [clock]
        self._on_event = normalize_handlers(on_event)
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[str, int]] = {}
        self._unknown: dict[str, FlagEvaluated] = {}
        self._table: dict[str, _Compiled] = {}
        self._layers: list[Mapping[str, Flag]] = [{} for _ in self._sources]
        self._due = [math.inf for _ in self._sources]
        self._next = math.inf
        self.reload()

    # -- the hot path -------------------------------------------------------------------

    def evaluate(self, name: str, *, key: object = None) -> FlagEvaluated:
        """The flag's answer for ``key`` with its reason, as the event it emits.

        Examples:
            >>> from resilient_pipeline.flags import Flags, MemorySource
            >>> flags = Flags([MemorySource({"beta": {"percentage": 0, "allow": ["qa"]}})])
            >>> flags.evaluate("beta", key="qa").reason
            'allow_list'
        """
        if self._clock[0].monotonic() >= self._next:
            self._refresh()
        compiled = self._table.get(name)
        if compiled is None:
            event = self._unknown.get(name) or self._unknown_event(name)
        elif not compiled.switched_on:
            event = compiled.killed
        elif key is None:
            event = compiled.keyless
        else:
            text = key if type(key) is str else str(key)
            if text in compiled.deny:
                event = compiled.denied
            elif text in compiled.allow:
                event = compiled.allowed
            elif not compiled.partial:
                event = compiled.keyless
            else:
                position = compiled.buckets.get(text)
                if position is None:
                    position = self._bucket(compiled, text)
                event = compiled.on if position < compiled.threshold else compiled.off
        # Skipped when nobody listens: the default log sink would drop a DEBUG event anyway.
        if self._on_event or OBSERVED or _logger.isEnabledFor(logging.DEBUG):
            emit(event, self._on_event)
        return event

    def enabled(self, name: str, *, key: object = None) -> bool:
        """Whether flag ``name`` is on for ``key`` (a client id, an account...; ``str()``-ed).

        Without a key, a partial rollout is off: only 0 %, 100 %, the kill
        switch and the default need no key.

        Examples:
            >>> from resilient_pipeline.flags import Flags, MemorySource
            >>> flags = Flags([MemorySource({"beta": "on", "legacy": "off"})])
            >>> flags.enabled("beta"), flags.enabled("legacy", key=7)
            (True, False)
        """
        return self.evaluate(name, key=key).enabled

    def _bucket(self, compiled: _Compiled, key: str) -> int:
        cache = compiled.buckets
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        position = cache[key] = compiled.bucket_of(key)
        return position

    def _unknown_event(self, name: str) -> FlagEvaluated:
        check_name(name)  # a typo such as "New-Flag" fails loudly instead of reading the default
        if len(self._unknown) >= 1024:
            self._unknown.clear()
        event = self._unknown[name] = FlagEvaluated(
            source=name, flag=name, enabled=self._default, reason="unknown"
        )
        return event

    # -- sources ---------------------------------------------------------------------

    def reload(self) -> None:
        """Read every source now; raises (keeping the flags in use) if one cannot be read.

        Examples:
            >>> from resilient_pipeline.flags import Flags, MemorySource
            >>> source = MemorySource({"beta": "off"})
            >>> flags = Flags([source])
            >>> source.set_flag("beta", percentage=100)
            >>> flags.reload()
            >>> flags.enabled("beta")
            True
        """
        with self._lock:
            layers = [source.load() for source in self._sources]
            now = self._clock[0].monotonic()
            self._install(layers, now, range(len(self._sources)))

    async def areload(self) -> None:
        """:meth:`reload` in a worker thread, so a slow store does not block the event loop."""
        await anyio.to_thread.run_sync(self.reload)

    def _refresh(self) -> None:
        # One thread reads the due sources; the others go on with the flags in use.
        if not self._lock.acquire(blocking=False):
            return
        try:
            now = self._clock[0].monotonic()
            due = [i for i, at in enumerate(self._due) if now >= at]
            layers = list(self._layers)
            for i in due:
                source = self._sources[i]
                try:
                    layers[i] = source.load()
                except Exception as exc:
                    emit(
                        FlagSourceFailed(source=source.where, error=describe_error(exc)),
                        self._on_event,
                    )
            self._install(layers, now, due)
        finally:
            self._lock.release()

    def _install(self, layers: list[Mapping[str, Flag]], now: float, read: Iterable[int]) -> None:
        for i in read:
            interval = self._sources[i].reload_interval
            self._due[i] = math.inf if interval is None else now + interval
        if layers != self._layers:
            merged: dict[str, Flag] = {}
            for layer in layers:
                for name, flag in layer.items():
                    merged.setdefault(name, flag)
            table = {}
            for name, flag in merged.items():
                previous = self._table.get(name)
                if previous is not None and previous.flag == flag:
                    table[name] = previous
                else:
                    table[name] = _Compiled(flag, self._buckets.setdefault(name, {}))
            self._layers = [dict(layer) for layer in layers]
            self._table = table
        self._next = min(self._due, default=math.inf)

    # -- introspection -----------------------------------------------------------------

    def get(self, name: str) -> Flag | None:
        """The definition in use for ``name`` (``None`` if no source defines it).

        Examples:
            >>> from resilient_pipeline.flags import Flags, MemorySource
            >>> Flags([MemorySource({"beta": "25%"})]).get("beta").percentage
            25.0
        """
        compiled = self._table.get(name)
        return None if compiled is None else compiled.flag

    def snapshot(self) -> dict[str, Flag]:
        """Every flag in use, by name."""
        return {name: compiled.flag for name, compiled in self._table.items()}

    def __repr__(self) -> str:
        return f"Flags({list(self._sources)!r}, default={self._default!r})"

    # -- choosing a code path ----------------------------------------------------------

    @overload
    def flagged(
        self,
        name: str,
        *,
        new: Callable[P, T],
        old: Callable[P, T],
        key: str | Callable[..., object] | None = None,
    ) -> Callable[P, T]: ...

    @overload
    def flagged(
        self,
        name: str,
        *,
        new: Callable[P, T],
        old: None = None,
        key: str | Callable[..., object] | None = None,
    ) -> Callable[[Callable[P, T]], Callable[P, T]]: ...

    def flagged(
        self,
        name: str,
        *,
        new: Callable[P, T],
        old: Callable[P, T] | None = None,
        key: str | Callable[..., object] | None = None,
    ) -> Callable[P, T] | Callable[[Callable[P, T]], Callable[P, T]]:
        """Call ``new`` where flag ``name`` is on for the call's key, ``old`` elsewhere.

        With ``old`` it returns the selecting function; without, it is a
        decorator for the old function. ``key`` is the name of the argument
        that holds the key, or a callable given the call's arguments. Sync
        and async functions both work (``old`` and ``new`` must be alike).

        Examples:
            >>> from resilient_pipeline.flags import Flags, MemorySource
            >>> flags = Flags([MemorySource({"new_conversions_endpoint": {
            ...     "percentage": 0, "allow": ["qa-client"]}})])
            >>> def fetch_v2(client_id: str) -> str:
            ...     return "v2"
            >>> @flags.flagged("new_conversions_endpoint", new=fetch_v2, key="client_id")
            ... def fetch(client_id: str) -> str:
            ...     return "v1"
            >>> fetch("qa-client"), fetch(client_id="other")
            ('v2', 'v1')
        """
        check_name(name)

        def decorate(old: Callable[P, T]) -> Callable[P, T]:
            return _select(self, name, old, new, key)

        return decorate if old is None else decorate(old)


def _key_getter(
    fn: Callable[..., Any], key: str | Callable[..., object] | None
) -> Callable[[tuple[Any, ...], dict[str, Any]], object]:
    if key is None:
        return lambda args, kwargs: None
    if callable(key):
        return lambda args, kwargs: key(*args, **kwargs)
    if not isinstance(key, str):
        raise ConfigurationError.for_option("key", key, "must be an argument name or a callable")
    parameter = inspect.signature(fn).parameters.get(key)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if parameter is None or parameter.kind not in kinds:
        raise ConfigurationError.for_option(
            "key", key, f"must name an argument of {getattr(fn, '__qualname__', fn)!r}"
        )
    default = None if parameter.default is inspect.Parameter.empty else parameter.default
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
        return lambda args, kwargs: kwargs.get(key, default)
    index = list(inspect.signature(fn).parameters).index(key)
    return lambda args, kwargs: args[index] if len(args) > index else kwargs.get(key, default)


def _select(
    flags: Flags,
    name: str,
    old: Callable[P, T],
    new: Callable[P, T],
    key: str | Callable[..., object] | None,
) -> Callable[P, T]:
    for option, fn in (("old", old), ("new", new)):
        if not callable(fn):
            raise ConfigurationError.for_option(option, fn, "must be callable")
    if is_async(old) != is_async(new):
        raise ConfigurationError.for_option(
            "new", new, "must be async exactly when old is (both sync or both async)"
        )
    get_key = _key_getter(old, key)
    enabled = flags.enabled

    if is_async(old):
        old_async = old
        new_async = new

        @functools.wraps(old)
        async def aselect(*args: P.args, **kwargs: P.kwargs) -> Any:
            chosen = new_async if enabled(name, key=get_key(args, kwargs)) else old_async
            return await chosen(*args, **kwargs)  # type: ignore[misc]

        return aselect  # type: ignore[return-value]

    @functools.wraps(old)
    def select(*args: P.args, **kwargs: P.kwargs) -> T:
        chosen = new if enabled(name, key=get_key(args, kwargs)) else old
        return chosen(*args, **kwargs)

    return select
