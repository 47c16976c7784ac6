"""CIAJ 1.2 (3): the same credential or the same private key on more than one device of a sweep.

Judged after the sweep, across hosts, from what each host's record holds:
- credentials that logged in (default, weak or from the user's own list;
  anonymous FTP and the SNMP communities public/private are no secrets and are
  left out: the default-credential check reports them);
- SSH host keys and TLS certificates: two devices with the same one share a
  private key (a cloned image, a vendor-wide default key).
Per host: fail for each shared item; pass when the host had something to
compare and none of it is shared; inconclusive when it had nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict

from probes.observations import JSON, Mode
from scanner.checks import SweepHost, make_finding, sweep_check
from scanner.findings import Finding, Status

REUSED = "CIAJ-1.2-REUSED-CREDENTIAL"
NOT_SECRETS = ("anonymous", "snmp-default")  # login sources the default-credential check reports instead


@sweep_check(REUSED)
def reused(hosts: list[SweepHost], mode: Mode) -> dict[str, list[Finding]]:
    """Findings per address."""
    # One index for every kind of secret: (kind, value) -> [(address, service)]
    seen: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for host in hosts:
        for login in host.device.logins:
            if login.source not in NOT_SECRETS:
                value = json.dumps([login.username, login.password])
                seen[("credential", value)].append((host.address, login.service))
        for fp in host.device.fingerprints:
            if fp.kind.private_key and fp.value:  # the same key on two devices: a shared private key
                seen[(str(fp.kind), fp.value)].append((host.address, fp.service))
    out: dict[str, list[Finding]] = {h.address: [] for h in hosts}
    compared: dict[str, int] = defaultdict(int)
    for (kind, value), where in seen.items():
        for address in {addr for addr, _ in where}:
            compared[address] += 1
            others = sorted({addr for addr, _ in where if addr != address})
            if not others:
                continue
            services = sorted({svc for addr, svc in where if addr == address})
            evidence: dict[str, JSON] = {"kind": kind, "services": list[JSON](services), "also_on": list[JSON](others)}
            if kind == "credential":
                user, password = json.loads(value)
                evidence.update(username=user, password=password)
            else:
                evidence["fingerprint"] = value
            out[address].append(make_finding(REUSED, address, Status.FAIL, mode, services[0], evidence))
    for address, found in out.items():
        if found:
            continue
        if compared[address]:
            evidence = {"compared": compared[address], "hosts_in_sweep": len(hosts)}
            found.append(make_finding(REUSED, address, Status.PASS, mode, None, evidence))
        else:
            reason = "no credential logged in and no SSH host key or TLS certificate was read: nothing to compare"
            found.append(make_finding(REUSED, address, Status.INCONCLUSIVE, mode, None, {"reason": reason}))
    return out
