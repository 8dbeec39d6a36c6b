"""The decorator's unobserved fast path and its slow path (timed, or after a failure) agree."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import retry_with_backoff, subscribe
from resilient_pipeline.exceptions import ResilientPipelineError


class Flaky(ConnectionError):
    """One scripted failure."""


def scripted(
    outcomes: list[str | None],
) -> tuple[list[int], Callable[..., tuple[int, int, int]]]:
    """A function failing with each text of ``outcomes`` in turn (``None``: it returns)."""
    calls: list[int] = []

    def fetch(x: int, *, y: int = 0) -> tuple[int, int, int]:
        calls.append(x + y)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if outcome is not None:
            raise Flaky(outcome)
        return (len(calls), x, y)

    return calls, fetch


def run(outcomes: list[str | None], *, listening: bool) -> tuple[object, ...]:
    calls, fn = scripted(outcomes)
    wrapped = retry_with_backoff(max_attempts=4, base_delay=0, jitter=None, name="f")(fn)
    seen: list[object] = []
    subscription = subscribe(seen.append) if listening else None
    try:
        result: object = wrapped(2, y=3)
        error: BaseException | None = None
    except (Flaky, ResilientPipelineError) as exc:
        result, error = None, exc
    finally:
        if subscription is not None:
            subscription.cancel()
    described = None if error is None else (type(error), str(error), error.__context__)
    return result, described, calls


texts = st.text(max_size=40) | st.just("\x00\ud800 NaN")


@given(outcomes=st.lists(st.none() | texts, min_size=1, max_size=6))
def test_unobserved_and_observed_calls_agree(outcomes: list[str | None]) -> None:
    """Result, final error (with no implicit context) and every call's arguments are the same."""
    assert run(outcomes, listening=True) == run(outcomes, listening=False)


def test_a_given_up_error_carries_no_implicit_context() -> None:
    """The retries run outside the first failure's except block: nothing chains implicitly."""
    result, described, calls = run(["a", "b", "c", "d", "e"], listening=False)
    assert (None, (Flaky, "d", None), [5, 5, 5, 5]) == (result, described, calls)
