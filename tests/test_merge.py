"""`edgeaudit merge`: WAN exposure findings land on the LAN device they belong to, and only there."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from probes.observations import Mode
from profiles.errors import UsageError
from scanner.checks import make_finding
from scanner.cli import main
from scanner.device import DeviceRecord, Fingerprint, Kind
from scanner.findings import Finding, Status
from scanner.merge import merge, parse_pairs
from scanner.orchestrator import HostResult
from scanner.store import Store

EXPOSED = "CIAJ-2.3-VOIP-EXPOSED"


def _host(address: str, key: str | None, findings: list[Finding]) -> HostResult:
    prints = (Fingerprint("tcp/22", Kind.HOST_KEY, f"ssh-ed25519 SHA256:{key}"),) if key else ()
    return HostResult(address, "up", 0.0, 1.0, findings, DeviceRecord(fingerprints=prints))


def _f(address: str, check_id: str, status: Status, **evidence: object) -> Finding:
    return make_finding(check_id, address, status, Mode.DEFAULT, "udp/5060", dict(evidence))


def _sweep(
    store: Store, vantage: str, hosts: list[HostResult], intervals: list[list[int]] | None = None, target: str = ""
) -> str:
    scope = {"targets": [target or vantage], "excludes": [], "intervals": intervals or []}
    sweep_id = store.begin("scan", "default", scope, {}, vantage)
    for h in hosts:
        store.host_done(sweep_id, h)
    store.finish(sweep_id, "complete")
    return sweep_id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "h.sqlite3")


def _lan(store: Store) -> str:
    waiting = {"reason": "judged from the WAN vantage"}
    return _sweep(
        store,
        "lan",
        [
            _host("10.0.0.10", "pbx", [_f("10.0.0.10", EXPOSED, Status.INCONCLUSIVE, **waiting)]),
            _host("10.0.0.11", None, [_f("10.0.0.11", EXPOSED, Status.INCONCLUSIVE, **waiting)]),
            _host("10.0.0.3", "clone", [_f("10.0.0.3", "CIAJ-1.2-DEFAULT-CREDENTIAL", Status.FAIL)]),
            _host("10.0.0.5", "clone", []),
        ],
    )


def _wan(store: Store) -> str:
    return _sweep(
        store,
        "wan",
        [
            _host("203.0.113.10", "pbx", [_f("203.0.113.10", EXPOSED, Status.FAIL, agent="Asterisk PBX 16.30.0")]),
            _host("203.0.113.11", None, [_f("203.0.113.11", EXPOSED, Status.PASS)]),
            _host("203.0.113.3", "clone", [_f("203.0.113.3", EXPOSED, Status.PASS)]),
        ],
    )


def test_host_key_joins_and_exposure_moves_to_the_lan_device(store: Store) -> None:
    merged = store.load(merge(store, _lan(store), _wan(store), {}))
    hosts = {h.address: h for h in merged.hosts}
    pbx = [f for f in hosts["10.0.0.10"].findings if f.check_id == EXPOSED]
    assert [(f.status, f.evidence["wan_address"]) for f in pbx] == [(Status.FAIL, "203.0.113.10")]
    assert "host key" in pbx[0].evidence["joined_by"]
    assert "203.0.113.10" not in hosts  # joined: not listed twice
    # No shared identity: the LAN device stays inconclusive, and says how to pair it.
    lone = [f for f in hosts["10.0.0.11"].findings if f.check_id == EXPOSED]
    assert [f.status for f in lone] == [Status.INCONCLUSIVE] and "--same" in lone[0].evidence["reason"]
    # A host key two LAN devices share (a cloned image) joins nothing: the WAN host stays its own.
    assert "203.0.113.3" in hosts and hosts["203.0.113.3"].device.vantage == "wan"
    assert [f.check_id for f in hosts["10.0.0.3"].findings] == ["CIAJ-1.2-DEFAULT-CREDENTIAL"]
    assert merged.vantage == "lan+wan" and merged.command == "merge"


def test_an_explicit_pair_joins_what_no_key_can(store: Store) -> None:
    merged = store.load(merge(store, _lan(store), _wan(store), parse_pairs(["203.0.113.11=10.0.0.11"])))
    lone = [f for h in merged.hosts if h.address == "10.0.0.11" for f in h.findings if f.check_id == EXPOSED]
    assert [(f.status, f.evidence["joined_by"]) for f in lone] == [(Status.PASS, "paired with --same")]


def test_merge_refuses_wrong_vantages_and_unknown_pairs(store: Store) -> None:
    lan, wan = _lan(store), _wan(store)
    with pytest.raises(UsageError, match="LAN sweep then a WAN sweep"):
        merge(store, wan, lan, {})
    with pytest.raises(UsageError, match="not a host"):
        merge(store, lan, wan, {"203.0.113.99": "10.0.0.11"})
    with pytest.raises(UsageError, match="WAN=LAN"):
        parse_pairs(["203.0.113.11"])
    with pytest.raises(UsageError, match="both join"):
        merge(store, lan, wan, {"203.0.113.11": "10.0.0.10"})  # 203.0.113.10 joins it by host key already


def test_diff_by_default_compares_sweeps_of_the_same_vantage(store: Store, tmp_path: Path) -> None:
    first_lan = _lan(store)
    _wan(store)
    merge(store, first_lan, store.resolve("-1"), {})
    second_lan = _lan(store)

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["diff", "--db", str(store.path), "--json"])
    d = json.loads(out.getvalue())
    assert (d["old"], d["new"]) == (first_lan, second_lan)  # not the merged or the WAN sweep in between


def test_the_merged_report_counts_both_sweeps_scope(store: Store, tmp_path: Path) -> None:
    """The merged report's scope line said "0 addresses": it counts the LAN's and the WAN's scope now."""
    from scanner.document import build

    lan = _sweep(store, "lan", [_host("10.0.0.10", "pbx", [])], [[4, 167772161, 167772414]], "10.0.0.0/24")  # 254
    wan = _sweep(store, "wan", [_host("203.0.113.10", "pbx", [])], [[4, 3405803786, 3405803787]], "203.0.113.10")
    document = build(store.load(merge(store, lan, wan, {})))
    scope = document["sweep"]["scope"]
    assert scope["address_count"] == 256
    assert scope["targets"] == ["10.0.0.0/24", "203.0.113.10"]
