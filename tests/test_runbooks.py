"""Every command in docs/runbooks works as written against the reference collector's database."""

from __future__ import annotations

import datetime as dt
import io
import shlex
from pathlib import Path

import pytest

from examples.kpi_collector.cli import parse_args
from examples.kpi_collector.settings import Settings
from examples.kpi_collector.suite import prepare
from resilient_pipeline import Partition, PartitionLedger, SQLiteStore, unit_of_work
from resilient_pipeline._cli import main
from resilient_pipeline.ledger import daily

RUNBOOKS = sorted((Path(__file__).parent.parent / "docs" / "runbooks").glob("*.md"))
PROGRAMS = ("python -m resilient_pipeline", "python -m examples.kpi_collector")
DAYS = daily(dt.date(2026, 11, 1), dt.date(2026, 11, 28))
SOURCE = "meta_ads"
# The keys exactly as the collector writes them in the ledger ("7", never "07").
CLIENTS = Settings(db=":memory:", clients=tuple(range(1, 17))).keys


def commands(text: str) -> list[str]:
    """Each command line of the page: in code blocks and `inline code`, continuations joined."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        for program in PROGRAMS:
            start = line.find(program)
            while start != -1:
                rest = line[start:]
                if line[:start].count("`") % 2:  # inline code: up to its closing backtick
                    rest = rest.split("`", 1)[0]
                found.append(" ".join(rest.split("|", 1)[0].split()))
                start = line.find(program, start + 1)
    return found


def test_commands_are_found() -> None:
    """The extractor sees code blocks, inline code, continuations and pipes."""
    page = (
        "Run `python -m resilient_pipeline gaps --db x` now.\n"
        "```bash\npython -m resilient_pipeline retry \\\n    --db x | head -1\n```\n"
    )
    assert [
        "python -m resilient_pipeline gaps --db x",
        "python -m resilient_pipeline retry --db x",
    ] == (commands(page))


def kpi_database(path: Path) -> None:
    """The collector's tables and a ledger after a bad night: 7 exhausted, 12 failed."""
    store = SQLiteStore(path)
    prepare(store, ["meta_ads", "google_ads"])  # the collector's tables and views
    ledger = PartitionLedger(store, max_attempts=2)
    ledger.plan(SOURCE, CLIENTS, DAYS[0], DAYS[-1])
    with unit_of_work(store) as tx:
        for day in DAYS:
            for client in CLIENTS:
                if (client, day) not in {("7", DAYS[-1]), ("12", DAYS[-1])}:
                    ledger.succeed(tx, Partition(SOURCE, client, day), rows=[])
    for attempt in range(2):
        for client in ("7", "12")[: 2 - attempt]:
            partition = Partition(SOURCE, client, DAYS[-1])
            ledger.start(partition)
            ledger.fail(partition, ConnectionError("503 from upstream"))
    store.close()


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda p: p.stem)
def test_every_command_runs_as_written(
    runbook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each `python -m ...` command parses and exits with a documented code other than 64."""
    db = tmp_path / "kpi.sqlite3"
    kpi_database(db)
    monkeypatch.chdir(Path(__file__).parent.parent)  # the runbooks run from the repository root
    found = commands(runbook.read_text())
    assert found, f"{runbook.name} has no command"
    for command in found:
        assert "..." not in command, f"placeholder in: {command}"
        assert "<" not in command, f"placeholder in: {command}"
        argv = shlex.split(command.replace('"$KPI_DB"', shlex.quote(str(db))))
        assert not [word for word in argv if "$" in word], f"unset variable in: {command}"
        if "--keys" in argv:  # a key the collector never writes would match nothing
            keys = argv[argv.index("--keys") + 1].split(",")
            assert [] == [k for k in keys if k not in CLIENTS], f"unknown key in: {command}"
        if argv[2] == "examples.kpi_collector":
            # It runs the demo's fake API (seconds): here only its options are checked.
            options = parse_args(argv[3:])
            assert "--db" not in argv or str(db) == options.db
            continue
        code = main(argv[3:], out=io.StringIO(), err=io.StringIO())
        assert code in (0, 1, 2), f"exit {code}: {command}"


def test_retry_in_the_runbook_fixes_the_exhausted_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily runbook's retry turns 7 from exhausted to pending; its gaps command shows it."""
    db = tmp_path / "kpi.sqlite3"
    kpi_database(db)
    page = (
        Path(__file__).parent.parent / "docs/runbooks/daily-collection-incomplete.md"
    ).read_text()
    [retry] = [c for c in commands(page) if " retry " in c and "--dry-run" not in c]
    argv = shlex.split(retry.replace('"$KPI_DB"', shlex.quote(str(db))))
    assert 0 == main(argv[3:], out=io.StringIO(), err=io.StringIO())
    store = SQLiteStore(db)
    records = {r.key: r for r in PartitionLedger(store).records(SOURCE, DAYS[-1], DAYS[-1])}
    store.close()
    assert ("pending", 0) == (records["7"].status, records["7"].attempts)
    assert ("pending", 0) == (records["12"].status, records["12"].attempts)
    assert "succeeded" == records["1"].status
