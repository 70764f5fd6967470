"""Run the `pgvstore` command as a user would: a separate process, its exit code, its output."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("pgvstore")
FAKE = "tests.cli.models:fake"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        return self.out.splitlines()


def command() -> list[str]:
    """The installed console script, else the module (a checkout that is not installed)."""
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "langchain_pgvstore.cli"]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGVSTORE_", "OPENAI_"))}
    env["PYTHONPATH"] = str(ROOT)  # for --embeddings tests.cli.models:fake
    env.update(extra)
    return env


def pgvstore(
    *args: str | Path, input: str | None = None, timeout: float = 300, **env: str
) -> Result:
    proc = subprocess.run(
        [*command(), *map(str, args)],
        env=environment(**env),
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """Exit `code`, nothing on stdout, one `pgvstore: error:` line on stderr, no traceback."""
    assert result.code == code, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pgvstore: error: "), result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
