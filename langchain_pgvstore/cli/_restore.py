"""Restoring single collections from a `pg_dump` archive.

A collection is its table plus objects named after it: indexes, the BM25
statistics table, functions and triggers, all named `<name>_<hash>_<kind>`
(`Table.index_name`), and a row in its schema's registry. `pg_restore -l`
lists the archive's entries; the ones of the collection are restored with
`--use-list`, in one transaction, and the registry row, read from the
archive's copy of the registry, is inserted after them.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Table

__all__ = ["RegistryRow", "collection_entries", "parse_registry"]

_ENTRY = re.compile(r"^(\d+); (\d+) (\d+) (\S+(?: DATA| CONSTRAINT)?) (\S+) (.+) (\S+)$")
_COPY = re.compile(r"^COPY (\S+) \((.*)\) FROM stdin;$")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def collection_entries(listing: str, schema: str, name: str) -> list[str]:
    """The lines of a `pg_restore -l` listing that belong to collection `schema.name`."""
    derived = Table(schema, name).index_name("")
    chosen = []
    for line in listing.splitlines():
        match = _ENTRY.match(line)
        if match is None or match[5] != schema:
            continue
        tag = match[6]
        if tag == name or tag.startswith((name + " ", derived)):
            chosen.append(line)
    return chosen


def _unescape(field: str) -> str | None:
    if field == "\\N":
        return None
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), field)


@dataclass(frozen=True, slots=True)
class RegistryRow:
    """A collection's row of the registry, as the archive holds it."""

    values: dict[str, str | None]

    def get(self, column: str) -> str | None:
        return self.values.get(column)


def parse_registry(script: str, name: str) -> RegistryRow | None:
    """The registry row of `name` in the COPY data of a `pg_restore --data-only` script."""
    lines = iter(script.splitlines())
    for line in lines:
        match = _COPY.match(line)
        if match is None:
            continue
        columns = [c.strip().strip('"') for c in match[2].split(",")]
        for row in lines:
            if row == "\\.":
                break
            values = dict(zip(columns, map(_unescape, row.split("\t")), strict=False))
            if values.get("collection") == name:
                return RegistryRow(values)
    return None


def run(program: Path, args: Sequence[str], *, what: str) -> str:
    """Run a PostgreSQL program; its last line of complaint is the error."""
    from ._exits import CLIError

    proc = subprocess.run(
        [str(program), *args], capture_output=True, text=True, check=False, timeout=3600
    )
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        detail = next((line for line in lines if "error" in line.lower()), None) or (
            lines[-1] if lines else f"exit status {proc.returncode}"
        )
        raise CLIError(f"{what} failed: {detail.strip()}")
    return proc.stdout
