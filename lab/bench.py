"""`make bench`: sweep speed and memory against an emulated fleet on loopback.

Starts N emulated devices in a child process (127.0.230.x onward, high ports),
sweeps them with the real engine, and prints hosts/s and peak RSS. Numbers are
measurements of this machine, not promises; compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

import probes
import profiles
from probes.base import ProbeConfig, Timeouts
from scanner.orchestrator import Engine, HostResult, SweepConfig


def _fleet(n: int) -> list[dict[str, object]]:
    personas = [
        ("router", "EL-R100", "2.4.1", "basic"),
        ("router", "EL-R200", "3.2.1", "redirect"),
        ("mfp", "EL-M300", "5.10", "form"),
    ]
    out: list[dict[str, object]] = []
    for i in range(n):
        persona, model, fw, http = personas[i % len(personas)]
        out.append(
            {
                "name": f"b{i}",
                "address": f"127.0.{230 + i // 250}.{1 + i % 250}",
                "persona": persona,
                "model": model,
                "firmware": fw,
                "http_mode": http,
                "communities": ["public"],
                "services": {"ssh": 2222, "http": 8080, "snmp": 1161, "ntp": 1123},
            }
        )
    return out


class _Sink:
    def __init__(self) -> None:
        self.results: list[HostResult] = []

    def host_done(self, result: HostResult) -> None:
        self.results.append(result)


LOOPBACK_PORTS = ProbeConfig(
    tcp_ports=(2222, 8080),
    port_names=((2222, "ssh"), (8080, "http")),
    snmp_port=1161,
    ntp_port=1123,
    sip_port=15060,
)


async def _sweep(addresses: list[str], concurrency: int, ports: ProbeConfig) -> tuple[float, str]:
    import dataclasses
    import tempfile

    probes.load_all()
    sink = _Sink()
    with tempfile.TemporaryDirectory(prefix="edgeaudit-bench-") as tmp:
        # the attempt ledger on disk, as every CLI sweep has it (a write per failed login)
        ledger = dataclasses.replace(ports, attempt_ledger=f"{tmp}/login-attempts.sqlite3")
        config = SweepConfig(
            timeouts=Timeouts(connect=1.0, read=1.0, probe=4.0, host=30.0),
            probe_config=ledger,
            max_hosts=concurrency,
        )
        started = time.monotonic()
        await Engine(config, profiles.load_all()).sweep(addresses, sink, asyncio.Event())
        elapsed = time.monotonic() - started
    states = Counter(r.state for r in sink.results)  # up; budget: answered, but its host budget ran out; down
    return elapsed, ", ".join(f"{n} {state}" for state, n in sorted(states.items()))


def main() -> None:
    """Run the benchmark and print one line of results."""
    parser = argparse.ArgumentParser(prog="python -m lab.bench")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--lab-fleet",
        action="store_true",
        help="root: sweep `edgeaudit lab up --fleet N` (macvlans, standard ports, ARP/ICMP) instead of loopback",
    )
    args = parser.parse_args()
    if args.lab_fleet:
        _lab_fleet(args.devices, args.concurrency)
        return
    fleet = _fleet(args.devices)
    with tempfile.TemporaryDirectory() as tmp:
        cfg, pid = Path(tmp) / "fleet.yaml", Path(tmp) / "fleet.pid"
        cfg.write_text(yaml.safe_dump({"devices": fleet}))
        emu = subprocess.Popen(
            [sys.executable, "-m", "lab.emulator", str(cfg), "--pidfile", str(pid)], stderr=subprocess.DEVNULL
        )
        try:
            for _ in range(200):
                if pid.exists():
                    break
                time.sleep(0.05)
            addresses = [str(d["address"]) for d in fleet]
            elapsed, up = asyncio.run(_sweep(addresses, args.concurrency, LOOPBACK_PORTS))
        finally:
            emu.terminate()
            emu.wait(10)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"bench: {args.devices} emulated devices, concurrency {args.concurrency}: {elapsed:.1f} s, "
        f"{args.devices / elapsed:.1f} hosts/s, {up}, scanner peak RSS {rss_mib:.0f} MiB"
    )


def _lab_fleet(devices: int, concurrency: int) -> None:
    from lab import control

    with tempfile.TemporaryDirectory() as tmp:
        try:
            state = control.up(Path(tmp), fleet_size=devices)
            ports = ProbeConfig(privileged=True)
            elapsed, up = asyncio.run(_sweep(state.fleet, concurrency, ports))
        finally:
            control.down(Path(tmp))
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"bench (lab fleet, namespaces): {devices} emulated devices, concurrency {concurrency}: {elapsed:.1f} s, "
        f"{devices / elapsed:.1f} hosts/s, {up}, scanner peak RSS {rss_mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
