"""The sweep engine. Imports no protocol library: probes come from the registry.

Per host: PRESENCE -> DISCOVERY -> (alive?) -> FINGERPRINT -> profile match ->
READ (authenticated, read-only) -> ASSESS -> checks. Every probe run has an
absolute deadline; every host has a budget; a global and a per-host limiter
bound concurrency. Anything a probe raises
becomes a ProbeFailure observation (inconclusive), never a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import gc
import importlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import profiles as profiles_mod
from probes.base import (
    PHASE_ORDER,
    REGISTRY,
    HostSnapshot,
    Phase,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeTarget,
    Screen,
    Screened,
    Timeouts,
)
from probes.base import Registry as ProbeRegistry
from probes.login.ledger import Ledger
from probes.observations import (
    HostAlive,
    Mode,
    Observation,
    PortState,
    ProbeFailure,
    Service,
    field_values,
)
from probes.wire import shared_udp, syn
from profiles.errors import StoreError
from scanner import checks as checks_mod
from scanner import guard, offload, pipeline, udp_stage
from scanner.device import DeviceRecord, describe
from scanner.feeds import FeedDb
from scanner.findings import Finding, Status

log = logging.getLogger("edgeaudit.engine")

RECORD_TIMEOUT_S = 30.0  # one host's result written by the sink (the history's busy timeout is 10 s)
DOWN_BATCH = 512  # screened-down addresses handed to the sink per writer-thread call
START_BURST = 16  # tasks started in one step of the loop before it runs the others
UDP_WINDOW = 1024  # the UDP stage's window at most; shared_udp.window() lowers it to a quarter of the neighbour table
JUDGE_TIMEOUT_S = 30.0  # one host's checks, the offline feed database's reads included


@dataclass(frozen=True)
class SweepConfig:
    """Everything that shapes one sweep."""

    mode: Mode = Mode.DEFAULT
    timeouts: Timeouts = field(default_factory=Timeouts)
    probe_config: ProbeConfig = field(default_factory=ProbeConfig)
    max_hosts: int = 64  # hosts in flight
    max_probes: int = 256  # probe runs in flight, all hosts
    per_host: int = 6  # probe runs in flight on one host
    report_unreachable: bool = False  # `check`: a silent device is an inconclusive finding
    today: dt.date = field(default_factory=dt.date.today)
    max_baseline_age_days: int = 365
    max_clock_skew_s: float = 60.0
    syslog_listen: str | None = None  # "[ADDR:]PORT" of the sweep's syslog receiver
    max_feed_age_days: int = 30
    vantage: str = "lan"  # "wan": the scanner stands outside the edge; exposure checks judge what answers
    phases: tuple[Phase, ...] = PHASE_ORDER  # `discover`: presence and discovery only
    checks: frozenset[str] | None = None  # the per-host checks judged (None: all); `discover`: the inventory
    probes: frozenset[str] | None = None  # the probes run (None: all the mode allows); `discover --presence-only`


@dataclass
class HostResult:
    """What one host produced; committed to the store as soon as it exists."""

    address: str
    state: str  # "up" | "down" | "budget"
    started_at: float
    finished_at: float
    findings: list[Finding]
    device: DeviceRecord


class ResultSink(Protocol):
    """Receives each host's result as soon as the host is done.

    Called on the sweep's writer thread (never on the event loop: a history write may
    wait on the disk or on another process's lock), one result at a time.
    """

    def host_done(self, result: HostResult) -> None:
        """Persist or display one host's result."""


class _HostState:
    def __init__(self, address: str) -> None:
        self.address = address
        self.observations: list[Observation] = []
        self.pending: dict[tuple[str, str], Service | None] = {}
        self.screened: frozenset[str] = frozenset()  # probes a sweep-wide screen already ran for this host
        self.ahead: asyncio.Future[tuple[Observation, ...]] | None = None  # the UDP stage's work on it
        self.budget_s = 0.0  # the host's time budget: --host-budget, grown to fit its later phases
        self.down_reason = "no TCP port, UDP service, ARP or ICMP answer"

    def add(self, items: Iterable[Observation]) -> None:
        self.observations.extend(items)

    @property
    def services(self) -> frozenset[Service]:
        out: set[Service] = set()
        for o in self.observations:
            if o.service is None:
                continue
            if (isinstance(o, PortState) and o.is_open) or type(o).proves_open:
                out.add(o.service)
        return frozenset(out)

    @property
    def alive(self) -> bool:
        for o in self.observations:
            if isinstance(o, HostAlive) or type(o).proves_open:
                return True
            if isinstance(o, PortState) and o.state in ("open", "closed"):
                return True
        return False

    def failed(self, probes: Iterable[str]) -> bool:
        """Whether any of these probes ended in a failure (no trustworthy answer either way)."""
        names = set(probes)
        return any(isinstance(o, ProbeFailure) and o.probe in names for o in self.observations)

    def snapshot(self, profile: profiles_mod.Profile | None) -> HostSnapshot:
        return HostSnapshot(self.address, self.services, tuple(self.observations), profile)


class Engine:
    """Runs sweeps. One instance per sweep; holds the limiters and the sweep's attempt ledger."""

    def __init__(
        self,
        config: SweepConfig,
        profiles: Sequence[profiles_mod.Profile],
        registry: ProbeRegistry = REGISTRY,
        on_progress: Callable[[HostResult], None] | None = None,
        observe: Callable[[str], Awaitable[list[Observation]]] | None = None,
        feeds: FeedDb | None = None,
    ) -> None:
        self.feeds = feeds
        self.config = config
        self.observe = observe  # what a sweep-wide receiver (the syslog listener) saw of a host, before judging
        self.profiles = profiles
        self.registry = registry
        self.on_progress = on_progress
        self._global = asyncio.Semaphore(config.max_probes)
        self.checks = checks_mod.load_all()
        # The sweep's own ledger, handed to every probe: it shares counts with other sweeps only
        # through the file it names (in memory when none), never through this process's memory.
        self.ledger = Ledger(config.probe_config.attempt_ledger)
        self._writer: offload.Worker | None = None  # the sink's thread (history writes)
        self._judge_thread: offload.Worker | None = None  # checks run here: the feed database is read off the loop

    async def sweep(self, addresses: Iterable[str], sink: ResultSink, stop: asyncio.Event) -> bool:
        """Scan every address; return True when stopped early (Ctrl-C) with work left.

        The addresses pass through the sweep's screen first (the sweep-wide form of a PRESENCE
        probe, e.g. paced ARP for the whole scope): an address it finds down is recorded down at
        once, with its reason, and never becomes a host task; one that answered starts its host
        with what the screen saw; one it cannot judge goes through every per-host probe.
        """
        slots = asyncio.Semaphore(self.config.max_hosts)
        interrupted = False
        await self._import_libraries()
        # What is loaded by now (libraries, profiles, checks) lives as long as the process: out of the
        # collector's sight, a full collection during the sweep no longer walks it (tens of ms on the loop).
        gc.freeze()
        screen = self._screen()
        stream = screen[1].screen(addresses) if screen else _unscreened(addresses)
        screened_by = frozenset({screen[0]}) if screen else frozenset()
        early = [cls() for cls in self.registry.in_phase(Phase.DISCOVERY) if cls.sweep_wide and self._runs(cls)]
        # `check` (one named device, report_unreachable) has no stage: nothing to work ahead of.
        staged: AsyncGenerator[tuple[Screened, asyncio.Future[tuple[Observation, ...]] | None], None]
        if early and not self.config.report_unreachable:
            window = shared_udp.window(UDP_WINDOW)
            paces = (
                pipeline.steady(self.config.probe_config.options(shared_udp.UdpOptions).udp_rate / len(early)),
                # The kernel's neighbour table: a window's worth at once, then a tenth of the table a second.
                pipeline.Pace(shared_udp.new_destinations_per_s(), window),
            )
            stage = udp_stage.UdpStage(early, self.config.probe_config, self.config.per_host, self._context)
            work = functools.partial(self._ahead, stage)
            staged = pipeline.ahead(stream, work, _not_down, window=window, paces=paces)
        else:
            staged = _alone(stream)
        early_names = frozenset(p.name for p in early)
        down: list[HostResult] = []
        started = 0

        async def one(item: Screened, pending: asyncio.Future[tuple[Observation, ...]] | None) -> None:
            try:
                skip = screened_by if item.screened else frozenset()
                skip |= early_names if pending is not None else frozenset()
                result = await self.scan_host(item.address, item, skip, pending)
                await self._record(sink, [result])
            finally:
                slots.release()

        try:
            with shared_udp.shared(), syn.shared(self.config.probe_config.privileged):
                async with contextlib.aclosing(staged) as items, asyncio.TaskGroup() as tg:
                    async for item, pending in items:
                        if stop.is_set():
                            interrupted = True
                            break
                        if item.down is not None:
                            down.append(await self._down(item.address, item.down))
                            if len(down) >= DOWN_BATCH:
                                batch, down = down, []
                                await self._record(sink, batch)
                            continue
                        await slots.acquire()
                        if stop.is_set():
                            slots.release()
                            interrupted = True
                            break
                        tg.create_task(one(item, pending), name=f"host {item.address}")
                        started += 1
                        if started % START_BURST == 0:  # a screen answers in bursts: let the loop run between
                            await asyncio.sleep(0)
                    if down:
                        batch, down = down, []
                        await self._record(sink, batch)
        finally:
            await asyncio.shield(self._close())
        return interrupted

    def _screen(self) -> tuple[str, Screen] | None:
        """The sweep's screen: the first PRESENCE probe (by name) this sweep runs that has a sweep-wide form."""
        for cls in self.registry.in_phase(Phase.PRESENCE):
            if self._runs(cls):
                screen = cls().screen(self.config.probe_config)
                if screen is not None:
                    return cls.name, screen
        return None

    async def _down(self, address: str, reason: str) -> HostResult:
        """A screened-down address's result: judged only where a silent device is a finding (`check`)."""
        now = time.time()
        state = _HostState(address)
        state.down_reason = reason
        findings = await self._judge_off_loop(state, None, False) if self.config.report_unreachable else []
        return HostResult(address, "down", now, now, findings, describe((), frozenset(), None))

    async def _record(self, sink: ResultSink, results: list[HostResult]) -> None:
        """Hand host results to the sink on the writer thread (off the loop), within RECORD_TIMEOUT_S; then progress."""
        if self._writer is None:
            self._writer = offload.Worker("edgeaudit-history")

        def write() -> None:
            for result in results:
                sink.host_done(result)

        try:
            await self._writer.call(write, RECORD_TIMEOUT_S)
        except TimeoutError as exc:
            what = results[0].address + (f" and {len(results) - 1} more" if len(results) > 1 else "")
            raise StoreError(f"recording host {what} took over {RECORD_TIMEOUT_S:g}s") from exc
        if self.on_progress:
            for result in results:
                self.on_progress(result)

    async def _close(self) -> None:
        """End of the sweep: the ledger's database and thread, and the writer thread (its work is awaited)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown()
        judge, self._judge_thread = self._judge_thread, None
        if judge is not None:
            judge.shutdown()
        try:
            await self.ledger.close()
        except StoreError as exc:  # its rows are committed already: only the closing failed
            log.warning("%s", exc)

    async def _import_libraries(self) -> None:
        """Import the slow libraries this sweep's probes load lazily, in a thread, before any host starts."""
        names = {name for cls in self.registry.probes.values() if self._runs(cls) for name in cls.imports}
        loop = asyncio.get_running_loop()
        for name in sorted(names):
            await loop.run_in_executor(None, importlib.import_module, name)

    def _runs(self, cls: type[Probe]) -> bool:
        """Whether this sweep runs the probe at all: its mode allows it, its phase and name are the sweep's."""
        if not self.config.mode.allows(cls.risk) or cls.phase not in self.config.phases:
            return False
        return self.config.probes is None or cls.name in self.config.probes

    def _ahead(self, stage: udp_stage.UdpStage, item: Screened) -> asyncio.Future[tuple[Observation, ...]]:
        """The sweep's UDP stage for one address: what its sweep-wide discovery probes observe of it.

        Runs outside any host slot, bounded by the stage's window and pace (and --per-host on the
        address), not by --max-probes: its exchanges are datagrams on the sweep's shared sockets."""
        state = _HostState(item.address)
        state.add(item.observations)
        return stage.start(state.snapshot(None))

    async def _take_ahead(self, state: _HostState, task: asyncio.Future[tuple[Observation, ...]]) -> None:
        """The host's discovery phase takes what the UDP stage found of it (awaited beside its own probes)."""
        key = ("udp-stage", "")
        state.pending[key] = None  # a host budget running out while it waits says so, as for a probe
        try:
            state.add(await asyncio.shield(task))
        except Exception as exc:  # a stage bug is inconclusive, never a pass
            log.exception("the UDP stage failed on %s", state.address)
            state.add(
                [ProbeFailure(None, probe="udp-stage", error="ProbeCrashed", reason=f"{type(exc).__name__}: {exc}")]
            )
        finally:
            state.pending.pop(key, None)

    async def scan_host(
        self,
        address: str,
        screened: Screened | None = None,
        skip: frozenset[str] = frozenset(),
        ahead: asyncio.Future[tuple[Observation, ...]] | None = None,
    ) -> HostResult:
        """All phases on one host within its budget; always returns a result.

        ``screened``: what the sweep's screen saw of it; ``skip``: the probes that screen and the UDP
        stage stand for; ``ahead``: the UDP stage's work on it, taken in the discovery phase."""
        started = time.time()
        state = _HostState(address)
        state.screened = skip
        state.ahead = ahead
        if screened is not None:
            state.add(screened.observations)
        state.budget_s = self.config.timeouts.host
        host_limit = asyncio.Semaphore(self.config.per_host)
        match: profiles_mod.Match | None = None
        budget_hit = False
        try:
            async with asyncio.timeout(self.config.timeouts.host) as budget:
                for phase in (p for p in PHASE_ORDER if p in self.config.phases):
                    ran = await self._phase(phase, state, host_limit, match)
                    if phase == Phase.PRESENCE and ran and not state.alive and not state.failed(ran):
                        # An on-link address that does not answer ARP cannot talk IP at all: it is
                        # down, and every other probe would only wait for its timeout (as nmap -PR).
                        # (ARP runs only for on-link addresses: one behind a router goes on to discovery.)
                        state.down_reason = "no ARP answer (an on-link address: ARP decides presence)"
                        break
                    if phase == Phase.DISCOVERY and not state.alive:
                        break
                    if phase == Phase.FINGERPRINT:
                        match = profiles_mod.match(self.profiles, field_values(state.observations))
                        self._fit_budget(budget, state, match)
                    if phase == Phase.READ and match is not None:
                        match = profiles_mod.refine(match, field_values(state.observations))
        except TimeoutError:
            budget_hit = True
            for (probe_name, _), service in list(state.pending.items()):
                state.add(
                    [
                        ProbeFailure(
                            service,
                            probe=probe_name,
                            error="Timeout",
                            reason=f"host time budget ({state.budget_s:g}s) ran out",
                        )
                    ]
                )
            if match is None:
                match = profiles_mod.match(self.profiles, field_values(state.observations))
        if self.observe is not None and state.alive:
            try:
                async with asyncio.timeout(5):
                    state.add(await self.observe(address))
            except TimeoutError:
                log.warning("side observations for %s timed out", address)
        findings = await self._judge_off_loop(state, match, budget_hit)
        status = "budget" if budget_hit else ("up" if state.alive else "down")
        device = describe(state.observations, state.services, match)
        return HostResult(address, status, started, time.time(), findings, device)

    def _fit_budget(self, budget: asyncio.Timeout, state: _HostState, match: profiles_mod.Match | None) -> None:
        """Grow the host's budget so its READ and ASSESS phases fit, each its longest probe deadline.

        Paced logins waiting up to the login timeout for each refusal take longer than
        --host-budget allows at its default: a budget cut would leave them unjudged.
        """
        snapshot = state.snapshot(match.profile if match else None)
        need = 0.0
        for phase in (Phase.READ, Phase.ASSESS):
            deadlines = [
                probe.deadline(self.config.timeouts, self.config.probe_config, snapshot.profile)
                for probe in (cls() for cls in self.registry.in_phase(phase) if self._runs(cls))
                if probe.targets(snapshot, self.config.probe_config)
            ]
            need += max(deadlines, default=0.0) + 1.0  # + the backstop's half second, twice
        loop = asyncio.get_running_loop()
        when = budget.when()
        if when is not None and loop.time() + need > when:
            state.budget_s = round(state.budget_s + loop.time() + need - when, 1)
            budget.reschedule(loop.time() + need)

    async def _phase(
        self, phase: Phase, state: _HostState, host_limit: asyncio.Semaphore, match: profiles_mod.Match | None
    ) -> set[str]:
        """Run the phase's probes; returns the names of those that ran."""
        snapshot = state.snapshot(match.profile if match else None)
        runs: list[tuple[Probe, Service | None]] = []
        for cls in self.registry.in_phase(phase):
            if not self._runs(cls) or cls.name in state.screened:
                continue
            probe = cls()
            runs.extend((probe, svc) for svc in probe.targets(snapshot, self.config.probe_config))
        ahead, state.ahead = (state.ahead, None) if phase == Phase.DISCOVERY else (None, state.ahead)
        if not runs and ahead is None:
            return set()
        async with asyncio.TaskGroup() as tg:
            if ahead is not None:
                tg.create_task(self._take_ahead(state, ahead))
            for n, (probe, svc) in enumerate(runs, 1):
                tg.create_task(
                    self._run_probe(probe, svc, state, host_limit, match),
                    name=guard.task_name(probe, ProbeTarget(state.address, svc)),
                )
                if n % START_BURST == 0:
                    await asyncio.sleep(0)
        return {probe.name for probe, _svc in runs}

    def _context(self, probe: Probe, snapshot: HostSnapshot) -> tuple[ProbeContext, float]:
        """A probe run's context, its deadline starting now, and the seconds it is allowed."""
        allowed = probe.deadline(self.config.timeouts, self.config.probe_config, snapshot.profile)
        ctx = ProbeContext(
            timeouts=self.config.timeouts,
            mode=self.config.mode,
            config=self.config.probe_config,
            deadline=asyncio.get_running_loop().time() + allowed,
            profile=snapshot.profile,
            host=snapshot,
            ledger=self.ledger,
        )
        return ctx, allowed

    async def _run_probe(
        self,
        probe: Probe,
        service: Service | None,
        state: _HostState,
        host_limit: asyncio.Semaphore,
        match: profiles_mod.Match | None,
    ) -> None:
        key = (probe.name, service.key if service else "")
        state.pending[key] = service
        try:
            async with self._global, host_limit:
                ctx, allowed = self._context(probe, state.snapshot(match.profile if match else None))
                target = ProbeTarget(state.address, service)
                # The probe must honour ctx.deadline; the guard's backstop cuts it if it does not.
                state.add(await guard.guarded(probe, target, probe.run(target, ctx), ctx.deadline, allowed))
        finally:
            state.pending.pop(key, None)

    async def _judge_off_loop(
        self, state: _HostState, match: profiles_mod.Match | None, budget_hit: bool
    ) -> list[Finding]:
        """The host's checks on the engine's judging thread (the feed database is SQLite), within JUDGE_TIMEOUT_S."""
        if self._judge_thread is None:
            self._judge_thread = offload.Worker("edgeaudit-judge")
        try:
            judge = functools.partial(self._judge, state, match, budget_hit)
            return await self._judge_thread.call(judge, JUDGE_TIMEOUT_S)
        except TimeoutError as exc:
            raise StoreError(f"judging host {state.address} took over {JUDGE_TIMEOUT_S:g}s (feed database?)") from exc

    def _judge(self, state: _HostState, match: profiles_mod.Match | None, budget_hit: bool) -> list[Finding]:
        view = checks_mod.HostView(
            address=state.address,
            mode=self.config.mode,
            observations=tuple(state.observations),
            match=match,
            today=self.config.today,
            max_baseline_age_days=self.config.max_baseline_age_days,
            max_clock_skew_s=self.config.max_clock_skew_s,
            feeds=self.feeds,
            max_feed_age_days=self.config.max_feed_age_days,
            open_services=state.services,
            vantage=self.config.vantage,
        )
        findings: list[Finding] = []
        if not state.alive and not budget_hit:
            if self.config.report_unreachable and self.config.vantage == "wan":
                # One named device, seen from outside: that nothing answers is the exposure result.
                for check_id in sorted(checks_mod.OUTSIDE_CHECKS):
                    findings.extend(self.checks[check_id](view))
            elif self.config.report_unreachable:
                findings.append(
                    view.finding(
                        "EA-HOST-UNREACHABLE",
                        Status.INCONCLUSIVE,
                        evidence={
                            "reason": state.down_reason,
                            "failures": [f.reason for f in view.failures()][:10],
                        },
                    )
                )
            return findings
        if budget_hit:
            findings.append(
                view.finding(
                    "EA-HOST-BUDGET",
                    Status.INCONCLUSIVE,
                    evidence={"reason": f"host budget of {state.budget_s:g}s ran out before every probe finished"},
                )
            )
        by_service: dict[str | None, list[ProbeFailure]] = {}
        for failure in view.failures():
            by_service.setdefault(failure.service.key if failure.service else None, []).append(failure)
        for _, failures in sorted(by_service.items(), key=lambda kv: kv[0] or ""):
            findings.append(
                view.finding(
                    "EA-PROBE-INCONCLUSIVE",
                    Status.INCONCLUSIVE,
                    service=failures[0].service,
                    evidence={"failures": [{"probe": f.probe, "error": f.error, "reason": f.reason} for f in failures]},
                )
            )
        for check_id in sorted(self.checks):
            if self.config.checks is not None and check_id not in self.config.checks:
                continue
            try:
                judged = self.checks[check_id](view)
            except Exception as exc:  # a broken check is inconclusive, loudly
                log.exception("check %s crashed on %s", check_id, state.address)
                judged = [
                    view.finding(
                        check_id,
                        Status.INCONCLUSIVE,
                        evidence={"reason": f"check crashed: {type(exc).__name__}: {exc}"},
                    )
                ]
            if budget_hit:
                judged = checks_mod.no_pass_on_budget(judged)
            findings.extend(judged)
        return findings


def _not_down(item: Screened) -> bool:
    return item.down is None


async def _alone(
    stream: AsyncGenerator[Screened, None],
) -> AsyncGenerator[tuple[Screened, asyncio.Future[tuple[Observation, ...]] | None], None]:
    """No UDP stage: each address without stage work."""
    async with contextlib.aclosing(stream):
        async for item in stream:
            yield item, None


async def _unscreened(addresses: Iterable[str]) -> AsyncGenerator[Screened, None]:
    """No screen: every address goes through the per-host probes."""
    for address in addresses:
        yield Screened(address, screened=False)
