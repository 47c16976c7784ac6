"""Run emulated devices from a YAML file until SIGTERM/SIGINT: python -m lab.emulator FILE.

SIGHUP re-reads FILE and gives each running device its new settings (what its
CLI, web page and SNMP answers show); a device whose address or services
changed keeps its old spec, since its listeners stay as they are. `edgeaudit
lab tamper` uses this to change a lab device's settings between two sweeps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

import yaml

from lab.emulator.devices import Device, run_devices
from lab.emulator.spec import DeviceSpec


def reload(config: Path, devices: list[Device]) -> list[str]:
    """New settings from ``config`` for running devices; the names of those that took them."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    specs = {s.name: s for s in (DeviceSpec.from_dict(d) for d in data["devices"])}
    changed: list[str] = []
    for device in devices:
        new = specs.get(device.spec.name)
        if new is None or new == device.spec:
            continue
        if (new.address, new.services, new.wan_address) != (
            device.spec.address,
            device.spec.services,
            device.spec.wan_address,
        ):
            print(f"emulator: {new.name}: address or services changed: restart to apply", file=sys.stderr, flush=True)
            continue
        device.spec = new
        changed.append(new.name)
    return changed


async def _main(config: Path, pidfile: Path | None) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))  # noqa: ASYNC240 (once, at start)
    specs = [DeviceSpec.from_dict(d) for d in data["devices"]]
    devices = await run_devices(specs)
    for d in devices:
        ports = ", ".join(f"{k}:{v}" for k, v in d.bound.items())
        print(
            f"emulator: {d.spec.name} {d.spec.address} ({d.spec.persona}, fw {d.spec.firmware}) {ports}",
            file=sys.stderr,
            flush=True,
        )
    if pidfile:
        pidfile.write_text(f"{os.getpid()}\n")  # noqa: ASYNC240 (once, at start)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_hup() -> None:
        try:
            names = reload(config, devices)
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            print(f"emulator: reload failed, settings unchanged: {exc}", file=sys.stderr, flush=True)
            return
        print(f"emulator: reloaded settings of {', '.join(names) or 'no device'}", file=sys.stderr, flush=True)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await stop.wait()
    for d in devices:
        await d.stop()
    if pidfile:
        pidfile.unlink(missing_ok=True)  # noqa: ASYNC240 (once, at exit)


def main() -> None:
    """CLI of the emulator."""
    parser = argparse.ArgumentParser(prog="python -m lab.emulator")
    parser.add_argument("config", type=Path)
    parser.add_argument("--pidfile", type=Path)
    args = parser.parse_args()
    asyncio.run(_main(args.config, args.pidfile))


if __name__ == "__main__":
    main()
