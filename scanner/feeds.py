"""Offline vulnerability feeds: CISA KEV and NVD CVE JSON 2.0, imported once, matched at scan time.

`edgeaudit feeds import FILE...` reads the files a user downloaded (no network
access here or at scan time) into feeds.sqlite3 next to the history database.
Matching is by CPE: a profile names its products' CPE vendor/product pairs,
and every vulnerable ``cpeMatch`` of an NVD CVE for that pair is checked
against the device's version under the profile's version scheme (exact
version, or the versionStart/End ranges). A CVE that KEV lists is known to be
exploited. KEV carries no versions, so a KEV CVE without an imported NVD
record cannot match. NVD configurations that AND a software CPE with a
hardware one are matched on the software CPE alone; the evidence says so.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiles import versions
from profiles.errors import UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS feed (kind TEXT PRIMARY KEY, released TEXT, imported_at TEXT, files TEXT, entries INTEGER);
CREATE TABLE IF NOT EXISTS kev (cve TEXT PRIMARY KEY, vendor TEXT, product TEXT, name TEXT, date_added TEXT,
                                due_date TEXT, ransomware TEXT);
CREATE TABLE IF NOT EXISTS cpe_match (cve TEXT, part TEXT, vendor TEXT, product TEXT, version TEXT,
                                      start_incl TEXT, start_excl TEXT, end_incl TEXT, end_excl TEXT, anded INTEGER);
CREATE INDEX IF NOT EXISTS cpe_match_product ON cpe_match (vendor, product);
CREATE INDEX IF NOT EXISTS cpe_match_cve ON cpe_match (cve);
"""
RANGE_KEYS = ("versionStartIncluding", "versionStartExcluding", "versionEndIncluding", "versionEndExcluding")


def path_for(db: Path) -> Path:
    """The feed database that goes with a history database."""
    return db.with_name("feeds.sqlite3")


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    return conn


def _load_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"feeds import {file}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"feeds import {file}: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"feeds import {file}: not a KEV or NVD CVE 2.0 document")
    return data


def kind_of(data: dict[str, Any]) -> str:
    """'kev' (CISA KEV catalog) or 'nvd' (NVD CVE API 2.0 / feed); UsageError otherwise."""
    if "catalogVersion" in data and isinstance(data.get("vulnerabilities"), list):
        return "kev"
    if data.get("format") == "NVD_CVE" and str(data.get("version", "")).startswith("2.") and "vulnerabilities" in data:
        return "nvd"
    raise UsageError("not a CISA KEV catalog nor an NVD CVE JSON 2.0 document")


def _cpe_parts(criteria: str) -> tuple[str, str, str, str] | None:
    """(part, vendor, product, version) of a CPE 2.3 formatted string, or None."""
    fields = criteria.split(":")
    if len(fields) < 6 or fields[0] != "cpe" or fields[1] != "2.3" or fields[2] not in ("a", "o", "h"):
        return None
    return fields[2], fields[3].replace("\\", ""), fields[4].replace("\\", ""), fields[5].replace("\\", "")


def _nvd_rows(data: dict[str, Any]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    for item in data.get("vulnerabilities", []):
        cve = item.get("cve") if isinstance(item, dict) else None
        if not isinstance(cve, dict) or not isinstance(cve.get("id"), str):
            raise UsageError("NVD document: a vulnerability without cve.id")
        rows: list[tuple[Any, ...]] = []
        for config in cve.get("configurations", []) or []:
            anded = 1 if config.get("operator") == "AND" else 0
            for node in config.get("nodes", []) or []:
                if node.get("negate"):
                    continue
                for m in node.get("cpeMatch", []) or []:
                    if not m.get("vulnerable"):
                        continue
                    parts = _cpe_parts(str(m.get("criteria", "")))
                    if parts is None:
                        continue
                    rows.append((cve["id"], *parts, *(m.get(k) for k in RANGE_KEYS), anded))
        yield cve["id"], rows


def import_files(db: Path, files: list[Path]) -> list[str]:
    """Import KEV and NVD files; one line of summary per file."""
    conn = _connect(path_for(db))
    out: list[str] = []
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        with conn:
            for file in files:
                data = _load_json(file)
                try:
                    kind = kind_of(data)
                except UsageError as exc:
                    raise UsageError(f"feeds import {file}: {exc}") from exc
                if kind == "kev":
                    rows = [
                        (
                            str(v["cveID"]),
                            str(v.get("vendorProject", "")),
                            str(v.get("product", "")),
                            str(v.get("vulnerabilityName", "")),
                            str(v.get("dateAdded", "")),
                            str(v.get("dueDate", "")),
                            str(v.get("knownRansomwareCampaignUse", "")),
                        )
                        for v in data["vulnerabilities"]
                        if isinstance(v, dict) and "cveID" in v
                    ]
                    conn.execute("DELETE FROM kev")  # a catalog is complete: the new one replaces the old
                    conn.executemany("INSERT OR REPLACE INTO kev VALUES (?,?,?,?,?,?,?)", rows)
                    released = str(data.get("dateReleased", ""))[:10]
                    conn.execute(
                        "INSERT OR REPLACE INTO feed VALUES ('kev', ?, ?, ?, ?)", (released, now, str(file), len(rows))
                    )
                    out.append(f"{file}: CISA KEV {data.get('catalogVersion')} ({released}), {len(rows)} CVEs")
                else:
                    count = matches = 0
                    for cve_id, rows in _nvd_rows(data):
                        conn.execute("DELETE FROM cpe_match WHERE cve = ?", (cve_id,))  # newer data replaces older
                        conn.executemany("INSERT INTO cpe_match VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                        count += 1
                        matches += len(rows)
                    released = str(data.get("timestamp", ""))[:10]
                    prev = conn.execute("SELECT released, files FROM feed WHERE kind = 'nvd'").fetchone()
                    files_text = str(file)
                    if prev:  # several files make one feed; it is as old as its oldest part
                        released = min(released, prev[0]) if released and prev[0] else released or prev[0]
                        files_text = "\n".join(dict.fromkeys([*prev[1].split("\n"), str(file)]))
                    total = conn.execute("SELECT COUNT(DISTINCT cve) FROM cpe_match").fetchone()[0]
                    conn.execute(
                        "INSERT OR REPLACE INTO feed VALUES ('nvd', ?, ?, ?, ?)", (released, now, files_text, total)
                    )
                    out.append(f"{file}: NVD CVE 2.0 ({released}), {count} CVEs, {matches} vulnerable CPE matches")
    finally:
        conn.close()
    return out


@dataclass(frozen=True)
class CveMatch:
    """One CVE whose vulnerable range holds the device's version."""

    cve: str
    criteria: str  # "o:vendor:product" and the range that matched
    exploited: bool
    kev_name: str = ""
    kev_added: str = ""
    kev_due: str = ""
    anded: bool = False  # the NVD configuration also requires a platform CPE (not checked)


@dataclass(frozen=True)
class FeedResult:
    """What the feeds say about one device."""

    matches: tuple[CveMatch, ...]
    kev_released: str | None
    nvd_released: str | None
    unparsed: int  # NVD ranges whose versions the profile's scheme could not read
    product_entries: int = 0  # vulnerable cpeMatch entries the NVD data holds for these products at all


class FeedDb:
    """Read-only view of an imported feed database (None-safe: an absent file has no feeds)."""

    def __init__(self, db: Path) -> None:
        self.path = path_for(db)
        self._conn: sqlite3.Connection | None = None
        if self.path.exists():
            # read-only, and read by the engine's judging thread, not the thread that opened it
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)

    def status(self) -> dict[str, dict[str, Any]]:
        """kind -> {released, imported_at, files, entries}."""
        if self._conn is None:
            return {}
        rows = self._conn.execute("SELECT kind, released, imported_at, files, entries FROM feed").fetchall()
        return {r[0]: {"released": r[1], "imported_at": r[2], "files": r[3].split("\n"), "entries": r[4]} for r in rows}

    def match(self, cpes: list[tuple[str, str, str]], version: str, scheme: str) -> FeedResult:
        """CVEs whose vulnerable cpeMatch holds ``version`` for any (part, vendor, product)."""
        status = self.status()
        kev_date = status.get("kev", {}).get("released")
        nvd_date = status.get("nvd", {}).get("released")
        if self._conn is None:
            return FeedResult((), None, None, 0)
        found: dict[str, CveMatch] = {}
        unparsed = entries = 0
        for part, vendor, product in cpes:
            rows = self._conn.execute(
                "SELECT m.cve, m.version, m.start_incl, m.start_excl, m.end_incl, m.end_excl, m.anded, "
                "k.name, k.date_added, k.due_date FROM cpe_match m LEFT JOIN kev k ON k.cve = m.cve "
                "WHERE m.vendor = ? AND m.product = ? AND m.part = ?",
                (vendor, product, part),
            ).fetchall()
            entries += len(rows)
            for cve, exact, s_in, s_ex, e_in, e_ex, anded, kev_name, kev_added, kev_due in rows:
                try:
                    hit, text = _in_range(version, scheme, exact, s_in, s_ex, e_in, e_ex)
                except ValueError:
                    unparsed += 1
                    continue
                if hit and cve not in found:
                    found[cve] = CveMatch(
                        cve,
                        f"{part}:{vendor}:{product} {text}",
                        exploited=kev_name is not None,
                        kev_name=kev_name or "",
                        kev_added=kev_added or "",
                        kev_due=kev_due or "",
                        anded=bool(anded),
                    )
        ordered = sorted(found.values(), key=lambda m: (not m.exploited, m.cve))
        return FeedResult(tuple(ordered), kev_date, nvd_date, unparsed, entries)


def _in_range(
    version: str, scheme: str, exact: str, s_in: str | None, s_ex: str | None, e_in: str | None, e_ex: str | None
) -> tuple[bool, str]:
    """Whether a version falls in one cpeMatch; raises ValueError when a bound is unreadable."""
    cmp = versions.compare
    if exact not in ("*", "-", ""):
        return cmp(version, exact, scheme) == 0, f"= {exact}"
    bounds = []
    ok = True
    if s_in:
        ok = ok and cmp(version, s_in, scheme) >= 0
        bounds.append(f">= {s_in}")
    if s_ex:
        ok = ok and cmp(version, s_ex, scheme) > 0
        bounds.append(f"> {s_ex}")
    if e_in:
        ok = ok and cmp(version, e_in, scheme) <= 0
        bounds.append(f"<= {e_in}")
    if e_ex:
        ok = ok and cmp(version, e_ex, scheme) < 0
        bounds.append(f"< {e_ex}")
    return ok, " ".join(bounds) or "all versions"
