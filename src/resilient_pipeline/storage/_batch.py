"""The pure core of ``idempotent_upsert``: options, row checks, duplicate keys, results.

Nothing here touches a database. A store describes its table
(:class:`TableInfo`); :func:`prepare_batch` turns the caller's rows into
validated tuples with no duplicate key (or raises, naming every problem), and
the store's dialect-specific writer applies the :class:`Batch`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import is_, itemgetter
from typing import Any, Literal, TypeAlias, cast

import attrs

from resilient_pipeline.exceptions import (
    ConfigurationError,
    DuplicateKeyError,
    InvalidBatchError,
    MissingUniqueConstraintError,
    RowProblem,
)

from ._sql import quote_columns, validate_identifier

__all__ = [
    "Batch",
    "ColumnInfo",
    "OnDuplicate",
    "TableInfo",
    "UpsertOptions",
    "UpsertResult",
    "ValueCheck",
    "ValueConvert",
    "prepare_batch",
]

OnDuplicate: TypeAlias = Literal["error", "first", "last"]
ValueCheck: TypeAlias = Callable[
    [Sequence[str], Sequence[tuple[Any, ...]], Sequence[set[type]]], list[RowProblem]
]
"""A store's own value rules: ``(columns, rows, kinds) -> problems``; see ``TableInfo``."""
ValueConvert: TypeAlias = Callable[[Sequence[str], list[tuple[Any, ...]]], list[tuple[Any, ...]]]
"""The values a store keeps: ``(columns, rows) -> rows``; see :attr:`TableInfo.convert_values`."""
_MAX_PROBLEMS = 100


@attrs.frozen
class UpsertResult:
    """What an upsert did, row by row: the counts always add up to the batch size.

    Attributes:
        inserted: Rows whose key was new.
        updated: Rows whose key existed with different values (rewritten).
        unchanged: Rows identical to what was stored (not rewritten: no write
            amplification, no ``updated_at`` churn).
        stale: Rows not written because the stored ``version`` was newer.
        duplicates: Rows dropped because ``on_duplicate`` kept another row with the same key.
        inserted_keys: With ``returning=True``, the keys inserted.
        updated_keys: With ``returning=True``, the keys updated.

    Examples:
        >>> result = UpsertResult(inserted=2, updated=1, unchanged=7)
        >>> result.total, result.changed
        (10, 3)
    """

    inserted: int
    updated: int
    unchanged: int
    stale: int = 0
    duplicates: int = 0
    inserted_keys: tuple[tuple[Any, ...], ...] = ()
    updated_keys: tuple[tuple[Any, ...], ...] = ()

    @property
    def total(self) -> int:
        """Every row of the batch: ``inserted + updated + unchanged + stale + duplicates``."""
        return self.inserted + self.updated + self.unchanged + self.stale + self.duplicates

    @property
    def changed(self) -> int:
        """Rows actually written: ``inserted + updated``."""
        return self.inserted + self.updated

    def __repr__(self) -> str:
        parts = [f"inserted={self.inserted}", f"updated={self.updated}"]
        parts.append(f"unchanged={self.unchanged}")
        for name in ("stale", "duplicates", "inserted_keys", "updated_keys"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value!r}")
        return f"UpsertResult({', '.join(parts)})"


@attrs.frozen
class ColumnInfo:
    """A column as the store describes it.

    Attributes:
        accepts: The Python types a value may have (``None``: any type).
    """

    name: str
    type_name: str
    nullable: bool
    accepts: tuple[type, ...] | None


@attrs.frozen
class TableInfo:
    """A table as the store describes it: columns and unique column sets.

    Attributes:
        sql: The quoted, schema-qualified name, ready for SQL.
        unique_keys: Every column set covered by a UNIQUE constraint, unique
            index (without predicate) or primary key.
        add_constraint: The statement that would make ``key`` unique (for error messages).
        check_values: The store's own value rules: what it cannot keep exactly
            (NaN on SQLite, an int beyond the column's range, ...), given each
            column's set of Python types (``NoneType`` included) as the type
            check found them; one
            :class:`~resilient_pipeline.exceptions.RowProblem` per value refused,
            with the row's index in the caller's batch. It sees every row, before
            duplicate keys are looked for; what it says about a value of a type
            the column does not accept is dropped (the type problem is reported).
        convert_values: The values the store will keep, for rows that passed
            every check (``char(n)`` padding dropped, every NaN one object, ...),
            so that keys the store holds equal are equal before deduplication.
            It may also refuse values, raising
            :class:`~resilient_pipeline.exceptions.InvalidBatchError` (PostgreSQL
            checks and converts in one pass).
            A converter with a ``with_kinds(columns, rows, kinds)`` method is
            called through it instead, with each column's set of types as the
            type check found them (PostgreSQL's then reads most columns once, or not at all).
    """

    name: str
    sql: str
    columns: Mapping[str, ColumnInfo]
    unique_keys: frozenset[frozenset[str]]
    add_constraint: str = "ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE ({columns})"
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    check_values: ValueCheck | None = None
    convert_values: ValueConvert | None = None


def _names(option: str, value: object, *, allow_empty: bool) -> tuple[str, ...]:
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, Iterable):
        raise ConfigurationError.for_option(option, value, "must be a column name or names")
    result = tuple(validate_identifier(n, option=option) for n in names)
    if not result and not allow_empty:
        raise ConfigurationError.for_option(option, value, "must name at least one column")
    if len(set(result)) != len(result):
        raise ConfigurationError.for_option(option, value, "names a column twice")
    return result


def _key_names(value: object) -> tuple[str, ...]:
    return _names("key", value, allow_empty=False)


def _insert_only_names(value: object) -> tuple[str, ...]:
    return _names("insert_only", value, allow_empty=True)


@attrs.frozen(kw_only=True)
class UpsertOptions:
    """The validated options of one upsert (see ``idempotent_upsert``).

    Examples:
        >>> UpsertOptions(key="day").key
        ('day',)
    """

    key: tuple[str, ...] = attrs.field(
        default=("client_id", "date", "platform"), converter=_key_names
    )
    update_columns: tuple[str, ...] | None = attrs.field(default=None)
    insert_only: tuple[str, ...] = attrs.field(default=(), converter=_insert_only_names)
    version: str | None = None
    returning: bool = False
    on_duplicate: OnDuplicate = "error"

    def __attrs_post_init__(self) -> None:
        if self.update_columns is not None:
            cols = _names("update_columns", self.update_columns, allow_empty=True)
            object.__setattr__(self, "update_columns", cols)
            if set(cols) & set(self.key):
                raise ConfigurationError.for_option(
                    "update_columns", self.update_columns, "must not include key columns"
                )
        if set(self.insert_only) & set(self.key):
            raise ConfigurationError.for_option(
                "insert_only", self.insert_only, "must not include key columns"
            )
        if self.version is not None:
            validate_identifier(self.version, option="version")
            if self.version in self.key or self.version in self.insert_only:
                raise ConfigurationError.for_option(
                    "version", self.version, "must be an updatable column, not a key"
                )
        if not isinstance(self.returning, bool):
            raise ConfigurationError.for_option("returning", self.returning, "must be a bool")
        if self.on_duplicate not in ("error", "first", "last"):
            raise ConfigurationError.for_option(
                "on_duplicate", self.on_duplicate, "must be 'error', 'first' or 'last'"
            )


@attrs.frozen
class Batch:
    """Validated rows, ready for a store's writer.

    Attributes:
        rows: One tuple per row, in ``columns`` order, no two with the same key.
        key_index: Positions of the key columns in ``columns``.
        update_columns: Columns rewritten when the key exists (and compared for "unchanged").
    """

    table: TableInfo
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    key: tuple[str, ...]
    key_index: tuple[int, ...]
    update_columns: tuple[str, ...]
    version: str | None
    returning: bool
    duplicates: int
    size: int


def _as_mapping(row: object) -> Mapping[str, Any] | None:
    if isinstance(row, Mapping):
        return row
    if attrs.has(type(row)):
        return attrs.asdict(row, recurse=False)  # type: ignore[arg-type]
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    return None


def _key_getter(index: Sequence[int]) -> Any:
    getter = itemgetter(*index)
    return getter if len(index) > 1 else (lambda row: (getter(row),))


def _accepts(column: ColumnInfo, kind: type) -> bool:
    if column.accepts is None or kind in column.accepts:
        return True
    if issubclass(kind, bool) and bool not in column.accepts:
        return False  # True is an int in Python, not in SQL
    return issubclass(kind, column.accepts)


def _check_types(
    table: TableInfo,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    key: set[str],
    found: list[set[type]],
) -> list[RowProblem]:
    """Values of types the columns do not take; each column's types appended to ``found``."""
    problems: list[RowProblem] = []
    none = type(None)
    for position, name in enumerate(columns):
        info = table.columns[name]
        kinds = set(map(type, map(itemgetter(position), rows)))
        found.append(kinds)
        nulls_ok = info.nullable and name not in key
        if all((k is none and nulls_ok) or (k is not none and _accepts(info, k)) for k in kinds):
            continue  # the common case: one pass over the column, in C
        for index, row in enumerate(rows):
            value = row[position]
            if value is None:
                if not nulls_ok:
                    what = "missing key value" if name in key else "NULL in a NOT NULL column"
                    problems.append(RowProblem(index, name, what))
            elif not _accepts(info, type(value)):
                problems.append(
                    RowProblem(
                        index,
                        name,
                        f"expected {info.type_name}, got {type(value).__name__} {value!r:.40}",
                    )
                )
            if len(problems) >= _MAX_PROBLEMS:
                return problems
    return problems


def _check_values(
    table: TableInfo,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    version: str | None,
    type_problems: list[RowProblem],
    kinds: Sequence[set[type]],
) -> list[RowProblem]:
    """A NULL ``version`` and the store's own rules; one problem per row and column at most."""
    if len(type_problems) >= _MAX_PROBLEMS:
        return []
    problems: list[RowProblem] = []
    if version is not None and version in columns:
        # A row without a version is neither newer nor older than the stored
        # one: refuse it rather than guess (it used to be counted "unchanged").
        values = list(map(itemgetter(columns.index(version)), rows))
        if any(map(is_, values, repeat(None))):
            problems.extend(
                RowProblem(index, version, "NULL version (version= needs one in every row)")
                for index, value in enumerate(values)
                if value is None
            )
    if table.check_values is not None:
        problems.extend(table.check_values(columns, rows, kinds))
    if type_problems:
        seen = {(p.index, p.column) for p in type_problems}
        problems = [p for p in problems if (p.index, p.column) not in seen]
    return problems[: _MAX_PROBLEMS - len(type_problems)]


def _shape(
    table: TableInfo,
    maps: list[Mapping[str, Any] | None],
    key: tuple[str, ...],
    *,
    same_keys: bool = False,
) -> Any:
    """The batch's columns and what is wrong with them (``same_keys``: already proven)."""
    problems: list[RowProblem] = []
    first = next((m for m in maps if m is not None), None)
    columns = tuple(first) if first is not None else key
    expected = set(columns)
    if first is not None and (
        same_keys or all(m is not None and m.keys() == expected for m in maps)
    ):
        maps = []  # every row has the same columns: nothing to report row by row
    for index, mapping in enumerate(maps):
        if mapping is None:
            problems.append(RowProblem(index, None, "not a mapping, attrs or dataclass instance"))
        elif mapping.keys() != expected:
            problems.extend(RowProblem(index, c, "missing") for c in expected - set(mapping))
            problems.extend(
                RowProblem(index, c, "not in the other rows") for c in set(mapping) - expected
            )
        if len(problems) >= _MAX_PROBLEMS:
            break
    for name in columns:
        try:
            validate_identifier(name, option="column")
        except ConfigurationError as exc:
            problems.append(RowProblem(0, str(name)[:63], str(exc)))
            continue
        if name not in table.columns:
            problems.append(RowProblem(0, name, f"unknown column (not in {table.name})"))
    problems.extend(
        RowProblem(0, name, "missing key column") for name in key if name not in expected
    )
    return columns, problems


def _tuples(
    table: TableInfo, maps: list[Mapping[str, Any] | None], key: tuple[str, ...], *, dicts: bool
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """The batch's columns and each row's values in their order; raise naming every problem."""
    # Plain dicts all of one size, each holding every column (else the getter
    # raises KeyError): every row has exactly the same keys, proven in C.
    if dicts and len(set(map(len, cast("list[dict[str, Any]]", maps)))) == 1:
        columns, problems = _shape(table, maps, key, same_keys=True)
        if not problems:
            with contextlib.suppress(KeyError):  # a row lacks a column: named below
                return columns, _values(columns, cast("list[Mapping[str, Any]]", maps))
    columns, problems = _shape(table, maps, key)
    if problems:
        raise InvalidBatchError(table=table.name, problems=problems)
    return columns, _values(columns, cast("list[Mapping[str, Any]]", maps))  # no None left


def _convert(
    convert: ValueConvert,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    kinds: Sequence[set[type]],
) -> list[tuple[Any, ...]]:
    # A converter with a ``with_kinds`` method (PostgreSQL's) also takes each
    # column's set of types, which the type check found: it need not find them again.
    with_kinds = getattr(convert, "with_kinds", None)
    if with_kinds is None:
        return convert(columns, rows)
    return cast("list[tuple[Any, ...]]", with_kinds(columns, rows, kinds))


def _values(columns: tuple[str, ...], maps: list[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    getter = itemgetter(*columns)
    return list(map(getter, maps)) if len(columns) > 1 else [(getter(m),) for m in maps]


def prepare_batch(table: TableInfo, rows: Iterable[object], options: UpsertOptions) -> Batch:
    """Check ``rows`` against ``table`` and ``options``; raise with every problem found.

    Raises:
        MissingUniqueConstraintError: ``key`` is not exactly a unique column set of the table.
        DuplicateKeyError: a key appears twice and ``on_duplicate="error"``.
        InvalidBatchError: unknown columns, missing key values, type mismatches, a NULL
            ``version``, values the store cannot keep exactly (per row and column).
    """
    key = options.key
    if frozenset(key) not in table.unique_keys:
        names = {"table": table.sql, "name": f'"{table.name}_{"_".join(key)}_key"'[:63]}
        statement = table.add_constraint.format(columns=quote_columns(key), **names)
        raise MissingUniqueConstraintError(table=table.name, key=key, statement=statement)
    rows = rows if isinstance(rows, list) else list(rows)
    # The common case, plain dicts, skips the per-row conversion.
    dicts = {dict} == set(map(type, rows))
    maps: list[Mapping[str, Any] | None] = (
        cast("list[Mapping[str, Any] | None]", rows)
        if dicts
        else [_as_mapping(row) for row in rows]
    )
    if not maps:
        return Batch(table, (), [], key, (), (), options.version, options.returning, 0, 0)
    columns, tuples = _tuples(table, maps, key, dicts=dicts)
    kinds: list[set[type]] = []
    problems = _check_types(table, columns, tuples, set(key), kinds)
    problems += _check_values(table, columns, tuples, options.version, problems, kinds)
    if problems:
        raise InvalidBatchError(table=table.name, problems=problems)

    given = tuples
    if table.convert_values is not None:
        tuples = _convert(table.convert_values, columns, tuples, kinds)
    key_index = tuple(columns.index(k) for k in key)
    tuples, duplicates = _deduplicate(table, tuples, key, key_index, options.on_duplicate, given)

    excluded = set(key) | set(options.insert_only)
    if options.update_columns is None:
        update = tuple(c for c in columns if c not in excluded)
    else:
        unknown = [c for c in options.update_columns if c not in columns]
        if unknown:
            raise ConfigurationError.for_option(
                "update_columns", options.update_columns, f"{unknown} are not in the rows"
            )
        update = tuple(c for c in options.update_columns if c not in set(options.insert_only))
    if options.version is not None and options.version not in update:
        raise ConfigurationError.for_option(
            "version", options.version, "must be one of the updated columns of the rows"
        )
    return Batch(
        table,
        columns,
        tuples,
        key,
        key_index,
        update,
        options.version,
        options.returning,
        duplicates,
        len(maps),
    )


def _hashable(value: object) -> object:
    try:
        hash(value)
    except TypeError:
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        return (type(value), repr(value))  # equal reprs: the same value, for any sane type
    return value


def _deduplicate(
    table: TableInfo,
    rows: list[tuple[Any, ...]],
    key: tuple[str, ...],
    key_index: tuple[int, ...],
    policy: OnDuplicate,
    given: list[tuple[Any, ...]],
) -> tuple[list[tuple[Any, ...]], int]:
    """Keys compared as the store keeps them (``rows``), reported as the caller gave them."""
    keys = list(map(_key_getter(key_index), rows))
    try:
        distinct = len(set(keys))
    except TypeError:  # an unhashable key value: a bytearray, a list for an array column
        keys = [tuple(map(_hashable, k)) for k in keys]
        distinct = len(set(keys))
    if distinct == len(keys):
        return rows, 0
    if policy == "error":
        seen: dict[Any, int] = {}
        for index, k in enumerate(keys):
            if k in seen:
                raise DuplicateKeyError(
                    table=table.name,
                    key_columns=key,
                    key=_key_getter(key_index)(given[index]),
                    indexes=(seen[k], index),
                )
            seen[k] = index
    # dict keeps the first insertion position; "last" overwrites the value only.
    kept: dict[Any, tuple[Any, ...]] = {}
    for k, row in zip(keys, rows, strict=True):
        if policy == "last" or k not in kept:
            kept[k] = row
    return list(kept.values()), len(rows) - len(kept)
