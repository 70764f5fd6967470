"""Embedding models: OpenAI batched by tokens, and two local ones.

`E5SmallEmbeddings` (multilingual-e5-small, 4-bit, no torch; the `e5` extra) and
`MiniLMEmbeddings` (all-MiniLM-L6-v2 with sentence-transformers; the `local`
extra). Importing this package loads neither model package: each class imports
its own when it first embeds something.
"""

from .batching import DEFAULT_PRICES, EmbeddingEstimate
from .e5 import E5SmallEmbeddings
from .local import MiniLMEmbeddings
from .openai import OpenAIBatchEmbeddings, load_encoding

__all__ = [
    "DEFAULT_PRICES",
    "E5SmallEmbeddings",
    "EmbeddingEstimate",
    "MiniLMEmbeddings",
    "OpenAIBatchEmbeddings",
    "load_encoding",
]
