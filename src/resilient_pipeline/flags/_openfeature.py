"""An OpenFeature provider over :class:`Flags` (the ``openfeature`` extra).

Importing this module imports ``openfeature``; the package exposes
``FlagsProvider`` lazily, so only users of the provider need the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from resilient_pipeline.exceptions import ConfigurationError, MissingDependencyError

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import FlagNotFoundError, TypeMismatchError
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as exc:  # pragma: no cover - the test extra installs it
    raise MissingDependencyError(
        package="openfeature-sdk", extra="openfeature", feature="The OpenFeature provider"
    ) from exc

from ._flags import Flags

__all__ = ["FlagsProvider"]

_REASONS = {
    "kill_switch": Reason.DISABLED,
    "deny_list": Reason.TARGETING_MATCH,
    "allow_list": Reason.TARGETING_MATCH,
    "no_key": Reason.DEFAULT,
}


class FlagsProvider(AbstractProvider):
    """Serves a :class:`~resilient_pipeline.flags.Flags` through the OpenFeature SDK.

    Boolean flags only; the evaluation context's ``targeting_key`` is the
    bucketing key, so the SDK gives the same answers as ``flags.enabled``.
    Reasons map to OpenFeature's: kill switch ``DISABLED``, allow/deny lists
    ``TARGETING_MATCH``, a partial rollout ``SPLIT`` (0 % and 100 %:
    ``STATIC``), no key ``DEFAULT``; a flag no source defines is
    ``FLAG_NOT_FOUND`` (the SDK returns your default). Install with
    ``pip install 'resilient-pipeline[openfeature]'``.

    Examples:
        >>> from openfeature import api
        >>> from openfeature.evaluation_context import EvaluationContext
        >>> from resilient_pipeline.flags import Flags, FlagsProvider, MemorySource
        >>> flags = Flags([MemorySource({"new_conversions_endpoint": "50%"})])
        >>> api.set_provider(FlagsProvider(flags), domain="doctest")
        >>> client = api.get_client("doctest")
        >>> context = EvaluationContext(targeting_key="client-7")
        >>> client.get_boolean_value("new_conversions_endpoint", False, context)
        True
        >>> flags.enabled("new_conversions_endpoint", key="client-7")
        True
    """

    def __init__(self, flags: Flags) -> None:
        super().__init__()
        self.flags = flags

    def get_metadata(self) -> Metadata:
        """The provider's name: ``resilient-pipeline``."""
        return Metadata(name="resilient-pipeline")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """Evaluate ``flag_key`` for the context's targeting key."""
        key = None if evaluation_context is None else evaluation_context.targeting_key
        try:
            event = self.flags.evaluate(flag_key, key=key)
        except ConfigurationError as exc:  # not a flag name at all
            raise FlagNotFoundError(str(exc)) from None
        if event.reason == "unknown":
            raise FlagNotFoundError(f"no source defines the flag {flag_key!r}")
        reason = _REASONS.get(event.reason)
        if reason is None:
            flag = self.flags.get(flag_key)
            partial = flag is not None and 0 < flag.percentage < 100
            reason = Reason.SPLIT if partial else Reason.STATIC
        return FlagResolutionDetails(
            value=event.enabled,
            reason=reason,
            variant="on" if event.enabled else "off",
            flag_metadata={"reason": event.reason},
        )

    def _not_boolean(self, flag_key: str) -> Any:
        raise TypeMismatchError(f"flag {flag_key!r} is boolean: use get_boolean_value")

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        """Flags are boolean: always a type mismatch."""
        return self._not_boolean(flag_key)  # type: ignore[no-any-return]

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        """Flags are boolean: always a type mismatch."""
        return self._not_boolean(flag_key)  # type: ignore[no-any-return]

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """Flags are boolean: always a type mismatch."""
        return self._not_boolean(flag_key)  # type: ignore[no-any-return]

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        """Flags are boolean: always a type mismatch."""
        return self._not_boolean(flag_key)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"FlagsProvider({self.flags!r})"
