"""Protocol probes behind one typed seam (see probes.base)."""

from __future__ import annotations

import importlib

# Every probe module; importing one registers its probes. Listed, not
# discovered, so that a typo fails here and not silently at scan time.
PROBE_MODULES = (
    "tcp", "banner", "http", "snmp", "sip.options", "ntp", "l2", "ssh_hostkey",
    "login.ssh", "login.telnet", "login.http", "login.ftp", "login.snmp", "login.cli_read", "pjl",
    "sip.sipcall", "sip.sip_secret", "dns_query", "upnp", "dhcp", "ipp", "fax",
)  # fmt: skip

_loaded = False


def load_all() -> None:
    """Import every probe module once, filling the registry."""
    global _loaded
    if _loaded:
        return
    for name in PROBE_MODULES:
        importlib.import_module(f"probes.{name}")
    _loaded = True
