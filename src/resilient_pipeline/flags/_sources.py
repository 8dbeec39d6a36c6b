"""Where flags come from: memory, environment variables, a TOML or JSON file.

A source only *reads*; :class:`~resilient_pipeline.flags.Flags` decides when
(every ``reload_interval`` seconds) and keeps the last good answer when a
read fails. The shared sources (a store table, Redis) are in ``_shared.py``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from resilient_pipeline._core import non_empty_str, number
from resilient_pipeline.exceptions import ConfigurationError, MissingDependencyError

from ._flag import Flag, flags_from_list, flags_from_mapping, loads_json, parse_flag

__all__ = ["EnvSource", "FileSource", "FlagSource", "MemorySource", "check_interval"]


def check_interval(value: float | None, option: str = "reload_interval") -> float | None:
    """``None`` (never reload on its own) or a finite number of seconds >= 0."""
    if value is None:
        return None
    return float(number(ge=0, finite=True).check(option, value))


@runtime_checkable
class FlagSource(Protocol):
    """Anything that can list flag definitions.

    Examples:
        >>> isinstance(MemorySource([]), FlagSource)
        True
    """

    @property
    def where(self) -> str:
        """What the source is, for error messages and events (no secrets)."""
        ...

    @property
    def reload_interval(self) -> float | None:
        """Seconds between reads (``None``: read once, and on ``Flags.reload()``)."""
        ...

    def load(self) -> Mapping[str, Flag]:
        """Every flag the source defines now, by name; raises when it cannot tell."""
        ...


class MemorySource:
    """Flags held in memory: for tests, defaults in code, and examples.

    Args:
        flags: ``Flag`` objects, or a mapping of name to any value
            :func:`~resilient_pipeline.flags.Flag` syntax allows (``"25%"``, ``"on"``,
            ``{"percentage": 10, "allow": [...]}``).
        reload_interval: Seconds between reads by ``Flags``; ``None`` (the default):
            ``set_flag`` takes effect on ``Flags.reload()``.

    Examples:
        >>> source = MemorySource({"new_conversions_endpoint": "25%"})
        >>> source.load()["new_conversions_endpoint"].percentage
        25.0
        >>> source.set_flag("new_conversions_endpoint", percentage=0)
        >>> source.load()["new_conversions_endpoint"].percentage
        0
    """

    __slots__ = ("_flags", "reload_interval")

    where = "memory"

    def __init__(
        self,
        flags: Iterable[Flag] | Mapping[str, object] = (),
        *,
        reload_interval: float | None = None,
    ) -> None:
        if isinstance(flags, Mapping):
            self._flags = flags_from_mapping(flags, where=self.where)
        else:
            self._flags = flags_from_list(flags)
        self.reload_interval = check_interval(reload_interval)

    def load(self) -> Mapping[str, Flag]:
        """The flags as they are now."""
        return dict(self._flags)

    def set_flag(
        self,
        name: str,
        *,
        percentage: float | None = None,
        enabled: bool = True,
        allow: Iterable[object] = (),
        deny: Iterable[object] = (),
    ) -> None:
        """Define or replace one flag (same rules as the other sources' ``set_flag``)."""
        self._flags[name] = make_flag(name, percentage, enabled, allow, deny, where=self.where)

    def remove_flag(self, name: str) -> None:
        """Forget a flag (evaluations fall back to later sources, then the default)."""
        self._flags.pop(name, None)

    def __repr__(self) -> str:
        return f"MemorySource({sorted(self._flags)!r})"


def make_flag(
    name: str,
    percentage: float | None,
    enabled: bool,
    allow: Iterable[object],
    deny: Iterable[object],
    *,
    where: str,
) -> Flag:
    """The flag ``set_flag`` stores; its rules are those of a file's table."""
    fields: dict[str, object] = {"enabled": enabled, "allow": allow, "deny": deny}
    if percentage is not None:
        fields["percentage"] = percentage
    return parse_flag(name, fields, where=where)


class EnvSource:
    """Flags from environment variables: ``RP_FLAG_<NAME>=<value>``.

    The name is the variable's rest, lower-cased (``RP_FLAG_NEW_CONVERSIONS_ENDPOINT``
    is ``new_conversions_endpoint``). Values: ``on`` / ``off`` (also ``true`` /
    ``false``), a percentage with its sign (``25%``, ``0.5%``), or a JSON object
    (``{"percentage": 10, "allow": ["qa-client"]}``). A bare number is refused.

    Args:
        prefix: The variables' prefix.
        environ: Where to read them (default ``os.environ``).
        reload_interval: Seconds between reads; ``None`` (the default) reads them
            once, and again on ``Flags.reload()``.

    Examples:
        >>> source = EnvSource(environ={"RP_FLAG_NEW_CONVERSIONS_ENDPOINT": "25%"})
        >>> source.load()["new_conversions_endpoint"].percentage
        25.0
    """

    __slots__ = ("_environ", "prefix", "reload_interval")

    def __init__(
        self,
        prefix: str = "RP_FLAG_",
        *,
        environ: Mapping[str, str] | None = None,
        reload_interval: float | None = None,
    ) -> None:
        self.prefix = non_empty_str().check("prefix", prefix)
        self._environ = os.environ if environ is None else environ
        self.reload_interval = check_interval(reload_interval)

    @property
    def where(self) -> str:
        """``environment RP_FLAG_*``."""
        return f"environment {self.prefix}*"

    def load(self) -> Mapping[str, Flag]:
        """Every ``<prefix>*`` variable as a flag."""
        flags: dict[str, Flag] = {}
        seen: dict[str, str] = {}
        for variable, value in sorted(self._environ.items()):
            if variable.startswith(self.prefix):
                name = variable[len(self.prefix) :].lower()
                if name in seen:  # RP_FLAG_BETA and RP_FLAG_beta: neither may win silently
                    raise ConfigurationError(
                        f"flag {name!r} is set twice: by {seen[name]} and by {variable}",
                        option=variable,
                        value=value,
                    )
                seen[name] = variable
                flags[name] = parse_flag(name, value, where=variable)
        return flags

    def __repr__(self) -> str:
        return f"EnvSource({self.prefix!r})"


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - Python 3.10 only
        return importlib.import_module("tomli")
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError(
            package="tomli", extra="toml", feature="A TOML flags file on Python 3.10"
        ) from exc


class FileSource:
    """Flags from a TOML or JSON file, read again when it changes.

    The file maps flag names to values, at the top level or under one
    ``[flags]`` table::

        [flags]
        new_conversions_endpoint = "25%"
        legacy_export = "off"
        fast_path = { percentage = 10, allow = ["qa-client"] }

    The file is checked (its modification time, size and inode) every
    ``reload_interval`` seconds and parsed again only when it changed. Write
    it atomically (a new file renamed over the old one); a half-written file
    that does not parse is reported and the last good flags stay in use.
    TOML needs Python 3.11+ or ``pip install 'resilient-pipeline[toml]'``.

    Args:
        path: A ``.toml`` or ``.json`` file.
        format: ``"toml"`` or ``"json"``; by default from the file's suffix.
        reload_interval: Seconds between checks (``None``: only on ``Flags.reload()``).

    Examples:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "flags.json"
        >>> _ = path.write_text('{"new_conversions_endpoint": "10%"}')
        >>> FileSource(path).load()["new_conversions_endpoint"].percentage
        10.0
    """

    __slots__ = ("_cache", "_signature", "format", "path", "reload_interval")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: Literal["toml", "json"] | None = None,
        reload_interval: float | None = 5.0,
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower().lstrip(".")
        chosen = suffix if format is None else format
        if chosen not in {"toml", "json"}:
            raise ConfigurationError.for_option(
                "format",
                format,
                f"must be 'toml' or 'json' (the file {str(self.path)!r} has no such suffix)",
            )
        if chosen == "toml":
            _toml()  # a missing parser fails here, not at the first reload
        self.format: Literal["toml", "json"] = "toml" if chosen == "toml" else "json"
        self.reload_interval = check_interval(reload_interval)
        self._signature: tuple[int, int, int] | None = None
        self._cache: dict[str, Flag] = {}

    @property
    def where(self) -> str:
        """The file's path."""
        return str(self.path)

    def load(self) -> Mapping[str, Flag]:
        """The file's flags, parsed again only if it changed since the last read."""
        try:
            stat = self.path.stat()
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if signature == self._signature:
                return self._cache
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"flags file {self.where}: cannot read it ({type(exc).__name__}: {exc.strerror})",
                option="path",
                value=self.where,
            ) from exc
        try:
            data = _toml().loads(text) if self.format == "toml" else loads_json(text)
        except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError
            raise ConfigurationError(
                f"flags file {self.where}: not valid {self.format.upper()} ({exc})",
                option="path",
                value=self.where,
            ) from None
        flags = flags_from_mapping(data, where=self.where)
        self._signature, self._cache = signature, flags
        return flags

    def __repr__(self) -> str:
        return f"FileSource({self.where!r})"
