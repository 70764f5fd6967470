"""Importer from Chroma: collections written by the real chromadb, every record compared.

A persistent directory (`path=`), and a real Chroma server on 127.0.0.1
(`chroma run`, from the chromadb package) read through `chromadb.HttpClient`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_pgvstore import (
    ConfigError,
    DatabaseUnavailableError,
    Distance,
    InputError,
    PGVStore,
    SourceNotFoundError,
)
from langchain_pgvstore.importers import chroma_distance, import_from_chroma
from tests.fix_db import unique_name
from tests.importing.sources import brute_force, need_chromadb, stored, vectors

chromadb = need_chromadb()

DIM = 16
N = 300
K = 10
QUERIES = vectors(4, DIM, seed=98)


def records(n: int, seed: int) -> dict[str, Any]:
    """Records with the gaps Chroma allows: no document, no metadata."""
    vecs = vectors(n, DIM, seed)
    documents = [None if i % 7 == 3 else f"record {i} ✓ " + "x" * (i % 5) for i in range(n)]
    metadatas: list[dict[str, Any] | None] = [
        None
        if i % 5 == 4
        else {
            "i": i,
            "half": i / 2,
            "even": i % 2 == 0,
            "name": f"n{i}",
            "tags": ["a", "b"][: 1 + i % 2],
        }
        for i in range(n)
    ]
    return {
        "ids": [f"r{seed}-{i:05d}" for i in range(n)],
        "embeddings": vecs,
        "documents": documents,
        "metadatas": metadatas,
    }


def add(collection: Any, data: dict[str, Any]) -> None:
    """Add the records; `data["read"]` gets the vectors as Chroma returns them.

    A cosine collection hands back vectors that differ from the ones added in
    the last bit (Chroma keeps them normalised); the import copies what Chroma
    returns, and both are compared.
    """
    collection.add(
        ids=data["ids"],
        embeddings=data["embeddings"],
        documents=data["documents"],
        metadatas=data["metadatas"],
    )
    got = collection.get(ids=data["ids"], include=["embeddings"])
    by_id = dict(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32), strict=True))
    data["read"] = np.stack([by_id[i] for i in data["ids"]])
    assert np.allclose(data["read"], data["embeddings"], rtol=1e-6, atol=1e-6)


#: how each space is declared: the 1.x configuration, the older metadata key, the default
SPACES = {
    "cosine": {"configuration": {"hnsw": {"space": "cosine"}}},
    "ip": {"metadata": {"hnsw:space": "ip"}},
    "l2": {},
}


@pytest.fixture(scope="module")
def chroma_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("chroma")
    client = chromadb.PersistentClient(path=str(path))
    data = {}
    for seed, (space, how) in enumerate(SPACES.items(), start=10):
        data[space] = records(N, seed)
        add(client.create_collection(f"docs-{space}", embedding_function=None, **how), data[space])
    return path, data


def make_store(dsn: str, name: str, distance: str | Distance = "cosine") -> PGVStore:
    return PGVStore(
        DeterministicFakeEmbedding(size=DIM),
        connection=dsn,
        collection=name,
        distance=distance,
        index=None,
    )


def assert_same_as_chroma(dsn: str, store: PGVStore, data: dict[str, Any], distance: str) -> None:
    got = stored(dsn, "public", store.collection)
    assert sorted(got) == sorted(data["ids"])
    for i, id_ in enumerate(data["ids"]):
        content, meta, vec = got[id_]
        assert content == (data["documents"][i] or "")
        assert meta == (data["metadatas"][i] or {})
        assert np.array_equal(vec, data["read"][i])
    for query in QUERIES:
        expected = [data["ids"][i] for i in brute_force(data["read"], query, distance, K)]
        hits = store.similarity_search_with_score_by_vector(query.tolist(), k=K)
        assert [d.id for d, _ in hits] == expected


@pytest.mark.parametrize(
    "space, distance", [("cosine", "cosine"), ("l2", "l2"), ("ip", "inner_product")]
)
def test_persistent_directory_is_copied_record_for_record(
    dsn, chroma_dir, collection_name, space, distance
) -> None:
    path, data = chroma_dir
    assert chroma_distance(f"docs-{space}", path=path) == Distance(distance)
    store = make_store(dsn, collection_name, distance)
    seen: list[tuple[int, int]] = []
    report = import_from_chroma(
        store, f"docs-{space}", path=path, batch_size=128, progress=lambda d, t: seen.append((d, t))
    )
    assert (report.total, report.read, report.skipped) == (N, N, 0)
    assert f"chroma collection 'docs-{space}'" in report.source
    assert seen == [(128, N), (256, N), (N, N)]
    assert_same_as_chroma(dsn, store, data[space], distance)
    store.close()


def test_a_collection_object_and_wrong_arguments(dsn, chroma_dir, collection_name) -> None:
    path, data = chroma_dir
    client = chromadb.PersistentClient(path=str(path))
    collection = client.get_collection("docs-l2")
    store = make_store(dsn, collection_name, "cosine")
    with pytest.raises(
        ConfigError,
        match=r"searched by 'l2' distance but the store uses 'cosine': create the store with distance='l2'",
    ):
        import_from_chroma(store, collection)
    with pytest.raises(
        SourceNotFoundError,
        match=r"no chroma collection named 'nope'.*'docs-cosine', 'docs-ip', 'docs-l2'",
    ):
        import_from_chroma(store, "nope", path=path)
    with pytest.raises(ConfigError, match="exactly one of path= .*, url= .* or client="):
        import_from_chroma(store, "docs-l2")
    with pytest.raises(ConfigError, match="exactly one of"):
        import_from_chroma(store, "docs-l2", path=path, client=client)
    with pytest.raises(SourceNotFoundError, match="no Chroma directory"):
        import_from_chroma(store, "docs-l2", path=path / "missing")
    with pytest.raises(ConfigError, match="pass path= with a collection name, not with a Coll"):
        import_from_chroma(store, collection, path=path)
    store.close()
    l2 = make_store(dsn, collection_name, "l2")
    assert import_from_chroma(l2, collection, batch_size=1000).read == N
    assert_same_as_chroma(dsn, l2, data["l2"], "l2")
    l2.close()


def test_a_record_the_store_refuses_is_named(dsn, tmp_path, collection_name) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path))
    collection = client.create_collection("nul", embedding_function=None)
    data = records(30, seed=20)
    data["documents"][17] = "a NUL \x00 here"
    add(collection, data)
    store = make_store(dsn, collection_name, "l2")
    with pytest.raises(
        InputError,
        match=r"the store refused source document 'r20-00017': text of document 7 contains a NUL",
    ):
        import_from_chroma(store, "nul", client=client, batch_size=10)
    # the first batch is in; the refused record's batch is not
    assert sorted(stored(dsn, "public", collection_name)) == data["ids"][:10]
    store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """A real Chroma server (`chroma run`) on 127.0.0.1, stopped after the module: a client
    of it, and its URL."""
    path = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    chroma = Path(sys.executable).with_name("chroma")
    log = open(path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(path / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = chromadb.HttpClient(host="127.0.0.1", port=port)
                client.heartbeat()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((path / "server.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        yield client, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_chroma_server_through_http_client(dsn, chroma_server, collection_name) -> None:
    client, _ = chroma_server
    name = f"served-{uuid.uuid4().hex[:8]}"
    data = records(250, seed=30)
    add(
        client.create_collection(
            name, configuration={"hnsw": {"space": "ip"}}, embedding_function=None
        ),
        data,
    )
    assert chroma_distance(name, client=client) is Distance.INNER_PRODUCT
    store = make_store(dsn, collection_name, "inner_product")
    report = import_from_chroma(store, name, client=client, batch_size=100)
    assert report.read == 250 and "(server 127.0.0.1:" in report.source
    assert_same_as_chroma(dsn, store, data, "inner_product")
    store.close()


def test_chroma_server_by_url(dsn, chroma_server, collection_name) -> None:
    client, url = chroma_server
    name = f"served-{uuid.uuid4().hex[:8]}"
    data = records(180, seed=31)
    add(client.create_collection(name, embedding_function=None), data)  # l2, the default
    assert chroma_distance(name, url=url) is Distance.L2
    store = make_store(dsn, collection_name, "l2")
    seen: list[tuple[int, int]] = []
    report = import_from_chroma(
        store, name, url=url + "/", batch_size=100, progress=lambda d, t: seen.append((d, t))
    )
    port = url.rsplit(":", 1)[1]
    assert report.source == f"chroma collection {name!r} (server 127.0.0.1:{port})"
    assert (report.read, seen) == (180, [(100, 180), (180, 180)])
    assert_same_as_chroma(dsn, store, data, "l2")
    with pytest.raises(SourceNotFoundError, match=rf"no chroma collection named 'nope'.*{name!r}"):
        import_from_chroma(store, "nope", url=url)
    store.close()


_NOT_AN_ADDRESS = r"url must be a Chroma server's http://host:port"


@pytest.mark.parametrize(
    "url, message",
    [
        ("127.0.0.1:8000", _NOT_AN_ADDRESS),  # no scheme
        ("ftp://127.0.0.1:8000", _NOT_AN_ADDRESS),
        ("http://:8000", _NOT_AN_ADDRESS),
        ("http://127.0.0.1:99999", _NOT_AN_ADDRESS),
        ("http://127.0.0.1:8000/api/v2", _NOT_AN_ADDRESS),
        ("http://127.0.0.1:8000/?token=t0ken", _NOT_AN_ADDRESS),
        ("http://admin:t0ken@127.0.0.1:8000", "url must not hold credentials"),
    ],
)
def test_a_chroma_url_is_only_an_address(dsn, collection_name, url, message) -> None:
    store = make_store(dsn, collection_name, "l2")
    with pytest.raises(ConfigError, match=message) as e:
        import_from_chroma(store, "docs", url=url)
    assert "t0ken" not in str(e.value)  # the URL is not echoed
    store.close()


def test_a_chroma_server_that_is_down(dsn, collection_name) -> None:
    store = make_store(dsn, collection_name, "l2")
    port = _free_port()  # nothing listens there
    with pytest.raises(
        DatabaseUnavailableError, match=rf"cannot reach the Chroma server 127.0.0.1:{port}"
    ):
        chroma_distance("docs", url=f"http://127.0.0.1:{port}")
    with pytest.raises(DatabaseUnavailableError, match="cannot reach the Chroma server"):
        import_from_chroma(store, "docs", url=f"http://127.0.0.1:{port}")
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f"public.{collection_name}",)).fetchone()
    assert found == (None,)  # nothing was created
    store.close()


# -- content round trip -------------------------------------------------------------

_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_scalars = st.one_of(
    st.text(_chars, max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    # jsonb writes numbers in plain notation, and Chroma keeps 64-bit floats: stay where both agree
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False),
    st.booleans(),
)
_metadata = st.dictionaries(
    # Chroma reserves keys starting with $ and #
    st.text(_chars, min_size=1, max_size=12).filter(lambda k: k[0] not in "$#"),
    st.one_of(_scalars, st.lists(st.text(_chars, max_size=5), min_size=1, max_size=3)),
    max_size=5,
)


@pytest.fixture(scope="module")
def scratch_client(tmp_path_factory):
    return chromadb.PersistentClient(path=str(tmp_path_factory.mktemp("chroma-prop")))


@settings(max_examples=25)
@given(
    st.lists(
        st.tuples(st.text(_chars, max_size=40), st.one_of(st.none(), _metadata)),
        min_size=1,
        max_size=6,
    )
)
def test_documents_and_metadata_round_trip(dsn, scratch_client, items) -> None:
    collection_name = unique_name("chroma")  # one per example; dropped in `finally`
    collection = scratch_client.create_collection(
        f"p-{uuid.uuid4().hex[:10]}", embedding_function=None
    )
    ids = [f"id-{i}" for i in range(len(items))]
    vecs = vectors(len(items), 4, seed=len(items))
    collection.add(
        ids=ids,
        embeddings=vecs,
        documents=[t for t, _ in items],
        metadatas=[m or None for _, m in items],
    )
    # the source is what Chroma returns: it keeps floats its own way (900719925474099.5
    # comes back as 900719925474099.6), and the import copies what it returns
    source = collection.get(include=["documents", "metadatas", "embeddings"])
    store = PGVStore(
        DeterministicFakeEmbedding(size=4),
        connection=dsn,
        collection=collection_name,
        distance="l2",
        index=None,
    )
    try:
        import_from_chroma(store, collection)
        got = stored(dsn, "public", collection_name)
        assert sorted(got) == sorted(ids)
        for id_, document, meta, vec in zip(
            source["ids"],
            source["documents"],
            source["metadatas"],
            source["embeddings"],
            strict=True,
        ):
            content, stored_meta, stored_vec = got[id_]
            assert content == document == items[ids.index(id_)][0]
            assert stored_meta == (meta or {})
            assert np.array_equal(stored_vec, np.asarray(vec, dtype=np.float32))
    finally:
        store.delete_collection()
        store.close()
        # The Chroma collection stays: chromadb 1.5.9 leaves a deleted collection's list
        # values behind, and hands them to the next collection's records of the same
        # position (found by this test).
