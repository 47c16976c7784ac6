"""`edgeaudit scan` and `edgeaudit check`: scope -> engine -> store -> reports."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import typing
from typing import Any

import probes
import profiles
from probes import options
from probes.base import PHASE_ORDER, TCP_PORTS, Phase, ProbeConfig, Timeouts
from probes.observations import Mode
from profiles.errors import ScopeError, UsageError
from reports.checklist import printable
from scanner import alerts, feeds, nmap_input, outfiles
from scanner.checks import SweepHost, judge_sweep
from scanner.command import install_signals, is_root, mode_from, worst_exit
from scanner.orchestrator import Engine, HostResult, SweepConfig
from scanner.progress import Progress
from scanner.store import Store, default_path
from scanner.syslog_listen import SyslogListener, parse_listen
from scanner.targets import Scope, build_scope

log = logging.getLogger("edgeaudit")


def _ports(text: str | None) -> tuple[tuple[int, ...], tuple[tuple[int, str], ...]]:
    """Parse --ports: "22,23,2222:ssh" -> ports and name overrides."""
    if not text:
        return tuple(TCP_PORTS), ()
    ports: list[int] = []
    names: list[tuple[int, str]] = []
    for item in (p.strip() for p in text.split(",") if p.strip()):
        number, _, name = item.partition(":")
        try:
            port = int(number)
        except ValueError as exc:
            raise UsageError(f"--ports takes PORT or PORT:SERVICE items, not {item!r}") from exc
        if not 0 < port < 65536:
            raise UsageError(f"--ports: {port} is not 1-65535")
        ports.append(port)
        if name:
            names.append((port, name))
    if not ports:
        raise UsageError("--ports: no port given")
    return tuple(ports), tuple(names)


def _scope(args: argparse.Namespace, command: str) -> tuple[Scope, dict[int, str | None]]:
    """The sweep's scope from its targets or an nmap file, and the open TCP ports that file names."""
    excludes, allow_large = getattr(args, "exclude", []), getattr(args, "allow_large", False)
    if getattr(args, "from_nmap", None) is not None:
        if args.targets:
            raise UsageError("--from-nmap is the scope: give targets or --from-nmap, not both")
        hosts = nmap_input.read(args.from_nmap)
        return build_scope(hosts.addresses, excludes, allow_large=allow_large, origin=hosts.describe()), hosts.open_tcp
    targets = [args.target] if command == "check" else args.targets
    scope = build_scope(targets, excludes, allow_large=allow_large)
    if command == "check" and scope.count != 1:
        raise ScopeError(f"check takes one device; {args.target!r} is {scope.count} addresses")
    return scope, {}


def _config(
    args: argparse.Namespace, mode: Mode, command: str, hinted: dict[int, str | None] | None = None
) -> SweepConfig:
    if args.login_timeout <= 0:
        raise UsageError("--login-timeout must be positive")
    for name in ("concurrency", "max_probes", "per_host"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.syslog_listen:
        parse_listen(args.syslog_listen)
    if args.max_clock_skew <= 0:
        raise UsageError("--max-clock-skew must be positive")
    metrics_file = getattr(args, "metrics_file", None)
    if metrics_file is not None and (metrics_file.suffix != ".prom" or not metrics_file.parent.is_dir()):
        raise UsageError(f"--metrics-file {metrics_file}: needs a .prom file in an existing directory "
                         "(node_exporter's textfile collector reads only *.prom)")  # fmt: skip
    ports, names = _ports(args.ports)
    if hinted:  # ports an nmap run found open: tried too, under nmap's service name where a probe knows it
        ports += tuple(p for p in hinted if p not in ports)
        given = {p for p, _ in names}
        names += tuple((p, name) for p, name in hinted.items() if name and p not in given)
    return SweepConfig(
        mode=mode,
        timeouts=Timeouts(
            connect=args.connect_timeout,
            read=args.timeout,
            login=args.login_timeout,
            probe=args.probe_timeout,
            host=args.host_budget,
        ),
        probe_config=ProbeConfig(
            tcp_ports=ports,
            port_names=names,
            snmp_port=args.snmp_port,
            sip_port=args.sip_port,
            ntp_port=args.ntp_port,
            privileged=is_root() and not args.unprivileged,
            attempt_ledger=str((args.db or default_path()).with_name("login-attempts.sqlite3")),
            sets=options.from_values(vars(args)),  # each probe's options, parsed as their sets declare
        ),
        max_hosts=args.concurrency,
        max_probes=args.max_probes,
        per_host=args.per_host,
        report_unreachable=command == "check",
        max_clock_skew_s=args.max_clock_skew,
        syslog_listen=args.syslog_listen,
        max_feed_age_days=args.max_feed_age,
        vantage=args.vantage,
        **(_discover(args) if command == "discover" else {}),
    )


# `discover`: presence and discovery only, judged by the inventory check (what answers, and what it said).
DISCOVER: dict[str, Any] = {"phases": (Phase.PRESENCE, Phase.DISCOVERY), "checks": frozenset({"EA-SERVICES-OPEN"})}
# `discover --presence-only` (nmap -sn): which hosts are up, by ARP on the link and ICMP echo beyond it.
PRESENCE_ONLY: dict[str, Any] = {**DISCOVER, "checks": frozenset(), "probes": frozenset({"arp", "icmp-echo"})}


def _discover(args: argparse.Namespace) -> dict[str, Any]:
    if not getattr(args, "presence_only", False):
        return DISCOVER
    if not is_root() or args.unprivileged:
        raise UsageError("--presence-only needs root (ARP and ICMP); unprivileged, discover's TCP ports are the test")
    return PRESENCE_ONLY


def _config_json(config: SweepConfig) -> dict[str, Any]:
    bare = dataclasses.replace(config.probe_config, sets=())  # the sets are encoded by their declarations
    data = dataclasses.asdict(dataclasses.replace(config, probe_config=bare))
    data["today"] = config.today.isoformat()
    data["phases"] = [str(p) for p in config.phases]
    data["checks"] = sorted(config.checks) if config.checks is not None else None
    data["probes"] = sorted(config.probes) if config.probes is not None else None
    data["mode"] = str(config.mode)
    del data["probe_config"]["sets"]
    data["probe_config"]["options"] = options.encode_sets(config.probe_config.sets)
    return data


def _probe_config_from_json(data: dict[str, Any]) -> ProbeConfig:
    """The stored probe config; one stored before option sets had every option as a flat key."""
    stored = dict(data)
    sets = stored.pop("options", None)
    if sets is None:
        sets, stored = options.from_legacy(stored)
    known = {f.name for f in dataclasses.fields(ProbeConfig)} - {"sets"}
    if set(stored) - known:
        raise UsageError(f"stored sweep config has unknown probe settings: {sorted(set(stored) - known)}")
    hints = typing.get_type_hints(ProbeConfig)  # its own fields decode by their types, as the sets' do
    values = {k: options.decode(hints[k], v, f"probe_config.{k}") for k, v in stored.items()}
    return ProbeConfig(**values, sets=options.decode_sets(sets))


def _config_from_json(data: dict[str, Any]) -> SweepConfig:
    import datetime as dt

    return SweepConfig(
        mode=Mode(data["mode"]),
        timeouts=Timeouts(**data["timeouts"]),
        probe_config=_probe_config_from_json(data["probe_config"]),
        max_hosts=data["max_hosts"],
        max_probes=data["max_probes"],
        per_host=data["per_host"],
        report_unreachable=data["report_unreachable"],
        today=dt.date.today(),
        max_baseline_age_days=data["max_baseline_age_days"],
        max_clock_skew_s=data.get("max_clock_skew_s", 60.0),
        syslog_listen=data.get("syslog_listen"),
        max_feed_age_days=data.get("max_feed_age_days", 30),
        vantage=data.get("vantage", "lan"),
        phases=tuple(Phase(p) for p in data.get("phases", PHASE_ORDER)),
        checks=frozenset(data["checks"]) if data.get("checks") is not None else None,
        probes=frozenset(data["probes"]) if data.get("probes") is not None else None,
    )


class _StoreSink:
    def __init__(self, store: Store, sweep_id: str, scope: Scope, stream: outfiles.FindingStream) -> None:
        self.store, self.sweep_id, self.scope, self.stream = store, sweep_id, scope, stream

    def host_done(self, result: HostResult) -> None:
        self.store.host_done(self.sweep_id, result, self.scope.hostname_of(result.address))
        self.stream.findings(result.findings)  # recorded first: the stream never shows what the history lacks


def run_scan(args: argparse.Namespace) -> int:
    """Run a scan or check; write reports; return the exit code."""
    probes.load_all()  # every probe's option set registered before a config is built or decoded
    store = Store(args.db or default_path())
    command = args.command
    resume = getattr(args, "resume", None)
    if resume:
        if getattr(args, "targets", None) or getattr(args, "from_nmap", None):
            raise UsageError("--resume continues a recorded sweep: give no targets")
        sweep_id = store.resolve(resume if resume != "latest" else None, unfinished=True)
        record = store.load(sweep_id)
        scope = Scope.from_json(record.scope)
        config = _config_from_json(record.config)
        options.load_inputs(config.probe_config.sets)  # its input files read again, before any packet
        command = record.command
        done = store.done_addresses(sweep_id)
        print(f"edgeaudit: resuming {sweep_id}: {len(done)} of {scope.count} hosts already done", file=sys.stderr)
    else:
        scope, hinted = _scope(args, command)
        config = _config(args, mode_from(args), command, hinted)
        options.load_inputs(config.probe_config.sets)  # every input file read now, before any record or packet
        done = set()
        recorded = _config_json(config)
        site = getattr(args, "site_file", None)
        if site is not None:  # which site it was, and its alerts: the next sweep compares with this one
            recorded["site"] = site.to_json()
        sweep_id = store.begin(command, str(config.mode), scope.to_json(), recorded, config.vantage)
    print(f"edgeaudit: sweep {sweep_id} ({command}, mode {config.mode}): scope {scope.describe()}", file=sys.stderr)
    if not config.probe_config.privileged:
        print("edgeaudit: unprivileged: TCP/UDP discovery only (no ARP, no ICMP)", file=sys.stderr)
    probes.load_all()
    # A sweep without a fingerprint phase (discover) matches no profile: none is read.
    known = profiles.load_all(args.profiles) if Phase.FINGERPRINT in config.phases else []
    progress = Progress(scope.count - len(done), quiet=args.quiet)
    todo = (a for a in scope if a not in done)
    feed_db = feeds.FeedDb(args.db or default_path())
    stream = outfiles.FindingStream(
        args.out / "findings.jsonl", sweep_id, bool(args.show_secrets), resumed=bool(resume)
    )

    async def main() -> bool:
        stop = asyncio.Event()
        task = asyncio.current_task()
        assert task is not None
        install_signals(asyncio.get_running_loop(), stop, task)
        listener = SyslogListener(*parse_listen(config.syslog_listen)) if config.syslog_listen else None
        if listener is not None:
            await listener.start()
            print(f"edgeaudit: listening for syslog on {listener.label}", file=sys.stderr)
        engine = Engine(
            config,
            known,
            on_progress=progress.host,
            observe=listener.observations if listener else None,
            feeds=feed_db,
        )
        try:
            return await engine.sweep(todo, _StoreSink(store, sweep_id, scope, stream), stop)
        finally:
            if listener is not None:
                await listener.stop()

    try:
        interrupted = asyncio.run(main())
    except asyncio.CancelledError:
        interrupted = True
    finally:
        progress.close()
    record = store.load(sweep_id)
    baselines = store.baselines(sweep_id)
    hosts = [
        SweepHost(h.address, h.device, baselines.get(h.address), h.state)
        for h in record.hosts
        if h.state in ("up", "budget")
    ]
    if config.checks is None:  # the sweep-level checks (reuse across devices...) judge full sweeps only
        check_ids, per_host = judge_sweep(hosts, config.mode)
        store.replace_findings(sweep_id, check_ids, per_host)
        stream.findings(f for found in per_host.values() for f in found)
    stream.close()
    store.finish(sweep_id, "interrupted" if interrupted else "complete")
    record = store.load(sweep_id)
    site = (record.config.get("site") or {}).get("name")
    report = outfiles.write_reports(record, args, interrupted, store.last_complete(sweep_id, site))
    if command == "check":
        outfiles.write_check(report, args)
    for line in alerts.after_sweep(store, record):  # after the reports: an alert never costs the sweep
        print(f"edgeaudit: alert: {printable(line)}", file=sys.stderr)  # a server's text among them
    return worst_exit(record.findings, args.fail_on)


def run_merge(args: argparse.Namespace) -> int:
    """`edgeaudit merge LAN WAN`: record the merged sweep, write its reports, exit by --fail-on."""
    from scanner import merge

    store = Store(args.db or default_path())
    lan_id, wan_id = store.resolve(args.lan), store.resolve(args.wan)
    sweep_id = merge.merge(store, lan_id, wan_id, merge.parse_pairs(args.same))
    print(f"edgeaudit: merged LAN sweep {lan_id} and WAN sweep {wan_id} into {sweep_id}", file=sys.stderr)
    record = store.load(sweep_id)
    outfiles.write_reports(record, args)
    return worst_exit(record.findings, args.fail_on)
