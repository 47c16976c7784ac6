"""MFP checks against real IPP daemons on loopback: CUPS' ippeveprinter (an IPP Everywhere printer) and cupsd.

Debian 12 packages cups-ipp-utils and cups-daemon (2.4.2). Skipped with the reason when a binary is
missing or the tests do not run as root (ippeveprinter runs in its own mount namespace).

How they run here, bound to loopback only, each stopped by its own PID:

- ippeveprinter wants a system D-Bus for Avahi even with ``-r off``: a private dbus-daemon on a socket
  in the test's directory (DBUS_SYSTEM_BUS_ADDRESS); with no avahi-daemon it waits in "connecting" and
  serves IPP. It listens on the first IPv4 and IPv6 address its ``-n`` host name resolves to and exits
  when either fails, so it runs under ``unshare --mount`` with a private /etc/hosts (the name on
  127.0.0.77 and ::1) and /etc/gai.conf (127.0.0.77 first: glibc maps ::1 to 127.0.0.1 for IPv4).
- cupsd ``-f`` with a private cupsd.conf / cups-files.conf / printers.conf / classes.conf. It listens
  on 127.0.0.1: cupsd accepts a loopback client only with Host "localhost" or "127.0.0.1" (a LAN client
  may name the server's numeric address).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import probes
from lab.daemons import cupsd_conf
from scanner.checks.mfp import IPP_NO_AUTH
from scanner.device import Kind
from scanner.orchestrator import HostResult
from tests.conftest import by_id, scan_address

probes.load_all()
PRINTER_ADDRESS = "127.0.0.77"
CUPS_ADDRESS = "127.0.0.1"
MAKE, MODEL = "HP", "LaserJet Pro MFP M428fdw"  # ippeveprinter announces "MAKE MODEL"
NEEDED = ("ippeveprinter", "cupsd", "dbus-daemon", "unshare", "mount")
missing = [b for b in NEEDED if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
pytestmark = [
    pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)} (cups-ipp-utils, cups-daemon)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="ippeveprinter runs in a private mount namespace: needs root"),
]
BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={socket}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/>
<allow send_type="signal"/><allow send_type="method_return"/><allow send_type="error"/>
<allow receive_type="method_call"/><allow receive_type="signal"/><allow receive_type="method_return"/>
<allow receive_type="error"/></policy></busconfig>
"""
GAI_CONF = (
    "precedence ::ffff:127.0.0.77/128 100\nprecedence ::1/128 50\nprecedence ::/0 40\nprecedence ::ffff:0:0/96 10\n"
)
PRINTERS_CONF = """<Printer office>
UUID urn:uuid:6f1c4c62-7a2e-3b59-4f6e-1b7a2c5e9d01
Info Office queue, open to the LAN
MakeModel Local Raw Printer
DeviceURI file:///dev/null
State Idle
Accepting Yes
Shared Yes
</Printer>
<Printer secure>
UUID urn:uuid:6f1c4c62-7a2e-3b59-4f6e-1b7a2c5e9d02
Info Queue whose jobs need a password
MakeModel Local Raw Printer
DeviceURI file:///dev/null
State Idle
Accepting Yes
Shared Yes
OpPolicy authenticated
</Printer>
"""
CLASSES_CONF = """<Class floor>
UUID urn:uuid:6f1c4c62-7a2e-3b59-4f6e-1b7a2c5e9d03
Info Floor class
State Idle
Accepting Yes
Shared Yes
Printer office
</Class>
"""


def _free_port(address: str, also_v6: bool = False) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind((address, 0))
            port = int(s.getsockname()[1])
        if not also_v6:
            return port
        try:
            with socket.socket(socket.AF_INET6) as s6:
                s6.bind(("::1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode}: {log.read_text(errors='replace')[-800:]}")
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"not listening on {address}:{port}: {log.read_text(errors='replace')[-800:]}")


class Daemons:
    """Processes this module started; stopped by their own PIDs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.root / f"{name}.log"
        out = log.open("wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        out.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemons]:
    root = tmp_path_factory.mktemp("ippd")
    os.chmod(root, 0o755)  # cupsd and its lp-user children read their files here
    found = Daemons(root)
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def bus(daemons: Daemons) -> str:
    """A private system D-Bus (ippeveprinter's Avahi client needs one)."""
    sock = daemons.root / "system_bus_socket"
    conf = daemons.root / "bus.conf"
    conf.write_text(BUS_CONF.format(socket=sock))
    proc = daemons.start("dbus", ["dbus-daemon", f"--config-file={conf}", "--nofork"])
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"private dbus-daemon did not start: {(daemons.root / 'dbus.log').read_text()}")
        time.sleep(0.05)
    return f"unix:path={sock}"


def _ippeveprinter(daemons: Daemons, bus: str, name: str, *extra: str) -> int:
    root = daemons.root
    (root / "hosts").write_text(f"{PRINTER_ADDRESS} edgeaudit-mfp\n::1 edgeaudit-mfp\n")
    (root / "gai.conf").write_text(GAI_CONF)
    spool = root / f"spool-{name}"
    spool.mkdir(exist_ok=True)
    port = _free_port(PRINTER_ADDRESS, also_v6=True)
    script = (
        f"mount --bind {root / 'hosts'} /etc/hosts && mount --bind {root / 'gai.conf'} /etc/gai.conf && exec "
        f'ippeveprinter -r off -n edgeaudit-mfp -p {port} -d {spool} -M {MAKE} -m "{MODEL}" {" ".join(extra)} {name}'
    )
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus}
    proc = daemons.start(name, ["unshare", "--mount", "sh", "-c", script], env)
    _wait_listening(PRINTER_ADDRESS, port, proc, root / f"{name}.log")
    return port


@pytest.fixture(scope="module")
def open_printer(daemons: Daemons, bus: str) -> int:
    """A real IPP Everywhere printer that takes jobs from anyone."""
    return _ippeveprinter(daemons, bus, "mfp-open")


@pytest.fixture(scope="module")
def auth_printer(daemons: Daemons, bus: str) -> int:
    """The same printer with -A: jobs need HTTP Basic authentication."""
    return _ippeveprinter(daemons, bus, "mfp-auth", "-A")


@pytest.fixture(scope="module")
def cups_server(daemons: Daemons) -> int:
    """A real cupsd print server: queue office open, queue secure behind OpPolicy authenticated, class floor."""
    etc = daemons.root / "cups"
    for sub in ("spool/tmp", "cache", "state", "log"):
        (etc / sub).mkdir(parents=True, exist_ok=True)
    shutil.chown(etc / "spool", "root", "lp")
    shutil.chown(etc / "spool/tmp", "root", "lp")
    os.chmod(etc / "spool/tmp", 0o1770)
    port = _free_port(CUPS_ADDRESS)
    (etc / "cupsd.conf").write_text(cupsd_conf([f"{CUPS_ADDRESS}:{port}"]))
    files = [f"ServerRoot {etc}", f"RequestRoot {etc / 'spool'}", f"CacheDir {etc / 'cache'}"]
    files += [f"StateDir {etc / 'state'}", f"TempDir {etc / 'spool/tmp'}", f"AccessLog {etc / 'log/access_log'}"]
    files += [f"ErrorLog {etc / 'log/error_log'}", f"PageLog {etc / 'log/page_log'}", "FileDevice Yes"]
    files += ["User lp", "Group lp", "SystemGroup root"]
    (etc / "cups-files.conf").write_text("\n".join(files) + "\n")
    (etc / "printers.conf").write_text(PRINTERS_CONF)
    (etc / "classes.conf").write_text(CLASSES_CONF)
    argv = ["cupsd", "-f", "-c", str(etc / "cupsd.conf"), "-s", str(etc / "cups-files.conf")]
    proc = daemons.start("cupsd", argv)
    _wait_listening(CUPS_ADDRESS, port, proc, etc / "log/error_log")
    return port


async def _scan(address: str, port: int) -> HostResult:
    """The real engine and probes, on one IPP port (tcp/1 closed: the host is up)."""
    return await scan_address(address, [(port, "ipp")], read=2.0, probe=8.0, host=30.0)


def _make_and_model(result: HostResult, port: int, path: str) -> str | None:
    return result.device.fingerprint(f"tcp/{port}", Kind.IPP_MAKE_AND_MODEL, path)


async def test_real_ippeveprinter_make_and_model_is_kept_and_matches_hp(open_printer: int) -> None:
    result = await _scan(PRINTER_ADDRESS, open_printer)
    announced = f"{MAKE} {MODEL}"
    assert _make_and_model(result, open_printer, "/ipp/print") == announced
    assert (result.device.profile, result.device.device_class) == ("hp", "mfp")
    assert result.device.model == MODEL


async def test_real_ippeveprinter_open_fails_ipp_no_auth_and_with_basic_auth_passes(
    open_printer: int, auth_printer: int
) -> None:
    [open_] = by_id(await _scan(PRINTER_ADDRESS, open_printer), IPP_NO_AUTH)
    assert open_.status.value == "fail" and open_.service == f"tcp/{open_printer}"
    assert open_.evidence["asked"] == ["Get-Printer-Attributes /ipp/print: successful-ok"]
    assert open_.evidence["queues"][0]["uri_authentication"] == ["none", "none"]  # ipp:// and ipps://
    [auth] = by_id(await _scan(PRINTER_ADDRESS, auth_printer), IPP_NO_AUTH)
    # -A leaves Get-Printer-Attributes open and announces basic for jobs on both URIs
    assert auth.status.value == "pass" and auth.evidence["queues"][0]["uri_authentication"] == ["basic", "basic"]


async def test_real_cupsd_queues_are_found_under_printers_and_classes_and_judged(cups_server: int) -> None:
    result = await _scan(CUPS_ADDRESS, cups_server)
    [found] = by_id(result, IPP_NO_AUTH)
    assert found.status.value == "fail" and found.service == f"tcp/{cups_server}"
    assert found.evidence["asked"] == [
        "Get-Printer-Attributes /ipp/print: client-error-not-found",
        "Get-Printer-Attributes /ipp: client-error-not-found",
        "Get-Printer-Attributes /: client-error-not-found",
        "CUPS-Get-Printers /: successful-ok",
        "Get-Printer-Attributes /classes/floor: successful-ok",
        "Get-Printer-Attributes /printers/office: successful-ok",
        "Get-Printer-Attributes /printers/secure: successful-ok",
    ]
    verdicts = {q["path"]: (q["verdict"], q["uri_authentication"]) for q in found.evidence["queues"]}
    assert verdicts == {
        "/printers/office": ("fail", ["requesting-user-name"]),
        "/classes/floor": ("fail", ["requesting-user-name"]),
        "/printers/secure": ("pass", ["basic"]),
    }
    assert _make_and_model(result, cups_server, "/printers/office") == "Local Raw Printer"
