"""PEP 562 lazy names for the modules that gather names from several packages.

The top level and :mod:`resilient_pipeline.events` re-export names whose
packages cost milliseconds to import; each name's package is imported the first
time the name is used. Standard library only, so importing it costs nothing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    module: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``module``, whose ``homes`` map names to packages.

    ``homes`` maps each lazy name to the package under ``resilient_pipeline``
    that defines it. A name, once looked up, is stored in the module, so later
    look-ups never reach ``__getattr__`` again.
    """
    namespace = sys.modules[module].__dict__

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"resilient_pipeline.{home}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return __getattr__, __dir__
