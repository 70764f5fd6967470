"""The package's shape: public names, where SQL is built, how large a module may grow."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import langchain_pgvstore

PACKAGE = Path(langchain_pgvstore.__file__).parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
#: the modules a user may import by name; everything else starts with an underscore
PUBLIC_MODULES = {
    "langchain_pgvstore",
    "langchain_pgvstore.cache",
    "langchain_pgvstore.cli",
    "langchain_pgvstore.columns",
    "langchain_pgvstore.config",
    "langchain_pgvstore.embeddings",
    "langchain_pgvstore.embeddings.batching",
    "langchain_pgvstore.embeddings.e5",
    "langchain_pgvstore.embeddings.local",
    "langchain_pgvstore.embeddings.openai",
    "langchain_pgvstore.errors",
    "langchain_pgvstore.existing",
    "langchain_pgvstore.folders",
    "langchain_pgvstore.fusion",
    "langchain_pgvstore.importers",
    "langchain_pgvstore.mmr",
    "langchain_pgvstore.record_manager",
    "langchain_pgvstore.retriever",
    "langchain_pgvstore.self_query",
    "langchain_pgvstore.server",
    "langchain_pgvstore.store",
}
MAX_MODULE_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_exported_names_are_exactly_the_public_ones() -> None:
    exported = set(langchain_pgvstore.__all__)
    assert langchain_pgvstore.__all__ == sorted(exported)
    for name in exported:
        assert getattr(langchain_pgvstore, name) is not None, name
    # every public class or function defined at the top level is exported
    defined = {
        name
        for name in vars(langchain_pgvstore)
        if not name.startswith("_")
        and not isinstance(getattr(langchain_pgvstore, name), type(langchain_pgvstore))
        and name not in {"annotations", "TYPE_CHECKING", "Any"}
    }
    assert defined <= exported | {"OpenAIBatchEmbeddings"}
    assert "OpenAIBatchEmbeddings" in exported  # loaded on first use: the openai extra


def test_internals_carry_a_leading_underscore() -> None:
    names = {_module_name(p) for p in MODULES}
    public = {n for n in names if not any(part.startswith("_") for part in n.split(".")[1:])}
    assert public == PUBLIC_MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines; split it by job"


def _builds_sql(tree: ast.AST) -> list[int]:
    """Lines that call `sql.SQL(...)` or `sql.Composed(...)` (or the bare names)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in {"SQL", "Composed"}:
                found.append(node.lineno)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_sql_is_built_only_in_the_sql_package(path: Path) -> None:
    if path.parent.name == "_sql":
        return
    lines = _builds_sql(ast.parse(path.read_text()))
    assert not lines, f"{path.relative_to(PACKAGE)} builds SQL on lines {lines}; move it to _sql/"


def test_the_guard_sees_sql_built_in_a_module() -> None:
    source = "from psycopg import sql\nq = sql.SQL('SELECT 1')\nr = sql.Composed([q])\n"
    assert _builds_sql(ast.parse(source)) == [2, 3]


def test_every_module_imports() -> None:
    for info in pkgutil.walk_packages(langchain_pgvstore.__path__, "langchain_pgvstore."):
        if info.name == "langchain_pgvstore.embeddings.openai":
            pytest.importorskip("openai")
        importlib.import_module(info.name)
