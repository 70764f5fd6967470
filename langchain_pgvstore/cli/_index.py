"""`pgvstore index status|create|reindex COLLECTION`."""

from __future__ import annotations

import argparse

from ..config import HNSWIndex, IVFFlatIndex
from ._exits import CLIError, Exit
from ._output import IndexBar, human_size, print_table
from ._target import Collection, Target, add_target_options, find_collection, open_store

__all__ = ["register"]


def _collection(args: argparse.Namespace) -> tuple[Target, Collection]:
    target = Target(args)
    with target.connect() as conn:
        return target, find_collection(conn, args.schema, args.collection)


def status(args: argparse.Namespace) -> int:
    target, collection = _collection(args)
    with open_store(target, collection) as store:
        infos = store.index_status()
    rows = [
        [i.name, i.kind, "yes" if i.valid else "NO", human_size(i.size_bytes), i.definition]
        for i in infos
    ]
    print_table(["index", "method", "valid", "size", "definition"], rows)
    return Exit.OK


def _index(args: argparse.Namespace, collection: Collection) -> HNSWIndex | IVFFlatIndex:
    kind = args.kind or collection.index_kind or "hnsw"
    if kind == "ivfflat":
        return IVFFlatIndex(lists=args.lists)
    if args.binary:
        return HNSWIndex(m=args.m, ef_construction=args.ef_construction, quantization="binary")
    return HNSWIndex(m=args.m, ef_construction=args.ef_construction)


def _build_options(args: argparse.Namespace) -> dict[str, object]:
    return {
        "concurrently": args.concurrently,
        "maintenance_work_mem": args.maintenance_work_mem,
        "max_parallel_maintenance_workers": args.workers,
    }


def create(args: argparse.Namespace) -> int:
    target, collection = _collection(args)
    index = _index(args, collection)
    bar = IndexBar("create index", enabled=not args.no_progress)
    before = collection.index_definition if collection.index_valid else None
    with open_store(target, collection, index=index) as store:
        try:
            store.create_index(
                index, replace=args.replace, progress=bar, progress_interval=0.2,
                **_build_options(args),  # type: ignore[arg-type]
            )  # fmt: skip
        finally:
            bar.close()
        infos = [i for i in store.index_status() if i.kind in ("hnsw", "ivfflat")]
    if before is not None and [i.definition for i in infos] == [before]:
        print(
            f"{infos[0].name} already exists ({before.split(' USING ', 1)[-1]});"
            f" rebuild it with: pgvstore index reindex {collection.name}"
        )
        return Exit.OK
    built = ", ".join(f"{i.name} ({i.kind}, {human_size(i.size_bytes)})" for i in infos)
    print(f"built {built}")
    return Exit.OK


def reindex(args: argparse.Namespace) -> int:
    target, collection = _collection(args)
    if collection.index_kind is None:
        raise CLIError(
            f"collection {collection.name!r} has no ANN index to rebuild;"
            f" build one with: pgvstore index create {collection.name}",
            Exit.NOT_FOUND,
        )
    bar = IndexBar("reindex", enabled=not args.no_progress)
    with open_store(target, collection) as store:
        try:
            store.reindex(progress=bar, progress_interval=0.2, **_build_options(args))  # type: ignore[arg-type]
        finally:
            bar.close()
    print(f"rebuilt the {collection.index_kind} index of {collection.name!r}")
    return Exit.OK


def _build_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrently", action="store_true", help="do not block writes meanwhile")
    p.add_argument("--maintenance-work-mem", default=None, metavar="SIZE",
                   help="memory for the build, e.g. 1GB")  # fmt: skip
    p.add_argument("--workers", type=int, default=None,
                   help="parallel maintenance workers for the build")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    index = commands.add_parser(
        "index",
        help="show, build or rebuild a collection's ANN index",
        description="Show, build or rebuild a collection's ANN index; builds show progress"
        " from pg_stat_progress_create_index.",
    )
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("status", help="the collection's indexes, their validity and size",
                           description="List the collection's indexes.")  # fmt: skip
    p.add_argument("collection", help="collection name")
    add_target_options(p)
    p.set_defaults(handler=status)

    p = actions.add_parser("create", help="build the ANN index (HNSW by default)",
                           description="Build the collection's ANN index; the operator class"
                           " follows its distance and vector type.")  # fmt: skip
    p.add_argument("collection", help="collection name")
    p.add_argument("--kind", choices=("hnsw", "ivfflat"), default=None,
                   help="index kind (default: the collection's, else hnsw)")  # fmt: skip
    p.add_argument("--m", type=int, default=16, help="HNSW: links per node")
    p.add_argument("--ef-construction", type=int, default=64, help="HNSW: build candidate list")
    p.add_argument("--binary", action="store_true", help="HNSW over binary-quantized vectors")
    p.add_argument("--lists", type=int, default=None, help="IVFFlat: lists (default: from rows)")
    p.add_argument("--replace", action="store_true", help="drop an index of the other kind")
    _build_arguments(p)
    add_target_options(p)
    p.set_defaults(handler=create)

    p = actions.add_parser("reindex", help="rebuild the ANN index in place",
                           description="Rebuild the collection's ANN index in place.")  # fmt: skip
    p.add_argument("collection", help="collection name")
    _build_arguments(p)
    add_target_options(p)
    p.set_defaults(handler=reindex)
