"""The context-manager protocol shared by everything that holds connections."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Closing"]


class Closing:
    """`with` / `async with` support over `close()` and `aclose()`."""

    def close(self) -> None:
        """Release the resources this object opened."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release the resources this object opened, async ones included."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
