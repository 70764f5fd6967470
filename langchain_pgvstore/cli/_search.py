"""`pgvstore search "query" --collection C`: a table of the best matches."""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack
from typing import Any

from langchain_core.documents import Document

from ._exits import CLIError, Exit
from ._models import add_model_options, choose_embeddings
from ._output import print_table
from ._target import Target, add_target_options, find_collection, open_store

__all__ = ["register"]

MODES = ("similarity", "mmr", "keyword", "hybrid")
#: what the score column holds in each mode
SCORE = {"similarity": "distance", "mmr": "distance", "keyword": "bm25", "hybrid": "score"}


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """The --filter JSON object; bad JSON is a one-line error (exit 2)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise CLIError(f"--filter is not valid JSON: {e}", Exit.USAGE) from None
    if not isinstance(value, dict):
        raise CLIError(f"--filter must be a JSON object, got {type(value).__name__}", Exit.USAGE)
    return value


def _json(value: object) -> str:
    """JSON of a result; typed columns' Decimal, date, datetime and UUID values as text."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _run(store: Any, args: argparse.Namespace, where: dict[str, Any] | None) -> list[Any]:
    if args.mode == "similarity":
        return list(store.similarity_search_with_score(args.query, k=args.k, filter=where))
    if args.mode == "mmr":
        return list(
            store.max_marginal_relevance_search_with_score(
                args.query, k=args.k, fetch_k=max(args.fetch_k, args.k), filter=where
            )
        )
    if args.mode == "keyword":
        return list(store.keyword_search_with_score(args.query, k=args.k, filter=where))
    return list(store.hybrid_search_with_score(args.query, k=args.k, filter=where))


def search(args: argparse.Namespace) -> int:
    where = parse_filter(args.filter)
    if args.k < 1:
        raise CLIError(f"--k must be at least 1, got {args.k}", Exit.USAGE)
    target = Target(args)
    with target.connect() as conn:
        collection = find_collection(conn, args.schema, args.collection)
    with ExitStack() as stack:
        # BM25 alone needs no model
        model = None if args.mode == "keyword" else choose_embeddings(args, stack)
        store = stack.enter_context(open_store(target, collection, model))
        hits: list[tuple[Document, float]] = _run(store, args, where)
    if args.json:
        for doc, score in hits:
            line = {
                "id": doc.id,
                "score": score,
                "text": doc.page_content,
                "metadata": doc.metadata,
            }
            print(_json(line))
        return Exit.OK
    rows = [
        [rank, round(score, 4), _clip(doc.id or "", 20), _clip(doc.page_content, args.width),
         _clip(_json(doc.metadata), 40)]
        for rank, (doc, score) in enumerate(hits, 1)
    ]  # fmt: skip
    print_table(["#", SCORE[args.mode], "id", "text", "metadata"], rows)
    return Exit.OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "search",
        help="search a collection and print the best matches",
        description="Search a collection: by meaning (similarity, mmr), by terms (keyword,"
        " BM25) or both (hybrid), with an optional metadata filter.",
    )
    p.add_argument("query", help="what to search for")
    p.add_argument("--collection", "-c", required=True, help="collection to search")
    p.add_argument("--k", "-k", type=int, default=4, help="number of results (default: 4)")
    p.add_argument("--filter", default=None, metavar="JSON",
                   help='metadata filter, e.g. \'{"source": "a.md"}\'')  # fmt: skip
    p.add_argument("--mode", choices=MODES, default="similarity", help="default: similarity")
    p.add_argument("--fetch-k", type=int, default=20, help="mmr: candidates to diversify from")
    p.add_argument("--json", action="store_true", help="one JSON object per result")
    p.add_argument("--width", type=int, default=60, help="characters of text shown per result")
    add_target_options(p)
    add_model_options(p)
    p.set_defaults(handler=search)
