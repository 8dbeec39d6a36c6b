"""Settings of one collector run: where, what, how hard; checked when built.

Everything the pipeline needs is in one frozen :class:`Settings` value, so a
test (or a scheduler written in Python) can call :func:`..pipeline.run`
without a command line. Secrets (API tokens, webhook URLs, a DSN's password)
are kept out of the ``repr``.

Example:
    >>> import datetime as dt
    >>> s = Settings(db=":memory:", base_url="http://127.0.0.1:8080",
    ...              tokens={"meta_ads": "t0k3n"}, platforms=("meta_ads",),
    ...              clients=(1, 2), end=dt.date(2026, 11, 29), days=3)
    >>> [d.isoformat() for d in (s.start, s.end)], "t0k3n" in repr(s)
    (['2026-11-27', '2026-11-29'], False)
"""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.flags import EnvSource, FileSource, Flags

__all__ = [
    "DEMO_END",
    "DEMO_HANG",
    "DEMO_TUNING",
    "ENGINES",
    "FLAGS_RELOAD",
    "KNOWN_PLATFORMS",
    "REDIS_ENV",
    "TOKEN_ENV",
    "Settings",
    "demo_settings",
    "load_flags",
    "parse_clients",
    "read_clients_file",
    "tokens_from_env",
]

KNOWN_PLATFORMS = ("meta_ads", "google_ads")
"""Ledger source names of the platforms the collector knows."""

TOKEN_ENV = {"meta_ads": "KPI_META_TOKEN", "google_ads": "KPI_GOOGLE_TOKEN"}
"""The environment variable holding each platform's API token."""

ENGINES = ("local", "celery", "dask")
"""Where the backfill passes run: this machine's processes, Celery workers, a Dask cluster."""

REDIS_ENV = "KPI_REDIS_URL"
"""The environment variable holding the Redis URL that shares breakers and quotas."""

DEMO_END = dt.date(2026, 11, 29)
"""The demo's last day: "yesterday" of a fixed today (2026-11-30), so every run is the same."""


def _positive_int(option: str, *, minimum: int = 1) -> Any:
    def check(_instance: object, _attribute: object, value: object) -> None:
        if type(value) is not int or value < minimum:
            raise ConfigurationError.for_option(option, value, f"must be an integer >= {minimum}")

    return check


def _one_of(option: str, choices: tuple[str, ...]) -> Any:
    def check(_instance: object, _attribute: object, value: object) -> None:
        if value not in choices:
            raise ConfigurationError.for_option(option, value, f"choose from {', '.join(choices)}")

    return check


def _platforms(value: Iterable[str]) -> tuple[str, ...]:
    platforms = tuple(dict.fromkeys(value))
    if not platforms:
        raise ConfigurationError.for_option("platforms", value, "name at least one platform")
    for name in platforms:
        if name not in KNOWN_PLATFORMS:
            raise ConfigurationError.for_option(
                "platform", name, f"unknown platform; choose from {', '.join(KNOWN_PLATFORMS)}"
            )
    return platforms


def _clients(value: Iterable[int]) -> tuple[int, ...]:
    clients = tuple(dict.fromkeys(value))
    if not clients:
        raise ConfigurationError.for_option("clients", value, "name at least one client")
    for client in clients:
        if type(client) is not int or client < 1:
            raise ConfigurationError.for_option("client", client, "must be an integer id >= 1")
    return clients


def _check_url(_instance: object, _attribute: object, value: Any) -> None:
    try:
        parsed = urllib.parse.urlsplit(value) if isinstance(value, str) else None
    except ValueError:  # "http://[::1": not a URL at all
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        # The URL could carry credentials: name the problem, not the value.
        raise ConfigurationError(
            "base_url must be an http:// or https:// URL", option="base_url", value=None
        )


def _check_redis_url(_instance: object, _attribute: object, value: Any) -> None:
    if value is None:
        return
    scheme = value.partition("://")[0] if isinstance(value, str) else ""
    if scheme not in ("redis", "rediss", "unix"):
        # The URL could carry a password: name the problem, not the value.
        raise ConfigurationError(
            "redis_url must be a redis://, rediss:// or unix:// URL", option="redis_url", value=None
        )


def _check_db(_instance: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            "db must be a SQLite file path or a postgresql:// DSN", option="db", value=None
        )


@attrs.frozen(kw_only=True)
class Settings:
    """One run of the collector.

    Attributes:
        db: A SQLite file path (``":memory:"`` for tests) or a ``postgresql://`` DSN.
        base_url: The ads API's root URL (both platforms live under it).
        tokens: API token per platform (from :func:`tokens_from_env`); never shown.
        platforms: Ledger source names to collect, in order.
        clients: Client ids (ledger keys are their text).
        end: The last day collected ("yesterday" in the accounts' time zone).
        days: How many days, ending with ``end``.
        lookback: Days at the end of the range collected again to catch
            restatements (``0``: none).
        concurrency: Partitions in flight at once per platform, in each worker
            (``--concurrency``).
        engine: Where the backfill passes run: ``"local"`` (this process, or
            ``slots`` processes of this machine), ``"celery"`` or ``"dask"``
            (see :mod:`examples.kpi_collector.fleet`).
        slots: Workers of the fleet (``--workers``): processes, Celery tasks
            or Dask tasks, each running the whole pass; the ledger shares the
            partitions out. ``1`` with ``engine="local"``: this process.
        recovery_rounds: Extra passes over the partitions still failing after
            the main pass (quarantined units included), in the same run.
        retry_delay: Base delay (seconds) of the retries; tests use ``0``.
        fetch_timeout: Seconds per HTTP request (one page).
        rate_limit: HTTP calls per second per token.
        adaptive_quota: A 429's ``Retry-After`` pauses every call made with the
            token (the quota is spent), not only the throttled one.
        breaker_open: Seconds an account's circuit stays open after 5 failures in a row.
        wait_for_others: Seconds to wait at the end for partitions other workers hold
            (several processes on one PostgreSQL database) before taking over what they
            left and checking.
        lease: Seconds a worker's claim on a partition lasts without renewal: a
            killed worker's partitions are taken over this long after it died.
        max_attempts: Failed runs after which a partition is ``exhausted``.
        report: Where the HTML report goes (``None``: no report).
        slack_webhook: A Slack incoming-webhook URL for alerts (never shown).
        webhook: A generic JSON webhook URL for alerts (never shown).
        progress: Progress bar: ``None`` on a terminal only, ``True``, ``False``.
        seed: The fake API's seed (demo only).
        fault_rate: The fake API's share of faulty answers (demo only).
        flags_file: A TOML or JSON file of feature flags, read again when it
            changes (``RP_FLAG_*`` environment variables win over it); see
            :func:`load_flags`.
        redis_url: A Redis every worker reaches (never shown): the breakers (one
            per account) and the quotas (one per token) live there, shared by
            every process of the fleet; ``None``: in each process's memory.
        redis_prefix: Prepended to the collector's Redis keys (one fleet per prefix).
    """

    db: str = attrs.field(validator=_check_db, repr=False)
    base_url: str = attrs.field(default="http://127.0.0.1:8080", validator=_check_url)
    tokens: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    platforms: tuple[str, ...] = attrs.field(default=KNOWN_PLATFORMS, converter=_platforms)
    clients: tuple[int, ...] = attrs.field(default=tuple(range(1, 17)), converter=_clients)
    end: dt.date = DEMO_END
    days: int = attrs.field(default=30, validator=_positive_int("days"))
    lookback: int = attrs.field(default=3, validator=_positive_int("lookback", minimum=0))
    concurrency: int = attrs.field(default=8, validator=_positive_int("concurrency"))
    engine: str = attrs.field(default="local", validator=_one_of("engine", ENGINES))
    slots: int = attrs.field(default=1, validator=_positive_int("slots"))
    recovery_rounds: int = attrs.field(
        default=2, validator=_positive_int("recovery_rounds", minimum=0)
    )
    retry_delay: float = 0.5
    fetch_timeout: float = 30.0
    rate_limit: float = 20.0
    adaptive_quota: bool = True
    breaker_open: float = 5.0
    wait_for_others: float = 60.0
    lease: float = 30.0
    max_attempts: int = attrs.field(default=5, validator=_positive_int("max_attempts"))
    report: Path | None = None
    slack_webhook: str | None = attrs.field(default=None, repr=False)
    webhook: str | None = attrs.field(default=None, repr=False)
    progress: bool | None = None
    seed: int = 13
    fault_rate: float = 0.2
    flags_file: Path | None = None
    redis_url: str | None = attrs.field(default=None, repr=False, validator=_check_redis_url)
    redis_prefix: str = "kpi:"

    def __attrs_post_init__(self) -> None:
        end: object = self.end
        if not isinstance(end, dt.date) or isinstance(end, dt.datetime):
            raise ConfigurationError.for_option("end", end, "must be a date")
        if self.lookback > self.days:
            raise ConfigurationError.for_option(
                "lookback", self.lookback, f"must not exceed days={self.days}"
            )
        if self.flags_file is not None and not isinstance(self.flags_file, Path):
            raise ConfigurationError.for_option("flags_file", self.flags_file, "must be a Path")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ConfigurationError.for_option("fault_rate", self.fault_rate, "must be in [0, 1]")
        positive = ["retry_delay", "fetch_timeout", "rate_limit", "breaker_open"]
        positive += ["wait_for_others", "lease"]
        for option in positive:
            value = getattr(self, option)
            low = 0 if option in ("retry_delay", "wait_for_others") else 1e-9
            if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
                raise ConfigurationError.for_option(option, value, "must be a positive number")

    @property
    def start(self) -> dt.date:
        """The first day collected."""
        return self.end - dt.timedelta(days=self.days - 1)

    @property
    def keys(self) -> list[str]:
        """The clients as ledger keys."""
        return [str(client) for client in self.clients]

    def token(self, platform: str) -> str:
        """``platform``'s token; a clear error naming the variable when it is missing."""
        token = self.tokens.get(platform)
        if not token:
            raise ConfigurationError(
                f"{TOKEN_ENV[platform]} is not set: export the {platform} API token "
                "in that environment variable (it is never read from a file or a default)",
                option=TOKEN_ENV[platform],
                value=None,
            )
        return token


DEMO_TUNING: dict[str, Any] = {
    "retry_delay": 0.05,
    "fetch_timeout": 1.0,  # the demo's "timeout" faults hang 2.5 s (DEMO_HANG)
    "rate_limit": 500.0,
    # The fake throttles single asks at random, not because a quota ran out: pausing
    # the whole token for each would only slow the demo down. Real runs keep it on.
    "adaptive_quota": False,
    "breaker_open": 1.0,
}
"""What :func:`demo_settings` changes for the local fake API."""

DEMO_HANG = 2.5
"""Seconds the demo API's "timeout" faults hang: well over ``fetch_timeout``, even on a busy
machine, where a normal answer may take longer than usual."""


def demo_settings(db: str = "kpi-demo.sqlite3", **changes: Any) -> Settings:
    """Settings tuned for the local fake API: short timeouts and waits, a generous quota.

    Example:
        >>> s = demo_settings(":memory:", clients=(1, 2), days=3)
        >>> s.fetch_timeout < DEMO_HANG, s.end.isoformat(), s.days
        (True, '2026-11-29', 3)
    """
    return Settings(**{"db": db, **DEMO_TUNING, **changes})


FLAGS_RELOAD = 5.0
"""Seconds between two looks at the flags file: a rollback reaches a running collector this fast."""


def load_flags(
    flags_file: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Flags:
    """The run's feature flags: ``RP_FLAG_*`` environment variables, then ``flags_file``.

    The first source that defines a flag decides it, so an environment
    variable pins one process whatever the file says. A flag neither defines
    is off. A file that cannot be read or holds a bad flag is a
    ``ConfigurationError`` naming it, before anything runs; once running, a
    bad rewrite is ignored (a ``FlagSourceFailed`` warning) and the last good
    flags stay.

    Example:
        >>> flags = load_flags(environ={"RP_FLAG_NEW_CONVERSIONS_ENDPOINT": "25%"})
        >>> flags.get("new_conversions_endpoint").percentage
        25.0
        >>> [c for c in range(1, 17) if flags.enabled("new_conversions_endpoint", key=c)]
        [1, 3, 4, 8, 11, 12, 15]
    """
    sources: list[Any] = [EnvSource(environ=environ)]
    if flags_file is not None:
        sources.append(FileSource(flags_file, reload_interval=FLAGS_RELOAD))
    return Flags(sources)


def tokens_from_env(
    platforms: Iterable[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each platform's token from its environment variable; a missing one is an error.

    Example:
        >>> tokens_from_env(["meta_ads"], {"KPI_META_TOKEN": "abc"})
        {'meta_ads': 'abc'}
        >>> tokens_from_env(["google_ads"], {})
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: KPI_GOOGLE_TOKEN is not set: ...
    """
    env = os.environ if environ is None else environ
    tokens = {}
    for platform in platforms:
        variable = TOKEN_ENV[platform]
        token = env.get(variable, "").strip()
        if not token:
            raise ConfigurationError(
                f"{variable} is not set: export the {platform} API token in that "
                "environment variable (it is never read from a file or a default)",
                option=variable,
                value=None,
            )
        tokens[platform] = token
    return tokens


def parse_clients(text: str) -> tuple[int, ...]:
    """Client ids from ``"1-16"``, ``"3,5,9"`` or a mix (``"1-4,9"``).

    Example:
        >>> parse_clients("1-3,7")
        (1, 2, 3, 7)
    """
    clients: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise ConfigurationError.for_option(
                "clients", text, "give ids like 1-16 or 3,5,9"
            ) from None
        if first < 1 or last < first:
            raise ConfigurationError.for_option("clients", text, "ids are >= 1, ranges ascending")
        clients.extend(range(first, last + 1))
    return _clients(clients)


def read_clients_file(path: Path) -> tuple[int, ...]:
    """Client ids from a file: one id per line; blank lines and ``#`` comments ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the clients file {str(path)!r}: {exc.strerror or exc}",
            option="clients_file",
            value=str(path),
        ) from None
    clients: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if not item.isdigit() or int(item) < 1:
            raise ConfigurationError(
                f"{path}:{number}: {item!r} is not a client id (an integer >= 1)",
                option="clients_file",
                value=str(path),
            )
        clients.append(int(item))
    return _clients(clients)
