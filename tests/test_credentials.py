"""CIAJ 1.2 credential checks: flagged when they should be, never locking, never passing on doubt."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

import profiles
from probes import login
from probes.login import LoginOptions
from probes.observations import Mode
from scanner.device import DeviceRecord, Fingerprint, Kind, Login
from scanner.findings import Status
from scanner.orchestrator import Engine
from tests.conftest import StartDevice, by_id, config_for, scan_device, with_settings

DEFAULT, WEAK = "CIAJ-1.2-DEFAULT-CREDENTIAL", "CIAJ-1.2-WEAK-CREDENTIAL"


def statuses(result: object, check_id: str) -> dict[str | None, Status]:
    return {f.service: f.status for f in by_id(result, check_id)}  # type: ignore[arg-type]


async def test_profile_default_is_flagged_on_every_login_service(emulated: StartDevice) -> None:
    dev = await emulated(services=["ssh", "telnet", "http"], cli="cisco", users={"admin": "admin"}, http_mode="basic")
    result = await scan_device(dev)
    got = statuses(result, DEFAULT)
    assert set(got.values()) == {Status.FAIL} and len(got) == 3
    ssh = next(f for f in by_id(result, DEFAULT) if f.service == f"tcp/{dev.bound['ssh']}")
    assert ssh.evidence["username"] == "admin" and ssh.evidence["source"] == "profile:edgelab-router"


async def test_guessable_password_is_weak_not_default(emulated: StartDevice) -> None:
    dev = await emulated(services=["ssh"], cli="yamaha", users={"admin": "password"})
    result = await scan_device(dev)
    assert "password" in (result.device.fingerprint(f"tcp/{dev.bound['ssh']}", Kind.AUTH_METHODS) or "").split(",")
    assert set(statuses(result, DEFAULT).values()) == {Status.PASS}
    assert set(statuses(result, WEAK).values()) == {Status.FAIL}


async def test_strong_password_passes_both(emulated: StartDevice) -> None:
    users = {"admin": "Str0ng-and-long-9f"}
    dev = await emulated(services=["ssh", "http"], cli="cisco", users=users, http_mode="basic")
    result = await scan_device(dev)
    assert set(statuses(result, DEFAULT).values()) == {Status.PASS}
    assert set(statuses(result, WEAK).values()) == {Status.PASS}


async def test_lockout_device_is_never_locked_even_by_repeated_sweeps(emulated: StartDevice, tmp_path: Path) -> None:
    services = ["ssh", "telnet", "http"]
    users = {"admin": "Str0ng-9f"}
    dev = await emulated(services=services, cli="cisco", users=users, lockout_after=3, http_mode="basic")
    cfg = config_for(dev)
    shared = dataclasses.replace(cfg.probe_config, attempt_ledger=str(tmp_path / "login-attempts.sqlite3"))
    for _ in range(3):  # each sweep its own engine and ledger; they share its file, as the CLI's sweeps do
        engine = Engine(dataclasses.replace(cfg, probe_config=shared), profiles.load_all())
        await asyncio.wait_for(engine.scan_host(dev.spec.address), 60)
    assert dev.locked == set()
    assert max(dev.failures.values()) <= 2


async def test_undeclared_lockout_at_max_attempts_is_not_reached(emulated: StartDevice) -> None:
    """An unidentified device that locks at 3 failures: the default cap (3 attempts, 2 failures) stays under it."""
    dev = await emulated(services=["http"], http_mode="basic", persona="other", model="X", lockout_after=3)
    result = await scan_device(dev)
    assert result.device.profile is None
    assert dev.locked == set() and max(dev.failures.values()) <= 2


async def test_an_unchallenged_page_is_not_taken_for_a_login(emulated: StartDevice) -> None:
    dev = await emulated(services=["http"], http_mode="open")  # 200 to everything, no challenge, no form
    result = await scan_device(dev)
    assert dev.login_attempts == []  # a 200 page is no login: nothing was tried against it
    findings = by_id(result, DEFAULT)
    assert [f.status for f in findings] == [Status.INCONCLUSIVE]
    assert "no login service" in findings[0].evidence["reason"]


async def test_random_user_accepted_means_inconclusive(emulated: StartDevice) -> None:
    dev = await emulated(services=["ftp"], persona="mfp", ftp_anonymous=True)
    dev.check_login = lambda user, password: True  # type: ignore[method-assign]  # a broken device: any login works
    result = await scan_device(dev)
    ftp = by_id(result, DEFAULT)
    assert [f.status for f in ftp] == [Status.INCONCLUSIVE]
    assert "random user" in ftp[0].evidence["reason"]
    assert len(dev.login_attempts) == 1  # nothing tried after the baseline


async def test_lockout_signal_stops_the_series(emulated: StartDevice) -> None:
    dev = await emulated(services=["telnet"], users={"admin": "x"})
    dev.locked.add("admin")  # already locked (by someone else): the device says so after the password
    result = await scan_device(dev)
    telnet = by_id(result, DEFAULT)
    assert [f.status for f in telnet] == [Status.INCONCLUSIVE]
    assert "lockout" in telnet[0].evidence["reason"]
    names = [user for proto, user in dev.login_attempts]
    assert names.count("admin") == 1 and len(names) == 2  # the baseline, then admin: stopped at the signal


async def test_unreachable_login_service_is_inconclusive(emulated: StartDevice) -> None:
    dev = await emulated(services=["ssh"], hang=["ssh"])  # accepts TCP, never speaks SSH
    result = await scan_device(dev, probe=2.0)
    assert set(statuses(result, DEFAULT).values()) == {Status.INCONCLUSIVE}
    assert set(statuses(result, WEAK).values()) == {Status.INCONCLUSIVE}


async def test_safe_mode_sends_no_login(emulated: StartDevice) -> None:
    dev = await emulated(services=["ssh", "telnet"], cli="cisco", users={"admin": "admin"})
    result = await scan_device(dev, Mode.SAFE)
    assert dev.login_attempts == [] and dev.auth_users == []  # not even a user name
    assert result.device.fingerprint(f"tcp/{dev.bound['ssh']}", Kind.HOST_KEY) is not None  # the key needs none
    assert set(statuses(result, DEFAULT).values()) == {Status.INCONCLUSIVE}


async def test_user_list_is_tried_after_defaults(emulated: StartDevice, tmp_path: Path) -> None:
    creds = tmp_path / "creds.txt"
    creds.write_text("# site list\nssh:ops:Site-Pass-1\n", encoding="utf-8")
    assert login.user_list(str(creds)) == (("ops", "Site-Pass-1", "ssh"),)
    dev = await emulated(services=["ssh"], cli="cisco", users={"ops": "Site-Pass-1"})
    cfg = config_for(dev)
    cfg = dataclasses.replace(cfg, probe_config=with_settings(cfg.probe_config, credentials_file=str(creds)))
    result = await Engine(cfg, profiles.load_all()).scan_host(dev.spec.address)
    ssh = by_id(result, DEFAULT)[0]
    # defaults first (refused), then the user's own pair, which works: neither default nor weak
    assert ssh.status == Status.PASS and ssh.evidence["tried"][-1] == "ops (user)"
    assert set(statuses(result, WEAK).values()) == {Status.PASS}


def test_reuse_is_judged_across_hosts_both_ways() -> None:
    from scanner.checks import SweepHost, judge_sweep

    def host(addr: str, key: str, logins: list[Login]) -> SweepHost:
        prints = (Fingerprint("tcp/22", Kind.BANNER, "SSH-2.0-x"), Fingerprint("tcp/22", Kind.HOST_KEY, key))
        return SweepHost(addr, DeviceRecord(fingerprints=prints, logins=tuple(logins)))

    shared = [Login("tcp/22", "admin", "Same-1", "user")]
    anon = [Login("tcp/21", "anonymous", "x@y", "anonymous")]
    hosts = [
        host("192.0.2.1", "ssh-ed25519 SHA256:A", shared),
        host("192.0.2.2", "ssh-ed25519 SHA256:B", shared),  # same password as .1
        host("192.0.2.3", "ssh-ed25519 SHA256:C", anon),  # anonymous FTP is not a shared secret
        host("192.0.2.4", "ssh-ed25519 SHA256:C", []),  # same host key as .3
        host("192.0.2.5", "ssh-ed25519 SHA256:E", []),
        SweepHost("192.0.2.6", DeviceRecord()),
    ]
    ids, judged = judge_sweep(hosts, Mode.DEFAULT)
    assert "CIAJ-1.2-REUSED-CREDENTIAL" in ids
    out = {a: [f for f in fs if f.check_id == "CIAJ-1.2-REUSED-CREDENTIAL"] for a, fs in judged.items()}
    status = {addr: sorted(f.status for f in fs) for addr, fs in out.items()}
    assert status["192.0.2.1"] == [Status.FAIL] and status["192.0.2.2"] == [Status.FAIL]
    assert out["192.0.2.1"][0].evidence["also_on"] == ["192.0.2.2"]
    assert status["192.0.2.3"] == [Status.FAIL] and status["192.0.2.4"] == [Status.FAIL]
    assert out["192.0.2.3"][0].evidence["kind"] == "host key"
    assert status["192.0.2.5"] == [Status.PASS]
    assert status["192.0.2.6"] == [Status.INCONCLUSIVE]


async def test_snmp_default_community_is_flagged_high_and_any_community_is_inconclusive(emulated: StartDevice) -> None:
    weak = await emulated(services=["snmp"], communities=["private"])
    broken = await emulated(services=["snmp"], communities=["*"])
    hard = await emulated(services=["snmp", "ssh"], communities=[], users={"admin": "Str0ng-9f"})
    w = by_id(await scan_device(weak), DEFAULT)
    assert [(f.status, f.severity.value) for f in w] == [(Status.FAIL, "high")]
    assert w[0].evidence["community"] == "private" and w[0].evidence["access"].startswith("unknown")
    b = by_id(await scan_device(broken), DEFAULT)
    assert [f.status for f in b] == [Status.INCONCLUSIVE] and "random" in b[0].evidence["reason"]
    h = await scan_device(hard)
    assert Status.FAIL not in statuses(h, DEFAULT).values()
    assert weak.snmp_sets == [] and broken.snmp_sets == []  # nothing written


async def test_form_login_follows_the_profile_description(emulated: StartDevice) -> None:
    """The EWS form of edgelab-mfp: success is 302 to /admin, never a 200 alone; accept-all forms are caught."""
    mfp = {"services": ["http"], "persona": "mfp", "model": "EL-M300", "http_mode": "form"}
    weak = await emulated(**mfp, users={"admin": "1234"})
    hard = await emulated(**mfp, users={"admin": "L0ng-9e"})
    broken = await emulated(**mfp)
    broken.check_login = lambda user, password: True  # type: ignore[method-assign]  # a form that takes anything
    w, h, b = [by_id(await scan_device(d), DEFAULT) for d in (weak, hard, broken)]
    assert [f.status for f in w] == [Status.FAIL] and w[0].evidence["source"] == "profile:edgelab-mfp"
    assert [f.status for f in h] == [Status.PASS]
    assert [f.status for f in b] == [Status.INCONCLUSIVE]


def test_reports_mask_the_credentials_a_device_record_holds() -> None:
    from reports import render
    from scanner import document
    from scanner.store import HostRecord, SweepRecord

    device = DeviceRecord(logins=(Login("tcp/22", "admin", "Sekret-42", "user"),))
    host = HostRecord("192.0.2.9", "up", None, 0.0, 1.0, device, [])
    record = SweepRecord("s", "scan", "default", "complete", 0.0, 1.0, {}, {}, "lan", [host])
    masked = render.to_json(document.build(record, show_secrets=False))
    assert "Sekret-42" not in masked and "S*** (9)" in masked
    assert "Sekret-42" in render.to_json(document.build(record, show_secrets=True))


def test_snmp_write_access_is_judged_from_the_agents_access_tables() -> None:
    from probes.login.snmp import VACM_GROUP, VACM_WRITE_VIEW, judge_access

    def name(text: str) -> str:
        return ".".join(str(b) for b in [len(text), *text.encode()])

    def groups(*pairs: tuple[int, str, str]) -> dict[str, str]:
        return {f"{VACM_GROUP}.{model}.{name(sec)}": group for model, sec, group in pairs}

    def views(**by_group: str) -> dict[str, str]:
        return {f"{VACM_WRITE_VIEW}.{name(g)}.0.1.1": v for g, v in by_group.items()}

    ro = groups((1, "comm1", "g1"), (2, "comm1", "g1"))
    assert judge_access(ro, views(g1="none")) == "read-only"
    assert judge_access(ro, views(g1="_all_")) == "read-write"  # one v1/v2c group: the accepted community's
    two = groups((2, "comm1", "g1"), (2, "comm2", "g2"), (3, "admin", "v3g"))
    assert judge_access(two, views(g1="none", g2="_all_", v3g="_all_")).startswith("read-write possible")
    assert judge_access(two, views(g1="none", g2="none", v3g="_all_")) == "read-only"  # v3 writers do not count
    assert judge_access({}, {}).startswith("unknown")


async def test_a_second_sweep_process_sees_the_first_ones_failures(emulated: StartDevice, tmp_path: Path) -> None:
    """Scheduled sweeps back to back: the shared attempt ledger keeps the per-account budget across processes."""
    dev = await emulated(services=["http"], http_mode="basic", persona="other", model="X", lockout_after=3)
    cfg = config_for(dev)
    ledger_file = tmp_path / "login-attempts.sqlite3"
    cfg = dataclasses.replace(cfg, probe_config=dataclasses.replace(cfg.probe_config, attempt_ledger=str(ledger_file)))
    for _ in range(2):  # each sweep its own engine, so its own ledger (as a new process has): only the file is shared
        await Engine(cfg, profiles.load_all()).scan_host(dev.spec.address)
    assert dev.locked == set() and dev.failures.get("admin", 0) <= 2
    assert oct(ledger_file.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("silent", [False, True])
async def test_an_agent_that_goes_silent_is_not_read_as_refusing(emulated: StartDevice, silent: bool) -> None:
    """SNMP refuses by silence; a dead agent is silent too. Only a live agent's silence completes the series."""
    import asyncio

    from probes.base import ProbeConfig, ProbeContext, ProbeTarget, Timeouts
    from probes.login.ledger import Ledger
    from probes.login.snmp import SnmpCommunities
    from probes.observations import Service

    dev = await emulated(services=["snmp"], communities=[], hang=["snmp"] if silent else [])
    ctx = ProbeContext(
        timeouts=Timeouts(connect=1.0, read=0.5, probe=20.0, host=30.0),
        mode=Mode.DEFAULT,
        config=ProbeConfig(sets=(LoginOptions(login_pace_s=0.0),)),
        deadline=asyncio.get_running_loop().time() + 20.0,
        ledger=Ledger(),  # a sweep's own, as the engine hands it over
    )
    target = ProbeTarget(dev.spec.address, Service(dev.bound["snmp"], "udp", "snmp"))
    [res] = await SnmpCommunities().run(target, ctx)
    assert res.username is None and len(res.tried) == 3  # the random community, public, private
    if silent:
        assert not res.complete and "silence proves nothing" in (res.stopped or "")
    else:
        assert res.complete


def test_password_strength_measure_follows_the_nisc_example() -> None:
    from probes.login import assess_password

    length, classes, bits, weak = assess_password("Ab3dEf7h", "admin", set())
    assert (length, classes, weak) == (8, ("digits", "lower", "upper"), None) and bits == 47.6  # 62^8
    assert assess_password("12345678", "admin", set())[2] < 47.6  # digits only: 26.6 bits
    assert assess_password("password", "admin", {"password"})[3] == "a published default or generic password"
    extended = {p for _u, p in login.extended_list()[1]}
    assert assess_password("P@ssw0rd", "admin", extended)[3] == "a published default or generic password"
    assert assess_password("zzzzzzzzzzzzzzzz", "admin", set())[3] == "one character repeated"
    assert assess_password("Admin2026", "admin", set())[3] == "the user name plus 4 character(s)"
    assert assess_password("Lab-Admin-Strong-42ab", "admin", set())[3] is None  # long beyond the name
    assert "symbols" in assess_password("a-b", "u", set())[1]


async def test_auth_file_password_strength_fails_weak_and_passes_strong(emulated: StartDevice, tmp_path: Path) -> None:
    import dataclasses

    import profiles
    from scanner.orchestrator import Engine
    from tests.conftest import config_for

    async def scan(password: str) -> list[tuple[str, object]]:
        dev = await emulated(services=["ssh"], cli="cisco", users={"admin": password})
        auth = tmp_path / f"auth-{dev.spec.address}.toml"
        auth.write_text(f'[[device]]\nhost = "{dev.spec.address}"\nusername = "admin"\npassword = "{password}"\n')
        auth.chmod(0o600)
        config = config_for(dev)
        pc = with_settings(config.probe_config, auth_file=str(auth), login_pace_s=0.0)
        engine = Engine(dataclasses.replace(config, probe_config=pc), profiles.load_all())
        result = await engine.scan_host(dev.spec.address)
        found = [f for f in result.findings if f.check_id == "CIAJ-1.2-ADMIN-PASSWORD-STRENGTH"]
        assert all(password not in str(f.evidence) for f in found)  # only its measure is recorded
        return [(str(f.status), f.evidence.get("problems")) for f in found]

    assert await scan("Lab-Own-Strong-Pass-9x") == [("pass", None)]
    [(status, problems)] = await scan("admin1")
    assert status == "fail" and "shorter than 8 characters" in problems  # type: ignore[operator]


SLOW = {"refusal_delay_s": 1.4}  # longer than the sweep's 1 s reads (config_for), as PAM's 3 s are than the default 3 s


@pytest.mark.parametrize("weak", [False, True])
async def test_logins_wait_for_a_slow_refusal_and_the_host_budget_grows_to_fit(
    emulated: StartDevice, weak: bool
) -> None:
    """Servers that refuse after a PAM-like delay: the hardened one passes, the weak one fails, on every service.

    The host budget given (3 s) is shorter than the series: it grows to fit, so nothing is cut.
    """
    users = {"admin": "password"} if weak else {"admin": "Str0ng-and-long-9f"}
    dev = await emulated(services=["ssh", "telnet", "ftp"], users=users, ftp_anonymous=weak, **SLOW)
    result = await scan_device(dev, host=3.0)
    assert by_id(result, "EA-HOST-BUDGET") == [] and result.state == "up"
    want = Status.FAIL if weak else Status.PASS
    assert statuses(result, DEFAULT)[f"tcp/{dev.bound['ftp']}"] == want  # anonymous FTP
    assert statuses(result, WEAK)[f"tcp/{dev.bound['ssh']}"] == want
    assert statuses(result, WEAK)[f"tcp/{dev.bound['telnet']}"] == want
    refused = [f for f in by_id(result, WEAK) if f.status == Status.PASS]
    assert all(f.evidence["tried"] for f in refused)  # a pass rests on refusals that were waited for
    assert max(dev.failures.values()) <= 2


async def test_a_login_timeout_shorter_than_the_refusal_is_inconclusive_never_a_pass(emulated: StartDevice) -> None:
    dev = await emulated(services=["telnet", "ftp"], persona="other", model="X", users={"admin": "Str0ng-9f"}, **SLOW)
    result = await scan_device(dev, login=0.5)
    for check_id in (DEFAULT, WEAK):
        assert Status.PASS not in statuses(result, check_id).values(), check_id
    reasons = " ".join(str(f.evidence) for f in by_id(result, "EA-PROBE-INCONCLUSIVE"))
    assert "login timeout (0.5s)" in reasons


def test_login_deadlines_fit_the_series_at_the_login_timeout() -> None:
    """The probe deadline grows with --login-timeout (and the caps), never below --probe-timeout or its own."""
    from probes.base import REGISTRY, ProbeConfig, Timeouts

    config = ProbeConfig()
    for name, own in (("ftp-login", 40.0), ("telnet-login", 60.0), ("ssh-login", 60.0)):
        probe = REGISTRY.get(name)()
        short = probe.deadline(Timeouts(login=1.0), config, None)
        default = probe.deadline(Timeouts(), config, None)
        assert short == own  # the series fits in the probe's own deadline
        protocol = name.split("-")[0]
        assert default == login.series_deadline(protocol, Timeouts(), config, None) > own
        assert probe.deadline(Timeouts(login=20.0), config, None) > default
        one = config.with_options(LoginOptions(max_attempts=1))  # no failure allowed: the baseline only
        assert login.series_deadline(protocol, Timeouts(), one, None) == 1.5 + 3.0 + 8.0 + 0.5


async def test_a_login_that_reports_earlier_failures_is_a_success() -> None:
    """pam_lastlog's showfailed: a weak password that logs in after refusals says so before the shell prompt.

    The words "failed login attempts" there must not read as a refusal (a weak password would pass).
    """
    import asyncio

    from tests.conftest import fresh_address, scan_address

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Debian GNU/Linux 12\r\nlab login: ")
        user = (await reader.readline()).strip()
        writer.write(b"Password: ")
        password = (await reader.readline()).strip()
        if (user, password) == (b"admin", b"password"):
            writer.write(
                b"Last failed login: Tue Dec  1 21:25:40 UTC 2026 from 198.18.1.254 on pts/0\r\n"
                b"There were 2 failed login attempts since the last successful login.\r\n$ "
            )
        else:
            writer.write(b"\r\nLogin incorrect\r\nlab login: ")
        await writer.drain()
        await reader.read(100)
        writer.close()

    address = fresh_address()
    server = await asyncio.start_server(handle, address, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await scan_address(address, [(port, "telnet")])
    finally:
        server.close()
    [weak] = by_id(result, WEAK)
    assert weak.status == Status.FAIL and weak.evidence["password"] == "password", weak.evidence


async def test_an_ftp_answer_that_is_neither_login_nor_refusal_is_never_a_pass() -> None:
    """vsftpd says "500 OOPS: cannot change directory" to a right password when the session cannot start.

    Only 530 is a refusal: read as one, that answer would pass a weak password.
    """
    import asyncio

    from tests.conftest import fresh_address, scan_address

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 (vsFTPd 3.0.3)\r\n")
        user = (await reader.readline()).split()[-1]
        writer.write(b"331 Please specify the password.\r\n")
        password = (await reader.readline()).split()[-1]
        if (user, password) == (b"admin", b"admin"):
            writer.write(b"500 OOPS: cannot change directory:/home/admin\r\n")
        else:
            writer.write(b"530 Login incorrect.\r\n")
        await writer.drain()
        writer.close()

    address = fresh_address()
    server = await asyncio.start_server(handle, address, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await scan_address(address, [(port, "ftp")], pace=0.05)
    finally:
        server.close()
    [weak] = by_id(result, WEAK)
    assert weak.status == Status.INCONCLUSIVE, weak.evidence
    assert Status.PASS not in statuses(result, DEFAULT).values()
