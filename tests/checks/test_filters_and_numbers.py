"""Data checks filtered by column values (one platform of a shared table), and checks that
mix PostgreSQL's Decimals with ints and floats."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import CheckSuite, ConfigurationError, checks
from resilient_pipeline.exceptions import CheckError
from resilient_pipeline.storage import Store, unit_of_work

DAYS = [dt.date(2026, 11, 27), dt.date(2026, 11, 28)]


def load(store: Store, ddl: str, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Create ``table`` ({date}: DATE or TEXT) and insert ``rows``, dates as ISO text.

    sqlite3 cannot bind a Decimal: it goes in as text, which a NUMERIC column reads as a number.
    """
    date_type = "DATE" if store.dialect == "postgres" else "TEXT"

    def bound(value: Any) -> Any:
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value) if isinstance(value, Decimal) and store.dialect == "sqlite" else value

    with unit_of_work(store) as tx:
        tx.execute(ddl.format(table=tx.table(table), date=date_type))
        marks = ", ".join([tx.placeholder] * len(rows[0]))
        tx.executemany(
            f"INSERT INTO {tx.table(table)} VALUES ({marks})",
            [tuple(bound(v) for v in r) for r in rows],
        )


def as_text(value: Any) -> str:
    """A date as ISO text whichever driver returned it."""
    return value.isoformat() if isinstance(value, dt.date) else str(value)


# ---------------------------------------------------------------- where=
SHARED = "CREATE TABLE {table} (platform TEXT, client_id INT, date {date}, spend REAL)"


def test_missing_keys_where_reads_one_platform_of_a_shared_table(any_store: Store) -> None:
    """where= keeps the other platform's rows from hiding this platform's missing pairs."""
    rows = [("meta", k, d, 1.0) for k in (1, 2, 3) for d in DAYS]  # meta: everything
    google = {(1, DAYS[0]), (3, DAYS[0]), (1, DAYS[1])}
    rows += [("google", k, d, 1.0) for k, d in sorted(google)]
    load(any_store, SHARED, "kpi", rows)
    expected = {
        platform: [
            (k, d)
            for d in DAYS
            for k in (1, 2, 3)
            if (platform, k, d) not in {(r[0], r[1], r[2]) for r in rows}
        ]
        for platform in ("meta", "google")
    }
    assert {"meta": [], "google": [(2, DAYS[0]), (2, DAYS[1]), (3, DAYS[1])]} == expected
    for platform, missing in expected.items():
        check = checks.missing_keys(
            table="kpi", keys=[1, 2, 3], periods=DAYS, where={"platform": platform}
        )
        result = CheckSuite(checks=[check], connection=any_store).run().results[0]
        assert ("failed" if missing else "passed", missing) == (
            result.status,
            [(r["client_id"], dt.date.fromisoformat(as_text(r["date"]))) for r in result.offending],
        )
    # Without the filter the shared table looks complete: the gap the view used to cover.
    unfiltered = checks.missing_keys(table="kpi", keys=[1, 2, 3], periods=DAYS)
    assert "passed" == CheckSuite(checks=[unfiltered], connection=any_store).run().results[0].status


def test_unpaired_rows_where_filters_both_tables(any_store: Store) -> None:
    """where= applies to both sides: meta's conversions never pair google's spend."""
    campaigns = [
        ("meta", 1, DAYS[0], 10.0),
        ("google", 1, DAYS[0], 20.0),  # google spend, conversions only on meta
        ("google", 2, DAYS[0], 5.0),
    ]
    conversions = [("meta", 1, DAYS[0], 3), ("google", 2, DAYS[0], 1), ("meta", 3, DAYS[0], 2)]
    load(
        any_store,
        "CREATE TABLE {table} (platform TEXT, client_id INT, date {date}, spend REAL)",
        "campaigns",
        campaigns,
    )
    load(
        any_store,
        "CREATE TABLE {table} (platform TEXT, client_id INT, date {date}, conversions INT)",
        "conversions",
        conversions,
    )
    found = {}
    for platform in ("meta", "google"):
        check = checks.unpaired_rows(
            left="campaigns", right="conversions", periods=DAYS[:1], where={"platform": platform}
        )
        result = CheckSuite(checks=[check], connection=any_store).run().results[0]
        found[platform] = [(r["client_id"], r["problem"]) for r in result.offending]
    assert {
        "meta": [(3, "conversions without spend")],
        "google": [(1, "spend without a conversions row")],
    } == found


def test_where_values_are_bound_never_sql(any_store: Store) -> None:
    """A quote-laden value matches only itself: it is a bound value, not SQL text."""
    hostile = "meta' OR '1'='1"
    rows = [("meta", 1, DAYS[0], 1.0), (hostile, 2, DAYS[0], 1.0)]
    load(any_store, SHARED, "kpi", rows)
    check = checks.missing_keys(
        table="kpi", keys=[1, 2], periods=DAYS[:1], where={"platform": hostile}
    )
    result = CheckSuite(checks=[check], connection=any_store).run().results[0]
    assert [1] == [r["client_id"] for r in result.offending]


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ({"": "x"}, "where"),  # not an identifier
        ({"bad\u202ename": "x"}, "where"),  # a bidi control character
        ({1: "x"}, "where"),
        ({"platform": None}, "where"),  # = NULL matches nothing: refused
        ({"platform": ["a", "b"]}, "where"),
        ({"platform": True}, "where"),
        ({"platform": float("nan")}, "where"),
        ({"client_id": 1}, "where"),  # the compared key: it would hide missing keys
        ("platform = 'meta'", "where"),  # raw SQL is never accepted
    ],
)
def test_where_rejects_bad_filters(where: Any, named: str) -> None:
    """Bad filters fail at construction with a ConfigurationError naming where=."""
    with pytest.raises(ConfigurationError) as info:
        checks.missing_keys(table="kpi", keys=[1], where=where)
    assert named == info.value.option


def test_unpaired_rows_where_rejects_a_compared_column() -> None:
    """Filtering unpaired_rows on a value column would hide what it compares."""
    with pytest.raises(ConfigurationError, match="spend"):
        checks.unpaired_rows(left="a", right="b", where={"spend": 0})


# ---------------------------------------------------------------- numbers
def test_sums_agree_over_numeric_bigint_and_real_columns(any_store: Store) -> None:
    """Daily rows vs SQL monthly sums: NUMERIC/BIGINT sums are exact Decimals, REAL floats."""
    numeric = "NUMERIC(14, 2)" if any_store.dialect == "postgres" else "NUMERIC"
    real = "REAL"
    daily = [
        (1, "2026-11", 1_000_001, Decimal("10.25"), 0.5),
        (1, "2026-11", 2_000_002, Decimal("0.10"), 0.25),
        (2, "2026-11", 7, Decimal("3.00"), 1.0),
    ]
    ddl = f"CREATE TABLE {{table}} (client_id INT, month TEXT, micros BIGINT, cost {numeric}, "
    load(any_store, ddl + f"ratio {real})", "daily", daily)
    # The summary is off by one micro and five cents for client 2 only.
    load(
        any_store,
        ddl + f"ratio {real})",
        "monthly",
        [
            (1, "2026-11", 3_000_003, Decimal("10.35"), 0.75),
            (2, "2026-11", 8, Decimal("3.05"), 1.0),
        ],
    )
    with unit_of_work(any_store) as tx:
        d, m = tx.table("daily"), tx.table("monthly")
    datasets = {
        "detail": checks.query_dataset(f"SELECT * FROM {d}"),
        # SUM of a BIGINT or NUMERIC is a numeric on PostgreSQL: a Decimal in Python.
        "summary": checks.query_dataset(
            f"SELECT client_id, month, SUM(micros) AS micros, SUM(cost) AS cost, "
            f"SUM(ratio) AS ratio FROM {m} GROUP BY client_id, month"
        ),
    }
    suite = CheckSuite(
        checks=[
            checks.sums_agree(
                column=column,
                detail_key=("client_id", "month"),
                summary_key=("client_id", "month"),
            )
            for column in ("micros", "cost", "ratio")
        ],
        connection=any_store,
        datasets=datasets,
    )
    report = suite.run()
    assert [] == [(r.name, r.message) for r in report.results if r.status == "errored"]
    got = {
        r.name: [(row["group"], row["difference"]) for row in r.offending] for r in report.results
    }
    micros, cost, ratio = got["micros_sums_agree"], got["cost_sums_agree"], got["ratio_sums_agree"]
    assert ([((2, "2026-11"), -1)], [], [(2, "2026-11")]) == (
        micros,
        ratio,
        [group for group, _ in cost],
    )
    assert not isinstance(micros[0][1], float)  # an exact difference, not a float's
    if any_store.dialect == "postgres":  # NUMERIC stays exact end to end
        assert Decimal("-0.05") == cost[0][1]
    else:  # SQLite's NUMERIC holds 3.05 as a REAL: a float difference
        assert -0.05 == pytest.approx(cost[0][1], abs=1e-9)


def test_sums_agree_mixes_decimal_and_float_with_a_tolerance() -> None:
    """A Decimal side and a float side compare as floats, within the tolerance given."""
    detail: list[dict[str, Any]] = [
        {"g": 1, "v": Decimal("1.10")},
        {"g": 1, "v": 2},
        {"g": 2, "v": Decimal("5")},
    ]
    summary: list[dict[str, Any]] = [{"g": 1, "v": 3.1}, {"g": 2, "v": 5.5}]
    check = checks.sums_agree(column="v", detail_key=("g",), summary_key=("g",), tolerance=0.4)
    result = check.run(datasets={"detail": detail, "summary": summary})
    assert ("failed", [((2,), 5.0, 5.5, -0.5)]) == (
        result.status,
        [(r["group"], r["detail"], r["summary"], r["difference"]) for r in result.offending],
    )


@given(
    detail=st.lists(st.decimals(min_value=-(10**6), max_value=10**6, places=2), max_size=8),
    summary=st.lists(
        st.one_of(st.integers(-(10**6), 10**6), st.decimals(-(10**6), 10**6, places=2)),
        max_size=8,
    ),
)
def test_exact_sums_agree_only_when_equal(detail: list[Decimal], summary: list[Any]) -> None:
    """Ints and Decimals: no default tolerance, the exact difference is reported."""
    check = checks.sums_agree(column="v", detail_key=lambda r: "all", summary_key=lambda r: "all")
    result = check.run(
        datasets={
            "detail": [{"v": v} for v in detail] or [{"v": 0}],
            "summary": [{"v": v} for v in summary] or [{"v": 0}],
        }
    )
    truth = sum(detail, Decimal(0)) - sum(summary, Decimal(0))
    assert ([] if truth == 0 else [truth]) == [r["difference"] for r in result.offending]


def test_sums_agree_names_a_non_numeric_value() -> None:
    """A text in the column errors the check, naming the column (not a bare TypeError)."""
    check = checks.sums_agree(column="v", detail_key=("g",), summary_key=("g",))
    with pytest.raises(CheckError, match="column 'v' holds a str, not a number"):
        check.run(datasets={"detail": [{"g": 1, "v": "12"}], "summary": [{"g": 1, "v": 12}]})


@pytest.mark.parametrize("tolerance", [-1, float("nan"), Decimal("NaN"), float("inf"), "0", True])
def test_sums_agree_rejects_a_bad_tolerance(tolerance: Any) -> None:
    """A negative, non-finite or non-number tolerance is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError) as info:
        checks.sums_agree(column="v", detail_key=("g",), summary_key=("g",), tolerance=tolerance)
    assert "tolerance" == info.value.option


def test_rate_out_of_bounds_over_numeric_and_real(any_store: Store) -> None:
    """NUMERIC conversions over REAL clicks (Decimal / float) give a float rate, not an error."""
    numeric = "NUMERIC(10, 2)" if any_store.dialect == "postgres" else "NUMERIC"
    rows = [(1, Decimal("3.00"), 4.0), (2, Decimal("1.00"), 8.0), (3, Decimal("2.00"), 0.0)]
    load(
        any_store, f"CREATE TABLE {{table}} (client_id INT, conv {numeric}, clicks REAL)", "r", rows
    )
    with unit_of_work(any_store) as tx:
        table = tx.table("r")
    check = checks.rate_out_of_bounds(numerator="conv", denominator="clicks", maximum=0.5)
    suite = CheckSuite(
        checks=[check],
        connection=any_store,
        datasets={"rows": checks.query_dataset(f"SELECT * FROM {table} ORDER BY client_id")},
    )
    result = suite.run().results[0]
    assert ("failed", [(1, 0.75)]) == (
        result.status,
        [(r["client_id"], r["rate"]) for r in result.offending],
    )


def test_rate_out_of_bounds_mixes_decimal_and_float_rows() -> None:
    """Decimal over float and float over Decimal are rates; Decimal over int stays exact."""
    rows: list[dict[str, Any]] = [
        {"client_id": 1, "conversions": Decimal("3"), "clicks": 4.0},
        {"client_id": 2, "conversions": 0.5, "clicks": Decimal("10")},
        {"client_id": 3, "conversions": Decimal("11"), "clicks": 100},
        {"client_id": 4, "conversions": Decimal("1"), "clicks": 10},
    ]
    result = checks.rate_out_of_bounds(maximum=0.1).run(datasets={"rows": rows})
    assert [(1, 0.75), (3, Decimal("0.11"))] == [
        (r["client_id"], r["rate"]) for r in result.offending
    ]


def test_row_count_anomaly_takes_a_decimal_k() -> None:
    """k=Decimal("3") works (it met the float MAD in k * mad before)."""
    rows = [{"date": f"2026-11-{d:02d}"} for d in range(1, 9) for _ in range(10)]
    rows += [{"date": "2026-11-09"}]
    result = checks.row_count_anomaly(k=Decimal("3")).run(datasets={"rows": rows})  # type: ignore[arg-type]
    assert ("failed", [("2026-11-09", 1)]) == (
        result.status,
        [(r["date"], r["rows"]) for r in result.offending],
    )
