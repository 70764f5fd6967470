"""`pgvstore adopt TABLE` and `pgvstore embed-pending TABLE`: existing tables from a shell.

`adopt` runs `PGVStore.adopt()` on a table of the application's and prints its
report; the registry then records the column names it was adopted with, so
`embed-pending`, `search`, `collections`, `index` and `drop` find them there
and need only the table's name. `embed-pending` is what cron runs: it embeds
the rows that have no embedding yet (or, with `--track-changes`, whose content
changed since), a batch per transaction, resumable after a kill; `--count`
says how many wait, without a model.
"""

from __future__ import annotations

import argparse
import re
import time
from contextlib import ExitStack

from langchain_core.embeddings import Embeddings

from .._sql import catalog
from ..columns import COLUMN_TYPES, Column
from ..config import Distance, Table, VectorType, validate_identifier
from ..errors import SchemaError
from ..existing import ExistingTable
from ..store import PGVStore
from ._exits import CLIError, Exit
from ._models import add_model_options, choose_embeddings, model_dimensions
from ._output import Counter
from ._target import (
    CONNECT_TIMEOUT,
    NoModel,
    Target,
    add_target_options,
    find_collection,
    open_store,
)

__all__ = ["cli_words", "parse_column", "register"]

_COLUMN_FLAGS = ("nullable", "noindex")


def parse_column(text: str) -> tuple[str, Column]:
    """`NAME:TYPE[:nullable][:noindex]` as a declared column (exit 2 when malformed)."""
    name, _, rest = text.partition(":")
    type_, *flags = rest.split(":") if rest else [""]
    if not name or type_ not in COLUMN_TYPES or not set(flags) <= set(_COLUMN_FLAGS):
        raise CLIError(
            f"--column {text!r}: expected NAME:TYPE[:nullable][:noindex], TYPE one of"
            f" {', '.join(COLUMN_TYPES)}",
            Exit.USAGE,
        )
    return name, Column(type_, nullable="nullable" in flags, index="noindex" not in flags)  # type: ignore[arg-type]


def cli_words(text: str, table: str) -> str:
    """The library's advice (`adopt(full_text=True)`, ...) in the command's words."""
    for pattern, replacement in (
        (r"adopt\((\w+)=True\)", lambda m: "--" + m[1].replace("_", "-")),
        (r"without track_changes=True", lambda m: "without --track-changes"),
        (r"ExistingTable\(metadata=\.\.\.\)", lambda m: "--metadata COLUMN"),
        (
            r"column '(\w+)' (of \S+) allows NULL: declare it Column\('([^']+)', nullable=True\)",
            lambda m: (
                f"column '{m[1]}' {m[2]} allows NULL: declare it --column '{m[1]}:{m[3]}:nullable'"
            ),
        ),
        (r"\(declared in columns=\)", lambda m: "(declared with --column)"),
        (r"but columns= declares it", lambda m: "but --column declares it"),
        (r"; open it without existing_table=$", lambda m: ""),
        (
            r"store\.create_index\(concurrently=True\)",
            lambda m: f"pgvstore index create {table} --concurrently",
        ),
        (r"embed_pending\(\)", lambda m: f"pgvstore embed-pending {table}"),
    ):
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return text


def _declared(args: argparse.Namespace) -> dict[str, Column] | None:
    columns = dict(parse_column(c) for c in args.column)
    if len(columns) != len(args.column):
        raise CLIError("--column: each column is declared once", Exit.USAGE)
    return columns or None


def _dimensions(args: argparse.Namespace, stack: ExitStack) -> tuple[Embeddings, int]:
    """The model (none is loaded when --dimensions is given) and the vector size."""
    if args.dimensions is not None:
        if args.dimensions < 1:
            raise CLIError(f"--dimensions must be at least 1, got {args.dimensions}", Exit.USAGE)
        return NoModel(), args.dimensions
    model = choose_embeddings(args, stack)
    return model, model_dimensions(model)


def adopt(args: argparse.Namespace) -> int:
    validate_identifier(args.schema, "--schema")
    validate_identifier(args.table, "table")
    columns = _declared(args)
    existing = ExistingTable(
        id=args.id, content=args.content, embedding=args.embedding, metadata=args.metadata
    )
    target = Target(args)
    with target.connect() as conn:
        exists = catalog.table_exists(Table(args.schema, args.table))
        row = conn.execute(exists.sql, exists.params).fetchone()
    if not (row and row[0]):
        raise CLIError(f"no table {args.schema}.{args.table}", Exit.NOT_FOUND)
    with ExitStack() as stack:
        model, dimensions = _dimensions(args, stack)
        store = stack.enter_context(
            PGVStore(
                model, connection=target.dsn, collection=args.table, schema=args.schema,
                existing_table=existing, columns=columns, dimensions=dimensions,
                distance=Distance.parse(args.distance),
                vector_type=VectorType.parse(args.vector_type),
                text_search_config=args.text_search_config,
                pool_size=2, pool_timeout=CONNECT_TIMEOUT,
            )
        )  # fmt: skip
        try:
            report = store.adopt(
                add_embedding_column=args.add_embedding_column,
                add_metadata_column=args.add_metadata_column,
                track_changes=args.track_changes,
                create_indexes=args.create_indexes,
                full_text=args.full_text,
                dry_run=args.dry_run,
            )
        except SchemaError as e:
            # the table lacks what a flag adds, or differs from what the flags name
            raise CLIError(cli_words(str(e), args.table), Exit.USAGE) from None
    print(cli_words(str(report), args.table))
    return Exit.OK


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def embed_pending(args: argparse.Namespace) -> int:
    for option in ("batch_size", "limit"):
        value = getattr(args, option)
        if value is not None and value < 1:
            flag = "--" + option.replace("_", "-")
            raise CLIError(f"{flag} must be at least 1, got {value}", Exit.USAGE)
    target = Target(args)
    with target.connect() as conn:
        collection = find_collection(conn, args.schema, args.table)
    name = f"{collection.schema}.{collection.name}"
    if collection.existing is None:
        raise CLIError(
            f"collection {name} is one of the store's own tables, which the store embeds as it"
            " writes: embed-pending fills tables adopted with pgvstore adopt",
            Exit.USAGE,
        )
    with ExitStack() as stack:
        if args.count:
            store = stack.enter_context(open_store(target, collection))
            print(store.count_pending())
            return Exit.OK
        model = choose_embeddings(args, stack)
        size = model_dimensions(model)  # one embedded text if the model does not declare it
        if size != collection.dimensions:
            raise CLIError(
                f"table {name} holds vectors of {collection.dimensions} dimensions, but"
                f" --embeddings {args.embeddings} makes {size}: use the model it was adopted for",
                Exit.FAILED,
            )
        store = stack.enter_context(open_store(target, collection, model))
        bar = Counter("embedding", None, "rows", enabled=not args.no_progress)
        stack.callback(bar.close)
        started = time.monotonic()
        report = store.embed_pending(
            batch_size=args.batch_size,
            limit=args.limit,
            progress=lambda phase, done, total: bar.set(phase, done, total),
        )
        elapsed = time.monotonic() - started
    rows, batches = (
        _count(report.embedded, "row", "rows"),
        _count(report.batches, "batch", "batches"),
    )
    print(
        f"embedded {rows} of {name} in {batches} ({elapsed:.1f} s);"
        f" {report.changed_meanwhile} changed meanwhile, {report.remaining} still pending"
    )
    return Exit.OK


ADOPT = (
    "Make a table of your application's a collection, in place: check its columns, make only"
    " the changes the flags ask for, and register it with the column names given here, so"
    " that the other commands need only the table's name. Prints what it did (with"
    " --dry-run: what it would do, changing nothing). A table lacking what a flag adds fails"
    " naming the flag (exit 2). Adopting again is safe and adds what new flags ask for. Then"
    " fill the embeddings with `pgvstore embed-pending TABLE`."
)
EMBED = (
    "Embed the pending rows of an adopted table in place: rows with content and no embedding"
    " yet, and (adopted with --track-changes) rows whose content changed since it was"
    " embedded. A batch per transaction: killed at any point, the next run continues without"
    " embedding a committed row again. Run it from cron after the application's writes. Use"
    " the model the table was adopted for (its vector size)."
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "adopt", help="make an existing table a collection, in place", description=ADOPT
    )
    p.add_argument("table", help="the table (it becomes the collection of that name)")
    group = p.add_argument_group("the table's columns")
    group.add_argument("--id", required=True, metavar="COLUMN",
                       help="the key: text, varchar, an integer type or uuid, unique")  # fmt: skip
    group.add_argument("--content", required=True, metavar="COLUMN",
                       help="the text that is embedded: text or varchar")  # fmt: skip
    group.add_argument("--embedding", default="embedding", metavar="COLUMN",
                       help="the vector column (default: embedding)")  # fmt: skip
    group.add_argument("--metadata", default="metadata", metavar="COLUMN",
                       help="the jsonb column of other fields (default: metadata)")  # fmt: skip
    group.add_argument("--column", action="append", default=[], metavar="NAME:TYPE[:nullable]",
                       help="a column served as a metadata field (repeatable); TYPE one of"
                       f" {', '.join(COLUMN_TYPES)}; ':nullable' when it allows NULL,"
                       " ':noindex' for no index with --create-indexes")  # fmt: skip
    group = p.add_argument_group("changes (each off unless given)")
    group.add_argument("--add-embedding-column", action="store_true",
                       help="add the vector column, nullable (no table rewrite)")  # fmt: skip
    group.add_argument("--add-metadata-column", action="store_true",
                       help="add a jsonb metadata column (no table rewrite)")  # fmt: skip
    group.add_argument("--track-changes", action="store_true",
                       help="add the content-hash column: embed-pending then re-embeds rows"
                       " whose content changed")  # fmt: skip
    group.add_argument("--create-indexes", action="store_true",
                       help="build the indexes of the metadata and declared columns")  # fmt: skip
    group.add_argument("--full-text", action="store_true",
                       help="add full text for keyword and hybrid search (rewrites the table"
                       " under an ACCESS EXCLUSIVE lock)")  # fmt: skip
    group.add_argument("--dry-run", action="store_true", help="report, change nothing")
    group = p.add_argument_group("collection")
    group.add_argument("--distance", default="cosine",
                       help="cosine (default), l2 or inner_product (ip)")  # fmt: skip
    group.add_argument("--vector-type", choices=("vector", "halfvec"), default="vector",
                       help="the embedding column's type (default: vector)")  # fmt: skip
    group.add_argument("--text-search-config", default="english", metavar="CONFIG",
                       help="text search configuration of --full-text"
                       " (default: english)")  # fmt: skip
    add_target_options(p)
    add_model_options(
        p,
        dimensions_help="the vector size (default: the model's; also OpenAI's output size);"
        " given, no model is loaded",
    )
    p.set_defaults(handler=adopt)

    p = commands.add_parser(
        "embed-pending",
        help="embed an adopted table's new and changed rows (resumable; for cron)",
        description=EMBED,
    )
    p.add_argument("table", help="an adopted table")
    p.add_argument("--count", action="store_true",
                   help="print how many rows are pending and embed nothing (no model"
                   " needed)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per call to the model and per transaction"
                   " (default: 512)")  # fmt: skip
    p.add_argument("--limit", type=int, default=None, help="stop after this many rows")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_target_options(p)
    add_model_options(p)
    p.set_defaults(handler=embed_pending)
