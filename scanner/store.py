"""History: one SQLite database (WAL). Each host is committed when it finishes."""

from __future__ import annotations

import builtins
import datetime as dt
import json
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiles.errors import StoreError
from scanner.device import Baseline, DeviceRecord
from scanner.findings import Finding
from scanner.orchestrator import HostResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,            -- running | interrupted | complete
    started_at REAL NOT NULL,
    finished_at REAL,
    scope_json TEXT NOT NULL,
    config_json TEXT NOT NULL,
    vantage TEXT NOT NULL DEFAULT 'lan'
);
CREATE TABLE IF NOT EXISTS hosts (
    sweep_id TEXT NOT NULL REFERENCES sweeps(id),
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    hostname TEXT,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    device_json TEXT NOT NULL,
    PRIMARY KEY (sweep_id, address)
);
-- which earlier sweeps saw an address up (Store.baselines), without reading every sweep's hosts
CREATE INDEX IF NOT EXISTS hosts_by_address ON hosts (address, state);
CREATE TABLE IF NOT EXISTS findings (
    sweep_id TEXT NOT NULL,
    address TEXT NOT NULL,
    seq INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (sweep_id, address, seq)
);
CREATE TABLE IF NOT EXISTS outbox (  -- alerts not delivered yet (scanner.alerts), retried after each sweep
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    sweep_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    channel_json TEXT NOT NULL,
    message_json TEXT NOT NULL,
    tries INTEGER NOT NULL,
    last_error TEXT NOT NULL
);
"""


_ID_DRAWS = 8  # tags drawn before begin() gives up (a collision is 1 in 16 million per pair)


def default_path() -> Path:
    """$EDGEAUDIT_DB, else $XDG_DATA_HOME/edgeaudit/history.sqlite3 (~/.local/share/...)."""
    env = os.environ.get("EDGEAUDIT_DB")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "edgeaudit" / "history.sqlite3"


@dataclass
class HostRecord:
    """A host as stored."""

    address: str
    state: str
    hostname: str | None
    started_at: float
    finished_at: float
    device: DeviceRecord
    findings: list[Finding]


@dataclass
class SweepRecord:
    """A sweep as stored, with its hosts."""

    id: str
    command: str
    mode: str
    state: str
    started_at: float
    finished_at: float | None
    scope: dict[str, Any]
    config: dict[str, Any]
    vantage: str
    hosts: list[HostRecord]  # every host up or cut by its budget, and every down host that has findings
    down: int = 0  # hosts recorded down with nothing to report: counted, not loaded (a /16 is mostly these)

    @property
    def findings(self) -> list[Finding]:
        """Every finding of every host."""
        return [f for h in self.hosts for f in h.findings]


class Store:
    """The history database.

    Synchronous. During a sweep its writes come from the engine's writer thread (the sink,
    never the event loop), else from the thread that opened it: one connection, used by
    one thread at a time (``_lock`` holds each write transaction together).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not path.exists()
            self.db = sqlite3.connect(path, timeout=10, check_same_thread=False)
            if fresh:
                os.chmod(path, 0o600)  # evidence may hold secrets
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open history database {path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def begin(self, command: str, mode: str, scope: dict[str, Any], config: dict[str, Any], vantage: str) -> str:
        """Record a new sweep as running; returns its id (its start to the second, then a random tag).

        Sweeps begun in the same second (a scheduler, a script, a test) must still get distinct ids:
        the tag is 24 random bits, and a tag already taken is drawn again."""
        now = dt.datetime.now(dt.UTC)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        for _ in range(_ID_DRAWS):
            sweep_id = stamp + "-" + secrets.token_hex(3)
            try:
                with self._lock, self.db:
                    self.db.execute(
                        "INSERT INTO sweeps (id, command, mode, state, started_at, scope_json, config_json, vantage)"
                        " VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                        (sweep_id, command, mode, now.timestamp(), json.dumps(scope), json.dumps(config), vantage),
                    )
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.IntegrityError) and "sweeps.id" in str(exc):
                    continue  # that id is taken: draw another tag
                raise StoreError(f"cannot record the sweep in {self.path}: {exc}") from exc
            return sweep_id
        raise StoreError(f"no free sweep id for {stamp} after {_ID_DRAWS} draws")

    def host_done(self, sweep_id: str, result: HostResult, hostname: str | None = None) -> None:
        """Commit one host and its findings atomically."""
        try:
            with self._lock, self.db:
                self.db.execute("DELETE FROM findings WHERE sweep_id=? AND address=?", (sweep_id, result.address))
                self.db.execute(
                    "INSERT OR REPLACE INTO hosts VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        sweep_id,
                        result.address,
                        result.state,
                        hostname,
                        result.started_at,
                        result.finished_at,
                        json.dumps(result.device.to_json()),
                    ),
                )
                self.db.executemany(
                    "INSERT INTO findings VALUES (?, ?, ?, ?)",
                    [(sweep_id, result.address, i, json.dumps(f.to_json())) for i, f in enumerate(result.findings)],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record host {result.address}: {exc}") from exc

    def replace_findings(self, sweep_id: str, check_ids: set[str], per_host: dict[str, list[Finding]]) -> None:
        """Swap one sweep's findings of some checks for new ones (sweep-level checks, re-run on resume)."""
        try:
            with self._lock, self.db:
                for (address,) in list(self.db.execute("SELECT address FROM hosts WHERE sweep_id=?", (sweep_id,))):
                    rows = self.db.execute(
                        "SELECT json FROM findings WHERE sweep_id=? AND address=? ORDER BY seq", (sweep_id, address)
                    ).fetchall()
                    kept = [Finding.from_json(json.loads(r[0])) for r in rows]
                    kept = [f for f in kept if f.check_id not in check_ids] + per_host.get(address, [])
                    self.db.execute("DELETE FROM findings WHERE sweep_id=? AND address=?", (sweep_id, address))
                    self.db.executemany(
                        "INSERT INTO findings VALUES (?, ?, ?, ?)",
                        [(sweep_id, address, i, json.dumps(f.to_json())) for i, f in enumerate(kept)],
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record sweep-level findings: {exc}") from exc

    def finish(self, sweep_id: str, state: str) -> None:
        """Mark a sweep complete or interrupted."""
        with self._lock, self.db:
            self.db.execute(
                "UPDATE sweeps SET state=?, finished_at=? WHERE id=?",
                (state, dt.datetime.now(dt.UTC).timestamp(), sweep_id),
            )

    def done_addresses(self, sweep_id: str) -> set[str]:
        """Hosts already committed for a sweep (skipped by --resume)."""
        return {r[0] for r in self.db.execute("SELECT address FROM hosts WHERE sweep_id=?", (sweep_id,))}

    def resolve(self, ref: str | None, *, unfinished: bool = False) -> str:
        """A sweep id from a full id, a unique prefix, 'latest', or -N (N-th newest, -1 = newest)."""
        where = "WHERE state != 'complete'" if unfinished else ""
        rows: list[str] = [
            str(r[0]) for r in self.db.execute(f"SELECT id FROM sweeps {where} ORDER BY started_at DESC")
        ]
        if not rows:
            raise StoreError("no unfinished sweep to resume" if unfinished else "the history is empty")
        if ref in (None, "latest"):
            return rows[0]
        assert ref is not None
        if ref.startswith("-") and ref[1:].isdigit():
            n = int(ref[1:])
            if n < 1 or n > len(rows):
                raise StoreError(f"there are only {len(rows)} sweeps")
            return rows[n - 1]
        hits = [r for r in rows if r.startswith(ref)]
        if len(hits) != 1:
            raise StoreError(f"{ref!r} matches {len(hits)} sweeps")
        return hits[0]

    def list(self, limit: int = 20) -> list[dict[str, Any]]:
        """Newest sweeps with host and failure counts."""
        out = []
        for row in self.db.execute(
            "SELECT s.id, s.command, s.mode, s.state, s.started_at, s.finished_at, s.scope_json, s.vantage,"
            " (SELECT COUNT(*) FROM hosts h WHERE h.sweep_id=s.id AND h.state!='down'),"
            " (SELECT COUNT(*) FROM findings f WHERE f.sweep_id=s.id AND json_extract(f.json,'$.status')='fail')"
            " FROM sweeps s ORDER BY s.started_at DESC LIMIT ?",
            (limit,),
        ):
            scope = json.loads(row[6])
            out.append(
                {
                    "id": row[0],
                    "command": row[1],
                    "mode": row[2],
                    "state": row[3],
                    "started_at": row[4],
                    "finished_at": row[5],
                    "targets": scope.get("targets", []),
                    "vantage": row[7],
                    "hosts_up": row[8],
                    "failures": row[9],
                }
            )
        return out

    def previous_of_site(self, sweep_id: str, site: str) -> str | None:
        """The complete sweep of the same site, command and vantage that finished last before this one did.

        By finish time: a sweep interrupted, then resumed after a newer sweep completed, follows that one."""
        row = self.db.execute(
            "SELECT p.id FROM sweeps p JOIN sweeps s ON s.id=? WHERE p.state='complete' AND p.vantage=s.vantage"
            " AND p.command=s.command AND p.id != s.id AND p.finished_at <= COALESCE(s.finished_at, 1e18)"
            " AND json_extract(p.config_json, '$.site.name')=? ORDER BY p.finished_at DESC LIMIT 1",
            (sweep_id, site),
        ).fetchone()
        return str(row[0]) if row else None

    def last_complete(self, sweep_id: str, site: str | None) -> float | None:
        """When the newest complete sweep of this one's site, command and vantage ended (this one included)."""
        row = self.db.execute(
            "SELECT MAX(p.finished_at) FROM sweeps p JOIN sweeps s ON s.id=? WHERE p.state='complete'"
            " AND p.vantage=s.vantage AND p.command=s.command AND p.started_at <= s.started_at"
            " AND json_extract(p.config_json, '$.site.name') IS ?",
            (sweep_id, site),
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def queue_alert(self, site: str, sweep_id: str, channel: dict[str, Any], message: dict[str, Any], error: str,
                    tries: int) -> None:  # fmt: skip
        """Keep an alert that could not be delivered, to be tried again after the next sweep."""
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO outbox (site, sweep_id, created_at, channel_json, message_json, tries, last_error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (site, sweep_id, dt.datetime.now(dt.UTC).timestamp(), json.dumps(channel),
                 json.dumps(message, ensure_ascii=False), tries, error),
            )  # fmt: skip

    def pending_alerts(self, site: str) -> builtins.list[dict[str, Any]]:
        """A site's undelivered alerts, oldest first."""
        rows = self.db.execute(
            "SELECT id, sweep_id, channel_json, message_json, tries, last_error, created_at FROM outbox WHERE site=?"
            " ORDER BY id",
            (site,),
        )
        return [
            {"id": r[0], "sweep": r[1], "channel": json.loads(r[2]), "message": json.loads(r[3]), "tries": r[4],
             "error": r[5], "created_at": r[6]}
            for r in rows
        ]  # fmt: skip

    def alert_tried(self, alert_id: int, error: str | None, tries: int) -> None:
        """An outbox alert tried again: delivered (``error`` None, removed) or failed once more."""
        with self._lock, self.db:
            if error is None:
                self.db.execute("DELETE FROM outbox WHERE id=?", (alert_id,))
            else:
                self.db.execute("UPDATE outbox SET tries=tries+?, last_error=? WHERE id=?", (tries, error, alert_id))

    def baselines(self, sweep_id: str) -> dict[str, Baseline]:
        """For each host of a sweep, its record in the newest earlier complete sweep from the same vantage.

        Only hosts that finished every probe there count (not "budget": their record may be incomplete).
        """
        row = self.db.execute("SELECT vantage, started_at FROM sweeps WHERE id=?", (sweep_id,)).fetchone()
        if row is None:
            raise StoreError(f"no sweep {sweep_id!r}")
        # Only an address up in some other sweep can have a baseline; the earlier sweeps are then
        # walked newest first until each has one, reading whole records only for those taken (the
        # history of scheduled sweeps grows by a sweep a run: reading it all made every run slower).
        missing = {
            address
            for (address,) in self.db.execute(
                "SELECT address FROM hosts cur WHERE cur.sweep_id=? AND EXISTS (SELECT 1 FROM hosts h"
                " WHERE h.address = cur.address AND h.state = 'up' AND h.sweep_id != cur.sweep_id)",
                (sweep_id,),
            )
        }
        out: dict[str, Baseline] = {}
        earlier = self.db.execute(
            "SELECT id, started_at FROM sweeps WHERE vantage=? AND state='complete' AND started_at < ?"
            " ORDER BY started_at DESC",
            (row[0], row[1]),
        ).fetchall()
        for sid, started in earlier:
            if not missing:
                break
            up = self.db.execute("SELECT address FROM hosts WHERE sweep_id=? AND state = 'up'", (sid,)).fetchall()
            for address in sorted(missing.intersection(a for (a,) in up)):
                (device,) = self.db.execute(
                    "SELECT device_json FROM hosts WHERE sweep_id=? AND address=?", (sid, address)
                ).fetchone()
                out[address] = Baseline(sid, started, DeviceRecord.from_json(json.loads(device)))
                missing.discard(address)
        return out

    def load(self, sweep_id: str) -> SweepRecord:
        """A whole sweep."""
        row = self.db.execute(
            "SELECT id, command, mode, state, started_at, finished_at, scope_json, config_json, vantage"
            " FROM sweeps WHERE id=?",
            (sweep_id,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no sweep {sweep_id!r}")
        findings: dict[str, list[Finding]] = {}
        for address, text in self.db.execute(
            "SELECT address, json FROM findings WHERE sweep_id=? ORDER BY address, seq", (sweep_id,)
        ):
            findings.setdefault(address, []).append(Finding.from_json(json.loads(text)))
        hosts: list[HostRecord] = []
        down = 0
        for r in self.db.execute(
            "SELECT address, state, hostname, started_at, finished_at, device_json FROM hosts"
            " WHERE sweep_id=? ORDER BY started_at",
            (sweep_id,),
        ):
            if r[1] == "down" and r[0] not in findings:
                down += 1
                continue
            device = DeviceRecord.from_json(json.loads(r[5]))
            hosts.append(HostRecord(r[0], r[1], r[2], r[3], r[4], device, findings.get(r[0], [])))
        hosts.sort(key=lambda h: _addr_key(h.address))
        return SweepRecord(
            row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), json.loads(row[7]), row[8], hosts, down
        )


def _addr_key(address: str) -> tuple[int, int]:
    """IPv4, then IPv6, then MAC addresses (Wi-Fi BSSIDs), each in numeric order."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        digits = address.replace(":", "").replace("-", "")
        return (9, int(digits, 16)) if digits and all(c in "0123456789abcdefABCDEF" for c in digits) else (10, 0)
    return (ip.version, int(ip))
