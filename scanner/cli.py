"""The edgeaudit command line: its parser, and the commands that need no sweep.

Exit codes (scanner.command): 0 nothing at or above --fail-on; 1 findings at or above it;
2 usage or runtime error; 3 an internal error (a bug).

Commands other distributions add (the ``edgeaudit.commands`` entry-point group) join the
parser: the development lab (``lab/``, installed from a checkout by ``make setup``, never part
of the edgeaudit wheel) adds ``edgeaudit lab``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from profiles.errors import EdgeAuditError, UsageError
from scanner import __version__
from scanner.command import EXIT_ERROR, EXIT_FINDINGS, EXIT_INTERNAL, EXIT_OK, Command, plugins
from scanner.findings import Severity

log = logging.getLogger("edgeaudit")


def _add_scan_options(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--safe",
        action="store_true",
        help="no credential attempts, no SIP INVITE/REGISTER, no authenticated reads (SNMP: v3 discovery only)",
    )
    mode.add_argument(
        "--intrusive", action="store_true", help="also run opt-in intrusive probes (labelled in the report)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("edgeaudit-out"),
        help="directory for report.html, report.json, findings.csv, report.sarif (SARIF 2.1.0), summary.md, and "
        "findings.jsonl, one finding a line written as each host finishes (default: ./edgeaudit-out)",
    )
    p.add_argument("--lang", choices=["ja", "en"], help="report language (default: from the locale)")
    p.add_argument(
        "--metrics-file",
        type=Path,
        metavar="FILE.prom",
        help="also write the sweep's metrics in the Prometheus text format, for node_exporter's textfile "
        "collector (replaced atomically; docs/exports.md)",
    )
    p.add_argument(
        "--fail-on",
        default="high",
        choices=[s.value for s in Severity],
        help="exit 1 when a failure at or above this severity exists (default: high)",
    )
    p.add_argument("--db", type=Path, help="history database (default: $EDGEAUDIT_DB or the user data dir)")
    p.add_argument("--show-secrets", action="store_true", help="do not mask passwords/communities in reports")
    p.add_argument("--profiles", type=Path, action="append", default=[], help="extra profile directory")
    p.add_argument(
        "--ports",
        help="TCP ports to try: PORT or PORT:SERVICE, comma-separated, e.g. 22,80,2222:ssh "
        "(default: 21,22,23,80,443,445,631,5060,5061,8080,8443,9100)",
    )
    p.add_argument("--snmp-port", type=int, default=161, help="UDP port for the SNMP probes (default 161)")
    p.add_argument("--sip-port", type=int, default=5060, help="UDP port for SIP OPTIONS (default 5060)")
    p.add_argument("--ntp-port", type=int, default=123, help="UDP port for the NTP query (default 123)")
    p.add_argument("--timeout", type=float, default=3.0, help="per-read timeout, seconds (default 3)")
    p.add_argument(
        "--login-timeout",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="how long an FTP, Telnet or SSH login waits for its verdict (default 8): real PAM stacks refuse "
        "a wrong password after 2-4.3 s; the login probes' deadlines and the host budget grow to fit",
    )
    p.add_argument("--connect-timeout", type=float, default=1.5, help="TCP connect timeout (default 1.5)")
    p.add_argument("--probe-timeout", type=float, default=10.0, help="deadline for one probe run (default 10)")
    p.add_argument("--host-budget", type=float, default=120.0, help="time budget per host, seconds (default 120)")
    p.add_argument("--concurrency", type=int, default=64, help="hosts scanned at once (default 64)")
    p.add_argument("--max-probes", type=int, default=256, help="probe runs in flight overall (default 256)")
    p.add_argument("--per-host", type=int, default=6, help="probe runs in flight per host (default 6)")
    p.add_argument(
        "--unprivileged",
        action="store_true",
        help="skip ARP, ICMP and SYN knocks even when root: TCP discovery then connects",
    )
    p.add_argument(
        "--syslog-listen",
        metavar="[ADDR:]PORT",
        help="receive syslog (UDP and TCP) during the sweep and credit each device whose messages arrive",
    )
    p.add_argument(
        "--max-feed-age",
        type=int,
        default=30,
        metavar="DAYS",
        help="imported KEV/NVD feeds older than this cannot pass CIAJ-1.3-KNOWN-EXPLOITED (default 30)",
    )
    p.add_argument(
        "--max-clock-skew",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="device clock offset beyond measurement error that fails CIAJ-1.4-CLOCK-SKEW (default 60)",
    )
    p.add_argument(
        "--vantage",
        choices=["lan", "wan"],
        default="lan",
        help="where the scanner stands: lan (inside, default) or wan (outside the edge: what answers there is "
        "exposed, e.g. CIAJ-2.3-VOIP-EXPOSED; combine both sweeps with `edgeaudit merge`)",
    )
    _add_probe_options(p)


def _add_probe_options(p: argparse.ArgumentParser) -> None:
    """The flags each probe's option set declares (probes.options), one --help section per set."""
    import probes
    from probes import options

    probes.load_all()
    groups: dict[str, argparse._ArgumentGroup] = {}
    for d in options.OPTIONS.declared():
        group = groups.get(d.owner.name) or groups.setdefault(d.owner.name, p.add_argument_group(d.owner.title))
        o = d.option
        if o.kind == "flag":
            group.add_argument(o.flag, dest=d.dest, action="store_true", help=o.help)
        else:
            metavar = o.metavar or o.flag.lstrip("-").replace("-", "_").upper()
            action = "append" if o.kind == "append" else "store"
            group.add_argument(o.flag, dest=d.dest, action=action, metavar=metavar, help=o.help)


# The scan options that shape presence and discovery; `discover` takes these and no others.
DISCOVER_OPTIONS = (
    "--out", "--lang", "--db", "--ports", "--snmp-port", "--sip-port", "--ntp-port", "--timeout",
    "--connect-timeout", "--probe-timeout", "--host-budget", "--concurrency", "--max-probes", "--per-host",
    "--unprivileged", "--arp-rate", "--metrics-file",
)  # fmt: skip


def _add_scope_arguments(p: argparse.ArgumentParser, nargs: str) -> None:
    """What a sweep covers: its targets, what to leave out of them, and the size guard."""
    p.add_argument("targets", nargs=nargs, help="CIDR, a-b range, IP, hostname or @file (IPv4 and IPv6)")
    p.add_argument("--exclude", action="append", default=[], help="same forms as targets; repeatable")
    p.add_argument("--allow-large", action="store_true", help="allow more than 65,536 addresses")
    p.add_argument(
        "--from-nmap",
        type=Path,
        metavar="XML",
        help="instead of targets: the hosts an nmap run found up (nmap -oX XML); the TCP ports it found "
        "open join --ports",
    )
    p.add_argument(
        "--site",
        type=Path,
        metavar="FILE",
        help="a site file (TOML): targets, flags (each flag is a key) and [[notify]] alerts of one site; "
        "a flag given on the command line wins (docs/site-file.md)",
    )


def _add_discover_options(p: argparse.ArgumentParser) -> None:
    """`discover`'s flags: the scan parser's own (same help, same defaults), only those that apply.

    Every other scan setting keeps the scan parser's default, so one sweep configuration serves both."""
    scan = argparse.ArgumentParser(add_help=False)
    _add_scan_options(scan)
    for action in scan._actions:
        if any(flag in DISCOVER_OPTIONS for flag in action.option_strings):
            p._add_action(action)
    defaults = {a.dest: a.default for a in scan._actions if not any(f in DISCOVER_OPTIONS for f in a.option_strings)}
    defaults["safe"] = True  # nothing in discovery guesses or logs in: recorded as a safe-mode sweep
    p.set_defaults(**defaults)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to generate --help)."""
    parser = argparse.ArgumentParser(
        prog="edgeaudit",
        description="Check routers, IP-PBX/SIP servers and fax MFPs against the CIAJ network equipment "
        "security guideline. Scans only the targets you name.",
    )
    parser.add_argument("--version", action="version", version=f"edgeaudit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors and the final summary")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    # The same two flags are accepted after the subcommand too (SUPPRESS keeps the top-level value).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    scan = sub.add_parser("scan", parents=[common], help="sweep targets, write reports, record history")
    _add_scope_arguments(scan, "*")  # none with --resume
    scan.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="SWEEP",
        help="continue an interrupted sweep (default: the newest unfinished)",
    )
    _add_scan_options(scan)

    disc = sub.add_parser(
        "discover",
        parents=[common],
        help="presence and open services only (as nmap -sn plus the service ports): the inventory, "
        "recorded in the history and written as reports; no fingerprinting, no logins, no checks",
    )
    _add_scope_arguments(disc, "*")
    disc.add_argument(
        "--presence-only",
        action="store_true",
        help="which hosts are up and nothing more (as nmap -sn): ARP on the link, ICMP echo beyond it; "
        "no service port is touched (root)",
    )
    _add_discover_options(disc)

    check = sub.add_parser(
        "check",
        parents=[common],
        help="installer hand-off check of one device: prints each CIAJ item ok / not ok / to check",
    )
    check.add_argument("target", help="one IP address or hostname")
    check.add_argument(
        "--handoff",
        action="store_true",
        help="also write the one-page hand-off sheet into --out: handoff.html (A4, print CSS) and handoff.pdf "
        "through headless Chromium when it is installed; the checklist itself is always printed",
    )
    _add_scan_options(check)

    merge = sub.add_parser(
        "merge",
        parents=[common],
        help="join a LAN sweep and a WAN sweep of one site (exposure seen from outside, per device)",
        description="Record one sweep made of a LAN sweep and a --vantage wan sweep: each LAN device takes the "
        "exposure findings (e.g. CIAJ-2.3-VOIP-EXPOSED) of the WAN address joined to it, by --same or by an SSH "
        "host key, TLS certificate or SNMP engine ID only the two share. Writes reports like scan.",
    )
    merge.add_argument("lan", help="the LAN sweep: id, unique prefix, 'latest' or -N")
    merge.add_argument("wan", help="the WAN sweep (scanned with --vantage wan)")
    merge.add_argument(
        "--same", action="append", default=[], metavar="WAN=LAN", help="this WAN address is that LAN device"
    )
    merge.add_argument("--db", type=Path, help="history database (default: $EDGEAUDIT_DB or the user data dir)")
    merge.add_argument("--out", type=Path, default=Path("edgeaudit-out"), help="report directory")
    merge.add_argument("--lang", choices=["ja", "en"], help="report language (default: from the locale)")
    merge.add_argument("--show-secrets", action="store_true", help="do not mask passwords/communities in reports")
    merge.add_argument(
        "--fail-on",
        default="high",
        choices=[s.value for s in Severity],
        help="exit 1 when a failure at or above this severity exists (default: high)",
    )

    wifi = sub.add_parser(
        "wifi",
        parents=[common],
        help="judge Wi-Fi security (WEP, WPA/TKIP, open, WPS) from a capture or a monitor interface",
        description="Decode the beacons and probe responses of a pcap/pcapng capture, or listen on a "
        "monitor-mode interface (nothing is transmitted), and judge each network: WEP, WPA/TKIP, open, "
        "WPS (MIC guidance: WPA2 or WPA3 only). Recorded in the history as a sweep of vantage 'air'.",
    )
    source = wifi.add_mutually_exclusive_group()
    source.add_argument("--pcap", type=Path, metavar="FILE", help="a pcap or pcapng capture with 802.11 frames")
    source.add_argument("--iface", metavar="IFACE", help="a monitor-mode interface, e.g. wlan0mon (root)")
    wifi.add_argument("--seconds", type=float, default=30.0, help="how long to listen with --iface (default 30)")
    wifi.add_argument(
        "--join", metavar="SWEEP", help="report networks on the devices of this sweep whose MAC the BSSID matches"
    )
    wifi.add_argument("--db", type=Path, help="history database (default: $EDGEAUDIT_DB or the user data dir)")
    wifi.add_argument("--out", type=Path, default=Path("edgeaudit-out"), help="report directory")
    wifi.add_argument("--lang", choices=["ja", "en"], help="report language (default: from the locale)")
    wifi.add_argument("--show-secrets", action="store_true", help=argparse.SUPPRESS)
    wifi.add_argument(
        "--fail-on",
        default="high",
        choices=[s.value for s in Severity],
        help="exit 1 when a failure at or above this severity exists (default: high)",
    )

    hist = sub.add_parser("history", parents=[common], help="list recorded sweeps")
    hist.add_argument("--db", type=Path)
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true")

    diff = sub.add_parser(
        "diff",
        parents=[common],
        help="compare two sweeps (default: the newest, and the sweep before it of the same vantage)",
    )
    diff.add_argument("old", nargs="?", default=None)
    diff.add_argument("new", nargs="?", default="-1")
    diff.add_argument("--db", type=Path)
    diff.add_argument("--json", action="store_true")
    diff.add_argument(
        "--fail-on",
        default="high",
        choices=[s.value for s in Severity],
        help="exit 1 when a newly failing finding is at or above this severity",
    )

    rep = sub.add_parser("report", parents=[common], help="render a recorded sweep")
    rep.add_argument("sweep", nargs="?", default="latest", help="sweep id, unique prefix, 'latest' or -N")
    rep.add_argument(
        "--format", choices=["html", "json", "jsonl", "csv", "sarif", "markdown"], default="html",
        help="html (default), json (report.json), jsonl (a finding a line), csv, sarif (SARIF 2.1.0, for code-"
        "scanning dashboards and DefectDojo) or markdown (a summary for tickets and chat)",
    )  # fmt: skip
    rep.add_argument("--lang", choices=["ja", "en"])
    rep.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    rep.add_argument("--db", type=Path)
    rep.add_argument("--show-secrets", action="store_true")

    for plugin in plugins().values():
        plugin.add_parser(sub, common)

    feeds = sub.add_parser(
        "feeds", parents=[common], help="import offline vulnerability feeds (CISA KEV, NVD CVE JSON 2.0)"
    )
    feeds_sub = feeds.add_subparsers(dest="action", required=True)
    fi = feeds_sub.add_parser("import", help="import KEV and/or NVD JSON files you downloaded (no network access)")
    fi.add_argument("files", nargs="+", type=Path)
    fi.add_argument("--db", type=Path, help="history database whose directory holds feeds.sqlite3")
    fs = feeds_sub.add_parser("status", help="which feeds are imported, and their dates")
    fs.add_argument("--db", type=Path)

    prof = sub.add_parser("profiles", parents=[common], help="list or validate device profiles")
    prof_sub = prof.add_subparsers(dest="action", required=True)
    pl = prof_sub.add_parser("list", help="list profiles")
    pl.add_argument("--profiles", type=Path, action="append", default=[])
    pv = prof_sub.add_parser("validate", help="validate profile files (default: all built-in)")
    pv.add_argument("files", nargs="*", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The edgeaudit command line (called by scanner.entry.main, and by ``python -m scanner.cli``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.INFO, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="edgeaudit: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "asyncio", "asyncssh", "pysnmp", "scapy.runtime"):
        logging.getLogger(noisy).setLevel(logging.WARNING if args.verbose < 2 else logging.DEBUG)
    try:
        if getattr(args, "site", None) is not None:
            _apply_site(parser, argv, args)
        if args.command in ("scan", "check", "discover"):
            from scanner.runner import run_scan

            return run_scan(args)
        if args.command == "merge":
            from scanner.runner import run_merge

            return run_merge(args)
        if args.command == "wifi":
            from scanner.wifi_cmd import run_wifi

            return run_wifi(args)
        if args.command == "history":
            return _history(args)
        if args.command == "diff":
            return _diff(args)
        if args.command == "report":
            return _report(args)
        if args.command == "profiles":
            return _profiles(args)
        if args.command == "feeds":
            return _feeds(args)
        plugin: Command | None = plugins().get(args.command)
        if plugin is not None:
            return plugin.run(args)
    except EdgeAuditError as exc:
        print(f"edgeaudit: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("edgeaudit: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception:  # a bug: never mistaken for "findings" (1) by a scheduler or a Makefile
        traceback.print_exc()
        print("edgeaudit: internal error (a bug; the traceback is above)", file=sys.stderr)
        return EXIT_INTERNAL
    raise UsageError(f"unknown command {args.command}")


def _apply_site(parser: argparse.ArgumentParser, argv: list[str], args: argparse.Namespace) -> None:
    """Fill ``args`` from ``--site FILE`` where the command line gave no value (scanner.site)."""
    from scanner import site

    loaded = site.load(args.site, site.subparser(parser, "scan"))
    given = site.explicit(build_parser, argv, set(loaded.values))
    if getattr(args, "resume", None):  # the resumed sweep has its scope
        given |= {"targets", "from_nmap"}
    accepted = {a.dest for a in site.subparser(parser, args.command)._actions}
    skipped = site.apply(loaded, args, given, accepted)
    if skipped:
        log.info("site file %s: %s do not apply to %s", args.site, ", ".join(sorted(skipped)), args.command)
    args.site_file = loaded


def _store(path: Path | None) -> Any:
    from scanner.store import Store, default_path

    return Store(path or default_path())


def _history(args: argparse.Namespace) -> int:
    import datetime as dt

    rows = _store(args.db).list(args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no sweeps recorded")
    for r in rows:
        when = dt.datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M")
        print(
            f"{r['id']}  {when}  {r['command']:5} {r['vantage']:7} {r['mode']:9} {r['state']:11} "
            f"{r['hosts_up']:4} up {r['failures']:4} fail  {' '.join(r['targets'])}"
        )
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from scanner.diff import diff

    store = _store(args.db)
    new = store.load(store.resolve(args.new))
    if args.old is None:
        # The newest earlier sweep seen from the same place: a WAN sweep or a merged one is not
        # a LAN sweep's predecessor.
        earlier = [s for s in store.list(limit=1000) if s["started_at"] < new.started_at]
        like = [s["id"] for s in earlier if s["vantage"] == new.vantage]
        if not like:
            raise UsageError(f"no sweep of vantage {new.vantage!r} before {new.id} to compare with")
        old = store.load(like[0])
    else:
        old = store.load(store.resolve(args.old))
    d = diff(old, new)
    if args.json:
        print(json.dumps(d.to_json(), indent=2, ensure_ascii=False))
    else:
        print(f"diff {d.old} -> {d.new}")
        for a in d.new_devices:
            print(f"  + device {a}")
        for a in d.vanished_devices:
            print(f"  - device {a}")
        for f in d.new_findings:
            print(f"  + {f.address} {f.check_id} {f.service or ''} {f.status} ({f.severity})")
        for f in d.resolved:
            print(f"  - {f.address} {f.check_id} {f.service or ''} was {f.status}")
        for o, n in d.changed:
            print(f"  ~ {n.address} {n.check_id} {n.service or ''} {o.status} -> {n.status}")
        for c in d.fingerprint_changes:
            print(f"  ~ {c['address']} {c['field']}: {c['old']!r} -> {c['new']!r}")
    worst = d.worst_new()
    return EXIT_FINDINGS if worst and worst.rank >= Severity(args.fail_on).rank else EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from reports import render
    from scanner import document

    store = _store(args.db)
    sweep = store.load(store.resolve(args.sweep))
    text = render.render(
        document.build(sweep, show_secrets=args.show_secrets), args.format, args.lang or render.default_lang()
    )
    if args.output:
        from scanner import outfiles

        outfiles.write_text(args.output, text, secret=bool(args.show_secrets))
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _feeds(args: argparse.Namespace) -> int:
    from scanner import feeds
    from scanner.store import default_path

    db = args.db or default_path()
    if args.action == "import":
        for line in feeds.import_files(db, list(args.files)):
            print(line)
    status = feeds.FeedDb(db).status()
    if not status:
        print(f"no feeds imported ({feeds.path_for(db)})")
    for kind, info in sorted(status.items()):
        print(f"{kind}: released {info['released'] or '?'}, {info['entries']} CVEs, imported {info['imported_at']}")
    return EXIT_OK


def _profiles(args: argparse.Namespace) -> int:
    import profiles

    if args.action == "list":
        for p in profiles.load_all(args.profiles):
            creds = len(p.default_credentials)
            print(
                f"{p.id:20} {p.device_class:6} {p.vendor} — {p.product} "
                f"({len(p.fingerprints)} fingerprints, {len(p.baselines)} baselines, {creds} default creds)"
            )
        return EXIT_OK
    files = args.files or sorted(profiles.builtin_dir().glob("*.yaml"))
    bad = 0
    for path in files:
        try:
            profiles.load_file(path)
        except EdgeAuditError as exc:
            bad += 1
            print(f"INVALID {exc}", file=sys.stderr)
    print(f"{len(files) - bad} valid, {bad} invalid")
    return EXIT_ERROR if bad else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
