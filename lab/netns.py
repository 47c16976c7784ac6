"""Linux network-namespace plumbing for the lab (iproute2 through subprocess; root only).

Every namespace and host link the lab makes carries the prefix ``ealab``, so
teardown can find them again even when the run directory was lost.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

PREFIX = "ealab-"
HOST_LINK = "ealab0"  # the host's leg on the LAN bridge


class LabError(RuntimeError):
    """The lab could not be built or torn down; the message says what failed."""


def ip(*args: str, check: bool = True) -> str:
    """Run one `ip` command; raises LabError with its stderr on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def ip_batch(lines: Iterable[str], ns: str | None = None) -> None:
    """Run many `ip` commands in one process (`ip [-n NS] -batch -`); the first failure stops it."""
    text = "\n".join(lines) + "\n"
    argv = ["ip", *(["-n", ns] if ns else []), "-batch", "-"]
    done = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise LabError(f"ip -batch ({ns or 'host'}): {done.stderr.strip()[:500]}")


def sysctl(ns: str, values: dict[str, str]) -> None:
    """Set sysctls (dotted names) inside one namespace."""
    for key, value in values.items():
        path = "/proc/sys/" + key.replace(".", "/")
        subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > {path}"], check=True, timeout=10)


def tcp_counters(ns: str) -> dict[str, int]:
    """The namespace's TCP counters (/proc/net/snmp's Tcp line: InSegs, PassiveOpens, ...)."""
    text = subprocess.run(
        ["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    names, values = (line.split()[1:] for line in text.splitlines() if line.startswith("Tcp:"))
    return {name: int(value) for name, value in zip(names, values, strict=True)}


def namespaces() -> list[str]:
    """The lab's namespaces that exist now."""
    out = ip("netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def add_namespace(name: str) -> None:
    """Create a namespace with loopback up."""
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def pids_in(ns: str) -> list[int]:
    """PIDs of the processes that live in a namespace."""
    out = ip("netns", "pids", ns, check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def host_link_exists() -> bool:
    """Whether the host's leg into the lab still exists."""
    return subprocess.run(["ip", "link", "show", HOST_LINK], capture_output=True, check=False).returncode == 0


def host_link_mac() -> str:
    """The MAC address of the host's leg into the lab (where sweeps from the host come from)."""
    return Path(f"/sys/class/net/{HOST_LINK}/address").read_text(encoding="ascii").strip()


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_pids(pids: Iterable[int], grace: float = 3.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL whatever is left."""
    pending = [p for p in pids if alive(p)]
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while pending and time.monotonic() < end:
        time.sleep(0.05)
        pending = [p for p in pending if alive(p)]
    for pid in pending:
        _signal(pid, signal.SIGKILL)
    for pid in pending:
        _reap(pid)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def listening(pid: int) -> set[tuple[str, int]]:
    """(proto, port) pairs bound in the namespace of ``pid`` (read from /proc/PID/net).

    Empty while ``pid`` is still in our own namespace: right after the spawn it is
    `ip netns exec` before its setns, and the host's own ports must not count.
    """
    try:
        if os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            return set()
    except OSError:
        return set()
    found: set[tuple[str, int]] = set()
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            if proto.startswith("tcp") and parts[3] != "0A":  # LISTEN
                continue
            found.add((proto.rstrip("6"), int(parts[1].rsplit(":", 1)[1], 16)))
    return found
