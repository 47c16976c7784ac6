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

from collections import defaultdict

from scanner.checks import SweepHost, make_finding, sweep_check
from scanner.model import JSON, Finding, Mode, Status

REUSED = "CIAJ-1.2-REUSED-CREDENTIAL"
KEY_SUFFIXES = (" host key", " certificate")


@sweep_check(REUSED)
def reused(hosts: list[SweepHost], mode: Mode) -> dict[str, list[Finding]]:
    """Findings per address."""
    creds: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)  # (user, pw) -> [(address, service)]
    keys: dict[str, list[tuple[str, str]]] = defaultdict(list)  # fingerprint -> [(address, what)]
    for host in hosts:
        for login in host.device.get("logins") or []:
            if login.get("source") not in ("anonymous", "snmp-default"):  # not secrets: DEFAULT covers them
                creds[(str(login["username"]), str(login["password"]))].append((host.address, str(login["service"])))
        for name, value in (host.device.get("fingerprints") or {}).items():
            if name.endswith(KEY_SUFFIXES) and value:
                keys[str(value)].append((host.address, name))
    out: dict[str, list[Finding]] = {}
    for host in hosts:
        found: list[Finding] = []
        compared = 0
        for (user, password), where in creds.items():
            mine = [svc for addr, svc in where if addr == host.address]
            others = sorted({addr for addr, _ in where if addr != host.address})
            if not mine:
                continue
            compared += 1
            if others:
                evidence: dict[str, JSON] = {
                    "kind": "credential",
                    "username": user,
                    "password": password,
                    "services": sorted(mine),
                    "also_on": list(others),
                }
                found.append(make_finding(REUSED, host.address, Status.FAIL, mode, mine[0], evidence))
        for value, where in keys.items():
            mine = [what for addr, what in where if addr == host.address]
            others = sorted({addr for addr, _ in where if addr != host.address})
            if not mine:
                continue
            compared += 1
            if others:
                service = mine[0].split(" ", 1)[0]
                evidence = {"kind": mine[0].split(" ", 1)[1], "fingerprint": value, "also_on": list(others)}
                found.append(make_finding(REUSED, host.address, Status.FAIL, mode, service, evidence))
        if not found:
            if compared:
                evidence = {"compared": compared, "hosts_in_sweep": len(hosts)}
                found.append(make_finding(REUSED, host.address, Status.PASS, mode, None, evidence))
            else:
                reason = "no credential logged in and no SSH host key or TLS certificate was read: nothing to compare"
                found.append(make_finding(REUSED, host.address, Status.INCONCLUSIVE, mode, None, {"reason": reason}))
        out[host.address] = found
    return out
