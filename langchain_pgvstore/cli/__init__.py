"""The `pgvstore` command line: the embedded server, collections, indexes, ingest, imports,
search.

Run `pgvstore --help`; the exit codes and every subcommand are described in docs/cli.md.
"""

from ._main import main

__all__ = ["main"]
