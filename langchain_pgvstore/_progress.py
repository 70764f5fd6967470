"""Progress reporting for long loads: a callback, a tqdm bar, or nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from .errors import ConfigError

__all__ = ["Progress", "make_progress"]


class Progress(Protocol):
    def advance(self, n: int) -> None: ...


class _Silent:
    def advance(self, n: int) -> None:
        pass


class _Callback:
    def __init__(self, callback: Callable[[int, int], None], total: int) -> None:
        self._callback = callback
        self._total = total
        self._done = 0

    def advance(self, n: int) -> None:
        self._done += n
        self._callback(self._done, self._total)


class _Bar:
    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def advance(self, n: int) -> None:
        self._bar.update(n)


@contextmanager
def make_progress(
    progress: bool | Callable[[int, int], None] | None, total: int
) -> Iterator[Progress]:
    """`True` → a tqdm bar (extra `progress`), a callable → `callback(done, total)`."""
    if progress is None or progress is False:
        yield _Silent()
    elif progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError as e:
            raise ConfigError(
                "progress=True needs tqdm: pip install 'langchain-pgvstore[progress]'"
            ) from e
        with tqdm(total=total, unit="doc", desc="embedding") as bar:
            yield _Bar(bar)
    elif callable(progress):
        yield _Callback(progress, total)
    else:
        raise ConfigError(f"progress must be a bool or a callable, got {progress!r}")
