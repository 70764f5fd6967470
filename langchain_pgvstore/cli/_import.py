"""`pgvstore import pgvector|pgvectorstore|chroma`: the importers of `langchain_pgvstore.importers`.

Nothing is embedded: the destination store gets a placeholder model that is
never called, so an import needs no model, no extra beyond the source's and no
API key. A collection without an ANN index (a new one, or one an interrupted
run left) is filled without maintaining one, and its HNSW index is built once
at the end: 4.6 times faster than inserting into the graph batch by batch
(benchmarks/importers.py, docs/performance.md). The same command run again
continues an interrupted import (each batch commits with its position in the
destination database).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .._dsn import ParsedDSN, parse_dsn
from ..config import MAX_INDEXED_DIMENSIONS, Distance, HNSWIndex, VectorType
from ..importers import (
    ImportReport,
    chroma_distance,
    import_from_chroma,
    import_from_pgvector,
    import_from_pgvectorstore,
)
from ..store import PGVStore
from ._exits import CLIError, Exit, describe
from ._output import Counter, IndexBar
from ._target import (
    CONNECT_TIMEOUT,
    Collection,
    NoModel,
    Target,
    add_target_options,
    list_collections,
    open_store,
)

__all__ = ["register"]

#: the distances langchain-postgres offers (`ip` is `inner_product`)
DISTANCES = ("cosine", "l2", "inner_product", "ip")

#: runs the import into a store, reporting `(done, total)` after each batch
Importer = Callable[[PGVStore, Callable[[int, int], None]], ImportReport]


class _Secrets:
    """The DSNs of one run, so that no message shows their passwords."""

    def __init__(self, target: Target, source: ParsedDSN | None) -> None:
        self._target, self._source = target, source

    def redact(self, text: str) -> str:
        text = self._target.redact(text)
        return self._source.redact(text) if self._source is not None else text

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Any failure inside becomes a one-line error without a password, same exit code."""
        try:
            yield
        except Exception as e:
            # the library's errors, psycopg's, chromadb's own: exit code as everywhere
            code, message = describe(e)
            raise CLIError(self.redact(message), code) from None


def _source_dsn(args: argparse.Namespace) -> ParsedDSN | None:
    """--from, checked (exit 2, password masked) before anything connects."""
    return parse_dsn(args.source, what="--from") if args.source else None


def _existing(target: Target, schema: str, name: str) -> Collection | None:
    with target.connect() as conn:
        for c in list_collections(conn, schema):
            if c.name == name and c.table_exists:
                return c
    return None


def _check_same(collection: Collection, what: str, asked: str | None, found: str) -> None:
    """An existing collection is written as it was created: a contradicting setting fails."""
    if asked is not None and asked != found:
        raise CLIError(
            f"collection {collection.schema}.{collection.name} exists with {what} {found},"
            f" not {asked}; import into another --collection, or drop this one first",
            Exit.FAILED,
        )


def _destination(
    args: argparse.Namespace, target: Target, distance: Distance | None
) -> tuple[PGVStore, VectorType | None]:
    """The destination store, and its vector type when its HNSW index is to be built
    after the rows are in (None when not).

    A collection with an ANN index keeps it up to date as rows arrive; any other is
    filled without one and indexed once at the end (unless --no-index).
    """
    vector_type = VectorType.parse(args.vector_type) if args.vector_type else None
    found = _existing(target, args.schema, args.collection)
    if found is not None:
        _check_same(found, "distance", distance.value if distance else None, found.distance)
        _check_same(found, "vector type", vector_type.value if vector_type else None,
                    found.vector_type)  # fmt: skip
        if found.index_kind is not None:
            return open_store(target, found), None
        store = open_store(target, found, index=None)
        return store, None if args.no_index else VectorType.parse(found.vector_type)
    store = PGVStore(
        NoModel(),
        connection=target.dsn,
        collection=args.collection,
        schema=args.schema,
        distance=distance or Distance.COSINE,
        vector_type=vector_type or VectorType.VECTOR,
        index=None,
        pool_size=2,
        pool_timeout=CONNECT_TIMEOUT,
    )
    return store, None if args.no_index else (vector_type or VectorType.VECTOR)


def _summary(report: ImportReport, args: argparse.Namespace, *, indexed: bool = False) -> str:
    if report.resumed:
        how = f"resumed after the {report.skipped} rows an earlier run imported"
    else:
        how = "not resumed"
    index = "; built its HNSW index" if indexed else ""
    return (
        f"imported {report.read} rows ({report.written} written, {how}) from {report.source}"
        f" into collection {args.schema}.{args.collection} in {report.elapsed:.1f} s{index}"
    )


def _run(
    args: argparse.Namespace,
    importer: Importer,
    *,
    source: ParsedDSN | None = None,
    distance: Callable[[], Distance | None] = lambda: None,
) -> int:
    """Open the destination, import with progress, build the index, print the summary."""
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}", Exit.USAGE)
    target = Target(args)
    secrets = _Secrets(target, source)
    with secrets.guard():
        chosen = distance()
        store, build = _destination(args, target, chosen)
        with store:
            bar = Counter("importing", None, "rows", enabled=not args.no_progress)
            try:
                report = importer(store, lambda done, total: bar.set("importing", done, total))
            finally:
                bar.close()
            if build is not None:
                _build_index(store, build, args, lambda: secrets.redact(_summary(report, args)))
    print(secrets.redact(_summary(report, args, indexed=build is not None)))
    return Exit.OK


def _build_index(
    store: PGVStore, vector_type: VectorType, args: argparse.Namespace, summary: Callable[[], str]
) -> None:
    """The HNSW index over the imported rows. When pgvector cannot index vectors this
    large, the rows stay imported: the summary says so first, then the error."""
    limit = MAX_INDEXED_DIMENSIONS[vector_type.value]
    if store.dimensions is not None and store.dimensions > limit:
        print(summary())
        hint = " with --no-index"
        if (
            vector_type is VectorType.VECTOR
            and store.dimensions <= MAX_INDEXED_DIMENSIONS["halfvec"]
        ):
            hint += ", or import into a new --collection with --vector-type halfvec"
        raise CLIError(
            f"the rows are imported, but no HNSW index was built: pgvector indexes"
            f" {vector_type.value} columns of at most {limit} dimensions, these have"
            f" {store.dimensions}; import{hint}",
            Exit.USAGE,
        )
    bar = IndexBar("create index", enabled=not args.no_progress)
    try:
        store.create_index(HNSWIndex(), progress=bar, progress_interval=0.2)
    finally:
        bar.close()


def _distance_arg(args: argparse.Namespace) -> Distance | None:
    return Distance.parse(args.distance) if args.distance else None


def pgvector(args: argparse.Namespace) -> int:
    source = _source_dsn(args)

    def run(store: PGVStore, progress: Callable[[int, int], None]) -> ImportReport:
        return import_from_pgvector(
            store, args.source_collection,
            source=source.dsn if source else None, schema=args.source_schema,
            batch_size=args.batch_size, progress=progress, restart=args.restart,
        )  # fmt: skip

    return _run(args, run, source=source, distance=lambda: _distance_arg(args))


def pgvectorstore(args: argparse.Namespace) -> int:
    source = _source_dsn(args)
    if args.metadata_column is not None and args.ignore_column:
        raise CLIError(
            "--ignore-column leaves columns out of the default choice; with --metadata-column"
            " name only the columns you want",
            Exit.USAGE,
        )

    def run(store: PGVStore, progress: Callable[[int, int], None]) -> ImportReport:
        return import_from_pgvectorstore(
            store, args.source_table,
            source=source.dsn if source else None, schema=args.source_schema,
            id_column=args.id_column, content_column=args.content_column,
            embedding_column=args.embedding_column,
            metadata_json_column=args.metadata_json_column,
            metadata_columns=args.metadata_column, ignore_columns=args.ignore_column,
            batch_size=args.batch_size, progress=progress, restart=args.restart,
        )  # fmt: skip

    return _run(args, run, source=source, distance=lambda: _distance_arg(args))


def chroma(args: argparse.Namespace) -> int:
    where: dict[str, Any] = {"path": args.path, "url": args.url}

    def run(store: PGVStore, progress: Callable[[int, int], None]) -> ImportReport:
        return import_from_chroma(
            store, args.source_collection, **where,
            batch_size=args.batch_size, progress=progress, restart=args.restart,
        )  # fmt: skip

    # the collection's space, read first: a missing chromadb, directory, server or
    # collection is reported before the destination is touched
    return _run(args, run, distance=lambda: chroma_distance(args.source_collection, **where))


def _destination_arguments(p: argparse.ArgumentParser, *, distance: bool) -> None:
    group = p.add_argument_group("destination")
    group.add_argument("--collection", "-c", required=True,
                       help="collection to import into (created if it does not exist)")  # fmt: skip
    if distance:
        group.add_argument(
            "--distance", choices=DISTANCES, default=None,
            help="the distance the source was searched by, which it does not record (default:"
            " an existing collection's, else cosine, langchain-postgres' default)",
        )  # fmt: skip
    group.add_argument("--vector-type", choices=("vector", "halfvec"), default=None,
                       help="vector type of a new collection (default: vector)")  # fmt: skip
    group.add_argument("--no-index", action="store_true",
                       help="do not build an HNSW index after the import (a collection that has"
                       " an ANN index keeps it)")  # fmt: skip
    group = p.add_argument_group("import")
    group.add_argument("--batch-size", type=int, default=1000,
                       help="rows per transaction and checkpoint (default: 1000)")  # fmt: skip
    group.add_argument("--restart", action="store_true",
                       help="start from the first row even if an earlier run was"
                       " interrupted")  # fmt: skip
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_target_options(p)


def _source_database(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--from", dest="source", default=None, metavar="DSN",
                       help="connection string of the source database, postgresql://… or"
                       " postgresql+psycopg://… (default: the destination database)")  # fmt: skip
    group.add_argument("--source-schema", default="public",
                       help="schema of the source tables (default: public)")  # fmt: skip


DESCRIPTION = (
    "Copy a collection from langchain-postgres (PGVector, PGVectorStore) or Chroma into a"
    " collection, vectors included: nothing is embedded, so no model is needed. Each batch"
    " commits with its position in the destination database; run the same command again"
    " after an interruption and it continues where it stopped (a finished import run again"
    " writes only what changed). A collection without an ANN index gets its HNSW index built"
    " once the rows are in."
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imports = commands.add_parser(
        "import",
        help="copy a collection from langchain-postgres or Chroma, vectors included",
        description=DESCRIPTION,
    )
    sources = imports.add_subparsers(dest="action", required=True, metavar="SOURCE")

    p = sources.add_parser(
        "pgvector",
        help="a langchain-postgres PGVector collection (langchain_pg_embedding)",
        description="Copy one collection of langchain-postgres' PGVector (the shared"
        " langchain_pg_embedding table; langchain-community's older layout too): ids, texts,"
        " metadata and vectors. The source does not record its distance: pass --distance.",
    )
    group = p.add_argument_group("source")
    group.add_argument("--source-collection", required=True, metavar="NAME",
                       help="PGVector's collection_name")  # fmt: skip
    _source_database(group)
    _destination_arguments(p, distance=True)
    p.set_defaults(handler=pgvector)

    p = sources.add_parser(
        "pgvectorstore",
        help="a langchain-postgres PGVectorStore (v2) table",
        description="Copy a langchain-postgres PGVectorStore table (init_vectorstore_table):"
        " ids, contents, vectors, and as metadata the JSON column with every metadata column"
        " folded in, as PGVectorStore reads them. The table does not record its distance:"
        " pass --distance.",
    )
    group = p.add_argument_group("source")
    group.add_argument("--source-table", required=True, metavar="TABLE",
                       help="the table_name given to init_vectorstore_table")  # fmt: skip
    _source_database(group)
    group.add_argument("--id-column", default="langchain_id", metavar="NAME",
                       help="unique id column (default: langchain_id)")  # fmt: skip
    group.add_argument("--content-column", default="content", metavar="NAME",
                       help="text column (default: content)")  # fmt: skip
    group.add_argument("--embedding-column", default="embedding", metavar="NAME",
                       help="vector column (default: embedding)")  # fmt: skip
    group.add_argument("--metadata-json-column", default="langchain_metadata", metavar="NAME",
                       help="JSON metadata column (default: langchain_metadata; a table"
                       " without it is read without it)")  # fmt: skip
    group.add_argument("--no-metadata-json-column", dest="metadata_json_column",
                       action="store_const", const=None,
                       help="leave the JSON metadata column out")  # fmt: skip
    group.add_argument("--metadata-column", action="append", default=None, metavar="NAME",
                       help="a column to fold into the metadata (repeatable; default: every"
                       " column but the above and tsvector ones)")  # fmt: skip
    group.add_argument("--ignore-column", action="append", default=[], metavar="NAME",
                       help="a column to leave out of that default (repeatable)")  # fmt: skip
    _destination_arguments(p, distance=True)
    p.set_defaults(handler=pgvectorstore)

    p = sources.add_parser(
        "chroma",
        help="a Chroma collection, from a persistent directory or a server",
        description="Copy a Chroma collection through the chromadb client (the chroma extra:"
        " pip install 'langchain-pgvstore[chroma]'): ids, documents, metadatas and embeddings."
        " The destination uses the collection's distance space (cosine, l2, ip).",
    )
    group = p.add_argument_group("source")
    group.add_argument("--source-collection", required=True, metavar="NAME",
                       help="the Chroma collection's name")  # fmt: skip
    where = group.add_mutually_exclusive_group(required=True)
    where.add_argument("--path", default=None, metavar="DIR",
                       help="a Chroma persistent directory")  # fmt: skip
    where.add_argument("--url", default=None, metavar="URL",
                       help="a Chroma server, http://host:port or https://host:port (default"
                       " tenant and database)")  # fmt: skip
    _destination_arguments(p, distance=False)
    p.set_defaults(handler=chroma)
