"""`edgeaudit lab up|down|status|exec|tamper`: the lab twin on this machine (root; Linux namespaces).

Layout: a switch namespace holds the bridges ``br-lan`` and ``br-wan``; each
node of lab/topology.yaml is a namespace with a veth per segment; the host gets
one leg (``ealab0``) on the LAN so ``edgeaudit scan 198.18.0.0/24`` works from
the host. Every daemon's config, log and PID live under one run directory, and
``state.json`` there lists what runs. ``down`` works from that file and also
from the namespaces themselves (their prefix and ``ip netns pids``), so it
cleans up after a crash that lost the state file, and it is idempotent.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab import daemons, fleet, netns
from lab.netns import LabError

TOPOLOGY = Path(__file__).with_name("topology.yaml")
DEFAULT_RUN = Path(os.environ.get("EDGEAUDIT_LAB_RUN", daemons.REPO / ".lab-run"))
SWITCH = netns.PREFIX + "sw"
READY_TIMEOUT = 30.0


@dataclass
class Proc:
    """One daemon the lab started."""

    node: str
    daemon: str
    pid: int
    log: str
    ports: list[tuple[str, int]] = field(default_factory=list)  # must be bound before the daemon counts as up


@dataclass
class State:
    """What `lab up` built; saved as state.json in the run directory."""

    started: float
    lan: str
    wan: str
    host: str
    nodes: dict[str, dict[str, str]]  # node -> segment -> address
    procs: list[Proc] = field(default_factory=list)
    fleet: list[str] = field(default_factory=list)  # addresses of fleet devices
    topology_sha256: str = ""  # of the topology file it was built from: a changed file rebuilds the lab

    def save(self, run: Path) -> None:
        """Write state.json atomically."""
        tmp = run / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        tmp.replace(run / "state.json")

    @classmethod
    def load(cls, run: Path) -> State | None:
        """Read state.json; None when absent or unreadable."""
        try:
            data = json.loads((run / "state.json").read_text(encoding="utf-8"))
            data["procs"] = [
                Proc(**{**p, "ports": [(str(a), int(b)) for a, b in p.get("ports", [])]}) for p in data.get("procs", [])
            ]
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


def load_topology(path: Path = TOPOLOGY) -> dict[str, Any]:
    """The lab topology as data (lab/topology.yaml)."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _need_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the namespace lab needs root (network namespaces, bridges, daemons on port < 1024)")
    if shutil.which("ip") is None:
        raise LabError("missing packages: apt-get install --no-install-recommends iproute2")


def up(run: Path = DEFAULT_RUN, topology: Path = TOPOLOGY, fleet_size: int = 0) -> State:
    """Build the lab and start every daemon; on any failure tear everything down and raise."""
    _need_root()
    current = State.load(run)
    digest = hashlib.sha256(topology.read_bytes()).hexdigest()
    same = current is not None and current.topology_sha256 == digest and len(current.fleet) == fleet_size
    if current is not None and same and not problems(current):
        return current
    down(run)
    run.mkdir(parents=True, exist_ok=True)
    topo = load_topology(topology)
    lan, wan = topo["segments"]["lan"], topo["segments"]["wan"]
    state = State(time.time(), lan["subnet"], wan["subnet"], lan["host"], {}, topology_sha256=digest)
    try:
        _build(topo, state)
        state.save(run)
        for name, node in topo["nodes"].items():
            _start_node(run, name, node, state)
            state.save(run)
        if fleet_size:
            _start_fleet(run, state, fleet_size)
            state.save(run)
        _wait_ready(run, state)
    except BaseException:
        down(run)
        raise
    return state


def _build(topo: dict[str, Any], state: State) -> None:
    segs = topo["segments"]
    netns.add_namespace(SWITCH)
    lan_len = ipaddress.ip_network(segs["lan"]["subnet"]).prefixlen
    netns.ip_batch(
        [
            f"link add {netns.HOST_LINK} type veth peer name host0 netns {SWITCH}",
            f"addr add {segs['lan']['host']}/{lan_len} dev {netns.HOST_LINK}",
            f"link set {netns.HOST_LINK} up",
        ]
    )
    switch = []
    for seg in segs.values():
        switch += [f"link add {seg['bridge']} type bridge", f"link set {seg['bridge']} up"]
    switch.append(f"link set host0 master {segs['lan']['bridge']} up")
    per_node: dict[str, list[str]] = {}
    for i, (name, node) in enumerate(topo["nodes"].items()):
        ns = netns.PREFIX + name
        netns.add_namespace(ns)
        state.nodes[name] = dict(node["interfaces"])
        for j, (seg_name, addr) in enumerate(node["interfaces"].items()):
            seg = segs[seg_name]
            plen = ipaddress.ip_network(seg["subnet"]).prefixlen
            sw_side = f"n{i}{seg_name[0]}"
            switch += [
                f"link add {sw_side} type veth peer name eth{j} netns {ns}",
                f"link set {sw_side} master {seg['bridge']} up",
            ]
            per_node.setdefault(ns, []).extend([f"addr add {addr}/{plen} dev eth{j}", f"link set eth{j} up"])
    netns.ip_batch(switch, SWITCH)
    for ns, lines in per_node.items():
        netns.ip_batch(lines, ns)


def _spawn(run: Path, ns: str, node: str, name: str, launch: daemons.Launch) -> Proc:
    log = run / node / f"{name}.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *launch.argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=launch.environment(),
            cwd=daemons.REPO,
            start_new_session=True,
        )
    return Proc(node, name, proc.pid, str(log), sorted(launch.ports))


def _start_node(run: Path, name: str, node: dict[str, Any], state: State) -> None:
    directory = run / name
    directory.mkdir(parents=True, exist_ok=True)
    ctx = daemons.NodeContext(name, directory, dict(node["interfaces"]))
    for daemon, launch in daemons.launches(ctx, node):
        state.procs.append(_spawn(run, netns.PREFIX + name, name, daemon, launch))


def _start_fleet(run: Path, state: State, size: int) -> None:
    directory = run / "fleet"
    directory.mkdir(parents=True, exist_ok=True)
    ns = fleet.NAMESPACE
    devices = fleet.devices(size)
    netns.add_namespace(ns)
    prefixlen = ipaddress.ip_network(state.lan).prefixlen
    switch_lines, fleet_lines = fleet.plumbing(ns, devices, prefixlen, scanner=(state.host, netns.host_link_mac()))
    netns.ip_batch(switch_lines, SWITCH)
    netns.ip_batch(fleet_lines, ns)
    netns.sysctl(
        ns, {"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2", **fleet.icmp_sysctls(size)}
    )
    launch = daemons.emulator_launch(devices, directory / "fleet.yaml", directory / "emulator.pid", set())
    state.procs.append(_spawn(run, ns, "fleet", "emulator", launch))
    state.fleet = [str(d["address"]) for d in devices]


def _wait_ready(run: Path, state: State) -> None:
    """Wait until every daemon's ports are bound; a daemon that exits fails the lab with its log."""
    end = time.monotonic() + READY_TIMEOUT
    pending = list(state.procs)
    while True:
        for proc in state.procs:
            if not netns.alive(proc.pid):
                raise LabError(f"{proc.node}/{proc.daemon} exited at start:\n{_tail(Path(proc.log))}")
        pending = [p for p in pending if not set(p.ports) <= netns.listening(p.pid)]
        fleet_ready = not state.fleet or (run / "fleet" / "emulator.pid").exists()
        if not pending and fleet_ready:
            return
        if time.monotonic() > end:
            names = [f"{p.node}/{p.daemon}" for p in pending] or ["fleet"]
            raise LabError(f"not ready after {READY_TIMEOUT:.0f} s: {', '.join(names)}")
        time.sleep(0.1)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def down(run: Path = DEFAULT_RUN) -> list[str]:
    """Stop every lab process and delete every lab namespace and link. Idempotent."""
    _need_root()
    removed: list[str] = []
    state = State.load(run)
    if state is not None:
        netns.stop_pids(p.pid for p in state.procs)
        removed += [f"{p.node}/{p.daemon} (pid {p.pid})" for p in state.procs]
    for ns in netns.namespaces():
        leftovers = netns.pids_in(ns)
        netns.stop_pids(leftovers, grace=1.0)
        removed += [f"{ns}: pid {p}" for p in leftovers]
    for ns in netns.namespaces():
        netns.ip("netns", "del", ns, check=False)
        removed.append(f"namespace {ns}")
    if netns.host_link_exists():
        netns.ip("link", "del", netns.HOST_LINK, check=False)
        removed.append(f"link {netns.HOST_LINK}")
    (run / "state.json").unlink(missing_ok=True)
    return removed


def run_in(node: str, command: list[str]) -> int:
    """Run a command inside a lab node's namespace (its exit code); the node must exist and the lab be up."""
    _need_root()
    if not command:
        raise LabError("lab exec: no command given")
    if node not in load_topology()["nodes"]:
        raise LabError(f"lab exec: no node {node!r} in the topology")
    ns = netns.PREFIX + node
    if ns not in netns.namespaces():
        raise LabError(f"lab exec: namespace {ns} does not exist (run `edgeaudit lab up`)")
    return subprocess.run(["ip", "netns", "exec", ns, *command], check=False).returncode


TAMPERABLE = ("dns_servers", "ntp_servers", "logging", "wifi")  # settings an emulated device can change in place


def tamper(run: Path, node: str, changes: dict[str, Any], wait_s: float = 5.0) -> None:
    """Change an emulated node's settings while it runs, as an intruder with its admin password would.

    Rewrites the node's emulator file and sends the emulator (a process the lab
    started: its PID is in state.json) SIGHUP; returns once the emulator's log
    says it took the new settings. For the drift demo and tests (CIAJ 3.4).
    """
    import signal

    from lab.emulator.spec import DeviceSpec

    state = State.load(run)
    if state is None:
        raise LabError("lab tamper: the lab is not up")
    unknown = sorted(set(changes) - set(TAMPERABLE))
    if unknown or not changes:
        raise LabError(f"lab tamper: give SETTING=VALUE with SETTING one of {', '.join(TAMPERABLE)}")
    proc = next((p for p in state.procs if p.node == node and p.daemon == "emulator"), None)
    if proc is None or not netns.alive(proc.pid):
        raise LabError(f"lab tamper: {node!r} is not a running emulated node")
    config = run / node / "emulator.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    if all(data["devices"][0].get(k) == v for k, v in changes.items()):
        raise LabError(f"lab tamper: {node} already has these settings: nothing to change")
    data["devices"][0].update(changes)
    try:
        DeviceSpec.from_dict(data["devices"][0])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LabError(f"lab tamper: the new settings do not make a device: {exc}") from exc
    log = Path(proc.log)
    seen = log.stat().st_size
    tmp = config.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data), encoding="utf-8")
    tmp.replace(config)
    os.kill(proc.pid, signal.SIGHUP)
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        with log.open("rb") as f:
            f.seek(seen)
            text = f.read().decode(errors="replace")
        if f"reloaded settings of {node}" in text:
            return
        if "reload failed" in text or "restart to apply" in text:
            raise LabError(f"lab tamper: the emulator refused the change: {text.strip()}")
        time.sleep(0.05)
    raise LabError(f"lab tamper: {node} did not confirm the change within {wait_s:.0f} s")


def problems(state: State) -> list[str]:
    """What is wrong with a running lab: dead daemons, missing namespaces (empty: healthy)."""
    out = [f"{p.node}/{p.daemon} (pid {p.pid}) is not running" for p in state.procs if not netns.alive(p.pid)]
    have = set(netns.namespaces())
    out += [f"namespace {netns.PREFIX}{n} is missing" for n in state.nodes if netns.PREFIX + n not in have]
    if not netns.host_link_exists():
        out.append(f"host link {netns.HOST_LINK} is missing")
    return out


def status(run: Path = DEFAULT_RUN) -> dict[str, Any]:
    """The lab as it is now: up/down/degraded, nodes, processes, leftovers."""
    state = State.load(run)
    leftovers = netns.namespaces()
    if state is None:
        return {"state": "down" if not leftovers else "leftovers", "namespaces": leftovers}
    issues = problems(state)
    return {
        "state": "degraded" if issues else "up",
        "problems": issues,
        "lan": state.lan,
        "wan": state.wan,
        "host": state.host,
        "nodes": state.nodes,
        "fleet": len(state.fleet),
        "processes": [asdict(p) | {"alive": netns.alive(p.pid)} for p in state.procs],
        "run_dir": str(run),
    }
