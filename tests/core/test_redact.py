"""Secrets never reach logs or events: redact(), is_secret_name() and describe_error().

The corpus of secrets in every context lives in tests/test_secrets.py; this
module pins the design choices: what is deliberately masked, what is
deliberately left alone, and the shape of the patterns.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline._core import _redact
from resilient_pipeline._core._redact import describe_error, is_secret_name
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


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        # A key *ending* in a secret word, whatever its spelling.
        ("appsecret_proof=f00d&x=1", "appsecret_proof=***&x=1"),
        ("X-Amz-Security-Token: IQoJb3", "X-Amz-Security-Token: ***"),
        ("nextRefreshToken=r1", "nextRefreshToken=***"),
        ("spring.datasource.password=pw1", "spring.datasource.password=***"),
        ("--db-pass=pw1 --verbose", "--db-pass=*** --verbose"),
        # A bare key is a credential in a URL query only (Google's ?key=).
        ("GET /maps?key=k1&q=x", "GET /maps?key=***&q=x"),
        ("Partition(key='acme')", "Partition(key='acme')"),
        ("idempotent_upsert(key=day)", "idempotent_upsert(key=day)"),
        # Keys naming a structure, plurals, Redis key chains: left alone.
        (
            "primary_key=id pageToken=CAE NextToken=abc",
            "primary_key=id pageToken=CAE NextToken=abc",
        ),
        ("tokens=3.5 max_tokens=5 token_count=2", "tokens=3.5 max_tokens=5 token_count=2"),
        ("WRONGTYPE rp:ratelimit:key:acme", "WRONGTYPE rp:ratelimit:key:acme"),
        # Quoted values go whole, spaces and other quotes included.
        ("password='a b\"c' host=db", "password='***' host=db"),
        ('{"token": "a, b; c"}', '{"token": "***"}'),
        # Lists and tuples go whole; a closing bracket after a bare value is syntax.
        ('{"Authorization": ["Bearer abc", "x"]}', '{"Authorization": [***]}'),
        ("Client(auth=('etl', 'pw'))", "Client(auth=(***))"),
        ("fetch(day=1, token=abc)", "fetch(day=1, token=***)"),
        ("token=(ab)cd&x=1", "token=(***&x=1"),
        # A nested mapping under a secret-looking key: its own keys decide.
        (
            "{'credentials': {'client_id': 'c1', 'private_key': 'pk'}}",
            "{'credentials': {'client_id': 'c1', 'private_key': '***'}}",
        ),
        # The scheme word of an Authorization header is kept; bare values go whole.
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: Basic ***"),
        ("Authorization: rawKey123", "Authorization: ***"),
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/x, Signature=fe5f80",
            "Authorization: AWS4-HMAC-SHA256 ***, Signature=***",
        ),
        # A lone scheme word is masked before a credential, not before a word.
        ("sent Bearer abc.DEF-123", "sent Bearer ***"),
        (
            "Basic authentication failed; bearer token expired",
            "Basic authentication failed; bearer token expired",
        ),
        # A URL password runs to the last "@" of its line (even past an e-mail address).
        ("postgresql://etl:p@ss@db/kpi", "postgresql://etl:***@db/kpi"),
        ("postgresql://etl:pw@db/kpi notify ops@example.com", "postgresql://etl:***@example.com"),
        (
            "postgresql://etl:pw@db/kpi\nnotify ops@example.com",
            "postgresql://etl:***@db/kpi\nnotify ops@example.com",
        ),
        (
            "https://x-access-token:ghs_abc@github.com/o/r.git",
            "https://x-access-token:***@github.com/o/r.git",
        ),
        ("https://api.example:8443/v1 ok", "https://api.example:8443/v1 ok"),
        ("ssh://git@github.com/o/r", "ssh://git@github.com/o/r"),
    ],
)
def test_design_choices(raw: str, masked: str) -> None:
    """What is masked and what is deliberately left alone, as the module docstring says."""
    assert masked == redact(raw)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("accessToken", True),
        ("X-Api-Key", True),
        ("appsecret_proof", True),
        ("PGPASSWORD", True),
        ("Authorization", True),
        ("aws_secret_access_key", True),
        ("key", False),
        ("alert_key", False),
        ("primary_key", False),
        ("next_page_token", False),
        ("tokens", False),
        ("token_type", False),
        ("api key", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    """Field names follow the same rule as ``name=value`` text, bare ``key`` included."""
    assert secret == is_secret_name(name)


def test_describe_error() -> None:
    """Errors are described as 'Type: message' with secrets masked; empty messages by type."""
    assert "KeyError" == describe_error(KeyError())
    assert "OSError: token=***" == describe_error(OSError(f"token={SECRET}"))
    assert "OSError: auth_token=***" == describe_error(OSError(f"auth_token={SECRET}"))


def _parser() -> Any:
    if sys.version_info >= (3, 11):
        return re._parser  # type: ignore[attr-defined]
    import sre_parse  # pragma: no cover - Python 3.10

    return sre_parse  # pragma: no cover


def _repeats(pattern: Any, parser: Any) -> list[tuple[int, int, Any]]:
    """Every repeat node (min, max, body) directly or indirectly inside ``pattern``."""
    kinds = {parser.MAX_REPEAT, parser.MIN_REPEAT} | (
        {parser.POSSESSIVE_REPEAT} if hasattr(parser, "POSSESSIVE_REPEAT") else set()
    )
    found: list[tuple[int, int, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, parser.SubPattern):
            for op, av in node:
                if op in kinds:
                    found.append(av)
                walk(av)
        elif isinstance(node, (tuple, list)):
            for item in node:
                walk(item)

    walk(pattern)
    return found


PATTERNS = sorted(
    (name for name, value in vars(_redact).items() if isinstance(value, re.Pattern)),
)


@pytest.mark.parametrize("name", PATTERNS)
def test_no_quantifier_is_nested_in_another(name: str) -> None:
    """Patterns stay linear: no repeated group holds a repeat (``(a+)*`` backtracks forever)."""
    parser = _parser()
    pattern: re.Pattern[str] = getattr(_redact, name)
    parsed = parser.parse(pattern.pattern, pattern.flags)
    nested = [
        (low, high)
        for low, high, body in _repeats(parsed, parser)
        if high > 1 and _repeats(body, parser)
    ]
    assert [] == nested


@given(
    st.text(max_size=140)
    | st.sampled_from(["2026-11-28", "act_7", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "token=abc"])
)
def test_a_text_asked_again_gets_the_same_answer(text: str) -> None:
    """The clean-text cache changes no answer: first call, second call, and with it emptied."""
    first = redact(text)
    again = redact(text)
    _redact._CLEAN.clear()
    assert first == again == redact(text)
    assert (text in _redact._CLEAN) == (first == text and len(text) <= _redact._CLEAN_LENGTH)


def test_only_texts_without_a_secret_are_kept() -> None:
    """A text that held a secret is never kept; the cache stays bounded."""
    _redact._CLEAN.clear()
    assert "token=***" == redact("token=abc")
    assert "token=abc" not in _redact._CLEAN
    for n in range(_redact._CLEAN_SIZE + 10):
        redact(f"plain {n}")
    assert len(_redact._CLEAN) <= _redact._CLEAN_SIZE
