"""Embedding models: OpenAI batched by tokens, and a local all-MiniLM-L6-v2.

Importing this package loads none of the models' own libraries: the OpenAI
client (the `openai` extra) is imported when `OpenAIBatchEmbeddings` is first
named, torch and sentence-transformers (the `local` extra) when
`MiniLMEmbeddings` first embeds something.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .batching import DEFAULT_PRICES, EmbeddingEstimate
from .local import MiniLMEmbeddings

if TYPE_CHECKING:
    from .openai import OpenAIBatchEmbeddings, load_encoding

__all__ = [
    "DEFAULT_PRICES",
    "EmbeddingEstimate",
    "MiniLMEmbeddings",
    "OpenAIBatchEmbeddings",
    "load_encoding",
]

_OPENAI = frozenset({"OpenAIBatchEmbeddings", "load_encoding"})
_OPENAI_HINT = (
    "{name} needs the OpenAI client and tiktoken; install them with:"
    " pip install 'langchain-pgvstore[openai]'"
)


def __getattr__(name: str) -> Any:
    if name in _OPENAI:
        try:
            from . import openai
        except ImportError as e:
            if e.name not in ("openai", "tiktoken"):
                raise
            raise ImportError(_OPENAI_HINT.format(name=name), name=e.name) from e
        return getattr(openai, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
