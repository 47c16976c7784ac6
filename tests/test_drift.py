"""CIAJ-3.4-CONFIG-DRIFT: settings changed between sweeps, judged against the history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from probes.observations import Mode, Service
from scanner.checks import SweepHost
from scanner.checks.drift import DRIFT, judge
from scanner.cli import main
from scanner.device import Baseline, DeviceRecord, Fingerprint, Kind, Settings
from scanner.findings import Severity, Status
from tests.conftest import FAST, FLEET_PORTS

PORTS = FLEET_PORTS


def _device(i: int, **extra: object) -> dict[str, object]:
    return {
        "name": f"drift{i}",
        "address": f"127.0.211.{i}",
        "persona": "router",
        "model": "EL-R200",
        "firmware": "3.2.1",
        "services": {"ssh": 2222, "http": 8080},
        "http_mode": "redirect",
        "host_key_seed": f"drift-{i}",
        **extra,
    }


def _drift(report: Path, address: str) -> dict[str, Any]:
    data = json.loads(report.read_text())
    [device] = [d for d in data["devices"] if d["address"] == address]
    [finding] = [f for f in device["findings"] if f["id"] == DRIFT]
    return dict(finding)


def test_a_second_sweep_flags_the_changed_device_and_passes_the_unchanged_one(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = ["--db", str(tmp_path / "h.db")]
    first = fleet([_device(1), _device(2)])
    assert main(["scan", "127.0.211.1-2", "--out", str(tmp_path / "a"), *db, *PORTS, *FAST]) in (0, 1)
    for addr in ("127.0.211.1", "127.0.211.2"):
        f = _drift(tmp_path / "a" / "report.json", addr)
        assert f["status"] == "inconclusive" and "baseline" in f["evidence"]["reason"]
    first.terminate()
    first.wait(10)
    # Between the sweeps someone opened Telnet on device 1 and put older firmware on it; device 2 is untouched.
    changed = _device(1, firmware="2.4.1", services={"ssh": 2222, "http": 8080, "telnet": 2323})
    fleet([changed, _device(2)])
    main(["scan", "127.0.211.1-2", "--out", str(tmp_path / "b"), *db, *PORTS, *FAST])
    bad = _drift(tmp_path / "b" / "report.json", "127.0.211.1")
    assert bad["status"] == "fail" and bad["severity"] == "high"
    changes = {c["setting"]: (c["old"], c["new"]) for c in bad["evidence"]["changes"]}
    assert changes["firmware"] == ("3.2.1", "2.4.1")
    old, new = changes["administration services"]
    assert set(new) - set(old) == {"tcp/2323 telnet"}
    assert "tcp/2222 host key" not in changes  # the same seed, the same key: not a change
    good = _drift(tmp_path / "b" / "report.json", "127.0.211.2")
    assert good["status"] == "pass"
    assert {"firmware", "administration services", "tcp/2222 host key"} <= set(good["evidence"]["compared"])
    assert good["evidence"]["previous_sweep"] == bad["evidence"]["previous_sweep"]


def _host(device: DeviceRecord, previous: DeviceRecord | None) -> SweepHost:
    return SweepHost("192.0.2.1", device, Baseline("s1", 0.0, previous) if previous is not None else None)


def _dev(**extra: Any) -> DeviceRecord:
    base: dict[str, Any] = {
        "firmware": "1.0",
        "mac": "02:00:00:00:00:01",
        "services": (Service(22, "tcp", "ssh"),),
        "fingerprints": (Fingerprint("tcp/22", Kind.HOST_KEY, "ssh-ed25519 SHA256:aaa"),),
    }
    return DeviceRecord(**{**base, **extra})


def test_only_settings_known_in_both_sweeps_are_compared() -> None:
    """A config hash read in authenticated mode now but not then is not a change."""
    now = _dev(settings=Settings(config_sha256="abc", dns_servers=("198.51.100.53",)))
    f = judge(_host(now, _dev()), Mode.DEFAULT)
    assert f.status == Status.PASS
    assert "configuration (hash of the read-only config output)" not in f.evidence["compared"]


def test_dns_servers_and_config_changes_are_high_and_closing_a_service_is_low() -> None:
    then = _dev(settings=Settings(config_sha256="abc", dns_servers=("198.51.100.53",)))
    now = _dev(settings=Settings(config_sha256="abd", dns_servers=("203.0.113.66",)))
    f = judge(_host(now, then), Mode.DEFAULT)
    assert f.status == Status.FAIL and f.severity == Severity.HIGH
    assert {c["setting"] for c in f.evidence["changes"]} == {
        "configuration (hash of the read-only config output)",
        "DNS servers in the configuration",
    }
    closed = judge(_host(_dev(services=()), _dev()), Mode.DEFAULT)
    assert closed.status == Status.FAIL and closed.severity == Severity.LOW
    rekeyed_print = Fingerprint("tcp/22", Kind.HOST_KEY, "ssh-ed25519 SHA256:bbb")
    rekeyed = judge(_host(_dev(fingerprints=(rekeyed_print,)), _dev()), Mode.DEFAULT)
    assert rekeyed.status == Status.FAIL and rekeyed.severity == Severity.HIGH
    # --dhcp: the resolvers handed out, in order (clients try the first first)
    dhcp_then = _dev(settings=Settings(dhcp_dns=("192.0.2.1",)))
    dhcp_now = _dev(settings=Settings(dhcp_dns=("203.0.113.66",)))
    handed = judge(_host(dhcp_now, dhcp_then), Mode.DEFAULT)
    assert handed.status == Status.FAIL and handed.severity == Severity.HIGH
    assert [c["setting"] for c in handed.evidence["changes"]] == ["DNS servers handed out by DHCP"]


def test_another_device_at_the_address_or_no_baseline_is_inconclusive() -> None:
    swapped = judge(_host(_dev(mac="02:00:00:00:00:02", firmware="9.9"), _dev()), Mode.DEFAULT)
    assert swapped.status == Status.INCONCLUSIVE and "another device" in swapped.evidence["reason"]
    first = judge(_host(_dev(), None), Mode.DEFAULT)
    assert first.status == Status.INCONCLUSIVE


def test_a_host_cut_short_by_its_budget_passes_no_sweep_level_check_and_is_no_baseline(tmp_path: Path) -> None:
    from scanner.checks import judge_sweep
    from scanner.orchestrator import HostResult
    from scanner.store import Store

    same = _dev()
    _ids, out = judge_sweep([SweepHost("192.0.2.1", same, Baseline("s0", 0.0, same), "budget")], Mode.DEFAULT)
    [drift] = [f for f in out["192.0.2.1"] if f.check_id == DRIFT]
    assert drift.status == Status.INCONCLUSIVE and "budget" in drift.evidence["reason"]
    store = Store(tmp_path / "h.db")
    for state in ("budget", "up"):
        sid = store.begin("scan", "default", {}, {}, "lan")
        store.host_done(sid, HostResult("192.0.2.1", state, 0.0, 1.0, [], same))
        store.finish(sid, "complete")
    newest = store.begin("scan", "default", {}, {}, "lan")
    store.host_done(newest, HostResult("192.0.2.1", "up", 0.0, 1.0, [], same))
    first_up = store.list()[1]["id"]
    assert store.baselines(newest)["192.0.2.1"].sweep_id == first_up
    only_budget = Store(tmp_path / "b.db")
    sid = only_budget.begin("scan", "default", {}, {}, "lan")
    only_budget.host_done(sid, HostResult("192.0.2.1", "budget", 0.0, 1.0, [], same))
    only_budget.finish(sid, "complete")
    later = only_budget.begin("scan", "default", {}, {}, "lan")
    only_budget.host_done(later, HostResult("192.0.2.1", "up", 0.0, 1.0, [], same))
    assert only_budget.baselines(later) == {}


def _sweep(store: Any, states: dict[str, str], *, vantage: str = "lan", state: str = "complete") -> str:
    from scanner.orchestrator import HostResult

    sid: str = store.begin("scan", "default", {}, {}, vantage)
    for address, host_state in states.items():
        store.host_done(sid, HostResult(address, host_state, 0.0, 1.0, [], _dev(firmware=sid)))
    store.finish(sid, state)
    return sid


def test_each_host_s_baseline_is_its_newest_earlier_complete_sweep_from_the_vantage(tmp_path: Path) -> None:
    from scanner.store import Store

    store = Store(tmp_path / "h.db")
    old = _sweep(store, {"192.0.2.1": "up", "192.0.2.2": "up", "192.0.2.3": "up"})
    mid = _sweep(store, {"192.0.2.1": "up", "192.0.2.2": "down"})
    _sweep(store, {"192.0.2.1": "up", "192.0.2.2": "up"}, vantage="wan")  # another vantage
    _sweep(store, {"192.0.2.1": "up", "192.0.2.2": "up"}, state="interrupted")  # not complete
    now = _sweep(store, {"192.0.2.1": "up", "192.0.2.2": "up", "192.0.2.3": "up", "192.0.2.4": "up"}, state="running")
    got = store.baselines(now)
    assert {a: b.sweep_id for a, b in got.items()} == {"192.0.2.1": mid, "192.0.2.2": old, "192.0.2.3": old}
    assert got["192.0.2.2"].device.firmware == old  # the record of that sweep, whole


def test_baselines_cost_does_not_grow_with_the_history(tmp_path: Path) -> None:
    """Scheduled sweeps add a sweep a run: finding each host's baseline reads the newest sweeps, not all.

    Counted in SQLite's virtual-machine steps (a progress handler every 1,000): reading the whole
    history for every host, as before, took 93 times as many with 200 earlier sweeps as with 2."""
    from scanner.store import Store

    hosts = {f"192.0.2.{i}": "up" for i in range(1, 41)}

    def steps(history: int) -> int:
        store = Store(tmp_path / f"h{history}.db")
        for _ in range(history):
            _sweep(store, hosts)
        now = _sweep(store, {**hosts, "198.51.100.9": "up"}, state="running")  # one address never seen before
        count = [0]

        def tick() -> int:
            count[0] += 1
            return 0

        store.db.set_progress_handler(tick, 1000)
        assert len(store.baselines(now)) == len(hosts)
        store.db.set_progress_handler(None, 0)
        return count[0]

    assert steps(200) < 3 * steps(2) + 5
