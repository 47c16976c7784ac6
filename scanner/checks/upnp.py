"""UPnP Internet Gateway Devices (CIAJ 3.4): port mappings on request, with no password.

From the LAN an IGD is reported for information: it is how consoles and
phones open ports, and also how malware on any LAN host does. From the WAN
vantage, a UPnP device that answers M-SEARCH fails at critical: anyone on the
internet can then reach the IGD's control interface (port mappings, and the
SSDP answer itself amplifies traffic). Silence from outside passes.
"""

from __future__ import annotations

from probes.observations import JSON, Service, UpnpInfo
from scanner.checks import HostView, check
from scanner.checks.exposure import is_edge, judge_exposure
from scanner.findings import Finding, Status

IGD = "CIAJ-3.4-UPNP-IGD"
EXPOSED = "CIAJ-3.4-UPNP-EXPOSED-WAN"


def _evidence(info: UpnpInfo) -> dict[str, JSON]:
    out: dict[str, JSON] = {
        "server": info.server,
        "location": info.location,
        "igd": info.igd,
        "device": " ".join(x for x in (info.manufacturer, info.model_name, info.model_number) if x) or None,
        "friendly_name": info.friendly_name or None,
        "services": [t.rsplit(":", 2)[-2] if t.count(":") >= 2 else t for t in info.service_types][:12],
    }
    if info.description_error:
        out["description"] = f"not read: {info.description_error}"
    return out


def _answers(view: HostView) -> list[tuple[Service, dict[str, JSON]]]:
    return [(i.service, _evidence(i)) for i in view.of(UpnpInfo) if i.service is not None]


@check(IGD)
def upnp_igd(view: HostView) -> list[Finding]:
    """From the LAN: an IGD, for information (its description read, or only its SSDP answer)."""
    if view.vantage == "wan":
        return []
    return [
        view.finding(IGD, Status.INFO, service=i.service, evidence=_evidence(i))
        for i in view.of(UpnpInfo)
        if i.service is not None and (i.igd or i.description_error)
    ]


@check(EXPOSED, outside=True)
def upnp_exposed(view: HostView) -> list[Finding]:
    """From the WAN vantage: any UPnP device answering M-SEARCH."""
    return judge_exposure(view, EXPOSED, frozenset({"upnp"}), _answers, inside=is_edge(view))
