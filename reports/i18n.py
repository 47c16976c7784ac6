"""The report's UI strings per language (reports/i18n.yaml), loaded once for every renderer."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from profiles import yamltext

LANGS = ("en", "ja")


@cache
def strings() -> dict[str, dict[str, Any]]:
    """UI strings per language."""
    data: dict[str, dict[str, Any]] = yamltext.safe_load(
        resources.files("reports").joinpath("i18n.yaml").read_text(encoding="utf-8")
    )
    return data
