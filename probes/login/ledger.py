"""The attempt ledger: failed logins per account, and the pairs each account refused.

One ledger per sweep: the engine builds it and hands it to every probe in its
context (``ProbeContext.ledger``). It keeps its rows in the SQLite file
``ProbeConfig.attempt_ledger``, shared by every sweep that names that file (other
processes, or other engines in this one), or in an in-memory database of its own.

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

Every SQLite call runs on the ledger's own worker thread (one thread, so its
connection never changes threads), never on the event loop, each awaited under
``OP_TIMEOUT_S``. Writes are short transactions (``BEGIN IMMEDIATE``); a damaged
file only loses history, it never blocks a sweep (a fresh in-memory database
takes over). The JSON ledger of earlier versions (``login-attempts.json`` beside
the file) is read in once, so an upgrade forgets no recent failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import sqlite3
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from profiles.errors import StoreError

DAY_S = 86_400.0
REFUSED_MEMORY_S = 30 * DAY_S  # how long a refused pair is remembered (the extended walk restarts after)
OP_TIMEOUT_S = 10.0  # one ledger operation, waiting for another process's write lock included

SCHEMA = """
CREATE TABLE IF NOT EXISTS failure (address TEXT NOT NULL, account TEXT NOT NULL, at REAL NOT NULL,
                                    keep INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS failure_account ON failure (address, account);
CREATE TABLE IF NOT EXISTS refused (address TEXT NOT NULL, digest TEXT NOT NULL, at REAL NOT NULL,
                                    PRIMARY KEY (address, digest));
"""

T = TypeVar("T")


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


def _open(path: str | None) -> sqlite3.Connection:
    """The ledger's database (on its worker thread): the file, else (None, or damaged) in memory."""
    if path is None:
        db = sqlite3.connect(":memory:", isolation_level=None)
    else:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            db = sqlite3.connect(path, timeout=OP_TIMEOUT_S, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")  # a commit per failure must not fsync: NORMAL in WAL
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
        except (OSError, sqlite3.DatabaseError):
            db = sqlite3.connect(":memory:", isolation_level=None)  # damaged: lose history, never block
            path = None
    db.executescript(SCHEMA)
    if path is not None:
        _import_json(db, Path(path).with_name("login-attempts.json"))
    now = time.time()  # pruned once per ledger: old rows only cost space, queries bound them by time
    db.execute("DELETE FROM failure WHERE keep = 0 AND at < ?", (now - DAY_S,))
    db.execute("DELETE FROM refused WHERE at < ?", (now - REFUSED_MEMORY_S,))
    return db


class Ledger:
    """One sweep's failed attempts per (address, account) in a window, and refused pairs.

    The count is per account across all of a host's services: devices usually keep one
    account database (and one lockout counter) behind SSH, Telnet and the web UI alike.
    Attempts on one account are serialised (a lock per account), so the count a probe
    checks is never stale: parallel probes cannot overshoot the cap between them; and
    ``begin`` checks the cap again in the transaction that counts the attempt, so
    another sweep sharing the file cannot either.
    """

    def __init__(self, path: str | None = None, op_timeout: float = OP_TIMEOUT_S) -> None:
        self.path = path  # None: this ledger's own in-memory database
        self.op_timeout = op_timeout
        self._db: sqlite3.Connection | None = None  # opened, used and closed on the worker thread only
        self._worker: ThreadPoolExecutor | None = None
        self._next: dict[str, float] = {}  # address -> earliest time of its next attempt (pacing)
        # Held only while someone holds them: a sweep of thousands of hosts keeps no lock per account it is done with.
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refused: dict[str, dict[tuple[str, str], str]] = {}  # address -> (user, password) -> service
        self.started = time.time()  # refusals before this are an earlier sweep's

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the database on the worker thread, within ``op_timeout``."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeaudit-ledger")
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._worker, self._with_db, fn), self.op_timeout)
        except TimeoutError as exc:
            raise StoreError(f"attempt ledger: no answer from its database in {self.op_timeout:g}s") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"attempt ledger: {exc}") from exc

    def _with_db(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            self._db = _open(self.path)
        return fn(self._db)

    async def close(self) -> None:
        """Close the database and stop the worker (a later call opens them again; in memory: empty)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return

        def shut() -> None:
            db, self._db = self._db, None
            if db is not None:
                db.close()

        try:
            await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(worker, shut), self.op_timeout)
        except TimeoutError as exc:
            raise StoreError(f"attempt ledger: not closed in {self.op_timeout:g}s") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"attempt ledger: {exc}") from exc
        finally:
            worker.shutdown(wait=False)

    def refused_on(self, address: str, pair: tuple[str, str]) -> str | None:
        """The service of this host that already refused this pair in this sweep, if any."""
        return self._refused.get(address, {}).get(pair)

    def lock(self, key: tuple[str, str]) -> asyncio.Lock:
        """The account's lock (locks are per event loop: a new loop starts a new set)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._locks = loop, weakref.WeakValueDictionary()
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    @staticmethod
    def _transaction(db: sqlite3.Connection, *statements: tuple[str, tuple[object, ...]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                db.execute(sql, params)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _count(db: sqlite3.Connection, key: tuple[str, str], window: float) -> int:
        since = -math.inf if math.isinf(window) else time.time() - window
        sql = "SELECT COUNT(*) FROM failure WHERE address = ? AND account = ? AND at > ?"
        return int(db.execute(sql, (*key, since)).fetchone()[0])

    async def used(self, key: tuple[str, str], window: float) -> int:
        """Failed attempts on this account within the window (inf: all it remembers), all sweeps'."""
        return await self._call(lambda db: self._count(db, key, window))

    async def begin(
        self, key: tuple[str, str], keep: bool = False, limit: int | None = None, window: float = math.inf
    ) -> int | None:
        """Count an attempt before it is sent (the device may count it whatever happens next); its row id.

        With ``limit``: None, and nothing counted, when the account already has that many
        failures within ``window`` (checked in the same transaction: no other sweep sharing
        the file slips in between). ``settle`` says afterwards what it was; an attempt cut
        off (a deadline, a cancelled sweep, a crash) stays counted as a failure, as the
        device may have counted it.
        """

        def count(db: sqlite3.Connection) -> int | None:
            db.execute("BEGIN IMMEDIATE")
            try:
                if limit is not None and self._count(db, key, window) >= limit:
                    db.execute("COMMIT")
                    return None
                cursor = db.execute("INSERT INTO failure VALUES (?, ?, ?, ?)", (*key, time.time(), int(keep)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return int(cursor.lastrowid or 0)

        return await self._call(count)

    async def settle(
        self, key: tuple[str, str], row: int, outcome: str, password: str | None = None, service: str = ""
    ) -> None:
        """What a begun attempt was: "refused" (stays counted; the pair is remembered), "accepted" (the
        account's count resets, as devices reset theirs), "unchecked" (the device counted nothing)."""
        if outcome == "accepted":
            await self.succeeded(key)
        elif outcome == "unchecked":
            await self._call(lambda db: self._transaction(db, ("DELETE FROM failure WHERE rowid = ?", (row,))))
        elif outcome == "refused" and password is not None:
            self._refused.setdefault(key[0], {})[(key[1], password)] = service
            digest = pair_digest(*key, password)
            remember = ("INSERT OR REPLACE INTO refused VALUES (?, ?, ?)", (key[0], digest, time.time()))
            await self._call(lambda db: self._transaction(db, remember))

    async def failed(
        self, key: tuple[str, str], password: str | None = None, service: str = "", keep: bool = False
    ) -> None:
        """Count one failed attempt (and remember a refused pair, for the host's other services and later sweeps).

        ``keep``: the device never forgets failures, so neither does the ledger (until a success).
        """
        row = await self.begin(key, keep)
        assert row is not None  # no limit given: always counted
        await self.settle(key, row, "refused", password, service)

    async def succeeded(self, key: tuple[str, str]) -> None:
        """A login worked: devices reset an account's failure count then, and so does the ledger."""
        forget = ("DELETE FROM failure WHERE address = ? AND account = ?", key)
        await self._call(lambda db: self._transaction(db, forget))

    async def refusals(self, address: str) -> dict[str, float]:
        """digest -> when, for every pair this host refused within the ledger's memory."""
        since = time.time() - REFUSED_MEMORY_S

        def read(db: sqlite3.Connection) -> dict[str, float]:
            rows = db.execute("SELECT digest, at FROM refused WHERE address = ? AND at > ?", (address, since))
            return {str(d): float(at) for d, at in rows}

        return await self._call(read)

    async def pace(self, address: str, gap: float, budget: Callable[[float], float]) -> None:
        """Take the host's next attempt slot (``gap`` seconds after the previous one) and wait for it.

        ``budget`` caps the wait by the probe's deadline (``ProbeContext.budget``).
        """
        now = time.monotonic()
        slot = max(now, self._next.get(address, now))
        self._next[address] = slot + gap  # reserved before waiting: concurrent probes queue up
        if slot > now:
            await asyncio.sleep(budget(slot - now))
