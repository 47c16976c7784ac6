"""`make bench-lab`: each sweep stage of edgeaudit next to the specialist tool, on the lab's fleet.

Brings up the namespace lab with a fleet (default 254 devices, 198.18.4.1-254), then for each
stage runs edgeaudit and the peer tool as child processes, alternated A B A B after one warm-up
of each, and prints the medians of the counted runs: wall time, CPU time (``os.wait4``'s rusage)
and peak RSS (the child's process group's VmHWM, sampled), the ratio edgeaudit/peer, what each
found, and how busy the fleet's emulator process was meanwhile. Writes out/bench-lab.json.

`edgeaudit scan` has no option that runs one stage alone, so the stage rows run the engine with
only that stage's probes (``python -m lab.peers engine --probes ...``: the same engine, no CLI, no
report); the full audit row runs the real ``edgeaudit scan`` command in its default mode.
Numbers are this machine's; compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab import fleet
from lab import sparse as lab_sparse

OUT = Path("out/bench-lab.json")
# The sparse stages' networks (RFC 2544's other /16), on a veth of their own (lab.sparse), not the lab's.
SPARSE_16 = "198.19.0.0/16"
SPARSE_20 = "198.19.0.0/20"
SPARSE_HOST = "198.19.0.1"
# The ports of edgeaudit's discovery phase besides the TCP list (ProbeConfig: SNMP, SIP, NTP; DNS; SSDP).
UDP_PORTS = (53, 123, 161, 1900, 5060)
NSE = "ftp-anon,http-default-accounts,snmp-brute,sip-methods,ntp-info,ssh-auth-methods,telnet-brute"


@dataclass
class Run:
    """One child process: its wall and CPU seconds, peak RSS, exit status, and whether the cap cut it."""

    wall_s: float
    cpu_s: float
    rss_mib: float
    status: int
    cut: bool
    found: str
    fleet_busy: float | None  # the emulator's CPU seconds / wall during this run (1.0 = one core)


@dataclass
class Side:
    """One tool's runs of a stage."""

    label: str
    argv: list[str] | None  # None: the tool is missing
    runs: list[Run] = field(default_factory=list)
    # edgeaudit's side, one more run in asyncio's debug mode: callbacks that held the loop over 100 ms.
    slow_callbacks: int | None = None
    slowest_callback_s: float | None = None

    def median(self, attr: str) -> float | None:
        """Median of one Run attribute over the counted runs."""
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return statistics.median(values) if values else None


@dataclass
class Stage:
    """One row of the table: edgeaudit and the peer for the same work."""

    key: str
    title: str
    ours: Side
    peer: Side
    silent_udp: bool = False  # closed UDP ports answer nothing (ICMP port-unreachable dropped in the fleet)
    cap_s: float = 600.0
    note: str = ""
    runs: int | None = None  # counted runs when not the benchmark's (the /16: one, no warm-up)
    addresses: int = 0  # addresses in scope, for the rate figures (0: the /24's)
    live: int = 0  # of which answer (0: all)
    peer_expected: bool = True  # False: no peer tool does this stage (the 1,000-device audit)
    network: str = ""  # a sparse stage's scope


def _group(pgid: int) -> dict[int, tuple[float, float]]:
    """Processes of one process group now: pid -> (CPU seconds so far, peak RSS MiB from VmHWM)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[float, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            hwm = next(
                (line.split()[1] for line in (entry / "status").read_text().splitlines() if line.startswith("VmHWM:")),
                "0",
            )
        except (OSError, IndexError, ValueError):
            continue
        out[int(entry.name)] = ((int(fields[11]) + int(fields[12])) / tick, int(hwm) / 1024)
    return out


def wait_capped(proc: subprocess.Popen[bytes], cap_s: float, every_s: float = 0.1) -> tuple[int, float, float, bool]:
    """Wait for a child (its own session) with os.wait4; past ``cap_s`` kill its group. (status, cpu, rss MiB, cut).

    Peak RSS is the largest VmHWM seen in the child's process group, sampled every ``every_s``:
    rusage's ru_maxrss of a child also counts the memory of the process it was forked from (this
    harness), a floor of tens of MiB under a small C tool. CPU is rusage's (the child and the
    descendants it waited for); for a run cut at the cap, whose killed shell waited for nothing,
    it is the sum of the group's last samples instead: a lower bound.
    """
    cut, done = threading.Event(), threading.Event()
    seen: dict[int, tuple[float, float]] = {}

    def watch() -> None:
        end = time.monotonic() + cap_s
        while not done.wait(every_s):
            for pid, (cpu, rss) in _group(proc.pid).items():  # the largest seen: an exited child reads as 0
                was = seen.get(pid, (0.0, 0.0))
                seen[pid] = (max(was[0], cpu), max(was[1], rss))
            if time.monotonic() >= end:
                break
        else:
            return
        cut.set()
        for sig, pause in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            time.sleep(pause)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        done.set()
        watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    cpu = usage.ru_utime + usage.ru_stime
    if cut.is_set():
        cpu = max(cpu, sum(c for c, _ in seen.values()))
    rss = max((r for _, r in seen.values()), default=0.0)
    return proc.returncode, cpu, rss, cut.is_set()


def cpu_of(pid: int | None) -> float | None:
    """CPU seconds (user + system) a live process used so far, from /proc/PID/stat; None when unreadable."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def found(text: str) -> str:
    """What a tool's output says it found: hosts up, open ports, answering devices (empty when unknown)."""
    if m := re.search(r"\((\d+) hosts? up\)", text):  # nmap
        opened = len(re.findall(r"^\d+/(?:tcp|udp)\s+open\s", text, re.M))
        return f"{m.group(1)} up" + (f", {opened} open ports" if opened else "")
    if m := re.search(r"^engine: (.+)$", text, re.M):  # the stage runner below
        return m.group(1)
    if m := re.search(r"(\d+) device\(s\) answered", text):  # edgeaudit scan's summary
        return f"{m.group(1)} answered"
    answering = set(re.findall(r"^\|?\s*(\d+\.\d+\.\d+\.\d+)(?::\d+)?\s", text, re.M))  # svmap table, onesixtyone
    return f"{len(answering)} answered" if answering else ""


SLOW_CALLBACK = re.compile(r"Executing .* took (\d+(?:\.\d+)?) seconds")


def slow_callbacks(text: str) -> list[float]:
    """The seconds of each callback asyncio's debug mode reported as holding the loop (over 100 ms)."""
    return [float(m.group(1)) for m in SLOW_CALLBACK.finditer(text)]


def report_states(out: Path) -> str:
    """What an edgeaudit report says of its hosts: up, cut by their budget, down (empty when unreadable)."""
    try:
        data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    states = [d.get("state") for d in data.get("devices", [])]
    down = data.get("summary", {}).get("hosts_down", states.count("down"))
    return f"{states.count('up')} up, {states.count('budget')} cut by budget, {down} down"


def run_once(argv: list[str], cap_s: float, env: dict[str, str], emulator: int | None, log: Path) -> Run:
    """Run one child to its end or its cap; measure it and the emulator meanwhile."""
    before = cpu_of(emulator)
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        status, cpu, rss, cut = wait_capped(proc, cap_s)
        wall = time.monotonic() - started
    after = cpu_of(emulator)
    busy = (after - before) / wall if before is not None and after is not None and wall > 0 else None
    seen = found(log.read_text(errors="replace"))
    if "--out" in argv and (states := report_states(Path(argv[argv.index("--out") + 1]))):
        seen = states
    return Run(
        round(wall, 3), round(cpu, 3), round(rss, 1), status, cut, seen, None if busy is None else round(busy, 3)
    )


def silent_udp(on: bool) -> None:
    """Drop (or stop dropping) the fleet's ICMP port-unreachable: closed UDP ports then answer nothing."""
    if on:
        text = fleet.silent_udp_ruleset()
        subprocess.run(
            ["ip", "netns", "exec", fleet.NAMESPACE, "nft", "-f", "-"], input=text.encode(), check=True, timeout=10
        )
    else:
        subprocess.run(
            ["ip", "netns", "exec", fleet.NAMESPACE, "nft", "delete", "table", "inet", fleet.NFT_TABLE],
            check=False,
            timeout=10,
            capture_output=True,
        )


def measure(stage: Stage, runs: int, env: dict[str, str], emulator: int | None, logs: Path, debug: bool) -> None:
    """One warm-up of each side, then ``runs`` counted runs alternated A B A B; then edgeaudit once in debug mode.

    A stage with runs of its own (the /16) has no warm-up. The debug run (PYTHONASYNCIODEBUG=1) is not
    counted in the figures: it reports every callback that held the event loop over 100 ms."""
    sides = [s for s in (stage.ours, stage.peer) if s.argv is not None]
    counted = stage.runs or runs
    first = 1 if stage.runs else 0  # run 0 is the warm-up
    if stage.silent_udp:
        silent_udp(True)
    try:
        for i in range(first, counted + 1):
            for side in sides:
                assert side.argv is not None
                log = logs / f"{stage.key}-{'ours' if side is stage.ours else 'peer'}-{i}.log"
                result = run_once(side.argv, stage.cap_s, env, emulator, log)
                if i:
                    side.runs.append(result)
                print(
                    f"  {stage.key} {'warm-up' if not i else f'run {i}'}: {side.label}: {result.wall_s:.2f} s"
                    f"{' (cut)' if result.cut else ''}, {result.found or '-'}",
                    flush=True,
                )
        if debug and stage.ours.argv is not None:
            log = logs / f"{stage.key}-ours-debug.log"
            run_once(stage.ours.argv, stage.cap_s * 3, {**env, "PYTHONASYNCIODEBUG": "1"}, emulator, log)
            slow = slow_callbacks(log.read_text(errors="replace"))
            stage.ours.slow_callbacks, stage.ours.slowest_callback_s = len(slow), max(slow, default=0.0)
            print(f"  {stage.key} debug run: {len(slow)} callbacks over 100 ms", flush=True)
    finally:
        if stage.silent_udp:
            silent_udp(False)


def command(source: Path | None = None) -> list[str]:
    """How a stage starts edgeaudit: this environment's command, or ``source``'s own entry point.

    With --source, PYTHONPATH points at that checkout, but the `edgeaudit` script imports
    scanner.entry: a checkout older than it would find this checkout's (the editable install's) and
    run with this one's startup settings. Such a checkout starts by its own CLI module instead, and
    with -P: `python -m` would put the working directory (this checkout, under make) ahead of
    PYTHONPATH."""
    if source is None:
        return [str(Path(sys.executable).with_name("edgeaudit"))]
    module = "scanner.entry" if (source / "scanner" / "entry.py").is_file() else "scanner.cli"
    return [sys.executable, "-P", "-m", module]


def stages(
    target: str,
    hosts: Path,
    communities: Path,
    tools: dict[str, str | None],
    cap_full: float,
    nft: bool,
    edgeaudit: Sequence[str] = (),
) -> list[Stage]:
    """The table's rows: what edgeaudit runs and what the peer runs for the same stage."""
    from probes.base import TCP_PORTS

    tcp = ",".join(str(p) for p in TCP_PORTS)
    udp = ",".join(str(p) for p in UDP_PORTS)
    engine = [sys.executable, "-P", "-m", "lab.peers", "engine", target, "--probes"]  # -P: see command()
    nmap, svmap, onesixtyone = tools["nmap"], tools["svmap"], tools["onesixtyone"]

    def peer(label: str, tool: str | None, *args: str) -> Side:
        return Side(label, [tool, *args] if tool else None)

    edgeaudit = list(edgeaudit) or command()
    presence = Side(
        "edgeaudit discover --presence-only", discover(edgeaudit, hosts.parent / "presence", "--presence-only", target)
    )
    inventory = Side("edgeaudit discover", discover(edgeaudit, hosts.parent / "discover", target))
    rows = [
        Stage("arp", "presence of the /24 (ARP)", presence, peer("nmap -n -sn", nmap, "-n", "-sn", target)),
        Stage(
            "inventory",
            "discover (presence, TCP ports, UDP services) next to nmap's presence alone",
            Side(inventory.label, inventory.argv),
            peer("nmap -n -sn", nmap, "-n", "-sn", target),
        ),
        Stage(
            "tcp",
            "discover (presence, TCP ports, UDP services) next to nmap's TCP ports alone",
            inventory,
            peer(f"nmap -n -sS -p {tcp}", nmap, "-n", "-sS", "-p", tcp, target),
        ),
        Stage(
            "discovery",
            "discover next to nmap with the same TCP and UDP ports",
            Side(inventory.label, inventory.argv),
            peer(f"nmap -n -sS -sU -p T:{tcp},U:{udp}", nmap, "-n", "-sS", "-sU", "-p", f"T:{tcp},U:{udp}", target),
        ),
    ]
    if nft:
        rows.append(
            Stage(
                "discovery-silent",
                "the same, closed UDP ports silent (ICMP dropped)",
                Side(rows[-1].ours.label, rows[-1].ours.argv),
                Side(rows[-1].peer.label, rows[-1].peer.argv),
                silent_udp=True,
            )
        )
    rows += [
        Stage(
            "sip",
            "SIP OPTIONS over the /24",
            Side("engine: arp, sip-options", [*engine, "arp,sip-options"]),
            peer("svmap", svmap, target),
        ),
        Stage(
            "snmp",
            "SNMP community 'public' over the /24 (edgeaudit: v2c then v1, system group; onesixtyone: v1)",
            Side("engine: arp, snmp-community", [*engine, "arp,snmp-community"]),
            peer("onesixtyone -c public -i hosts", onesixtyone, "-c", str(communities), "-i", str(hosts)),
        ),
    ]
    pipeline = None
    if nmap:
        parts = [f"{nmap} -n -sS -sU -sV -p T:{tcp},U:{udp} --script {NSE} {target}"]
        parts += [f"{svmap} {target}"] if svmap else []
        parts += [f"{onesixtyone} -c {communities} -i {hosts}"] if onesixtyone else []
        pipeline = ["sh", "-c", "; ".join(parts)]
    label = "nmap -sV + NSE (" + NSE + ")" + (" + svmap" if svmap else "") + (" + onesixtyone" if onesixtyone else "")
    scan_out = hosts.parent / "scan"
    rows.append(
        Stage(
            "full",
            "full default audit",
            Side(
                "edgeaudit scan (default mode)",
                [*edgeaudit, "scan", target, "--out", str(scan_out), "--db", str(scan_out / "history.sqlite3")],
            ),
            Side(label, pipeline),
            cap_s=cap_full,
            note=f"peer pipeline capped at {cap_full:g} s",
        )
    )
    return rows


def discover(edgeaudit: Sequence[str], out: Path, *args: str) -> list[str]:
    """The `edgeaudit discover` command line of a stage, writing its reports and history under ``out``."""
    return [*edgeaudit, "-q", "discover", *args, "--out", str(out), "--db", str(out / "history.sqlite3")]


def sparse_stages(nmap: str | None, work: Path, cap_s: float, edgeaudit: Sequence[str] = ()) -> list[Stage]:
    """A /20 and a /16 on a link of their own, almost every address dead (a few live, as in the /16 50).

    Same rate per dead address on both is the O(1) figure: nothing per host exists for an
    address that never answered. The /16 is run once (no warm-up), nmap capped at ``cap_s``."""
    edgeaudit = list(edgeaudit) or command()
    rows = []
    for key, net, live, runs in (("sparse-20", SPARSE_20, 3, None), ("sparse-16", SPARSE_16, 50, 1)):
        size = ipaddress.ip_network(net).num_addresses - 2
        ours = Side("edgeaudit discover", discover(edgeaudit, work / key, net))
        peer = Side("nmap -n -sn", [nmap, "-n", "-sn", net] if nmap else None)
        title = f"a /{net.split('/')[1]} with {live} live on a link of its own: dead addresses/s"
        rows.append(Stage(key, title, ours, peer, cap_s=cap_s, runs=runs, addresses=size, live=live, network=net))
    return rows


def large_fleet_stage(size: int, cap_s: float, work: Path, edgeaudit: Sequence[str] = ()) -> Stage:
    """The full default audit of a fleet of ``size`` devices (no peer: hosts/s, every host up, none cut)."""
    edgeaudit = list(edgeaudit) or command()
    first = ipaddress.ip_address(fleet.devices(1)[0]["address"])
    last = ipaddress.ip_address(fleet.devices(size)[-1]["address"])
    scope = f"{first}-{last}"
    out = work / "fleet-large"
    argv = [*edgeaudit, "-q", "scan", scope, "--out", str(out), "--db", str(out / "history.sqlite3")]
    return Stage(
        f"fleet-{size}",
        f"full default audit of a {size}-device fleet",
        Side("edgeaudit scan (default mode)", argv),
        Side("-", None),
        cap_s=cap_s,
        runs=1,
        addresses=size,
        peer_expected=False,
    )


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def _fmt(side: Side) -> str:
    if side.argv is None:
        return "missing"
    if not side.runs:
        return "not run"
    wall, cpu, rss = side.median("wall_s"), side.median("cpu_s"), side.median("rss_mib")
    cut = sum(r.cut for r in side.runs)
    at_least = "at least " if cut else ""  # a cut run's CPU is its last samples
    return f"{wall:.2f} s, CPU {at_least}{cpu:.2f} s, {rss:.0f} MiB" + (
        f" ({cut} of {len(side.runs)} cut)" if cut else ""
    )


def table(rows: list[Stage]) -> str:
    """The medians as a Markdown table (docs/performance.md quotes it)."""
    lines = [
        "| stage | edgeaudit | peer | ratio (wall) | found: edgeaudit / peer | emulator busy "
        "| loop: callbacks over 100 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in rows:
        busy = [b for b in (s.ours.median("fleet_busy"), s.peer.median("fleet_busy")) if b is not None]
        ours_found = s.ours.runs[-1].found if s.ours.runs else "-"
        peer_found = s.peer.runs[-1].found if s.peer.runs else "-"
        stalls = (
            "-"
            if s.ours.slow_callbacks is None
            else f"{s.ours.slow_callbacks} (longest {s.ours.slowest_callback_s:.2f} s)"
        )
        lines.append(
            f"| {s.title} | {s.ours.label}: {_fmt(s.ours)}{rate(s, s.ours)} | {peer_cell(s)} | "
            f"{_ratio(s.ours.median('wall_s'), s.peer.median('wall_s'))} | {ours_found or '-'} / {peer_found or '-'} | "
            f"{'max ' + format(max(busy), '.0%') + ' of a core' if busy else '-'} | {stalls} |"
        )
    sparse = {s.key: s for s in rows if s.live}
    if {"sparse-20", "sparse-16"} <= set(sparse):
        small, large = (dead_per_s(sparse[k], sparse[k].ours) for k in ("sparse-20", "sparse-16"))
        if small and large:
            lines.append(
                f"\nedgeaudit's dead addresses per second, /20 then /16: {small:.0f}, {large:.0f} (ratio "
                f"{large / small:.2f}: at 1.00 or more, the time per dead address does not grow with the scope)"
            )
    return "\n".join(lines)


def peer_cell(stage: Stage) -> str:
    """The peer's cell: its figures, 'missing', or '-' where no peer tool does the stage."""
    if not stage.peer_expected:
        return "-"
    return f"{stage.peer.label}: {_fmt(stage.peer)}{rate(stage, stage.peer)}"


def dead_per_s(stage: Stage, side: Side) -> float | None:
    """Dead addresses a second over a sparse stage's median wall time."""
    wall = side.median("wall_s")
    return (stage.addresses - stage.live) / wall if wall and stage.live else None


def rate(stage: Stage, side: Side) -> str:
    """The stage's rate figure for one side: dead addresses/s (sparse stages) or hosts/s (the large fleet)."""
    wall = side.median("wall_s")
    if not wall or not stage.addresses or not side.runs:
        return ""
    if any(r.cut for r in side.runs):
        return "; cut before the end"
    if stage.live:
        return f"; {dead_per_s(stage, side):.0f} dead addresses/s"
    return f"; {stage.addresses / wall:.1f} hosts/s"


def find_tools(svmap: str | None) -> dict[str, str | None]:
    """Peer tools on PATH (svmap may be given: it lives in the benchmark's own venv)."""
    given = svmap if svmap and os.access(svmap, os.X_OK) else None
    return {
        "nmap": shutil.which("nmap"),
        "onesixtyone": shutil.which("onesixtyone"),
        "svmap": given or shutil.which("sipvicious_svmap") or shutil.which("svmap"),
    }


def compile_sources(source: Path | None = None) -> int:
    """Byte-compile the edgeaudit checkout a benchmark runs: each run would compile it again otherwise.

    A pip install writes the .pyc files; an editable checkout writes them on first import, unless
    PYTHONDONTWRITEBYTECODE is set (it is on some machines), when every run compiles about 90
    modules anew, close to a second of each run's figure. Returns the number of modules."""
    import compileall

    base = source or Path(__file__).resolve().parents[1]
    roots = [base / name for name in PACKAGES if (base / name).is_dir()]
    for root in roots:
        compileall.compile_dir(str(root), quiet=1)
    return sum(1 for root in roots for _ in root.rglob("*.py"))


PACKAGES = ("scanner", "probes", "reports", "profiles", "lab")


def main(argv: list[str] | None = None) -> int:
    """`make bench-lab` (root): bring the lab up with a fleet, measure every stage, bring it down."""
    parser = argparse.ArgumentParser(prog="python -m lab.peers")
    parser.add_argument("--fleet", type=int, default=254, help="fleet devices (a /24 holds 254)")
    parser.add_argument("--runs", type=int, default=3, help="counted runs per side (after one warm-up)")
    parser.add_argument("--stages", default="", help="comma-separated stage keys (default: all)")
    parser.add_argument("--full-cap", type=float, default=120.0, help="seconds a full-audit run may take")
    parser.add_argument("--sparse-cap", type=float, default=240.0, help="seconds a /16 or /20 run may take")
    parser.add_argument("--large-fleet", type=int, default=1000, help="devices of the large-fleet audit (0: skip)")
    parser.add_argument("--no-debug", action="store_true", help="skip edgeaudit's debug-mode run of each stage")
    parser.add_argument("--svmap", default=None, help="svmap's path (sipvicious, installed by make bench-lab)")
    parser.add_argument("--source", default=None, help="run this checkout's edgeaudit (PYTHONPATH) instead")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    from lab import control

    tools = find_tools(args.svmap)
    nft = shutil.which("nft") is not None
    missing = sorted(name for name, path in tools.items() if path is None) + ([] if nft else ["nft"])
    target = str(ipaddress.ip_network(f"{fleet.devices(1)[0]['address']}/24", strict=False))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.source:
        env["PYTHONPATH"] = str(Path(args.source).resolve())
    commit = subprocess.run(
        ["git", "-C", args.source or ".", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    compiled = compile_sources(Path(args.source).resolve() if args.source else None)
    print(f"bench-lab: byte-compiled the checkout's {compiled} modules first, as an install does", flush=True)
    with tempfile.TemporaryDirectory(prefix="edgeaudit-bench-lab-") as tmp:
        work = Path(tmp)
        env["HOME"] = str(work)  # svmap and nmap keep their state files here, not in root's home
        hosts, communities = work / "hosts.txt", work / "communities.txt"
        from probes.snmp import SnmpCommunity

        communities.write_text("\n".join(SnmpCommunity.communities) + "\n")
        ours = command(Path(args.source).resolve() if args.source else None)
        rows = stages(target, hosts, communities, tools, args.full_cap, nft, ours)
        sparse = sparse_stages(tools["nmap"], work, args.sparse_cap, ours)
        large = [large_fleet_stage(args.large_fleet, 600.0, work, ours)] if args.large_fleet else []
        if args.stages:
            keep = set(args.stages.split(","))
            rows, sparse, large = ([r for r in group if r.key in keep] for group in (rows, sparse, large))
        print(
            f"bench-lab: fleet of {args.fleet}, {args.runs} counted runs per side, "
            f"missing: {', '.join(missing) or 'nothing'}",
            flush=True,
        )
        run = work / "lab"
        try:
            state = control.up(run, fleet_size=args.fleet)
            hosts.write_text(
                "\n".join(a for a in state.fleet if ipaddress.ip_address(a) in ipaddress.ip_network(target)) + "\n"
            )
            emulator = next((p.pid for p in state.procs if p.node == "fleet" and p.daemon == "emulator"), None)
            for row in rows:
                measure(row, args.runs, env, emulator, work, not args.no_debug)
        finally:
            control.down(run)
        for row in sparse:  # after the lab is down: nothing else on the machine's links meanwhile
            with lab_sparse.sparse_link(SPARSE_16, SPARSE_HOST, lab_sparse.pick_live(row.network, row.live)):
                measure(row, args.runs, env, None, work, not args.no_debug)
        for row in large:
            try:
                state = control.up(run, fleet_size=args.large_fleet)
                emulator = next((p.pid for p in state.procs if p.node == "fleet" and p.daemon == "emulator"), None)
                measure(row, args.runs, env, emulator, work, not args.no_debug)
            finally:
                control.down(run)
        rows += sparse + large
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "fleet": args.fleet,
        "target": target,
        "runs": args.runs,
        "missing": missing,
        "stages": [asdict(r) for r in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(table(rows))
    print(
        f"missing tools: {', '.join(missing) or 'none'}; medians of {args.runs} "
        f"(the /16 and the large fleet: one run); written to {args.out}"
    )
    return 0


def engine_main(argv: list[str]) -> int:
    """`python -m lab.peers engine TARGET --probes a,b`: one sweep with only the named probes, no CLI or report."""
    import asyncio
    from collections import Counter

    import probes
    import profiles
    from probes.base import REGISTRY, ProbeConfig, Registry
    from scanner.orchestrator import Engine, HostResult, SweepConfig

    parser = argparse.ArgumentParser(prog="python -m lab.peers engine")
    parser.add_argument("target")
    parser.add_argument("--probes", required=True)
    args = parser.parse_args(argv)
    probes.load_all()
    registry = Registry({name: REGISTRY.get(name) for name in args.probes.split(",")})
    states: Counter[str] = Counter()
    answered: Counter[str] = Counter()

    class Sink:
        def host_done(self, result: HostResult) -> None:
            states[result.state] += 1
            answered.update(s.name for s in result.device.services)

    addresses = [str(a) for a in ipaddress.ip_network(args.target).hosts()]
    engine = Engine(SweepConfig(probe_config=ProbeConfig(privileged=True)), profiles.load_all(), registry=registry)
    asyncio.run(engine.sweep(addresses, Sink(), asyncio.Event()))
    services = ", ".join(f"{n} {k}" for k, n in sorted(answered.items()))
    print(f"engine: {states['up']} up" + (f" ({services})" if services else ""))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["engine"]:
        sys.exit(engine_main(sys.argv[2:]))
    sys.exit(main())
