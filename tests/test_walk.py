"""The extended credential list (--extended-credentials): NOTICE-sized, walked across sweeps, never locking."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import profiles
from probes import login
from probes.login import ledger
from scanner.findings import Status
from scanner.orchestrator import Engine, HostResult
from tests.conftest import StartDevice, by_id, config_for, with_settings

WEAK, DEFAULT = "CIAJ-1.2-WEAK-CREDENTIAL", "CIAJ-1.2-DEFAULT-CREDENTIAL"
WINDOW = 1.5  # the test devices forget failures after this long, and the sweeps are told so


def test_extended_list_is_notice_sized_and_built_by_its_rules() -> None:
    protocols, pairs = login.extended_list()
    assert 500 <= len(pairs) <= 700  # NOTICE: about 600 combinations
    assert len(set(pairs)) == len(pairs)
    assert set(protocols) == {"ssh", "telnet", "http", "ftp"}
    raw = yaml.safe_load((Path(profiles.builtin_dir()) / "credentials" / "extended.yaml").read_text())
    for user in raw["users"]:  # every user gets its own patterns and every listed password
        for password in [t.replace("{user}", user) for t in raw["per_user"]] + raw["passwords"]["sequences"]:
            assert (user, password) in pairs
    # the first pairs of an account are its own patterns, in the file's order
    assert [p for u, p in pairs if u == "support"][:3] == ["support", "", "support1"]
    documented = {(c.username, c.password) for p in profiles.load_all() for c in p.default_credentials}
    assert {pair for pair in documented if pair[1] != "public"} - set(pairs) <= {("community", "private")}
    assert ("Administrator", "7654321") in pairs and ("admin", "x-admin") in pairs  # cross-family defaults


def test_credential_lists_are_schema_checked() -> None:
    schema = json.loads((Path(profiles.builtin_dir()) / "credentials" / "schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for name in ("generic.yaml", "extended.yaml"):
        validator.validate(yaml.safe_load((Path(profiles.builtin_dir()) / "credentials" / name).read_text()))
    bad = {"protocols": ["ssh"], "users": ["admin"], "per_user": ["{user}"], "passwords": {"x": [1234]}}
    assert not validator.is_valid(bad)  # a number where a password string belongs
    assert not validator.is_valid({"protocols": ["rsh"], "users": ["a"], "per_user": [], "passwords": {}})


def test_ledger_keeps_digests_not_passwords_and_imports_the_old_json(tmp_path: Path) -> None:
    old = tmp_path / "login-attempts.json"
    old.write_text(json.dumps({"198.18.0.9 admin": [9e12, 9e12 + 1], "junk": "x"}))
    path = tmp_path / "login-attempts.sqlite3"
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"not a database" * 100)

    async def use() -> tuple[int, dict[str, float], int]:
        book = ledger.Ledger(str(path))
        imported = await book.used(("198.18.0.9", "admin"), float("inf"))
        await book.failed(("198.18.0.9", "admin"), "Secret-Pass-77", "tcp/22")
        refused = await book.refusals("198.18.0.9")
        other = ledger.Ledger(str(damaged))  # loses history, never blocks a sweep
        await other.failed(("198.18.0.9", "root"))
        counted = await other.used(("198.18.0.9", "root"), 60)
        await book.close()
        await other.close()
        return imported, refused, counted

    imported, refused, counted = asyncio.run(use())
    assert imported == 2 and not old.exists()
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("login-attempts.sqlite3-*"))
    assert b"Secret-Pass-77" not in raw
    assert ledger.pair_digest("198.18.0.9", "admin", "Secret-Pass-77") in refused
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert counted == 1
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(damaged).execute("SELECT * FROM failure").fetchall()


async def sweeps(dev: Any, tmp_path: Path, times: int, stop: str | None = None) -> list[HostResult]:
    """Sweeps of one device as separate processes would run them, WINDOW apart, sharing one ledger file."""
    cfg = config_for(dev, probe=30.0, host=60.0)
    pc = with_settings(
        cfg.probe_config,
        extended_credentials=True,
        attempt_window_s=WINDOW,
        login_pace_s=0.02,
        attempt_ledger=str(tmp_path / "login-attempts.sqlite3"),
    )
    cfg = dataclasses.replace(cfg, probe_config=pc)
    out: list[HostResult] = []
    for _ in range(times):
        # each sweep its own engine, so its own ledger (as a new process has): only the file is shared
        result = await asyncio.wait_for(Engine(cfg, profiles.load_all()).scan_host(dev.spec.address), 90)
        out.append(result)
        if stop and any(f.status == Status.FAIL for f in by_id(result, stop)):
            break
        await asyncio.sleep(WINDOW + 0.2)
    return out


async def unidentified(emulated: StartDevice, users: dict[str, str]) -> Any:
    """SSH and Telnet on a device no profile matches, forgetting failures after WINDOW, locking at the 3rd."""
    return await emulated(
        services=["ssh", "telnet"],
        cli="openwrt",
        persona="other",
        model="X",
        users=users,
        lockout_after=3,
        lockout_window_s=WINDOW,
    )


async def test_walk_finds_an_extended_password_sweep_by_sweep_without_locking(
    emulated: StartDevice, tmp_path: Path
) -> None:
    """support/support123 is the 5th pair of its account: 2 failures per window, so the 3rd sweep finds it."""
    dev = await unidentified(emulated, {"support": "support123"})
    results = await sweeps(dev, tmp_path, 5, stop=WEAK)
    assert results[0].device.profile is None  # no lockout window declared: --attempt-window rules
    assert len(results) == 3
    fails = [f for f in by_id(results[-1], WEAK) if f.status == Status.FAIL]
    assert fails and all(f.evidence["username"] == "support" for f in fails)
    assert {f.evidence["source"] for f in fails} == {"extended"}
    assert dev.locked == set() and dev.most_failures <= 2
    # each sweep asked only pairs no earlier sweep had: support, "", support1, support12, support123
    # (the one that worked may be asked on each service: a success is not a refusal)
    support = [svc for svc, user in dev.login_attempts if user == "support"]
    assert 5 <= len(support) <= 6
    first = [f for f in by_id(results[0], WEAK) if f.status == Status.PASS]
    assert first and all("goes on in later sweeps" in str(f.evidence["extended_list"]) for f in first)
    # the generic pairs refused in sweep 1 are not asked again in sweep 2 (only after a day)
    again = {f.service: f.evidence for f in by_id(results[1], WEAK)}
    assert any("admin (generic)" in e.get("refused_in_an_earlier_sweep", []) for e in again.values())


async def test_walk_keeps_a_hardened_device_passing(emulated: StartDevice, tmp_path: Path) -> None:
    dev = await unidentified(emulated, {"admin": "Str0ng-and-long-9f"})
    results = await sweeps(dev, tmp_path, 3)
    assert results[0].device.profile is None
    for result in results:
        assert {f.status for f in by_id(result, WEAK)} == {Status.PASS}
    assert dev.locked == set() and dev.most_failures <= 2
    progress = [str(f.evidence["extended_list"]) for f in by_id(results[-1], WEAK)]
    done = [int(p.split(" of ")[0]) for p in progress]
    assert min(done) >= 2 * 12 * 3 - 12  # about 2 pairs per account per sweep, all sweeps together


async def test_walk_never_locks_a_device_that_never_forgets_failures(emulated: StartDevice, tmp_path: Path) -> None:
    """The lab router persona counts failures until a success; its profile says so (lockout window_s: 0).

    A window-based cap alone would lock it in the second sweep; the ledger keeps those
    failures, so no later sweep adds any.
    """
    dev = await emulated(services=["ssh"], cli="cisco", users={"admin": "Str0ng-and-long-9f"}, lockout_after=3)
    results = await sweeps(dev, tmp_path, 3)
    assert results[0].device.profile == "edgelab-router"
    assert dev.locked == set() and dev.most_failures <= 2
    assert sum(1 for _svc, user in dev.login_attempts if user == "admin") == 2  # sweep 1's two, then none
    assert {f.status for f in by_id(results[-1], DEFAULT)} == {Status.PASS}  # admin/admin refused a sweep ago
