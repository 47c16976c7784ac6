"""A finding's evidence as one sentence in each language, from the check catalog's templates.

A catalog entry may give, per status, a list of templates (``evidence: {fail: [{en, ja}, ...]}``)
whose ``{field}`` names are keys of the finding's evidence; the first template whose fields are
all present is used. Without one, the evidence's own ``reason`` is the sentence; without that,
its first few plain values. The raw evidence stays in the report beside the sentence.

Evidence holds device-supplied text (banners, titles): values are cut to a bounded length and
put on one line here; escaping is the renderer's (HTML autoescape, Markdown escaping).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

LANGS = ("en", "ja")
MAX_VALUE = 80  # characters of one value (device text among them)
MAX_REASON = 300  # characters of a reason (edgeaudit's own sentence)
MAX_ITEMS = 5  # items of a list
_FORMATTER = string.Formatter()


def fields(template: str) -> set[str]:
    """The ``{field}`` names of a template (raises ValueError when it is malformed)."""
    return {name for _text, name, _spec, _conv in _FORMATTER.parse(template) if name}


def _value(v: Any, limit: int = MAX_VALUE) -> str | None:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return f"{v:g}" if isinstance(v, float) else str(v)
    if isinstance(v, str):
        flat = " / ".join(part.strip() for part in v.splitlines() if part.strip())
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"
    if isinstance(v, list) and all(not isinstance(x, dict | list) for x in v):
        items = [s for s in (_value(x) for x in v[:MAX_ITEMS]) if s is not None]
        more = f" (+{len(v) - MAX_ITEMS})" if len(v) > MAX_ITEMS else ""
        return ", ".join(items) + more if items else None
    return None  # a mapping or a list of mappings: not one value


def _fill(template: str, evidence: Mapping[str, Any]) -> str | None:
    values = {}
    for name in fields(template):
        value = _value(evidence.get(name))
        if value is None or value == "":
            return None
        values[name] = value
    return template.format(**values)


def _plain(evidence: Mapping[str, Any]) -> str:
    parts = []
    for key, v in evidence.items():
        value = _value(v)
        if value:
            parts.append(f"{key.replace('_', ' ')}: {value}")
        if len(parts) == 4:
            break
    return "; ".join(parts)


def sentence(
    templates: Mapping[str, Sequence[Mapping[str, str]]], status: str, evidence: Mapping[str, Any]
) -> dict[str, str]:
    """The finding's evidence in both languages (empty strings when there is nothing to say)."""
    for template in templates.get(status, ()):
        filled = {lang: _fill(template[lang], evidence) for lang in LANGS}
        if all(filled.values()):
            return {lang: text for lang, text in filled.items() if text is not None}
    reason = _value(evidence.get("reason"), MAX_REASON)
    if reason:
        return dict.fromkeys(LANGS, reason)
    return dict.fromkeys(LANGS, _plain(evidence))


def check(fid: str, raw: Any) -> dict[str, tuple[dict[str, str], ...]]:
    """A catalog entry's ``evidence`` templates, checked (ValueError names what is wrong)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not set(raw) <= {"fail", "pass", "inconclusive", "info"}:
        raise ValueError(f"catalog {fid}: evidence needs a mapping of fail/pass/inconclusive/info to templates")
    out: dict[str, tuple[dict[str, str], ...]] = {}
    for status, templates in raw.items():
        if not isinstance(templates, list) or not templates:
            raise ValueError(f"catalog {fid}: evidence.{status} needs a list of templates")
        for t in templates:
            if not isinstance(t, dict) or set(t) != set(LANGS) or not all(isinstance(v, str) for v in t.values()):
                raise ValueError(f"catalog {fid}: evidence.{status}: each template needs exactly 'en' and 'ja'")
            if fields(t["en"]) != fields(t["ja"]):
                raise ValueError(f"catalog {fid}: evidence.{status}: en and ja use different fields")
        out[status] = tuple(dict(t) for t in templates)
    return out
