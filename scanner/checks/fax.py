"""Fax safeguards (CIAJ 4.3, 4.4): what keeps a fax from going to the wrong number or the wrong hands.

CIAJ 4.4 case 1: a destination keyed in wrongly (remedy: enter the number
twice, send only when both match); case 2: received pages taken from the tray
by someone else (remedy: F-code confidential reception into memory, printed
by the recipient). 4.3 adds misdelivery prevention in general, which the
issue's safeguards cover: only address-book destinations (direct dial
restricted), PC-fax sending restricted, and no forwarding of received faxes
to mail or folders.

Each safeguard of an MFP is one finding (its own check id): pass or fail when its profile
declares where the setting is read (an SNMP OID, read by probes.fax) and it
was read; inconclusive otherwise, with the reason and a hand-off checklist
item (the profile's own pointer to the setting when it has one) for the
installer to confirm at the device. Nothing is guessed.
"""

from __future__ import annotations

from probes.observations import JSON, FaxSetting
from profiles import FAX_SAFEGUARDS, FaxSafeguard
from scanner.checks import HostView, check
from scanner.checks.mfp import is_mfp
from scanner.findings import Finding, Status

CHECK_IDS = {
    "destination-check": "CIAJ-4.4-FAX-DESTINATION-CHECK",
    "memory-reception": "CIAJ-4.4-FAX-MEMORY-RECEPTION",
    "direct-dial": "CIAJ-4.3-FAX-DIRECT-DIAL",
    "pc-fax": "CIAJ-4.3-FAX-PC-FAX",
    "forwarding": "CIAJ-4.3-FAX-FORWARDING",
}
assert tuple(CHECK_IDS) == FAX_SAFEGUARDS


def _judge(view: HostView, name: str) -> Finding:
    check_id = CHECK_IDS[name]
    assert view.match is not None
    declared: FaxSafeguard | None = next((f for f in view.match.profile.fax_safeguards if f.name == name), None)
    read = [s for s in view.of(FaxSetting) if s.safeguard == name]
    evidence: dict[str, JSON] = {"safeguard": name, "profile": view.match.profile.id}
    value = read[0].value if read else None
    in_force = declared.judge(value) if declared is not None and value is not None else None
    if in_force is not None:
        setting = read[0]
        evidence.update(read_from=setting.read_from, value=value, community_from=setting.community_from)
        return view.finding(check_id, Status.PASS if in_force else Status.FAIL, evidence=evidence)
    evidence["checklist"] = True  # the report's hand-off checklist lists it
    if declared is not None and declared.checklist:
        evidence["where"] = dict(declared.checklist)
    if read and read[0].value is None:
        evidence["reason"] = f"the agent has no object {read[0].read_from.removeprefix('snmp ')}"
    elif read:
        evidence["reason"] = f"{read[0].read_from} answered {read[0].value!r}, a value the profile does not know"
    elif declared is not None and declared.oid:
        failures = view.failures(probe="fax-safeguards")
        evidence["reason"] = (
            f"not read: {failures[0].reason}"
            if failures
            else 'not read: no SNMP community known (give one in --auth-file with protocol = "snmp")'
        )
    else:
        evidence["reason"] = (
            "its profile knows no way to read this setting over the network (no OID declared): confirm it at hand-off"
        )
    return view.finding(check_id, Status.INCONCLUSIVE, evidence=evidence)


def _check(name: str) -> None:
    @check(CHECK_IDS[name])
    def safeguard(view: HostView) -> list[Finding]:
        """One MFP fax safeguard: read and judged, or a hand-off checklist item."""
        return [_judge(view, name)] if is_mfp(view) else []


for _name in FAX_SAFEGUARDS:
    _check(_name)
