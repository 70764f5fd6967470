"""Typed columns: metadata fields a collection stores in columns of their own.

`PGVStore(..., columns={"price": Column("numeric"), "tags": Column("text[]",
nullable=True)})` gives the collection's table a `price numeric NOT NULL`
and a `tags text[]` column, each with an index. Documents keep their shape:
the declared fields of `Document.metadata` are written to their columns, the
rest to the `metadata` jsonb, and reads put them back together. Filters on a
declared field compile to predicates on its column (docs/typed-columns.md).

Each type takes one kind of Python value and gives it back on reads:

| type               | write                   | read back         |
|--------------------|-------------------------|-------------------|
| `text`             | `str`                   | `str`             |
| `integer`/`bigint` | `int` (not `bool`)      | `int`             |
| `double precision` | `float` or `int`        | `float`           |
| `numeric`          | `Decimal` or `int`      | `Decimal`         |
| `boolean`          | `bool`                  | `bool`            |
| `date`             | `datetime.date`         | `datetime.date`   |
| `timestamptz`      | aware `datetime`        | aware `datetime`  |
| `uuid`             | `uuid.UUID`             | `uuid.UUID`       |
| `text[]`           | `list[str]`             | `list[str]`       |
| `jsonb`            | any JSON value          | the same value    |

An `int` given for a `double precision` or `numeric` field reads back as an
equal `float` or `Decimal`. `None` is never stored: a nullable field is
either present with a value or absent (its column is NULL).
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from psycopg.adapt import PyFormat

from . import _validate as check
from .errors import ConfigError, InputError

__all__ = ["COLUMN_TYPES", "Column", "ColumnType", "Columns", "declare"]

ColumnType = Literal[
    "text",
    "integer",
    "bigint",
    "double precision",
    "numeric",
    "boolean",
    "date",
    "timestamptz",
    "uuid",
    "text[]",
    "jsonb",
]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)

#: Names the collection's own columns use.
RESERVED = frozenset(
    {"id", "content", "metadata", "embedding", "tsv", "tsv_len", "created_at", "updated_at"}
    | {"tenant"}
)
MAX_COLUMNS = 32


@dataclass(frozen=True, slots=True)
class Column:
    """A metadata field stored in a column of its own.

    `type`: one of `COLUMN_TYPES`. `nullable=False` (the default) makes the
    field required in every document. `index=True` builds a btree index (GIN
    for `text[]` and `jsonb`) that filters on the field use.
    """

    type: ColumnType
    nullable: bool = False
    index: bool = True

    def __post_init__(self) -> None:
        check.choice(self.type, "column type", COLUMN_TYPES, ConfigError)
        check.boolean(self.nullable, "column nullable", ConfigError)
        check.boolean(self.index, "column index", ConfigError)

    def as_json(self) -> dict[str, Any]:
        """The declaration as the registry records it."""
        return {"type": self.type, "nullable": self.nullable, "index": self.index}


#: A collection's declared columns, sorted by name (the registry's form).
Columns = tuple[tuple[str, Column], ...]


def declare(columns: Mapping[str, Column] | None, *, existing: bool = False) -> Columns:
    """Checked declarations, sorted by name; `ConfigError` for anything else.

    In an `existing` table only the columns the store itself uses are off limits
    (`Table` checks those): the table's other columns are the user's to declare.
    """
    from .config import validate_identifier  # config imports this module

    if columns is None:
        return ()
    if not isinstance(columns, Mapping):
        raise ConfigError(
            f"columns must be a dict of field name to Column, got {type(columns).__name__}"
        )
    if len(columns) > MAX_COLUMNS:
        raise ConfigError(f"at most {MAX_COLUMNS} typed columns, got {len(columns)}")
    out = []
    for name, column in columns.items():
        validate_identifier(name, "column name")
        if (name in RESERVED and not existing) or name.startswith("pgvstore"):
            raise ConfigError(
                f"column name {name!r} is one the collection's own columns use;"
                f" reserved: {', '.join(sorted(RESERVED))} and names starting with 'pgvstore'"
            )
        if "." in name or name.startswith("$"):
            raise ConfigError(f"column name {name!r} must not contain '.' or start with '$'")
        if not isinstance(column, Column):
            raise ConfigError(f"columns[{name!r}] must be a Column, got {type(column).__name__}")
        out.append((str(name), column))
    return tuple(sorted(out))


def from_registry(value: object) -> Columns:
    """The declarations a registry row records (`None`: no typed columns)."""
    if not isinstance(value, dict):
        return ()
    return tuple(sorted((name, Column(**spec)) for name, spec in value.items()))


def registry_json(columns: Columns) -> dict[str, Any]:
    return {name: column.as_json() for name, column in columns}


# -- writes ------------------------------------------------------------------


def _text(value: object) -> object:
    if not isinstance(value, str):
        return _wrong
    check.pg_text(value, "the value")
    return str.__str__(value)


def _integer(bits: int) -> Callable[[object], object]:
    limit = 2 ** (bits - 1)

    def fit(value: object) -> object:
        if not isinstance(value, int) or isinstance(value, bool):
            return _wrong
        number = int.__int__(value)
        if not -limit <= number < limit:
            raise InputError(f"{value} is out of range for a {bits}-bit integer")
        return number

    return fit


def _double(value: object) -> object:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return _wrong
    try:
        number = float(value)
    except OverflowError:
        raise InputError("the integer is too large for double precision") from None
    if not math.isfinite(number):
        raise InputError(f"{value!r} is not a finite number")
    return number


def _numeric(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return decimal.Decimal(int.__int__(value))
    if not isinstance(value, decimal.Decimal):
        if isinstance(value, float):
            raise InputError(
                "a float is not exact: give a Decimal (Decimal(str(x))), or declare the"
                " column 'double precision'"
            )
        return _wrong
    if not value.is_finite():
        raise InputError(f"{value!r} is not a finite number")
    return value


def _boolean(value: object) -> object:
    return bool(value) if isinstance(value, bool) else _wrong


def _date(value: object) -> object:
    if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
        return _wrong
    return value


def _timestamptz(value: object) -> object:
    if not isinstance(value, datetime.datetime):
        return _wrong
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError("a datetime without a time zone is ambiguous; give an aware datetime")
    return value


def _uuid(value: object) -> object:
    return value if isinstance(value, uuid.UUID) else _wrong


def _text_array(value: object) -> object:
    if not isinstance(value, list):
        return _wrong
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InputError(f"element {i} is {type(item).__name__}, expected str")
        check.pg_text(item, f"element {i}")
    return [str.__str__(v) for v in value]


def _jsonb(value: object) -> object:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as e:
        raise InputError(f"not JSON-serialisable: {e}") from None
    if "\\u0000" in text:
        raise InputError("contains a NUL (\\x00) character")
    return check.pg_text(text, "the value")


_wrong = object()

_FIT: dict[str, tuple[Callable[[object], object], str]] = {
    "text": (_text, "a str"),
    "integer": (_integer(32), "an int"),
    "bigint": (_integer(64), "an int"),
    "double precision": (_double, "a float or int"),
    "numeric": (_numeric, "a Decimal or int"),
    "boolean": (_boolean, "a bool"),
    "date": (_date, "a datetime.date"),
    "timestamptz": (_timestamptz, "an aware datetime.datetime"),
    "uuid": (_uuid, "a uuid.UUID"),
    "text[]": (_text_array, "a list of str"),
    "jsonb": (_jsonb, "a JSON value"),
}


def split_metadata(
    columns: Columns,
    metadatas: Sequence[Mapping[str, Any] | None],
    ids: Sequence[str | None] | None,
) -> tuple[list[Mapping[str, Any] | None], list[list[object]]]:
    """`split` for each document of a call: the jsonb metadata, the typed values."""
    rest: list[Mapping[str, Any] | None] = []
    typed: list[list[object]] = []
    for i, m in enumerate(metadatas):
        remaining, values = split(columns, i, None if ids is None else ids[i], m or {})
        rest.append(remaining)
        typed.append(values)
    return rest, typed


def copy_fields(columns: Columns, rows: list[list[object]] | None) -> Callable[[int], bytes]:
    """Row `i`'s typed column fields in binary COPY format (psycopg's dumpers)."""
    from ._sql.columns import dumper

    assert rows is not None, "a batch for typed columns is prepared with them"
    tx = dumper(columns)
    formats = [PyFormat.BINARY] * len(columns)
    jsonb = [c.type == "jsonb" for _, c in columns]
    pack_len = struct.Struct(">i").pack
    null = pack_len(-1)

    def fields(i: int) -> bytes:
        out = []
        for value, is_json in zip(tx.dump_sequence(rows[i], formats), jsonb, strict=True):
            if value is None:
                out.append(null)
            elif is_json:  # jsonb's binary format: a version byte, then the text
                out.append(pack_len(len(value) + 1) + b"\x01" + bytes(value))
            else:
                out.append(pack_len(len(value)) + bytes(value))
        return b"".join(out)

    return fields


def split(
    columns: Columns, index: int, id: str | None, metadata: Mapping[str, Any]
) -> tuple[dict[str, Any], list[object]]:
    """The metadata left for the jsonb, and the declared fields' column values in order.

    `InputError` names the document (its index, and its id when given) and the field.
    """
    rest = dict(metadata)
    values: list[object] = []
    for name, column in columns:
        doc = f"document {index}" + (f" (id {id!r})" if id is not None else "")
        if name not in rest:
            if not column.nullable:
                raise InputError(
                    f"{doc} has no {name!r}, a NOT NULL {column.type} column of this collection"
                )
            values.append(None)
            continue
        value = rest.pop(name)
        fit, expected = _FIT[column.type]
        if value is None:
            raise InputError(
                f"{doc}: {name!r} is None; a {column.type} column stores values only"
                + (", leave the key out when there is none" if column.nullable else "")
            )
        try:
            fitted = fit(value)
        except InputError as e:
            raise InputError(
                f"{doc}: {name!r} does not fit its {column.type} column: {e}"
            ) from None
        if fitted is _wrong:
            raise InputError(
                f"{doc}: {name!r} is a {column.type} column and takes {expected},"
                f" got {type(value).__name__}"
            )
        values.append(fitted)
    return rest, values


# -- reads -------------------------------------------------------------------

_DECODE: dict[str, Callable[[Any], Any]] = {
    "double precision": float,
    "numeric": decimal.Decimal,
    "date": datetime.date.fromisoformat,
    "timestamptz": datetime.datetime.fromisoformat,
    "uuid": uuid.UUID,
}


def decoders(columns: Columns) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """The fields whose JSON form (see `_sql/columns.metadata_out`) needs converting."""
    return tuple((name, _DECODE[c.type]) for name, c in columns if c.type in _DECODE)


def assemble(
    metadata: dict[str, Any], decode: tuple[tuple[str, Callable[[Any], Any]], ...]
) -> None:
    """Give the declared fields of a read row's metadata their Python types (in place)."""
    for name, to_python in decode:
        value = metadata.get(name)
        if value is not None:
            metadata[name] = to_python(value)
