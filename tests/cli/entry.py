"""The `pgvstore` console script's entry point as a file, for tests/examples/only_extras.py:

python tests/examples/only_extras.py embedded,e5,cli tests/cli/entry.py --help
"""

from __future__ import annotations

import sys

from langchain_pgvstore.cli import main

if __name__ == "__main__":
    sys.exit(main())
