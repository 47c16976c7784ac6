"""Inconclusive findings grouped by what would settle them (settle.yaml: classes, patterns, actions).

A finding's reason is its evidence's ``reason``, or the reasons of the probe failures it carries
(EA-PROBE-INCONCLUSIVE); a checklist item (``evidence.checklist``) is the installer's. The
classes are data: a new kind of reason is a new entry, with its action in both languages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from profiles import yamltext
from profiles.errors import RegistryError


@dataclass(frozen=True)
class SettleClass:
    """One kind of inconclusive, and the action that settles it."""

    id: str
    pattern: re.Pattern[str] | None
    checklist: bool
    title: dict[str, str]
    action: dict[str, str]


@cache
def classes() -> tuple[SettleClass, ...]:
    """The classes in match order (loaded once, checked: both languages, a last catch-all)."""
    raw = yamltext.safe_load(resources.files("scanner.checks").joinpath("settle.yaml").read_text(encoding="utf-8"))
    out = []
    for entry in raw:
        for part in ("title", "action"):
            if set(entry.get(part, {})) != {"en", "ja"}:
                raise RegistryError(f"settle.yaml {entry.get('id')}: {part} needs exactly 'en' and 'ja'")
        pattern = re.compile(entry["match"]) if "match" in entry else None
        out.append(SettleClass(entry["id"], pattern, bool(entry.get("checklist")), entry["title"], entry["action"]))
    if out[-1].pattern is None or out[-1].pattern.pattern != ".":
        raise RegistryError("settle.yaml: the last class must match every reason (match: '.')")
    return tuple(out)


def reason(evidence: Mapping[str, Any]) -> str:
    """What the finding says kept it from a verdict."""
    if isinstance(evidence.get("reason"), str):
        return str(evidence["reason"])
    failures = evidence.get("failures")
    if isinstance(failures, list):
        return "; ".join(f"{f.get('reason', '')} ({f.get('error', '')})" for f in failures if isinstance(f, dict))
    return ""


def classify(evidence: Mapping[str, Any]) -> SettleClass:
    """The class of one inconclusive finding's evidence."""
    if evidence.get("checklist"):
        return next(c for c in classes() if c.checklist)
    text = reason(evidence) or "-"
    return next(c for c in classes() if c.pattern is not None and c.pattern.search(text))


def groups(findings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Report findings (report.json's form) that are inconclusive, grouped: biggest group first."""
    counts: dict[str, dict[str, Any]] = {}
    for f in findings:
        if f["status"] != "inconclusive":
            continue
        c = classify(f["evidence"])
        g = counts.setdefault(c.id, {"class": c.id, "title": c.title, "action": c.action, "count": 0, "checks": {}})
        g["count"] += 1
        g["checks"][f["id"]] = g["checks"].get(f["id"], 0) + 1
    order = {c.id: i for i, c in enumerate(classes())}
    out = sorted(counts.values(), key=lambda g: (g["class"] == "other", -g["count"], order[g["class"]]))
    for g in out:
        g["checks"] = sorted(g["checks"].items(), key=lambda kv: (-kv[1], kv[0]))
        g["checks"] = [{"id": k, "count": n} for k, n in g["checks"]]
    return out
