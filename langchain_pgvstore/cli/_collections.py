"""`pgvstore collections` and `pgvstore drop COLLECTION`."""

from __future__ import annotations

import argparse
import sys

from .._sql import catalog, dml
from .._sql import existing as adopted
from ..config import Table
from ..record_manager import PostgresRecordManager
from ._exits import CLIError, Exit
from ._output import human_size, print_table
from ._target import Target, add_target_options, find_collection, list_collections, open_store

__all__ = ["register", "records_namespace"]


RECORDS_TABLE = "pgvstore_records"


def records_namespace(collection: str) -> str:
    """The record manager namespace `pgvstore ingest` keeps a collection's files in."""
    return f"pgvstore/{collection}"


def _index_cell(kind: str | None, valid: bool | None) -> str:
    if kind is None:
        return "none"
    return kind if valid else f"{kind} (INVALID)"


def collections(args: argparse.Namespace) -> int:
    target = Target(args)
    with target.connect() as conn:
        found = [c for c in list_collections(conn, args.schema) if c.table_exists]
        rows = []
        for c in found:
            frag = dml.count_rows(Table(c.schema, c.name))
            count = conn.execute(frag.sql).fetchone()
            pending = None
            if c.existing is not None:  # an adopted table: rows waiting for embed-pending
                frag = adopted.count_pending(c.table)
                pending = conn.execute(frag.sql, frag.params).fetchone()[0]  # type: ignore[index]
            rows.append(
                [
                    c.name if c.schema == "public" else f"{c.schema}.{c.name}",
                    count[0] if count else 0,
                    c.dimensions,
                    c.distance,
                    c.vector_type,
                    _index_cell(c.index_kind, c.index_valid),
                    pending,
                    human_size(c.size_bytes),
                ]
            )
    if not rows:
        print("no collections", file=sys.stderr)
        return Exit.OK
    headers = ["collection", "rows", "dimensions", "distance", "type", "index", "pending", "size"]
    print_table(headers, rows)
    return Exit.OK


def _confirm(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not sys.stdin.isatty():
        print(answer.strip(), file=sys.stderr)  # what a terminal would have echoed
    return answer.strip().lower() in ("y", "yes")


def drop(args: argparse.Namespace) -> int:
    target = Target(args)
    with target.connect() as conn:
        collection = find_collection(conn, args.schema, args.collection)
        frag = dml.count_rows(Table(collection.schema, collection.name))
        row = conn.execute(frag.sql).fetchone()
        rows = row[0] if row else 0
        exists = catalog.relation_exists(collection.schema, RECORDS_TABLE)
        has_records = bool(conn.execute(exists.sql, exists.params).fetchone()[0])  # type: ignore[index]
    name = f"{collection.schema}.{collection.name}"
    if collection.existing is not None:
        # the application's table: forgotten as a collection, never dropped
        question = (
            f"forget adopted table {name} as a collection? (the table and its {rows} rows stay)"
        )
        done = f"forgot adopted table {name}; the table and its {rows} rows stay"
    else:
        question = f"drop collection {name} and its {rows} rows?"
        done = f"dropped collection {name} ({rows} rows)"
    if not args.yes and not _confirm(question):
        raise CLIError("not dropped", Exit.FAILED)
    with open_store(target, collection) as store:
        store.delete_collection()
    if has_records:
        _forget_files(target, collection.schema, collection.name)
    print(done)
    return Exit.OK


def _forget_files(target: Target, schema: str, name: str) -> None:
    """What `pgvstore ingest` remembered of a dropped collection goes with it, or a
    later ingest would take the files for already written."""
    with PostgresRecordManager(
        records_namespace(name), connection=target.dsn, schema=schema
    ) as records:
        records.delete_keys(records.list_keys())


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "collections",
        help="list the collections: rows, dimensions, distance, type, index, pending, size",
        description="List the collections (of --schema, or of every schema with --all-schemas):"
        " rows, dimensions, distance, vector type, ANN index and its validity, the rows of an"
        " adopted table waiting for embed-pending (- for other collections), and the size on"
        " disk of the table with its indexes.",
    )
    add_target_options(p)
    p.add_argument("--all-schemas", dest="schema", action="store_const", const=None,
                   help="list the collections of every schema")  # fmt: skip
    p.set_defaults(handler=collections)

    p = commands.add_parser(
        "drop",
        help="drop a collection (asks first unless --yes)",
        description="Drop a collection: its table, indexes, registry row, and what `pgvstore"
        " ingest` recorded of it. A table adopted with `pgvstore adopt` is only forgotten: its"
        " registry row and full-text statistics go, the table, its rows and the columns"
        " adoption added stay. Asks for confirmation on stdin unless --yes.",
    )
    p.add_argument("collection", help="collection name")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    add_target_options(p)
    p.set_defaults(handler=drop)
