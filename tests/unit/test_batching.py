"""Planning, chunking, merging and pricing of embedding requests: pure, no network."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_pgvstore.embeddings import batching, load_encoding
from langchain_pgvstore.embeddings.batching import (
    EmbeddingEstimate,
    merge,
    plan_batches,
    plan_texts,
    split_text,
    split_tokens,
)
from langchain_pgvstore.errors import ConfigError

ENC = load_encoding()

# text that exercises multi-byte characters and whitespace runs at chunk edges
tricky_text = st.text(
    alphabet=st.sampled_from(list("ab yz.\n\t  éß日本語テキスト😀🧪🇫🇷")), min_size=1, max_size=300
)


# -- plan_batches --------------------------------------------------------------------


@given(
    counts=st.lists(st.integers(0, 60), max_size=150),
    max_inputs=st.integers(1, 12),
    max_tokens=st.integers(60, 250),
)
def test_plan_batches_covers_every_index_once_in_order_within_limits(
    counts, max_inputs, max_tokens
):
    batches = plan_batches(counts, max_inputs=max_inputs, max_tokens=max_tokens)
    assert [i for b in batches for i in b] == list(range(len(counts)))
    for b in batches:
        assert b
        assert len(b) <= max_inputs
        assert sum(counts[i] for i in b) <= max_tokens
    # greedy: a request was closed only because the next input would not fit
    for b in batches[:-1]:
        nxt = b[-1] + 1
        assert len(b) == max_inputs or sum(counts[i] for i in b) + counts[nxt] > max_tokens


def test_plan_batches_of_nothing_is_no_request():
    assert plan_batches([]) == []


def test_plan_batches_5000_inputs_default_limits():
    batches = plan_batches([5] * 5000)
    assert [len(b) for b in batches] == [2048, 2048, 904]


def test_plan_batches_splits_by_tokens_before_inputs():
    assert plan_batches([4, 4, 4, 4, 4], max_inputs=100, max_tokens=8) == [[0, 1], [2, 3], [4]]


def test_plan_batches_rejects_an_input_bigger_than_a_request():
    with pytest.raises(ValueError, match="input 1 has 11 tokens"):
        plan_batches([3, 11], max_tokens=10)


@pytest.mark.parametrize("kw", [{"max_inputs": 0}, {"max_tokens": 0}])
def test_plan_batches_rejects_empty_limits(kw):
    with pytest.raises(ValueError, match="must be at least 1"):
        plan_batches([1], **kw)


# -- chunking --------------------------------------------------------------------------


@given(tokens=st.lists(st.integers(0, 100_000), max_size=200), max_len=st.integers(1, 50))
def test_split_tokens_is_consecutive_runs(tokens, max_len):
    runs = split_tokens(tokens, max_len)
    assert [t for r in runs for t in r] == tokens
    assert all(1 <= len(r) <= max_len for r in runs)
    assert all(len(r) == max_len for r in runs[:-1])


@given(text=st.one_of(tricky_text, st.text(min_size=1, max_size=200)), max_len=st.integers(4, 40))
def test_split_text_pieces_fit_and_join_back(text, max_len):
    tokens = ENC.encode_ordinary(text)
    pieces = list(split_text(tokens, max_len, ENC))
    assert "".join(p for p, _ in pieces) == text
    for piece, count in pieces:
        # the count is what the server will count for the string we send
        assert count == len(ENC.encode_ordinary(piece))
        assert 1 <= count <= max_len


def test_split_text_does_not_cut_inside_a_character():
    text = "日本語" * 50  # three-byte characters, often split across tokens
    pieces = [p for p, _ in split_text(ENC.encode_ordinary(text), 7, ENC)]
    assert len(pieces) > 1
    assert all("\ufffd" not in p for p in pieces)


LONG = " ".join(f"word{i}" for i in range(300))  # about 600 tokens


@pytest.mark.parametrize("send_tokens", [False, True])
def test_plan_texts_average_splits_long_input_into_pieces(send_tokens):
    plan = plan_texts(["short", LONG, "tail"], ENC, context_length=100, send_tokens=send_tokens)
    owners = [p.owner for p in plan.pieces]
    assert owners[0] == 0 and owners[-1] == 2
    long_pieces = [p for p in plan.pieces if p.owner == 1]
    assert len(long_pieces) >= math.ceil(len(ENC.encode_ordinary(LONG)) / 100) > 1
    assert all(p.tokens <= 100 for p in plan.pieces)
    if send_tokens:
        joined = [t for p in long_pieces for t in p.payload]
        assert joined == ENC.encode_ordinary(LONG)
    else:
        assert "".join(str(p.payload) for p in long_pieces) == LONG


@pytest.mark.parametrize("send_tokens", [False, True])
def test_plan_texts_truncate_keeps_the_first_context_length_tokens(send_tokens):
    plan = plan_texts(
        [LONG], ENC, context_length=100, long_input="truncate", send_tokens=send_tokens
    )
    (piece,) = plan.pieces
    assert piece.tokens <= 100
    if send_tokens:
        assert list(piece.payload) == ENC.encode_ordinary(LONG)[:100]
    else:
        assert isinstance(piece.payload, str)
        assert LONG.startswith(piece.payload)
        assert piece.tokens >= 95  # only a cut at a character or regex boundary is lost


def test_plan_texts_cuts_pieces_to_fit_the_request_budget_too():
    plan = plan_texts([LONG], ENC, context_length=8191, max_tokens=50)
    assert sum(p.tokens for p in plan.pieces) >= len(ENC.encode_ordinary(LONG)) > 500
    assert all(p.tokens <= 50 for p in plan.pieces)
    assert all(sum(plan.pieces[i].tokens for i in b) <= 50 for b in plan.batches)


def test_plan_texts_embeds_empty_text_as_a_space():
    plan = plan_texts(["", "x"], ENC)
    assert [p.payload for p in plan.pieces] == [" ", "x"]
    assert plan_texts([""], ENC, send_tokens=True).pieces[0].payload == tuple(
        ENC.encode_ordinary(" ")
    )


def test_plan_texts_treats_special_token_markers_as_text():
    plan = plan_texts(["<|endoftext|>"], ENC)
    assert plan.pieces[0].tokens == len(ENC.encode_ordinary("<|endoftext|>")) > 1


# -- merge -------------------------------------------------------------------------------


def reference_merge(
    vectors: np.ndarray, owners: list[int], weights: list[int], n_inputs: int
) -> np.ndarray:
    out = []
    for i in range(n_inputs):
        rows = [k for k, o in enumerate(owners) if o == i]
        if len(rows) == 1:
            out.append(vectors[rows[0]])
            continue
        avg = np.average(vectors[rows], axis=0, weights=[weights[k] for k in rows])
        norm = np.linalg.norm(avg)
        out.append(avg / norm if norm else avg)
    return np.array(out)


@given(
    pieces_per_input=st.lists(st.integers(1, 4), min_size=1, max_size=12),
    dim=st.integers(1, 16),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_merge_equals_numpy_weighted_average_renormalised(pieces_per_input, dim, seed, data):
    owners = [i for i, n in enumerate(pieces_per_input) for _ in range(n)]
    owners = data.draw(st.permutations(owners))  # merge must not rely on piece order
    weights = data.draw(st.lists(st.integers(1, 8191), min_size=len(owners), max_size=len(owners)))
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(owners), dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    got = merge(vectors, owners, weights, len(pieces_per_input))
    want = reference_merge(vectors, owners, weights, len(pieces_per_input))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    multi = np.array(pieces_per_input) > 1
    norms = np.linalg.norm(got[multi], axis=1)
    np.testing.assert_allclose(norms[norms > 1e-6], 1.0)


def test_merge_passes_single_piece_vectors_through_unchanged():
    vectors = np.array([[3.0, 4.0], [0.6, 0.8]])
    np.testing.assert_array_equal(merge(vectors, [1, 0], [5, 7], 2), vectors[::-1])


def test_merge_weights_by_token_count():
    got = merge([[1.0, 0.0], [0.0, 1.0]], [0, 0], [3, 1], 1)
    np.testing.assert_allclose(
        got, [[0.75 / math.hypot(0.75, 0.25), 0.25 / math.hypot(0.75, 0.25)]]
    )


def test_merge_reports_an_input_without_vector():
    with pytest.raises(ValueError, match="input 1 has no vector"):
        merge([[1.0]], [0], [1], 2)


# -- estimate ----------------------------------------------------------------------------


def test_estimate_counts_tokens_requests_and_dollars():
    texts = ["hello world"] * 3000  # 2 tokens each
    plan = plan_texts(texts, ENC)
    est = batching.estimate(plan, model="text-embedding-3-small")
    assert est == EmbeddingEstimate(tokens=6000, requests=2, cost_usd=6000 * 0.02 / 1e6)
    large = batching.estimate(plan, model="text-embedding-3-large")
    assert large.cost_usd == pytest.approx(6000 * 0.13 / 1e6)
    ada = batching.estimate(plan, model="text-embedding-ada-002")
    assert ada.cost_usd == pytest.approx(6000 * 0.10 / 1e6)


def test_estimate_follows_the_long_input_policy():
    average = plan_texts([LONG], ENC, context_length=100)
    truncate = plan_texts([LONG], ENC, context_length=100, long_input="truncate")
    assert batching.estimate(average, model="text-embedding-3-small").tokens >= 590
    assert batching.estimate(truncate, model="text-embedding-3-small").tokens <= 100


def test_estimate_with_own_price_table():
    plan = plan_texts(["hello world"], ENC)
    assert batching.estimate(plan, model="mine", prices={"mine": 1.0}).cost_usd == 2e-6
    with pytest.raises(ConfigError, match="no price for model 'mine'"):
        batching.estimate(plan, model="mine")
