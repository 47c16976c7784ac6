"""What the edgeaudit wheel holds: the product, never the development lab."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

from setuptools import find_packages

from scanner.cli import build_parser
from scanner.command import COMMAND_GROUP, plugins

ROOT = Path(__file__).resolve().parents[1]


def _packages(pyproject: Path) -> list[str]:
    found = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]
    return find_packages(str(pyproject.parent), include=found["include"], exclude=found.get("exclude", ()))


def test_the_wheel_ships_the_product_and_not_the_lab() -> None:
    packages = _packages(ROOT / "pyproject.toml")
    assert {"scanner", "scanner.checks", "probes", "reports", "profiles"} <= set(packages)
    assert not [p for p in packages if p.split(".")[0] in ("lab", "tests")]


def test_the_lab_is_its_own_distribution_adding_the_lab_command() -> None:
    lab = tomllib.loads((ROOT / "lab" / "pyproject.toml").read_text(encoding="utf-8"))
    assert lab["project"]["entry-points"][COMMAND_GROUP] == {"lab": "lab.cli"}
    # installed from this checkout by make setup: `edgeaudit lab` is there, through the entry point
    assert [ep.value for ep in entry_points(group=COMMAND_GROUP) if ep.name == "lab"] == ["lab.cli"]
    assert "lab" in plugins()
    args = build_parser().parse_args(["lab", "status"])
    assert args.command == "lab" and args.action == "status"
