"""The SIP emulator against a real Asterisk 20.20.1 (chan_sip): the recorded requests replayed, the same answers.

The recordings (../shared/real-world/asterisk-20-chan_sip/, not part of the project)
hold every request a hand-written client sent and what Asterisk answered. Each
case's requests go to the matching persona (weak.json: allowguest=yes,
alwaysauthreject=no; hardened.json: the opposite, ``Server: PBX``, ``_X.``), and
the status codes, reason phrases, rough timings and Asterisk's security events
must come back the same, in order. The recorded digest answers used a secret that
was never published, so each answer is computed afresh against the emulator's
own challenge: with its configured secret where the recording sent the right one,
with a wrong one elsewhere, the recorded nonce standing for the emulator's nonce
of the same place, and in the dialog (Call-ID) the recording sent it in.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from lab.emulator.devices import Device
from probes.sip import sipmsg
from tests.conftest import StartDevice

RECORDED = Path(__file__).resolve().parents[2] / "shared" / "real-world" / "asterisk-20-chan_sip"
SECRET = "Replay-Ext100-9f2c"  # the emulator's secret for 100 (the real one is not published)
PERSONAS: dict[str, tuple[str, dict[str, Any]]] = {
    "weak.json": (
        "127.0.0.81",
        {
            "persona": "pbx",
            "services": ["sip", "sip_tcp"],
            "sip_user_agent": "Asterisk PBX 20.20.1",
            "extensions": {"100": SECRET, "101": "Replay-101-x", "102": "Replay-102-x"},
            "guest_calls": True,
            "guest_routes": ["011", "00", "+"],  # the guest context dials abroad through the (dead) trunk
            "auth_reject_uniform": False,
        },
    ),
    "hardened.json": (
        "127.0.0.83",
        {
            "persona": "pbx",
            "services": ["sip", "sip_tcp"],
            "sip_user_agent": "PBX",
            "extensions": {"100": SECRET, "101": "Replay-101-x", "102": "Replay-102-x"},
            "guest_calls": False,
            "auth_reject_uniform": True,
            "sip_dialplan": ["_X."],
        },
    ),
}
EVENT_RE = re.compile(r'SecurityEvent="(\w+)"')
NONCE_RE = re.compile(r'nonce="([^"]*)"')


def _cases(name: str) -> list[dict[str, Any]]:
    if not (RECORDED / name).is_file():
        pytest.skip(f"{RECORDED / name} is absent: the real-world recordings live beside the clone (../shared)")
    data: list[dict[str, Any]] = json.loads((RECORDED / name).read_text(encoding="utf-8"))
    return data


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _answers_right(case: str, index: int, count: int) -> bool:
    """Whether the recording's ``index``-th digest answer of ``count`` carried the right secret (the case says)."""
    if "then-correct" in case:
        return index == count - 1
    return "correct" in case and "wrong" not in case


class _Peer:
    """One client socket or connection to the emulator; messages in arrival order, with their times."""

    def __init__(self, dev: Device, transport: str) -> None:
        self.dev, self.transport = dev, transport
        self.queue: asyncio.Queue[tuple[float, sipmsg.SipMessage]] = asyncio.Queue()
        self.closers: list[Any] = []

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            peer = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    peer.queue.put_nowait((loop.time(), sipmsg.parse(data)))

            transport, _ = await loop.create_datagram_endpoint(
                Proto, local_addr=("127.0.0.1", 0), remote_addr=(self.dev.spec.address, self.dev.bound["sip"])
            )
            self._send = transport.sendto
            self.closers.append(transport.close)
            return
        reader, writer = await asyncio.open_connection(self.dev.spec.address, self.dev.bound["sip_tcp"])

        async def read() -> None:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(sipmsg.content_length(head) or 0)
                self.queue.put_nowait((loop.time(), sipmsg.parse(head + body, stream=True)))

        task = asyncio.create_task(read())
        self._send = writer.write
        self.closers += [task.cancel, writer.close]

    def send(self, data: bytes) -> None:
        self._send(data)

    def close(self) -> None:
        for close in self.closers:
            close()


async def _replay(dev: Device, case: dict[str, Any], recorded_address: str) -> None:
    """Send the case's requests as recorded; the emulator must answer as Asterisk did, in order."""
    loop = asyncio.get_running_loop()
    exchange = case["exchange"]
    sent = [e for e in exchange if e["dir"] == "sent"]
    got_recorded = [sipmsg.parse(e["text"].encode()) for e in exchange if e["dir"] == "received"]
    recorded_times = [e["t_ms"] / 1000 for e in exchange if e["dir"] == "received"]
    recorded_nonces = [NONCE_RE.search(m.get("www-authenticate") or "") for m in got_recorded if m.status == 401]
    nonce_for: dict[str, str] = {}
    answered: dict[str, str] = {}  # a recorded Authorization -> the one sent for it (a repeated answer is repeated)
    answers = [e for e in sent if "\r\nAuthorization:" in e["text"]]
    peer = _Peer(dev, case["transport"])
    await peer.open()
    events_before = len(dev.sip.events)
    received: list[tuple[float, sipmsg.SipMessage]] = []
    try:
        start = loop.time()
        for n, entry in enumerate(exchange):
            if entry["dir"] != "sent":
                continue
            text: str = entry["text"].replace(recorded_address, dev.spec.address)
            if "\r\nAuthorization:" in text:
                recorded = sipmsg.parse(entry["text"].encode()).get("authorization") or ""
                if recorded not in answered:
                    params = dict(re.findall(r'(\w+)="?([^",]*)"?', recorded))
                    right = _answers_right(case["case"], answers.index(entry), len(answers))
                    uri = params["uri"].replace(recorded_address, dev.spec.address)
                    nonce = nonce_for[params["nonce"]]
                    ha1 = _md5(f"100:asterisk:{SECRET if right else 'Not-The-Secret'}")
                    response = _md5(f"{ha1}:{nonce}:{_md5(f'REGISTER:{uri}')}")
                    answered[recorded] = (
                        f'Digest username="100", realm="asterisk", nonce="{nonce}", uri="{uri}", '
                        f'response="{response}", algorithm=MD5'
                    )
                text = re.sub(r"\r\nAuthorization: [^\r]*", f"\r\nAuthorization: {answered[recorded]}", text)
            peer.send(text.encode())
            # Read what the recording received before its next request (the rest after the last one).
            later = exchange[n + 1 :]
            upto = next((i for i, e in enumerate(later) if e["dir"] == "sent"), len(later))
            for _ in range(sum(1 for e in later[:upto] if e["dir"] == "received")):
                limit = recorded_times[len(received)] + 2.0
                async with asyncio.timeout(max(0.1, start + limit - loop.time())):
                    at, msg = await peer.queue.get()
                received.append((at - start, msg))
                challenges = sum(1 for _, m in received if m.status == 401)
                if msg.status == 401 and challenges <= len(recorded_nonces):  # more: the comparison below says so
                    mine = NONCE_RE.search(msg.get("www-authenticate") or "")
                    theirs = recorded_nonces[challenges - 1]
                    assert mine is not None and theirs is not None
                    nonce_for[theirs.group(1)] = mine.group(1)
        await asyncio.sleep(0.05)
        assert peer.queue.empty(), f"{case['case']}: more answers than Asterisk sent"
    finally:
        peer.close()
    what = case["case"]
    assert [(m.status, m.reason) for _, m in received] == [(m.status, m.reason) for m in got_recorded], what
    for (at, _), recorded_at in zip(received, recorded_times, strict=True):
        assert abs(at - recorded_at) < 0.3 + 0.1 * recorded_at, (what, at, recorded_at)
    for mine, theirs in zip((m for _, m in received), got_recorded, strict=True):
        for header in ("server", "allow", "supported"):
            assert mine.get(header) == theirs.get(header), (what, header)
        assert (mine.get("www-authenticate") is None) == (theirs.get("www-authenticate") is None), what
    events = [event for event, _ in dev.sip.events[events_before:]]
    assert events == [m.group(1) for line in case["security_log"] if (m := EVENT_RE.search(line))], what


@pytest.mark.parametrize("recording", sorted(PERSONAS))
async def test_recorded_asterisk_exchanges_replay_against_the_emulator(emulated: StartDevice, recording: str) -> None:
    cases = _cases(recording)
    address, spec = PERSONAS[recording]
    dev = await emulated(**spec)
    assert {c["transport"] for c in cases} == {"udp", "tcp"} and len(cases) >= 20
    for case in cases:
        await _replay(dev, case, address)
    assert not dev.sip._answer_timers  # every guest call ended (CANCEL, or 503 when Dial timed out)
    assert dev.sip.registrations == {}  # binding queries only: nothing was left registered, as recorded


def test_the_recordings_path_is_beside_the_clone() -> None:
    assert RECORDED.parts[-3:] == ("shared", "real-world", "asterisk-20-chan_sip")
    assert RECORDED.parents[2] == Path(__file__).resolve().parents[2]  # read in place, never copied in
