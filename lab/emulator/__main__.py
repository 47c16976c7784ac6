"""Run emulated devices from a YAML file until SIGTERM/SIGINT: python -m lab.emulator FILE."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

import yaml

from lab.emulator.devices import DeviceSpec, run_devices


async def _main(data: dict[str, list[dict[str, object]]], pidfile: Path | None) -> None:
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
    asyncio.run(_main(yaml.safe_load(args.config.read_text(encoding="utf-8")), args.pidfile))


if __name__ == "__main__":
    main()
