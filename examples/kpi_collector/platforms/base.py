"""What every platform shares: the unit contract, the fetcher's policies, token refresh, errors.

A platform fetcher makes many small HTTP calls (one per page of each
endpoint); each call goes through the library's policies, composed with
``resilient()`` in the documented order::

    retry (Retry-After honoured) ⟶ breaker per account ⟶ rate limiter per token
        ⟶ timeout per call ⟶ the request (a 401 refreshes the token once)

so a failed page is retried on its own, an account that keeps failing stops
being called without stopping the others, and the platform's quota is
shared by every call made with the same token. ``fetch_unit`` pages through
both endpoints and transforms the answers into the collector's unit; it does
not judge the unit: the pipeline gives the platform's :attr:`Platform.contract`
to ``backfill``, which checks it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, ParamSpec, TypeAlias, TypeVar, cast

import anyio
import attrs
import httpx

from resilient_pipeline import (
    CircuitBreaker,
    ConsecutiveFailures,
    Field,
    OpenDuration,
    Partition,
    PartitionContract,
    PermanentError,
    RateLimiter,
    RetryPolicy,
    Validator,
    resilient,
)
from resilient_pipeline.breaker import CircuitBreakerRegistry, HalfOpen
from resilient_pipeline.exceptions import ConfigurationError, DeadlineExceededError, RejectedError
from resilient_pipeline.flags import Flags
from resilient_pipeline.http import is_retryable_http_error
from resilient_pipeline.limits import RedisRateLimiter, Timeout
from resilient_pipeline.typing import Clock, EventHandler
from resilient_pipeline.validation import Collection, any_row, paired
from resilient_pipeline.validation.rules import compare, length, non_negative, one_of, positive

__all__ = [
    "CONVERSION_KINDS",
    "AuthenticationError",
    "Fetcher",
    "PerKey",
    "Platform",
    "TokenRejectedError",
    "UnexpectedAnswerError",
    "Unit",
    "exact_int",
    "exact_micros",
    "iso_day",
    "one_row_per_campaign",
    "retryable",
    "unit_contract",
    "upstream_failed",
]

P = ParamSpec("P")
T = TypeVar("T")

Unit: TypeAlias = dict[str, list[dict[str, Any]]]
"""One partition's collections, transformed: ``{"campaigns": [...], "conversions": [...]}``."""

CONVERSION_KINDS = ("calls", "emails", "reservations")
"""The three kinds of conversion, as unit fields."""


# ---------------------------------------------------------------------- errors
class AuthenticationError(PermanentError):
    """The platform refused the configured token itself (revoked, wrong): no retry can help.

    The message names the platform, never the token.
    """


class TokenRejectedError(Exception):
    """A request was refused with 401 even with a freshly refreshed token (retried)."""


class UnexpectedAnswerError(Exception):
    """The platform answered something the fetcher cannot read, or for another day.

    Not retried by the fetcher's own policy; ``backfill`` records it as the
    partition's failure (a later run asks again).
    """


# -------------------------------------------------------------- exact numbers
def exact_int(value: object) -> object:
    """An API count (``"123"``, ``123``, ``3.0``) as an ``int``; anything else unchanged.

    A value that is not a whole number is returned as it came, so the
    contract's validator reports it with its field: nothing is rounded away.

    Examples:
        >>> exact_int("123"), exact_int(7), exact_int(3.0), exact_int(2.5), exact_int("1e3")
        (123, 7, 3, 2.5, '1e3')
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def exact_micros(value: object) -> object:
    """A decimal money string (``"12.34"``) as integer micros, exactly; anything else unchanged.

    Examples:
        >>> exact_micros("12.34"), exact_micros("0"), exact_micros("0.000001")
        (12340000, 0, 1)
        >>> exact_micros("0.0000001"), exact_micros(12.34), exact_micros("NaN")
        ('0.0000001', 12.34, 'NaN')
    """
    if not isinstance(value, str):
        return value  # a float is already inexact: let the validator name it
    try:
        amount = Decimal(value.strip()).scaleb(6)
    except InvalidOperation:
        return value
    if not amount.is_finite() or amount != amount.to_integral_value():
        return value
    return int(amount)


def iso_day(value: object) -> object:
    """An ISO day string as a ``date``; anything else unchanged.

    Examples:
        >>> iso_day("2026-11-28"), iso_day("28/11/2026")
        (datetime.date(2026, 11, 28), '28/11/2026')
    """
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value


# -------------------------------------------------------------------- contract
def _spent(row: Mapping[str, Any]) -> bool:
    spend = row.get("spend_micros")
    return isinstance(spend, int) and spend > 0


def _converted(row: Mapping[str, Any]) -> bool:
    counts = [row.get(kind) for kind in CONVERSION_KINDS]
    return any(isinstance(c, int) and c > 0 for c in counts)


def one_row_per_campaign(rows: Iterable[Mapping[str, Any]]) -> str | None:
    """A batch rule: no campaign twice in one collection (a repeated page would double it).

    Examples:
        >>> one_row_per_campaign([{"campaign_id": "7"}, {"campaign_id": "7"}])
        "campaign_id repeated: '7'"
    """
    seen: set[str] = set()
    twice: list[str] = []
    for row in rows:
        shown = repr(row.get("campaign_id"))
        if shown in seen and shown not in twice:
            twice.append(shown)
        seen.add(shown)
    return None if not twice else f"campaign_id repeated: {', '.join(twice[:10])}"


def unit_contract(platform: str) -> PartitionContract:
    """The partition contract of ``platform``'s unit: campaigns *and* conversions, paired.

    * campaigns are required (none is an incomplete unit: the endpoint failed);
    * conversions may be empty only when no campaign spent;
    * every campaign that spent has a conversions row (zeros count), and every
      conversions row that counts conversions belongs to a campaign that spent;
    * counts and micros are ints >= 0, clicks <= impressions, ids not empty,
      one row per campaign.

    Examples:
        >>> import datetime as dt
        >>> contract = unit_contract("meta_ads")
        >>> day = dt.date(2026, 11, 28)
        >>> row = {"platform": "meta_ads", "client_id": 1, "date": day, "campaign_id": "7",
        ...        "campaign_name": "Brand", "impressions": 10, "clicks": 2, "spend_micros": 0}
        >>> contract.check({"campaigns": [row], "conversions": []}).verdict
        'complete'
        >>> contract.check({"campaigns": [], "conversions": []}).verdict
        'incomplete'
    """
    key = {
        "platform": Field(str, one_of(platform)),
        "client_id": Field(int, positive()),
        "date": Field(dt.date),
        "campaign_id": Field(str, length(min=1)),
    }
    campaigns = Validator(
        fields={
            **key,
            "campaign_name": Field(str),
            "impressions": Field(int, non_negative()),
            "clicks": Field(int, non_negative()),
            "spend_micros": Field(int, non_negative()),
        },
        rules=[compare("clicks", "<=", "impressions")],
        batch_rules=[one_row_per_campaign],
        name=f"{platform}.campaigns",
    )
    conversions = Validator(
        fields={**key, **{kind: Field(int, non_negative()) for kind in CONVERSION_KINDS}},
        batch_rules=[one_row_per_campaign],
        name=f"{platform}.conversions",
    )
    on = ("campaign_id", "date")
    return PartitionContract(
        collections={
            "campaigns": Collection(validator=campaigns),
            "conversions": Collection(
                validator=conversions,
                empty="allowed",
                required_when=any_row("campaigns", _spent),
            ),
        },
        rules=[
            paired("campaigns", "conversions", on=on, when=_spent),
            paired("conversions", "campaigns", on=on, when=_converted, right_when=_spent),
        ],
        name=platform,
    )


# -------------------------------------------------------------------- policies
def retryable(error: Exception) -> bool:
    """What the fetcher's retry tries again: 429/5xx, transport errors, timeouts, refusals.

    A refusal (an open circuit, the rate limiter) is waited out only when its
    ``retry_after`` fits the deadline; a 4xx other than 429 is a bug, not luck.

    Examples:
        >>> retryable(httpx.ConnectError("refused")), retryable(KeyError("data"))
        (True, False)
    """
    return is_retryable_http_error(error) or isinstance(
        error, DeadlineExceededError | TokenRejectedError | RejectedError
    )


def upstream_failed(error: Exception) -> bool:
    """What counts against an account's breaker: 5xx, transport errors, timeouts.

    A 429 does not: the upstream is healthy, only busy; the rate limiter slows down instead.

    Examples:
        >>> request = httpx.Request("GET", "https://api.test/")
        >>> throttled = httpx.HTTPStatusError(
        ...     "429", request=request, response=httpx.Response(429, request=request))
        >>> upstream_failed(throttled), upstream_failed(httpx.ReadTimeout("slow"))
        (False, True)
    """
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code >= 500
    return isinstance(error, httpx.TransportError | TimeoutError)


@attrs.frozen
class PerKey:
    """A keyed circuit breaker as a policy: each call goes through the breaker of its key.

    ``key`` computes the key parts from the call's arguments (like
    ``RateLimiter(key=...)``); the breaker's :meth:`~CircuitBreaker.for_key`
    (or a :class:`~resilient_pipeline.breaker.CircuitBreakerRegistry`'s ``get``,
    which a health check can list) keeps one breaker per key, so one failing
    account does not stop the others.

    Examples:
        >>> import anyio
        >>> breaker = CircuitBreaker(name="meta_ads")
        >>> @PerKey(breaker, key=lambda account: (account,))
        ... async def fetch(account: str) -> str:
        ...     return account
        >>> anyio.run(fetch, "7"), breaker.for_key("7").name
        ('7', 'meta_ads[7]')
    """

    breaker: CircuitBreaker | CircuitBreakerRegistry
    key: Callable[..., tuple[Hashable, ...]]

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Guard ``fn`` (sync or async) with the breaker of each call's key."""
        key = self.key
        of = self.breaker.for_key if isinstance(self.breaker, CircuitBreaker) else self.breaker.get
        if inspect.iscoroutinefunction(fn):
            afn = cast("Callable[P, Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def aguarded(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await of(*key(*args, **kwargs)).acall(afn, *args, **kwargs)

            return cast("Callable[P, T]", aguarded)

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return of(*key(*args, **kwargs)).call(fn, *args, **kwargs)

        return guarded


def _handlers(value: EventHandler | Iterable[EventHandler] | None) -> tuple[EventHandler, ...]:
    if value is None:
        return ()
    if callable(value):
        return (value,)
    return tuple(value)


def _positive(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError.for_option(attribute.name, value, "must be a number > 0")


def _page_size(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError.for_option(attribute.name, value, "must be an int >= 1")


def _url(value: object) -> str:
    return str(value).rstrip("/")


# --------------------------------------------------------------------- fetcher
@attrs.define(kw_only=True, eq=False)
class Fetcher:
    """Fetches one platform's units over HTTP, each call through the library's policies.

    Subclasses set :attr:`platform` and :attr:`prefix` and implement
    :meth:`_fetch` with :meth:`request`. Build one with :meth:`Platform.fetcher`.
    A fetcher lives in one event loop (its HTTP client and lock do); use it as
    ``async with`` or call :meth:`aclose`.

    Args:
        base_url: The API's root (``http://127.0.0.1:8080``).
        token: The platform's long-lived token: the first access token, and
            the refresh credential when a 401 says the access token expired.
            It never appears in reprs, events or messages.
        client: An ``httpx.AsyncClient`` to share (not closed by :meth:`aclose`);
            default: the fetcher's own.
        clock: Where every policy reads time and sleeps (a ``FakeClock`` in tests).
        on_event: Handlers for every policy's events.
        timeout: Seconds per HTTP call (one page), refresh included.
        page_size: Rows asked for per page (the server may give fewer).
        retry: The retry policy per call (default: 6 attempts, exponential
            backoff from 0.5 s, ``Retry-After`` honoured, 120 s deadline).
        breaker: The breaker template, or a ``CircuitBreakerRegistry`` of them;
            one breaker per account is made from it (default: open after 5
            failures in a row, for 5 s).
        limiter: The rate limiter, in this process or shared through Redis
            (default: 20 calls/s per token, adaptive to 429s).
        flags: Feature flags choosing new code paths per client (``None``: every
            flag off).
        close_when_idle: Close the fetcher's own HTTP client (and make a new
            lock) whenever no unit is being fetched, so that a fetcher used by
            one event loop after another (a fleet job's, one loop per run)
            opens its connections in the loop that uses them.
    """

    platform: ClassVar[str]
    prefix: ClassVar[str]

    base_url: str = attrs.field(converter=_url)
    token: str = attrs.field(repr=False)
    client: httpx.AsyncClient | None = attrs.field(default=None, repr=False)
    clock: Clock | None = None
    on_event: tuple[EventHandler, ...] = attrs.field(default=(), converter=_handlers)
    timeout: float = attrs.field(default=10.0, validator=_positive)
    page_size: int = attrs.field(default=500, validator=_page_size)
    retry: RetryPolicy | None = None
    breaker: CircuitBreaker | CircuitBreakerRegistry | None = None
    limiter: RateLimiter | RedisRateLimiter | None = None
    flags: Flags | None = attrs.field(default=None, repr=False)
    close_when_idle: bool = False

    token_refreshes: int = attrs.field(default=0, init=False)
    _access: str = attrs.field(init=False, repr=False)
    _own_client: httpx.AsyncClient | None = attrs.field(default=None, init=False, repr=False)
    _lock: anyio.Lock = attrs.field(factory=anyio.Lock, init=False, repr=False)
    _call: Callable[..., Awaitable[Any]] = attrs.field(init=False, repr=False)
    _in_flight: int = attrs.field(default=0, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        token: object = self.token
        if not isinstance(token, str) or not token:
            raise ConfigurationError.for_option("token", "***", "must be a non-empty str")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigurationError.for_option("base_url", self.base_url, "must be an http(s) URL")
        if self.flags is not None and not isinstance(self.flags, Flags):
            raise ConfigurationError.for_option("flags", self.flags, "must be a Flags or None")
        self._access = self.token
        name, clock, handlers = self.platform, self.clock, self.on_event
        if self.retry is None:
            self.retry = RetryPolicy(
                max_attempts=6,
                base_delay=0.5,
                max_delay=30.0,
                deadline=120.0,
                retry_if=retryable,
                clock=clock,
                on_event=handlers,
            )
        if self.breaker is None:
            self.breaker = CircuitBreaker(
                name=name,
                trip=ConsecutiveFailures(threshold=5),
                open_duration=OpenDuration(seconds=5.0),
                # several days of one account are in flight at once: each may probe
                half_open=HalfOpen(permits=4),
                failure_if=upstream_failed,
                clock=clock,
                on_event=handlers,
            )
        if self.limiter is None:
            digest = hashlib.sha256(self.token.encode()).hexdigest()[:12]
            bucket = (name, digest)  # one bucket per token, and the token kept out of it
            self.limiter = RateLimiter(
                rate=20,
                per=1.0,
                key=lambda *args, **kwargs: bucket,
                key_label=lambda key: f"{key[0]} token {key[1]}",
                adaptive=True,
                name=f"{name} quota",
                clock=clock,
                on_event=handlers,
            )
        policy = resilient(
            retry=self.retry,
            breaker=PerKey(self.breaker, key=lambda account, *args, **kwargs: (account,)),
            rate_limiter=self.limiter,
            timeout=Timeout(self.timeout, on_event=handlers),
            name=name,
            clock=clock,
        )
        self._call = policy(self._attempt)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.platform} {self.base_url}>"

    # -- the unit ------------------------------------------------------------------
    async def fetch_unit(self, partition: Partition) -> Unit:
        """Fetch and transform one (platform, client, day) partition: campaigns and conversions.

        Raises:
            ConfigurationError: The partition is not this platform's, or its key
                or period is not a client id / ISO day.
            httpx.HTTPError: A call still failed after its retries (the last error).
            CircuitOpenError: The account's breaker is open (not waited out).
            DeadlineExceededError: A call ran out of time on its last attempt.
            AuthenticationError: The platform refused the token itself.
            UnexpectedAnswerError: An answer could not be read, or is for another day.
        """
        client_id, day = self._partition(partition)
        self._in_flight += 1
        try:
            unit = await self._fetch(client_id, day)
        finally:
            self._in_flight -= 1
            if self.close_when_idle and not self._in_flight:
                self._lock = anyio.Lock()  # nobody holds it: no unit is in flight
                with anyio.CancelScope(shield=True):
                    await self.aclose()
        for name, rows in unit.items():
            for index, row in enumerate(rows):
                if isinstance(row.get("date"), dt.date) and row["date"] != day:
                    raise UnexpectedAnswerError(
                        f"{self.platform}: asked for {day}, got {name}[{index}] of {row['date']}"
                    )
        return unit

    async def _fetch(self, client_id: int, day: dt.date) -> Unit:
        raise NotImplementedError

    def _partition(self, partition: Partition) -> tuple[int, dt.date]:
        if not isinstance(partition, Partition):
            raise ConfigurationError.for_option("partition", partition, "must be a Partition")
        if partition.source != self.platform:
            raise ConfigurationError.for_option(
                "partition", str(partition), f"is not a {self.platform} partition"
            )
        if not partition.key.isdigit() or int(partition.key) < 1:
            raise ConfigurationError.for_option(
                "partition", str(partition), "its key must be a client id (an integer >= 1)"
            )
        try:
            day = dt.date.fromisoformat(partition.period)
        except ValueError:
            raise ConfigurationError.for_option(
                "partition", str(partition), "its period must be an ISO day"
            ) from None
        return int(partition.key), day

    # -- calls ---------------------------------------------------------------------
    async def request(
        self,
        account: int,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> Any:
        """One HTTP call through every policy; the decoded JSON body."""
        return await self._call(str(account), method, path, params, json)

    async def _attempt(
        self,
        account: str,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
    ) -> Any:
        used = self._access
        response = await self._send(method, path, params, body, used)
        if response.status_code == 401:
            await self._refresh(used)
            response = await self._send(method, path, params, body, self._access)
            if response.status_code == 401:
                raise TokenRejectedError(
                    f"{self.platform}: {method} {path} refused (401) with a fresh token"
                )
        response.raise_for_status()
        try:
            return response.json()
        except ValueError as exc:
            raise UnexpectedAnswerError(f"{self.platform}: {method} {path}: not JSON") from exc

    def _http(self) -> httpx.AsyncClient:
        if self.client is not None:
            return self.client
        if self._own_client is None:
            # our own Timeout cancels first; httpx's is the safety net
            self._own_client = httpx.AsyncClient(timeout=self.timeout * 2 + 1.0)
        return self._own_client

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        token: str,
    ) -> httpx.Response:
        return await self._http().request(
            method,
            f"{self.base_url}{path}",
            params=params,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def _refresh(self, expired: str) -> None:
        """Get a new access token, once for every call that saw ``expired`` refused."""
        async with self._lock:
            if self._access != expired:
                return  # another call refreshed it while we waited
            response = await self._http().post(
                f"{self.base_url}/{self.prefix}/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": self.token},
            )
            if response.status_code in (400, 401, 403):
                raise AuthenticationError(
                    f"{self.platform}: the platform refused the token "
                    f"({response.status_code} on refresh); set a valid one"
                )
            response.raise_for_status()
            access = response.json().get("access_token")
            if not isinstance(access, str) or not access:
                raise UnexpectedAnswerError(f"{self.platform}: the token refresh gave no token")
            self._access = access
            self.token_refreshes += 1

    async def aclose(self) -> None:
        """Close the fetcher's own HTTP client (a shared one stays open)."""
        # Detached first: a call starting meanwhile opens a new client, never the closing one.
        client, self._own_client = self._own_client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# -------------------------------------------------------------------- platform
@attrs.frozen
class Platform:
    """One ad platform: its ledger name, where its token comes from, its contract, its fetcher.

    Examples:
        >>> from examples.kpi_collector.platforms import PLATFORMS
        >>> meta = PLATFORMS["meta_ads"]
        >>> meta.name, meta.token_env, meta.contract.name
        ('meta_ads', 'KPI_META_TOKEN', 'meta_ads')
        >>> meta.fetcher(base_url="http://127.0.0.1:9", token="secret-token")
        <MetaFetcher meta_ads http://127.0.0.1:9>
    """

    name: str
    title: str
    token_env: str
    contract: PartitionContract
    fetcher_type: type[Fetcher] = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        if self.fetcher_type.platform != self.name or self.contract.name != self.name:
            raise ConfigurationError.for_option(
                "fetcher_type", self.fetcher_type.__name__, f"does not fetch {self.name}"
            )

    def fetcher(
        self,
        *,
        base_url: str,
        token: str,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        on_event: EventHandler | Iterable[EventHandler] | None = (),
        timeout: float = 10.0,
        page_size: int = 500,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | CircuitBreakerRegistry | None = None,
        limiter: RateLimiter | RedisRateLimiter | None = None,
        flags: Flags | None = None,
        close_when_idle: bool = False,
    ) -> Fetcher:
        """A fetcher of this platform's units (see :class:`Fetcher` for the options)."""
        return self.fetcher_type(
            base_url=base_url,
            token=token,
            client=client,
            clock=clock,
            on_event=_handlers(on_event),
            timeout=timeout,
            page_size=page_size,
            retry=retry,
            breaker=breaker,
            limiter=limiter,
            flags=flags,
            close_when_idle=close_when_idle,
        )
