"""``resilient()`` / ``ResiliencePolicy``: every policy around one call, in one fixed order.

From the outside in::

    fallback ⟶ deadline ⟶ retry ⟶ breaker ⟶ rate limiter ⟶ bulkhead ⟶ timeout ⟶ call

Each policy is itself a decorator; composing is applying them in that order,
so a composed call costs the sum of its layers and nothing more. The reasons
for the order are in ``docs/policies.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, ParamSpec, TypeVar

import attrs

from resilient_pipeline._core import Clock, Policy, check_callable, is_async, number, source_of
from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.retry import RetryPolicy, decorate

from ._fallback import Fallback
from ._fused import fusable_bulkhead, fusable_limiter, outer, per_attempt
from ._onepass import one_pass
from ._timeout import Timeout
from ._trail import numbered

__all__ = ["ResiliencePolicy", "resilient"]

P = ParamSpec("P")
T = TypeVar("T")

_ORDER = ("fallback", "deadline", "retry", "breaker", "rate_limiter", "bulkhead", "timeout")


def _to_timeout(value: Timeout | float | None) -> Timeout | None:
    if value is None or isinstance(value, Timeout):
        return value
    try:
        return Timeout(value)
    except ConfigurationError:
        raise ConfigurationError.for_option("timeout", value, "must be a number > 0") from None


def _of_type(kind: type) -> Callable[[Any, attrs.Attribute[Any], object], None]:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, kind):
            raise ConfigurationError.for_option(
                attribute.name, value, f"must be a {kind.__name__} or None"
            )

    return check


_Named = TypeVar("_Named", Timeout, RetryPolicy, Fallback)


def _named(part: _Named, source: str, clock: Clock | None) -> _Named:
    changes: dict[str, Any] = {}
    if part.name is None:
        changes["name"] = source
    if clock is not None and getattr(part, "clock", clock) is None:
        changes["clock"] = clock
    return attrs.evolve(part, **changes) if changes else part


def _policy(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError.for_option(
            attribute.name, value, "must be a policy: a decorator of sync and async callables"
        )


@attrs.frozen(kw_only=True)
class ResiliencePolicy:
    """Timeout, bulkhead, rate limiter, breaker, retry and fallback, composed in one order.

    A frozen, reusable value and a decorator (sync or async, signature kept).
    Stateful parts (bulkhead, rate limiter, breaker) are shared by every
    function the policy decorates, which is what a shared quota needs.
    ``deadline`` is the one time budget of the whole call, sleeps included;
    every layer inside plans within it. Change it with :func:`attrs.evolve`.

    Args:
        fallback: Answers when everything inside failed.
        deadline: Seconds for the whole call, retries and waits included.
        retry: How attempts are retried (its own ``deadline`` must be unset
            when ``deadline`` is given).
        breaker: A circuit breaker, or any :class:`~resilient_pipeline.typing.Policy`.
        rate_limiter: A :class:`RateLimiter` (or a Redis one); per attempt.
        bulkhead: A :class:`Bulkhead` (or a Redis one); per attempt.
        timeout: Seconds (or a :class:`Timeout`) per attempt.
        name: The name of the call in events (default: the function's qualname).
        clock: Where the deadline's time comes from.

    Raises:
        ConfigurationError: When a part is of the wrong kind or the parts
            contradict each other (a timeout longer than the deadline, two
            deadlines, a Redis lease shorter than a call may last, ...).

    Examples:
        >>> from resilient_pipeline import Bulkhead, RetryPolicy, fallback
        >>> policy = ResiliencePolicy(
        ...     fallback=fallback([]),
        ...     deadline=30.0,
        ...     retry=RetryPolicy(max_attempts=3, base_delay=0),
        ...     bulkhead=Bulkhead(max_concurrent=4),
        ...     timeout=10.0,
        ... )
        >>> print(policy.describe())
        fallback ⟶ deadline 30.0 s ⟶ retry (3 attempts) ⟶ bulkhead ⟶ timeout 10.0 s ⟶ call
        >>> @policy
        ... def fetch(day: str) -> list[str]:
        ...     raise ConnectionError("reset by peer")
        >>> fetch("2026-11-28")
        []
    """

    order: ClassVar[tuple[str, ...]] = _ORDER
    """The layers, outermost first."""

    fallback: Fallback | None = attrs.field(default=None, validator=_of_type(Fallback))
    deadline: float | None = None
    retry: RetryPolicy | None = attrs.field(default=None, validator=_of_type(RetryPolicy))
    breaker: Policy | None = attrs.field(default=None, validator=_policy)
    rate_limiter: Policy | None = attrs.field(default=None, validator=_policy)
    bulkhead: Policy | None = attrs.field(default=None, validator=_policy)
    timeout: Timeout | None = attrs.field(default=None, converter=_to_timeout)
    name: str | None = None
    clock: Clock | None = None

    def __attrs_post_init__(self) -> None:
        deadline, timeout, retry = self.deadline, self.timeout, self.retry
        if deadline is not None:
            number(gt=0).check("deadline", deadline)
        if timeout is not None and deadline is not None and timeout.seconds > deadline:
            raise ConfigurationError.for_option(
                "timeout",
                timeout.seconds,
                f"is longer than deadline={deadline!r}: an attempt could never use it",
            )
        if retry is not None:
            if deadline is not None and retry.deadline is not None:
                raise ConfigurationError.for_option(
                    "retry",
                    retry,
                    f"sets deadline={retry.deadline!r} as well as deadline={deadline!r}; "
                    "give the deadline once, to resilient()",
                )
            if retry.attempt_timeout is not None and timeout is not None:
                raise ConfigurationError.for_option(
                    "retry",
                    retry,
                    f"sets attempt_timeout={retry.attempt_timeout!r} as well as "
                    f"timeout={timeout.seconds!r}; give the per-attempt limit once",
                )
            if deadline is not None and (retry.attempt_timeout or 0) > deadline:
                raise ConfigurationError.for_option(
                    "retry",
                    retry,
                    f"has attempt_timeout={retry.attempt_timeout!r}, longer than "
                    f"deadline={deadline!r}",
                )
        lease = getattr(self.bulkhead, "lease_ttl", None)
        if lease is not None:
            longest = min(
                (s for s in (deadline, None if timeout is None else timeout.seconds) if s),
                default=None,
            )
            if longest is None or longest > lease:
                raise ConfigurationError.for_option(
                    "bulkhead",
                    self.bulkhead,
                    f"leases slots for lease_ttl={lease!r} s but a call may last "
                    f"{'without limit' if longest is None else f'{longest!r} s'}; "
                    "set timeout= (or deadline=) to at most lease_ttl",
                )

    def layers(self) -> list[tuple[str, object]]:
        """The configured layers, outermost first, as ``(name, policy)`` pairs."""
        given = [(name, getattr(self, name)) for name in self.order]
        return [(name, policy) for name, policy in given if policy is not None]

    def describe(self) -> str:
        """The chain a call goes through, outermost first.

        Examples:
            >>> print(ResiliencePolicy(timeout=5).describe())
            timeout 5 s ⟶ call
        """
        parts = []
        for name, policy in self.layers():
            if name == "deadline":
                parts.append(f"deadline {policy} s")
            elif name == "timeout" and isinstance(policy, Timeout):
                parts.append(f"timeout {policy.seconds} s")
            elif name == "retry" and isinstance(policy, RetryPolicy):
                parts.append(f"retry ({policy.max_attempts} attempts)")
            else:
                parts.append(name.replace("_", " "))
        return " ⟶ ".join([*parts, "call"])

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate ``fn`` (sync or async) with every configured layer."""
        return self._build(fn, one_frame=True)

    def _build(self, fn: Callable[P, T], *, one_frame: bool) -> Callable[P, T]:
        """The composition; ``one_frame=False`` keeps the layers alone (the tests' reference)."""
        check_callable(fn, "resilient")
        source = source_of(self.name, fn)
        wrapped = fn
        clock, bulkhead = self.clock, self.bulkhead
        # The frozen parts default to the policy's name and clock, so one call's
        # events share one source; stateful parts (shared by many) keep theirs.
        timeout = None if self.timeout is None else _named(self.timeout, source, clock)
        retry = None if self.retry is None else _named(self.retry, source, clock)
        fallback = None if self.fallback is None else _named(self.fallback, source, None)
        is_coroutine = is_async(fn)
        # The in-memory limiter and bulkhead, the attempt number and a sync
        # cooperative timeout (it only tightens the deadline) share one frame
        # (see _fused); every other policy stays a decorator in its place.
        inner_timeout = None
        if timeout is not None and timeout.sync == "thread" and bulkhead is not None:
            # An abandoned worker thread still runs: it must keep its bulkhead
            # slot until it really ends, so the bulkhead goes inside the thread.
            wrapped = timeout(bulkhead(wrapped))
            bulkhead = None
        elif timeout is not None and (is_coroutine or timeout.sync == "thread"):
            wrapped = timeout(wrapped)
        else:
            inner_timeout = timeout
        fused_bulkhead = fusable_bulkhead(bulkhead)
        if bulkhead is not None and fused_bulkhead is None:
            if inner_timeout is not None:
                wrapped = timeout(wrapped)  # type: ignore[misc]  # not None here
                inner_timeout = None
            wrapped = bulkhead(wrapped)
        limiter = fusable_limiter(self.rate_limiter)
        if limiter is None and self.rate_limiter is not None:
            if fused_bulkhead is not None or inner_timeout is not None:
                wrapped = per_attempt(
                    wrapped,
                    count=False,
                    limiter=None,
                    bulkhead=fused_bulkhead,
                    timeout=inner_timeout,
                    source=source,
                    is_coroutine=is_coroutine,
                )
                fused_bulkhead = inner_timeout = None
            wrapped = self.rate_limiter(wrapped)
        count = retry is not None and self.breaker is None
        if limiter is not None or fused_bulkhead is not None or inner_timeout is not None or count:
            wrapped = per_attempt(
                wrapped,
                count=count,
                limiter=limiter,
                bulkhead=fused_bulkhead,
                timeout=inner_timeout,
                source=source,
                is_coroutine=is_coroutine,
            )
        if self.breaker is not None:
            wrapped = self.breaker(wrapped)
        overall = (
            None if self.deadline is None else Timeout(self.deadline, name=source, clock=clock)
        )
        if retry is not None and overall is not None and timeout is None:
            # The retry core enforces its own deadline: every attempt runs under
            # it (async ones in a cancel scope) and no sleep plans past it.
            retry = attrs.evolve(retry, deadline=overall.seconds)
            overall = None
        if retry is not None:
            if self.breaker is not None:
                wrapped = numbered(wrapped)
            # An inner timeout already runs each attempt in a cancel scope bounded
            # by the shared deadline; a second scope in the retry would only cost.
            wrapped = decorate(retry, wrapped, cancel=timeout is None)
        if overall is not None and retry is None:
            # Without a retry in between, the overall deadline must cancel the
            # call itself: it keeps its own cancel scope (async), in its layer.
            wrapped = overall(wrapped)
            overall = None
        # With a retry inside, the call is cancelled at the deadline (by the
        # retry or the per-attempt timeout) and every wait and sleep stops at
        # it, so the overall layer only tightens the deadline: it needs no
        # cancel scope (one costs more than a whole retry) and joins the outer frame.
        general = outer(
            wrapped,
            source=source,
            fallback=fallback,
            deadline=overall,
            is_coroutine=is_coroutine,
        )
        # The success path in one frame, when the parts allow it (see _onepass);
        # it goes on with the layers above whenever a call leaves that path.
        if self.breaker is not None or not one_frame:
            return general
        fast = one_pass(
            fn,
            general,
            source=source,
            fallback=fallback,
            deadline=None if self.deadline is None else Timeout(self.deadline, clock=clock),
            retry=retry,  # with the overall deadline in it, if the retry enforces it
            limiter=self.rate_limiter,
            bulkhead=self.bulkhead,
            timeout=timeout,
            is_coroutine=is_coroutine,
        )
        return general if fast is None else fast


def resilient(
    *,
    fallback: Fallback | None = None,
    deadline: float | None = None,
    retry: RetryPolicy | None = None,
    breaker: Policy | None = None,
    rate_limiter: Policy | None = None,
    bulkhead: Policy | None = None,
    timeout: Timeout | float | None = None,
    name: str | None = None,
    clock: Clock | None = None,
) -> ResiliencePolicy:
    """Compose policies around a function, in the documented order (see :class:`ResiliencePolicy`).

    Examples:
        >>> import anyio
        >>> from resilient_pipeline import RateLimiter, RetryPolicy
        >>> @resilient(
        ...     deadline=60.0,
        ...     retry=RetryPolicy(max_attempts=5, base_delay=0),
        ...     rate_limiter=RateLimiter(rate=10),
        ...     timeout=5.0,
        ... )
        ... async def fetch_spend(account: str) -> float:
        ...     return 12.5
        >>> anyio.run(fetch_spend, "act_42")
        12.5
    """
    return ResiliencePolicy(
        fallback=fallback,
        deadline=deadline,
        retry=retry,
        breaker=breaker,
        rate_limiter=rate_limiter,
        bulkhead=bulkhead,
        timeout=timeout,
        name=name,
        clock=clock,
    )
