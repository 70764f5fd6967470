"""Embedding models: OpenAI batched by tokens, and a local all-MiniLM-L6-v2.

Importing this package loads neither torch nor sentence-transformers:
`MiniLMEmbeddings` imports them when it first embeds something.
"""

from .batching import DEFAULT_PRICES, EmbeddingEstimate
from .local import MiniLMEmbeddings
from .openai import OpenAIBatchEmbeddings, load_encoding

__all__ = [
    "DEFAULT_PRICES",
    "EmbeddingEstimate",
    "MiniLMEmbeddings",
    "OpenAIBatchEmbeddings",
    "load_encoding",
]
