"""The namespace lab: built, swept, compared with the golden files, torn down without leftovers.

The tests marked ``lab`` need root (CI runs as root); they take over the ealab-*
namespaces, so a lab started by hand is replaced. Teardown runs even when a
test fails. The golden-coverage and topology tests need nothing special.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import control, fleet, golden, netns
from scanner.checks import catalog
from scanner.device import DeviceRecord, Kind
from scanner.findings import Severity

ROOT = Path(__file__).resolve().parents[1]
AUTH = ROOT / "lab" / "auth.toml"
FEEDS = (ROOT / "lab" / "feeds" / "kev-edgelab.json", ROOT / "lab" / "feeds" / "nvd-edgelab.json")
HOST_LEG = "198.18.1.254"
SYSLOG_PORT = 5514
WAN_LEGS = ("198.19.0.1", "198.19.0.2", "198.19.0.10", "198.19.0.11")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the namespace lab needs root (CI runs as root)")


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The lab, up for the module; down afterwards whatever happened."""
    run = tmp_path_factory.mktemp("lab-run")
    try:
        control.up(run)
        yield run
    finally:
        control.down(run)


def _sweep(
    out: Path, *targets: str, db: Path | None = None, node: str | None = None, command: str = "scan"
) -> tuple[int, dict[str, object]]:
    """Run the scanner (from the host leg, or inside lab node ``node``); its exit code and report."""
    cmd = [sys.executable, "-m", "scanner.cli", command, *targets, "--out", str(out)]
    cmd += ["--db", str(db or out / "h.sqlite3"), "--lang", "en", "-q"]
    if node is not None:
        cmd = ["ip", "netns", "exec", netns.PREFIX + node, *cmd]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, object] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return done.returncode, report


@pytest.mark.lab
@needs_root
def test_lab_sweep_matches_golden_files(lab_run: Path, tmp_path: Path) -> None:
    info = control.status(lab_run)
    assert info["state"] == "up", info
    # The whole LAN, as the demo sweeps it: authenticated reads of the two CLI routers, and a syslog
    # listener on the host leg (router-cisco-cli logs there as well as to the lab's rsyslog).
    feeds = subprocess.run(
        [sys.executable, "-m", "scanner.cli", "feeds", "import", *map(str, FEEDS), "--db", str(tmp_path / "h.sqlite3")],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert "CISA KEV" in feeds.stdout and "NVD CVE 2.0" in feeds.stdout
    db = tmp_path / "h.sqlite3"
    # Last week's sweeps, the baseline for CIAJ-3.4-CONFIG-DRIFT: the LAN in safe mode, and the Yamaha-like
    # router with its authenticated read; then an intruder changes that router's DNS server.
    _sweep(tmp_path / "base-lan", "198.18.0.0/24", "--safe", "--dhcp", db=db)
    _sweep(tmp_path / "base-yamaha", "198.18.0.3", "--auth-file", str(AUTH), db=db)
    control.tamper(lab_run, "router-yamaha-cli", {"dns_servers": ["198.19.0.66"]})
    lan_code, _ = _sweep(
        tmp_path / "lan",
        "198.18.0.0/24",
        *("--auth-file", str(AUTH), "--syslog-listen", f"{HOST_LEG}:{SYSLOG_PORT}", "--dhcp"),
        *("--max-feed-age", "3650"),  # lab/feeds are frozen fixtures
        *("--dns-expect", "www.bank.example=198.19.0.80"),  # the lab ISP's answer; router-weak's is hijacked
        db=db,
    )
    # From outside: the WAN legs of the routers and PBXs, swept (safe mode) from the WAN vantage node,
    # then merged. SSH host keys join the weak router and PBX to their LAN selves; the hardened ones
    # show no key outside, so they are paired by hand, as an operator who knows the NAT would.
    outside = ("--safe", "--vantage", "wan", "--dns-expect", "www.bank.example=198.19.0.80")
    _, wan = _sweep(tmp_path / "wan", *WAN_LEGS, *outside, db=db, node="outside")
    assert {d["address"] for d in wan["devices"]} == set(WAN_LEGS)  # type: ignore[union-attr,index]
    pairs = ("--same", "198.19.0.2=198.18.0.2", "--same", "198.19.0.11=198.18.0.11")
    code, report = _sweep(tmp_path, "-2", "-1", *pairs, db=db, command="merge")
    assert golden.compare(report) == []
    drift = {
        d["address"]: f
        for d in report["devices"]  # type: ignore[union-attr]
        for f in d["findings"]
        if f["id"] == "CIAJ-3.4-CONFIG-DRIFT"
    }
    changes = {c["setting"]: (c["old"], c["new"]) for c in drift["198.18.0.3"]["evidence"]["changes"]}
    assert changes["DNS servers in the configuration"] == (["198.19.0.53"], ["198.19.0.66"])
    assert "configuration (hash of the read-only config output)" in changes
    # --dhcp against real dnsmasq: router-weak hands out the intruder's resolver, router-hardened itself
    handed = {
        d["address"]: (
            f["status"],
            f["evidence"]["dns_servers_handed_out"],
            f["evidence"]["gateways_handed_out"],
            f["evidence"].get("hijacked"),
        )
        for d in report["devices"]  # type: ignore[union-attr]
        for f in d["findings"]
        if f["id"] == "CIAJ-3.4-DNS-HIJACK" and f["service"] == "udp/67"
    }
    assert handed == {
        "198.18.0.1": ("fail", ["198.18.0.53"], ["198.18.0.1"], ["198.18.0.53 www.bank.example"]),
        "198.18.0.2": ("pass", ["198.18.0.2"], ["198.18.0.2"], None),
    }
    for router in ("router-weak", "router-hardened"):  # DISCOVER and INFORM only: no lease was ever taken
        leases = lab_run / router / "dnsmasq.leases"
        assert not leases.exists() or leases.read_text(encoding="utf-8") == "", router
    assert "DNS servers handed out by DHCP" in drift["198.18.0.2"]["evidence"]["compared"]
    # router-cisco-cli's baseline is the safe sweep: no config read then, so only what both sweeps saw is compared
    assert drift["198.18.0.4"]["status"] == "pass"
    assert drift["198.18.0.4"]["evidence"]["compared"] == ["administration services", "firmware", "tcp/22 host key"]
    exposed = {
        d["address"]: [
            (f["status"], f["service"], f["evidence"].get("joined_by", ""))
            for f in d["findings"]
            if f["id"] == "CIAJ-2.3-VOIP-EXPOSED"
        ]
        for d in report["devices"]  # type: ignore[union-attr]
    }
    assert [s for s, *_ in exposed["198.18.0.10"]] == ["fail", "fail"]  # udp and tcp 5060 answer outside
    assert all("host key" in how for *_, how in exposed["198.18.0.10"])
    # real Kamailio answers OPTIONS over TCP and TLS too (Content-Length framing, a TLS handshake)
    registrar = next(d for d in report["devices"] if d["address"] == "198.18.0.13")  # type: ignore[union-attr,index]
    sip = DeviceRecord.from_json(registrar["device"])
    assert all(sip.fingerprint(port, Kind.SIP) is not None for port in ("udp/5060", "tcp/5060", "tcp/5061"))
    answered = {d["address"] for d in report["devices"]}  # type: ignore[union-attr,index]
    assert answered == set(golden.lan_nodes().values())  # nothing else answers, the host leg is not swept
    # real net-snmp, `rwcommunity private` only: its own access tables say the community can write
    weak = next(d for d in report["devices"] if d["address"] == "198.18.0.1")  # type: ignore[union-attr,index]
    snmp = [f for f in weak["findings"] if f["id"] == "CIAJ-1.2-DEFAULT-CREDENTIAL" and f["service"] == "udp/161"]
    assert [(f["severity"], f["evidence"]["access"]) for f in snmp] == [("critical", "read-write")]
    methods = DeviceRecord.from_json(weak["device"]).fingerprint("tcp/22", Kind.AUTH_METHODS)
    assert methods == "password,publickey"  # real OpenSSH
    # CIAJ 1.4 against real daemons: chrony with no source answers unsynchronised, the synced one passes
    # (golden files); the logs router-cisco-cli says it sends reach the lab's real rsyslog, and the
    # scanner's own listener; router-yamaha-cli, logging off, sends none.
    remote_log = (lab_run / "syslog" / "remote.log").read_text(encoding="utf-8")
    assert "router-cisco-cli auth: login" in remote_log and "router-yamaha-cli" not in remote_log
    cisco = next(d for d in report["devices"] if d["address"] == "198.18.0.4")  # type: ignore[union-attr,index]
    heard = [f for f in cisco["findings"] if f["id"] == "CIAJ-1.4-NO-REMOTE-LOG"]
    assert heard[0]["evidence"]["messages_received"] >= 1, heard
    assert lan_code == code == 1  # the weak devices have high-severity failures


@pytest.mark.lab
@needs_root
def test_real_daemons_answer_in_their_namespaces(lab_run: Path) -> None:
    """Each real daemon is bound inside its own namespace, not on the host."""
    state = control.State.load(lab_run)
    assert state is not None
    by_daemon = {(p.node, p.daemon): p for p in state.procs}
    expected = {
        ("router-weak", "sshd"): ("tcp", 22),
        ("router-weak", "snmpd"): ("udp", 161),
        ("router-weak", "lighttpd"): ("tcp", 80),
        ("router-weak", "dnsmasq"): ("udp", 53),
        ("router-weak", "chrony"): ("udp", 123),
        ("router-hardened", "lighttpd"): ("tcp", 443),
        ("sip-registrar-open", "kamailio"): ("udp", 5060),
        ("syslog", "rsyslog"): ("udp", 514),
        ("ntp-upstream", "chrony"): ("udp", 123),
        ("ftp-anonymous", "vsftpd"): ("tcp", 21),
        ("telnet-weak", "telnetd"): ("tcp", 23),
        ("dropbear-weak", "dropbear"): ("tcp", 22),
        ("ipp-auth", "ippeveprinter"): ("tcp", 631),
        ("cups-open", "cupsd"): ("tcp", 631),
    }
    for key, port in expected.items():
        proc = by_daemon[key]
        assert netns.alive(proc.pid), key
        assert port in netns.listening(proc.pid), key
        ns_of = os.readlink(f"/proc/{proc.pid}/ns/net")
        assert ns_of != os.readlink("/proc/self/ns/net"), f"{key} runs in the host namespace"
    # The lab's accounts exist only in the daemons' own mount namespaces: /etc/passwd as the daemon
    # sees it names the lab user, the host's does not; the host's login records are not theirs.
    host_passwd = Path("/etc/passwd").read_text(encoding="utf-8")
    assert "lab user" not in host_passwd
    for key in (("telnet-weak", "telnetd"), ("dropbear-weak", "dropbear"), ("ftp-hardened", "vsftpd")):
        seen = Path(f"/proc/{by_daemon[key].pid}/root/etc/passwd").read_text(encoding="utf-8")
        assert "admin:x:2000:2000:lab user:" in seen, key


@pytest.mark.lab
@needs_root
async def test_syn_knocks_agree_with_connect_on_the_real_daemons(lab_run: Path) -> None:
    """A privileged sweep's SYN knocks find what connect() finds on OpenSSH, lighttpd, vsftpd,
    telnetd, dropbear, ippeveprinter and cupsd, and leave no half-open connection behind: our
    kernel answers each SYN-ACK with a RST, so no daemon's namespace holds a SYN-RECV socket."""
    from probes.base import TCP_PORTS
    from probes.tcp import connect_only
    from probes.wire import syn
    from profiles.errors import ProbeError, Refused

    nodes = ("router-weak", "router-hardened", "ftp-anonymous", "telnet-weak", "dropbear-weak", "ipp-auth", "cups-open")
    lan = {name: control.load_topology()["nodes"][name]["interfaces"]["lan"] for name in nodes}

    async def state(ask: object, address: str, port: int) -> str:
        try:
            await ask(address, port, 1.5)  # type: ignore[operator]
        except Refused:
            return "closed"
        except ProbeError as exc:
            return type(exc).__name__
        return "open"

    with syn.shared(True):
        knocker = syn.active()
        assert knocker is not None
        for name, address in lan.items():
            # one knock each, as one connect each: silence is the connect's Timeout
            words = {"filtered": "Timeout"}
            got = await knocker.knock_all(address, list(TCP_PORTS), 1.5, tries=1)
            knocked = {p: words.get(v, "Unreachable" if v.startswith("unreachable") else v) for p, v in got.items()}
            ss = await asyncio.create_subprocess_exec(
                *("ip", "netns", "exec", netns.PREFIX + name, "ss", "-Htan", "state", "syn-recv"),
                stdout=asyncio.subprocess.PIPE,
            )
            half_open, _ = await asyncio.wait_for(ss.communicate(), 10)
            assert ss.returncode == 0, name
            connected = {p: await state(connect_only, address, p) for p in TCP_PORTS}
            assert knocked == connected, name
            assert "open" in knocked.values(), name
            assert half_open.strip() == b"", name


@pytest.mark.lab
@needs_root
def test_lab_down_leaves_nothing_even_after_a_crash(lab_run: Path) -> None:
    state = control.State.load(lab_run)
    assert state is not None
    pids = [p.pid for p in state.procs]
    os.kill(pids[0], 9)  # a daemon dies
    (lab_run / "state.json").unlink()  # and the state file is lost, as after a crash of `lab up`
    assert control.status(lab_run)["state"] == "leftovers"
    control.down(lab_run)
    assert netns.namespaces() == []
    assert not netns.host_link_exists()
    assert not [p for p in pids if netns.alive(p)]
    assert control.down(lab_run) == []  # idempotent: a second run finds nothing
    assert control.status(lab_run)["state"] == "down"


@pytest.mark.lab
@needs_root
def test_fleet_devices_have_their_own_mac_and_ip(tmp_path: Path) -> None:
    try:
        state = control.up(tmp_path, fleet_size=12)
        assert len(state.fleet) == 12
        # A fresh process: scapy caches interfaces and routes, and the host leg was just re-created.
        code = "import sys; from probes.l2 import arp; print(' '.join(arp(sys.argv[1:]).values()))"
        done = subprocess.run(
            [sys.executable, "-c", code, *state.fleet[:4]], capture_output=True, text=True, cwd=ROOT, check=True
        )
        macs = set(done.stdout.split())
        assert len(macs) == 4, done.stdout
        _code, report = _sweep(tmp_path / "out", *state.fleet[:4])
        profiles = {d["address"]: (d.get("device") or {}).get("profile") for d in report["devices"]}  # type: ignore[union-attr,index]
        assert profiles[state.fleet[0]] == "edgelab-router" and profiles[state.fleet[2]] == "edgelab-mfp"
        # After a sweep, each device knows the scanner by its permanent entry only: the fleet learns
        # none, which would count against the one neighbour table Linux shares between namespaces.
        neigh = subprocess.run(
            ["ip", "-n", fleet.NAMESPACE, "neigh", "show", state.host], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert len(neigh) == 12 and all(line.rstrip().endswith("PERMANENT") for line in neigh), neigh
    finally:
        control.down(tmp_path)
    assert netns.namespaces() == []


@pytest.mark.lab
@needs_root
def test_container_entrypoint_runs_a_node_in_its_namespace(tmp_path: Path) -> None:
    """`python3 -m lab.node NAME` (the lab-node image's entrypoint) waits for its address, serves, stops on TERM."""
    ns = netns.PREFIX + "entrypoint-test"
    control.down(tmp_path)
    netns.add_namespace(ns)
    proc = None
    try:
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "lab.node", "syslog", "--run", str(tmp_path)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines = [
            "link add d0 type veth peer name d1",
            "addr add 198.18.0.30/21 dev d0",
            "link set d0 up",
            "link set d1 up",
        ]
        netns.ip_batch(lines, ns)
        for _ in range(100):
            if ("udp", 514) in netns.listening(proc.pid):
                break
            time.sleep(0.1)
        assert ("udp", 514) in netns.listening(proc.pid)
        proc.terminate()
        assert proc.wait(10) == 0
        assert netns.pids_in(ns) == []  # rsyslogd went with it
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        control.down(tmp_path)
    assert netns.namespaces() == []


def test_golden_files_cover_every_check_both_ways() -> None:
    """Every check that can pass or fail has a lab device failing it and one passing it."""
    seen: dict[str, set[str]] = {}
    for node in golden.lan_nodes():
        for check_id, status, _service in golden.load(node)["findings"]:
            seen.setdefault(check_id, set()).add(status)
    judged = [
        cid for cid, entry in catalog().items() if not entry.engine and entry.severity != Severity.INFO
    ]  # (the Wi-Fi checks also both ways on the crafted captures of tests/test_wifi.py)
    assert judged, "the catalog lists no judged checks"
    for cid in judged:
        assert {"pass", "fail"} <= seen.get(cid, set()), f"{cid}: golden files show {seen.get(cid)}"
    assert "inconclusive" in seen["EA-PROBE-INCONCLUSIVE"]  # the unresponsive device is never a pass


REAL_PAIRS = {  # (check, service): (weak node, hardened node), real Debian daemons both
    ("CIAJ-1.2-DEFAULT-CREDENTIAL", "tcp/21"): ("ftp-anonymous", "ftp-hardened"),  # vsftpd, anonymous on / off
    ("CIAJ-1.2-WEAK-CREDENTIAL", "tcp/21"): ("ftp-weak", "ftp-hardened"),  # vsftpd local users, through PAM
    ("CIAJ-1.2-WEAK-CREDENTIAL", "tcp/23"): ("telnet-weak", "telnet-hardened"),  # inetutils-telnetd, /bin/login
    ("CIAJ-1.2-WEAK-CREDENTIAL", "tcp/22"): ("dropbear-weak", "dropbear-hardened"),  # dropbear
    ("CIAJ-4.1-IPP-NO-AUTH", "tcp/631"): ("ipp-open", "ipp-auth"),  # ippeveprinter, open / -A
}


def test_real_daemons_fail_weak_and_pass_hardened_in_the_golden_files() -> None:
    """Each check tried against a real daemon fails on the weak one and passes on the hardened one."""
    for (check_id, service), (weak, hardened) in REAL_PAIRS.items():
        for node, want in ((weak, "fail"), (hardened, "pass")):
            got = [s for cid, s, svc in golden.load(node)["findings"] if (cid, svc) == (check_id, service)]
            assert got == [want], f"{node}: {check_id} on {service} is {got}, expected {want}"
    cups = [s for cid, s, svc in golden.load("cups-open")["findings"] if cid == "CIAJ-4.1-IPP-NO-AUTH"]
    assert cups == ["fail"]  # a real CUPS queue under /printers/NAME that takes jobs from anyone
    topo = control.load_topology()["nodes"]
    for weak, hardened in REAL_PAIRS.values():
        assert "emulate" not in topo[weak] and "emulate" not in topo[hardened], (weak, hardened)


def test_every_lan_node_has_a_golden_file() -> None:
    files = {p.stem for p in golden.EXPECTED.glob("*.json")}
    assert files == set(golden.lan_nodes())


def test_topology_uses_only_lab_addresses() -> None:
    """Lab addresses come from 198.18.0.0/15 (RFC 2544), never from a range a real network uses."""
    import ipaddress

    bench = ipaddress.ip_network("198.18.0.0/15")
    topo = control.load_topology()
    for seg in topo["segments"].values():
        assert ipaddress.ip_network(seg["subnet"]).subnet_of(bench)
    for node in topo["nodes"].values():
        for addr in node["interfaces"].values():
            assert ipaddress.ip_address(addr) in bench


def test_sweep_ranges_never_include_the_host_leg() -> None:
    """`scan 198.18.0.0/24` (core) and `scan 198.18.4.0/22` (fleet) must not probe the host itself."""
    import ipaddress

    from lab import clab, fleet

    host = ipaddress.ip_address(control.load_topology()["segments"]["lan"]["host"])
    devices = fleet.devices(fleet.MAX_FLEET)
    for net in ("198.18.0.0/24", "198.18.4.0/22"):
        assert host not in ipaddress.ip_network(net)
        assert ipaddress.ip_address(clab.SCANNER_ADDRESS) not in ipaddress.ip_network(net)
    assert all(ipaddress.ip_address(d["address"]) in ipaddress.ip_network("198.18.4.0/22") for d in devices)
    assert len({d["address"] for d in devices}) == fleet.MAX_FLEET


def test_clab_file_is_generated_from_the_topology() -> None:
    from lab import clab

    assert clab.CLAB.read_text(encoding="utf-8") == clab.render(), "run: python -m lab.clab"


CLAB_SCHEMA = ROOT.parent / "shared" / "schemas" / "clab.schema.json"


@pytest.mark.skipif(not CLAB_SCHEMA.is_file(), reason=f"containerlab's schema is read from {CLAB_SCHEMA}, absent here")
def test_clab_topology_is_valid_and_matches_the_namespace_lab() -> None:
    import jsonschema

    schema = json.loads(CLAB_SCHEMA.read_text(encoding="utf-8"))
    clab = yaml.safe_load((ROOT / "lab" / "edgeaudit.clab.yml").read_text(encoding="utf-8"))
    # The schema's patterns use ECMAScript \\p{..} classes Python's re lacks, so the schema itself is
    # not meta-validated; instances are checked with the draft it declares.
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(clab))
    assert not errors, [e.message for e in errors[:5]]
    nodes = clab["topology"]["nodes"]
    assert set(control.load_topology()["nodes"]) <= set(nodes)
    assert "scanner" in nodes
    for name, node in nodes.items():
        for bind in node.get("binds", []):
            assert (ROOT / "lab" / bind.split(":")[0]).exists(), f"{name}: bind source {bind} missing"


@pytest.mark.lab
@needs_root
async def test_digest_register_is_right_against_real_kamailio(lab_run: Path) -> None:
    """A weak-secret pass means something only if the right secret would have registered: check it does."""
    import asyncio as aio

    from probes.base import ProbeConfig, ProbeContext, ProbeTarget, Timeouts
    from probes.observations import Mode, Service
    from probes.sip.sipcall import register_once as _register
    from probes.sip.sipmsg import digest_authorization

    if control.status(lab_run)["state"] != "up":  # an earlier test in the module takes the lab down
        control.up(lab_run)
    loop = aio.get_running_loop()
    ctx = ProbeContext(Timeouts(), Mode.DEFAULT, ProbeConfig(), deadline=loop.time() + 20)
    target = ProbeTarget("198.18.0.13", Service(5060, "udp", "sip"))
    secret = control.load_topology()["nodes"]["sip-registrar-auth"]["daemons"]["kamailio"]["users"]["100"]
    results = []
    for password in (secret, secret + "x"):
        challenge = await _register(target, ctx, "100")
        assert challenge.status == 401, challenge.status
        header = challenge.get("www-authenticate")
        assert header is not None
        auth = digest_authorization(header, "REGISTER", "sip:198.18.0.13:5060", "100", password)
        results.append((await _register(target, ctx, "100", authorization=auth)).status)
    assert results == [200, 401]  # the right secret registers (no Contact: nothing is bound), a wrong one does not


@pytest.mark.lab
@needs_root
def test_the_hardened_real_daemons_take_their_own_password(lab_run: Path, tmp_path: Path) -> None:
    """A pass on a hardened vsftpd, /bin/login or Dropbear means something only if the right password logs in.

    (A vsftpd whose users cannot enter their home refused every login, and passed.) The right
    passwords go in a --credentials file, after the lists, under a cap raised to reach them.
    """
    if control.status(lab_run)["state"] != "up":  # an earlier test in the module takes the lab down
        control.up(lab_run)
    nodes = control.load_topology()["nodes"]
    hardened = {"ftp-hardened": ("vsftpd", "ftp"), "telnet-hardened": ("telnetd", "telnet")}
    hardened["dropbear-hardened"] = ("dropbear", "ssh")
    lines = []
    for node, (daemon, protocol) in hardened.items():
        [(user, password)] = nodes[node]["daemons"][daemon]["users"].items()
        lines.append(f"{protocol}:{user}:{password}")
    creds = tmp_path / "right.txt"
    creds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    addresses = [nodes[n]["interfaces"]["lan"] for n in hardened]
    opts = ("--ports", "21,22,23", "--credentials", str(creds), "--max-attempts", "5", "--login-pace", "0.1")
    _, report = _sweep(tmp_path / "out", *addresses, *opts)
    logins = {d["address"]: d["device"]["logins"] for d in report["devices"]}  # type: ignore[union-attr,index]
    for node, address in zip(hardened, addresses, strict=True):
        assert [(x["username"], x["source"]) for x in logins[address]] == [("admin", "user")], (node, logins[address])


@pytest.mark.lab
@needs_root
def test_extended_walk_against_real_openssh_and_lighttpd(lab_run: Path, tmp_path: Path) -> None:
    """--extended-credentials on router-hardened (real OpenSSH, and lighttpd over HTTPS), two sweeps sharing one ledger.

    Its profile says the family never forgets a failure (lockout window_s: 0), so the
    first sweep spends each account's 2 failures and the second sends no password at all.
    """
    if control.status(lab_run)["state"] != "up":  # an earlier test in the module takes the lab down
        control.up(lab_run)
    db = tmp_path / "h.sqlite3"
    opts = ("--extended-credentials", "--ports", "22,443", "--login-pace", "0.05", "--probe-timeout", "60")

    def weak(report: dict[str, object]) -> dict[str, dict[str, object]]:
        [device] = report["devices"]  # type: ignore[misc]
        return {f["service"]: f for f in device["findings"] if f["id"] == "CIAJ-1.2-WEAK-CREDENTIAL"}

    _, first = _sweep(tmp_path / "one", "198.18.0.2", *opts, db=db)
    _, second = _sweep(tmp_path / "two", "198.18.0.2", *opts, db=db)
    one, two = weak(first), weak(second)
    assert set(one) == set(two) == {"tcp/22", "tcp/443"}
    assert {f["status"] for f in (*one.values(), *two.values())} == {"pass"}
    asked = {s: int(str(f["evidence"]["extended_list"]).split(" of ")[0]) for s, f in one.items()}  # type: ignore[index]
    assert min(asked.values()) >= 12  # the 12 user names, each asked up to its cap on SSH or HTTP
    for service, finding in two.items():
        evidence = finding["evidence"]
        assert len(evidence["tried"]) == 1, evidence  # type: ignore[index,arg-type]  # the random baseline only
        assert str(evidence["extended_list"]).startswith(f"{asked[service]} of "), evidence  # type: ignore[index]
        assert "never forgets" in str(evidence["extended_list"])  # type: ignore[index]
    ssh_before = two["tcp/22"]["evidence"]["refused_in_an_earlier_sweep"]  # type: ignore[index]
    assert "admin (profile:edgelab-router)" in ssh_before  # type: ignore[operator]
    ledger_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("login-attempts.sqlite3*"))
    assert ledger_bytes and b"password" not in ledger_bytes.lower()  # digests only, never a password
