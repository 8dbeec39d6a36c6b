"""Data-level SQL checks on SQLite and PostgreSQL: keys present per period, tables paired."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from resilient_pipeline import CheckSuite, ConfigurationError, checks
from resilient_pipeline.storage import Store, unit_of_work

DAYS = [dt.date(2026, 11, 27), dt.date(2026, 11, 28), dt.date(2026, 11, 29)]


def load(store: Store, ddl: str, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Create ``table`` and insert ``rows`` (dates as ISO text: both dialects read it)."""
    date_type = "DATE" if store.dialect == "postgres" else "TEXT"
    money = "NUMERIC(12, 2)" if store.dialect == "postgres" else "REAL"
    with unit_of_work(store) as tx:
        tx.execute(ddl.format(table=tx.table(table), date=date_type, money=money))
        if rows:
            marks = ", ".join([tx.placeholder] * len(rows[0]))
            tx.executemany(
                f"INSERT INTO {tx.table(table)} VALUES ({marks})",
                [tuple(v.isoformat() if isinstance(v, dt.date) else v for v in r) for r in rows],
            )


def as_text(value: Any) -> str:
    """A date as ISO text whichever driver returned it."""
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def test_missing_keys_names_each_missing_key_and_period(any_store: Store) -> None:
    """Every expected (client, day) pair without rows is named; others and other days ignored."""
    present = {(1, DAYS[0]), (2, DAYS[0]), (1, DAYS[1]), (3, DAYS[1]), (1, DAYS[2]), (2, DAYS[2])}
    rows = [(k, d, 1.0) for k, d in sorted(present)]
    rows += [(2, dt.date(2026, 11, 30), 1.0), (9, DAYS[1], 1.0)]  # outside the range / unexpected
    load(any_store, "CREATE TABLE {table} (client_id INT, date {date}, spend {money})", "kpi", rows)
    check = checks.missing_keys(table="kpi", keys=[1, 2, 3], periods=DAYS)
    result = CheckSuite(checks=[check], connection=any_store).run().results[0]
    expected = [(k, d) for d in DAYS for k in (1, 2, 3) if (k, d) not in present]
    assert [(3, DAYS[0]), (2, DAYS[1]), (3, DAYS[2])] == expected
    assert ("failed", expected) == (
        result.status,
        [(r["client_id"], r["date"]) for r in result.offending],
    )
    assert result.message.endswith(
        "3 of 9 expected (client_id, date) pair(s) have no rows: "
        "3/2026-11-27, 2/2026-11-28, 3/2026-11-29"
    )


def test_missing_keys_for_the_runs_day_and_text_keys(any_store: Store) -> None:
    """Without periods= the run's day is checked; keys compare as text ('7' matches 7)."""
    load(
        any_store,
        "CREATE TABLE {table} (account TEXT, day {date}, spend {money})",
        "ads",
        [("7", DAYS[1], 0.0), ("8", DAYS[0], 1.0)],
    )
    check = checks.missing_keys(table="ads", keys=[7, 8], key="account", period="day")
    for day, missing in ((DAYS[1], [8]), (DAYS[0], [7]), ("2026-11-28", [8])):
        result = check.run(connection=any_store, params={"day": day})
        assert missing == [r["account"] for r in result.offending]


def test_missing_keys_without_a_period_is_errored_not_passed(any_store: Store) -> None:
    """No period to check (no param, or no keys from the function) is an error, never a pass."""
    load(any_store, "CREATE TABLE {table} (client_id INT, date {date})", "kpi", [])
    suite = CheckSuite(
        checks=[
            checks.missing_keys(table="kpi", keys=[1]),
            checks.missing_keys(table="kpi", keys=lambda ctx: [], name="no_keys"),
        ],
        connection=any_store,
    )
    assert ["errored", "errored"] == [r.status for r in suite.run().results]
    result = suite.run({"day": DAYS[0]}).results[0]
    assert ("failed", [{"client_id": 1, "date": DAYS[0]}]) == (
        result.status,
        list(result.offending),
    )


def test_unpaired_rows_finds_spend_without_conversion_rows_and_the_reverse(
    any_store: Store,
) -> None:
    """Spend without a conversions row and conversions without spend; a zero row pairs."""
    day, other = DAYS[1], DAYS[2]
    load(
        any_store,
        "CREATE TABLE {table} (client_id INT, date {date}, spend {money})",
        "campaigns",
        [
            (1, day, 10.0),  # paired with a genuine zero
            (2, day, 5.0),  # no conversions row
            (3, day, 0.0),  # conversions without spend
            (5, day, 0.0),  # nothing spent, nothing converted: fine
            (6, day, 3.0),  # two campaign rows, one conversions row: fine
            (6, day, 4.0),
            (7, other, 9.0),  # another day: not this run
        ],
    )
    load(
        any_store,
        "CREATE TABLE {table} (client_id INT, date {date}, conversions INT)",
        "conversions",
        [(1, day, 0), (3, day, 2), (4, day, 1), (6, day, 1)],
    )
    check = checks.unpaired_rows(left="campaigns", right="conversions")
    result = check.run(connection=any_store, params={"day": day})
    assert "campaigns_conversions_paired" == result.name
    assert [
        (2, day.isoformat(), 5.0, None, "spend without a conversions row"),
        (3, day.isoformat(), 0.0, 2, "conversions without spend"),
        (4, day.isoformat(), None, 1, "conversions without spend"),
    ] == [
        (
            r["client_id"],
            as_text(r["date"]),
            None if r["spend"] is None else float(r["spend"]),
            r["conversions"],
            r["problem"],
        )
        for r in result.offending
    ]
    whole = checks.unpaired_rows(left="campaigns", right="conversions", period=None)
    everything = whole.run(connection=any_store)
    assert [2, 3, 4, 7] == [r["client_id"] for r in everything.offending]
    high = checks.unpaired_rows(left="campaigns", right="conversions", min_left=6)
    assert [3, 4] == [
        r["client_id"] for r in high.run(connection=any_store, params={"day": day}).offending
    ]


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: checks.missing_keys(table='x"; --\u202e', keys=[1]), "table"),
        (lambda: checks.missing_keys(table="kpi", keys=[]), "keys"),
        (lambda: checks.missing_keys(table="kpi", keys="abc"), "keys"),
        (lambda: checks.missing_keys(table="kpi", keys=[1], periods=[]), "periods"),
        (lambda: checks.missing_keys(table="kpi", keys=[1], key=""), "key"),
        (lambda: checks.missing_keys(table="kpi", keys=[1], schema=" s"), "schema"),
        (lambda: checks.unpaired_rows(left="a", right="b", on=()), "on"),
        (lambda: checks.unpaired_rows(left="a", right="b", on=("spend",)), "right_value"),
        (lambda: checks.unpaired_rows(left="a", right="b", min_left=float("nan")), "min_left"),
        (lambda: checks.unpaired_rows(left="a", right="", on=("k",)), "right"),
    ],
)
def test_bad_data_check_options_name_themselves(make: Any, option: str) -> None:
    """Bad identifiers and empty expectations fail at construction, naming the option."""
    with pytest.raises(ConfigurationError) as info:
        make()
    assert option == info.value.option
