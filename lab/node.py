"""Run one topology node's daemons in the current network namespace (the lab-node image's entrypoint).

    python3 -m lab.node NODE [--run DIR]

Waits until the node's addresses exist (containerlab adds them after start),
starts the node's daemons and emulator with the same builders as the namespace
lab, and stops them all on SIGTERM. Exits non-zero when a daemon exits.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from lab import daemons, netns
from lab.control import load_topology


def _addresses_present(addresses: list[str]) -> bool:
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=False).stdout
    return all(f" {a}/" in out for a in addresses)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python3 -m lab.node")
    parser.add_argument("node")
    parser.add_argument("--run", type=Path, default=Path("/run/ealab"))
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the node's addresses")
    args = parser.parse_args()
    node = load_topology()["nodes"][args.node]
    end = time.monotonic() + args.wait
    while not _addresses_present(list(node["interfaces"].values())):
        if time.monotonic() > end:
            print(f"lab.node: addresses {node['interfaces']} never appeared", file=sys.stderr)
            return 2
        time.sleep(0.5)
    directory = args.run / args.node
    directory.mkdir(parents=True, exist_ok=True)
    ctx = daemons.NodeContext(args.node, directory, dict(node["interfaces"]))
    procs = [subprocess.Popen(launch.argv, env=launch.environment()) for _name, launch in daemons.launches(ctx, node)]
    stopping = False

    def stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(0.5)
    netns.stop_pids(p.pid for p in procs)
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
