"""Differences between two sweeps: findings, devices, fingerprints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scanner.findings import Finding, Severity, Status
from scanner.store import HostRecord, SweepRecord

JUDGED = (Status.FAIL, Status.INCONCLUSIVE)


@dataclass
class Diff:
    """What changed from ``old`` to ``new``."""

    old: str
    new: str
    new_findings: list[Finding] = field(default_factory=list)
    resolved: list[Finding] = field(default_factory=list)
    changed: list[tuple[Finding, Finding]] = field(default_factory=list)
    new_devices: list[str] = field(default_factory=list)
    vanished_devices: list[str] = field(default_factory=list)
    fingerprint_changes: list[dict[str, Any]] = field(default_factory=list)

    def worst_new(self) -> Severity | None:
        """Highest severity among findings that newly fail."""
        fails = [f for f in self.new_findings if f.status == Status.FAIL]
        fails += [n for o, n in self.changed if n.status == Status.FAIL]
        return max((f.severity for f in fails), key=lambda s: s.rank, default=None)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "old": self.old,
            "new": self.new,
            "new_findings": [f.to_json() for f in self.new_findings],
            "resolved": [f.to_json() for f in self.resolved],
            "changed": [{"old": o.to_json(), "new": n.to_json()} for o, n in self.changed],
            "new_devices": self.new_devices,
            "vanished_devices": self.vanished_devices,
            "fingerprint_changes": self.fingerprint_changes,
        }


def _up(sweep: SweepRecord) -> dict[str, HostRecord]:
    return {h.address: h for h in sweep.hosts if h.state != "down"}


def diff(old: SweepRecord, new: SweepRecord) -> Diff:
    """Compare two sweeps host by host; only hosts present in both are compared finding by finding."""
    out = Diff(old.id, new.id)
    old_up, new_up = _up(old), _up(new)
    out.new_devices = sorted(set(new_up) - set(old_up))
    out.vanished_devices = sorted(set(old_up) - set(new_up))
    for address in out.new_devices:  # everything a new device fails is new
        out.new_findings.extend(f for f in new_up[address].findings if f.status in JUDGED)
    for address in sorted(set(old_up) & set(new_up)):
        o_host, n_host = old_up[address], new_up[address]
        o_f = {f.key: f for f in o_host.findings if f.status != Status.INFO}
        n_f = {f.key: f for f in n_host.findings if f.status != Status.INFO}
        for key, f in sorted(n_f.items()):
            if key not in o_f:
                if f.status in JUDGED:
                    out.new_findings.append(f)
            elif o_f[key].status != f.status:
                out.changed.append((o_f[key], f))
        for key, f in sorted(o_f.items()):
            if key not in n_f and f.status in JUDGED:
                out.resolved.append(f)
        o_dev, n_dev = o_host.device, n_host.device
        for fld, before, after in (
            ("profile", o_dev.profile, n_dev.profile),
            ("firmware", o_dev.firmware, n_dev.firmware),
            ("model", o_dev.model, n_dev.model),
        ):
            if before != after:
                out.fingerprint_changes.append({"address": address, "field": fld, "old": before, "new": after})
        o_fp = {f.slot: f for f in o_dev.fingerprints}
        n_fp = {f.slot: f for f in n_dev.fingerprints}
        for slot in sorted(set(o_fp) | set(n_fp)):
            was = o_fp[slot].value if slot in o_fp else None
            now = n_fp[slot].value if slot in n_fp else None
            if was != now:
                label = (o_fp.get(slot) or n_fp[slot]).label
                out.fingerprint_changes.append({"address": address, "field": label, "old": was, "new": now})
        o_svc = {s.key for s in o_dev.services}
        n_svc = {s.key for s in n_dev.services}
        if o_svc != n_svc:
            out.fingerprint_changes.append(
                {"address": address, "field": "services", "old": sorted(o_svc), "new": sorted(n_svc)}
            )
    return out
