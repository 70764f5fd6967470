"""Connection strings: accept, check, describe, and keep their secrets out of messages.

A password never reaches a repr, an error message or a log line. Redaction
works from the secrets found in the connection string (by libpq's parser and
by a lenient reading of the URI's user information), never by pattern-matching
the message alone, and errors about the string itself are raised without
chaining the exception that quoted it.

A URI whose password holds an unencoded `/` or `@` is refused: libpq would
read part of the password as the host, port or database and quote it back in
every error. `urllib.parse.quote` leaves `/` unencoded by default, so
the message says to pass `safe=""`.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

import psycopg
from psycopg import conninfo as _conninfo

from .errors import ConfigError

__all__ = ["ParsedDSN", "parse_dsn"]

_URI = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)
_SQLALCHEMY_PREFIXES = (
    "postgresql+psycopg://",
    "postgresql+psycopg2://",
    "postgresql+asyncpg://",
    "postgres+psycopg://",
)
_KEYWORD_PASSWORD = re.compile(r"password\s*=\s*(?:'((?:[^'\\]|\\.)*)'?|(\S*))")
_SPLIT = re.compile(r"[/@:?#&=\s]+")
#: fragments shorter than this are too common to be told apart from other text
_MIN_FRAGMENT = 3
_MASK = "***"


def _normalise(dsn: str) -> str:
    """SQLAlchemy-style URLs (`postgresql+psycopg://`) as plain libpq ones."""
    for prefix in _SQLALCHEMY_PREFIXES:
        if dsn.startswith(prefix):
            return "postgresql://" + dsn[len(prefix) :]
    return dsn


def _uri_userinfo(dsn: str) -> tuple[str | None, bool]:
    """The URI's user information as libpq reads it, and whether libpq would misread it.

    libpq ends the authority at the first `/` and the user information at the
    first `@`: a password holding an unencoded `/` moves its tail into the path,
    one holding an unencoded `@` moves its tail into the host.
    """
    rest = _URI.sub("", dsn, count=1)
    authority, _, path = rest.partition("/")
    if authority.count("@") > 1:
        return authority.split("@", 1)[0], True
    if "@" not in authority and "@" in path.split("?", 1)[0]:
        return authority, True
    if "@" in authority:
        return authority.split("@", 1)[0], False
    return None, False


def _fragments(secret: str) -> set[str]:
    found = {secret, unquote(secret)}
    for text in list(found):
        found.update(p for p in _SPLIT.split(text) if len(p) >= _MIN_FRAGMENT)
    return {s for s in found if len(s) >= _MIN_FRAGMENT} | ({secret} if secret else set())


class ParsedDSN:
    """A checked connection string, the secrets to mask, and a safe description."""

    __slots__ = ("description", "dsn", "params", "secrets")

    def __init__(self, dsn: str, params: dict[str, object], secrets: frozenset[str]) -> None:
        self.dsn = dsn
        self.params = params
        self.secrets = secrets
        self.description = self.redact(_describe(params))

    def redact(self, text: str) -> str:
        """`text` with every secret of the connection string masked."""
        # longest first, so that a fragment never leaves part of a longer secret
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, _MASK)
        return text


def _describe(params: dict[str, object]) -> str:
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
    parts = [f"host={host}", f"port={port}"]
    for key in ("dbname", "user"):
        if params.get(key):
            parts.append(f"{key}={params[key]}")
    return " ".join(parts)


def _secrets(dsn: str, params: dict[str, object] | None) -> frozenset[str]:
    secrets: set[str] = set()
    if params and params.get("password"):
        secrets |= _fragments(str(params["password"]))
    if _URI.match(dsn):
        userinfo, _ = _uri_userinfo(dsn)
        if userinfo and ":" in userinfo:
            secrets |= _fragments(userinfo.split(":", 1)[1])
    for match in _KEYWORD_PASSWORD.finditer(dsn):
        value = match.group(1) if match.group(1) is not None else match.group(2)
        if value:
            secrets |= _fragments(value)
    return frozenset(s for s in secrets if s)


def parse_dsn(dsn: str, *, what: str = "connection string") -> ParsedDSN:
    """Check a DSN (URI or `key=value` form) without connecting; `ConfigError` if unusable."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigError(f"{what} must be a non-empty string")
    dsn = _normalise(dsn)
    if _URI.match(dsn) and _uri_userinfo(dsn)[1]:
        raise ConfigError(
            f"the {what} is a URI whose user name or password holds an unencoded '/' or '@',"
            " which libpq would read as part of the host or database; percent-encode them,"
            " e.g. urllib.parse.quote(password, safe='')"
        )
    problem = None
    params: dict[str, object] | None = None
    try:
        params = dict(_conninfo.conninfo_to_dict(dsn))
    except psycopg.ProgrammingError as e:
        problem = str(e)
    secrets = _secrets(dsn, params)
    if problem is not None or params is None:
        # raised here, outside the except block: the parser's exception quotes
        # the string and must not travel along as __context__
        masked = ParsedDSN(dsn, {}, secrets).redact(problem or "")
        raise ConfigError(f"invalid {what}: {masked}")
    return ParsedDSN(dsn, params, secrets)
