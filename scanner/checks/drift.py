"""CIAJ 3.4: settings changed between sweeps (configuration drift).

CIAJ part 3's takeover cases begin with settings changed from outside: a
different DNS server handed to users, management opened to the internet, a
replaced certificate. With history, each sweep compares a device with its
record in the newest earlier complete sweep from the same vantage, setting by
setting, and only where both sweeps knew the setting (the config hash needs
authenticated mode in both, for instance). A change fails until the next
sweep records the new state as the baseline: the finding asks the operator to
confirm the change was theirs, it does not claim an attack.

No earlier sweep, or another device (MAC address) at the address, is
inconclusive: there is nothing to compare with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from probes.observations import JSON, Mode
from scanner.checks import SweepHost, make_finding, sweep_check
from scanner.checks.exposure import ADMIN_SERVICES
from scanner.device import DeviceRecord, Settings
from scanner.findings import Finding, Severity, Status

DRIFT = "CIAJ-3.4-CONFIG-DRIFT"
SETTINGS: tuple[tuple[str, Severity, Callable[[Settings], str | tuple[str, ...] | None]], ...] = (
    # (setting name, severity of a change, its value in a record's settings)
    ("configuration (hash of the read-only config output)", Severity.HIGH, lambda s: s.config_sha256),
    ("DNS servers in the configuration", Severity.HIGH, lambda s: s.dns_servers),
    ("DNS servers handed out by DHCP", Severity.HIGH, lambda s: s.dhcp_dns),
    ("Wi-Fi networks and their security", Severity.HIGH, lambda s: s.wifi),
)


def settings_of(device: DeviceRecord) -> dict[str, tuple[JSON, Severity]]:
    """What a device record says that drift compares: setting name -> (value, severity of a change)."""
    out: dict[str, tuple[JSON, Severity]] = {}
    if device.firmware:
        out["firmware"] = (device.firmware, Severity.MEDIUM)
    admin = sorted(f"{s.key} {s.name}" for s in device.services if s.name in ADMIN_SERVICES)
    out["administration services"] = (admin, Severity.HIGH)
    for fp in device.fingerprints:
        if fp.kind.private_key and fp.value:  # a replaced key or certificate
            out[fp.label] = (fp.value, Severity.HIGH)
    for name, severity, read in SETTINGS:
        value = read(device.settings)
        if value is not None:
            out[name] = (list(value) if isinstance(value, tuple) else value, severity)
    return out


def _severity(setting: str, old: JSON, new: JSON, default: Severity) -> Severity:
    """Closing administration services is still a change to confirm, but a small one."""
    if setting == "administration services" and isinstance(old, list) and isinstance(new, list):
        return default if set(new) - set(old) else Severity.LOW
    return default


def judge(host: SweepHost, mode: Mode) -> Finding:
    """One finding for one host against its baseline."""
    if host.previous is None:
        reason = "no earlier complete sweep from this vantage saw this address: this sweep is its baseline"
        return make_finding(DRIFT, host.address, Status.INCONCLUSIVE, mode, None, {"reason": reason})
    before, now = host.previous.device, host.device
    since: dict[str, JSON] = {
        "previous_sweep": host.previous.sweep_id,
        "previous_at": dt.datetime.fromtimestamp(host.previous.started_at, dt.UTC).isoformat(timespec="seconds"),
    }
    if before.mac and now.mac and before.mac != now.mac:
        reason = f"another device answers at this address (MAC {before.mac} then, {now.mac} now)"
        return make_finding(DRIFT, host.address, Status.INCONCLUSIVE, mode, None, {**since, "reason": reason})
    old, new = settings_of(before), settings_of(now)
    compared = sorted(set(old) & set(new))
    changes: list[JSON] = []
    worst = Severity.INFO
    for name in compared:
        (was, default), (is_, _) = old[name], new[name]
        if was != is_:
            sev = _severity(name, was, is_, default)
            changes.append({"setting": name, "old": was, "new": is_})
            worst = max(worst, sev, key=lambda s: s.rank)
    evidence: dict[str, JSON] = {**since, "compared": list[JSON](compared)}
    if changes:
        evidence["changes"] = changes
        return make_finding(DRIFT, host.address, Status.FAIL, mode, None, evidence, worst)
    return make_finding(DRIFT, host.address, Status.PASS, mode, None, evidence)


@sweep_check(DRIFT)
def drift(hosts: list[SweepHost], mode: Mode) -> dict[str, list[Finding]]:
    """Findings per address."""
    return {h.address: [judge(h, mode)] for h in hosts}
