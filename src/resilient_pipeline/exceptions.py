"""The exceptions resilient-pipeline raises, all under one root.

Catch :class:`ResilientPipelineError` to catch everything the library itself
raises. Errors that describe bad *input* also subclass the builtin that code
already catches (``ValueError``, ``TimeoutError``, ``ImportError``)::

    ResilientPipelineError
    ├── PermanentError                         marker: never retried, never hidden by fallback
    │   ├── ConfigurationError (ValueError)    an option or argument is invalid
    │   ├── MissingDependencyError (ImportError)  an optional extra is not installed
    │   ├── RetryPredicateError                retry_if, retry_on_result or retry_after raised
    │   │                                      (cause: its exception; .error: the attempt's)
    │   ├── ValidationError (ValueError)       a row broke validation rules (lists every issue)
    │   └── QuarantineError (ValueError)       a row cannot be stored in quarantine, or a
    │                                          stored record cannot be read back
    ├── BadResultError                         retry_on_result still rejected the last result
    ├── DeadlineExceededError (TimeoutError)   a time budget ran out
    ├── RejectedError                          a call was refused before it ran
    │   ├── CircuitOpenError                   a circuit breaker is open (or its probes are taken)
    │   ├── BulkheadFullError                  every slot and every queue place is taken
    │   ├── RateLimitedError                   no token is free within the time allowed
    │   └── LimitStoreUnavailableError         a Redis limiter or bulkhead cannot reach Redis
    ├── PartitionContractError                 a unit broke its partition contract (every issue)
    │   ├── IncompletePartitionError           a collection is missing or empty: retry, then report
    │   └── InvalidPartitionError (PermanentError, ValueError)
    │                                          rows or pairings are wrong: quarantine the whole unit
    ├── CheckError                             a consistency check could not run
    ├── AlertDeliveryError                     a notifier could not deliver an alert
    ├── LedgerError                            the partition ledger refused an operation
    │   ├── LeaseLostError                     a worker's lease expired and was re-claimed
    │   └── BackfillError                      partitions were still failing after a backfill
    └── StoreError                             a database operation failed (cause: driver error)
        ├── TransientStoreError                connection lost, serialization failure, deadlock:
        │                                      safe to retry (the writes are idempotent)
        ├── UnitOfWorkError (PermanentError)   a unit of work was misused (closed, wrong task)
        ├── MissingUniqueConstraintError (ConfigurationError)
        │                                      the upsert key is not covered by a UNIQUE constraint
        └── InvalidBatchError (PermanentError, ValueError)
                                               rows rejected before writing, each problem named
            └── DuplicateKeyError              the same key twice in one batch

Errors raised by *your* code are never wrapped: after the last attempt
``retry_with_backoff`` re-raises your last exception itself, with a note listing
every attempt. Only a retry predicate that fails is reported as
:class:`RetryPredicateError`, your exception attached.

Every error carries its context as attributes (the option, the value, the
retry-after hint, ...) and survives ``pickle`` with those attributes, so errors
can cross process boundaries (multiprocessing, task queues).

Examples:
    >>> from resilient_pipeline.exceptions import ConfigurationError
    >>> err = ConfigurationError.for_option("max_attempts", 0, "must be >= 1")
    >>> isinstance(err, ValueError), err.option, err.value
    (True, 'max_attempts', 0)
    >>> str(err)
    'max_attempts=0 is invalid: must be >= 1'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

__all__ = [
    "AlertDeliveryError",
    "BackfillError",
    "BadResultError",
    "BulkheadFullError",
    "CheckError",
    "CircuitOpenError",
    "ConfigurationError",
    "DeadlineExceededError",
    "DuplicateKeyError",
    "IncompletePartitionError",
    "InvalidBatchError",
    "InvalidPartitionError",
    "LeaseLostError",
    "LedgerError",
    "LimitStoreUnavailableError",
    "MissingDependencyError",
    "MissingUniqueConstraintError",
    "PartitionContractError",
    "PermanentError",
    "QuarantineError",
    "RateLimitedError",
    "RejectedError",
    "ResilientPipelineError",
    "RetryPredicateError",
    "RowProblem",
    "StoreError",
    "TransientStoreError",
    "UnitOfWorkError",
    "ValidationError",
]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls, *args)
    exc.args = args
    for name, value in state.items():
        setattr(exc, name, value)  # a slot or the instance dict
    return exc


def _state(exc: BaseException) -> dict[str, Any]:
    """``exc``'s attributes: its instance dict and the slots its classes declare."""
    state = dict(exc.__dict__)
    for cls in type(exc).__mro__:
        for name in cls.__dict__.get("__slots__", ()):
            if hasattr(exc, name):
                state[name] = getattr(exc, name)
    return state


class ResilientPipelineError(Exception):
    """Root of every exception resilient-pipeline raises.

    Subclasses set their context as attributes in ``__init__``; pickling
    restores those attributes without calling ``__init__`` again, so
    subclasses are free to have keyword-only constructors.

    Examples:
        >>> import pickle
        >>> err = RejectedError("upstream busy", retry_after=2.5)
        >>> clone = pickle.loads(pickle.dumps(err))
        >>> (str(clone), clone.retry_after)
        ('upstream busy', 2.5)
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, _state(self)))


class PermanentError(ResilientPipelineError):
    """Marker base: the same call would fail the same way, so never retry it.

    ``retry_with_backoff`` re-raises a ``PermanentError`` at once and
    ``fallback`` never hides one. The library's own input and set-up errors
    derive from it; subclass it for errors of your own that no retry can fix
    (a revoked token, an account that does not exist).

    Examples:
        >>> class AccountClosedError(PermanentError):
        ...     pass
        >>> issubclass(ConfigurationError, PermanentError)
        True
    """


class ConfigurationError(PermanentError, ValueError):
    """An option or argument is invalid; raised when the object is built.

    Attributes:
        option: The name of the offending option (``"max_attempts"``).
        value: The value that was given.

    Examples:
        >>> from resilient_pipeline import retry_with_backoff
        >>> try:
        ...     retry_with_backoff(max_attempts=0)
        ... except ConfigurationError as e:
        ...     print(e.option)
        max_attempts
    """

    def __init__(self, message: str, *, option: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.option = option
        self.value = value

    @classmethod
    def for_option(cls, option: str, value: object, problem: str) -> ConfigurationError:
        """Build the error for ``option=value`` with a one-line reason."""
        return cls(f"{option}={value!r} is invalid: {problem}", option=option, value=value)


class MissingDependencyError(PermanentError, ImportError):
    """An optional dependency is needed and not installed.

    Attributes:
        extra: The pip extra that installs it (``"postgres"``, ``"redis"``, ...).

    Examples:
        >>> err = MissingDependencyError(package="redis", extra="redis", feature="Redis state")
        >>> print(err)
        Redis state needs the 'redis' package: pip install 'resilient-pipeline[redis]'
    """

    def __init__(self, *, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the {package!r} package: pip install 'resilient-pipeline[{extra}]'"
        )
        self.package = package
        self.extra = extra
        self.feature = feature


class BadResultError(ResilientPipelineError):
    """Every attempt returned a result that ``retry_on_result`` rejected.

    Attributes:
        result: The last result returned.
        attempts: How many attempts were made.

    Examples:
        >>> from resilient_pipeline import retry_with_backoff
        >>> @retry_with_backoff(max_attempts=2, base_delay=0, retry_on_result=lambda r: r == [])
        ... def fetch() -> list[int]:
        ...     return []
        >>> try:
        ...     fetch()
        ... except BadResultError as e:
        ...     print(e.result, e.attempts)
        [] 2
    """

    def __init__(self, message: str, *, result: object, attempts: int) -> None:
        super().__init__(message)
        self.result = result
        self.attempts = attempts


class RetryPredicateError(PermanentError):
    """A retry predicate (``retry_if``, ``retry_on_result`` or ``retry_after``) raised.

    The call is not retried: a predicate that cannot decide is a bug to fix,
    not a failure to wait out. The predicate's exception is ``__cause__``;
    the exception of the attempt it was judging is :attr:`error`, and also
    ends the predicate exception's ``__context__`` chain, so the traceback
    shows both. The message names the predicate, never a result's value.

    Attributes:
        option: Which predicate raised: ``"retry_if"``, ``"retry_on_result"``
            or ``"retry_after"``.
        predicate: The predicate's qualified name.
        error: The attempt's exception the predicate was judging; ``None``
            when it was judging a result.
        attempts: How many attempts were made (the judged one included).

    Examples:
        >>> from resilient_pipeline import retry_with_backoff
        >>> def is_transient(error: Exception) -> bool:
        ...     return error.args[0]["transient"]  # expects a dict payload
        >>> @retry_with_backoff(base_delay=0, retry_if=is_transient)
        ... def fetch() -> str:
        ...     raise ConnectionError("connection reset")
        >>> try:
        ...     fetch()
        ... except RetryPredicateError as e:
        ...     print(e.option, e.predicate, type(e.__cause__).__name__, repr(e.error))
        retry_if is_transient TypeError ConnectionError('connection reset')
    """

    def __init__(
        self,
        message: str,
        *,
        option: str,
        predicate: str,
        error: BaseException | None,
        attempts: int,
    ) -> None:
        super().__init__(message)
        self.option = option
        self.predicate = predicate
        self.error = error
        self.attempts = attempts


class DeadlineExceededError(ResilientPipelineError, TimeoutError):
    """A time budget (a deadline or a timeout) ran out.

    Also a builtin ``TimeoutError``, so ``except TimeoutError`` catches it.

    Attributes:
        timeout: The budget in seconds, when known.

    Examples:
        >>> isinstance(DeadlineExceededError("fetch took too long", timeout=5.0), TimeoutError)
        True
    """

    def __init__(self, message: str, *, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class RejectedError(ResilientPipelineError):
    """A call was refused before it ran (open circuit, full bulkhead, rate limit).

    Attributes:
        retry_after: Seconds after which trying again may succeed, if known.
            ``retry_with_backoff`` treats it like a server-given delay.

    Examples:
        >>> RejectedError("quota used up", retry_after=30.0).retry_after
        30.0
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ValidationError(PermanentError, ValueError):
    """A row (or batch) broke validation rules; lists every issue, not just the first.

    Never retried by ``retry_with_backoff``: validating the same data again
    gives the same answer.

    Attributes:
        issues: Every :class:`~resilient_pipeline.validation.Issue` found, errors and warnings.

    Examples:
        >>> from resilient_pipeline import Field, Validator
        >>> v = Validator(fields={"clicks": Field(int), "spend": Field(float)})
        >>> try:
        ...     v.check({"clicks": True, "spend": "1.5"})
        ... except ValidationError as e:
        ...     print(e)
        2 validation issues:
          - clicks=True: expected int, got bool [type]
          - spend='1.5': expected float, got str (text is never converted to a number) [type]
    """

    def __init__(self, issues: Sequence[Any]) -> None:
        count = len(issues)
        lines = [f"{count} validation issue{'' if count == 1 else 's'}:"]
        lines += [f"  - {issue}" for issue in issues]
        super().__init__("\n".join(lines))
        self.issues = tuple(issues)


class QuarantineError(PermanentError, ValueError):
    """A row cannot be stored in quarantine, or a stored record cannot be read back.

    The quarantine stores every JSON value, every typed value it knows and
    any text losslessly; it refuses only values nested deeper than it can
    store safely (and cyclic ones). Then nothing of the batch is written. A
    record it cannot read (damaged by hand, or written by a newer version)
    raises it too. The message names the row, field or record, never a value.

    Attributes:
        row: The row's index in the batch given to ``quarantine``, when known.
        field: The field (the row's top-level key) holding the value, when known.
        record: The quarantine record's id, when known.

    Examples:
        >>> err = QuarantineError("row 3, field 'payload': nested too deeply",
        ...                       row=3, field="payload")
        >>> isinstance(err, ValueError), err.row, err.field, err.record
        (True, 3, 'payload', None)
    """

    def __init__(
        self,
        message: str,
        *,
        row: int | None = None,
        field: str | None = None,
        record: str | None = None,
    ) -> None:
        super().__init__(message)
        self.row = row
        self.field = field
        self.record = record


class PartitionContractError(ResilientPipelineError):
    """A unit of collections broke its partition contract; every issue is listed.

    Raised by ``CheckedUnit.raise_for_verdict()`` and ``PartitionContract.require()``
    (in :mod:`resilient_pipeline.validation`). Catch this base for both verdicts.

    Attributes:
        unit_id: The unit's id (e.g. ``"meta_ads/7/2026-11-28"``), if it was given one.
        verdict: ``"incomplete"`` or ``"invalid"``.
        issues: Every issue that decided the verdict (``UnitIssue`` objects, each
            naming its collection, row index and field).
        unit: The whole checked unit (``CheckedUnit``): hand it to
            ``quarantine_unit`` so no collection is written without the others.

    Examples:
        >>> err = IncompletePartitionError(unit_id="ads/7", issues=["conversions: empty"])
        >>> print(err)
        partition 'ads/7' is incomplete (1 issue):
          - conversions: empty
    """

    verdict = "invalid"
    MAX_LISTED = 20

    def __init__(self, *, unit_id: str | None, issues: Sequence[Any], unit: object = None) -> None:
        name = "partition" if unit_id is None else f"partition {unit_id!r}"
        count = len(issues)
        lines = [f"{name} is {self.verdict} ({count} issue{'' if count == 1 else 's'}):"]
        lines += [f"  - {issue}" for issue in issues[: self.MAX_LISTED]]
        if count > self.MAX_LISTED:
            lines.append(f"  ... and {count - self.MAX_LISTED} more")
        super().__init__("\n".join(lines))
        self.unit_id = unit_id
        self.issues = tuple(issues)
        self.unit = unit


class IncompletePartitionError(PartitionContractError):
    """A collection the contract expects is missing from the unit, or answered no rows.

    Not permanent: the upstream may answer fully on a later attempt, so
    ``retry_with_backoff`` retries it. Nothing of the unit may be written.

    Examples:
        >>> from resilient_pipeline import PermanentError
        >>> isinstance(IncompletePartitionError(unit_id=None, issues=[]), PermanentError)
        False
    """

    verdict = "incomplete"


class InvalidPartitionError(PartitionContractError, PermanentError, ValueError):
    """Rows of a unit failed validation or pairing: quarantine the whole unit, with the reasons.

    Permanent: the same answer would fail the same way, so it is never retried.

    Examples:
        >>> err = InvalidPartitionError(unit_id="u1", issues=["campaigns[0]: spend=-1: ..."])
        >>> isinstance(err, ValueError), err.verdict
        (True, 'invalid')
    """

    verdict = "invalid"


class CheckError(ResilientPipelineError):
    """A consistency check could not run (bad SQL, a missing table, a crashing function).

    A :class:`~resilient_pipeline.CheckSuite` never raises it: it reports the
    check as *errored* (never as passed). :meth:`Check.run` raises it.

    Attributes:
        check: The check's name.

    Examples:
        >>> str(CheckError("no such table: kpi", check="clicks_le_impressions"))
        'no such table: kpi'
    """

    def __init__(self, message: str, *, check: str) -> None:
        super().__init__(message)
        self.check = check


class AlertDeliveryError(ResilientPipelineError):
    """A notifier could not deliver an alert, even after retrying.

    Attributes:
        notifier: The notifier's name (never its URL or password).
        title: The alert's title.

    Examples:
        >>> AlertDeliveryError("HTTP 503", notifier="slack", title="late").notifier
        'slack'
    """

    def __init__(self, message: str, *, notifier: str, title: str) -> None:
        super().__init__(message)
        self.notifier = notifier
        self.title = title


class LedgerError(ResilientPipelineError):
    """The partition ledger refused an operation (e.g. finishing a partition it never started).

    Examples:
        >>> isinstance(LeaseLostError("taken", partition=("s", "k", "2026-11-28")), LedgerError)
        True
    """


class LeaseLostError(LedgerError):
    """A worker's lease on a partition expired and another worker claimed it.

    The late worker's unit of work is rolled back, so the partition is
    written once, by the worker that holds the lease.

    Attributes:
        partition: ``(source, key, period)``.

    Examples:
        >>> LeaseLostError("taken", partition=("meta_ads", "7", "2026-11-28")).partition[1]
        '7'
    """

    def __init__(self, message: str, *, partition: tuple[str, str, str]) -> None:
        super().__init__(message)
        self.partition = partition


class BackfillError(LedgerError):
    """A backfill finished with partitions still failing.

    Attributes:
        failed: The ``(source, key, period)`` of each failed partition.
        errors: The last error of each, secrets masked, in the same order.

    Examples:
        >>> err = BackfillError("1 partition failed", failed=[("s", "k", "p")], errors=["OSError"])
        >>> err.failed, err.errors
        ([('s', 'k', 'p')], ['OSError'])
    """

    def __init__(
        self, message: str, *, failed: list[tuple[str, str, str]], errors: list[str]
    ) -> None:
        super().__init__(message)
        self.failed = failed
        self.errors = errors


class CircuitOpenError(RejectedError):
    """A circuit breaker refused the call: it is open, or half-open with every probe taken.

    A new instance is raised for every rejection (a shared one would chain
    tracebacks and keep every caller's frames alive).

    Attributes:
        name: The breaker's name (with its key, for keyed breakers).
        state: The state that refused the call: ``"open"``, ``"half_open"`` or
            ``"forced_open"``.
        retry_after: Seconds until the breaker lets a probe through; ``None``
            when unknown (half-open with every permit taken, or forced open).
            ``retry_with_backoff`` waits exactly that long when it fits the
            remaining deadline, and stops otherwise.
        opened_by: The failure that opened the circuit (``"TypeName:
            message"``, secrets masked), when this process's in-memory
            breaker saw it; ``None`` otherwise (forced open, a bad result, a
            Redis breaker). For a keyed breaker it is that key's failure.
        opened_by_class: That failure's class (``"httpx.HTTPStatusError"``), or ``None``.

    Examples:
        >>> err = CircuitOpenError("ads-api", state="open", retry_after=12.5)
        >>> str(err), err.retry_after, isinstance(err, RejectedError)
        ("circuit 'ads-api' is open; a probe is allowed in 12.50 s", 12.5, True)
        >>> err.opened_by is None
        True
    """

    # Slots, not the instance dict: rejections come by the thousand while a
    # circuit is open, and a dict built per error cost a tenth of a rejection.
    # Whoever builds one without __init__ (the in-memory breaker) sets both.
    __slots__ = ("retry_after", "trip_cause")

    # Nearly every rejection is "open": that state is the class's, so such an
    # error costs no store for it; any other lives in the instance dict.
    state: str = "open"
    retry_after: float | None
    # (description, class, epoch seconds): set by the breaker on each rejection
    # from what it stored once when it tripped, so a rejection costs one attribute.
    trip_cause: tuple[str, str, float] | None

    def __init__(self, name: str, *, state: str = "open", retry_after: float | None = None) -> None:
        # Lean on purpose: most rejections are caught unprinted, so the
        # message is built by __str__ and the name lives in args.
        if state != "open":
            self.state = state
        self.retry_after = retry_after
        self.trip_cause = None

    @property
    def name(self) -> str:
        """The breaker's name."""
        return str(self.args[0])

    @property
    def opened_by(self) -> str | None:
        """The failure that opened the circuit, secrets masked (``None``: not known)."""
        return None if self.trip_cause is None else self.trip_cause[0]

    @property
    def opened_by_class(self) -> str | None:
        """The class of :attr:`opened_by`'s error (``None``: not known)."""
        return None if self.trip_cause is None else self.trip_cause[1]

    def __str__(self) -> str:
        wait = (
            "" if self.retry_after is None else f"; a probe is allowed in {self.retry_after:.2f} s"
        )
        what = (
            "half-open and every probe permit is taken" if self.state == "half_open" else self.state
        )
        return f"circuit {self.name!r} is {what.replace('_', ' ')}{wait}"


class StoreError(ResilientPipelineError):
    """A database operation failed; the driver's exception is ``__cause__``.

    The message has passwords masked. Errors that retrying can fix are
    :class:`TransientStoreError`; everything else (a syntax error, a violated
    constraint) is a plain ``StoreError``.

    Attributes:
        sqlstate: The SQLSTATE code when the driver gives one (PostgreSQL), else ``None``.
        step: The unit-of-work step that was running, if any.

    Examples:
        >>> err = StoreError('relation "kpi" does not exist', sqlstate="42P01")
        >>> err.sqlstate, err.step
        ('42P01', None)
    """

    def __init__(self, message: str, *, sqlstate: str | None = None, step: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate
        self.step = step


class TransientStoreError(StoreError):
    """A database error that may go away on its own: retry the whole unit of work.

    Raised for lost or refused connections, serialization failures (SQLSTATE
    ``40001``), deadlocks (``40P01``), lock timeouts and a busy SQLite
    database. Retrying is safe because the writes of a unit of work are
    idempotent: ``retry_with_backoff(retry_on=TransientStoreError)``.

    Examples:
        >>> from resilient_pipeline import retry_with_backoff
        >>> policy = retry_with_backoff(retry_on=TransientStoreError)
        >>> issubclass(TransientStoreError, StoreError)
        True
    """


class UnitOfWorkError(StoreError, PermanentError):
    """A unit of work or a store was used in a way that cannot work.

    For example a transaction used after it committed, or a closed store.

    Examples:
        >>> isinstance(UnitOfWorkError("the unit of work has already ended"), StoreError)
        True
    """


class MissingUniqueConstraintError(StoreError, ConfigurationError):
    """The upsert key is not covered by a UNIQUE constraint or primary key.

    Without one, the database cannot tell an update from an insert and
    running a collection twice would duplicate rows. The message gives the
    statement that adds the constraint.

    Attributes:
        table: The table.
        key: The key columns.

    Examples:
        >>> err = MissingUniqueConstraintError(table="kpi", key=("client_id", "date"))
        >>> "ADD CONSTRAINT" in str(err), err.key
        (True, ('client_id', 'date'))
    """

    def __init__(self, *, table: str, key: Sequence[str], statement: str | None = None):
        columns = ", ".join(key)
        if statement is None:
            statement = f"ALTER TABLE {table} ADD CONSTRAINT {table}_key UNIQUE ({columns})"
        StoreError.__init__(
            self,
            f"no UNIQUE constraint or primary key on {table} covers exactly ({columns}); "
            f"add one, e.g. {statement}",
        )
        self.option = "key"
        self.value = tuple(key)
        self.table = table
        self.key = tuple(key)


@attrs.frozen
class RowProblem:
    """One problem with one row of a batch.

    Attributes:
        index: The row's position in the batch (0-based).
        column: The column concerned, or ``None`` for the whole row.
        message: What is wrong.

    Examples:
        >>> str(RowProblem(3, "spend", "expected a number, got str 'abc'"))
        "row 3, column 'spend': expected a number, got str 'abc'"
    """

    index: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.index}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.message}"


class InvalidBatchError(StoreError, PermanentError, ValueError):
    """Rows were rejected before anything was written; every problem is listed.

    Attributes:
        table: The target table.
        problems: One :class:`RowProblem` per problem found (the first 100 at most).

    Examples:
        >>> err = InvalidBatchError(table="kpi", problems=[RowProblem(0, "date", "missing")])
        >>> print(err)
        1 invalid row(s) for kpi: row 0, column 'date': missing
    """

    MAX_LISTED = 20

    def __init__(self, *, table: str, problems: Sequence[RowProblem]) -> None:
        listed = "; ".join(str(p) for p in problems[: self.MAX_LISTED])
        more = len(problems) - self.MAX_LISTED
        rows = len({p.index for p in problems})
        suffix = f"; and {more} more" if more > 0 else ""
        super().__init__(f"{rows} invalid row(s) for {table}: {listed}{suffix}")
        self.table = table
        self.problems = tuple(problems)


class DuplicateKeyError(InvalidBatchError):
    """The same key appears more than once in one batch.

    Applying such a batch would make the result depend on row order, so it is
    rejected unless you choose ``on_duplicate="last"`` or ``"first"``.

    Attributes:
        key: The duplicated key values (the first duplicate found).

    Examples:
        >>> err = DuplicateKeyError(table="kpi", key_columns=("client_id",), key=("acme",),
        ...                         indexes=(0, 4))
        >>> print(err)
        1 invalid row(s) for kpi: row 4: duplicate key client_id='acme' (first seen in row 0)
    """

    def __init__(
        self,
        *,
        table: str,
        key_columns: Sequence[str],
        key: Sequence[object],
        indexes: tuple[int, int],
    ) -> None:
        named = ", ".join(f"{c}={v!r}" for c, v in zip(key_columns, key, strict=True))
        problem = RowProblem(
            indexes[1], None, f"duplicate key {named} (first seen in row {indexes[0]})"
        )
        super().__init__(table=table, problems=[problem])
        self.key = tuple(key)
        self.key_columns = tuple(key_columns)


class BulkheadFullError(RejectedError):
    """A bulkhead refused the call: every slot is busy and the queue is full (or the wait ran out).

    Attributes:
        name: The bulkhead's name.
        max_concurrent: How many calls it lets run at once.
        waited: Seconds the caller queued before being refused (``0.0`` when
            refused at once).

    Examples:
        >>> err = BulkheadFullError("ads-api", max_concurrent=4)
        >>> str(err), isinstance(err, RejectedError)
        ("bulkhead 'ads-api' is full (4 running, no queue place free)", True)
    """

    def __init__(
        self,
        name: str,
        *,
        max_concurrent: int,
        waited: float = 0.0,
        retry_after: float | None = None,
    ) -> None:
        why = (
            f"no slot freed within {waited:.3f} s"
            if waited > 0
            else f"{max_concurrent} running, no queue place free"
        )
        super().__init__(f"bulkhead {name!r} is full ({why})", retry_after=retry_after)
        self.name = name
        self.max_concurrent = max_concurrent
        self.waited = waited


class RateLimitedError(RejectedError):
    """A rate limiter refused the call: no token is free soon enough.

    Attributes:
        name: The limiter's name.
        key: How the limiter shows the key whose bucket is empty (``None`` for
            an unkeyed limiter); limiters pass a masked form, never a raw token.
        retry_after: Seconds until a token is free. ``retry_with_backoff``
            waits exactly that long when it fits the remaining deadline.

    Examples:
        >>> err = RateLimitedError("ads-api", key="'account-7'", retry_after=0.25)
        >>> str(err), err.retry_after
        ("rate limit 'ads-api' reached for key 'account-7'; a token is free in 0.250 s", 0.25)
    """

    def __init__(
        self, name: str, *, key: str | None = None, retry_after: float | None = None
    ) -> None:
        where = "" if key is None else f" for key {key}"
        wait = "" if retry_after is None else f"; a token is free in {retry_after:.3f} s"
        super().__init__(f"rate limit {name!r} reached{where}{wait}", retry_after=retry_after)
        self.name = name
        self.key = key


class LimitStoreUnavailableError(RejectedError):
    """A Redis rate limiter or bulkhead cannot reach Redis, so it refused the call.

    Raised by ``on_unavailable="reject"`` (and by ``RedisBulkhead.in_flight()``
    during an outage). The call never ran, so a circuit breaker does not count
    it as an upstream failure. It carries no ``retry_after``, so
    ``retry_with_backoff`` stops at once rather than hammering a Redis that is
    down (every attempt would first wait for a connection); ``fallback`` may
    still answer instead. The outage is reported once by the
    ``LimitStoreFailed`` event. The Redis error, when this call saw one, is
    ``__cause__``.

    Attributes:
        name: The limiter's or bulkhead's name.
        error: What went wrong talking to Redis, secrets masked.

    Examples:
        >>> err = LimitStoreUnavailableError("ads-api", error="ConnectionError: refused")
        >>> print(err)
        'ads-api' cannot reach its Redis store (ConnectionError: refused)
        >>> isinstance(err, RejectedError), err.retry_after
        (True, None)
    """

    def __init__(self, name: str, *, error: str) -> None:
        super().__init__(f"{name!r} cannot reach its Redis store ({error})")
        self.name = name
        self.error = error
