"""The public surface: __all__ is exact and sorted, type hints resolve, docstrings exist."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import typing

import attrs
import pytest

import resilient_pipeline

MODULES = sorted(
    name
    for info in pkgutil.walk_packages(resilient_pipeline.__path__, "resilient_pipeline.")
    if not (name := info.name).rsplit(".", 1)[-1].startswith("_") or name.endswith("__init__")
)


def test_top_level_all_is_sorted_and_complete() -> None:
    """__init__ re-exports a sorted __all__, and every name in it exists."""
    names = resilient_pipeline.__all__
    assert sorted(names) == names
    assert [] == [n for n in names if not hasattr(resilient_pipeline, n)]


@pytest.mark.parametrize("module_name", ["resilient_pipeline", *MODULES])
def test_module_all_matches_definitions(module_name: str) -> None:
    """Every public module's __all__ lists exactly the names it defines or re-exports."""
    module = importlib.import_module(module_name)
    exported = set(getattr(module, "__all__", []))
    assert exported, f"{module_name} has no __all__"
    public = {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(obj)
        and getattr(obj, "__module__", module_name).startswith("resilient_pipeline")
        and name not in {"annotations", "TYPE_CHECKING"}
    }
    defined_here = {
        name for name in public if getattr(vars(module)[name], "__module__", None) == module_name
    }
    assert set() == defined_here - exported
    assert set() == {n for n in exported if not hasattr(module, n)}


PACKAGES = [
    "alerting",
    "breaker",
    "checks",
    "flags",
    "health",
    "ledger",
    "limits",
    "retry",
    "storage",
    "validation",
]
# Modules that gather names from several packages for convenience; every other
# public module is the one canonical home of the names it exports.
GATHERING = {"resilient_pipeline", "resilient_pipeline.events", "resilient_pipeline.typing"}


def public_objects() -> list[tuple[str, object]]:
    """Every public class and function, once, from every public module."""
    seen: dict[int, tuple[str, object]] = {}
    for module_name in ["resilient_pipeline", *MODULES]:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            # Type aliases (``Callable[...]``) are documented where they are assigned;
            # Python 3.10 reports them as classes.
            is_alias = typing.get_origin(obj) is not None
            if (
                not name.startswith("__")
                and not is_alias
                and (inspect.isclass(obj) or inspect.isroutine(obj))
            ):
                seen.setdefault(id(obj), (f"{module_name}.{name}", obj))
    return sorted(seen.values(), key=lambda item: item[0])


def canonical_homes() -> dict[str, list[str]]:
    """Public name -> the modules that are its home.

    A gathering module (``events``, ``typing``) is the home only of the names no
    package exports (``Event``, ``subscribe``, ``Clock``).
    """
    homes: dict[str, list[str]] = {}
    for module_name in MODULES:
        if module_name in GATHERING:
            continue
        for name in getattr(importlib.import_module(module_name), "__all__", []):
            homes.setdefault(name, []).append(module_name)
    for module_name in sorted(GATHERING - {"resilient_pipeline"}):
        for name in importlib.import_module(module_name).__all__:
            if name not in homes:
                homes[name] = [module_name]
    return homes


# The engine modules are alternatives offering one interface (``engines.celery.dispatch``,
# ``engines.dask.dispatch``): a name they share has one home per engine, picked by the import.
ENGINES = "resilient_pipeline.engines."


def test_every_public_name_has_one_canonical_home() -> None:
    """No name is exported by two packages: each has exactly one place to import it from."""
    homes = canonical_homes()
    shared = {name: where for name, where in homes.items() if len(where) > 1}
    assert {} == {
        name: where
        for name, where in shared.items()
        if not all(module.startswith(ENGINES) for module in where)
    }


def test_top_level_is_small_and_points_at_canonical_homes() -> None:
    """The top level holds about forty names, each also exported by its own package."""
    homes = canonical_homes()
    names = [n for n in resilient_pipeline.__all__ if n != "__version__"]
    assert len(names) <= 50
    for name in names:
        (home,) = homes[name]
        assert getattr(resilient_pipeline, name) is getattr(importlib.import_module(home), name)


def test_the_guides_count_the_top_level_names_right() -> None:
    """docs/api.md and docs/architecture.md say how many names the top level holds: truly."""
    import re
    from pathlib import Path

    count = len([n for n in resilient_pipeline.__all__ if n != "__version__"])
    docs = Path(__file__).parents[1] / "docs"
    for page in ("api.md", "architecture.md"):
        said = re.findall(r"\b(\d+) (?:names|of them)\b", (docs / page).read_text())
        assert said, page
        assert {str(count)} == set(said), page
    table = (docs / "api.md").read_text().split("\n## ", 2)[1]
    listed = set(re.findall(r"^\| \[`(\w+)`\]", table, re.M))
    assert set(resilient_pipeline.__all__) - {"__version__"} == listed


def test_events_module_catalogues_every_event_class() -> None:
    """resilient_pipeline.events reaches every Event subclass any package exports."""
    from resilient_pipeline import events

    exported = {
        obj
        for module_name in MODULES
        for name in getattr(importlib.import_module(module_name), "__all__", [])
        if inspect.isclass(obj := getattr(importlib.import_module(module_name), name))
        and issubclass(obj, events.Event)
        and obj is not events.Event
    }
    assert exported == set(events.catalogue())


def test_import_is_lazy() -> None:
    """``import resilient_pipeline`` loads no subpackage until a name is used."""
    code = (
        "import sys, resilient_pipeline; "
        "print(sorted(m for m in sys.modules if m.startswith('resilient_pipeline')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    expected = "['resilient_pipeline', 'resilient_pipeline._lazy', 'resilient_pipeline._version']"
    assert expected == out.strip()


def test_the_retry_path_imports_nothing_it_does_not_need() -> None:
    """``from resilient_pipeline import retry_with_backoff`` loads no async, HTTP-date or DB module.

    anyio only where an async sleep or cancel scope runs, email.utils and
    datetime only for a Retry-After date, drivers only in their backends.
    """
    unwanted = [
        "anyio",
        "sniffio",
        "typing_extensions",
        "email.utils",
        "datetime",
        "asyncio",
        "sqlite3",
        "psycopg",
        "redis",
        "httpx",
    ]
    code = (
        "import sys; from resilient_pipeline import retry_with_backoff; "
        f"print([m for m in {unwanted!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "[]" == out.strip()


def test_unknown_top_level_name_is_an_attribute_error() -> None:
    """A mistyped name fails like any module attribute, naming itself."""
    with pytest.raises(AttributeError, match="no_such_name"):
        resilient_pipeline.no_such_name


@pytest.mark.parametrize(("name", "obj"), public_objects(), ids=lambda v: str(v)[:40])
def test_public_names_have_docstrings(name: str, obj: object) -> None:
    """Every public name is documented."""
    assert inspect.getdoc(obj), name


@pytest.mark.parametrize(
    ("name", "cls"),
    [(n, o) for n, o in public_objects() if inspect.isclass(o)],
    ids=lambda v: str(v)[:40],
)
def test_type_hints_resolve_on_public_classes(name: str, cls: type) -> None:
    """typing.get_type_hints() works on every public class (no unresolvable annotations)."""
    hints = typing.get_type_hints(cls)
    assert all(isinstance(name, str) for name in hints)
    init = cls.__init__
    if inspect.isfunction(init) and not attrs.has(cls):  # attrs' generated __init__ has no globals
        typing.get_type_hints(init)
