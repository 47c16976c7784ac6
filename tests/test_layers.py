"""The layers of docs/layout.md hold in the code: no import up, none into lab/ or tests/, no circle."""

from __future__ import annotations

import importlib
import re
import textwrap
from pathlib import Path

import pytest

from tests import layers

ROOT = Path(__file__).resolve().parents[1]
REGISTERS = re.compile(r"^\s*@(register|check\(|sweep_check\()", re.M)


def test_no_module_imports_a_folder_above_its_own() -> None:
    bad = layers.wrong_way(ROOT)
    assert not bad, "imports against the layers profiles < probes < reports < scanner:\n" + "\n".join(map(str, bad))


def test_no_import_circle_between_modules() -> None:
    assert layers.cycles(ROOT) == []


def test_no_import_circle_between_folders() -> None:
    assert layers.folder_cycles(ROOT) == []


def test_every_module_is_seen() -> None:
    """The rules cover every module, nested ones too (a checker that reads nothing passes anything)."""
    known = layers.modules(ROOT)
    assert {"scanner.cli", "scanner.checks.voip", "reports.render", "probes.base", "lab.emulator.devices"} <= set(
        known
    )
    edges = list(layers.imports(ROOT, known))
    assert any(i.module == "scanner.orchestrator" and i.target == "probes.base" for i in edges)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    for folder in layers.FIRST_PARTY:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "__init__.py").touch()
    return tmp_path


def test_a_wrong_way_import_is_caught(tmp_path: Path) -> None:
    """The checker fails a probe that imports the engine, even one hidden in a function."""
    root = _tree(
        tmp_path,
        {
            "scanner/engine.py": "from probes.base import Probe\n",
            "probes/base.py": "class Probe: ...\n",
            "probes/sip/msg.py": "def f():\n    from scanner.engine import run\n",
            "reports/render.py": "from profiles.loader import load\n",
            "profiles/loader.py": "def load(): ...\n",
        },
    )
    bad = layers.wrong_way(root)
    assert [str(i) for i in bad] == ["probes/sip/msg.py:2 imports scanner.engine"]


def test_the_product_may_not_import_the_lab(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"scanner/cli.py": "import lab.cli\n", "lab/cli.py": "from scanner import cli\n"})
    assert [str(i) for i in layers.wrong_way(root)] == ["scanner/cli.py:1 imports lab.cli"]


def test_a_circle_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "probes/a.py": "from probes import b\n",
            "probes/b.py": "from . import c\n",
            "probes/c.py": "def f():\n    import probes.a\n",
        },
    )
    assert layers.cycles(root) == [["probes.a", "probes.b", "probes.c"]]


@pytest.mark.parametrize(("package", "listing"), [("probes", "PROBE_MODULES"), ("scanner.checks", "CHECK_MODULES")])
def test_registration_lists_name_every_module(package: str, listing: str) -> None:
    """Probe and check modules are imported by name from a list: a module left off it never registers."""
    pkg = importlib.import_module(package)
    listed = set(getattr(pkg, listing))
    folder = Path(pkg.__file__ or "").parent
    registering = {
        ".".join(p.relative_to(folder).with_suffix("").parts)
        for p in folder.rglob("*.py")
        if REGISTERS.search(p.read_text(encoding="utf-8"))
    }
    assert registering == listed
