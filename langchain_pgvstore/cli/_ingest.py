"""`pgvstore ingest PATH --collection C`: the incremental folder ingest of `folders`."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from ..errors import EmbeddingError
from ..folders import Encoding, cl100k_base, ingest_folder
from ..record_manager import PostgresRecordManager
from ..store import PGVStore
from ._collections import records_namespace
from ._exits import CLIError, Exit
from ._models import add_model_options, choose_embeddings
from ._output import Counter
from ._target import CONNECT_TIMEOUT, Target, add_target_options, list_collections, open_store

__all__ = ["register"]


def _encoding() -> Encoding:
    """cl100k_base, which cuts the chunks; checked before anything is embedded."""
    try:
        return cl100k_base()
    except (ImportError, EmbeddingError) as e:
        raise CLIError(f"pgvstore ingest: {e}", Exit.USAGE) from None


def ingest(args: argparse.Namespace) -> int:
    folder: Path = args.path
    if not folder.is_dir():
        raise CLIError(f"{str(folder)!r} is not a folder", Exit.USAGE)
    if args.chunk_tokens < 2 or not 0 <= args.overlap < args.chunk_tokens:
        raise CLIError("need --chunk-tokens >= 2 and 0 <= --overlap < --chunk-tokens", Exit.USAGE)
    encoding = _encoding()
    target = Target(args)
    with target.connect() as conn:
        existing = [
            c for c in list_collections(conn, args.schema)
            if c.name == args.collection and c.table_exists
        ]  # fmt: skip
    if existing and existing[0].existing is not None:
        # file chunks would become rows of the application's table
        raise CLIError(
            f"{args.collection!r} is an adopted table of your application; ingest writes"
            " file chunks into a collection of the store's own: choose another --collection",
            Exit.USAGE,
        )
    with ExitStack() as stack:
        model = choose_embeddings(args, stack)
        if existing:
            store = open_store(target, existing[0], model)
        else:
            store = PGVStore(
                model, connection=target.dsn, collection=args.collection, schema=args.schema,
                pool_size=2, pool_timeout=CONNECT_TIMEOUT,
            )  # fmt: skip
        stack.enter_context(store)
        records = stack.enter_context(
            PostgresRecordManager(
                records_namespace(args.collection), connection=target.dsn, schema=args.schema
            )
        )
        bar = Counter("indexing", None, "chunks", enabled=not args.no_progress)
        stack.callback(bar.close)
        done = ingest_folder(
            folder, store, records,
            chunk_tokens=args.chunk_tokens, overlap=args.overlap,
            cleanup=None if args.cleanup == "none" else args.cleanup, encoding=encoding,
            progress=lambda n, total: bar.set("indexing", n, total),
        )  # fmt: skip
    print(
        f"{done.files} files, {done.chunks} chunks into collection {args.collection!r}"
        f" in {done.seconds:.1f} s: added {done.added}, updated {done.updated},"
        f" skipped {done.skipped}, deleted {done.deleted}"
    )
    return Exit.OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "ingest",
        help="ingest a folder of .md/.txt files; re-runs embed only what changed",
        description="Split the .md and .txt files under PATH into chunks, embed and store them."
        " A re-run embeds only changed files. --cleanup incremental (default) replaces the"
        " chunks of changed files; full also removes files no longer in the folder; none only"
        " adds. Chunks are cut with tiktoken's cl100k_base: the cli extra"
        " (pip install 'langchain-pgvstore[cli]').",
    )
    p.add_argument("path", type=Path, help="folder to ingest (searched recursively)")
    p.add_argument("--collection", "-c", required=True, help="collection to write into")
    p.add_argument("--chunk-tokens", type=int, default=400, help="tokens per chunk (default 400)")
    p.add_argument("--overlap", type=int, default=50, help="tokens shared by neighbours (50)")
    p.add_argument("--cleanup", choices=("incremental", "full", "none"), default="incremental")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_target_options(p)
    add_model_options(p)
    p.set_defaults(handler=ingest)
