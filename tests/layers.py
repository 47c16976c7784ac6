"""The import rules between edgeaudit's folders, read from the code (the AST of every module).

Layers, bottom to top (docs/layout.md): ``profiles`` (device knowledge) < ``probes``
(protocol code, observations, the ledger), the error tree being in ``profiles`` < ``reports`` (rendering the
report document) < ``scanner`` (CLI, runner, engine, checks, store, merge, diff). A module
imports its own folder and the folders below it, never one above. ``lab`` and ``tests``
stand on top, outside the product: nothing in the product imports them. No import cycle
between modules either, counting imports inside functions too (a lazy import is still a
dependency, it only hides the circle from the interpreter).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PRODUCT = ("profiles", "probes", "reports", "scanner")  # bottom to top
OUTSIDE = ("lab", "tests")  # on top of the product, never imported by it
FIRST_PARTY = PRODUCT + OUTSIDE


@dataclass(frozen=True)
class Import:
    """One import statement: which module, at which line, names which module."""

    module: str
    line: int
    target: str
    file: str = ""  # the module's path, relative to the root

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.target}"


def module_name(root: Path, file: Path) -> str:
    """``probes/sip/sipmsg.py`` -> ``probes.sip.sipmsg``; a package's ``__init__.py`` is the package."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, folders: tuple[str, ...] = FIRST_PARTY) -> dict[str, Path]:
    """Every Python module under the given top-level folders, recursively."""
    found: dict[str, Path] = {}
    for folder in folders:
        for file in sorted((root / folder).rglob("*.py")):
            if "__pycache__" not in file.parts:
                found[module_name(root, file)] = file
    return found


def imports(root: Path, known: dict[str, Path]) -> Iterator[Import]:
    """First-party imports of every known module, each resolved to the module it names."""
    for name, file in known.items():
        rel = file.relative_to(root).as_posix()
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in FIRST_PARTY:
                        yield Import(name, node.lineno, _nearest(alias.name, known), rel)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x / from ..y import z
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                if base.split(".")[0] not in FIRST_PARTY:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    yield Import(name, node.lineno, sub if sub in known else _nearest(base, known), rel)


def _nearest(dotted: str, known: dict[str, Path]) -> str:
    """The module a dotted name lives in (``probes.base.Probe`` -> ``probes.base``)."""
    parts = dotted.split(".")
    while len(parts) > 1 and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def wrong_way(root: Path) -> list[Import]:
    """Imports that point up the layers, or from the product into lab/ or tests/."""
    known = modules(root)
    bad = []
    for imp in imports(root, known):
        src, dst = imp.module.split(".")[0], imp.target.split(".")[0]
        if src in OUTSIDE or src == dst:
            continue
        if dst in OUTSIDE or PRODUCT.index(dst) > PRODUCT.index(src):
            bad.append(imp)
    return bad


def cycles(root: Path) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), each sorted; [] when acyclic."""
    known = modules(root)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for imp in imports(root, known):
        if imp.target in graph and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def folder_cycles(root: Path) -> list[tuple[str, str]]:
    """Pairs of top-level folders that import each other."""
    edges = {(i.module.split(".")[0], i.target.split(".")[0]) for i in imports(root, modules(root))}
    return sorted((a, b) for a, b in edges if a < b and (b, a) in edges)
