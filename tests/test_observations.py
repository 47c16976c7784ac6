"""Every field of every observation has a reader: a probe records nothing that no check, record or report reads."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OBSERVATIONS = ROOT / "probes" / "observations.py"


def _fields() -> list[tuple[str, str]]:
    tree = ast.parse(OBSERVATIONS.read_text(encoding="utf-8"))
    return [
        (node.name, st.target.id)
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for st in node.body
        if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and "ClassVar" not in ast.unparse(st)
    ]


def _attributes_read() -> set[str]:
    """Every attribute name read anywhere in the product (``x.name`` in a load context; logging calls aside)."""
    read: set[str] = set()
    for folder in ("scanner", "probes", "reports"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                logging_call = isinstance(node, ast.Attribute) and (
                    isinstance(node.value, ast.Name) and node.value.id in ("log", "logging")
                )
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and not logging_call:
                    read.add(node.attr)
    return read


def test_every_observation_field_is_read_somewhere() -> None:
    fields = _fields()
    assert len(fields) > 150  # the parse found the observations
    read = _attributes_read()
    unread = [f"{cls}.{name}" for cls, name in fields if name not in read]
    assert unread == [], f"observation fields nothing reads: {unread}"
