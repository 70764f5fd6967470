"""Documentation coverage: docstrings, the API reference, the docs site's nav, README links.

`mkdocs build --strict` checks that the site builds; these checks run with the
test suite, without mkdocs installed.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

import langchain_pgvstore
import langchain_pgvstore.importers
from langchain_pgvstore import PGVStore

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
