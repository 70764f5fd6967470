"""`python -m langchain_pgvstore.cli`: the same as the `pgvstore` command."""

from ._main import main

if __name__ == "__main__":
    raise SystemExit(main())
