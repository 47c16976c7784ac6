"""Alerts on change (scanner.alerts): what counts as a change, the text, webhook and SMTP delivery, the outbox.

Delivery is tested against real servers started here: an HTTP receiver (lab.webhook) and
aiosmtpd, an SMTP server library, with STARTTLS and a login, on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from lab.webhook import Receiver
from probes.observations import Mode
from scanner import alerts
from scanner.alerts.channels import Channel, DeliveryError, Email, Webhook, deliver
from scanner.device import DeviceRecord
from scanner.findings import Finding, Severity, Status
from scanner.orchestrator import HostResult
from scanner.store import HostRecord, Store, SweepRecord

EOL, CLEAR, REUSE, DRIFT, WEAK = (
    "CIAJ-1.3-FIRMWARE-EOL", "CIAJ-1.2-CLEARTEXT-ADMIN", "CIAJ-1.2-REUSED-CREDENTIAL", "CIAJ-3.4-CONFIG-DRIFT",
    "CIAJ-1.2-WEAK-CREDENTIAL",
)  # fmt: skip


def _f(check: str, address: str, status: Status, severity: Severity = Severity.HIGH) -> Finding:
    return Finding(check, address, status, severity, check.split("-")[1], Mode.DEFAULT)


def _sweep(sid: str, mode: str, hosts: dict[str, list[Finding]], state: str = "complete") -> SweepRecord:
    recs = [HostRecord(a, "up", None, 0, 0, DeviceRecord(), fs) for a, fs in hosts.items()]
    return SweepRecord(sid, "scan", mode, state, 0, 0, {}, {}, "lan", recs)


A, B, G = "192.0.2.1", "192.0.2.2", "192.0.2.9"
OLD = {
    A: [_f(EOL, A, Status.PASS), _f(CLEAR, A, Status.FAIL), _f(REUSE, A, Status.FAIL), _f(DRIFT, A, Status.FAIL)],
    G: [_f(EOL, G, Status.PASS)],
}
NEW = {
    A: [
        _f(EOL, A, Status.FAIL),
        _f(CLEAR, A, Status.PASS),
        _f(REUSE, A, Status.INCONCLUSIVE),
        _f(WEAK, A, Status.FAIL),
    ],
    B: [_f(DRIFT, B, Status.PASS), _f(EOL, B, Status.FAIL, Severity.CRITICAL)],
}


def test_changes_count_device_changes_not_changes_of_what_was_swept() -> None:
    c = alerts.compare("office", _sweep("old", "safe", OLD), _sweep("new", "default", NEW))
    assert [(f.address, f.check_id) for f in c.newly_failing] == [(A, EOL), (B, EOL)]  # pass -> fail; a new device
    assert [(f.address, f.check_id, f.status) for f in c.resolved] == [(A, CLEAR, Status.PASS)]
    # fail -> inconclusive is not resolved; nor is a failure the sweep judged on other hosts, not on this one
    assert [(f.address, f.check_id) for f in c.unverified] == [(A, REUSE), (A, DRIFT)]
    assert c.first_judged == 1  # WEAK was not judged by the earlier (safe) sweep: not "newly failing"
    assert c.new_devices == [B] and c.gone_devices == [G] and c.confirmed == []
    unsure = _sweep("u", "default", {A: [_f(EOL, A, Status.INCONCLUSIVE)]})
    sure = alerts.compare("office", unsure, _sweep("s", "default", {A: [_f(EOL, A, Status.FAIL)]}))
    assert [f.check_id for f in sure.confirmed] == [EOL] and sure.newly_failing == []  # it may have failed before
    same = alerts.compare("office", _sweep("a", "default", NEW), _sweep("b", "default", NEW))
    assert same.empty and same.counts() == dict.fromkeys(same.counts(), 0)


def _scoped(sid: str, targets: list[str], hosts: dict[str, list[Finding]]) -> SweepRecord:
    from scanner.targets import build_scope

    record = _sweep(sid, "default", hosts)
    record.scope = build_scope(targets).to_json()
    return record


def test_only_addresses_both_scopes_hold_are_compared() -> None:
    """A one-off sweep of one device of the site does not make the rest 'gone', nor 'new' the next time."""
    full = {a: [_f(EOL, a, Status.PASS)] for a in (A, B, G)}
    one = _scoped("one", [A], {A: [_f(EOL, A, Status.FAIL)]})
    c = alerts.compare("office", _scoped("full", ["192.0.2.0/24"], full), one)
    assert c.gone_devices == [] and [f.address for f in c.newly_failing] == [A]
    back = alerts.compare("office", one, _scoped("again", ["192.0.2.0/24"], {**full, A: [_f(EOL, A, Status.FAIL)]}))
    assert back.new_devices == [] and back.newly_failing == [] and back.not_compared == 2
    assert "2 device(s) outside the other sweep's scope are not compared" in alerts.compose(back, "en")[1]


def test_a_failure_on_a_host_cut_by_its_budget_is_not_resolved() -> None:
    old = _sweep("old", "default", {A: [_f(CLEAR, A, Status.FAIL)], B: [_f(CLEAR, B, Status.PASS)]})
    new = _sweep("new", "default", {A: [], B: [_f(CLEAR, B, Status.PASS)]})
    new.hosts[0].state = "budget"
    c = alerts.compare("office", old, new)
    assert c.resolved == [] and [f.check_id for f in c.unverified] == [CLEAR]


def test_a_failure_whose_check_did_not_run_is_not_resolved() -> None:
    """A default sweep's credential failure is not 'resolved' by a safe sweep that sent no credential."""
    old = _sweep("old", "default", {A: [_f(WEAK, A, Status.FAIL), _f(EOL, A, Status.PASS)]})
    new = _sweep("new", "safe", {A: [_f(EOL, A, Status.PASS)]})
    assert alerts.compare("office", old, new).empty


WORDS = {
    "en": ["2 newly failing, 1 resolved, 2 no longer verified", "Resolved:", "New devices:", "192.0.2.2"],
    "ja": ["新たな不適合 2 件、解消 1 件", "解消:", "新しい機器:", "ファームウェア"],
}


@pytest.mark.parametrize(("lang", "words"), list(WORDS.items()))
def test_the_text_says_each_change_in_both_languages(lang: str, words: list[str]) -> None:
    c = alerts.compare("office", _sweep("old", "safe", OLD), _sweep("new", "default", NEW))
    subject, text = alerts.compose(c, lang)
    assert subject.startswith("edgeaudit office: ")
    for w in words:
        assert w in subject + text, (w, text)
    assert text.index(f"{B} {EOL} [critical]") < text.index(f"{A} {EOL} [high]")  # worst first


def test_a_long_text_is_cut_and_says_how_many_more() -> None:
    many = {f"192.0.2.{i}": [_f(EOL, f"192.0.2.{i}", Status.FAIL)] for i in range(10, 70)}
    passed = {a: [_f(EOL, a, Status.PASS)] for a in many}
    c = alerts.compare("office", _sweep("old", "default", passed), _sweep("new", "default", many))
    _subject, text = alerts.compose(c, "en")
    assert text.count(EOL) == alerts.changes.MAX_LINES and "... and 20 more" in text
    assert len(alerts.changes.body(c)["newly_failing"]) == 60  # the JSON carries them all


def _hook(url: str, **kw: Any) -> Channel:
    return Channel(Webhook(url), "en", backoff=0.01, timeout=2, **kw)


async def test_webhook_is_retried_with_backoff_and_carries_text_and_changes() -> None:
    c = alerts.compare("office", _sweep("old", "safe", OLD), _sweep("new", "default", NEW))
    subject, text = alerts.compose(c, "en")
    with Receiver(statuses=[500, 503]) as rx:
        tries = await deliver(_hook(rx.url, retries=2), subject, text, alerts.changes.body(c))
    assert tries == 3 and len(rx.bodies) == 1
    got = rx.bodies[0]
    assert got["text"].startswith(subject) and got["counts"]["newly_failing"] == 2
    assert {f["id"] for f in got["newly_failing"]} == {EOL} and got["new_devices"] == [B]
    with Receiver(statuses=[500] * 5) as rx, pytest.raises(DeliveryError, match=r"HTTP 500 .*after 2 tries"):
        await deliver(_hook(rx.url, retries=1), subject, text, {})


def _record(store: Store, site: str, channel: Channel, hosts: dict[str, list[Finding]], state: str = "complete") -> str:
    config = {"site": {"name": site, "file": "office.toml", "notify": [channel.to_json()]}}
    sid = store.begin("scan", "default", {}, config, "lan")
    for address, found in hosts.items():
        store.host_done(sid, HostResult(address, "up", 0.0, 1.0, found, DeviceRecord()))
    store.finish(sid, state)
    return sid


def test_an_undelivered_alert_is_kept_and_sent_first_after_the_next_sweep(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    with Receiver(statuses=[500] * 3) as rx:
        hook = _hook(rx.url, retries=2)
        first = _record(store, "office", hook, {A: [_f(EOL, A, Status.PASS)]})
        assert alerts.after_sweep(store, store.load(first)) == [
            "first lan scan of site 'office': nothing to compare with yet"
        ]
        second = _record(store, "office", hook, {A: [_f(EOL, A, Status.FAIL)]})
        lines = alerts.after_sweep(store, store.load(second))  # never raises: the receiver refuses every try
        assert "not delivered: HTTP 500" in lines[0] and "tried again after the next sweep" in lines[0]
        assert [q["sweep"] for q in store.pending_alerts("office")] == [second] and rx.bodies == []
        third = _record(store, "office", hook, {A: [_f(EOL, A, Status.FAIL)], B: [_f(EOL, B, Status.FAIL)]})
        lines = alerts.after_sweep(store, store.load(third))
    assert f"sent the alert kept from sweep {second}" in lines[0] and "sent (" in lines[1]
    assert [b["sweep"] for b in rx.bodies] == [second, third]  # oldest first
    assert rx.bodies[0]["counts"]["newly_failing"] == 1 and rx.bodies[1]["new_devices"] == [B]
    assert store.pending_alerts("office") == []


def test_no_alert_without_change_unless_always_nor_for_an_interrupted_sweep(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    with Receiver() as rx:
        quiet, always = _hook(rx.url), _hook(rx.url, always=True)
        _record(store, "office", quiet, {A: [_f(EOL, A, Status.FAIL)]})
        again = _record(store, "office", quiet, {A: [_f(EOL, A, Status.FAIL)]})
        assert "no change since" in alerts.after_sweep(store, store.load(again))[0] and rx.bodies == []
        cut = _record(store, "office", quiet, {}, state="interrupted")
        assert "no comparison" in alerts.after_sweep(store, store.load(cut))[0] and rx.bodies == []
        other = _record(store, "elsewhere", quiet, {A: [_f(EOL, A, Status.PASS)]})  # another site: not compared
        assert "first lan scan of site 'elsewhere'" in alerts.after_sweep(store, store.load(other))[0]
        beat = _record(store, "office", always, {A: [_f(EOL, A, Status.FAIL)]})
        assert "sent (" in alerts.after_sweep(store, store.load(beat))[0]
    assert len(rx.bodies) == 1 and rx.bodies[0]["previous"] == again  # the interrupted sweep is no baseline


# -- SMTP ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for 127.0.0.1: the server's context and the file a client trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, cert_file


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"


@pytest.fixture
def smtp(tls_pair: tuple[ssl.SSLContext, Path]) -> Iterator[tuple[int, _Inbox, Path]]:
    """aiosmtpd on 127.0.0.1: STARTTLS required, then a login (user edge, password s3cret)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    inbox = _Inbox()

    def authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"edge", b"s3cret")
        if ok:
            inbox.logins.append((data.login, data.password))
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    port = _free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=tls_pair[0], require_starttls=True,
        authenticator=authenticator, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        yield port, inbox, tls_pair[1]
    finally:
        controller.stop()


def _mail(port: int, cafile: Path | None, **kw: Any) -> Channel:
    target = Email("127.0.0.1", ("noc@example.jp",), "edgeaudit@example.jp", port=port, user="edge",
                   password_env="EA_TEST_SMTP_PASSWORD", cafile=str(cafile) if cafile else None, **kw)  # fmt: skip
    return Channel(target, "ja", timeout=5, retries=0)


async def test_email_goes_over_starttls_with_a_login_and_a_japanese_body(
    smtp: tuple[int, _Inbox, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, inbox, cafile = smtp
    monkeypatch.setenv("EA_TEST_SMTP_PASSWORD", "s3cret")
    c = alerts.compare("本社", _sweep("old", "safe", OLD), _sweep("new", "default", NEW))
    subject, text = alerts.compose(c, "ja")
    assert await deliver(_mail(port, cafile), subject, text, {}) == 1
    assert inbox.logins == [(b"edge", b"s3cret")] and len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["Subject"] == subject and "新たな不適合 2 件" in msg["Subject"]
    assert msg["To"] == "noc@example.jp"
    content = msg.get_body().get_content()  # type: ignore[union-attr]
    assert "新たな不適合:" in content and f"{B} {EOL}" in content


async def test_email_refuses_what_it_cannot_do_safely(
    smtp: tuple[int, _Inbox, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, inbox, cafile = smtp
    monkeypatch.setenv("EA_TEST_SMTP_PASSWORD", "wrong")
    with pytest.raises(DeliveryError, match="SMTPAuthenticationError"):
        await deliver(_mail(port, cafile), "s", "t", {})
    monkeypatch.delenv("EA_TEST_SMTP_PASSWORD")
    with pytest.raises(DeliveryError, match=r"\$EA_TEST_SMTP_PASSWORD is not set"):
        await deliver(_mail(port, cafile), "s", "t", {})
    monkeypatch.setenv("EA_TEST_SMTP_PASSWORD", "s3cret")
    # a server certificate the client does not trust (the system's CAs only): no mail, no password sent
    with pytest.raises(DeliveryError, match="SSLCertVerificationError"):
        await deliver(_mail(port, None), "s", "t", {})
    assert inbox.messages == [] and inbox.logins == []
    silent = _free_port()  # nothing listens: a refused connection, within the deadline
    with pytest.raises(DeliveryError, match="ConnectionRefused"):
        await deliver(_mail(silent, cafile), "s", "t", {})


def test_two_site_sweeps_send_the_change_to_a_webhook_and_keep_the_exit_code(  # type: ignore[no-untyped-def]
    fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scan --site`, twice: the second sweep finds Telnet opened on the router (loopback: every address answers)."""
    from scanner.cli import main

    router = {"name": "r", "address": "127.0.217.1", "persona": "router", "model": "EL-R100", "firmware": "3.2.1",
              "services": {"ssh": 2222, "http": 8080}, "http_mode": "redirect"}  # fmt: skip
    with Receiver() as rx:
        site = tmp_path / "office.toml"
        site.write_text(
            f'name = "office"\ntargets = ["127.0.217.1"]\nmode = "safe"\nlang = "en"\n'
            f'ports = ["2222:ssh", "2323:telnet", "8080:http"]\nsnmp-port = 1161\nsip-port = 15060\nntp-port = 1123\n'
            f"timeout = 0.5\nconnect-timeout = 0.5\nprobe-timeout = 2\n"
            f'db = "h.db"\nout = "out"\nmetrics-file = "edgeaudit.prom"\n'
            f'\n[[notify]]\ntype = "webhook"\nurl = "{rx.url}"\nbackoff = 0.01\n',
            encoding="utf-8",
        )
        first = fleet([router])
        code1 = main(["-q", "scan", "--site", str(site)])
        assert "first lan scan of site 'office'" in capsys.readouterr().err and rx.bodies == []
        first.terminate()
        first.wait(10)
        opened = {**router, "services": {"ssh": 2222, "http": 8080, "telnet": 2323}}
        fleet([opened])
        code2 = main(["-q", "scan", "--site", str(site)])
        err = capsys.readouterr().err
    assert "edgeaudit: alert: webhook http://127.0.0.1:" in err and "sent (" in err, err
    assert code1 == 0 and code2 == 1  # the alert changes nothing: the exit code is the findings' (Telnet: high)
    assert len(rx.bodies) == 1
    got = rx.bodies[0]
    assert got["site"] == "office" and got["new_devices"] == [] and got["gone_devices"] == []
    assert ("127.0.217.1", CLEAR, "tcp/2323") in {(f["address"], f["id"], f["service"]) for f in got["newly_failing"]}
    assert "127.0.217.1 tcp/2323 CIAJ-1.2-CLEARTEXT-ADMIN" in got["text"]
    assert (tmp_path / "out" / "report.html").exists() and (tmp_path / "h.db").exists()  # paths from the site's dir
    from prometheus_client.parser import text_string_to_metric_families

    metrics = {m.name: m for m in text_string_to_metric_families((tmp_path / "edgeaudit.prom").read_text())}
    (up,) = metrics["edgeaudit_hosts_reported"].samples
    assert up.value == 1 and up.labels == {"site": "office", "vantage": "lan"}
    failing = [s for s in metrics["edgeaudit_findings"].samples if s.labels["status"] == "fail" and s.value]
    assert {s.labels["clause"] for s in failing} >= {"1.2"}  # Telnet's cleartext admin


async def test_a_reply_that_is_not_http_is_a_failed_try_and_never_echoes_the_secret_url() -> None:
    """An SSH banner where the webhook should be: each try fails (retried, then kept), the URL's path unsaid."""
    import asyncio

    async def banner(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await w.drain()
        w.close()

    server = await asyncio.start_server(banner, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(DeliveryError) as info:
            await deliver(_hook(f"http://127.0.0.1:{port}/services/SECRET-TOKEN", retries=1), "s", "t", {})
    finally:
        server.close()
        await server.wait_closed()
    assert "after 2 tries" in str(info.value) and "SECRET-TOKEN" not in str(info.value)
