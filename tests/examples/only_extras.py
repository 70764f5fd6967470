"""Run a script as if only `langchain-pgvstore[EXTRAS]` were installed.

    python tests/examples/only_extras.py EXTRAS SCRIPT [ARGS ...]

EXTRAS is a comma-separated list (possibly empty). Every module whose file
belongs to an installed distribution outside the dependency closure of
`langchain-pgvstore[EXTRAS]` fails to import with `ModuleNotFoundError`, as
it would in a virtualenv that has only what those extras bring. Modules from
the standard library, the checkout itself and the script's folder import as
usual. The closure follows the installed distributions' metadata (requirements
with their markers and extras), so it is what pip would install here.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import re
import runpy
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(root: str, extras: Sequence[str]) -> set[str]:
    """Canonical names of `root[extras]` and everything it requires, transitively."""
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    todo = [(canonicalize_name(root), e) for e in ["", *extras]]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # required but not installed: nothing to allow
        names.add(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                continue
            child = canonicalize_name(req.name)
            todo += [(child, e) for e in ["", *sorted(req.extras)]]
    return names


def owners() -> dict[str, str]:
    """Resolved file path -> canonical name of the installed distribution that has it."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or []:
            if file.suffix in (".py", ".so", ".pyd") or file.name == "__init__.py":
                out[str(Path(str(file.locate())).resolve())] = name
    return out


class OnlyExtras(importlib.abc.MetaPathFinder):
    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.owners = owners()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None:
            return None
        locations = [spec.origin] if spec.origin else []
        locations += [str(Path(p) / "__init__.py") for p in spec.submodule_search_locations or []]
        for location in locations:
            owner = self.owners.get(str(Path(location).resolve()))
            if owner is not None and owner not in self.allowed:
                raise ModuleNotFoundError(
                    f"No module named {fullname!r} (from {owner}, which"
                    f" langchain-pgvstore[{','.join(sorted(EXTRAS))}] does not install)",
                    name=fullname,
                )
        return None  # let the regular finders import it


EXTRAS: list[str] = []


def main(argv: list[str]) -> None:
    extras, script, *args = argv
    EXTRAS[:] = [e for e in extras.split(",") if e]
    allowed = closure("langchain-pgvstore", EXTRAS)
    sys.meta_path.insert(0, OnlyExtras(allowed))
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


def named_extras(script: Path) -> list[str]:
    """The extras of the first `pip install '.[extras]'` line in a script's docstring."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    match = re.search(r"pip install '\.\[([a-z0-9,-]*)\]'", doc)
    if match is None:
        raise AssertionError(f"{script.name}: no pip install '.[extras]' line in its docstring")
    return [e for e in match[1].split(",") if e]


if __name__ == "__main__":
    main(sys.argv[1:])
