"""What every importer source shares: the batch it yields, the reader protocol, the row
checks, and the connections to the source and destination databases.

A reader knows how many rows its source holds and yields them in batches, in
the order of a unique key, starting after a given key; the import loop in
`_import_run` does the rest. Rows come out as the store takes them: text ids,
texts, metadata dicts and a float32 matrix of vectors. What the store would
refuse is refused here already, with the source's id in the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import psycopg

from ._dsn import parse_dsn
from ._sql import importers as q
from .errors import DatabaseUnavailableError, DimensionError, InputError

__all__ = [
    "Reader",
    "Rows",
    "check_id",
    "check_vectors",
    "connect",
    "metadata_object",
    "name_source_row",
]

APPLICATION_NAME = "langchain-pgvstore importer"


@dataclass(frozen=True, slots=True)
class Rows:
    """One batch in key order: `keys[-1]` is where the next batch starts."""

    keys: list[str]
    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any]]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


class Reader(Protocol):
    """A source's rows in batches, in the order of a unique key."""

    #: what the source is, for messages and the report (never a password)
    description: str
    #: stable name of the source for the checkpoint: the same source, the same name
    identity: str

    def count(self) -> int: ...

    def batches(self, after: str | None, size: int) -> Iterator[Rows]: ...

    def close(self) -> None: ...


# -- shared row checks ---------------------------------------------------------


def check_vectors(ids: Sequence[str], vectors: Sequence[Any], expected: int | None) -> np.ndarray:
    """Stack a batch's vectors, refusing a missing one or one of another size by its id."""
    rows: list[np.ndarray] = []
    for id_, vec in zip(ids, vectors, strict=True):
        if vec is None:
            raise InputError(f"source document {id_!r} has no embedding")
        arr = np.asarray(vec, dtype=np.float32).reshape(-1)
        if expected is None:
            expected = len(arr)
        elif len(arr) != expected:
            raise DimensionError(
                f"source document {id_!r} has {len(arr)} dimensions, expected {expected}"
            )
        rows.append(arr)
    if not rows:
        return np.zeros((0, expected or 0), dtype=np.float32)
    return np.stack(rows)


def check_id(key: str, value: str | None) -> str:
    if not value:
        raise InputError(
            f"source row {key!r} has an empty id; the store needs a non-empty id per document"
        )
    return value


def metadata_object(id_: str, value: Any) -> dict[str, Any]:
    """A metadata value as a dict: NULL or JSON null is `{}`; anything but an object is refused."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(
            f"metadata of source document {id_!r} is a JSON {type(value).__name__}, not an object"
        )
    return dict(value)


def connect(dsn: str, role: str) -> psycopg.Connection[Any]:
    """An autocommit connection to the source or destination database; UTC time zone, so
    dates and timestamps in metadata columns become the same JSON strings on every run."""
    parsed = parse_dsn(dsn, what=f"{role} connection string")
    try:
        conn = psycopg.connect(parsed.dsn, autocommit=True, application_name=APPLICATION_NAME)
    except psycopg.OperationalError as e:
        raise DatabaseUnavailableError(
            f"cannot connect to the {role} database ({parsed.description}):"
            f" {parsed.redact(str(e).strip())}"
        ) from None
    frag = q.utc_session()
    conn.execute(frag.sql, frag.params)
    return conn


#: the document index in the store's own input errors ("... (document 3)", "vector 3 ...")
_DOCUMENT_INDEX = re.compile(r"\b(?:document|vector) (\d+)\b")


def name_source_row(error: InputError, ids: Sequence[str], description: str) -> InputError:
    """The store's error about a batch, re-raised naming the source's id for the row."""
    message = str(error)
    match = _DOCUMENT_INDEX.search(message)
    if match and int(match.group(1)) < len(ids):
        where = f"source document {ids[int(match.group(1))]!r}"
    else:
        where = f"a source document between {ids[0]!r} and {ids[-1]!r}"
    return type(error)(f"{description}: the store refused {where}: {message}")
