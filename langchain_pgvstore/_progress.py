"""Progress reporting for long loads: a callback, a tqdm bar, or nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from .errors import ConfigError

__all__ = ["Progress", "check_progress", "make_progress"]


class Progress(Protocol):
    def advance(self, n: int) -> None: ...


class _Silent:
    def advance(self, n: int) -> None:
        pass


class _Callback:
    def __init__(self, callback: Callable[[int, int], None], total: int, done: int) -> None:
        self._callback = callback
        self._total = total
        self._done = done

    def advance(self, n: int) -> None:
        self._done += n
        self._callback(self._done, self._total)


class _Bar:
    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def advance(self, n: int) -> None:
        self._bar.update(n)


def check_progress(progress: object) -> None:
    """Refuse a `progress` argument `make_progress` would refuse, before any work starts."""
    if progress is True:
        try:
            import tqdm  # noqa: F401
        except ImportError as e:
            raise ConfigError(
                "progress=True needs tqdm: pip install 'langchain-pgvstore[progress]'"
            ) from e
    elif not (progress is None or progress is False or callable(progress)):
        raise ConfigError(f"progress must be a bool or a callable, got {progress!r}")


@contextmanager
def make_progress(
    progress: bool | Callable[[int, int], None] | None,
    total: int,
    *,
    done: int = 0,
    desc: str = "embedding",
) -> Iterator[Progress]:
    """`True` → a tqdm bar (extra `progress`), a callable → `callback(done, total)`.

    `done` is where the count starts (work an earlier run did).
    """
    check_progress(progress)
    if progress is None or progress is False:
        yield _Silent()
    elif progress is True:
        from tqdm.auto import tqdm

        with tqdm(total=total, initial=done, unit="doc", desc=desc) as bar:
            yield _Bar(bar)
    else:
        assert callable(progress)
        yield _Callback(progress, total, done)
