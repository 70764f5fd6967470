"""Reading a Chroma collection through the chromadb client (the `[chroma]` extra).

Records are read in id order, a batch at a time by their ids, so an import
resumes from the last id it recorded whatever order Chroma stores them in.
The collection's distance space is read from its configuration (Chroma 1.x) or
its `hnsw:space` metadata (collections made by older releases).
"""

from __future__ import annotations

import bisect
import os
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from ._import_rows import Rows, check_vectors, metadata_object
from .config import Distance
from .errors import (
    ConfigError,
    DatabaseUnavailableError,
    InputError,
    SchemaError,
    SourceNotFoundError,
)

__all__ = ["ChromaReader", "chroma_collection", "chroma_space"]


_CHROMA_SPACES = {"cosine": Distance.COSINE, "l2": Distance.L2, "ip": Distance.INNER_PRODUCT}


def chroma_space(collection: Any) -> tuple[str, Distance]:
    """The collection's distance space and the store's equivalent.

    Chroma 1.x keeps it in the collection's configuration (`hnsw` or `spann`
    `space`); collections made by older releases have `hnsw:space` in their
    metadata. Chroma's default is `l2`.
    """
    space: Any = None
    # the raw JSON: the parsed `configuration` warns about embedding-function configs
    # older releases wrote, which are none of the caller's business here
    configuration = getattr(collection, "configuration_json", None)
    if not isinstance(configuration, Mapping):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            configuration = getattr(collection, "configuration", None)
    if isinstance(configuration, Mapping):
        for index in ("hnsw", "spann"):
            part = configuration.get(index)
            if isinstance(part, Mapping) and part.get("space"):
                space = part["space"]
                break
    if space is None:
        metadata = getattr(collection, "metadata", None) or {}
        space = metadata.get("hnsw:space", "l2")
    name = str(getattr(space, "value", space)).lower()
    if name not in _CHROMA_SPACES:
        raise SchemaError(
            f"chroma collection {collection.name!r} uses distance space {name!r};"
            " expected cosine, l2 or ip"
        )
    return name, _CHROMA_SPACES[name]


class ChromaReader:
    """A Chroma collection's records, in id order, through the chromadb client.

    The ids are listed once and sorted; each batch is fetched by its ids, so
    resuming needs only the last id, and the order does not depend on how
    Chroma stores the records.
    """

    def __init__(self, collection: Any, where: str, dimensions: int | None) -> None:
        self._collection = collection
        self.description = f"chroma collection {collection.name!r} ({where})"
        self.identity = f"chroma:{collection.id}"
        self._dimensions = dimensions
        self._ids: list[str] | None = None

    def count(self) -> int:
        return int(self._collection.count())

    def _all_ids(self) -> list[str]:
        if self._ids is None:
            ids: list[str] = []
            page = 10_000
            while True:
                got = self._collection.get(include=[], limit=page, offset=len(ids))["ids"]
                ids.extend(got)
                if len(got) < page:
                    break
            self._ids = sorted(set(ids))
        return self._ids

    def batches(self, after: str | None, size: int) -> Iterator[Rows]:
        ids = self._all_ids()
        start = 0
        if after is not None:
            start = bisect.bisect_right(ids, after)
        for first in range(start, len(ids), size):
            wanted = ids[first : first + size]
            got = self._collection.get(ids=wanted, include=["documents", "metadatas", "embeddings"])
            position = {id_: i for i, id_ in enumerate(got["ids"])}
            missing = [id_ for id_ in wanted if id_ not in position]
            if missing:
                raise InputError(
                    f"{self.description}: record {missing[0]!r} disappeared during the import"
                )
            order = [position[id_] for id_ in wanted]
            documents = got.get("documents") or [None] * len(got["ids"])
            metadatas = got.get("metadatas") or [None] * len(got["ids"])
            embeddings = got.get("embeddings")
            if embeddings is None:
                embeddings = [None] * len(got["ids"])
            texts = [documents[i] if documents[i] is not None else "" for i in order]
            metas = [
                metadata_object(id_, metadatas[i]) for id_, i in zip(wanted, order, strict=True)
            ]
            matrix = check_vectors(wanted, [embeddings[i] for i in order], self._dimensions)
            self._dimensions = matrix.shape[1]
            yield Rows(list(wanted), list(wanted), texts, metas, matrix)

    def close(self) -> None:
        """Nothing to close: the chromadb client is the caller's (or lives with the process)."""


def _chromadb() -> Any:
    try:
        import chromadb
    except ImportError as e:
        raise ConfigError(
            "importing from Chroma needs chromadb: pip install 'langchain-pgvstore[chroma]'"
        ) from e
    return chromadb


def _describe_client(client: Any) -> str:
    """`server host:port` or `path '…'` of a chromadb client, for messages."""
    try:
        settings = client.get_settings()
    except Exception:
        return type(client).__name__
    host = getattr(settings, "chroma_server_host", None)
    if host:
        return f"server {host}:{getattr(settings, 'chroma_server_http_port', None) or 8000}"
    directory = getattr(settings, "persist_directory", None)
    if getattr(settings, "is_persistent", False) and directory:
        return f"path {directory!r}"
    return type(client).__name__


#: the port `chroma run` listens on unless told otherwise
CHROMA_PORT = 8000


def _server_address(url: str) -> tuple[str, int, bool]:
    """Host, port and TLS of a Chroma server URL, `http://host[:port]` or `https://…`."""
    # the URL is never echoed: it may hold a token
    wrong = ConfigError("url must be a Chroma server's http://host:port or https://host:port")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise wrong from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise wrong
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "url must not hold credentials: pass client=chromadb.HttpClient(..., headers=...)"
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise wrong
    tls = parts.scheme == "https"
    return parts.hostname, port or (443 if tls else CHROMA_PORT), tls


def _http_client(url: str) -> tuple[Any, str]:
    host, port, tls = _server_address(url)
    where = f"server {host}:{port}"
    chromadb = _chromadb()
    try:
        # the client asks the server for its tenant and database as it is made
        return chromadb.HttpClient(host=host, port=port, ssl=tls), where
    except Exception as e:
        raise DatabaseUnavailableError(f"cannot reach the Chroma {where}: {e}") from None


def chroma_collection(
    collection: Any,
    path: str | os.PathLike[str] | None,
    client: Any,
    url: str | None = None,
) -> tuple[Any, str]:
    """The chromadb `Collection` to read, and where it is (for messages)."""
    sources = (("path", path), ("url", url), ("client", client))
    given = [name for name, value in sources if value is not None]
    if not isinstance(collection, str):
        if given:
            raise ConfigError(f"pass {given[0]}= with a collection name, not with a Collection")
        return collection, "a chromadb Collection"
    if len(given) != 1:
        raise ConfigError(
            "pass exactly one of path= (a Chroma directory), url= (a Chroma server) or client="
        )
    if path is not None:
        if not os.path.isdir(path):
            raise SourceNotFoundError(f"no Chroma directory at {os.fspath(path)!r}")
        client = _chromadb().PersistentClient(path=os.fspath(path))
        where = f"path {os.fspath(path)!r}"
    elif url is not None:
        client, where = _http_client(url)
    else:
        where = _describe_client(client)
    try:
        found = client.get_collection(collection)
    except Exception as e:
        # chromadb raises NotFoundError (1.x) or ValueError (older) for a missing collection
        names = sorted(str(getattr(c, "name", c)) for c in client.list_collections())
        raise SourceNotFoundError(
            f"no chroma collection named {collection!r} ({where}): {e};"
            f" collections there: {', '.join(map(repr, names)) or 'none'}"
        ) from None
    return found, where
