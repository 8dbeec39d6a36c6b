"""The public surface: __all__ is exact and sorted, type hints resolve, docstrings exist."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
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


def public_objects() -> list[tuple[str, object]]:
    objects = [(name, getattr(resilient_pipeline, name)) for name in resilient_pipeline.__all__]
    return [
        (name, obj)
        for name, obj in objects
        if not name.startswith("__") and (inspect.isclass(obj) or inspect.isroutine(obj))
    ]


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
