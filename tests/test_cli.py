"""The command-line runner and monitor(): exit codes a scheduler can act on, and alerts."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from resilient_pipeline import (
    Alerter,
    CheckSuite,
    Partition,
    PartitionLedger,
    PostgresStore,
    SQLiteStore,
    checks,
    monitor,
    unit_of_work,
)
from resilient_pipeline._cli import main
from resilient_pipeline.checks import CheckExitCode, amonitor
from resilient_pipeline.exceptions import AlertDeliveryError
from resilient_pipeline.storage import Store
from resilient_pipeline.testing import FakeClock, MemoryNotifier

SUITES = """
from resilient_pipeline import Check, CheckSuite, checks

rows = [{"client_id": 1, "clicks": 5, "impressions": 9, "spend": 3.0, "conversions": 0}]

def passing():
    return CheckSuite(checks=[checks.clicks_exceed_impressions()], datasets={"rows": rows})

warning = CheckSuite(checks=[checks.spend_without_conversions()], datasets={"rows": rows})
error = CheckSuite(checks=[checks.completeness(expected=[1, 2])], datasets={"rows": rows})
broken = CheckSuite(checks=[Check.rows("crash", lambda rows: 1 / 0)], datasets={"rows": rows})
day = CheckSuite(checks=[Check.rows("day", lambda rows: [])])

def explode():
    raise RuntimeError("cannot connect")
"""


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    """A file of suites, one per outcome."""
    path = tmp_path / "suites.py"
    path.write_text(SUITES)
    return path


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("passing", CheckExitCode.PASSED),
        ("warning", CheckExitCode.WARNINGS),
        ("error", CheckExitCode.ERRORS),
        ("broken", CheckExitCode.NOT_RUN),
        ("explode", CheckExitCode.NOT_RUN),
        ("no_such_suite", CheckExitCode.NOT_RUN),
    ],
)
def test_exit_codes(suites: Path, target: str, code: CheckExitCode) -> None:
    """Each outcome has its own exit code; nothing that failed exits 0."""
    assert code == main(["check", f"{suites}:{target}"], out=io.StringIO())


def test_json_output(suites: Path) -> None:
    """--format json prints the report with the offending keys."""
    out = io.StringIO()
    main(["check", f"{suites}:error", "--format", "json", "-p", "day=2026-11-28"], out=out)
    report = json.loads(out.getvalue())
    assert {"day": "2026-11-28"} == report["params"]
    assert [{"client_id": 2}] == report["results"][0]["offending"]


def test_bad_param_is_a_usage_error(suites: Path) -> None:
    """A --param without '=' exits 64, never 0."""
    assert CheckExitCode.USAGE == main(["check", f"{suites}:day", "-p", "oops"], out=io.StringIO())


def test_module_entry_point_exits_with_the_code(suites: Path) -> None:
    """``python -m resilient_pipeline check`` exits 2 for a failed error-level check."""
    proc = subprocess.run(
        [sys.executable, "-m", "resilient_pipeline", "check", f"{suites}:error"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == proc.returncode
    assert "missing 2" in proc.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "resilient_pipeline", "nonsense"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert 64 == usage.returncode


ROWS = [{"client_id": 1, "clicks": 9, "impressions": 3}]


def test_monitor_alerts_once_per_failure_and_period() -> None:
    """Two runs for the same day alert once; a new day alerts again."""
    pager = MemoryNotifier()
    alerter = Alerter([pager])
    suite = CheckSuite(
        checks=[checks.clicks_exceed_impressions(), checks.completeness(expected=[1])],
        name="daily",
    )
    for day in ("2026-11-28", "2026-11-28", "2026-11-29"):
        report = monitor(suite, params={"day": day}, alerter=alerter, datasets={"rows": ROWS})
        assert CheckExitCode.ERRORS == report.exit_code
    assert [
        "daily/clicks_exceed_impressions/day=2026-11-28",
        "daily/clicks_exceed_impressions/day=2026-11-29",
    ] == [a.key for a in pager.alerts]


def test_monitor_success_notice_and_failed_delivery() -> None:
    """notify_success sends an info alert; a delivery failure is raised, not swallowed."""
    pager = MemoryNotifier()
    monitor(
        [checks.completeness(expected=[1])],
        alerter=pager,
        datasets={"rows": ROWS},
        notify_success=True,
    )
    assert ["info"] == [a.severity for a in pager.alerts]
    pager.fail_next(1)
    with pytest.raises(AlertDeliveryError):
        monitor([checks.clicks_exceed_impressions()], alerter=pager, datasets={"rows": ROWS})


@pytest.mark.anyio
async def test_amonitor() -> None:
    """amonitor runs under asyncio and trio and alerts."""
    pager = MemoryNotifier()
    report = await amonitor(
        [checks.clicks_exceed_impressions()], alerter=pager, datasets={"rows": ROWS}
    )
    assert (False, 1) == (report.passed, len(pager.alerts))
    await anyio.lowlevel.checkpoint()


def test_ledger_completeness_check_in_monitor(tmp_path: Path) -> None:
    """monitor() with the ledger's completeness check alerts with the missing partitions."""
    from resilient_pipeline import PartitionLedger, SQLiteStore

    store = SQLiteStore(tmp_path / "ledger.db")
    pager = MemoryNotifier()
    check = PartitionLedger(store).completeness_check("meta", [1, 2])
    report = monitor([check], params={"day": "2026-11-28"}, alerter=pager)
    assert CheckExitCode.ERRORS == report.exit_code
    assert [{"source": "meta", "key": "1", "period": "2026-11-28"}] == pager.alerts[0].details[
        "offending"
    ][:1]
    store.close()


# -- the ledger commands ------------------------------------------------------------------------

NOW = 1_795_000_000.0  # 2026-11-18 UTC: the ledger's clock and the command's "now"
DAY1, DAY2 = "2026-11-27", "2026-11-28"
WORKER_A, WORKER_B = "collector-a:101:aaaa", "collector-b:202:bbbb"
TOKEN_URL = "https://etl:Sup3rS3cret@graph.example/v19/insights"


def build_ledger(store: Store, clock: FakeClock) -> None:
    """meta_ads, keys 01-04 x two days: every status, two leases (one live, one dead)."""
    ledger = PartitionLedger(store, clock=clock, max_attempts=2, worker_id=WORKER_A)
    other = PartitionLedger(store, clock=clock, max_attempts=2, worker_id=WORKER_B)
    ledger.plan("meta_ads", ["01", "02", "03", "04"], periods=[DAY1, DAY2])
    ledger.plan("google_ads", ["01"], periods=[DAY2])
    with unit_of_work(store) as tx:
        ledger.succeed(tx, Partition("meta_ads", "01", DAY1), rows=[])
        ledger.succeed(tx, Partition("meta_ads", "01", DAY2), rows=[])
    for _ in range(2):
        ledger.start(Partition("meta_ads", "02", DAY2))
        ledger.fail(Partition("meta_ads", "02", DAY2), ConnectionError(f"503 from {TOKEN_URL}"))
    ledger.start(Partition("meta_ads", "03", DAY2))
    ledger.fail(Partition("meta_ads", "03", DAY2), "HTTPStatusError: 429 Too Many Requests")
    other.start(Partition("meta_ads", "04", DAY1))  # worker B dies holding it
    clock.advance(200)
    ledger.start(Partition("meta_ads", "04", DAY2))  # worker A is on it now


@pytest.fixture
def clock() -> FakeClock:
    """The clock the ledger was written with and the command reads."""
    return FakeClock(wall_start=NOW)


@pytest.fixture
def db(tmp_path: Path, clock: FakeClock) -> Path:
    """A SQLite ledger built by build_ledger."""
    path = tmp_path / "kpi.sqlite3"
    store = SQLiteStore(path)
    build_ledger(store, clock)
    store.close()
    return path


def run(argv: list[str], clock: FakeClock | None = None) -> tuple[int, str, str]:
    """main() in process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out=out, err=err, clock=clock)
    return code, out.getvalue(), err.getvalue()


def statuses(store: Store) -> dict[tuple[str, str], tuple[str, int]]:
    """(key, period) -> (status, attempts) of meta_ads, straight from the table."""
    with unit_of_work(store) as tx:
        rows = tx.fetchall(
            f"SELECT key, period, status, attempts FROM {tx.table('rp_partitions')} "
            f"WHERE source = {tx.placeholder}",
            ("meta_ads",),
        )
    return {(k, p): (s, a) for k, p, s, a in rows}


GAPS = ["gaps", "--source", "meta_ads", "--start", DAY1, "--end", DAY2]


def test_gaps_json_has_every_field(db: Path, clock: FakeClock) -> None:
    """--json: status, attempts, masked error with class and time, lease owner and expiry."""
    code, out, _ = run([*GAPS, "--db", str(db), "--json"], clock)
    assert CheckExitCode.ERRORS == code
    rows = {(r["key"], r["period"]): r for r in json.loads(out)}
    # keys default to the ledger's planned keys: 01-04 (01 succeeded on both days)
    assert [
        ("02", DAY1),
        ("03", DAY1),
        ("04", DAY1),
        ("02", DAY2),
        ("03", DAY2),
        ("04", DAY2),
    ] == [(r["key"], r["period"]) for r in json.loads(out)]
    exhausted = rows[("02", DAY2)]
    assert ("exhausted", 2, "ConnectionError") == (
        exhausted["status"],
        exhausted["attempts"],
        exhausted["error_class"],
    )
    assert "Sup3rS3cret" not in out
    assert "etl:***@graph.example" in exhausted["last_error"]
    assert "2026-11-18 11:06:40Z" == exhausted["error_at"]  # NOW, before the clock moved
    dead, live = rows[("04", DAY1)], rows[("04", DAY2)]
    assert (WORKER_B, -170.0) == (dead["lease_owner"], dead["lease_expires_in"])
    assert (WORKER_A, 30.0) == (live["lease_owner"], live["lease_expires_in"])
    assert ("pending", None, None) == (
        rows[("02", DAY1)]["status"],
        rows[("02", DAY1)]["last_error"],
        rows[("02", DAY1)]["lease_owner"],
    )


def test_gaps_text_tells_a_dead_worker_from_a_live_one(db: Path, clock: FakeClock) -> None:
    """Text: counts by status, each lease relative to now, the error, and the next command."""
    code, out, _ = run([*GAPS, "--db", str(db), "--keys", "02,04"], clock)
    assert CheckExitCode.ERRORS == code
    lines = out.splitlines()
    assert (
        f"meta_ads: 4 of 4 partition(s) not succeeded in {DAY1}..{DAY2} "
        "(1 exhausted, 1 pending, 2 running)" == lines[0]
    )
    assert (
        f"      lease: held by {WORKER_B}, expired 3 min ago (worker gone: claimable again)"
        in lines
    )
    assert f"      lease: held by {WORKER_A}, expires in 30 s" in lines
    assert (
        "      last error [ConnectionError] at 2026-11-18 11:06:40Z (3 min ago): "
        "ConnectionError: 503 from https://etl:***@graph.example/v19/insights" in lines
    )
    retry = (
        f"    python -m resilient_pipeline retry --db {db} --source meta_ads --keys 02 "
        f"--start {DAY2} --end {DAY2}"
    )
    assert retry in lines
    assert "Sup3rS3cret" not in out


def test_gaps_truncates_long_errors_in_text_only(tmp_path: Path) -> None:
    """A 5,000-character error is cut in the table and whole in --json."""
    path = tmp_path / "long.db"
    store = SQLiteStore(path)
    ledger = PartitionLedger(store)
    partition = Partition("s", "k", DAY1)
    ledger.start(partition)
    ledger.fail(partition, "x" * 5000)
    store.close()
    argv = ["gaps", "--db", str(path), "--source", "s", "--start", DAY1, "--end", DAY1]
    _, text, _ = run(argv)
    _, as_json, _ = run([*argv, "--json"])
    [error_line] = [line for line in text.splitlines() if "last error" in line]
    assert error_line.endswith("x" * 100 + "...")
    assert len(error_line) < 300
    assert "x" * 5000 == json.loads(as_json)[0]["last_error"]


def test_gaps_all_succeeded_exits_0(db: Path) -> None:
    """No gap: one line, exit 0."""
    code, out, _ = run([*GAPS, "--db", str(db), "--keys", "01"])
    assert (
        CheckExitCode.PASSED,
        f"meta_ads: all 2 partition(s) succeeded in {DAY1}..{DAY2}\n",
    ) == (
        code,
        out,
    )


def test_gaps_on_a_mistyped_path_creates_nothing(tmp_path: Path) -> None:
    """A missing SQLite file: "no ledger here", exit 3, and the file is not created."""
    path = tmp_path / "kpi.sqlite"  # the real one is kpi.sqlite3
    code, out, err = run([*GAPS, "--db", str(path)])
    assert (CheckExitCode.NOT_RUN, "") == (code, out)
    assert f"no ledger here: {path} does not exist" in err
    assert [] == list(tmp_path.iterdir())
    code, _, err = run([*GAPS, "--db", str(tmp_path)])
    assert (CheckExitCode.NOT_RUN, []) == (code, list(tmp_path.iterdir()))
    assert "is a directory" in err


def test_gaps_on_a_database_without_a_ledger_creates_no_table(tmp_path: Path) -> None:
    """A database without the ledger table: "no ledger here", exit 3, no table made."""
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE campaigns (x INTEGER)")
    before = path.read_bytes()
    code, _, err = run([*GAPS, "--db", str(path)])
    assert CheckExitCode.NOT_RUN == code
    assert "no ledger here" in err
    assert "no table 'rp_partitions' (tables: campaigns)" in err
    assert before == path.read_bytes()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        assert [("campaigns",)] == conn.execute("SELECT name FROM sqlite_master").fetchall()


def test_gaps_on_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """Not an SQLite file: exit 3 with SQLite's reason, the file unchanged."""
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)
    code, _, err = run([*GAPS, "--db", str(path)])
    assert CheckExitCode.NOT_RUN == code
    assert "file is not a database" in err
    assert "not a database\n" * 100 == path.read_text()


def test_read_commands_run_no_ddl(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gaps runs only queries: no CREATE (not even IF NOT EXISTS), ALTER, INSERT or PRAGMA."""
    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    assert CheckExitCode.ERRORS == run([*GAPS, "--db", str(db)])[0]
    assert statements
    writes = ("CREATE", "ALTER", "INSERT", "UPDATE", "DELETE", "DROP", "PRAGMA JOURNAL_MODE")
    assert [] == [s for s in statements if s.lstrip().upper().startswith(writes)]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", DAY2, "--end", DAY1], f"--start {DAY2} is after --end {DAY1}"),
        (["--keys", ""], "--keys '' names no key (an unset shell variable?)"),
        (["--keys", " , "], "--keys ' , ' names no key"),
        (["--source", "meta_adz"], "unknown source 'meta_adz'"),
        (["--table", "rp_partitions\x00"], "--table"),
        (["--schema", "analytics"], "--schema applies to PostgreSQL only"),
    ],
)
def test_gaps_usage_errors_exit_64(db: Path, extra: list[str], message: str) -> None:
    """Reversed range, empty --keys, unknown source, bad table: a message and exit 64."""
    code, out, err = run([*GAPS, "--db", str(db), *extra])
    assert (CheckExitCode.USAGE, "") == (code, out)
    assert message in err


def test_unknown_source_lists_the_known_ones(db: Path) -> None:
    """The message names the sources the ledger does have."""
    _, _, err = run([*GAPS, "--db", str(db), "--source", "meta"])
    assert "(sources: google_ads, meta_ads)" in err


def test_bad_dates_and_missing_options_exit_64(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse's own errors exit 64 too, and say which value was wrong."""
    for argv in (
        ["gaps", "--db", str(db), "--source", "meta_ads", "--start", "2026-13-01", "--end", DAY1],
        ["gaps", "--db", str(db), "--start", DAY1, "--end", DAY1],
        ["retry", "--db", str(db), "--keys", "02"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert CheckExitCode.USAGE == exit_info.value.code
    err = capsys.readouterr().err
    assert "'2026-13-01' is not a date (YYYY-MM-DD)" in err
    assert "the following arguments are required: --source" in err


def test_dsn_password_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """An unreachable DSN: exit 3, the error names the host but not the password."""
    dsn = "postgresql://etl:Sup3rS3cret@127.0.0.1:9/kpi"
    code, _, err = run([*GAPS, "--db", dsn])
    assert CheckExitCode.NOT_RUN == code
    assert "Sup3rS3cret" not in err
    assert "127.0.0.1" in err
    with pytest.raises(SystemExit):
        main(["gaps", "--db", dsn, "--start", "nope"])
    assert "Sup3rS3cret" not in capsys.readouterr().err


def test_retry_dry_run_changes_nothing(db: Path, clock: FakeClock) -> None:
    """--dry-run lists what would change and leaves every row as it was."""
    store = SQLiteStore(db)
    before = statuses(store)
    code, out, _ = run(["retry", "--db", str(db), "--source", "meta_ads", "--dry-run"], clock)
    assert CheckExitCode.PASSED == code
    assert before == statuses(store)
    assert out.startswith(
        "meta_ads: would set 2 partition(s) back to pending (were 1 exhausted, 1 failed)"
        " - dry run, nothing changed:"
    )
    assert f"    python -m resilient_pipeline retry --db {db} --source meta_ads" in out.splitlines()
    store.close()


def test_retry_sets_failed_and_exhausted_back_to_pending(db: Path, clock: FakeClock) -> None:
    """retry: failed and exhausted -> pending with 0 attempts; nothing else moves."""
    store = SQLiteStore(db)
    before = statuses(store)
    code, out, _ = run(["retry", "--db", str(db), "--source", "meta_ads"], clock)
    assert CheckExitCode.PASSED == code
    expected = {
        **before,
        ("02", DAY2): ("pending", 0),
        ("03", DAY2): ("pending", 0),
    }
    assert expected == statuses(store)
    assert "2 running partition(s) left alone" in out
    assert (
        f"    python -m resilient_pipeline gaps --db {db} --source meta_ads "
        f"--start {DAY2} --end {DAY2}" in out.splitlines()
    )
    # the error is kept for history, and gaps shows it
    [record] = [
        r for r in PartitionLedger(store).records("meta_ads") if r.key == "02" and r.period == DAY2
    ]
    assert "ConnectionError: 503" in (record.last_error or "")
    store.close()
    code, out, _ = run(["retry", "--db", str(db), "--source", "meta_ads"], clock)
    assert CheckExitCode.WARNINGS == code
    assert out.startswith("meta_ads: nothing to retry: no exhausted or failed partition")


def test_retry_by_keys_and_range(db: Path, clock: FakeClock) -> None:
    """--keys and --start/--end select exactly those partitions (the alert's command)."""
    store = SQLiteStore(db)
    before = statuses(store)
    argv = ["retry", "--db", str(db), "--source", "meta_ads", "--keys", "03"]
    assert CheckExitCode.WARNINGS == run([*argv, "--start", DAY1, "--end", DAY1], clock)[0]
    assert before == statuses(store)
    code, out, _ = run([*argv, "--start", DAY2, "--end", DAY2, "--json"], clock)
    assert CheckExitCode.PASSED == code
    assert [("03", DAY2, "failed")] == [
        (r["key"], r["period"], r["status"]) for r in json.loads(out)["changed"]
    ]
    assert {**before, ("03", DAY2): ("pending", 0)} == statuses(store)
    store.close()


def test_reset_by_status(db: Path, clock: FakeClock) -> None:
    """reset --status succeeded collects succeeded partitions again; the default is exhausted."""
    store = SQLiteStore(db)
    before = statuses(store)
    argv = ["reset", "--db", str(db), "--source", "meta_ads"]
    assert CheckExitCode.PASSED == run(argv, clock)[0]
    assert {**before, ("02", DAY2): ("pending", 0)} == statuses(store)
    assert CheckExitCode.PASSED == run([*argv, "--status", "succeeded", "--end", DAY1], clock)[0]
    assert {**before, ("02", DAY2): ("pending", 0), ("01", DAY1): ("pending", 0)} == statuses(store)
    store.close()


def test_write_commands_on_a_mistyped_path_create_nothing(tmp_path: Path) -> None:
    """retry/reset on a missing file: exit 3 and no file, even without --dry-run."""
    for command in ("retry", "reset"):
        code, _, err = run([command, "--db", str(tmp_path / "x.db"), "--source", "meta_ads"])
        assert CheckExitCode.NOT_RUN == code
        assert "no ledger here" in err
    assert [] == list(tmp_path.iterdir())


def test_write_commands_validate_like_gaps(db: Path) -> None:
    """retry with a reversed range, empty keys or an unknown source: 64, nothing changed."""
    store = SQLiteStore(db)
    before = statuses(store)
    base = ["retry", "--db", str(db), "--source", "meta_ads"]
    for extra in (["--start", DAY2, "--end", DAY1], ["--keys", ","], ["--source", "nope"]):
        assert CheckExitCode.USAGE == run([*base, *extra])[0]
    assert before == statuses(store)
    store.close()


# -- PostgreSQL ---------------------------------------------------------------------------------


def test_postgres_gaps_and_retry(postgres_dsn: str, postgres_schema: str, clock: FakeClock) -> None:
    """The same commands on PostgreSQL, in a schema; the password never shows."""
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    build_ledger(store, clock)
    where = ["--db", postgres_dsn, "--schema", postgres_schema]
    code, out, _ = run([*GAPS, *where, "--json"], clock)
    assert CheckExitCode.ERRORS == code
    assert [("02", "pending"), ("03", "pending"), ("04", "running")] == [
        (r["key"], r["status"]) for r in json.loads(out)[:3]
    ]
    before = statuses(store)
    assert CheckExitCode.PASSED == run(["retry", *where, "--source", "meta_ads", "--dry-run"])[0]
    assert before == statuses(store)
    assert CheckExitCode.PASSED == run(["retry", *where, "--source", "meta_ads"])[0]
    assert {**before, ("02", DAY2): ("pending", 0), ("03", DAY2): ("pending", 0)} == statuses(store)
    store.close()


def test_postgres_without_a_ledger_creates_nothing(postgres_dsn: str, postgres_schema: str) -> None:
    """An empty schema: "no ledger here", exit 3, and the schema stays empty."""
    code, _, err = run([*GAPS, "--db", postgres_dsn, "--schema", postgres_schema])
    assert CheckExitCode.NOT_RUN == code
    assert "no ledger here" in err
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (postgres_schema,),
        ).fetchall()
    assert [] == tables


def test_postgres_read_commands_are_read_only(postgres_dsn: str, postgres_schema: str) -> None:
    """A read command's transactions are READ ONLY: a suite that writes fails, nothing lands."""
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    with unit_of_work(store) as tx:
        tx.execute(f"CREATE TABLE {tx.table('t')} (x INTEGER)")
    store.close()
    code, _, err = run(
        [
            "check",
            "--suite",
            "tests.test_cli:writing_suite",
            "--db",
            postgres_dsn,
            "--schema",
            postgres_schema,
        ]
    )
    assert CheckExitCode.NOT_RUN == code
    assert "read-only transaction" in err
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    with unit_of_work(store) as tx:
        assert (0,) == tx.fetchone(f"SELECT count(*) FROM {tx.table('t')}")
    store.close()


def writing_suite(store: Store) -> CheckSuite:
    """A suite whose only check writes (what a read command must refuse)."""
    with unit_of_work(store) as tx:
        tx.execute(f"INSERT INTO {tx.table('t')} VALUES (1)")
    return CheckSuite(checks=[])


# -- check --suite --------------------------------------------------------------------------------


def test_check_suite_option_with_db_and_params(db: Path) -> None:
    """check --suite module:attr --db --param: the suite gets the store, SQL checks run on it."""
    code, out, _ = run(
        [
            "check",
            "--suite",
            "tests.test_cli:ledger_suite",
            "--db",
            str(db),
            "-p",
            f"day={DAY2}",
            "--json",
        ]
    )
    assert CheckExitCode.ERRORS == code
    [result] = json.loads(out)["results"]
    assert [("02", DAY2), ("03", DAY2), ("04", DAY2)] == [
        (r["key"], r["period"]) for r in result["offending"]
    ]
    assert "(1 exhausted, 1 failed, 1 running)" in result["message"]
    assert "Sup3rS3cret" not in out


def ledger_suite(store: Store) -> CheckSuite:
    """The ledger's completeness check for keys 01-04 on ``--db``."""
    return CheckSuite(
        checks=[PartitionLedger(store).completeness_check("meta_ads", ["01", "02", "03", "04"])]
    )


def test_check_suite_twice_or_never_is_a_usage_error(suites: Path) -> None:
    """check without a suite, or with two different ones: exit 64."""
    assert CheckExitCode.USAGE == run(["check"])[0]
    assert CheckExitCode.USAGE == run(["check", f"{suites}:day", "--suite", f"{suites}:error"])[0]
    assert CheckExitCode.ERRORS == run(["check", "--suite", f"{suites}:error"])[0]


def test_check_db_missing_is_not_created(suites: Path, tmp_path: Path) -> None:
    """check --db on a missing file: exit 3, no file."""
    path = tmp_path / "missing.db"
    code, _, err = run(["check", f"{suites}:day", "--db", str(path)])
    assert CheckExitCode.NOT_RUN == code
    assert not path.exists()
    assert "does not exist" in err


# -- help ---------------------------------------------------------------------------------------

RST = re.compile(r"``|:(func|class|meth|mod|attr|exc|data|obj|ref):`|`[^`]+`_")


@pytest.mark.parametrize("command", [None, "gaps", "retry", "reset", "check"])
def test_help_has_no_rst_and_lists_exit_codes(
    command: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every --help is plain text for humans, with the exit codes."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"] if command else ["--help"])
    assert 0 == exit_info.value.code
    text = capsys.readouterr().out
    assert [] == RST.findall(text)
    for code in ("0 ", "1 ", "2 ", "3 ", "64 "):
        assert f"\n  {code}" in text


def test_module_entry_point_gaps(db: Path) -> None:
    """A real ``python -m resilient_pipeline gaps`` exits 2 and prints the table."""
    proc = subprocess.run(
        [sys.executable, "-m", "resilient_pipeline", *GAPS, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (2, "") == (proc.returncode, proc.stderr)
    assert proc.stdout.startswith("meta_ads: 6 of 8 partition(s) not succeeded")
