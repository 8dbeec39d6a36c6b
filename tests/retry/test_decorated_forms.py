"""What @retry_with_backoff decorates: static and class methods work; generators are refused."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest

from resilient_pipeline import ConfigurationError, RetryPolicy, retry_with_backoff
from resilient_pipeline.testing import FakeClock


class Flaky:
    """Methods that fail once per call of the test, then return what they were given."""

    failures: ClassVar[list[str]] = []

    @retry_with_backoff(base_delay=0)
    @staticmethod
    def static(value: str) -> str:
        """A static method."""
        Flaky.failures.append(value)
        if Flaky.failures.count(value) == 1:
            raise ConnectionError("reset")
        return value

    @retry_with_backoff(base_delay=0)
    @classmethod
    def klass(cls, value: str) -> tuple[str, str]:
        """A class method."""
        Flaky.failures.append(value)
        if Flaky.failures.count(value) == 1:
            raise ConnectionError("reset")
        return (cls.__name__, value)

    @retry_with_backoff(base_delay=0)
    @staticmethod
    async def astatic(value: str) -> str:
        """An async static method."""
        Flaky.failures.append(value)
        if Flaky.failures.count(value) == 1:
            raise ConnectionError("reset")
        return value

    @retry_with_backoff(base_delay=0)
    @classmethod
    async def aklass(cls, value: str) -> tuple[str, str]:
        """An async class method."""
        Flaky.failures.append(value)
        if Flaky.failures.count(value) == 1:
            raise ConnectionError("reset")
        return (cls.__name__, value)


class SubFlaky(Flaky):
    """A subclass: class methods see it as ``cls``."""


def test_static_and_class_methods_through_class_and_instance() -> None:
    """Above @staticmethod/@classmethod the retry wraps the function; both stay descriptors."""
    Flaky.failures = []
    assert [
        "via class",
        "via instance",
        ("Flaky", "cls via class"),
        ("Flaky", "cls via instance"),
        ("SubFlaky", "cls via subclass"),
    ] == [
        Flaky.static("via class"),
        Flaky().static("via instance"),
        Flaky.klass("cls via class"),
        Flaky().klass("cls via instance"),
        SubFlaky().klass("cls via subclass"),
    ]
    # Each call failed once and was retried once.
    assert {2} == {Flaky.failures.count(v) for v in Flaky.failures}
    assert 10 == len(Flaky.failures)
    assert isinstance(Flaky.__dict__["static"], staticmethod)
    assert isinstance(Flaky.__dict__["klass"], classmethod)
    assert ("static", "A static method.") == (Flaky.static.__name__, Flaky.static.__doc__)
    assert "Flaky.klass" == Flaky.klass.__qualname__


@pytest.mark.anyio
async def test_async_static_and_class_methods_through_class_and_instance() -> None:
    """The same for coroutine functions, on asyncio and trio."""
    Flaky.failures = []
    assert [
        "via class",
        "via instance",
        ("Flaky", "cls via class"),
        ("SubFlaky", "cls via subclass instance"),
    ] == [
        await Flaky.astatic("via class"),
        await Flaky().astatic("via instance"),
        await Flaky.aklass("cls via class"),
        await SubFlaky().aklass("cls via subclass instance"),
    ]
    assert {2} == {Flaky.failures.count(v) for v in Flaky.failures}


def pages() -> Iterator[int]:
    """A generator function."""
    yield 1
    raise ConnectionError("reset mid-stream")


async def apages() -> AsyncIterator[int]:
    """An async generator function."""
    yield 1
    raise ConnectionError("reset mid-stream")


@pytest.mark.parametrize(
    ("fn", "kind"),
    [(pages, "a generator"), (apages, "an async generator")],
    ids=["generator", "async-generator"],
)
@pytest.mark.parametrize(
    "wrap",
    [
        retry_with_backoff,
        retry_with_backoff(max_attempts=2),
        RetryPolicy(),
        lambda fn: retry_with_backoff(staticmethod(fn)),
    ],
    ids=["bare", "with-options", "policy", "staticmethod"],
)
def test_generator_functions_are_refused_when_decorated(fn: Any, kind: str, wrap: Any) -> None:
    """Retrying a generator would retry nothing (its body runs later): refused at once."""
    with pytest.raises(ConfigurationError) as info:
        wrap(fn)
    assert fn is info.value.value
    assert f"cannot retry {fn.__qualname__}: it is {kind} function" in str(info.value)


def test_classmethod_source_name_is_the_method() -> None:
    """Events and notes name the method, as for plain methods."""
    clock = FakeClock()

    class Client:
        @retry_with_backoff(max_attempts=2, base_delay=0, clock=clock)
        @classmethod
        def fetch(cls) -> None:
            raise ConnectionError("reset")

    with pytest.raises(ConnectionError) as info:
        Client().fetch()
    assert info.value.__notes__[0].startswith(
        "test_classmethod_source_name_is_the_method.<locals>.Client.fetch: gave up after 2"
    )


def test_a_refused_partial_is_named_without_its_arguments() -> None:
    """The refusal of a generator partial never shows the partial's arguments (a token)."""

    def stream(token: str) -> Iterator[str]:
        yield token

    with pytest.raises(ConfigurationError) as info:
        retry_with_backoff(functools.partial(stream, token="s3cr3t-token"))
    assert "cannot retry partial: it is a generator function" in str(info.value)
    assert "s3cr3t" not in str(info.value)
