"""Write an importer test source with the real langchain-postgres / langchain-community.

Runs in the `sources` virtualenv (requirements/sources.lock), never in the
library's: langchain-postgres pins pgvector<0.4. Reads a JSON job on stdin,
writes the rows through the package's own vector store, and prints JSON with
what that store reads back (`rows`, by id) and its own search results for the
job's queries (`searches`: ids or texts and distances, best first).

Job keys: kind (`pgvector`, `pgvectorstore`, `community`), conninfo, distance
(`cosine`, `l2`, `inner_product`), ids, texts, metadatas, vectors, queries, k;
for pgvector and community: collection; for pgvectorstore: table, schema,
metadata_columns (a list of {name, data_type, nullable}), store_metadata,
id_type, hybrid.
"""

from __future__ import annotations

import datetime
import decimal
import json
import sys
import uuid
import warnings
from typing import Any

import psycopg
from langchain_core.embeddings import DeterministicFakeEmbedding
from sqlalchemy.engine import URL


def url(conninfo: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    query = {k: str(params[k]) for k in ("host", "port") if params.get(k)}
    return URL.create(
        "postgresql+psycopg",
        username=str(params.get("user") or "") or None,
        password=str(params.get("password") or "") or None,
        database=str(params.get("dbname") or "") or None,
        query=query,
    ).render_as_string(hide_password=False)


def plain(value: Any) -> Any:
    """What PGVectorStore hands back for column values, as JSON (dates in ISO 8601)."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def pgvector(job: dict[str, Any]) -> dict[str, Any]:
    from langchain_postgres import PGVector
    from langchain_postgres.vectorstores import DistanceStrategy

    strategy = {
        "cosine": DistanceStrategy.COSINE,
        "l2": DistanceStrategy.EUCLIDEAN,
        "inner_product": DistanceStrategy.MAX_INNER_PRODUCT,
    }[job["distance"]]
    store = PGVector(
        DeterministicFakeEmbedding(size=len(job["vectors"][0])),
        connection=url(job["conninfo"]),
        collection_name=job["collection"],
        distance_strategy=strategy,
        use_jsonb=True,
    )
    store.add_embeddings(job["texts"], job["vectors"], job["metadatas"], ids=job["ids"])
    docs = store.get_by_ids(job["ids"])
    rows = {d.id: {"text": d.page_content, "metadata": d.metadata} for d in docs}
    searches = [
        [[d.id, score] for d, score in store.similarity_search_with_score_by_vector(q, k=job["k"])]
        for q in job["queries"]
    ]
    return {"rows": rows, "searches": searches}


def community(job: dict[str, Any]) -> dict[str, Any]:
    warnings.simplefilter("ignore")  # the class is deprecated; that is why it is the old layout
    from langchain_community.vectorstores.pgvector import DistanceStrategy, PGVector

    strategy = {
        "cosine": DistanceStrategy.COSINE,
        "l2": DistanceStrategy.EUCLIDEAN,
        "inner_product": DistanceStrategy.MAX_INNER_PRODUCT,
    }[job["distance"]]
    store = PGVector(
        connection_string=url(job["conninfo"]),
        embedding_function=DeterministicFakeEmbedding(size=len(job["vectors"][0])),
        collection_name=job["collection"],
        distance_strategy=strategy,
        use_jsonb=job.get("use_jsonb", True),
    )
    store.add_embeddings(job["texts"], job["vectors"], job["metadatas"], ids=job["ids"])
    # this store returns documents without ids: searches name them by text
    searches = [
        [
            [d.page_content, score]
            for d, score in store.similarity_search_with_score_by_vector(q, k=job["k"])
        ]
        for q in job["queries"]
    ]
    return {"rows": None, "searches": searches}


def pgvectorstore(job: dict[str, Any]) -> dict[str, Any]:
    from langchain_postgres import Column, PGEngine, PGVectorStore
    from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig
    from langchain_postgres.v2.indexes import DistanceStrategy

    strategy = {
        "cosine": DistanceStrategy.COSINE_DISTANCE,
        "l2": DistanceStrategy.EUCLIDEAN,
        "inner_product": DistanceStrategy.INNER_PRODUCT,
    }[job["distance"]]
    engine = PGEngine.from_connection_string(url(job["conninfo"]))
    columns = [Column(c["name"], c["data_type"], c["nullable"]) for c in job["metadata_columns"]]
    id_type = job.get("id_type", "UUID")
    hybrid = HybridSearchConfig() if job.get("hybrid") else None
    engine.init_vectorstore_table(
        job["table"],
        len(job["vectors"][0]),
        schema_name=job["schema"],
        metadata_columns=columns,
        id_column=Column("langchain_id", id_type, nullable=False),
        store_metadata=job.get("store_metadata", True),
        hybrid_search_config=hybrid,
    )
    store = PGVectorStore.create_sync(
        engine,
        embedding_service=DeterministicFakeEmbedding(size=len(job["vectors"][0])),
        table_name=job["table"],
        schema_name=job["schema"],
        metadata_columns=[c["name"] for c in job["metadata_columns"]],
        distance_strategy=strategy,
        # the same object: init_vectorstore_table fills in its tsv_column
        hybrid_search_config=hybrid,
    )
    store.add_embeddings(job["texts"], job["vectors"], job["metadatas"], ids=job["ids"])
    docs = store.get_by_ids(job["ids"])
    rows = {d.id: {"text": d.page_content, "metadata": d.metadata} for d in docs}
    searches = [
        [[d.id, score] for d, score in store.similarity_search_with_score_by_vector(q, k=job["k"])]
        for q in job["queries"]
    ]
    engine.close()
    return {"rows": rows, "searches": searches}


def main() -> None:
    job = json.load(sys.stdin)
    result = {"pgvector": pgvector, "community": community, "pgvectorstore": pgvectorstore}[
        job["kind"]
    ](job)
    json.dump(result, sys.stdout, default=plain)


if __name__ == "__main__":
    main()
