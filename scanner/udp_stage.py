"""The sweep's UDP stage: one request per address and probe, on callbacks and timers, no task per host.

For each address the stage is handed (scanner.pipeline paces and bounds them), every
sweep-wide discovery probe's first exchange (``DatagramProbe.ask``: SIP OPTIONS, SNMP v3
discovery, NTP mode 3, the DNS canary, SSDP M-SEARCH) is started on the sweep's shared
UDP sockets (probes.wire.udp.start): its sends and retransmits are timer callbacks, its
reply is matched by source and read by the probe's parser (``Ask.parse``: transaction id,
decoding) where the socket reads it. An exchange that ends unanswered (silence, ICMP
refusal, garbage) is judged on the spot by the probe's ``unanswered``, with no coroutine;
only an answered exchange starts a task, for the probe's ``answered`` (the answer made
observations, follow-up requests). An address whose every exchange went unanswered costs
no task at all. (An address with no shared socket, a zoned IPv6 one, runs each probe's
own ``run`` in a task, as a host does.)

What a host's probes found comes out as one future per address, which the host's
discovery phase awaits; cancelling it (the sweep stopped) ends its exchanges and tasks.
Failures read as in a host's own probe runs (scanner.guard): inconclusive, never a pass.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

from probes.base import HostSnapshot, Probe, ProbeConfig, ProbeContext, ProbeTarget
from probes.datagram import DatagramProbe
from probes.observations import Observation, ProbeFailure, Service
from probes.wire import udp
from profiles.errors import ProbeError
from scanner import guard

Contexts = Callable[[Probe, HostSnapshot], tuple[ProbeContext, float]]  # a probe run's context and allowed seconds


class UdpStage:
    """The stage of one sweep: its probes, their settings, how a probe run's context is made."""

    def __init__(self, early: Sequence[Probe], config: ProbeConfig, per_host: int, contexts: Contexts) -> None:
        self.early, self.config, self.per_host, self.contexts = tuple(early), config, max(1, per_host), contexts
        self.tasks = 0  # tasks started: answered exchanges, and runs with no shared socket (tests count them)

    def start(self, snapshot: HostSnapshot) -> asyncio.Future[tuple[Observation, ...]]:
        """Start the address's exchanges; the future gets the observations of every probe, in probe order."""
        runs = [(probe, svc) for probe in self.early for svc in probe.targets(snapshot, self.config)]
        host = _Host(self, snapshot, runs)
        host.begin()
        return host.future


class _Host:
    """One address in the stage: its runs, at most ``per_host`` in flight, and their results."""

    __slots__ = ("exchanges", "filling", "future", "left", "next", "results", "runs", "snapshot", "stage", "tasks")

    def __init__(self, stage: UdpStage, snapshot: HostSnapshot, runs: list[tuple[Probe, Service | None]]) -> None:
        self.stage, self.snapshot, self.runs = stage, snapshot, runs
        self.future: asyncio.Future[tuple[Observation, ...]] = asyncio.get_running_loop().create_future()
        self.results: list[list[Observation] | None] = [None] * len(runs)
        self.left, self.next = len(runs), 0  # runs not done; the next run to launch
        self.filling = False
        self.exchanges: dict[int, udp.Asking] = {}
        self.tasks: dict[int, asyncio.Task[list[Observation]]] = {}

    def begin(self) -> None:
        if not self.runs:
            self.future.set_result(())
            return
        self.future.add_done_callback(self._ended)
        self._fill()

    def _fill(self) -> None:
        """Launch runs while fewer than ``per_host`` are in flight (a run may end as it is launched)."""
        if self.filling:
            return
        self.filling = True
        try:
            in_flight = self.next - (len(self.runs) - self.left)
            while self.next < len(self.runs) and in_flight < self.stage.per_host and not self.future.done():
                self._launch()
                in_flight = self.next - (len(self.runs) - self.left)
        finally:
            self.filling = False

    def _launch(self) -> None:
        i, self.next = self.next, self.next + 1
        probe, service = self.runs[i]
        target = ProbeTarget(self.snapshot.address, service)
        allowed = 0.0
        try:
            ctx, allowed = self.stage.contexts(probe, self.snapshot)
            if isinstance(probe, DatagramProbe) and service is not None:
                spec = probe.ask(target, ctx)

                def heard(outcome: udp.Outcome) -> None:
                    self._heard(i, probe, target, ctx, allowed, outcome)

                exchange = udp.start(target.address, service.port, spec, ctx.deadline, heard)
                if exchange is not None:
                    self.exchanges[i] = exchange
                    return
            # No shared socket for this address (a zoned IPv6 address), or a probe with no datagram form.
            work = guard.guarded(probe, target, probe.run(target, ctx), ctx.deadline, allowed)
        except Exception as exc:  # a probe's bug, or its deadline gone: inconclusive, and the others go on
            self._done(i, guard.failed(probe, target, exc, allowed))
            return
        self._task(i, probe, target, work)

    def _heard(
        self,
        i: int,
        probe: Probe,
        target: ProbeTarget,
        ctx: ProbeContext,
        allowed: float,
        outcome: udp.Outcome,
    ) -> None:
        """An exchange's outcome (from the loop): judged here when unanswered, a task when answered."""
        self.exchanges.pop(i, None)
        if self.future.done():
            return  # cancelled meanwhile: nothing more of this address
        assert isinstance(probe, DatagramProbe)
        try:
            if isinstance(outcome, ProbeError):
                self._done(i, probe.unanswered(target, ctx, outcome))
            elif isinstance(outcome, Exception):  # the probe's builder or parser raised: its bug, inconclusive
                self._done(i, guard.failed(probe, target, outcome, allowed))
            else:
                work = guard.guarded(probe, target, probe.answered(target, ctx, outcome), ctx.deadline, allowed)
                self._task(i, probe, target, work)
        except Exception as exc:  # unanswered re-raised (garbage, unreachable), or a bug: inconclusive
            self._done(i, guard.failed(probe, target, exc, allowed))
        finally:
            outcome = None  # the frame may sit in a traceback: it must not hold the error too

    def _task(self, i: int, probe: Probe, target: ProbeTarget, work: guard.Work) -> None:
        self.stage.tasks += 1
        task = asyncio.ensure_future(work)
        task.set_name(guard.task_name(probe, target))
        self.tasks[i] = task
        task.add_done_callback(lambda t: self._finished(i, probe, target, t))

    def _finished(self, i: int, probe: Probe, target: ProbeTarget, task: asyncio.Task[list[Observation]]) -> None:
        self.tasks.pop(i, None)
        if not task.cancelled():
            self._done(i, task.result())
        elif not self.future.done():  # cancelled by something other than the stage: said, not lost
            self._done(
                i, [ProbeFailure(target.service, probe=probe.name, error="Cancelled", reason="the run was cancelled")]
            )

    def _done(self, i: int, found: list[Observation]) -> None:
        if self.future.done():
            return
        self.results[i] = found
        self.left -= 1
        self._fill()
        if self.left == 0 and not self.future.done():
            self.future.set_result(tuple(itertools.chain.from_iterable(r for r in self.results if r)))

    def _ended(self, future: asyncio.Future[tuple[Observation, ...]]) -> None:
        """The future is done: when cancelled (the sweep stopped), nothing of this address goes on."""
        if not future.cancelled():
            return
        for exchange in list(self.exchanges.values()):
            exchange.cancel()
        for task in list(self.tasks.values()):
            task.cancel()
        self.exchanges.clear()
