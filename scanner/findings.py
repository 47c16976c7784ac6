"""Findings: the verdict of one check on one device, its severity, and the masking of secrets in evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from probes.observations import JSON, Mode


class Status(StrEnum):
    """Outcome of one check on one device (or service)."""

    FAIL = "fail"
    PASS = "pass"
    INCONCLUSIVE = "inconclusive"
    INFO = "info"


class Severity(StrEnum):
    """Severity of a finding; ordered by ``rank``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Numeric order, info=0 .. critical=4."""
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


@dataclass(frozen=True)
class Finding:
    """One judged result: a check on one device (and optionally one service)."""

    check_id: str
    address: str
    status: Status
    severity: Severity
    clause: str
    mode: Mode
    service: str | None = None  # Service.key
    evidence: dict[str, JSON] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity across sweeps: (address, check id, service)."""
        return (self.address, self.check_id, self.service or "")

    def to_json(self) -> dict[str, JSON]:
        """JSON form (secrets unmasked: mask at render time)."""
        return {
            "id": self.check_id,
            "address": self.address,
            "status": str(self.status),
            "severity": str(self.severity),
            "clause": self.clause,
            "mode": str(self.mode),
            "service": self.service,
            "evidence": self.evidence,
        }

    @classmethod
    def from_json(cls, data: dict[str, JSON]) -> Finding:
        """Inverse of ``to_json``."""
        return cls(
            check_id=data["id"],
            address=data["address"],
            status=Status(data["status"]),
            severity=Severity(data["severity"]),
            clause=data["clause"],
            mode=Mode(data["mode"]),
            service=data.get("service"),
            evidence=dict(data.get("evidence") or {}),
        )


SECRET_KEYS = frozenset({"password", "community", "secret", "passphrase"})


def mask_secret(value: str) -> str:
    """Mask a secret as its first character plus its length, e.g. ``a*** (5)``."""
    if not value:
        return "(empty)"
    return f"{value[0]}*** ({len(value)})"


def mask_evidence(evidence: JSON) -> JSON:
    """Copy of evidence with values under secret-looking keys masked, recursively."""
    if isinstance(evidence, dict):
        out: dict[str, JSON] = {}
        for k, v in evidence.items():
            if k in SECRET_KEYS and isinstance(v, str):
                out[k] = mask_secret(v)
            else:
                out[k] = mask_evidence(v)
        return out
    if isinstance(evidence, list):
        return [mask_evidence(v) for v in evidence]
    return evidence
