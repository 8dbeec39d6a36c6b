"""What a health check says (frozen values), and the pure rules that judge them.

Nothing here does I/O or reads a clock: the registry's drivers measure and
call, then hand what happened to :func:`judge` and :func:`overall`.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import attrs

from resilient_pipeline._core import describe_error, in_, redact

__all__ = ["HealthOutcome", "HealthReport", "HealthResult", "HealthStatus"]

HealthStatus: TypeAlias = Literal["ok", "degraded", "failing"]
"""``"ok"``, ``"degraded"`` (working, but an operator should look) or ``"failing"``."""

STATUSES: tuple[HealthStatus, ...] = ("ok", "degraded", "failing")
_RANK = {status: rank for rank, status in enumerate(STATUSES)}


MAX_DETAIL = 1000
"""Characters of a detail kept: a probe's error text can be pages long, the JSON stays small."""


def _detail(value: object) -> str:
    # Every detail is masked where it is made, so no caller can forget to; masked
    # before it is shortened, so a cut can never leave half a secret unmatched.
    text = redact(value if isinstance(value, str) else str(value))
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "\u2026"


@attrs.frozen
class HealthOutcome:
    """What a check's probe may return to say more than "ok".

    A probe may also return ``None`` (ok), a ``str`` (ok, with that detail)
    or raise (failing, the error as detail). Details are masked with the
    library's secret redaction.

    Examples:
        >>> HealthOutcome("degraded", "replica lag 40 s")
        HealthOutcome(status='degraded', detail='replica lag 40 s')
        >>> HealthOutcome("failing", "postgresql://etl:hunter2@db/kpi refused").detail
        'postgresql://etl:***@db/kpi refused'
    """

    status: HealthStatus = attrs.field(validator=in_(*STATUSES))
    detail: str = attrs.field(default="", converter=_detail)


@attrs.frozen(kw_only=True)
class HealthResult:
    """One check's answer on one run.

    Attributes:
        name: The check's name.
        status: ``"ok"``, ``"degraded"`` or ``"failing"``.
        detail: What the check found, or why it failed (secrets masked; at
            most 1000 characters, a longer text cut short with an ellipsis).
        latency: Seconds the check took (its timeout, when it did not answer).
        checked_at: When it answered or timed out (epoch seconds).
        critical: Whether its failing makes the service not ready.

    Examples:
        >>> r = HealthResult(name="redis", status="ok", detail="PONG", latency=0.002,
        ...                  checked_at=1_800_000_000.0)
        >>> r.to_dict()["status"], r.critical
        ('ok', True)
    """

    name: str
    status: HealthStatus = attrs.field(validator=in_(*STATUSES))
    detail: str = attrs.field(converter=_detail)
    latency: float
    checked_at: float
    critical: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (one entry of ``/readyz``'s ``checks``)."""
        return {
            "status": self.status,
            "detail": self.detail,
            "latency": self.latency,
            "checked_at": self.checked_at,
            "critical": self.critical,
        }


def overall(results: tuple[HealthResult, ...]) -> HealthStatus:
    """The service's status: the worst result, a non-critical failure counting as degraded."""
    worst = 0
    for result in results:
        rank = _RANK[result.status]
        if result.status == "failing" and not result.critical:
            rank = _RANK["degraded"]
        worst = max(worst, rank)
    return STATUSES[worst]


@attrs.frozen(kw_only=True)
class HealthReport:
    """Every check's result from one run of a :class:`HealthRegistry`.

    ``status`` is the worst result (``failing`` from a check made with
    ``critical=False`` counts as ``degraded``); the service is ready unless
    it is ``failing``.

    Attributes:
        results: One result per check, in the order they were added.
        checked_at: When the run finished (epoch seconds).

    Examples:
        >>> ok = HealthResult(name="db", status="ok", detail="", latency=0.01, checked_at=0.0)
        >>> late = HealthResult(name="redis", status="failing", detail="no answer within 0.2 s",
        ...                     latency=0.2, checked_at=0.0)
        >>> report = HealthReport(results=(ok, late), checked_at=0.0)
        >>> report.status, report.ready, report.http_status
        ('failing', False, 503)
    """

    results: tuple[HealthResult, ...]
    checked_at: float

    @property
    def status(self) -> HealthStatus:
        """The worst status of the critical checks (non-critical ones at most ``degraded``)."""
        return overall(self.results)

    @property
    def ready(self) -> bool:
        """Whether the service should take work: no critical check is failing."""
        return self.status != "failing"

    @property
    def http_status(self) -> int:
        """``200`` when ready, ``503`` when not (what ``/readyz`` answers)."""
        return 200 if self.ready else 503

    def result(self, name: str) -> HealthResult:
        """The result of the check called ``name``.

        Raises:
            KeyError: No check has that name.
        """
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: the overall status and every check by name (``/readyz``'s body)."""
        return {
            "status": self.status,
            "checked_at": self.checked_at,
            "checks": {result.name: result.to_dict() for result in self.results},
        }


# ------------------------------------------------------------------ judging
_TIMED_OUT = object()


def timed_out() -> object:
    """The marker a driver passes to :func:`judge` for a probe that did not answer in time."""
    return _TIMED_OUT


def judge(
    name: str,
    critical: bool,
    timeout: float,
    answer: object,
    error: BaseException | None,
    latency: float,
    checked_at: float,
) -> HealthResult:
    """Turn what a probe returned (or raised, or did not answer) into a result."""
    if error is not None:
        status: HealthStatus = "failing"
        detail = describe_error(error)
    elif answer is _TIMED_OUT:
        status, detail = "failing", f"no answer within {timeout:g} s"
    elif answer is None or answer is True:
        status, detail = "ok", ""
    elif isinstance(answer, str):
        status, detail = "ok", answer
    elif isinstance(answer, HealthOutcome):
        status, detail = answer.status, answer.detail
    elif answer is False:
        status, detail = "failing", "the probe returned False"
    else:
        status = "failing"
        detail = (
            f"the probe returned a {type(answer).__name__}; expected None, a str or a HealthOutcome"
        )
    return HealthResult(
        name=name,
        status=status,
        detail=detail,
        latency=latency,
        checked_at=checked_at,
        critical=critical,
    )
