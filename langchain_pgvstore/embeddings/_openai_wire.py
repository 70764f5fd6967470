"""The wire side of the OpenAI embeddings client: request input, response checks, errors.

Pure helpers of `openai.py`: they decode and check what the endpoint sent, and
describe failures without headers, keys or credentials in URLs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import openai

from ..errors import EmbeddingError
from .batching import FloatArray

__all__ = [
    "Redactor",
    "decode_vector",
    "describe",
    "gather_or_cancel",
    "public_url",
    "read_vectors",
    "wire_input",
]

_T = TypeVar("_T")


class Redactor:
    """Removes secrets from text before it goes into an error message."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[object]) -> None:
        # very short strings would blank out ordinary words; real keys are long
        self._secrets = tuple({s for s in secrets if isinstance(s, str) and len(s) >= 8})

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return "<redactor>"


async def gather_or_cancel(coros: Sequence[Awaitable[_T]]) -> list[_T]:
    """Like `asyncio.gather`, but the first failure cancels the requests still pending."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def wire_input(payloads: list[str | tuple[int, ...]]) -> list[str] | list[list[int]]:
    """The request's `input`: all strings, or all token-id lists (never mixed)."""
    texts = [p for p in payloads if isinstance(p, str)]
    if len(texts) == len(payloads):
        return texts
    if texts:
        raise AssertionError("a plan never mixes strings and token ids")
    return [list(p) for p in payloads if not isinstance(p, str)]


def read_vectors(response: object, expected: int, dimensions: int | None) -> FloatArray:
    """Check an embeddings response and return its vectors as rows, ordered by `index`."""
    data = getattr(response, "data", None)
    if not isinstance(data, list):
        raise EmbeddingError(
            f"malformed response from the embeddings endpoint: 'data' is {type(data).__name__},"
            " expected a list"
        )
    if len(data) != expected:
        raise EmbeddingError(f"expected {expected} embeddings, got {len(data)}")
    rows: list[FloatArray | None] = [None] * expected
    for item in data:
        # the API documents `index`; do not trust the list order
        index = getattr(item, "index", None)
        if not isinstance(index, int) or not 0 <= index < expected or rows[index] is not None:
            raise EmbeddingError(
                f"malformed response from the embeddings endpoint: index {index!r} is missing,"
                f" repeated or outside 0..{expected - 1}"
            )
        rows[index] = decode_vector(getattr(item, "embedding", None), index)
    vectors = [r for r in rows if r is not None]
    width = len(vectors[0])
    for i, row in enumerate(vectors):
        if len(row) != width:
            raise EmbeddingError(
                f"embedding {i} has {len(row)} dimensions, embedding 0 has {width}"
            )
    if dimensions is not None and width != dimensions:
        raise EmbeddingError(f"expected {dimensions} dimensions, got {width}")
    out = np.stack(vectors)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        raise EmbeddingError(f"embedding {int(np.argmin(finite))} contains NaN or infinity")
    return out


def decode_vector(raw: object, index: int) -> FloatArray:
    """A vector sent as base64 float32 little-endian (what we ask for) or as a JSON list.

    OpenAI-compatible servers that ignore `encoding_format` answer with lists.
    """
    if isinstance(raw, str):
        try:
            buf = base64.b64decode(raw, validate=True)
        except binascii.Error as e:
            raise EmbeddingError(f"embedding {index} is not valid base64: {e}") from e
        if len(buf) % 4:
            raise EmbeddingError(
                f"embedding {index} has {len(buf)} bytes, not a whole number of float32 values"
            )
        vec = np.frombuffer(buf, dtype="<f4").astype(np.float64)
    elif isinstance(raw, list):
        try:
            vec = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise EmbeddingError(f"embedding {index} is not a list of numbers") from e
    else:
        raise EmbeddingError(
            f"embedding {index} is {type(raw).__name__}, expected a list of floats or base64"
        )
    if vec.ndim != 1 or len(vec) == 0:
        raise EmbeddingError(f"embedding {index} is not a non-empty flat list of numbers")
    return vec


def describe(e: Exception, base_url: object) -> str:
    """An error message for a failed request: status and server message, never headers."""
    where = public_url(base_url)
    if isinstance(e, openai.APIStatusError):
        return f"the embeddings endpoint at {where} answered {e.status_code}: {_server_message(e)}"
    if isinstance(e, openai.APITimeoutError):
        return f"the embeddings request to {where} timed out"
    if isinstance(e, openai.APIConnectionError):
        return f"cannot connect to the embeddings endpoint at {where}: {e}"
    # APIResponseValidationError, or the client's JSON and parsing ValueErrors
    return f"malformed response from the embeddings endpoint at {where}: {e}"


def _server_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    return e.message


def public_url(url: object) -> str:
    """`url` without a user name or password."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
