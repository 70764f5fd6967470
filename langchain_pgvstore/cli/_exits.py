"""Exit codes of the `pgvstore` command and the one-line message for each failure."""

from __future__ import annotations

from enum import IntEnum

import psycopg

from ..errors import (
    ConfigError,
    DatabaseUnavailableError,
    EmbeddedServerError,
    FilterError,
    InputError,
    PGVStoreError,
    SourceNotFoundError,
)

__all__ = ["CLIError", "Exit", "describe"]


class Exit(IntEnum):
    """What the command's exit status means (documented in docs/cli.md)."""

    OK = 0
    FAILED = 1
    """The operation failed: a database or library error, a failing PostgreSQL program."""
    USAGE = 2
    """Bad arguments or input: options, a JSON filter, a model missing its extra."""
    NOT_FOUND = 3
    """No such collection, no index to rebuild, or no such import source."""
    UNAVAILABLE = 4
    """The database cannot be reached: the server is down or refuses the connection."""
    INTERRUPTED = 130


class CLIError(Exception):
    """A failure the command reports in one line, with its exit code."""

    def __init__(self, message: str, code: Exit = Exit.FAILED) -> None:
        super().__init__(message)
        self.code = code


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines) if lines else "unknown error"


def describe(error: BaseException) -> tuple[Exit, str]:
    """The exit code and message for an error that ends the command."""
    if isinstance(error, CLIError):
        return error.code, _one_line(str(error))
    if isinstance(error, (DatabaseUnavailableError, EmbeddedServerError)):
        return Exit.UNAVAILABLE, _one_line(str(error))
    if isinstance(error, SourceNotFoundError):  # a ConfigError, but nothing is wrong with it
        return Exit.NOT_FOUND, _one_line(str(error))
    if isinstance(error, (InputError, FilterError, ConfigError)):
        return Exit.USAGE, _one_line(str(error))
    if isinstance(error, PGVStoreError):
        return Exit.FAILED, _one_line(str(error))
    if isinstance(error, psycopg.OperationalError) and (error.sqlstate or "08").startswith("08"):
        return Exit.UNAVAILABLE, _one_line(str(error))  # no connection (class 08, or none at all)
    if isinstance(error, psycopg.Error):
        return Exit.FAILED, _one_line(str(error))
    return Exit.FAILED, f"{type(error).__name__}: {_one_line(str(error))}"
