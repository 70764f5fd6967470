"""Embedding models: OpenAI batched by tokens, and two local ones.

`E5SmallEmbeddings` (multilingual-e5-small, 4-bit, no torch; the `e5` extra),
`MiniLMEmbeddings` (all-MiniLM-L6-v2 with sentence-transformers; the `local`
extra) and `OpenAIBatchEmbeddings` (the `openai` extra). Importing this package
loads none of the models' own libraries: the OpenAI client is imported when
`OpenAIBatchEmbeddings` is first named, the local models' packages when they
first embed something.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .batching import DEFAULT_PRICES, EmbeddingEstimate
from .e5 import E5SmallEmbeddings
from .local import MiniLMEmbeddings

if TYPE_CHECKING:
    from ._encoding import load_encoding
    from .openai import OpenAIBatchEmbeddings

__all__ = [
    "DEFAULT_PRICES",
    "E5SmallEmbeddings",
    "EmbeddingEstimate",
    "MiniLMEmbeddings",
    "OpenAIBatchEmbeddings",
    "load_encoding",
]

# name -> (module, what it needs); imported on first use, with an install hint
_LAZY = {
    "OpenAIBatchEmbeddings": ("openai", "the OpenAI client and tiktoken"),
    "load_encoding": ("_encoding", "tiktoken"),
}
_HINT = "{name} needs {needs}; install them with: pip install 'langchain-pgvstore[openai]'"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, needs = _LAZY[name]
        try:
            found = importlib.import_module(f".{module}", __name__)
        except ImportError as e:
            if e.name not in ("openai", "tiktoken"):
                raise
            raise ImportError(_HINT.format(name=name, needs=needs), name=e.name) from e
        return getattr(found, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
