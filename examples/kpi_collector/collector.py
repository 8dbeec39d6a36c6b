"""The daily ad-KPI collector: every primitive of resilient-pipeline in one job.

For each (client, day) partition of an ad platform it fetches campaigns *and*
conversions, validates them, and writes both tables in one unit of work with
the ledger row that says the partition succeeded. Then it checks the result
and alerts a person when anything is missing or illogical.

* fetching: ``retry_with_backoff`` (HTTP-aware, ``Retry-After``, deadline,
  "campaigns but no conversions" counts as a bad result and is retried), a
  ``CircuitBreaker`` per client, a shared ``RateLimiter`` and a per-request
  timeout;
* writing: ``idempotent_upsert`` into tables with UNIQUE keys, in the same
  transaction as the ledger row; invalid rows go to the quarantine table;
* watching: the ``PartitionLedger`` finds gaps, ``backfill`` fills them, and
  ``monitor`` runs completeness and consistency checks and sends alerts.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

from resilient_pipeline import (
    Alerter,
    Check,
    CheckReport,
    CircuitBreaker,
    CircuitOpenError,
    ConsecutiveFailures,
    Field,
    LoggingNotifier,
    OpenDuration,
    Partition,
    PartitionLedger,
    PostgresStore,
    RateLimiter,
    RetryPolicy,
    SQLiteStore,
    SQLQuarantine,
    Validator,
    abackfill,
    checks,
    idempotent_upsert,
    monitor,
    quarantine,
    replay,
    unit_of_work,
)
from resilient_pipeline.alerting import Route
from resilient_pipeline.breaker import HalfOpen
from resilient_pipeline.http import is_retryable_http_error
from resilient_pipeline.ledger import BackfillReport
from resilient_pipeline.storage import Store
from resilient_pipeline.validation import ReplayResult
from resilient_pipeline.validation.rules import compare, implies, matches, non_negative, where

SOURCE = "meta_ads"
CAMPAIGN_KEY = ("client_id", "date", "platform", "campaign_id")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS {campaigns} (
        client_id TEXT NOT NULL, date TEXT NOT NULL, platform TEXT NOT NULL,
        campaign_id TEXT NOT NULL, impressions INTEGER NOT NULL, clicks INTEGER NOT NULL,
        spend DOUBLE PRECISION NOT NULL,
        UNIQUE (client_id, date, platform, campaign_id))""",
    """CREATE TABLE IF NOT EXISTS {conversions} (
        client_id TEXT NOT NULL, date TEXT NOT NULL, platform TEXT NOT NULL,
        campaign_id TEXT NOT NULL, conversions INTEGER NOT NULL,
        revenue DOUBLE PRECISION NOT NULL,
        UNIQUE (client_id, date, platform, campaign_id))""",
]

_KEY_FIELDS = {
    "client_id": Field(str, matches(r"[0-9]{2}")),
    "date": Field(str, matches(r"\d{4}-\d{2}-\d{2}")),
    "platform": Field(str),
    "campaign_id": Field(str),
}
CAMPAIGN_RULES = Validator(
    fields={
        **_KEY_FIELDS,
        "impressions": Field(int, non_negative()),
        "clicks": Field(int, non_negative()),
        "spend": Field(float, non_negative()),
    },
    rules=[
        compare("clicks", "<=", "impressions"),
        implies(where("spend", ">", 0), where("impressions", ">", 0)),
    ],
    name="campaigns",
)
CONVERSION_RULES = Validator(
    fields={
        **_KEY_FIELDS,
        "conversions": Field(int, non_negative()),
        "revenue": Field(float, non_negative()),
    },
    rules=[implies(where("revenue", ">", 0), where("conversions", ">", 0))],
    name="conversions",
)


def open_store(db: str) -> SQLiteStore | PostgresStore:
    """A PostgreSQL store for a ``postgresql://`` DSN, else a SQLite file."""
    if db.startswith(("postgresql://", "postgres://")):
        return PostgresStore(db)
    return SQLiteStore(db)


def create_schema(store: Store) -> dict[str, str]:
    """Create the data tables (idempotent); their quoted, schema-qualified names."""
    with unit_of_work(store) as tx:
        # Identifiers only ever come from the store's one quoting helper.
        names = {t: tx.table(t) for t in ("campaigns", "conversions", "rp_quarantine")}
        for statement in SCHEMA:
            tx.execute(statement.format(**names))
    return names


def incomplete(rows: Sequence[Mapping[str, Any]]) -> bool:
    """The seed incident: campaigns came back but conversions did not."""
    kinds = {row["kind"] for row in rows}
    return "campaign" in kinds and "conversion" not in kinds


@attrs.define
class Collector:
    """One platform's daily KPI collection into ``store``.

    Example:
        >>> store = SQLiteStore(":memory:")
        >>> collector = Collector(store, base_url="http://127.0.0.1:9", token="t")
        >>> day = dt.date(2026, 11, 28)
        >>> [gap.key for gap in collector.ledger.gaps(SOURCE, ["01", "02"], day, day)]
        ['01', '02']
        >>> store.close()
    """

    store: Store
    base_url: str
    token: str = attrs.field(repr=False)
    concurrency: int = 4
    alerter: Alerter = attrs.field(factory=lambda: Alerter([Route(LoggingNotifier())]))
    tables: dict[str, str] = attrs.field(init=False)
    ledger: PartitionLedger = attrs.field(init=False)
    quarantine_sink: SQLQuarantine = attrs.field(init=False)
    breaker: CircuitBreaker = attrs.field(init=False)
    limiter: RateLimiter = attrs.field(init=False)
    retry: RetryPolicy = attrs.field(init=False)
    _client: httpx.AsyncClient | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.tables = create_schema(self.store)
        self.ledger = PartitionLedger(self.store)
        self.quarantine_sink = SQLQuarantine(self.store)
        # One breaker per client account: one broken account must not stop the others.
        self.breaker = CircuitBreaker(
            name=SOURCE,
            trip=ConsecutiveFailures(threshold=3),
            open_duration=OpenDuration(seconds=2.0),
            # Each backfill worker holds one partition, several may be one client's days:
            # each may probe a half-open circuit instead of being turned away.
            half_open=HalfOpen(permits=self.concurrency),
        )
        self.limiter = RateLimiter(rate=50, per=1.0, name=f"{SOURCE}-quota")
        self.retry = RetryPolicy(
            max_attempts=4,
            base_delay=0.2,
            max_delay=5.0,
            deadline=30.0,
            # An open circuit is waited out when its retry_after fits the deadline.
            retry_if=lambda e: isinstance(e, CircuitOpenError) or is_retryable_http_error(e),
            retry_on_result=incomplete,
            name=f"fetch {SOURCE}",
        )

    async def _get(self, client: httpx.AsyncClient, path: str, partition: Partition) -> list[Any]:
        await self.limiter.aacquire()
        response = await client.get(
            path, params={"client_id": partition.key, "date": partition.period}
        )
        response.raise_for_status()
        rows: list[Any] = response.json()["data"]
        return rows

    def _http(self) -> dict[str, Any]:
        """Options of every HTTP client talking to the API (the token stays out of logs)."""
        return {
            "base_url": self.base_url,
            "headers": {"Authorization": f"Bearer {self.token}"},
            "timeout": 10.0,
        }

    async def fetch(self, partition: Partition) -> list[dict[str, Any]]:
        """One attempt at a partition: campaigns and conversions, through the client's breaker."""
        client = self._client
        if client is None:
            raise RuntimeError("fetch() runs inside collect(), which opens the HTTP client")

        async def both() -> list[dict[str, Any]]:
            campaigns = await self._get(client, "/v1/campaigns", partition)
            conversions = await self._get(client, "/v1/conversions", partition)
            return [{"kind": "campaign", **r} for r in campaigns] + [
                {"kind": "conversion", **r} for r in conversions
            ]

        return await self.breaker.for_key(partition.key).acall(both)

    def write(self, tx: Any, partition: Partition, rows: Sequence[Mapping[str, Any]]) -> None:
        """Validate and write one partition's rows in the backfill's unit of work."""
        for kind, table, rules in (
            ("campaign", "campaigns", CAMPAIGN_RULES),
            ("conversion", "conversions", CONVERSION_RULES),
        ):
            mine = [{k: v for k, v in r.items() if k != "kind"} for r in rows if r["kind"] == kind]
            batch = rules.partition(mine)
            if batch.valid:
                tx.upsert(table, list(batch.valid), key=CAMPAIGN_KEY)
            if batch.quarantined:
                quarantine(self.quarantine_sink, batch, source=f"{SOURCE}/{table}")

    def replay_quarantine(self) -> ReplayResult:
        """Fetch quarantined campaign rows again and write those that are now valid."""

        with httpx.Client(**self._http()) as client:

            def refetch(row: Mapping[str, Any]) -> Mapping[str, Any]:
                params = {"client_id": row["client_id"], "date": row["date"]}
                response = client.get("/v1/campaigns", params=params)
                response.raise_for_status()
                data = response.json()["data"]
                fresh = [r for r in data if r["campaign_id"] == row["campaign_id"]]
                return fresh[0] if fresh else row

            return replay(
                self.quarantine_sink,
                CAMPAIGN_RULES,
                functools.partial(idempotent_upsert, self.store, "campaigns", key=CAMPAIGN_KEY),
                fix=refetch,
                source=f"{SOURCE}/campaigns",
            )

    async def collect(self, clients: Sequence[str], start: dt.date, end: dt.date) -> BackfillReport:
        """Fill every gap of ``clients`` x [start, end], over one pooled HTTP client."""
        async with httpx.AsyncClient(**self._http()) as client:
            self._client = client
            try:
                return await abackfill(
                    self.ledger,
                    source=SOURCE,
                    keys=clients,
                    start=start,
                    end=end,
                    fetch=self.fetch,
                    write=self.write,
                    concurrency=self.concurrency,
                    policies=(self.retry,),
                    progress=False,
                )
            finally:
                self._client = None

    def check(self, clients: Sequence[str], start: dt.date, end: dt.date) -> CheckReport:
        """Completeness and consistency checks over [start, end], alerting on failures."""
        t = self.tables
        kpi = checks.query_dataset(
            # identifiers from the quoting helper, values bound: no injection
            "SELECT c.client_id, c.date, c.platform, c.campaign_id, c.impressions, c.clicks,"  # noqa: S608
            f" c.spend, v.conversions FROM {t['campaigns']} c LEFT JOIN {t['conversions']} v"
            " ON v.client_id = c.client_id AND v.date = c.date AND v.platform = c.platform"
            " AND v.campaign_id = c.campaign_id WHERE c.date BETWEEN :start AND :end"
        )
        quarantined = Check.sql(
            "rows_quarantined",
            f"SELECT source, COUNT(*) AS row_count FROM {t['rp_quarantine']}"  # noqa: S608
            " WHERE source LIKE :pattern GROUP BY source",
            severity="warning",
            message="{count} table(s) have rows waiting in quarantine",
            action="Inspect rp_quarantine, fix the cause, then replay() the rows.",
        )
        suite = [
            self.ledger.completeness_check(SOURCE, clients, start=start, end=end),
            checks.clicks_exceed_impressions(),
            checks.spend_without_conversions(min_spend=1.0),
            quarantined,
        ]
        return monitor(
            suite,
            params={"start": start.isoformat(), "end": end.isoformat(), "pattern": f"{SOURCE}/%"},
            alerter=self.alerter,
            connection=self.store,
            datasets={"rows": kpi},
        )


def token_from_env() -> str:
    """The API token: from ``ADS_API_TOKEN``, never logged."""
    return os.environ.get("ADS_API_TOKEN", "demo-token-0123456789")
