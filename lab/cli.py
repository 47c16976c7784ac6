"""`edgeaudit lab up|down|status`: the command-line side of lab.control."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lab.fleet import MAX_FLEET

EXIT_OK, EXIT_ERROR = 0, 2


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `lab` and its actions on the edgeaudit subparsers."""
    lab = sub.add_parser(
        "lab",
        parents=[common],
        help="the local lab twin on network namespaces (root): up, down, status, exec, tamper",
        description="Build the lab of lab/topology.yaml on this machine with network namespaces and real "
        "daemons (needs root and the Debian packages it names). The host gets a leg on the lab LAN, so "
        "`edgeaudit scan 198.18.0.0/24` reaches it; nothing leaves the lab's namespaces.",
    )
    lab.add_argument("--run-dir", type=Path, help="where configs, logs, PIDs and state.json go (default: .lab-run)")
    actions = lab.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="build the lab and start its daemons (idempotent)")
    up.add_argument("--fleet", type=int, default=0, metavar="N", help=f"also N emulated devices (1..{MAX_FLEET})")
    up.add_argument("--topology", type=Path, help="topology file (default: lab/topology.yaml)")
    actions.add_parser("down", help="stop every lab daemon, delete every lab namespace (idempotent)")
    ex = actions.add_parser(
        "exec",
        help="run a command inside one lab node's namespace (e.g. the WAN vantage 'outside')",
        description="Run COMMAND in the network namespace of a lab node, as `ip netns exec` does: "
        "`edgeaudit lab exec outside -- edgeaudit scan --vantage wan 198.19.0.0/24` sweeps from outside.",
    )
    ex.add_argument("node", help="a node of lab/topology.yaml")
    ex.add_argument(
        "argv", nargs=argparse.REMAINDER, metavar="COMMAND", help="the command and its arguments (after --)"
    )
    tp = actions.add_parser(
        "tamper",
        help="change an emulated device's settings while it runs (the drift demo: settings changed from outside)",
        description="Play the intruder of CIAJ 3.4: change a running emulated node's settings in place, e.g. "
        "`edgeaudit lab tamper router-yamaha-cli dns_servers=[198.19.0.66]`. Values are YAML. The next sweep "
        "sees the change, and CIAJ-3.4-CONFIG-DRIFT reports it against the sweep before.",
    )
    tp.add_argument("node", help="an emulated node of lab/topology.yaml")
    tp.add_argument("settings", nargs="+", metavar="SETTING=VALUE", help="dns_servers, ntp_servers, logging or wifi")
    st = actions.add_parser("status", help="what runs; exit 0 when up and healthy, 1 when degraded or down")
    st.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Carry out `edgeaudit lab ACTION` (output piped into `head` is not an error)."""
    try:
        return _run(args)
    except BrokenPipeError:
        return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from lab import control
    from lab.netns import LabError

    run_dir = args.run_dir or control.DEFAULT_RUN
    try:
        if args.action == "up":
            if not 0 <= args.fleet <= MAX_FLEET:
                print(f"edgeaudit: error: --fleet must be 0..{MAX_FLEET}")
                return EXIT_ERROR
            state = control.up(run_dir, args.topology or control.TOPOLOGY, args.fleet)
            print(
                f"lab up: {len(state.nodes)} nodes, {len(state.procs)} daemons; LAN {state.lan} "
                f"(host leg {state.host}), WAN {state.wan}; run dir {run_dir}"
            )
            for name, addrs in state.nodes.items():
                print(f"  {name:20} " + "  ".join(f"{seg} {a}" for seg, a in addrs.items()))
            if state.fleet:
                print(f"  fleet: {len(state.fleet)} devices {state.fleet[0]} .. {state.fleet[-1]}")
            print("scan it: edgeaudit scan 198.18.0.0/24")
            return EXIT_OK
        if args.action == "exec":
            argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            return control.run_in(args.node, argv)
        if args.action == "tamper":
            import yaml

            changes: dict[str, Any] = {}
            for item in args.settings:
                key, sep, value = item.partition("=")
                if not sep:
                    raise LabError(f"lab tamper: {item!r} is not SETTING=VALUE")
                changes[key.strip()] = yaml.safe_load(value)
            control.tamper(run_dir, args.node, changes)
            print(f"lab tamper: {args.node} now has {', '.join(sorted(changes))} changed")
            return EXIT_OK
        if args.action == "down":
            removed = control.down(run_dir)
            print(f"lab down: removed {len(removed)} item(s)" if removed else "lab down: nothing was running")
            return EXIT_OK
        info = control.status(run_dir)
    except LabError as exc:
        print(f"edgeaudit: lab error: {exc}")
        return EXIT_ERROR
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"lab {info['state']}")
        for problem in info.get("problems", []):
            print(f"  problem: {problem}")
        for ns in info.get("namespaces", []):
            print(f"  leftover namespace: {ns} (run `edgeaudit lab down`)")
        for proc in info.get("processes", []):
            mark = "ok  " if proc["alive"] else "DEAD"
            print(f"  {mark} {proc['node']:20} {proc['daemon']:9} pid {proc['pid']:<7} log {proc['log']}")
    return EXIT_OK if info["state"] == "up" else 1


def main(argv: list[str] | None = None) -> int:
    """`edgeaudit-lab ACTION`: the same as `edgeaudit lab ACTION`."""
    from scanner.cli import main as edgeaudit

    return edgeaudit(["lab", *(sys.argv[1:] if argv is None else argv)])
