"""Checks: read a host's observations, emit findings. Registered by id, described in catalog.yaml."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from probes.observations import JSON, Mode, Observation, PortState, ProbeFailure, Service
from profiles import Match, yamltext
from profiles.errors import RegistryError
from scanner.checks import sentences
from scanner.device import Baseline, DeviceRecord
from scanner.feeds import FeedDb
from scanner.findings import Finding, Severity, Status

ObsT = TypeVar("ObsT", bound=Observation)


@dataclass(frozen=True)
class CatalogEntry:
    """What the catalog says about one finding id."""

    id: str
    clause: str
    severity: Severity
    title: dict[str, str]
    remediation: dict[str, str]
    references: tuple[str, ...] = ()
    engine: bool = False
    evidence: dict[str, tuple[dict[str, str], ...]] = field(default_factory=dict)  # status -> sentence templates


@cache
def catalog() -> dict[str, CatalogEntry]:
    """Finding id -> catalog entry (loaded once, validated for both languages)."""
    raw: dict[str, Any] = yamltext.safe_load(
        resources.files("scanner.checks").joinpath("catalog.yaml").read_text(encoding="utf-8")
    )
    out: dict[str, CatalogEntry] = {}
    for fid, entry in raw.items():
        for part in ("title", "remediation"):
            if set(entry.get(part, {})) != {"en", "ja"}:
                raise RegistryError(f"catalog {fid}: {part} needs exactly 'en' and 'ja'")
        out[fid] = CatalogEntry(
            id=fid,
            clause=str(entry["clause"]),
            severity=Severity(entry["severity"]),
            title=dict(entry["title"]),
            remediation=dict(entry["remediation"]),
            references=tuple(entry.get("references", [])),
            engine=bool(entry.get("engine", False)),
            evidence=_templates(fid, entry.get("evidence")),
        )
    return out


def _templates(fid: str, raw: Any) -> dict[str, tuple[dict[str, str], ...]]:
    try:
        return sentences.check(fid, raw)
    except ValueError as exc:
        raise RegistryError(str(exc)) from exc


@dataclass(frozen=True)
class HostView:
    """Read-only view of one host that checks judge."""

    address: str
    mode: Mode
    observations: tuple[Observation, ...]
    match: Match | None
    today: dt.date
    max_baseline_age_days: int = 365
    max_clock_skew_s: float = 60.0
    feeds: FeedDb | None = None  # imported KEV/NVD feeds (edgeaudit feeds import)
    max_feed_age_days: int = 30
    open_services: frozenset[Service] = field(default_factory=frozenset)
    vantage: str = "lan"  # where the scanner stood: "lan" (inside) or "wan" (outside the edge)

    def of(self, cls: type[ObsT]) -> list[ObsT]:
        """Observations of one type."""
        return [o for o in self.observations if isinstance(o, cls)]

    def by_service(self, cls: type[ObsT]) -> dict[Service, list[ObsT]]:
        """Observations of one type grouped by their service, services in order (service-less ones left out)."""
        out: dict[Service, list[ObsT]] = {}
        for obs in self.of(cls):
            if obs.service is not None:
                out.setdefault(obs.service, []).append(obs)
        return dict(sorted(out.items()))

    def port_states(self, names: frozenset[str]) -> dict[Service, str]:
        """Services of these names (well-known or --ports names) -> open/closed/filtered, as probed.

        A service that answered in any way is open, whatever its port probe said."""
        out = {p.service: p.state for p in self.of(PortState) if p.service is not None and p.service.name in names}
        out |= {s: "open" for s in self.open_services if s.name in names}
        return dict(sorted(out.items()))

    def failures(self, service: Service | None = None, probe: str | None = None) -> list[ProbeFailure]:
        """Probe failures, optionally for one service and/or probe."""
        return [
            f
            for f in self.of(ProbeFailure)
            if (service is None or f.service == service) and (probe is None or f.probe == probe)
        ]

    def finding(
        self,
        check_id: str,
        status: Status,
        *,
        service: Service | None = None,
        evidence: dict[str, JSON] | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        """A finding for this host with clause and severity from the catalog."""
        key = service.key if service else None
        return make_finding(check_id, self.address, status, self.mode, key, evidence, severity)


def make_finding(
    check_id: str,
    address: str,
    status: Status,
    mode: Mode,
    service: str | None = None,
    evidence: dict[str, JSON] | None = None,
    severity: Severity | None = None,
) -> Finding:
    """A finding with clause and severity from the catalog."""
    entry = catalog()[check_id]
    return Finding(
        check_id=check_id,
        address=address,
        status=status,
        severity=severity or entry.severity,
        clause=entry.clause,
        mode=mode,
        service=service,
        evidence=evidence or {},
    )


@dataclass(frozen=True)
class SweepHost:
    """What a sweep-level check sees of one host: its address, its recorded device, and its baseline.

    ``previous``: the device as the newest earlier complete sweep from the same
    vantage recorded it; None when no earlier sweep saw this address.
    """

    address: str
    device: DeviceRecord
    previous: Baseline | None = None
    state: str = "up"  # "budget": its time budget ran out, so what it shows may be incomplete


CheckFn = Callable[[HostView], list[Finding]]
SweepCheckFn = Callable[[list[SweepHost], Mode], dict[str, list[Finding]]]
CHECKS: dict[str, CheckFn] = {}
SWEEP_CHECKS: dict[str, SweepCheckFn] = {}  # judged across hosts, after the sweep
# Exposure checks: judged from the WAN vantage, also on a named device where nothing answered
# (silence from outside is what they look for); `edgeaudit merge` carries them to the LAN device.
OUTSIDE_CHECKS: set[str] = set()


def sweep_check(check_id: str) -> Callable[[SweepCheckFn], SweepCheckFn]:
    """Register a cross-host check under a catalog id; a duplicate id fails at import."""

    def deco(fn: SweepCheckFn) -> SweepCheckFn:
        if check_id in CHECKS or check_id in SWEEP_CHECKS:
            raise RegistryError(f"check {check_id!r} registered twice")
        if check_id not in catalog():
            raise RegistryError(f"check {check_id!r} has no catalog entry")
        SWEEP_CHECKS[check_id] = fn
        return fn

    return deco


def check(check_id: str, *, outside: bool = False) -> Callable[[CheckFn], CheckFn]:
    """Register a check under a catalog id (``outside``: an exposure check, see OUTSIDE_CHECKS)."""

    def deco(fn: CheckFn) -> CheckFn:
        if check_id in CHECKS:
            raise RegistryError(f"check {check_id!r} registered twice")
        if check_id not in catalog():
            raise RegistryError(f"check {check_id!r} has no catalog entry")
        CHECKS[check_id] = fn
        if outside:
            OUTSIDE_CHECKS.add(check_id)
        return fn

    return deco


def no_pass_on_budget(findings: list[Finding]) -> list[Finding]:
    """A host whose time budget ran out passes nothing: what was not seen may be what would have failed."""
    return [
        dataclasses.replace(
            f,
            status=Status.INCONCLUSIVE,
            evidence={**f.evidence, "reason": "host budget ran out before every probe finished"},
        )
        if f.status == Status.PASS
        else f
        for f in findings
    ]


def judge_sweep(hosts: list[SweepHost], mode: Mode) -> tuple[set[str], dict[str, list[Finding]]]:
    """Run every sweep-level check: (their ids, findings per address)."""
    load_all()
    out: dict[str, list[Finding]] = {}
    cut_short = {h.address for h in hosts if h.state == "budget"}
    for fn in SWEEP_CHECKS.values():
        for address, found in fn(hosts, mode).items():
            out.setdefault(address, []).extend(no_pass_on_budget(found) if address in cut_short else found)
    return set(SWEEP_CHECKS), out


# Every check module; importing one registers its checks. Listed, not discovered, so that a
# typo fails here; imported by name, so that this package (which its modules import) imports none of them.
CHECK_MODULES = (
    "cleartext", "credentials", "dns", "drift", "exposure", "fax", "firmware", "inventory",
    "logs", "mfp", "reuse", "timesync", "upnp", "voip", "vulns", "wifi",
)  # fmt: skip
_loaded = False


def load_all() -> dict[str, CheckFn]:
    """Import every check module; verify the catalog and the registry agree."""
    global _loaded
    if not _loaded:
        for name in CHECK_MODULES:
            importlib.import_module(f"scanner.checks.{name}")
        _loaded = True
        missing = [fid for fid, e in catalog().items() if not e.engine and fid not in CHECKS | SWEEP_CHECKS]
        if missing:
            raise RegistryError(f"catalog entries without a check: {', '.join(missing)}")
    return CHECKS
