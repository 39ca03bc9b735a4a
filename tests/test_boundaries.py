"""The package boundaries hold: bot/ and backend/ never import each other, common/ neither.

``bot`` is a channel that talks to the backend over HTTP; ``backend`` is the
system of record; what both need lives in ``common``; only ``datadesk``
assembles both (the CLI, ``datadesk run``, ``db upgrade``). Every module is
read with ``ast`` (migrations included), so an import inside a function or
through ``importlib.import_module("…")`` counts as much as one at the top.
Tests and benchmarks are exempt.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.settings import REPO_ROOT

# What each package may not import (its own name and third-party packages are fine).
FORBIDDEN: dict[str, frozenset[str]] = {
    "bot": frozenset({"backend", "datadesk"}),
    "backend": frozenset({"bot", "datadesk"}),
    "common": frozenset({"bot", "backend", "datadesk"}),
    "datadesk": frozenset(),
}


@dataclass(frozen=True)
class Import:
    """One module a source file imports: where (``file:line``) and what (dotted name)."""

    path: str
    line: int
    module: str

    @property
    def top(self) -> str:
        return self.module.split(".", 1)[0]


def _package_of(path: Path, root: Path) -> list[str]:
    """The dotted package a module file belongs to, as parts (``bot/i18n/check.py`` → bot, i18n)."""
    return list(path.relative_to(root).parent.parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every module ``path`` imports, wherever in the file the import is written."""
    where = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=where)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(where, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A relative import stays inside its own top-level package unless
                # it climbs out of it, which Python refuses anyway; resolve it all the same.
                base = _package_of(path, root)[: len(_package_of(path, root)) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield Import(where, node.lineno, module)
            for alias in node.names:
                # ``from backend import settings`` imports the module backend.settings.
                yield Import(where, node.lineno, f"{module}.{alias.name}")
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (
                    isinstance(node.func, ast.Name)
                    and node.func.id in {"import_module", "__import__"}
                )
            )
        ):
            yield Import(where, node.lineno, node.args[0].value)


def crossings(root: Path, package: str) -> list[Import]:
    """Imports in ``root/package`` of a package it may not import."""
    found: list[Import] = []
    for path in sorted((root / package).rglob("*.py")):
        for imp in imports_of(path, root):
            if imp.top in FORBIDDEN[package]:
                found.append(imp)
    return found


def _described(found: list[Import]) -> list[str]:
    """``file:line: imports module`` for each crossing, once each, in order."""
    return sorted({f"{imp.path}:{imp.line}: imports {imp.module}" for imp in found})


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_it_must_not(package: str) -> None:
    problems = _described(crossings(REPO_ROOT, package))
    assert not problems, "\n".join(problems)


def test_the_check_catches_every_way_of_writing_an_import(tmp_path: Path) -> None:
    (tmp_path / "bot" / "sub").mkdir(parents=True)
    (tmp_path / "bot" / "__init__.py").write_text("")
    (tmp_path / "bot" / "sub" / "__init__.py").write_text("")
    (tmp_path / "bot" / "sub" / "leaky.py").write_text(
        "import backend.crypto\n"
        "from backend import settings\n"
        "from backend.masking import DOT\n"
        "from . import sibling\n"
        "from ..engine import model\n"
        "def later():\n"
        "    import importlib\n"
        "    importlib.import_module('backend.ledger')\n"
        "    from datadesk.cli import main\n"
        "import common.clock, telegram\n"
    )

    found = _described(crossings(tmp_path, "bot"))

    assert found == [
        "bot/sub/leaky.py:1: imports backend.crypto",
        "bot/sub/leaky.py:2: imports backend",
        "bot/sub/leaky.py:2: imports backend.settings",
        "bot/sub/leaky.py:3: imports backend.masking",
        "bot/sub/leaky.py:3: imports backend.masking.DOT",
        "bot/sub/leaky.py:8: imports backend.ledger",
        "bot/sub/leaky.py:9: imports datadesk.cli",
        "bot/sub/leaky.py:9: imports datadesk.cli.main",
    ]


def test_relative_imports_resolve_inside_their_own_package(tmp_path: Path) -> None:
    (tmp_path / "common" / "vocabulary").mkdir(parents=True)
    (tmp_path / "common" / "vocabulary" / "x.py").write_text(
        "from . import locales\nfrom ..db import make_engine\n"
    )

    modules = [i.module for i in imports_of(tmp_path / "common" / "vocabulary" / "x.py", tmp_path)]

    assert modules == [
        "common.vocabulary",
        "common.vocabulary.locales",
        "common.db",
        "common.db.make_engine",
    ]
