"""A flag's definition, and the one parser every source uses to read one.

Precedence when a flag is evaluated for a key (the first rule that applies
decides): the kill switch (``enabled=False``: off for everyone), then the
deny list, then the allow list, then the percentage rollout.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

from resilient_pipeline.exceptions import ConfigurationError

from ._bucket import normalize_key

__all__ = [
    "Flag",
    "FlagReason",
    "check_name",
    "flags_from_list",
    "flags_from_mapping",
    "loads_json",
    "parse_flag",
]

FlagReason: TypeAlias = Literal[
    "kill_switch", "deny_list", "allow_list", "percentage", "no_key", "unknown"
]
"""Why an evaluation gave its answer.

``kill_switch``: the flag is switched off; ``deny_list`` / ``allow_list``: the
key is listed; ``percentage``: the key's bucket decided; ``no_key``: a partial
rollout asked without a key (off); ``unknown``: no source defines the flag
(the ``Flags`` default).
"""

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
_FIELDS = frozenset({"enabled", "percentage", "allow", "deny"})


def check_name(name: object, *, option: str = "name") -> str:
    """``name`` if it is a valid flag name (lower-case snake_case, at most 63 characters)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError.for_option(
            option,
            name,
            "a flag name is lower-case snake_case: a letter, then letters, digits or '_'"
            " (at most 63 characters), like 'new_conversions_endpoint'",
        )
    return name


def _name(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_name(value, option=attribute.name)


def _enabled(instance: Flag, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise _bad(instance, attribute.name, value, "must be true or false")


def _percentage(instance: Flag, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= 100
    ):
        raise _bad(instance, attribute.name, value, "must be a number from 0 to 100")


def _bad(flag: Flag, option: str, value: object, problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"flag {flag.name!r}: {option}={value!r} is invalid: {problem}",
        option=option,
        value=value,
    )


def _keys(value: object) -> frozenset[str]:
    # A lone string would otherwise become a set of its characters.
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError
    return frozenset(normalize_key(key) for key in value)


def _keys_converter(value: object) -> object:
    try:
        return _keys(value)
    except TypeError:
        return value  # the validator names the flag and the option


def _keys_validator(instance: Flag, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, frozenset):
        raise _bad(instance, attribute.name, value, "must be a list of keys")


@attrs.frozen(kw_only=True)
class Flag:
    """One flag: a kill switch, deny and allow lists, and a percentage rollout.

    Keys are compared and bucketed as text (``str(key)``): ``7`` and ``"7"``
    are the same client.

    Args:
        name: Lower-case snake_case, at most 63 characters.
        percentage: The share of keys that are on, from 0 to 100 (fractions allowed:
            ``0.5`` is one key in two hundred).
        enabled: The kill switch: ``False`` turns the flag off for everyone, listed keys too.
        allow: Keys always on (unless the kill switch is off or they are denied).
        deny: Keys always off.

    Examples:
        >>> flag = Flag(name="new_conversions_endpoint", percentage=10, allow=["qa-client", 7])
        >>> flag.evaluate("qa-client"), flag.evaluate("7")
        ((True, 'allow_list'), (True, 'allow_list'))
        >>> Flag(name="new_conversions_endpoint", percentage=100, enabled=False).evaluate("qa")
        (False, 'kill_switch')
    """

    name: str = attrs.field(validator=_name)
    percentage: float = attrs.field(validator=_percentage)
    enabled: bool = attrs.field(default=True, validator=_enabled)
    allow: frozenset[str] = attrs.field(
        default=frozenset(), converter=_keys_converter, validator=_keys_validator
    )
    deny: frozenset[str] = attrs.field(
        default=frozenset(), converter=_keys_converter, validator=_keys_validator
    )

    def evaluate(self, key: object = None) -> tuple[bool, FlagReason]:
        """Whether the flag is on for ``key``, and why (slow path: no caching).

        ``Flags.enabled`` gives the same answers, faster.
        """
        from ._bucket import bucket

        if not self.enabled:
            return False, "kill_switch"
        if key is not None:
            text = normalize_key(key)
            if text in self.deny:
                return False, "deny_list"
            if text in self.allow:
                return True, "allow_list"
        if self.percentage >= 100:
            return True, "percentage"
        if self.percentage <= 0:
            return False, "percentage"
        if key is None:
            return False, "no_key"
        return bucket(self.name, key) < self.percentage * 100, "percentage"

    def to_dict(self) -> dict[str, object]:
        """The definition as JSON types: what a file, the store or Redis holds.

        Examples:
            >>> Flag(name="x", percentage=25, deny=["b", "a"]).to_dict()
            {'enabled': True, 'percentage': 25, 'allow': [], 'deny': ['a', 'b']}
        """
        return {
            "enabled": self.enabled,
            "percentage": self.percentage,
            "allow": sorted(self.allow),
            "deny": sorted(self.deny),
        }


_SWITCH = {"on": True, "true": True, "off": False, "false": False}
_SYNTAX = (
    "write on, off, a percentage like '25%', or a table/object with"
    " enabled, percentage, allow, deny"
)


def parse_flag(name: str, value: object, *, where: str) -> Flag:
    """Read one flag from a source's raw value; bad input names the flag and ``where``.

    ``value`` is ``True``/``False``, ``"on"``/``"off"``, ``"25%"``, a JSON
    object in a string (``'{"percentage": 25, "allow": ["qa"]}'``) or a
    mapping of ``enabled``, ``percentage``, ``allow``, ``deny``. A mapping
    needs ``percentage`` unless it switches the flag off. A bare number is
    refused: ``25`` could mean 25 % or a typo for ``on``; write ``"25%"``.

    Examples:
        >>> parse_flag("beta", "12.5%", where="example").percentage
        12.5
        >>> parse_flag("beta", "off", where="example").enabled
        False
        >>> parse_flag("beta", "25", where="RP_FLAG_BETA")
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: flag 'beta' in RP_FLAG_BETA: ...
    """
    try:
        check_name(name, option="flag")
        return _parse(name, value)
    except ConfigurationError as exc:
        message = str(exc).removeprefix(f"flag {name!r}: ")
        raise ConfigurationError(
            f"flag {name!r} in {where}: {message}", option=exc.option, value=exc.value
        ) from None


def _parse(name: str, value: object) -> Flag:
    if isinstance(value, bool):
        return Flag(name=name, enabled=value, percentage=100 if value else 0)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _SWITCH:
            on = _SWITCH[text.lower()]
            return Flag(name=name, enabled=on, percentage=100 if on else 0)
        if text.endswith("%"):
            try:
                percentage = float(text[:-1])
            except ValueError:
                raise _syntax(value) from None
            return Flag(name=name, percentage=percentage)
        if text.startswith("{"):
            try:
                value = loads_json(text)
            except ValueError as exc:
                raise _syntax(value, f"not valid JSON: {exc}") from None
        else:
            raise _syntax(value)
    if not isinstance(value, Mapping):
        raise _syntax(value)
    unknown = sorted(str(field) for field in value if field not in _FIELDS)
    if unknown:
        raise ConfigurationError(
            f"unknown field(s) {', '.join(unknown)}; a flag has {', '.join(sorted(_FIELDS))}",
            option=unknown[0],
            value=value,
        )
    fields: dict[str, Any] = dict(value)
    if "percentage" not in fields:
        if fields.get("enabled") is not False:
            raise ConfigurationError(
                "percentage is missing: give 0 to 100 (or enabled = false to switch it off)",
                option="percentage",
                value=None,
            )
        fields["percentage"] = 0
    return Flag(name=name, **fields)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:  # json.loads would keep the last one silently
            raise ValueError(f"the key {key!r} appears twice")
        result[key] = value
    return result


def loads_json(text: str) -> Any:
    """``json.loads`` that refuses an object with the same key twice (``ValueError``)."""
    return json.loads(text, object_pairs_hook=_unique)


def _syntax(value: object, why: str = "") -> ConfigurationError:
    reason = f" ({why})" if why else ""
    return ConfigurationError(
        f"{value!r} is not a flag value{reason}: {_SYNTAX}", option="value", value=value
    )


def flags_from_mapping(data: object, *, where: str) -> dict[str, Flag]:
    """Every flag of a parsed file or object: ``{name: value, ...}``."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            f"{where}: expected a table of flags, got {type(data).__name__}",
            option="flags",
            value=type(data).__name__,
        )
    table = data.get("flags", data) if set(data) == {"flags"} else data
    if not isinstance(table, Mapping):
        raise ConfigurationError(
            f"{where}: expected a table of flags under 'flags'", option="flags", value=None
        )
    return {str(name): parse_flag(str(name), value, where=where) for name, value in table.items()}


def flags_from_list(flags: Iterable[Flag]) -> dict[str, Flag]:
    """``{flag.name: flag}``; the same name twice is a ``ConfigurationError``."""
    result: dict[str, Flag] = {}
    for flag in flags:
        if not isinstance(flag, Flag):
            raise ConfigurationError.for_option("flags", flag, "must be Flag objects")
        if flag.name in result:
            raise ConfigurationError.for_option("flags", flag.name, "names a flag twice")
        result[flag.name] = flag
    return result
