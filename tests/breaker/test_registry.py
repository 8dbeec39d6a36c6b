"""Keyed breakers: one per key, bounded in memory, with a roll-up view."""

from __future__ import annotations

import threading

import pytest

from resilient_pipeline import CircuitBreaker, ConfigurationError, ConsecutiveFailures
from resilient_pipeline.breaker import CircuitBreakerRegistry
from resilient_pipeline.testing import FakeClock


def template(**options: object) -> CircuitBreaker:
    return CircuitBreaker(
        name="ads", clock=FakeClock(), trip=ConsecutiveFailures(threshold=1), **options
    )


def fail() -> None:
    raise ConnectionError("down")


def test_each_key_trips_on_its_own() -> None:
    """A failing account opens its own circuit, not its neighbour's."""
    breaker = template()
    with pytest.raises(ConnectionError):
        breaker.for_key("meta", "act_1").call(fail)
    assert "open" == breaker.for_key("meta", "act_1").state
    assert "closed" == breaker.for_key("meta", "act_2").state
    assert "closed" == breaker.state


def test_keyed_breakers_share_the_template_options() -> None:
    """Children keep the template's policies and handlers."""
    seen: list[object] = []
    child = template(on_event=seen.append).for_key("google")
    assert ConsecutiveFailures(threshold=1) == child.trip
    child.force_open()
    assert 1 == len(seen)


def test_registry_is_bounded_and_evicts_closed_before_open() -> None:
    """Beyond max_keys the least recently used closed breaker goes; open ones stay."""
    registry = CircuitBreakerRegistry(template=template(), max_keys=3)
    registry.get("a").force_open()
    registry.get("b")
    registry.get("c")
    registry.get("d")
    assert ["ads[a]", "ads[c]", "ads[d]"] == [b.name for b in registry]
    assert (3, 1) == (len(registry), registry.statistics().evicted)


def test_evicted_key_forgets_its_memory_state() -> None:
    """A key evicted from memory comes back fresh (its state went with it)."""
    registry = CircuitBreakerRegistry(template=template(), max_keys=1)
    registry.get("a").force_open()
    registry.get("b").force_open()
    registry.get("c")
    assert "closed" == registry.get("a").state


def test_roll_up_counts_open_keys() -> None:
    """statistics() says how many keys are closed, open and half-open."""
    registry = CircuitBreakerRegistry(template=template())
    for key in ("a", "b", "c"):
        registry.get(key)
    registry.get("b").force_open()
    stats = registry.statistics()
    assert (3, 2, 1, 0, ("ads[b]",)) == (
        stats.keys,
        stats.closed,
        stats.open,
        stats.half_open,
        stats.open_keys,
    )
    assert 3 == len(registry.all_statistics())


def test_concurrent_get_returns_one_breaker_per_key() -> None:
    """Threads asking for the same key at once get the same breaker."""
    registry = CircuitBreakerRegistry(template=template())
    barrier = threading.Barrier(8)
    got: list[CircuitBreaker] = []

    def worker() -> None:
        barrier.wait(5)
        got.append(registry.get("meta", "act_1"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert 1 == len({id(b) for b in got})


@pytest.mark.parametrize(
    ("options", "option"),
    [({"template": "x"}, "template"), ({"template": None, "max_keys": 0}, "max_keys")],
)
def test_bad_registry_options(options: dict[str, object], option: str) -> None:
    """Registry options are validated at construction."""
    if options["template"] is None:
        options["template"] = template()
    with pytest.raises(ConfigurationError) as info:
        CircuitBreakerRegistry(**options)  # type: ignore[arg-type]
    assert option == info.value.option


def test_a_key_is_required() -> None:
    """for_key() with no key parts is an error."""
    with pytest.raises(ConfigurationError):
        template().for_key()
