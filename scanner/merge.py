"""`edgeaudit merge`: one sweep from a LAN sweep and a WAN sweep of the same site.

The WAN sweep saw the site from outside; its exposure findings (the checks
registered with ``outside=True``) belong to the LAN devices behind the
addresses it scanned. A WAN host is joined to a LAN device:

- by an explicit pair, ``--same WAN=LAN`` (port forwarding or NAT hides the
  link from the scanner; the operator knows it), else
- by an identity both sweeps recorded that only these two hosts share: an SSH
  host key, a TLS certificate or an SNMP engine ID. A key that several LAN
  devices share (a cloned image) joins nothing.

A joined LAN device takes the WAN host's exposure findings, re-addressed to it
with the WAN address and the join reason as evidence. A LAN device with no WAN
host keeps its own (inconclusive) exposure findings, saying that no outside
address was paired with it. A WAN host joined to nothing stays in the merged
sweep as its own host. The merged sweep is recorded in the history
(command ``merge``, vantage ``lan+wan``), so report and diff work on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from profiles.errors import UsageError
from scanner import checks as checks_mod
from scanner.findings import Finding, Status
from scanner.orchestrator import HostResult
from scanner.store import HostRecord, Store, SweepRecord


def identities(host: HostRecord) -> set[str]:
    """The long-lived keys a host showed: SSH host keys, TLS certificates, SNMP engine IDs (service-free)."""
    return {f"{fp.kind}: {fp.value}" for fp in host.device.fingerprints if fp.kind.identity and fp.value}


def parse_pairs(items: Sequence[str]) -> dict[str, str]:
    """``WAN=LAN`` items -> {wan address: lan address}."""
    out: dict[str, str] = {}
    for item in items:
        wan, sep, lan = item.partition("=")
        if not sep or not wan.strip() or not lan.strip():
            raise UsageError(f"--same takes WAN=LAN address pairs, not {item!r}")
        out[wan.strip()] = lan.strip()
    return out


def join(lan: SweepRecord, wan: SweepRecord, pairs: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{wan address: (lan address, how they were joined)}."""
    lan_hosts = {h.address for h in lan.hosts}
    wan_hosts = {h.address for h in wan.hosts}
    for w, lan_address in pairs.items():
        if w not in wan_hosts:
            raise UsageError(f"--same {w}={lan_address}: {w} is not a host of WAN sweep {wan.id}")
        if lan_address not in lan_hosts:
            raise UsageError(f"--same {w}={lan_address}: {lan_address} is not a host of LAN sweep {lan.id}")
    out = {w: (lan_address, "paired with --same") for w, lan_address in pairs.items()}
    owners: dict[str, set[str]] = {}
    for host in lan.hosts:
        for ident in identities(host):
            owners.setdefault(ident, set()).add(host.address)
    seen: dict[str, set[str]] = {}
    for host in wan.hosts:
        for ident in identities(host):
            seen.setdefault(ident, set()).add(host.address)
    for host in wan.hosts:
        if host.address in out:
            continue
        for ident in sorted(identities(host)):
            lan_owner = owners.get(ident, set())
            if len(lan_owner) == 1 and seen[ident] == {host.address}:
                out[host.address] = (next(iter(lan_owner)), f"same {ident}")
                break
    taken: dict[str, str] = {}
    for w, (lan_address, _) in sorted(out.items()):
        if lan_address in taken:
            raise UsageError(f"{w} and {taken[lan_address]} both join LAN device {lan_address}: pair them with --same")
        taken[lan_address] = w
    return out


def _moved(finding: Finding, address: str, wan_address: str, how: str, wan_id: str) -> Finding:
    evidence = {**finding.evidence, "wan_address": wan_address, "joined_by": how, "wan_sweep": wan_id}
    return dataclasses.replace(finding, address=address, evidence=evidence)


def merge(store: Store, lan_id: str, wan_id: str, pairs: dict[str, str]) -> str:
    """Record the merged sweep; returns its id."""
    lan, wan = store.load(lan_id), store.load(wan_id)
    if lan.vantage != "lan" or wan.vantage != "wan":
        raise UsageError(
            f"merge takes a LAN sweep then a WAN sweep; {lan.id} is {lan.vantage!r}, {wan.id} is {wan.vantage!r}"
        )
    checks_mod.load_all()
    outside = checks_mod.OUTSIDE_CHECKS
    joined = join(lan, wan, pairs)
    by_lan = {lan_address: (w, how) for w, (lan_address, how) in joined.items()}
    wan_hosts = {h.address: h for h in wan.hosts}
    clash = {h.address for h in lan.hosts} & {w for w in wan_hosts if w not in joined}
    if clash:
        raise UsageError(f"both sweeps have host(s) {', '.join(sorted(clash))}: are they of the same vantage?")
    scope = {"merged": {"lan": lan.id, "wan": wan.id}, "targets": lan.scope.get("targets", [])}
    scope["wan_targets"] = wan.scope.get("targets", [])
    # The merged scope is both sweeps' (the WAN's public addresses and the LAN's), so the report counts both.
    scope["intervals"] = [*lan.scope.get("intervals", []), *wan.scope.get("intervals", [])]
    scope["excludes"] = lan.scope.get("excludes", []) + wan.scope.get("excludes", [])
    sweep_id = store.begin("merge", lan.mode, scope, lan.config, "lan+wan")
    for host in lan.hosts:
        findings = [f for f in host.findings if f.check_id not in outside]
        if host.address in by_lan:
            w, how = by_lan[host.address]
            carried = [f for f in wan_hosts[w].findings if f.check_id in outside]
            findings += [_moved(f, host.address, w, how, wan.id) for f in carried]
        else:
            findings += [
                dataclasses.replace(
                    f,
                    evidence={
                        **f.evidence,
                        "reason": f"no WAN address of WAN sweep {wan.id} was joined to this device "
                        "(no shared host key, certificate or engine ID; pair one with --same WAN=LAN)",
                    },
                )
                if f.status == Status.INCONCLUSIVE
                else f
                for f in host.findings
                if f.check_id in outside
            ]
        device = dataclasses.replace(host.device, wan_address=by_lan.get(host.address, (None, ""))[0])
        store.host_done(
            sweep_id,
            HostResult(host.address, host.state, host.started_at, host.finished_at, findings, device),
            host.hostname,
        )
    for host in wan.hosts:
        if host.address in joined:
            continue
        device = dataclasses.replace(host.device, vantage="wan")
        store.host_done(
            sweep_id,
            HostResult(host.address, host.state, host.started_at, host.finished_at, list(host.findings), device),
            host.hostname,
        )
    state = "complete" if lan.state == wan.state == "complete" else "interrupted"
    store.finish(sweep_id, state)
    return sweep_id
