"""Target specifications -> a bounded, explicit scan scope.

Accepted forms (for targets and --exclude alike): CIDR (``10.0.0.0/24``,
``2001:db8::/120``), ranges (``10.0.0.5-10.0.0.20`` or ``10.0.0.5-20``), single
IPv4/IPv6 literals, hostnames (resolved once; the answer is recorded), and
``@file`` with one spec per line (``#`` starts a comment). Nothing is ever
added implicitly: the scope is exactly what was named.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from profiles.errors import ScopeError

LARGE_SCOPE = 65_536  # more than this needs --allow-large
HARD_LIMIT = 1 << 24  # never, even with --allow-large

Interval = tuple[int, int, int]  # (ip version, first, last) inclusive

Resolver = Callable[[str], list[str]]


def system_resolver(name: str) -> list[str]:
    """Resolve a hostname once with the system resolver; addresses in answer order."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ScopeError(f"cannot resolve {name!r}: {exc.strerror}") from exc
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


@dataclass
class Scope:
    """The resolved scope: included minus excluded address intervals."""

    targets: list[str]
    excludes: list[str]
    intervals: list[Interval]
    resolved: dict[str, list[str]] = field(default_factory=dict)
    origin: str = ""  # where the targets came from when not named one by one (--from-nmap)

    @property
    def count(self) -> int:
        """Number of addresses in scope."""
        return sum(last - first + 1 for _, first, last in self.intervals)

    def __iter__(self) -> Iterator[str]:
        for version, first, last in self.intervals:
            cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
            for value in range(first, last + 1):
                yield str(cls(value))

    def __contains__(self, address: object) -> bool:
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            return False
        value = int(ip)
        return any(v == ip.version and first <= value <= last for v, first, last in self.intervals)

    def hostname_of(self, address: str) -> str | None:
        """The hostname the user named that resolved to this address, if any."""
        for name, addrs in self.resolved.items():
            if address in addrs:
                return name
        return None

    def describe(self) -> str:
        """One-line human summary, shown before a sweep starts."""
        named = self.origin or ", ".join(self.targets)
        parts = [f"{self.count} address(es) from {named}"]
        if self.excludes:
            parts.append(f"excluding {', '.join(self.excludes)}")
        for name, addrs in self.resolved.items():
            parts.append(f"{name} -> {', '.join(addrs)}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, object]:
        """JSON form, enough to rebuild the scope for --resume."""
        return {
            "targets": self.targets,
            "excludes": self.excludes,
            "intervals": [list(i) for i in self.intervals],
            "resolved": self.resolved,
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Scope:
        """Inverse of ``to_json``."""
        intervals = [(int(v), int(a), int(b)) for v, a, b in data["intervals"]]  # type: ignore[attr-defined]
        return cls(
            targets=list(data["targets"]),  # type: ignore[call-overload]
            excludes=list(data["excludes"]),  # type: ignore[call-overload]
            intervals=intervals,
            resolved=dict(data.get("resolved") or {}),  # type: ignore[call-overload]
            origin=str(data.get("origin") or ""),
        )


def _expand_files(specs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for raw in specs:
        spec = raw.strip()
        if not spec:
            continue
        if spec.startswith("@"):
            path = Path(spec[1:])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ScopeError(f"cannot read target file {path}: {exc.strerror}") from exc
            for raw_line in text.splitlines():
                line = raw_line.split("#", 1)[0].strip()
                if line:
                    out.extend(p for p in line.replace(",", " ").split() if p)
        else:
            out.extend(p for p in spec.split(",") if p.strip())
    return out


def _ip_interval(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Interval:
    return (addr.version, int(addr), int(addr))


def parse_spec(spec: str, resolver: Resolver, resolved: dict[str, list[str]]) -> list[Interval]:
    """Parse one target spec (no ``@file``) into address intervals."""
    spec = spec.strip()
    if "/" in spec:
        try:
            net = ipaddress.ip_network(spec, strict=False)
        except ValueError as exc:
            raise ScopeError(f"not a network: {spec!r} ({exc})") from exc
        first, last = int(net.network_address), int(net.broadcast_address)
        # Never address an IPv4 network's own or broadcast address: a UDP probe
        # there would be a broadcast.
        if net.version == 4 and net.prefixlen <= 30:
            first, last = first + 1, last - 1
        return [(net.version, first, last)]
    if "-" in spec and _is_ip(spec.split("-", 1)[0].strip()):
        left, right = spec.split("-", 1)
        try:
            start = ipaddress.ip_address(left.strip())
        except ValueError as exc:
            raise ScopeError(f"not a range: {spec!r}") from exc
        right = right.strip()
        try:
            if start.version == 4 and right.isdigit():
                octets = str(start).split(".")
                end: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
                    ".".join([*octets[:3], right])
                )
            else:
                end = ipaddress.ip_address(right)
        except ValueError as exc:
            raise ScopeError(f"not a range: {spec!r}") from exc
        if end.version != start.version or int(end) < int(start):
            raise ScopeError(f"range end before start or mixed families: {spec!r}")
        return [(start.version, int(start), int(end))]
    try:
        return [_ip_interval(ipaddress.ip_address(spec))]
    except ValueError:
        pass
    if not _looks_like_hostname(spec):
        raise ScopeError(f"not an address, network, range or hostname: {spec!r}")
    addrs = resolver(spec)
    if not addrs:
        raise ScopeError(f"{spec!r} resolved to no address")
    resolved[spec] = addrs
    return [_ip_interval(ipaddress.ip_address(a)) for a in addrs]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _looks_like_hostname(spec: str) -> bool:
    if not spec or len(spec) > 253 or ":" in spec:
        return False
    labels = spec.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):
        return False
    return all(
        label and len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) and label[0] != "-"
        for label in labels
    )


def _merge(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for version, first, last in sorted(intervals):
        if out and out[-1][0] == version and first <= out[-1][2] + 1:
            pv, pf, pl = out[-1]
            out[-1] = (pv, pf, max(pl, last))
        else:
            out.append((version, first, last))
    return out


def _subtract(include: list[Interval], exclude: list[Interval]) -> list[Interval]:
    result: list[Interval] = []
    for version, first, last in include:
        pieces = [(first, last)]
        for ev, ef, el in exclude:
            if ev != version:
                continue
            next_pieces: list[tuple[int, int]] = []
            for pf, pl in pieces:
                if el < pf or ef > pl:
                    next_pieces.append((pf, pl))
                    continue
                if pf < ef:
                    next_pieces.append((pf, ef - 1))
                if el < pl:
                    next_pieces.append((el + 1, pl))
            pieces = next_pieces
        result.extend((version, a, b) for a, b in pieces)
    return result


def build_scope(
    targets: Sequence[str],
    excludes: Sequence[str] = (),
    *,
    allow_large: bool = False,
    resolver: Resolver = system_resolver,
    origin: str = "",
) -> Scope:
    """Parse targets and exclusions into a scope, refusing empty or oversized ones."""
    target_specs = _expand_files(targets)
    exclude_specs = _expand_files(excludes)
    if not target_specs:
        raise ScopeError("no targets given: edgeaudit scans only what you name")
    resolved: dict[str, list[str]] = {}
    include: list[Interval] = []
    for spec in target_specs:
        include.extend(parse_spec(spec, resolver, resolved))
    exclude: list[Interval] = []
    for spec in exclude_specs:
        exclude.extend(parse_spec(spec, resolver, {}))
    intervals = _subtract(_merge(include), _merge(exclude))
    scope = Scope(target_specs, exclude_specs, intervals, resolved, origin)
    if scope.count == 0:
        raise ScopeError("the exclusions leave no address to scan")
    if scope.count > HARD_LIMIT:
        raise ScopeError(f"{scope.count} addresses is more than edgeaudit will ever sweep ({HARD_LIMIT})")
    if scope.count > LARGE_SCOPE and not allow_large:
        raise ScopeError(
            f"{scope.count} addresses is more than {LARGE_SCOPE}; narrow the targets or pass --allow-large"
        )
    return scope
