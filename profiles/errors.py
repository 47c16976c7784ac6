"""The one error tree of edgeaudit.

It sits in the bottom layer (profiles/, docs/layout.md) so that every layer raises
from the same tree. Library exceptions (OSError, asyncio.TimeoutError, httpx.*,
asyncssh.*) are translated into these right where a probe calls the
library, with ``raise ... from exc``. The orchestrator only ever sees these.

EdgeAuditError
├── UsageError            bad command line or arguments (exit 2)
│   └── ScopeError        targets refused (too large, empty, unparsable)
├── ProfileError          a profile file that fails its schema (names file and field)
├── RegistryError         duplicate or unknown probe/check name (at import)
├── StoreError            history database problems
└── ProbeError            anything that went wrong talking to a device
    ├── Unreachable       no route, host down, network unreachable
    ├── Timeout           a deadline passed before the device answered
    ├── Refused           the port actively refused (TCP RST, ICMP port unreachable)
    ├── MalformedResponse the device answered with something we will not parse
    ├── AuthRejected      credentials rejected
    └── LockedOut         the device signalled lockout/ban: stop talking to it
"""

from __future__ import annotations


class EdgeAuditError(Exception):
    """Base of every error edgeaudit raises on purpose."""


class UsageError(EdgeAuditError):
    """The command line or its arguments are wrong."""


class ScopeError(UsageError):
    """The target scope was refused."""


class ProfileError(EdgeAuditError):
    """A profile failed to load or validate."""

    def __init__(self, file: str, field: str, message: str) -> None:
        super().__init__(f"{file}: {field}: {message}")
        self.file = file
        self.field = field
        self.message = message


class RegistryError(EdgeAuditError):
    """A probe or check name was registered twice, or is unknown."""


class StoreError(EdgeAuditError):
    """The history store could not be read or written."""


class ProbeError(EdgeAuditError):
    """A probe could not get a trustworthy answer; the reason is the message."""


class Unreachable(ProbeError):
    """The host or network could not be reached."""


class Timeout(ProbeError):
    """The device did not answer before the deadline."""


class Refused(ProbeError):
    """The service actively refused the connection."""


class MalformedResponse(ProbeError):
    """The device sent something that is not a valid protocol message."""


class AuthRejected(ProbeError):
    """Credentials were rejected."""


class LockedOut(ProbeError):
    """The device signalled a lockout or ban; stop sending attempts."""
