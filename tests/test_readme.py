"""The README's two set-up commands are what CI and users actually run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The shell commands in the README's first two ``sh`` blocks."""
    text = (ROOT / "README.md").read_text()
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL)][:2]


def test_readme_starts_with_exactly_two_commands() -> None:
    """Two one-line commands come first: the main job, then the test suite."""
    main_job, tests = readme_commands()
    assert "\n" not in main_job
    assert "\n" not in tests
    assert main_job.endswith("-m examples.kpi_collector demo")
    assert tests.endswith("-m pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """.ci/run calls the very command the README gives for the tests."""
    _, tests = readme_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines


def test_main_job_module_exists() -> None:
    """The module the main-job command runs is in the repository."""
    main_job, _ = readme_commands()
    words = main_job.split()
    module = words[words.index("-m", words.index("&&")) + 1]
    assert (ROOT / module.replace(".", "/") / "__main__.py").is_file()


def test_main_job_installs_the_extras_the_collector_needs() -> None:
    """The collector talks HTTP (httpx) and draws a progress bar (rich): both extras."""
    main_job, _ = readme_commands()
    assert "'.[http,progress]'" in main_job
