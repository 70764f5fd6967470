"""Argument checks shared by every public entry point.

The rule (docs/reliability.md): a bad constructor argument raises
`ConfigError`, a bad call argument `InputError`, and either is raised before
anything is sent to the server. Each check takes the error class to raise, so
one function serves constructors and calls alike.

Integers are exact `int`s (a `bool` is not an integer here, although Python
says it is one); numbers are finite `int`s or `float`s, never `bool`. Every
integer has an upper bound, so that a value PostgreSQL cannot hold is refused
here rather than failing in the server (`NumericValueOutOfRange`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

from .errors import ConfigError, InputError

__all__ = [
    "INT4_MAX",
    "INT8_MAX",
    "boolean",
    "choice",
    "int_in",
    "non_negative_int",
    "number_in",
    "pg_text",
    "positive_int",
    "positive_number",
    "tenant_name",
]

ErrorClass = type[ConfigError] | type[InputError]
T = TypeVar("T")

INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
#: Python refuses to print ints over ~4300 digits; keep messages short anyway.
_SHOWN_DIGITS = 40


def _show(value: object) -> str:
    text = repr(value)
    if len(text) > _SHOWN_DIGITS + 10:
        return text[:_SHOWN_DIGITS] + "..."
    return text


def int_in(value: object, name: str, lo: int, hi: int, error: ErrorClass = InputError) -> int:
    """`value` if it is an `int` (not a `bool`) in [lo, hi]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise error(f"{name} must be an integer in [{lo}, {hi}], got {_show(value)}")
    # an int subclass may override __int__ and friends: read the value itself
    number = int.__int__(value)
    if not lo <= number <= hi:
        raise error(f"{name} must be an integer in [{lo}, {hi}], got {_show(value)}")
    return number


def positive_int(
    value: object, name: str, error: ErrorClass = InputError, *, maximum: int = INT4_MAX
) -> int:
    """`value` if it is an integer in [1, maximum]."""
    return int_in(value, name, 1, maximum, error)


def non_negative_int(
    value: object, name: str, error: ErrorClass = InputError, *, maximum: int = INT4_MAX
) -> int:
    """`value` if it is an integer in [0, maximum]."""
    return int_in(value, name, 0, maximum, error)


def number_in(
    value: object,
    name: str,
    lo: float,
    hi: float,
    error: ErrorClass = InputError,
) -> float:
    """`value` as a float if it is a finite `int` or `float` (not a `bool`) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{name} must be a number in [{lo:g}, {hi:g}], got {_show(value)}")
    try:
        number = float.__float__(value) if isinstance(value, float) else float(int.__int__(value))
    except OverflowError:
        raise error(f"{name} must be a number in [{lo:g}, {hi:g}], got {_show(value)}") from None
    if not (math.isfinite(number) and lo <= number <= hi):
        raise error(f"{name} must be a number in [{lo:g}, {hi:g}], got {_show(value)}")
    return number


def positive_number(
    value: object, name: str, error: ErrorClass = InputError, *, maximum: float = 1e9
) -> float:
    """`value` as a float if it is a finite number in (0, maximum]."""
    try:
        number = number_in(value, name, 0.0, maximum, error)
    except (ConfigError, InputError):
        number = 0.0
    if number <= 0.0:
        raise error(f"{name} must be a positive number up to {maximum:g}, got {_show(value)}")
    return number


def boolean(value: object, name: str, error: ErrorClass = InputError) -> bool:
    """`value` if it is exactly `True` or `False`."""
    if not isinstance(value, bool):
        raise error(f"{name} must be True or False, got {_show(value)}")
    return value


def choice(value: object, name: str, options: Iterable[T], error: ErrorClass = InputError) -> T:
    """`value` if it equals one of `options` (compared by type and value)."""
    allowed = list(options)
    for option in allowed:
        if type(value) is type(option) and value == option:
            return option
    shown = ", ".join(str(o) for o in allowed)
    raise error(f"{name} must be one of {shown}, got {_show(value)}")


def pg_text(value: object, what: str, error: ErrorClass = InputError) -> str:
    """`value` if it is a `str` PostgreSQL can store as text.

    PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate;
    either would fail in the server, or half-way through a COPY.
    """
    if not isinstance(value, str):
        raise error(f"{what} must be a string, got {type(value).__name__}")
    # a str subclass may override __contains__, __eq__ or __str__: use its characters
    text: str = str.__str__(value)
    if "\x00" in text:
        raise error(f"{what} contains a NUL (\\x00) character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"{what} is not valid unicode (it holds a lone surrogate)") from None
    return text


def tenant_name(value: object, error: ErrorClass = InputError) -> str:
    """A tenant key: a non-empty string PostgreSQL can store."""
    text = pg_text(value, "tenant", error)
    if not text:
        raise error("tenant must not be empty")
    return text
