"""Secrets never reach logs or events: redact() and describe_error()."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline._core._redact import describe_error
from resilient_pipeline.observability import redact

SECRET = "S3cr3tValue"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://app:{SECRET}@db.internal:5432/prod",
        f"redis://:{SECRET}@cache:6379/0",
        f"https://graph.example/v1/insights?access_token={SECRET}&fields=spend",
        f"password={SECRET} host=db",
        f"dbname=x password='{SECRET}'",
        f"api_key: {SECRET}",
        f"Authorization: Bearer {SECRET}",
        f'{{"client_secret": "{SECRET}"}}',
    ],
)
def test_secrets_are_masked(text: str) -> None:
    """Passwords in URLs, token parameters and bearer credentials are replaced by ***."""
    masked = redact(text)
    assert SECRET not in masked
    assert "***" in masked


def test_plain_text_is_unchanged() -> None:
    """Text without secrets passes through untouched."""
    text = "GET https://api.example/v1/campaigns?date=2026-11-28 returned 503"
    assert text == redact(text)


@given(st.from_regex(r"[A-Za-z0-9]{8,20}", fullmatch=True))
def test_dsn_passwords_never_survive(password: str) -> None:
    """Whatever the password, it is gone from a DSN after redaction."""
    assert f":{password}@" not in redact(f"postgresql://user:{password}@host/db")


def test_describe_error() -> None:
    """Errors are described as 'Type: message' with secrets masked; empty messages by type."""
    assert "KeyError" == describe_error(KeyError())
    assert "OSError: token=***" == describe_error(OSError(f"token={SECRET}"))
