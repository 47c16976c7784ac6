"""The report document as SARIF 2.1.0 (OASIS), for GitHub code scanning, DefectDojo and other result stores.

What the consumers need, as their documentation and code say (checked, not guessed):

- SARIF 2.1.0 itself: ``kind`` is pass/open/review/notApplicable/informational/fail (fail when absent),
  and a result of any kind but fail has level ``none``. ``open`` is "the rule was evaluated and there was
  not enough information to decide", which is what an inconclusive finding is, so inconclusive findings
  are results of kind ``open``. Partial-fingerprint names are versioned strings (``name/v1``).
- GitHub code scanning requires ``$schema``, ``version``, ``tool.driver.name`` and ``rules[]``; per rule
  ``shortDescription.text``, ``fullDescription.text`` (1024 characters at most) and ``help.text``; per
  result ``message.text``, at least one location with ``physicalLocation.artifactLocation.uri``, and
  ``partialFingerprints``, of which it reads only ``primaryLocationLineHash``. It refuses an absolute URI
  whose scheme is not ``file`` (uploads with ``docker://`` or ``git://`` locations fail whole), so a
  device is the relative reference ``devices/<address>/<transport>/<port>``. Its docs list
  ``region.startLine`` as required for annotating a line of a file; a device has no lines, and a region
  is optional in SARIF for a result about a whole artifact, so none is given (not tried against GitHub).
  It does not document ``kind``, so a pass result could show there as an alert: pass and info findings
  are left out (their counts are in ``run.properties``). ``properties.security-severity`` (with the tag
  ``security``) ranks alerts: over 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
  ``automationDetails.id`` is ``category/run-id``; uploads of one category replace each other.
- DefectDojo's SARIF parser imports results of kind fail only, reads ``artifactLocation.uri`` when a
  physical location is given, takes the severity from the rule's ``security-severity`` (>= 9 Critical,
  >= 7 High, >= 4 Medium, else Low) over the level, and builds its deduplication id from
  ``partialFingerprints`` (a name with a slash must end in ``/v<N>``).

The ``security-severity`` values are fixed points inside the band of each edgeaudit severity, not CVSS
scores. Both fingerprints hash the finding's identity across sweeps, (address, check id, service):
``primaryLocationLineHash`` carries it too, because it is the only one GitHub reads and a device has no
line to hash; its ``:N`` suffix counts repeats of one identity within the sweep, as GitHub counts
identical lines. Everything here reads the document alone (reports/schema.json); the UI strings come
from reports.markdown, since reports.render imports this module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter
from typing import Any
from urllib.parse import quote

from reports.i18n import LANGS, strings
from reports.markdown import SEVERITIES

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}  # info: none
KIND = {"fail": "fail", "inconclusive": "open"}  # pass and info findings are not results here
FINGERPRINT = "edgeauditFinding/v1"
MAX_DESCRIPTION = 1000  # GitHub: fullDescription at most 1024 characters
MAX_EVIDENCE = 300  # characters of evidence in a result's message
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _utc(iso: str | None) -> str | None:
    """An ISO 8601 time of the document as UTC with a Z (RFC 3339)."""
    if not iso:
        return None
    t = dt.datetime.fromisoformat(iso).astimezone(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def identity(address: str, check_id: str, service: str | None) -> str:
    """A stable hash of a finding's identity across sweeps: (address, check id, service)."""
    key = json.dumps([address, check_id, service or ""], separators=(",", ":"))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def device_uri(address: str, service: str | None) -> str:
    """``devices/198.18.0.2/tcp/22`` (``devices/<address>`` for a device-wide finding), percent-encoded.

    Relative, so no scheme for GitHub to refuse; the same for a finding in every sweep."""
    parts = ["devices", address, *(service.split("/") if service else [])]
    return "/".join(quote(p, safe=":") for p in parts)


def _one_line(text: str, limit: int) -> str:
    flat = _CONTROL.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _evidence(evidence: dict[str, Any]) -> str:
    items = (f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}" for k, v in evidence.items())
    return _one_line("; ".join(items), MAX_EVIDENCE)


def _message(f: dict[str, Any], lang: str) -> str:
    t = strings()[lang]
    where = f["address"] + (f" {f['service']}" if f["service"] else "")
    title = f["title"][lang]
    if f["status"] == "fail":
        text = f"{where}: {title}." if lang == "en" else f"{where}: {title}。"
    else:
        text = f"{where}: {t['inconclusive']}: {title}." if lang == "en" else f"{where}: {t['inconclusive']}: {title}。"
    evidence = _evidence(f["evidence"])
    return f"{text} {t['evidence']}: {evidence}" if evidence else text


def _rule_severity(findings: list[dict[str, Any]]) -> str:
    """The severity most of a check's findings carry (the catalog's, unless a finding overrides it)."""
    counts: Counter[str] = Counter(str(f["severity"]) for f in findings)
    return min(counts, key=lambda s: (-counts[s], SEVERITIES.index(s)))


def _rule(check_id: str, findings: list[dict[str, Any]], lang: str) -> dict[str, Any]:
    t = strings()[lang]
    first = findings[0]
    clause = first["clause"]
    title = first["title"][lang]
    severity = _rule_severity(findings)
    where = f"{t['guideline']}, {t['clauses'].get(clause, clause)}" if clause != "-" else "edgeaudit"
    references = first.get("references") or []
    help_text = first["remediation"][lang] or title
    if references:
        help_text += "\n\n" + "\n".join(f"- {r}" for r in references)
    tags = ["security", "edgeaudit"] + ([f"CIAJ-{clause}"] if clause != "-" else [])
    properties: dict[str, Any] = {"clause": clause, "tags": tags, "references": list(references)}
    if severity in SECURITY_SEVERITY:
        properties["security-severity"] = SECURITY_SEVERITY[severity]
    return {
        "id": check_id,
        "name": "".join(w.capitalize() for w in re.findall(r"[A-Za-z0-9]+", first["title"]["en"])) or check_id,
        "shortDescription": {"text": title},
        "fullDescription": {"text": _one_line(f"{title} ({where})", MAX_DESCRIPTION)},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": LEVEL[severity]},
        "properties": properties,
    }


def _result(f: dict[str, Any], rule_index: int, occurrence: int, lang: str) -> dict[str, Any]:
    kind = KIND[f["status"]]
    digest = identity(f["address"], f["id"], f["service"])
    location = {
        "physicalLocation": {"artifactLocation": {"uri": device_uri(f["address"], f["service"])}},
        "logicalLocations": [
            {
                "name": f["address"],
                "fullyQualifiedName": f["address"] + (f"/{f['service']}" if f["service"] else ""),
                "kind": "device",  # none of SARIF's listed kinds is a network device
            }
        ],
    }
    return {
        "ruleId": f["id"],
        "ruleIndex": rule_index,
        "kind": kind,
        "level": LEVEL[f["severity"]] if kind == "fail" else "none",
        "message": {"text": _message(f, lang)},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT: digest, "primaryLocationLineHash": f"{digest[:16]}:{occurrence}"},
        "properties": {
            "status": f["status"],
            "severity": f["severity"],
            "clause": f["clause"],
            "mode": f["mode"],
            "evidence": f["evidence"],  # as the document has it: secrets masked unless it was built unmasked
        },
    }


def _occurrences(findings: list[dict[str, Any]]) -> list[int]:
    """1 for the first finding of an identity, 2 for a second one in the same sweep (as GitHub counts lines)."""
    seen: Counter[str] = Counter()
    out = []
    for f in findings:
        key = identity(f["address"], f["id"], f["service"])
        seen[key] += 1
        out.append(seen[key])
    return out


def to_sarif(report: dict[str, Any], lang: str) -> str:
    """SARIF 2.1.0 text of the report: one run; a result per failing or inconclusive finding."""
    if lang not in LANGS:
        raise ValueError(f"language must be one of {LANGS}")
    sweep = report["sweep"]
    findings = [f for d in report["devices"] for f in d["findings"]]
    reported = [f for f in findings if f["status"] in KIND]
    ids = list(dict.fromkeys(f["id"] for f in reported))  # in the document's order
    index = {check_id: i for i, check_id in enumerate(ids)}
    rules = [_rule(i, [f for f in findings if f["id"] == i], lang) for i in ids]
    invocation: dict[str, Any] = {"executionSuccessful": sweep["state"] == "complete"}
    if started := _utc(sweep["started_at"]):
        invocation["startTimeUtc"] = started
    if finished := _utc(sweep["finished_at"]):
        invocation["endTimeUtc"] = finished
    run = {
        "tool": {
            "driver": {
                "name": "edgeaudit",
                "version": report["tool"]["version"],
                "rules": rules,
            }
        },
        "automationDetails": {"id": f"edgeaudit/{sweep['vantage']}/{sweep['id']}"},
        "invocations": [invocation],
        "results": [_result(f, index[f["id"]], n, lang) for f, n in zip(reported, _occurrences(reported), strict=True)],
        "properties": {
            "sweep": {k: sweep[k] for k in ("id", "command", "mode", "state", "vantage")},
            "byStatus": report["summary"]["by_status"],
            "secretsMasked": report["secrets_masked"],
        },
    }
    log = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
    return json.dumps(log, ensure_ascii=False, indent=2) + "\n"
