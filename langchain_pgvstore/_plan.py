"""The steps a multi-statement plan yields, and the plan type itself.

A plan is a generator: it yields a step, the runner performs it and sends
back the result (rows for `Fetch`, the row count for `Execute`, None for
`Copy`), and the plan's return value is the result of the whole call. All the
decisions live in the plan, so the sync and async runners only move bytes.
A `Phase` step marks where a phase of the work begins, for progress reports
(`_progress.report_phases`); runners send back None and run nothing.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ._sql import Frag

__all__ = ["Copy", "Execute", "Fetch", "Phase", "Plan", "Step"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetch:
    """Run a query; the plan receives `list[tuple]`.

    `client`: bind the parameters on the client (Citus's EXPLAIN cannot pass
    server-side parameters on to the workers).
    """

    frag: Frag
    binary: bool = False
    client: bool = False


@dataclass(frozen=True, slots=True)
class Execute:
    """Run a statement; the plan receives its row count."""

    frag: Frag


@dataclass(frozen=True, slots=True)
class Copy:
    """Run `COPY ... FROM STDIN` and write pre-encoded chunks; the plan receives None."""

    frag: Frag
    chunks: Iterable[bytes]


@dataclass(frozen=True, slots=True)
class Phase:
    """Not a statement: the plan starts phase `name` of its work, over `total` rows."""

    name: str
    total: int


Step = Fetch | Execute | Copy | Phase
Plan = Generator[Step, Any, T]
