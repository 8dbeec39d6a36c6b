"""The secrets corpus: every known leak, through redact(), retries, logging and the CLI.

Each context is a template with one ``<S>`` slot and the exact text redact()
must give back (``<S>`` becomes ``***``); the examples use a fixed secret
and the property draws secrets from the alphabet the context allows.
"""

from __future__ import annotations

import io
import json
import logging
import re
import string
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from resilient_pipeline import retry_with_backoff
from resilient_pipeline._cli import main
from resilient_pipeline.checks import CheckExitCode
from resilient_pipeline.http import is_retryable_http_error
from resilient_pipeline.observability import JsonFormatter, RedactingFilter, redact
from resilient_pipeline.retry import CallFinished, RetryExhausted, RetryScheduled
from resilient_pipeline.testing import capture_events, set_testing

SLOT = "<S>"
MASK = "***"
SECRET = "Zq8-Secret_Value.42"

# What a secret may hold in each kind of slot. A bare value ends at whitespace,
# "&", ",", ";" or a quote, less a closing bracket that ends it, and one that
# starts with a bracket runs to the closing one; a quoted value ends at its
# closing quote; a URL password at the last "@" of its line.
_VISIBLE = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp", "Co", "Cn")
)
BARE = st.text(
    _VISIBLE.filter(lambda c: not c.isspace() and c not in "&'\",;"), min_size=8, max_size=40
).filter(lambda s: s[0] not in "([" and s[-1] not in ")]}")
DOUBLE_QUOTED = st.text(
    st.one_of(_VISIBLE, st.just(" ")).filter(lambda c: c not in '"\\'), min_size=8, max_size=40
)
SINGLE_QUOTED = st.text(
    st.one_of(_VISIBLE, st.just(" ")).filter(lambda c: c not in "'\\"), min_size=8, max_size=40
)
URL_PASSWORD = st.text(st.one_of(_VISIBLE, st.just(" ")), min_size=8, max_size=40).filter(
    lambda s: "://" not in s
)
TOKEN68 = st.text(string.ascii_letters + string.digits + "-._~+/=", min_size=8, max_size=60)
ALNUM = st.text(string.ascii_letters + string.digits, min_size=8, max_size=48)
BASE64URL = st.text(string.ascii_letters + string.digits + "-_", min_size=8, max_size=60)
JWT = st.builds("eyJ{}.eyJ{}.{}".format, BASE64URL, BASE64URL, BASE64URL)


@attrs.frozen
class Context:
    """A text with a secret in it, and what redact() must make of it."""

    template: str
    secrets: st.SearchStrategy[str] = BARE
    example: str = SECRET
    masked: str = ""

    def text(self, secret: str) -> str:
        return self.template.replace(SLOT, secret)

    def expected(self) -> str:
        return self.masked or self.template.replace(SLOT, MASK)


# Every spelling of a secret key the issue lists (and the headers providers use).
KEYS = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "x-api-key",
    "X-Goog-Api-Key",
    "token",
    "access_token",
    "refresh_token",
    "auth_token",
    "id_token",
    "oauth_token",
    "accessToken",
    "refreshToken",
    "appsecret_proof",
    "aws_secret_access_key",
    "AWS_SECRET_ACCESS_KEY",
    "private_key",
    "db_password",
    "PGPASSWORD",
    "developer_token",
    "developer-token",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "signature",
    "sig",
    "client_credentials",
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
]
FORMATS = [
    (
        "GET https://graph.facebook.com/v19.0/act_1/insights?fields=spend&{k}=<S>&limit=25 → 400",
        BARE,
    ),
    ("POST /v1/customers:search HTTP/1.1\n{k}: <S>\nContent-Type: application/json", BARE),
    ("host=db {k}=<S> dbname=kpi", BARE),
    ('{{"{k}": "<S>", "limit": 25}}', DOUBLE_QUOTED),
    ('{{"{k}":"<S>"}}', DOUBLE_QUOTED),
    ('{{"body": "{{\\"{k}\\": \\"<S>\\", \\"n\\": 1}}"}}', DOUBLE_QUOTED),
    ("{{'{k}': '<S>', 'limit': 25}}", SINGLE_QUOTED),
    ("{{'{k}': b'<S>'}}", SINGLE_QUOTED),
    ("Config(host='db', {k}='<S>')", SINGLE_QUOTED),
]
KEY_CONTEXTS = [Context(fmt.format(k=k), alphabet) for k in KEYS for fmt, alphabet in FORMATS]

AKIA_ID = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16)
GOOGLE_KEY = st.text(string.ascii_letters + string.digits + "-_", min_size=35, max_size=35)
META_TOKEN = st.text(string.ascii_letters + string.digits, min_size=20, max_size=200)
WEBHOOK_PATH = st.text(string.ascii_letters + string.digits + "/_-", min_size=8)
PEM_BODY = st.text(string.ascii_letters + string.digits + "+/=\n", min_size=8)
# A lone "Bearer x" is masked when x does not read as a word (see _redact._SCHEME).
NOT_PROSE = st.builds(
    "{}{}".format,
    st.text(string.ascii_letters + string.digits + "-._~+/", min_size=8, max_size=60),
    st.sampled_from(["", "=", "=="]),
).filter(lambda s: re.search(r"[0-9+/=]|[a-z][A-Z]", s) is not None)

SHAPED_CONTEXTS = [
    # URL and DSN passwords, "@", "/" and spaces included: up to the last "@".
    Context(
        "postgresql://etl:<S>@db.internal:5432/kpi?sslmode=require", URL_PASSWORD, "p@ss w/rd:8"
    ),
    Context("connect to postgresql+psycopg://etl:<S>@db/kpi failed", URL_PASSWORD, "p@ssX@y"),
    Context("redis://:<S>@cache:6379/0 refused", URL_PASSWORD, "Zq8 'quoted' \"pw\""),
    Context("GET https://etl:<S>@api.example/v1/export returned 401", URL_PASSWORD),
    # Headers with a scheme keep the scheme word.
    Context("Authorization: Bearer <S>", TOKEN68, "Zq8-Secret.Value~42+/="),
    Context("Authorization: Basic <S>", TOKEN68, "ZXRsOmh1bnRlcjI="),
    Context("authorization: token <S>\nAccept: */*", TOKEN68),
    Context('curl -H "Authorization: Bearer <S>" https://api.example/v1', TOKEN68),
    Context("sent Bearer <S> to the API", NOT_PROSE),
    # Provider tokens recognised by their shape, anywhere.
    Context("stripe refused sk_live_<S> (401)", ALNUM, "4eC39HqLyjWDarjtT1zdp7dc"),
    Context("stripe refused rk_live_<S>", ALNUM, "4eC39HqLyjWDarjtT1zdp7dc"),
    Context("using sk_test_<S>", ALNUM, "4eC39HqLyjWDarjtT1zdp7dc"),
    Context("signing secret whsec_<S> rejected", ALNUM, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    Context("clone with ghp_<S> failed", ALNUM, "16C7e42F292c6912E7710c838347Ae178B4a"),
    Context("token github_pat_<S> expired", BASE64URL, "11ABCDEFG0_abcdefghijklmnop"),
    Context("gitlab glpat-<S>", BASE64URL, "xxxx-Zq8_Secret42"),
    Context("slack xoxb-<S> revoked", BASE64URL, "123456789012-1234567890123-Zq8Secret"),
    Context("google ya29.<S> expired", BASE64URL, "a0AfH6SMBx-Zq8_Secret"),
    Context("access key AKIA<S> denied", AKIA_ID, "IOSFODNN7EXAMPLE"),
    Context("maps AIza<S> over quota", GOOGLE_KEY, "SyA-0123456789abcdefghijklmnopqrstu"),
    Context("meta EAA<S> invalid", META_TOKEN, "BwzLixnjYBAO0ZCZBnZAZAmZB0ZBZA"),
    Context("id <S> expired", JWT, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.Zq8-Secret_Value42"),
    Context(
        "POST https://hooks.slack.com/services/<S> returned 404",
        WEBHOOK_PATH,
        "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    ),
    Context("POST https://discord.com/api/webhooks/<S> failed", WEBHOOK_PATH, "1234/Zq8-Secret"),
    Context(
        "-----BEGIN RSA PRIVATE KEY-----\n<S>\n-----END RSA PRIVATE KEY-----",
        PEM_BODY,
        "MIIEvQIBADANBgkqhkiG9w0B\nZq8SecretValue42==",
        masked="-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----",
    ),
]
CONTEXTS = KEY_CONTEXTS + SHAPED_CONTEXTS

# The exact strings issue 11 reported leaking, with what must come out.
REPORTED = [
    ("auth_token=C7d9", "auth_token=***"),
    ("appsecret_proof=B2c4", "appsecret_proof=***"),
    ("aws_secret_access_key=wJalrXUt", "aws_secret_access_key=***"),
    ("private_key=MIIEvQ", "private_key=***"),
    ("db_password=hunter2", "db_password=***"),
    ("accessToken=abc123", "accessToken=***"),
    ('"refreshToken": "r-123"', '"refreshToken": "***"'),
    ("id_token=eyJx", "id_token=***"),
    ("oauth_token=o-77", "oauth_token=***"),
    ("Authorization: rawkey123", "Authorization: ***"),
    ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc used", "key sk_live_*** used"),
    ("postgresql://etl:p@ssX@db/kpi", "postgresql://etl:***@db/kpi"),
    ("postgresql://etl:p/ss w rd@db/kpi", "postgresql://etl:***@db/kpi"),
]


@pytest.mark.parametrize(("raw", "masked"), REPORTED)
def test_reported_leaks_are_masked(raw: str, masked: str) -> None:
    """Each leak the issue reported is masked exactly where the secret was."""
    assert masked == redact(raw)


@pytest.mark.parametrize("context", CONTEXTS, ids=lambda c: c.template)
def test_corpus(context: Context) -> None:
    """In every context of the corpus, the secret and only the secret becomes ***."""
    masked = redact(context.text(context.example))
    assert context.expected() == masked
    assert context.example not in masked


@given(st.data())
def test_no_secret_survives_any_context(data: st.DataObject) -> None:
    """Any secret the context's syntax allows is masked whole; the text around it is kept."""
    context = data.draw(st.sampled_from(CONTEXTS))
    secret = data.draw(context.secrets)
    assume(secret not in context.expected())
    masked = redact(context.text(secret))
    assert context.expected() == masked
    assert secret not in masked


HARMLESS = [
    "GET https://api.example/v1/campaigns?date=2026-11-28&fields=spend,clicks",
    "returned 503 Service Unavailable",
    "tokens",
    "token",
    "Token bucket empty",
    "keys",
    "key",
    "secretary",
    "passport",
    "keyboard",
    "tokens=3.5",
    "max_tokens=5",
    "token_type=bearer",
    "expires_in=3600",
    "api_key_id=42",
    "primary_key=id",
    "partition_key=day",
    "idempotency_key=abc-1",
    "next_page_token=CAESBggB",
    "pageToken=CAE",
    "key='acme'",
    "Partition(source='meta', key='7', period='2026-11-28')",
    "rp:ratelimit:key:acme",
    "rate limited (key 'acme')",
    "ops@example.com",
    "10:30:00",
    "Basic authentication",
    "bearer token",
    'password authentication failed for user "etl"',
    "Authorization header missing",
    "Key (id)=(5) already exists.",
    "sk_",
    "AKIA",
    "https://hooks.slack.com",
    "{'limit': 10}",
    '{"count": 3}',
    "postgresql://etl@db/kpi",
    "x-request-id: 7f3a",
]


@given(
    st.lists(
        st.tuples(st.sampled_from(HARMLESS), st.sampled_from([" ", ", ", "; ", "\n", " | "])),
        max_size=12,
    )
)
def test_text_without_secrets_is_unchanged(parts: list[tuple[str, str]]) -> None:
    """Prose, plural and structural keys, emails, bare schemes: nothing is masked."""
    text = "".join(word + sep for word, sep in parts)
    assert text == redact(text)


@given(st.data())
def test_redact_is_idempotent(data: st.DataObject) -> None:
    """Redacting twice changes nothing more: logs may pass through it at several layers."""
    context = data.draw(st.sampled_from(CONTEXTS))
    once = redact(context.text(data.draw(context.secrets)))
    assert once == redact(once)


# -- end to end: a real httpx error carrying secrets, retried and logged ------------------

URL_SECRETS = {
    "access_token": "AT0access9f8e7d",
    "appsecret_proof": "PR0proof0a1b2c",
    "auth_token": "AU0auth5e6f7a",
    "developer_token": "DV0dev1122aa",
    "client_secret": "CS0client3344bb",
    "api_key": "AK0api5566cc",
    "X-Amz-Signature": "SG0sig7788dd",
    "X-Amz-Credential": "AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/s3/aws4_request",
    "id_token": "ID0id99aabb",
    "key": "AIzaSyA-0123456789abcdefghijklmnopqrstu",
}
USER_PASSWORD = "BP0basicpw42"
ALL_SECRETS = [*URL_SECRETS.values(), USER_PASSWORD, "AKIAIOSFODNN7EXAMPLE"]
SECRET_URL = f"https://etl:{USER_PASSWORD}@graph.example/v19.0/act_1/insights?" + (
    urllib.parse.urlencode({"fields": "spend", **URL_SECRETS}, safe="/")
)


def leaks(text: str) -> list[str]:
    """The secrets of SECRET_URL that ``text`` still contains."""
    return [secret for secret in ALL_SECRETS if secret in text]


def failing_client() -> httpx.Client:
    """A client whose every request gets a 503 (a real response through a transport)."""
    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503)))


def fetch_with_retries(client: httpx.Client) -> None:
    @retry_with_backoff(max_attempts=3, retry_if=is_retryable_http_error, name="insights")
    def fetch() -> None:
        client.get(SECRET_URL).raise_for_status()

    fetch()


@pytest.fixture
def library_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="resilient_pipeline")
    with set_testing():
        yield caplog


def check_retry_outputs(
    error: httpx.HTTPStatusError, events: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    """No secret in any retry log record, event field or exception note."""
    assert leaks(str(error)), "the error itself must carry the secrets for this test to mean much"
    assert [RetryScheduled, RetryScheduled, RetryExhausted, CallFinished] == [
        type(e) for e in events
    ]
    records = [r for r in caplog.records if r.name.startswith("resilient_pipeline")]
    assert [logging.WARNING, logging.WARNING, logging.ERROR] == [r.levelno for r in records]
    for record in records:
        assert [] == leaks(record.getMessage())
        assert [] == leaks(repr(record.__dict__))
    for event in events:
        assert [] == leaks(repr(event))
    notes = getattr(error, "__notes__", [])
    assert 1 == len(notes)
    assert "insights: gave up after 3 attempt(s)" in notes[0]
    assert [] == leaks("\n".join(notes))


def test_retry_logs_events_and_notes_of_a_real_httpx_error(
    library_logs: pytest.LogCaptureFixture,
) -> None:
    """Retry warnings, the final error event and the exception's notes carry no secret."""
    with (
        capture_events() as events,
        failing_client() as client,
        pytest.raises(httpx.HTTPStatusError) as info,
    ):
        fetch_with_retries(client)
    check_retry_outputs(info.value, list(events), library_logs)


@pytest.mark.anyio
async def test_async_retry_logs_events_and_notes_of_a_real_httpx_error(
    library_logs: pytest.LogCaptureFixture,
) -> None:
    """The async driver renders the same masked warnings, events and notes."""

    @retry_with_backoff(max_attempts=3, retry_if=is_retryable_http_error, name="insights")
    async def fetch(client: httpx.AsyncClient) -> None:
        (await client.get(SECRET_URL)).raise_for_status()

    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    with capture_events() as events:
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.HTTPStatusError) as info:
                await fetch(client)
    check_retry_outputs(info.value, list(events), library_logs)


class LoadError(Exception):
    """A pipeline's own error wrapping the HTTP one."""


def log_chained_failure(logger: logging.Logger) -> None:
    """logging.exception of an error whose __cause__ and __context__ carry the secrets."""
    with set_testing(), failing_client() as client:
        try:
            try:
                fetch_with_retries(client)
            except httpx.HTTPStatusError as exc:
                raise LoadError(f"load of {exc.request.url} failed") from exc
        except LoadError:
            try:
                raise RuntimeError("cleanup failed too")
            except RuntimeError:
                logger.exception(
                    "run %s failed", SECRET_URL, extra={"request": {"url": SECRET_URL}}
                )


@pytest.fixture
def isolated_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.secrets.pipeline")
    logger.propagate = False
    yield logger
    logger.propagate = True
    for handler in list(logger.handlers):
        logger.removeHandler(handler)


def test_logging_exception_through_redacting_filter(isolated_logger: logging.Logger) -> None:
    """A stdlib formatter behind RedactingFilter prints chained tracebacks without secrets."""
    plain, filtered = io.StringIO(), io.StringIO()
    isolated_logger.addHandler(logging.StreamHandler(plain))
    masked = logging.StreamHandler(filtered)
    masked.setFormatter(logging.Formatter("%(levelname)s %(message)s %(request)s"))
    masked.addFilter(RedactingFilter())
    isolated_logger.addHandler(masked)
    log_chained_failure(isolated_logger)
    assert leaks(plain.getvalue()), "unfiltered, the traceback carries the secrets"
    output = filtered.getvalue()
    assert [] == leaks(output)
    for part in ("LoadError: load of", "The above exception was the direct cause", "RuntimeError"):
        assert part in output
    assert "access_token=***" in output
    assert "insights: gave up after 3 attempt(s)" in output  # the notes are there, masked


def test_logging_exception_through_json_formatter(isolated_logger: logging.Logger) -> None:
    """JsonFormatter masks the message, nested extras and the whole exception chain."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    isolated_logger.addHandler(handler)
    log_chained_failure(isolated_logger)
    line = json.loads(stream.getvalue())
    assert [] == leaks(stream.getvalue())
    assert "HTTPStatusError" in line["exception"]
    assert "LoadError" in line["exception"]
    assert line["request"]["url"].startswith("https://etl:***@graph.example/")


def test_json_formatter_masks_secret_named_fields() -> None:
    """A field named like a secret is masked whole, however it is nested; others are kept."""
    record = logging.makeLogRecord(
        {
            "msg": "call",
            "token": "tok-123456",
            "headers": {"X-Api-Key": "hk-123456", "Accept": "*/*"},
            "attempts": [{"password": "pw-123456"}],
            "key": "acme",
        }
    )
    line = json.loads(JsonFormatter().format(record))
    expected = (MASK, {"X-Api-Key": MASK, "Accept": "*/*"}, [{"password": MASK}], "acme")
    assert expected == (line["token"], line["headers"], line["attempts"], line["key"])


def test_redacting_filter_masks_extras_and_keeps_harmless_ones() -> None:
    """Secret-named extras are masked, string extras redacted, other values keep their type."""
    record = logging.makeLogRecord(
        {"msg": "x", "api_key": "k-123456", "url": "/x?sig=abc123", "count": 3, "rows": (1, 2)}
    )
    assert RedactingFilter().filter(record)
    assert (MASK, "/x?sig=***", 3, (1, 2)) == (
        record.api_key,  # type: ignore[attr-defined]
        record.url,  # type: ignore[attr-defined]
        record.count,  # type: ignore[attr-defined]
        record.rows,  # type: ignore[attr-defined]
    )


# -- the command line -----------------------------------------------------------------------


def test_cli_gaps_masks_secrets_in_stored_errors(tmp_path: Path) -> None:
    """``gaps`` prints a ledger's last errors (any text a pipeline stored) masked."""
    import datetime as dt

    from resilient_pipeline import Partition, PartitionLedger, SQLiteStore

    db = tmp_path / "ledger.db"
    store = SQLiteStore(db)
    ledger = PartitionLedger(store)
    partition = Partition("meta", "1", dt.date(2026, 11, 28))
    ledger.start(partition)
    ledger.fail(partition, f"HTTPStatusError: 503 for url '{SECRET_URL}'")
    store.close()
    args = ["gaps", "--db", str(db), "--source", "meta", "--keys", "1"]
    args += ["--start", "2026-11-28", "--end", "2026-11-28"]
    for fmt in ("text", "json"):
        out = io.StringIO()
        assert CheckExitCode.ERRORS == main([*args, "--format", fmt], out=out)
        assert [] == leaks(out.getvalue())
        assert "HTTPStatusError: 503 for url 'https://etl:***@graph.example/" in out.getvalue()


def test_cli_errors_are_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Errors on stderr, from a bad --param or a suite that raised, carry no secret."""
    suite = tmp_path / "suite.py"
    suite.write_text(f"def explode():\n    raise RuntimeError({SECRET_URL!r})\n")
    assert CheckExitCode.NOT_RUN == main(["check", f"{suite}:explode"], out=io.StringIO())
    assert CheckExitCode.USAGE == main(
        ["check", f"{suite}:explode", "-p", "appsecret_proof:PR0proof0a1b2c"], out=io.StringIO()
    )
    err = capsys.readouterr().err
    assert [] == leaks(err)
    assert "could not run" in err
    assert "'appsecret_proof:***' is not NAME=VALUE" in err


def test_cli_check_report_masks_offending_rows(tmp_path: Path) -> None:
    """A check's offending rows are data; their secret columns are masked in both formats."""
    suite = tmp_path / "suite.py"
    suite.write_text(
        "from resilient_pipeline import Check, CheckSuite\n"
        "rows = [{'account': 7, 'access_token': 'AT0access9f8e7d', 'note': 'x'}]\n"
        "suite = CheckSuite(checks=[Check.rows('no_rows', lambda rows: rows)],"
        " datasets={'rows': rows})\n"
    )
    text, as_json = io.StringIO(), io.StringIO()
    assert CheckExitCode.ERRORS == main(["check", f"{suite}:suite"], out=text)
    assert CheckExitCode.ERRORS == main(
        ["check", f"{suite}:suite", "--format", "json"], out=as_json
    )
    assert "{'account': 7, 'access_token': '***', 'note': 'x'}" in text.getvalue()
    [result] = json.loads(as_json.getvalue())["results"]
    assert [{"account": 7, "access_token": MASK, "note": "x"}] == result["offending"]
