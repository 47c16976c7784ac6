"""The attempt ledger belongs to the sweep (the engine's, in the probe context), and SQLite stays off the loop."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import probes
import profiles
from probes import login
from probes.base import Phase, Probe, ProbeContext, ProbeTarget, Registry
from probes.login import ledger as ledger_mod
from probes.login.ledger import Ledger
from probes.observations import Observation
from probes.sip import sip_secret
from profiles.errors import StoreError
from scanner import feeds, orchestrator
from scanner.orchestrator import Engine, HostResult
from scanner.store import Store
from tests.conftest import StartDevice, config_for, fresh_address, scan_config

FEEDS_DIR = Path(__file__).resolve().parents[1] / "lab" / "feeds"
LAB_FEEDS = [FEEDS_DIR / "kev-edgelab.json", FEEDS_DIR / "nvd-edgelab.json"]


class _Refused(Probe):
    """One refused login per run, through the context's ledger; remembers the ledger it was handed."""

    name = "test-ledger-user"
    phase = Phase.DISCOVERY
    seen: ClassVar[list[Ledger | None]] = []

    def targets(self, host: Any, config: Any) -> list[None]:
        return [None]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        _Refused.seen.append(ctx.ledger)

        async def refused() -> bool:
            return False

        await login.capped_attempt(target.address, "admin", f"guess-{len(self.seen)}", "tcp/22", 5, ctx, refused)
        return []


def _engine(ledger_file: str | None = None) -> Engine:
    cfg = scan_config(pace=0.0)
    cfg = dataclasses.replace(cfg, probe_config=dataclasses.replace(cfg.probe_config, attempt_ledger=ledger_file))
    registry = Registry()
    registry.add(_Refused)
    return Engine(cfg, [], registry=registry)


def test_no_module_holds_a_ledger() -> None:
    probes.load_all()
    for module in (ledger_mod, login, sip_secret, orchestrator):
        held = [name for name, value in vars(module).items() if isinstance(value, Ledger)]
        assert held == [], f"{module.__name__} holds a ledger: {held}"


async def test_each_engine_hands_its_own_ledger_to_its_probes_and_shares_only_a_named_file(tmp_path: Path) -> None:
    address = fresh_address()
    _Refused.seen.clear()
    first, second = _engine(), _engine()
    await first.scan_host(address)
    await second.scan_host(address)
    assert _Refused.seen == [first.ledger, second.ledger] and first.ledger is not second.ledger
    key = (address, "admin")
    assert await first.ledger.used(key, 900) == 1 and await second.ledger.used(key, 900) == 1  # in memory: apart
    path = str(tmp_path / "login-attempts.sqlite3")
    one, other = _engine(path), _engine(path)
    await one.scan_host(address)
    await other.scan_host(address)
    assert await one.ledger.used(key, 900) == 2 and await other.ledger.used(key, 900) == 2  # one file: shared
    for engine in (first, second, one, other):
        await engine.ledger.close()


async def test_a_login_probe_without_a_ledger_tries_nothing() -> None:
    ctx = ProbeContext(scan_config().timeouts, scan_config().mode, scan_config().probe_config, 1e12)
    tried: list[str] = []

    async def attempt() -> bool:
        tried.append("sent")
        return False

    with pytest.raises(Exception, match="no attempt ledger"):
        await login.capped_attempt(fresh_address(), "admin", "admin", "tcp/22", 2, ctx, attempt)
    assert tried == []


class _Recorder:
    """The thread of every SQLite call made while ``on``, per database."""

    def __init__(self) -> None:
        self.on = False
        self.calls: list[tuple[str, str, int]] = []

    def note(self, db: str, what: str) -> None:
        if self.on:
            self.calls.append((db, what, threading.get_ident()))


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor, rec: _Recorder, db: str) -> None:
        self._cursor, self._rec, self._db = cursor, rec, db

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        self._rec.note(self._db, "next")
        return next(self._cursor)

    def fetchone(self) -> Any:
        self._rec.note(self._db, "fetchone")
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        self._rec.note(self._db, "fetchall")
        return self._cursor.fetchall()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _Connection:
    def __init__(self, conn: sqlite3.Connection, rec: _Recorder, db: str) -> None:
        self._conn, self._rec, self._db = conn, rec, db

    def _run(self, what: str, *args: Any) -> _Cursor:
        self._rec.note(self._db, what)
        return _Cursor(getattr(self._conn, what)(*args), self._rec, self._db)

    def execute(self, *args: Any) -> _Cursor:
        return self._run("execute", *args)

    def executemany(self, *args: Any) -> _Cursor:
        return self._run("executemany", *args)

    def executescript(self, *args: Any) -> _Cursor:
        return self._run("executescript", *args)

    def commit(self) -> None:
        self._rec.note(self._db, "commit")
        self._conn.commit()

    def close(self) -> None:
        self._rec.note(self._db, "close")
        self._conn.close()

    def __enter__(self) -> _Connection:
        self._rec.note(self._db, "begin")
        self._conn.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        self._rec.note(self._db, "commit")
        return self._conn.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _History:
    def __init__(self, store: Store, sweep_id: str) -> None:
        self.store, self.sweep_id = store, sweep_id

    def host_done(self, result: HostResult) -> None:
        self.store.host_done(self.sweep_id, result)


async def test_every_sqlite_call_of_a_sweep_is_off_the_loop(
    emulated: StartDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A default sweep of a device refusing logins: ledger, history and feed database calls: none on the loop."""
    rec = _Recorder()
    real_connect = sqlite3.connect

    def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        conn = real_connect(database, *args, **kwargs)
        name = Path(str(database).split("?")[0]).name  # the feed database is opened as a read-only URI
        rec.note(name, "connect")
        return _Connection(conn, rec, name)

    monkeypatch.setattr(sqlite3, "connect", connect)
    # an EdgeLab router the lab's offline feeds list CVEs for: its checks read the feed database too
    dev = await emulated(
        services=["http", "telnet"], http_mode="basic", persona="router", model="EL-R100", firmware="2.4.1",
        lockout_after=5,
    )
    cfg = config_for(dev, probe=30.0, host=60.0)
    ledger_file = str(tmp_path / "login-attempts.sqlite3")
    cfg = dataclasses.replace(cfg, probe_config=dataclasses.replace(cfg.probe_config, attempt_ledger=ledger_file))
    store = Store(tmp_path / "history.sqlite3")
    sweep_id = store.begin("scan", "default", {}, {}, "lan")
    feeds.import_files(tmp_path / "history.sqlite3", LAB_FEEDS)
    engine = Engine(cfg, profiles.load_all(), feeds=feeds.FeedDb(tmp_path / "history.sqlite3"))
    loop_thread = threading.get_ident()
    rec.on = True
    await asyncio.wait_for(engine.sweep([dev.spec.address], _History(store, sweep_id), asyncio.Event()), 120)
    rec.on = False
    store.close()
    assert dev.failures, "the sweep tried no login: nothing was written to the ledger"
    used = {db for db, _what, _thread in rec.calls}
    assert {"login-attempts.sqlite3", "history.sqlite3", "feeds.sqlite3"} <= used, used
    on_loop = [(db, what) for db, what, thread in rec.calls if thread == loop_thread]
    assert on_loop == [], f"SQLite calls on the event loop: {on_loop[:10]}"


class _SlowSink:
    def host_done(self, result: HostResult) -> None:
        time.sleep(1.0)  # a history database another process holds locked


async def test_a_history_write_that_hangs_ends_in_its_deadline_and_the_loop_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(orchestrator, "RECORD_TIMEOUT_S", 0.3)
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    ticker = asyncio.create_task(tick())
    engine = _engine()
    try:
        with pytest.raises(ExceptionGroup) as caught:
            await asyncio.wait_for(engine.sweep([fresh_address()], _SlowSink(), asyncio.Event()), 30)
    finally:
        ticker.cancel()
    assert caught.group_contains(StoreError, match="took over 0.3s")
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.25  # the loop never waited for the write


async def test_a_locked_ledger_file_is_a_store_error_in_its_deadline(tmp_path: Path) -> None:
    """Another process holds the ledger's write lock: the attempt is not counted, so it is never sent."""
    path = str(tmp_path / "login-attempts.sqlite3")
    book = Ledger(path, op_timeout=0.3)
    await book.used(("192.0.2.1", "admin"), 900)  # opened, schema in place
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    try:
        with pytest.raises(StoreError, match="no answer from its database"):
            await book.begin(("192.0.2.1", "admin"))
        assert time.monotonic() - started < 2.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await book.close()


async def test_account_locks_are_shared_while_held_and_not_kept_after() -> None:
    """One lock per account while anyone holds it (attempts stay serial); none kept for accounts done with."""
    import gc

    book = Ledger()
    key = ("198.18.4.1", "admin")
    order: list[str] = []

    async def attempt(name: str) -> None:
        async with book.lock(key):
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(attempt("a"), attempt("b"))
    assert order == ["a in", "a out", "b in", "b out"]  # the second waited for the first: the same lock
    for i in range(1000):
        async with book.lock((f"198.18.{i // 250}.{i % 250}", "admin")):
            pass
    gc.collect()
    assert len(book._locks) == 0
