"""Pure planning for embedding requests: chunking, batching, merging, cost.

Nothing here does I/O. `OpenAIBatchEmbeddings` runs the same plan from its sync
and its async request loop, so the two can only differ in how they wait.

The steps, in order:

1. `plan_texts` tokenises every text, replaces an empty text by a single space,
   and cuts a text longer than the model's context into pieces (or keeps only the
   first piece, for the "truncate" policy). Each `Piece` knows which text it came
   from and how many tokens the server will count for it.
2. `plan_batches` groups pieces into requests under two limits at once: inputs
   per request and tokens per request.
3. After the requests, `merge` turns the piece vectors back into one vector per
   text: the token-weighted mean of its pieces, scaled to unit length.
4. `estimate` prices a plan without sending anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError

__all__ = [
    "DEFAULT_PRICES",
    "EMPTY_TEXT_STANDIN",
    "EmbeddingEstimate",
    "LongInputPolicy",
    "Piece",
    "RequestPlan",
    "Tokenizer",
    "estimate",
    "merge",
    "plan_batches",
    "plan_texts",
    "split_text",
    "split_tokens",
]

LongInputPolicy = Literal["average", "truncate"]
"""What to do with a text longer than the model's context window."""

EMPTY_TEXT_STANDIN = " "
"""What an empty text is embedded as.

OpenAI answers 400 to an empty input, and a zero vector has no direction, so
cosine distance to it is undefined. A single space gets a real, stable vector
that is far from any text with content.
"""

DEFAULT_PRICES: Mapping[str, float] = MappingProxyType(
    {
        "text-embedding-3-small": 0.02,
        "text-embedding-3-large": 0.13,
        "text-embedding-ada-002": 0.10,
    }
)
"""US dollars per million input tokens, from OpenAI's price list."""

FloatArray = npt.NDArray[np.float64]


class Tokenizer(Protocol):
    """The part of `tiktoken.Encoding` the planner uses."""

    def encode_ordinary(self, text: str) -> list[int]:
        """Tokenise `text`, treating special-token markers as plain text."""
        ...

    def decode_bytes(self, tokens: Sequence[int], /) -> bytes:
        """Return the UTF-8 bytes that `tokens` stand for."""
        ...


@dataclass(frozen=True, slots=True)
class Piece:
    """One entry of a request's `input` array.

    `payload` is the text to send, or its token ids when sending tokens.
    `tokens` is the number of tokens the server counts for it.
    """

    owner: int
    payload: str | tuple[int, ...]
    tokens: int


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """Every request needed to embed `n_inputs` texts.

    `batches[k]` holds the indices into `pieces` sent by request `k`, in order.
    """

    n_inputs: int
    pieces: tuple[Piece, ...]
    batches: tuple[tuple[int, ...], ...]

    @property
    def tokens(self) -> int:
        """Total tokens sent, over all requests."""
        return sum(p.tokens for p in self.pieces)

    def payloads(self, batch: int) -> list[str | tuple[int, ...]]:
        """The `input` array of request `batch`."""
        return [self.pieces[i].payload for i in self.batches[batch]]


@dataclass(frozen=True, slots=True)
class EmbeddingEstimate:
    """What embedding some texts would cost, computed without calling the API."""

    tokens: int
    requests: int
    cost_usd: float


def split_tokens(tokens: Sequence[int], max_len: int) -> list[list[int]]:
    """Cut `tokens` into consecutive runs of at most `max_len` tokens."""
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    return [list(tokens[i : i + max_len]) for i in range(0, len(tokens), max_len)]


def split_text(
    tokens: Sequence[int], max_len: int, tokenizer: Tokenizer
) -> Iterator[tuple[str, int]]:
    """Cut a tokenised text into strings that each re-tokenise to at most `max_len` tokens.

    Yields `(text, token_count)`. Used when sending strings: the server tokenises
    what we send, and a decoded run of tokens does not always re-tokenise to the
    same run (a cut inside a multi-byte character turns into U+FFFD, and the
    regex pre-split can differ at the edges). So each cut is moved back to a
    character boundary, and the piece is re-measured and shortened until it fits.
    Joined together, the pieces give back the original text whenever
    `max_len >= 4`, enough tokens for any character (at most 4 bytes).
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    start, n = 0, len(tokens)
    while start < n:
        end = min(start + max_len, n)
        while True:
            raw = tokenizer.decode_bytes(tokens[start:end])
            if end < n and end - start > 1 and _cut_inside_character(raw):
                end -= 1
                continue
            text = raw.decode("utf-8", errors="replace")
            count = len(tokenizer.encode_ordinary(text))
            if count > max_len and end - start > 1:
                end = max(start + 1, end - (count - max_len))
                continue
            break
        yield text, count
        start = end


def _cut_inside_character(raw: bytes) -> bool:
    """Whether `raw` ends partway through a UTF-8 encoded character."""
    for back in range(1, min(4, len(raw)) + 1):
        byte = raw[-back]
        if byte & 0b1100_0000 == 0b1000_0000:  # continuation byte: keep looking for the lead
            continue
        if byte >= 0b1111_0000:
            width = 4
        elif byte >= 0b1110_0000:
            width = 3
        elif byte >= 0b1100_0000:
            width = 2
        else:
            width = 1
        return back < width
    return False  # four continuation bytes in a row: invalid UTF-8, nothing to repair


def plan_texts(
    texts: Sequence[str],
    tokenizer: Tokenizer,
    *,
    context_length: int = 8191,
    long_input: LongInputPolicy = "average",
    send_tokens: bool = False,
    max_inputs: int = 2048,
    max_tokens: int = 300_000,
) -> RequestPlan:
    """Tokenise, chunk and batch `texts` into the requests that embed them.

    A text longer than `context_length` tokens becomes several pieces
    (`"average"`) or only its first piece (`"truncate"`). A piece never holds
    more than `max_tokens` tokens either, so every piece fits in a request.
    """
    if context_length < 1:
        raise ValueError(f"context_length must be at least 1, got {context_length}")
    if long_input not in ("average", "truncate"):
        raise ValueError(f"long_input must be 'average' or 'truncate', got {long_input!r}")
    limit = min(context_length, max_tokens)
    pieces: list[Piece] = []
    for owner, text in enumerate(texts):
        text = text or EMPTY_TEXT_STANDIN
        tokens = tokenizer.encode_ordinary(text)
        if len(tokens) <= limit:
            pieces.append(Piece(owner, tuple(tokens) if send_tokens else text, len(tokens)))
            continue
        if send_tokens:
            runs = split_tokens(tokens, limit)
            if long_input == "truncate":
                runs = runs[:1]
            pieces.extend(Piece(owner, tuple(run), len(run)) for run in runs)
        else:
            chunks = split_text(tokens, limit, tokenizer)
            if long_input == "truncate":
                first, count = next(chunks)
                pieces.append(Piece(owner, first, count))
            else:
                pieces.extend(Piece(owner, chunk, count) for chunk, count in chunks)
    batches = plan_batches([p.tokens for p in pieces], max_inputs=max_inputs, max_tokens=max_tokens)
    return RequestPlan(len(texts), tuple(pieces), tuple(tuple(b) for b in batches))


def plan_batches(
    token_counts: Sequence[int], *, max_inputs: int = 2048, max_tokens: int = 300_000
) -> list[list[int]]:
    """Group indices `0..len(token_counts)-1` into requests, in order.

    Each request has at most `max_inputs` entries and `max_tokens` tokens in
    total. Filling each request greedily gives the fewest requests any
    order-preserving grouping can have.
    """
    if max_inputs < 1:
        raise ValueError(f"max_inputs must be at least 1, got {max_inputs}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, count in enumerate(token_counts):
        if count < 0 or count > max_tokens:
            # plan_texts cuts pieces to fit, so this is a caller bug, not bad input
            raise ValueError(
                f"input {i} has {count} tokens; a single input must have 0 to {max_tokens}"
            )
        if current and (len(current) == max_inputs or used + count > max_tokens):
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += count
    if current:
        batches.append(current)
    return batches


def merge(
    vectors: npt.ArrayLike, owners: Sequence[int], weights: Sequence[int], n_inputs: int
) -> FloatArray:
    """Combine piece vectors into one vector per input.

    Row `i` of `vectors` belongs to input `owners[i]` and covers `weights[i]`
    tokens. An input with one piece gets that vector unchanged. An input with
    several gets their mean weighted by token count, scaled back to unit length
    (the mean of unit vectors is shorter than 1, and cosine and inner-product
    search expect unit vectors from OpenAI models).
    """
    vecs = np.asarray(vectors, dtype=np.float64)
    if vecs.ndim != 2 or len(vecs) != len(owners) or len(owners) != len(weights):
        raise ValueError(
            f"expected one vector, owner and weight per piece, got {vecs.shape[0]} vectors,"
            f" {len(owners)} owners and {len(weights)} weights"
        )
    own = np.asarray(owners, dtype=np.intp).reshape(-1)
    wts = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(own) and (own.min() < 0 or own.max() >= n_inputs):
        raise ValueError(f"owners must be in 0..{n_inputs - 1}")
    if (wts <= 0).any():
        raise ValueError("weights must be positive token counts")
    pieces_per_input = np.bincount(own, minlength=n_inputs)
    if (pieces_per_input == 0).any():
        missing = int(np.flatnonzero(pieces_per_input == 0)[0])
        raise ValueError(f"input {missing} has no vector")

    out = np.empty((n_inputs, vecs.shape[1]), dtype=np.float64)
    single = pieces_per_input[own] == 1
    out[own[single]] = vecs[single]
    multi = ~single
    if multi.any():
        sums = np.zeros_like(out)
        np.add.at(sums, own[multi], vecs[multi] * wts[multi, None])
        rows = np.flatnonzero(pieces_per_input > 1)
        means = sums[rows] / np.bincount(own, weights=wts, minlength=n_inputs)[rows, None]
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        # pieces pointing in exactly opposite directions would average to zero;
        # leave such a row as it is rather than divide by zero
        out[rows] = means / np.where(norms == 0.0, 1.0, norms)
    return out


def estimate(
    plan: RequestPlan, *, model: str, prices: Mapping[str, float] = DEFAULT_PRICES
) -> EmbeddingEstimate:
    """Price `plan` with `prices`, in US dollars per million tokens of `model`."""
    price = prices.get(model)
    if price is None:
        raise ConfigError(
            f"no price for model {model!r}; known: {', '.join(sorted(prices)) or 'none'}"
        )
    if not math.isfinite(price) or price < 0:
        raise ConfigError(f"price for model {model!r} must be a finite number >= 0, got {price!r}")
    tokens = plan.tokens
    return EmbeddingEstimate(
        tokens=tokens, requests=len(plan.batches), cost_usd=tokens * price / 1e6
    )
