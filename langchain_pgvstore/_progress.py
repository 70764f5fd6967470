"""Progress reporting for long loads: a callback, tqdm bars, or nothing.

A load goes through phases: `embedding` (the model, batch by batch), `copy`
(binary COPY of the rows), `merge` (the upsert from the staging table; skipped
when a large load goes straight into an empty table) and `index` (only when
the load builds or rebuilds the ANN index). Each phase reports
`(phase, done, total)` with `total` the rows of the load: first `done=0`, then
as work completes, last `done=total`.

The write plans say when a phase starts by yielding a `Phase` step (`_plan`);
`report_phases` takes those steps out of the plan on their way to the runner
and tells a `Progress` about them. So the plans stay pure descriptions and the
runners never learn about progress (they skip a `Phase` that reaches them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ._plan import Phase, Plan
from .errors import ConfigError

__all__ = ["PhaseCallback", "Progress", "make_progress", "report_phases"]

T = TypeVar("T")
PhaseCallback = Callable[[str, int, int], None]


class Progress:
    """Receives the phases of one load; this base class reports nothing."""

    def __init__(self) -> None:
        self._phase: str | None = None
        self._done = 0
        self._total = 0

    def phase(self, name: str, total: int) -> None:
        """Close the open phase (its work is done) and start `name`."""
        self.finish()
        self._phase, self._done, self._total = name, 0, total
        self._opened(name, total)

    def advance(self, n: int) -> None:
        """`n` more rows of the open phase are done."""
        if self._phase is not None:
            self._done = min(self._total, self._done + n)
            self._advanced(self._phase, n, self._done, self._total)

    def finish(self) -> None:
        """The open phase is complete."""
        if self._phase is not None:
            if self._done < self._total:
                self.advance(self._total - self._done)
            self._closed(self._phase)
            self._phase = None

    def _opened(self, name: str, total: int) -> None:
        pass

    def _advanced(self, name: str, n: int, done: int, total: int) -> None:
        pass

    def _closed(self, name: str) -> None:
        pass


class _Callback(Progress):
    def __init__(self, callback: PhaseCallback) -> None:
        super().__init__()
        self._callback = callback

    def _opened(self, name: str, total: int) -> None:
        self._callback(name, 0, total)

    def _advanced(self, name: str, n: int, done: int, total: int) -> None:
        self._callback(name, done, total)


class _Bars(Progress):
    """One tqdm bar per phase."""

    def __init__(self, tqdm: Any) -> None:
        super().__init__()
        self._tqdm = tqdm
        self._bar: Any = None

    def _opened(self, name: str, total: int) -> None:
        self._bar = self._tqdm(total=total, unit="doc", desc=name)

    def _advanced(self, name: str, n: int, done: int, total: int) -> None:
        self._bar.update(n)

    def _closed(self, name: str) -> None:
        self._bar.close()

    def abandon(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextmanager
def make_progress(progress: bool | PhaseCallback | None) -> Iterator[Progress]:
    """`True` → tqdm bars (extra `progress`), a callable → `callback(phase, done, total)`.

    The open phase is completed when the block ends normally; after an error
    it is left where it stopped.
    """
    if progress is None or progress is False:
        yield Progress()
    elif progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError as e:
            raise ConfigError(
                "progress=True needs tqdm: pip install 'langchain-pgvstore[progress]'"
            ) from e
        bars = _Bars(tqdm)
        try:
            yield bars
        except BaseException:
            bars.abandon()
            raise
        bars.finish()
    elif callable(progress):
        reporter = _Callback(progress)
        yield reporter
        reporter.finish()
    else:
        raise ConfigError(
            f"progress must be a bool or a callable (phase, done, total), got {progress!r}"
        )


def report_phases(plan: Plan[T], progress: Progress) -> Plan[T]:
    """`plan` without its `Phase` steps, which go to `progress` instead."""
    result: Any = None
    while True:
        try:
            step = plan.send(result)
        except StopIteration as stop:
            value: T = stop.value
            return value
        if isinstance(step, Phase):
            progress.phase(step.name, step.total)
            result = None
        else:
            result = yield step
