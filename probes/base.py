"""The probe seam: one async method, a registry, deadlines and error mapping.

A probe is a class with a unique ``name``, a ``risk`` class, a ``phase`` and
the service names it needs. ``run`` takes a target and a context and returns
typed observations (probes.observations). Probes translate their library's
exceptions into profiles.errors at the call site (``map_errors``); anything a
probe raises becomes a ProbeFailure observation, i.e. ``inconclusive``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import importlib
import ssl
import sys
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from probes.observations import Mode, Observation, Risk, Service
from probes.options import OptionSet
from profiles.errors import MalformedResponse, ProbeError, Refused, RegistryError, Timeout, Unreachable

if TYPE_CHECKING:
    from probes.login.ledger import Ledger
    from profiles import Profile


S = TypeVar("S", bound=OptionSet)


class Phase(StrEnum):
    """When a probe runs for a host; each phase sees the previous phases' observations."""

    PRESENCE = "presence"  # on the local link: does the address answer ARP at all? (root only)
    DISCOVERY = "discovery"  # is anything there? (TCP connect, UDP service probes, ICMP)
    FINGERPRINT = "fingerprint"  # what is it? (banners, HTTP, ...)
    READ = "read"  # the operator's own read-only logins (--auth-file): before any guessing, so they meet a fresh cap
    ASSESS = "assess"  # probes that need the profile (credentials, intrusive extras)


PHASE_ORDER = (Phase.PRESENCE, Phase.DISCOVERY, Phase.FINGERPRINT, Phase.READ, Phase.ASSESS)

# Well-known service names for discovery ports.
TCP_PORTS: dict[int, str] = {
    21: "ftp",
    22: "ssh",
    23: "telnet",
    80: "http",
    443: "https",
    445: "smb",
    631: "ipp",
    5060: "sip",
    5061: "sips",
    8080: "http",
    8443: "https",
    9100: "jetdirect",
}


@dataclass(frozen=True)
class Timeouts:
    """Per-operation timeouts (seconds); every await is bounded by one of these."""

    connect: float = 1.5
    read: float = 3.0
    login: float = 8.0  # a login's verdict: real PAM stacks refuse after 2-4.3 s (pam_faildelay, vsftpd's delay)
    probe: float = 10.0  # absolute deadline for one probe run, retries included
    host: float = 120.0  # budget for one host, all phases


@dataclass(frozen=True)
class ProbeConfig:
    """Sweep-wide settings that probes read: where the services are, and each probe's own option set."""

    tcp_ports: tuple[int, ...] = tuple(TCP_PORTS)
    port_names: tuple[tuple[int, str], ...] = ()  # overrides, e.g. ((2222, "ssh"),)
    privileged: bool = False  # root: ARP and ICMP allowed
    snmp_port: int = 161
    sip_port: int = 5060
    ntp_port: int = 123
    attempt_ledger: str | None = None  # SQLite file shared by sweeps: failures, refused pairs (None: per process)
    sets: tuple[OptionSet, ...] = ()  # the probes' option sets (probes.options); a set not here has its defaults

    def __post_init__(self) -> None:
        kinds = [type(s) for s in self.sets]
        if len(set(kinds)) != len(kinds):
            raise ValueError("ProbeConfig: an option set given twice")
        # in name order, so two configs holding the same sets are equal however they were built
        object.__setattr__(self, "sets", tuple(sorted(self.sets, key=lambda s: type(s).name)))

    def options(self, cls: type[S]) -> S:
        """This sweep's instance of an option set (its defaults when the sweep has none)."""
        for s in self.sets:
            if type(s) is cls:
                return s
        return cls()

    def with_options(self, *sets: OptionSet) -> ProbeConfig:
        """A copy with these option sets in place of the same sets' current values."""
        kinds = {type(s) for s in sets}
        return replace(self, sets=(*(s for s in self.sets if type(s) not in kinds), *sets))

    def service_name(self, port: int) -> str:
        """The protocol expected on a TCP port: user override, else the well-known name."""
        return dict(self.port_names).get(port) or TCP_PORTS.get(port, "unknown")


@dataclass(frozen=True)
class ProbeTarget:
    """Where one probe run is aimed."""

    address: str
    service: Service | None = None


@dataclass(frozen=True)
class HostSnapshot:
    """What earlier phases found on a host; probes pick their services from it."""

    address: str
    services: frozenset[Service]
    observations: tuple[Observation, ...]
    profile: Profile | None = None

    def services_named(self, names: frozenset[str]) -> list[Service]:
        """Open services whose name is in ``names``, sorted."""
        return sorted(s for s in self.services if s.name in names)


@dataclass(frozen=True)
class ProbeContext:
    """Everything a probe may use besides its target. Immutable."""

    timeouts: Timeouts
    mode: Mode
    config: ProbeConfig
    deadline: float  # absolute, event-loop time
    profile: Profile | None = None
    host: HostSnapshot | None = None  # what earlier phases found on the host (observations are read-only)
    ledger: Ledger | None = None  # the sweep's attempt ledger (the engine's): login probes refuse to run without it

    def remaining(self) -> float:
        """Seconds left before this probe's deadline (never negative)."""
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    def budget(self, op_timeout: float) -> float:
        """An operation's timeout, capped by the time left on the deadline."""
        left = self.remaining()
        if left <= 0:
            raise Timeout("probe deadline passed")
        return min(op_timeout, left)


@dataclass(frozen=True, slots=True)
class Screened:
    """What a screen made of one address of the scope.

    ``down`` set: the screen decided the address is down, and why (no host is started for it).
    ``observations``: what it saw of an address that answered (the host starts with them).
    ``screened`` False: this screen cannot judge the address (not on its link, no socket): the
    host goes through the per-host probes, the screened probe's per-host form included.
    """

    address: str
    observations: tuple[Observation, ...] = ()
    down: str | None = None
    screened: bool = True


class Screen(Protocol):
    """The sweep-wide form of one per-host probe: one paced sender for the whole scope.

    Each address comes out once; memory stays bounded by the screen's window, whatever the
    scope's size (a /16 of dead addresses costs no host, no probe run and no task each)."""

    def screen(self, addresses: Iterable[str]) -> AsyncGenerator[Screened, None]:
        """Judge the addresses, yielding each as soon as it is judged."""
        ...


class Probe(abc.ABC):
    """Base class of every probe. Subclasses are registered with ``@register``."""

    name: ClassVar[str]
    risk: ClassVar[Risk] = Risk.SAFE
    phase: ClassVar[Phase] = Phase.FINGERPRINT
    services: ClassVar[frozenset[str]] = frozenset()
    description: ClassVar[str] = ""
    deadline_s: ClassVar[float | None] = None  # a longer deadline than --probe-timeout (paced logins)
    # Slow libraries the probe imports lazily (asyncssh: half a second): a sweep imports them off the loop
    # before its first host, so the first probe to need one does not stall every other.
    imports: ClassVar[tuple[str, ...]] = ()
    # One UDP exchange per host whose targets need nothing but the sweep's settings: the sweep runs it
    # ahead of the host tasks, for many addresses at once over its shared sockets (scanner.pipeline).
    sweep_wide: ClassVar[bool] = False

    def deadline(self, timeouts: Timeouts, config: ProbeConfig, profile: Profile | None) -> float:
        """Seconds this probe may run on one target: --probe-timeout, or its own longer ``deadline_s``."""
        return max(timeouts.probe, self.deadline_s or 0.0)

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Where to run on this host: by default, each open service this probe needs."""
        return host.services_named(self.services)

    def screen(self, config: ProbeConfig) -> Screen | None:
        """A sweep-wide form of this probe for the sweep (PRESENCE probes), or None: per host only."""
        return None

    @abc.abstractmethod
    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Probe one target and return what was observed; raise ProbeError when unsure."""


@dataclass
class Registry:
    """Name -> probe class. A duplicate name fails at import, loudly."""

    probes: dict[str, type[Probe]] = field(default_factory=dict)

    def add(self, cls: type[Probe]) -> None:
        """Register a probe class under its ``name``."""
        name = getattr(cls, "name", None)
        if not name:
            raise RegistryError(f"probe {cls.__qualname__} has no name")
        if name in self.probes:
            raise RegistryError(f"probe name {name!r} registered twice ({self.probes[name].__module__})")
        self.probes[name] = cls

    def get(self, name: str) -> type[Probe]:
        """The probe class registered as ``name``."""
        try:
            return self.probes[name]
        except KeyError as exc:
            raise RegistryError(f"no probe named {name!r}") from exc

    def in_phase(self, phase: Phase) -> list[type[Probe]]:
        """Probes of one phase, in name order (deterministic)."""
        return [self.probes[n] for n in sorted(self.probes) if self.probes[n].phase == phase]


REGISTRY = Registry()

P = TypeVar("P", bound=type[Probe])


async def import_off_loop(names: Sequence[str], ctx: ProbeContext) -> None:
    """Import slow libraries in a worker thread, within the probe's connect budget, those not loaded:
    for libraries only some answers need (httpx, once an SSDP answer names a description to fetch),
    which a sweep does not import ahead (``Probe.imports``) lest every sweep pay for them."""
    missing = [name for name in names if name not in sys.modules]
    if not missing:
        return

    def load() -> None:
        for name in missing:
            importlib.import_module(name)

    try:
        async with asyncio.timeout(ctx.budget(ctx.timeouts.connect)):
            await asyncio.to_thread(load)
    except TimeoutError as exc:
        raise Timeout(f"importing {', '.join(missing)} took over the probe's budget") from exc


def register(cls: P) -> P:
    """Class decorator: add a probe to the global registry."""
    REGISTRY.add(cls)
    return cls


@contextlib.contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Translate stdlib network exceptions into profiles.errors, keeping the cause."""
    try:
        yield
    except ProbeError:
        raise
    except (TimeoutError, OSError, ssl.SSLError, UnicodeError) as exc:
        raise probe_error(exc, what) from exc


def probe_error(exc: BaseException, what: str) -> ProbeError:
    """The ProbeError a stdlib network exception stands for (``map_errors``, and callbacks that cannot raise)."""
    if isinstance(exc, ProbeError):
        return exc
    if isinstance(exc, TimeoutError):
        return Timeout(f"{what}: no answer before the deadline")
    if isinstance(exc, ConnectionRefusedError):
        return Refused(f"{what}: connection refused")
    if isinstance(exc, ssl.SSLError):
        return MalformedResponse(f"{what}: TLS error: {exc.reason or exc}")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return Unreachable(f"{what}: connection reset")
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
            return Unreachable(f"{what}: {exc.strerror}")
        if exc.errno == errno.ECONNREFUSED:
            return Refused(f"{what}: connection refused")
        return Unreachable(f"{what}: {exc.strerror or exc}")
    if isinstance(exc, UnicodeError):
        return MalformedResponse(f"{what}: undecodable text")
    raise TypeError(f"not a network error: {exc!r}")
