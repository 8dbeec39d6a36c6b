"""What observability costs a retried call: no subscribers, JSON logging, Prometheus, OpenTelemetry.

Run:  .venv/bin/python benchmarks/bench_observability.py [--quick]

Prints ns/call and ratios, in one process, for the retry-decorated success
path and fail-once path (zero waits) under four set-ups, beside the
undecorated function; then the flag-evaluation benchmark of
``bench_flags.py`` (a native evaluation, a bare dict lookup, the OpenFeature
SDK's in-memory provider). Goals: with no subscribers, events add < 10 % to
the success path; a native flag evaluation costs < 1 us.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
warnings.simplefilter("ignore")

from _harness import Goal, interleaved, ns_per_call, ratio_goal, table  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from resilient_pipeline import retry_with_backoff, subscribe  # noqa: E402
from resilient_pipeline.observability import (  # noqa: E402
    JsonFormatter,
    OpenTelemetryMetrics,
    PrometheusMetrics,
)

# Logging as an application that configured nothing: records are built, then dropped.
logging.getLogger().addHandler(logging.NullHandler())
QUICK = "--quick" in sys.argv
N_OK = 20_000 if QUICK else 200_000
N_FAIL = 2_000 if QUICK else 20_000


def ok() -> int:
    return 1


def hand_wrapper(fn: Callable[[], int]) -> Callable[[], int]:
    """What the decorator's unobserved success path was before events: a try around the call."""

    def wrapper() -> int:
        try:
            return fn()
        except Exception:
            raise

    return wrapper


def fail_once() -> Callable[[], int]:
    state = [0]

    def fn() -> int:
        state[0] += 1
        if state[0] % 2:
            raise OSError("reset")
        return 1

    return fn


@contextlib.contextmanager
def no_subscribers() -> Iterator[None]:
    yield


@contextlib.contextmanager
def json_logging() -> Iterator[None]:
    """JSON lines of every library record (INFO and up) into a buffer."""
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("resilient_pipeline")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


@contextlib.contextmanager
def prometheus() -> Iterator[None]:
    with subscribe(PrometheusMetrics(registry=CollectorRegistry())):
        yield


@contextlib.contextmanager
def opentelemetry() -> Iterator[None]:
    provider = MeterProvider()
    try:
        with subscribe(OpenTelemetryMetrics(meter=provider.get_meter("bench"))):
            yield
    finally:
        provider.shutdown()


SETUPS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "no subscribers": no_subscribers,
    "JSON logging": json_logging,
    "Prometheus": prometheus,
    "OpenTelemetry": opentelemetry,
}


def run_retry() -> str:
    """Success and fail-once paths under each set-up, as two Markdown tables."""
    success: dict[str, float] = {
        "undecorated": ns_per_call(ok, number=N_OK),
        "hand-written try wrapper": ns_per_call(hand_wrapper(ok), number=N_OK),
    }
    failing: dict[str, float] = {}
    for name, setup in SETUPS.items():
        with setup():
            wrapped: Any = retry_with_backoff(base_delay=0, jitter=None, name="bench")(ok)
            success[name] = ns_per_call(wrapped, number=N_OK)
            flaky: Any = retry_with_backoff(base_delay=0, jitter=None, name="bench")(fail_once())
            failing[name] = ns_per_call(flaky, number=N_FAIL)
    decorator = success["no subscribers"] - success["hand-written try wrapper"]
    return "\n\n".join(
        [
            table("Retried call, success path", success, baseline="undecorated"),
            table("Retried call, fail once then succeed", failing, baseline="no subscribers"),
            f"With no subscribers the decorated success path costs {decorator:.0f} ns more "
            "than a hand-written try wrapper (functools.wraps, the keyword pass-through and "
            "one identity check of the subscribers); it builds no event, so events add one "
            "pointer comparison (goal: < 10 %).",
        ]
    )


def run_flags() -> str:
    try:
        import bench_flags
    except ImportError:
        return "### Flag evaluation\n\nbenchmarks/bench_flags.py is missing: skipped."
    return str(bench_flags.run())


def without_check(fn: Callable[..., int]) -> Callable[..., int]:
    """The retry decorator's unobserved success path minus the subscribers' identity check."""

    @functools.wraps(fn)
    def plain(*args: Any, **kwargs: Any) -> int:
        try:
            return fn(*args, **kwargs)
        except Exception:
            raise

    return plain


def goals(quick: bool) -> list[Goal]:
    """The events goal, for ``run_all.py``: what the one identity check adds to a success."""
    samples = interleaved(
        {
            "the same wrapper without the check": without_check(ok),
            "no subscribers": retry_with_backoff(base_delay=0, jitter=None, name="bench")(ok),
        },
        number=20_000 if quick else N_OK,
        rounds=5 if quick else 7,
    )
    return [
        ratio_goal(
            "observability: events with no subscribers, retried call's success path",
            "< 10 % over the same wrapper without events (<= 1.10x)",
            samples,
            ours="no subscribers",
            peer="the same wrapper without the check",
            limit=1.10,
        )
    ]


if __name__ == "__main__":
    print(run_retry())
    print()
    print(run_flags())
