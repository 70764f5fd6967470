"""What the command prints: aligned tables on stdout, progress on stderr.

Progress uses tqdm when it is installed (the `progress` extra); otherwise a
plain line, rewritten in place on a terminal and printed once per phase when
stderr is a file or a pipe.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .._indexes import IndexProgress

__all__ = ["Counter", "IndexBar", "human_size", "print_table"]


def human_size(n: int) -> str:
    """Bytes as B, kB, MB, GB (powers of 1024, one decimal)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None
) -> None:
    """Columns separated by two spaces; numbers right-aligned; None as `-`."""
    out = out or sys.stdout
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    print(line(headers), file=out)
    for row in cells:
        print(line(row), file=out)


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Counter:
    """A progress count with a description; tqdm or a plain line on stderr."""

    def __init__(self, desc: str, total: int | None, unit: str, *, enabled: bool = True) -> None:
        self._desc, self._total, self._unit = desc, total, unit
        self._done = 0
        self._enabled = enabled
        self._tty = sys.stderr.isatty()
        self._tqdm = _tqdm() if enabled else None
        self._bar: Any = None
        self._phase: str | None = None  # the description of the last `set`

    def set(self, desc: str, done: int, total: int | None, unit: str | None = None) -> None:
        """Show `done` of `total` (in `unit`) in phase `desc`; nothing is drawn before this."""
        if not self._enabled:
            return
        unit = unit or self._unit
        if self._tqdm is not None and self._bar is None:
            self._bar = self._tqdm(total=total, desc=desc, unit=unit)
            self._desc, self._total, self._unit = desc, total, unit
        if self._bar is not None:
            if desc != self._desc:
                self._bar.set_description(desc)
            if unit != self._unit:
                self._bar.unit = unit
            if total != self._total:
                self._bar.reset(total=total)
            self._bar.update(done - self._bar.n)
        elif self._tty:
            line = self._text(desc, done, total, unit)
            print(f"\r\x1b[K{line}", end="", file=sys.stderr, flush=True)
        elif self._phase is not None and desc != self._phase:
            print(self._text(self._desc, self._done, self._total), file=sys.stderr)
        self._desc, self._done, self._total, self._phase = desc, done, total, desc
        self._unit = unit

    def update(self, n: int) -> None:
        self.set(self._desc, self._done + n, self._total)

    def close(self) -> None:
        if self._phase is None:
            return
        if self._bar is not None:
            self._bar.close()
        elif self._tty:
            print(file=sys.stderr)
        else:
            print(self._text(self._desc, self._done, self._total), file=sys.stderr)

    def _text(self, desc: str, done: int, total: int | None, unit: str | None = None) -> str:
        unit = unit or self._unit
        if total:
            return f"{desc}: {done}/{total} {unit} ({100 * done // total}%)"
        return f"{desc}: {done} {unit}"


class IndexBar:
    """Feeds `pg_stat_progress_create_index` snapshots to a `Counter`."""

    def __init__(self, desc: str, *, enabled: bool = True) -> None:
        self._counter = Counter(desc, None, "tuples", enabled=enabled)
        self._desc = desc

    def __call__(self, snapshot: IndexProgress) -> None:
        if snapshot.tuples_total > 0:
            done, total, unit = snapshot.tuples_done, snapshot.tuples_total, "tuples"
        else:
            done, total, unit = snapshot.blocks_done, snapshot.blocks_total, "blocks"
        self._counter.set(f"{self._desc}: {snapshot.phase}", done, total or None, unit)

    def close(self) -> None:
        self._counter.close()
