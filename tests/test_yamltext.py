"""The product's YAML reader (libyaml when there) reads every shipped data file as PyYAML's own safe loader does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from profiles import yamltext

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for folder in ("profiles", "scanner", "probes", "reports") for p in (ROOT / folder).rglob("*.yaml"))


def test_the_data_files_are_found() -> None:
    assert len(FILES) >= 25 and any(p.name == "catalog.yaml" for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_same_data_as_the_pure_python_safe_loader(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert yamltext.safe_load(text) == yaml.load(text, Loader=yaml.SafeLoader)


def test_no_python_objects_from_a_document() -> None:
    """A safe loader either way: a Python tag is refused, not constructed."""
    with pytest.raises(yaml.YAMLError):
        yamltext.safe_load("!!python/object/apply:os.system ['true']")


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_libyaml_is_used_when_pyyaml_has_it() -> None:
    assert yamltext._LOADER is yaml.CSafeLoader
