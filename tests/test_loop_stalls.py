"""Nothing blocking runs on the event loop: a 60-host default sweep with asyncio's slow-callback detection.

Debug mode logs every callback (a task step) that holds the loop longer than ``slow_callback_duration``;
a stalled loop times out healthy devices (the issue saw 26 of 60 IPP probes time out). The sweep runs in
a fresh interpreter, as a scanner does, and the fleet in its own process (lab.emulator), so only the
scanner's own work is measured.

Debug mode also keeps, for every pending future, handle and task, the stack it was created from
(asyncio.constants.DEBUG_STACK_DEPTH, 10 frames): in this sweep 13,000-18,000 FrameSummary objects, a
third to a half of what the cyclic collector walks. Its full collections then took 25-46 ms here, and
the longest steps were almost all collection; without debug mode, or with one frame kept, no step
exceeded 20 ms, collections included. A step of 0.103 s failed this test once in CI, most likely such
a collection (not measured there). That heap is the instrument's, not the scanner's: the sweep keeps
one frame of it, which still says where a slow callback was created.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.bench import _fleet
from tests.conftest import run_fresh

HOSTS = 60

SWEEP = r"""
import asyncio, asyncio.constants, dataclasses, json, logging, re, sys
import probes
from lab.bench import LOOPBACK_PORTS, _Sink
from probes.base import Timeouts
import profiles
from scanner.orchestrator import Engine, SweepConfig

addresses, ledger = json.loads(sys.argv[1]), sys.argv[2]
slow = []

class Slow(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        if re.search(r"took [0-9.]+ seconds", message):
            slow.append(message[:240] + " ... " + message[-30:])  # the task's name (probe, host) and the time

async def main():
    asyncio.constants.DEBUG_STACK_DEPTH = 1  # the instrument's own heap: see the module's docstring
    probes.load_all()
    known = profiles.load_all()  # as the CLI does, before the sweep: nothing else runs yet
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.1
    logging.getLogger("asyncio").addHandler(Slow())
    pc = dataclasses.replace(LOOPBACK_PORTS, attempt_ledger=ledger)
    config = SweepConfig(timeouts=Timeouts(connect=1.0, read=1.0, probe=4.0, host=30.0), probe_config=pc, max_hosts=64)
    sink = _Sink()
    await Engine(config, known).sweep(addresses, sink, asyncio.Event())
    print(json.dumps({"states": [r.state for r in sink.results], "slow": slow}))

asyncio.run(main())
"""


def test_a_default_sweep_never_holds_the_loop_100_ms(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    devices = _fleet(HOSTS)
    for i, device in enumerate(devices):
        device["address"] = f"127.0.236.{1 + i}"
    fleet(devices)
    addresses = json.dumps([str(d["address"]) for d in devices])
    out = run_fresh(SWEEP, addresses, str(tmp_path / "login-attempts.sqlite3"))
    assert out["states"] == ["up"] * HOSTS, out["states"]
    assert out["slow"] == [], out["slow"][:5]
