"""Scrub secrets out of text before it reaches a log, an event, a note or a repr.

What is masked (each value becomes ``***``):

* ``key=value``, ``key: value``, ``"key": "value"`` and ``'key': 'value'`` pairs
  whose key *ends* in a secret word: token, secret, password, passwd, pwd,
  pass, passphrase, key, proof, signature, sig, credential(s), auth,
  authorization or cookie, in any case and spelt with ``_``, ``-``, ``.`` or
  camelCase (``auth_token``, ``appsecret_proof``, ``X-Amz-Signature``,
  ``accessToken``, ``PGPASSWORD``). A quoted value is masked up to its
  closing quote, a ``[...]`` or ``(...)`` one up to its closing bracket; a
  bare one up to the next ``&``, ``,``, ``;``, quote or whitespace, less a
  closing bracket that ends it (``f(token=abc)`` keeps its ``)``).
  ``Authorization: Bearer x`` keeps its scheme word.
* The password of a URL or DSN: everything between the ``:`` after the user
  and the *last* ``@`` on the line, so ``p@ss/w rd`` goes whole.
* Tokens recognisable by their shape: Stripe (``sk_live_``, ``rk_live_``,
  ``sk_test_``, ``whsec_``), GitHub (``ghp_``, ``github_pat_``...), GitLab
  (``glpat-``), Slack (``xoxb-``...), AWS access key ids (``AKIA...``), Google
  API keys (``AIza...``) and OAuth access tokens (``ya29.``), Meta access
  tokens (``EAA...``), JWTs, PEM private keys, Slack/Discord/Teams webhook
  paths, and ``Bearer``/``Basic`` credentials standing alone.

Deliberately left alone, so errors stay useful: a bare ``key`` outside a
URL query (upsert, partition, alert and rate-limiter keys are ``key=`` in
this library's reprs), keys naming a structure rather than a credential
(``primary_key``, ``partition_key``, ``next_page_token``, ``pageToken``...),
``a:key:b`` chains (Redis key names), plurals (``tokens=5``), and words in
prose (``password authentication failed``, ``Bearer token``).

Every pattern is linear: no quantifier is nested in another, and key and
scheme runs may only start where a run of their characters starts.
"""

from __future__ import annotations

import functools
import re

__all__ = ["MASK", "describe_error", "is_secret_name", "redact", "redact_data"]

MASK = "***"

_SUFFIXES = (
    "authorization|credentials|credential|passphrase|signature|password|passwd"
    "|secret|cookie|token|proof|pass|auth|pwd|key|sig"
)
# Keys that end in a secret word but name a structure; (second-to-last part, last part).
_HARMLESS_PREFIXES = {
    "key": frozenset(
        "alert breaker bucket business cache cluster composite conflict dedup dedupe detail"  # noqa: SIM905
        " distribution event foreign group hash idempotency index join ledger limit limiter"
        " lock lookup natural object order partition primary public publishable range"
        " routing row shard sort summary surrogate unique upsert".split()
    ),
    "token": frozenset(("continuation", "next", "page", "pagination", "sync")),
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PARTS = re.compile(r"[-_.]")
_SECRET_NAME = re.compile(rf"[\w.-]*(?:{_SUFFIXES})", re.IGNORECASE)
_AUTH_NAME = re.compile(r"[\w.-]*auth(?:orization)?", re.IGNORECASE)

_PEM = re.compile(r"(?P<begin>-----BEGIN [A-Z ]*PRIVATE KEY-----)[^-]*")
# The password runs to the last "@" on its line (bounded, so a line of many
# "x://y:" is still linear); a user has no ":", "/", "@", "?" or "#".
_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#\s]*:)[^\n]{0,256}@"
)
_WEBHOOK = re.compile(
    r"(?P<keep>hooks\.slack\.com/(?:services|workflows|triggers)/"
    r"|discord(?:app)?\.com/api/webhooks/"
    r"|webhook\.office\.com/webhookb2/"
    r"|outlook\.office\.com/webhook/)[^\s'\"?#<>]+",
    re.IGNORECASE,
)
# A bare value: up to a delimiter, less a closing bracket that ends it.
_BARE = r"[^\s&'\",;]*[^\s&'\",;)\]}]"
_KEY_VALUE = re.compile(
    rf"(?<![\w./-])(?P<key>[\w.-]*(?:{_SUFFIXES}))(?P<sep>\\?['\"]?[ \t]*[=:][ \t]*)"
    r"(?!\\?[{][ \t]*\\?['\"])"  # a nested mapping: its own keys are matched one by one
    r"(?P<value>(?P<dq>[bB]?\")(?:[^\"\\\n]|\\.)*\"?"
    r"|(?P<sq>[bB]?')(?:[^'\\\n]|\\.)*'?"
    r"|(?P<eq>\\\")(?:[^\"\\\n]|\\[^\"\n])*(?:\\\")?"  # JSON inside a JSON string
    # A list or tuple goes whole, and so does a bare value that merely starts with a bracket.
    rf"|(?P<seq>\[)[^\]\n]*\]?(?:{_BARE})?|(?P<tup>\()[^)\n]*\)?(?:{_BARE})?"
    r"|(?P<scheme>(?:bearer|basic|token|digest|negotiate|ntlm|oauth|apikey|key|ssws"
    rf"|aws4-hmac-sha256)[ \t]+)?{_BARE})",
    re.IGNORECASE,
)
_PREFIXED = re.compile(
    r"(?<![A-Za-z0-9])(?P<prefix>(?:sk|rk)_(?:live|test)_|whsec_|gh[oprsu]_|github_pat_"
    r"|glpat-|xox[abeoprs]-|xapp-|ya29\.)[\w-]+"
)
_AWS_KEY_ID = re.compile(r"(?<![A-Za-z0-9])(?P<prefix>AKIA|ASIA)[A-Z0-9]{16,}")
_GOOGLE_KEY = re.compile(r"(?<![\w-])(?P<prefix>AIza)[\w-]{35}(?![\w-])")
_META_TOKEN = re.compile(r"(?<![A-Za-z0-9])(?P<prefix>EAA)[A-Za-z0-9]{20,}")
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]*\.eyJ[\w-]*\.[\w-]*")
# A lone scheme word, followed by a token68 that looks like a credential rather
# than a word: 8 characters or more, with a digit, "+", "/", "=" padding or a
# lower-to-upper step ("dXNl").
_SCHEME = re.compile(
    r"(?<![\w-])(?P<kind>(?i:bearer|basic))[ \t]+"
    r"(?=[\w.~+/-]*(?:[0-9+/=]|[a-z][A-Z]))[\w.~+/-]{8,}=*(?![\w.~+/=-])"
)
_SHAPED = (_PREFIXED, _AWS_KEY_ID, _GOOGLE_KEY, _META_TOKEN)
# A substring every match of _JWT or _SHAPED contains.
_SHAPE_HINTS = (
    *("sk_", "rk_", "whsec_", "gh", "github_pat_", "glpat-", "xox", "xapp-", "ya29."),
    *("AKIA", "ASIA", "AIza", "EAA", "eyJ"),
)
_KEY_HINTS = ("pass", "pwd", "secret", "token", "key", "sig", "auth", "proof", "cred", "cookie")


def _name_parts(name: str) -> list[str]:
    return _PARTS.split(_CAMEL.sub("_", name.strip("'\"")).lower())


def _harmless(name: str, *, in_query: bool) -> bool:
    parts = _name_parts(name)
    if parts == ["key"]:
        # A bare key is a credential in a URL query (Google's ?key=), data elsewhere.
        return not in_query
    return len(parts) >= 2 and parts[-2] in _HARMLESS_PREFIXES.get(parts[-1], ())


def is_secret_name(name: str) -> bool:
    """Whether a field, header or parameter called ``name`` holds a secret.

    The rule :func:`redact` applies to ``name=value`` text, for mappings:
    a name ending in a secret word, unless it names a structure.

    Examples:
        >>> [is_secret_name(n) for n in ("accessToken", "X-Api-Key", "primary_key", "key")]
        [True, True, False, False]
    """
    return _secret_name(name)


@functools.lru_cache(maxsize=1024)  # a pure function of a few names, asked on every bind
def _secret_name(name: str) -> bool:
    return _SECRET_NAME.fullmatch(name) is not None and not _harmless(name, in_query=False)


def _mask_pair(match: re.Match[str]) -> str:
    key, sep, value = match.group("key", "sep", "value")
    start = match.start()
    before = match.string[start - 1 : start]
    if (before == ":" and sep.strip(" \t'\"") == ":") or _harmless(
        key, in_query=before in ("?", "&") and sep.strip(" \t") == "="
    ):
        return match.group()
    opening = match.group("dq") or match.group("sq") or match.group("eq")
    if opening:
        quote = opening.lstrip("bB")
        closed = len(value) >= len(opening) + len(quote) and value.endswith(quote)
        return f"{key}{sep}{opening}{MASK}{quote if closed else ''}"
    bracket = match.group("seq") or match.group("tup")
    if bracket:
        closing = "]" if bracket == "[" else ")"
        return f"{key}{sep}{bracket}{MASK}{closing if value.endswith(closing) else ''}"
    scheme = match.group("scheme")
    if scheme and _AUTH_NAME.fullmatch(key):
        return f"{key}{sep}{scheme}{MASK}"
    return f"{key}{sep}{MASK}"


def redact(text: str) -> str:
    """Mask credentials in URLs and DSNs, ``key=value`` text, headers and known token shapes.

    See the module docstring for exactly what is masked and what is left alone.

    Examples:
        >>> redact("postgresql://etl:p@ss w/rd@db/prod?sslmode=require")
        'postgresql://etl:***@db/prod?sslmode=require'
        >>> redact("GET /v1/me?access_token=abc123&appsecret_proof=f00d&fields=spend")
        'GET /v1/me?access_token=***&appsecret_proof=***&fields=spend'
        >>> redact('{"db_password": "hunter2", "partition_key": "day"}')
        '{"db_password": "***", "partition_key": "day"}'
        >>> redact("Authorization: Bearer eyJhbGciOi")
        'Authorization: Bearer ***'
        >>> redact("stripe refused sk_live_4eC39HqLyjWDarjtT1zdp7dc")
        'stripe refused sk_live_***'
    """
    if type(text) is str and text in _CLEAN:
        return text
    original = text
    # Cheap substring tests first: most messages hold no secret, and these
    # patterns run on every retry event.
    if "PRIVATE KEY-----" in text:
        text = _PEM.sub(rf"\g<begin>{MASK}", text)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<prefix>{MASK}@", text)
    lowered = text.lower()
    if "hook" in lowered:
        text = _WEBHOOK.sub(rf"\g<keep>{MASK}", text)
    if ("=" in text or ":" in text) and any(hint in lowered for hint in _KEY_HINTS):
        text = _KEY_VALUE.sub(_mask_pair, text)
    if any(hint in text for hint in _SHAPE_HINTS):
        # JWTs first: their base64 segments may hold what looks like another prefix.
        text = _JWT.sub(MASK, text)
        for pattern in _SHAPED:
            text = pattern.sub(rf"\g<prefix>{MASK}", text)
    if "bearer" in lowered or "basic" in lowered:
        text = _SCHEME.sub(rf"\g<kind> {MASK}", text)
    if text == original and type(text) is str and len(text) <= _CLEAN_LENGTH:
        if len(_CLEAN) >= _CLEAN_SIZE:
            _CLEAN.clear()
        _CLEAN.add(text)
    return text


# Short texts redact() found nothing in (a backfill's keys and periods, bound to the
# context of every partition): asked again, the answer is the text itself. Only
# texts without a secret are kept, and a bounded number of them.
_CLEAN: set[str] = set()
_CLEAN_LENGTH = 128
_CLEAN_SIZE = 4096


def redact_data(value: object, name: str = "") -> object:
    """``value`` (a record's extras, a report) with secrets masked, its shape kept.

    Strings are redacted, dicts, lists and tuples walked, an entry whose key
    :func:`is_secret_name` is masked whole; any other object is kept unless
    its ``str`` would show a secret, in which case it becomes that string, masked.

    Examples:
        >>> redact_data({"url": "/x?sig=abc", "headers": {"X-Api-Key": "k"}, "n": (1, None)})
        {'url': '/x?sig=***', 'headers': {'X-Api-Key': '***'}, 'n': (1, None)}
    """
    if name and value is not None and is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        items = [redact_data(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {
            redact(k) if isinstance(k, str) else k: redact_data(v, str(k)) for k, v in value.items()
        }
    try:
        text = str(value)
    except Exception:  # an object that cannot be printed cannot leak through a formatter
        return value
    masked = redact(text)
    return value if masked == text else masked


def describe_error(exc: BaseException) -> str:
    """``"TypeName: message"`` with secrets masked, for events and notes.

    Examples:
        >>> describe_error(ConnectionError("https://u:pw@api.example/x refused"))
        'ConnectionError: https://u:***@api.example/x refused'
    """
    message = str(exc)
    name = type(exc).__qualname__
    return f"{name}: {redact(message)}" if message else name
