"""The OpenFeature provider gives the native answers through the real SDK."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from resilient_pipeline.flags import Flags, FlagsProvider, MemorySource

FLAGS = {
    "rollout": "37.5%",
    "everyone": "on",
    "nobody": "0%",
    "killed": {"enabled": False, "allow": ["qa"]},
    "listed": {"percentage": 50, "allow": ["client-1"], "deny": ["client-2"]},
}


@pytest.fixture
def flags() -> Flags:
    return Flags([MemorySource(FLAGS)])


@pytest.fixture
def client(flags: Flags) -> Iterator[OpenFeatureClient]:
    domain = f"rp-test-{uuid.uuid4().hex}"
    api.set_provider(FlagsProvider(flags), domain=domain)
    yield api.get_client(domain)
    api.clear_providers()


def test_sdk_answers_match_the_native_api_for_1000_keys(
    flags: Flags, client: OpenFeatureClient
) -> None:
    """get_boolean_value with targeting_key == flags.enabled with key, for every flag."""
    for name in FLAGS:
        keys = [f"client-{i}" for i in range(1000)]
        native = [flags.enabled(name, key=k) for k in keys]
        sdk = [
            client.get_boolean_value(name, not n, EvaluationContext(targeting_key=k))
            for k, n in zip(keys, native, strict=True)
        ]
        assert native == sdk, name


@pytest.mark.parametrize(
    ("flag", "key", "reason", "value"),
    [
        ("rollout", "client-3", Reason.SPLIT, None),
        ("everyone", "client-3", Reason.STATIC, True),
        ("nobody", "client-3", Reason.STATIC, False),
        ("killed", "qa", Reason.DISABLED, False),
        ("listed", "client-1", Reason.TARGETING_MATCH, True),
        ("listed", "client-2", Reason.TARGETING_MATCH, False),
        ("rollout", None, Reason.DEFAULT, False),
    ],
)
def test_reasons_map_to_openfeature(
    flags: Flags,
    client: OpenFeatureClient,
    flag: str,
    key: str | None,
    reason: Reason,
    value: bool | None,
) -> None:
    """Kill switch DISABLED, lists TARGETING_MATCH, rollout SPLIT, 0/100 % STATIC, no key DEFAULT"""
    details = client.get_boolean_details(flag, True, EvaluationContext(targeting_key=key))
    expected = flags.enabled(flag, key=key) if value is None else value
    assert (expected, reason, None) == (details.value, details.reason, details.error_code)


def test_unknown_flag_is_flag_not_found_and_returns_the_callers_default(
    client: OpenFeatureClient,
) -> None:
    """A flag no source defines (or an impossible name) gives the SDK's default."""
    for name in ("not_defined", "Not-A-Flag"):
        details = client.get_boolean_details(name, True)
        assert (True, ErrorCode.FLAG_NOT_FOUND) == (details.value, details.error_code)


def test_non_boolean_evaluations_are_type_mismatches(client: OpenFeatureClient) -> None:
    """Flags are boolean: string, integer, float and object evaluations are refused."""
    assert ErrorCode.TYPE_MISMATCH == client.get_string_details("everyone", "x").error_code
    assert ErrorCode.TYPE_MISMATCH == client.get_integer_details("everyone", 1).error_code
    assert ErrorCode.TYPE_MISMATCH == client.get_float_details("everyone", 1.0).error_code
    assert ErrorCode.TYPE_MISMATCH == client.get_object_details("everyone", {}).error_code
