"""The attempt ledger: failed logins per account, and the pairs each account refused.

One SQLite file next to the history database, shared by every sweep process
(``ProbeConfig.attempt_ledger``), or an in-memory database for one process.

- ``failure`` rows count toward the per-account cap. Rows of accounts whose
  device forgets failures (a lockout window) are pruned after a day; rows of
  accounts whose device never forgets them (only a successful login resets
  its count: ``keep``) stay until a login of ours succeeds, so such an account
  never sees more failures from edgeaudit than its profile allows, in any
  number of sweeps.
- ``refused`` rows remember which pairs an account refused, as a digest of
  address, user and password (passwords are never stored), so the
  extended-list walk (``--extended-credentials``) can go on where an earlier
  sweep stopped. They are pruned after ``REFUSED_MEMORY_S``.

Writes are short transactions (``BEGIN IMMEDIATE``); a damaged file only loses
history, it never blocks a sweep (a fresh in-memory ledger takes over). The
JSON ledger of earlier versions (``login-attempts.json`` beside the file) is
read in once, so an upgrade forgets no recent failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import sqlite3
import time
from pathlib import Path

from probes.base import ProbeContext

DAY_S = 86_400.0
REFUSED_MEMORY_S = 30 * DAY_S  # how long a refused pair is remembered (the extended walk restarts after)

SCHEMA = """
CREATE TABLE IF NOT EXISTS failure (address TEXT NOT NULL, account TEXT NOT NULL, at REAL NOT NULL,
                                    keep INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS failure_account ON failure (address, account);
CREATE TABLE IF NOT EXISTS refused (address TEXT NOT NULL, digest TEXT NOT NULL, at REAL NOT NULL,
                                    PRIMARY KEY (address, digest));
"""


def pair_digest(address: str, username: str, password: str) -> str:
    """What the ledger keeps of a refused pair: never the password itself."""
    return hashlib.sha256(f"{address}\n{username}\n{password}".encode()).hexdigest()[:24]


def _import_json(db: sqlite3.Connection, old: Path) -> None:
    """Earlier versions' JSON ledger ({"address account": [times]}): its failures join, then it goes."""
    import json

    try:
        data = json.loads(old.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        data = {}
    rows = [
        (*name.split(" ", 1), float(t), 0)
        for name, times in (data.items() if isinstance(data, dict) else [])
        if isinstance(name, str) and " " in name and isinstance(times, list)
        for t in times
        if isinstance(t, (int, float))
    ]
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO failure VALUES (?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    old.unlink(missing_ok=True)


class Ledger:
    """Failed attempts per (address, account) in a window, and refused pairs; shared by every probe.

    The count is per account across all of a host's services: devices usually keep one
    account database (and one lockout counter) behind SSH, Telnet and the web UI alike.
    Attempts on one account are serialised (a lock per account), so the count a probe
    checks is never stale: parallel probes cannot overshoot the cap between them.
    """

    def __init__(self) -> None:
        self._path: str | None = None
        self._db: sqlite3.Connection | None = None
        self._next: dict[str, float] = {}  # address -> earliest time of its next attempt (pacing)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refused: dict[str, dict[tuple[str, str], str]] = {}  # address -> (user, password) -> service
        self.started = time.time()  # refusals before this are an earlier sweep's

    def refused_on(self, address: str, pair: tuple[str, str]) -> str | None:
        """The service of this host that already refused this pair in this process, if any."""
        return self._refused.get(address, {}).get(pair)

    def lock(self, key: tuple[str, str]) -> asyncio.Lock:
        """The account's lock (locks are per event loop: a new loop starts a new set)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._locks = loop, {}
        return self._locks.setdefault(key, asyncio.Lock())

    def attach(self, path: str | None) -> None:
        """Share the ledger with other sweeps through a file; None: this process only."""
        if self._db is not None and path == self._path:
            return
        self._path = path
        self._db = self._open(path)

    def _open(self, path: str | None) -> sqlite3.Connection:
        if path is None:
            db = sqlite3.connect(":memory:", isolation_level=None)
        else:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
                db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")  # a commit per failure must not fsync: NORMAL in WAL
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(SCHEMA)
            except (OSError, sqlite3.DatabaseError):
                db = sqlite3.connect(":memory:", isolation_level=None)  # damaged: lose history, never block
                path = None
        db.executescript(SCHEMA)
        if path is not None:
            _import_json(db, Path(path).with_name("login-attempts.json"))
        now = time.time()  # pruned once per process: old rows only cost space, queries bound them by time
        db.execute("DELETE FROM failure WHERE keep = 0 AND at < ?", (now - DAY_S,))
        db.execute("DELETE FROM refused WHERE at < ?", (now - REFUSED_MEMORY_S,))
        return db

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open(None)
        return self._db

    def _write(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                db.execute(sql, params)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def used(self, key: tuple[str, str], window: float) -> int:
        """Failed attempts on this account within the window (inf: all it remembers), all sweeps'."""
        since = -math.inf if math.isinf(window) else time.time() - window
        row = (
            self._conn()
            .execute("SELECT COUNT(*) FROM failure WHERE address = ? AND account = ? AND at > ?", (*key, since))
            .fetchone()
        )
        return int(row[0])

    def begin(self, key: tuple[str, str], keep: bool = False) -> int:
        """Count an attempt before it is sent (the device may count it whatever happens next); its row id.

        ``settle`` says afterwards what it was; an attempt cut off (a deadline, a cancelled sweep, a
        crash) stays counted as a failure, as the device may have counted it.
        """
        db = self._conn()
        cursor = db.execute("INSERT INTO failure VALUES (?, ?, ?, ?)", (*key, time.time(), int(keep)))
        return int(cursor.lastrowid or 0)

    def settle(
        self, key: tuple[str, str], row: int, outcome: str, password: str | None = None, service: str = ""
    ) -> None:
        """What a begun attempt was: "refused" (stays counted; the pair is remembered), "accepted" (the
        account's count resets, as devices reset theirs), "unchecked" (the device counted nothing)."""
        if outcome == "accepted":
            self.succeeded(key)
        elif outcome == "unchecked":
            self._write(("DELETE FROM failure WHERE rowid = ?", (row,)))
        elif outcome == "refused" and password is not None:
            self._refused.setdefault(key[0], {})[(key[1], password)] = service
            self._write(
                ("INSERT OR REPLACE INTO refused VALUES (?, ?, ?)", (key[0], pair_digest(*key, password), time.time()))
            )

    def failed(self, key: tuple[str, str], password: str | None = None, service: str = "", keep: bool = False) -> None:
        """Count one failed attempt (and remember a refused pair, for the host's other services and later sweeps).

        ``keep``: the device never forgets failures, so neither does the ledger (until a success).
        """
        self.settle(key, self.begin(key, keep), "refused", password, service)

    def succeeded(self, key: tuple[str, str]) -> None:
        """A login worked: devices reset an account's failure count then, and so does the ledger."""
        self._write(("DELETE FROM failure WHERE address = ? AND account = ?", key))

    def refusals(self, address: str) -> dict[str, float]:
        """digest -> when, for every pair this host refused within the ledger's memory."""
        since = time.time() - REFUSED_MEMORY_S
        rows = self._conn().execute("SELECT digest, at FROM refused WHERE address = ? AND at > ?", (address, since))
        return {str(d): float(at) for d, at in rows}

    async def pace(self, address: str, gap: float, ctx: ProbeContext) -> None:
        """Take the host's next attempt slot (``gap`` seconds after the previous one) and wait for it."""
        now = time.monotonic()
        slot = max(now, self._next.get(address, now))
        self._next[address] = slot + gap  # reserved before waiting: concurrent probes queue up
        if slot > now:
            await asyncio.sleep(ctx.budget(slot - now))


LEDGER = Ledger()
