"""CIAJ part 2 on the emulated PBX: open relay and REGISTER without auth, and that no call is ever left up."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

import profiles
from lab.emulator.devices import Device
from probes.login.ledger import Ledger, pair_digest
from probes.observations import Mode
from probes.sip.sip_secret import SipSecretOptions, parse_extensions
from probes.sip.sipcall import SipCallOptions, classify
from profiles.errors import UsageError
from scanner.findings import Status
from scanner.orchestrator import Engine, HostResult
from tests.conftest import StartDevice, by_id, config_for, scan_device

WEAK = {
    "persona": "pbx",
    "services": ["sip"],
    "sip_user_agent": "Asterisk PBX 16.30.0",
    "extensions": {"100": "100"},
    "guest_calls": True,
    "guest_routes": ["010", "00", "+"],
    "auth_reject_uniform": False,
}
HARD = {
    "persona": "pbx",
    "services": ["sip"],
    "sip_user_agent": "Asterisk PBX 22.6.0",
    "extensions": {"100": "Strong-Ext-1"},
    "sip_dialplan": ["_X."],  # the recorded hardened guest context: every number answers OPTIONS alike
}
# The recorded real Asterisk 20.20.1 (chan_sip) instances, with two weak secrets each (issue 17).
REAL_WEAK = {
    **WEAK,
    "sip_user_agent": "Asterisk PBX 20.20.1",
    "extensions": {"100": "100", "101": "1234", "102": "Strong-Ext-102"},
    "guest_routes": ["011", "00", "+"],
}
REAL_HARD = {
    "persona": "pbx",
    "services": ["sip"],
    "sip_user_agent": "PBX",  # hardened Asterisk names nothing: no profile matches it
    "extensions": {"100": "Strong-Ext-100", "101": "1234", "102": "102"},
    "sip_dialplan": ["_X."],
}


def _no_call_left_up(dev: Device) -> None:
    """Every INVITE the device saw ended: rejected, cancelled, or answered and then BYEd."""
    assert dev.sip.calls, "no INVITE reached the device"
    for call in dev.sip.calls.values():
        if call.answered:
            assert call.acked and call.ended, call
        else:
            assert call.rejected is not None or call.cancelled, call
    assert not dev.sip._answer_timers  # nothing still about to answer


async def test_weak_pbx_relays_abroad_and_every_dialog_is_cancelled(emulated: StartDevice) -> None:
    dev = await emulated(**WEAK)
    result = await scan_device(dev, Mode.DEFAULT, probe=60.0, host=90.0)
    relay = by_id(result, "CIAJ-2.3-OPEN-RELAY")
    assert [f.status for f in relay] == [Status.FAIL]
    calls = relay[0].evidence["calls"]
    assert [c["purpose"] for c in calls] == ["baseline", "international", "international", "international"]
    assert calls[0]["outcome"] == "rejected"  # the random extension: 404
    for c in calls[1:]:
        assert c["number"][c["number"].index("999") - 1 :].startswith(("+999", "0999"))  # unassigned code 999
        assert c["outcome"] == "routed" and c["ended_by"] == "CANCEL"
        assert c["dialog"][:4] == ["> INVITE", "< 100 Trying (INVITE)", "< 180 Ringing (INVITE)", "> CANCEL"]
        assert c["dialog"][-1] == "> ACK"  # the 487 was acknowledged
    _no_call_left_up(dev)
    assert all(call.cancelled for call in dev.sip.calls.values() if call.number != calls[0]["number"])


async def test_hardened_pbx_challenges_and_passes(emulated: StartDevice) -> None:
    dev = await emulated(**HARD)
    result = await scan_device(dev, Mode.DEFAULT, probe=60.0, host=90.0)
    assert [f.status for f in by_id(result, "CIAJ-2.3-OPEN-RELAY")] == [Status.PASS]
    assert {c["outcome"] for c in by_id(result, "CIAJ-2.3-OPEN-RELAY")[0].evidence["calls"]} == {"challenged"}
    register = by_id(result, "CIAJ-2.3-REGISTER-NO-AUTH")
    assert [(f.status, f.evidence["status"]) for f in register] == [(Status.PASS, 401)]
    _no_call_left_up(dev)
    assert dev.sip.registrations == {}  # a REGISTER without Contact registers nothing


async def test_a_call_answered_at_once_gets_ack_and_bye_immediately(emulated: StartDevice) -> None:
    dev = await emulated(**{**WEAK, "answer_after_s": 0})
    result = await scan_device(dev, Mode.DEFAULT, probe=60.0, host=90.0)
    relay = by_id(result, "CIAJ-2.3-OPEN-RELAY")
    assert [f.status for f in relay] == [Status.FAIL]
    answered = [c for c in relay[0].evidence["calls"] if c["outcome"] == "answered"]
    assert answered and all(c["ended_by"] == "BYE" for c in answered)
    assert answered[0]["dialog"][:4] == ["> INVITE", "< 200 OK (INVITE)", "> ACK", "> BYE"]
    _no_call_left_up(dev)


async def test_no_invite_to_a_phone_and_none_in_safe_mode(emulated: StartDevice) -> None:
    phone = await emulated(persona="phone", services=["sip"], sip_user_agent="EdgeLab Phone EL-T1 1.8.2")
    result = await scan_device(phone, Mode.DEFAULT)
    assert phone.sip.calls == {}  # an INVITE could ring it: never sent
    relay = by_id(result, "CIAJ-2.3-OPEN-RELAY")
    assert [f.status for f in relay] == [Status.INCONCLUSIVE] and "phone" in relay[0].evidence["reason"]
    pbx = await emulated(**WEAK)
    safe = await scan_device(pbx, Mode.SAFE)
    assert pbx.sip.calls == {} and not any(b"REGISTER" in d for n, d in pbx.received if n == "sip")
    assert [f.status for f in by_id(safe, "CIAJ-2.3-OPEN-RELAY")] == [Status.INCONCLUSIVE]
    assert [f.status for f in by_id(safe, "CIAJ-2.3-REGISTER-NO-AUTH")] == [Status.INCONCLUSIVE]


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        ((100, 183, 487), "routed"),
        ((180,), "routed"),
        ((100, 503), "routed"),  # a trunk refused it: the PBX tried
        ((503,), "routed"),  # past authentication and the dial plan: anything but a refusal is a relayed call
        ((100, 180, 183, 503), "routed"),  # the recorded weak Asterisk: Dial timed out on a dead trunk
        ((100, 180, 183, 487), "routed"),  # the same, CANCELled after the 180
        ((484,), "rejected"),
        ((200,), "answered"),
        ((100, 404), "rejected"),
        ((403,), "rejected"),
        ((407,), "challenged"),
        ((100,), "no-final"),
        ((100, 487), "no-final"),
        ((), "no-final"),
    ],
)
def test_invite_outcomes(statuses: tuple[int, ...], outcome: str) -> None:
    assert classify(statuses) == outcome


def _auth_registers(dev: Device) -> int:
    return sum(1 for name, data in dev.received if name == "sip" and data.startswith(b"REGISTER"))


async def test_weak_pbx_leaks_extensions_and_one_registers_with_its_own_number(emulated: StartDevice) -> None:
    dev = await emulated(**WEAK)
    result = await scan_device(dev, Mode.DEFAULT, probe=90.0, host=120.0)
    enum = by_id(result, "CIAJ-2.3-EXTENSION-ENUMERATION")
    assert [(f.status, f.evidence["found"]) for f in enum] == [(Status.FAIL, ["100"])]
    assert enum[0].evidence["random_user_status"] == 404
    weak = by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")
    assert [f.status for f in weak] == [Status.FAIL]
    assert weak[0].evidence["weak"] == [{"extension": "100", "secret": "100", "source": "extension"}]


async def test_a_403_to_an_answer_refuses_that_pair_only(emulated: StartDevice) -> None:
    dev = await emulated(**{**WEAK, "extensions": {"100": "Strong-Ext-9", "101": "101"}})
    result = await scan_device(dev, Mode.DEFAULT, probe=90.0, host=120.0)
    weak = by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")
    assert [f.status for f in weak] == [Status.FAIL]  # chan_sip's 403 to a wrong secret is no ban
    assert weak[0].evidence["weak"] == [{"extension": "101", "secret": "101", "source": "extension"}]
    assert weak[0].evidence["tried"] == ["100 (extension)", "100 (generic)", "101 (extension)"]
    assert dev.sip.invalid_passwords("100") == 2  # the cap: max_attempts - 1 failures, never the third


async def test_a_ban_stops_every_guess(emulated: StartDevice) -> None:
    dev = await emulated(**{**WEAK, "extensions": {"100": "Strong-Ext-9", "101": "101"}})
    dev.sip.ban_after = 1  # fail2ban-like: after one InvalidPassword, 403 to every request
    result = await scan_device(dev, Mode.DEFAULT, probe=90.0, host=120.0)
    weak = by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")
    assert [f.status for f in weak] == [Status.INCONCLUSIVE]
    assert "a ban" in weak[0].evidence["stopped"]  # seen on the next guess's REGISTER, before its answer went out
    assert weak[0].evidence["tried"] == ["100 (extension)", "100 (generic)"] and dev.sip.invalid_passwords("100") == 1
    assert [e for e in dev.sip.events if e[1] == "101"] == [("ChallengeSent", "101")]  # enumeration only


async def test_uniform_pbx_hides_extensions_and_its_strong_secrets_pass(emulated: StartDevice) -> None:
    dev = await emulated(**HARD)
    result = await scan_device(dev, Mode.DEFAULT, probe=90.0, host=120.0)
    assert [f.status for f in by_id(result, "CIAJ-2.3-EXTENSION-ENUMERATION")] == [Status.PASS]
    weak = by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")
    assert [f.status for f in weak] == [Status.PASS], weak[0].evidence
    assert len(weak[0].evidence["tried"]) == 8 and weak[0].evidence["skipped"] == []  # 4 extensions x 2 guesses


async def test_sip_over_tcp_alone_gets_the_same_tests_and_every_dialog_ends(emulated: StartDevice) -> None:
    dev = await emulated(**{**WEAK, "services": ["sip_tcp"]})
    result = await scan_device(dev, Mode.DEFAULT, probe=60.0, host=90.0)
    tcp_key = f"tcp/{dev.bound['sip_tcp']}"
    relay = by_id(result, "CIAJ-2.3-OPEN-RELAY")
    assert [(f.status, f.service) for f in relay] == [(Status.FAIL, tcp_key)]
    assert all(c["ended_by"] == "CANCEL" for c in relay[0].evidence["calls"][1:])
    assert not any("retransmit" in line for c in relay[0].evidence["calls"] for line in c["dialog"])  # reliable
    assert [f.service for f in by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")] == [tcp_key]
    _no_call_left_up(dev)


async def test_access_tests_run_once_per_pbx_on_udp_first(emulated: StartDevice) -> None:
    dev = await emulated(**{**WEAK, "services": ["sip", "sip_tcp"]})
    result = await scan_device(dev, Mode.DEFAULT, probe=60.0, host=90.0)
    assert [f.service for f in by_id(result, "CIAJ-2.3-OPEN-RELAY")] == [f"udp/{dev.bound['sip']}"]
    assert len(dev.sip.calls) == 4  # one series of INVITEs, not one per transport


async def test_voip_exposure_is_judged_from_the_wan_vantage_only(emulated: StartDevice) -> None:
    dev = await emulated(**WEAK)
    inside = by_id(await scan_device(dev, Mode.SAFE), "CIAJ-2.3-VOIP-EXPOSED")
    assert [f.status for f in inside] == [Status.INCONCLUSIVE]
    assert "--vantage wan" in inside[0].evidence["reason"]
    outside = by_id(await scan_device(dev, Mode.SAFE, vantage="wan"), "CIAJ-2.3-VOIP-EXPOSED")
    assert [(f.status, f.evidence["agent"]) for f in outside] == [(Status.FAIL, "Asterisk PBX 16.30.0")]
    quiet = await emulated(persona="router", services=["ssh"])
    shut = by_id(await scan_device(quiet, Mode.SAFE, vantage="wan"), "CIAJ-2.3-VOIP-EXPOSED")
    assert [f.status for f in shut] == [Status.PASS]
    assert shut[0].evidence["ports"] == {"udp/9": "closed"}  # ICMP port unreachable on loopback


async def test_options_tells_extensions_apart_when_register_does_not(emulated: StartDevice) -> None:
    dev = await emulated(**{**HARD, "extensions": {"101": "Strong-Ext-1"}, "options_reveal_users": True})
    result = await scan_device(dev, Mode.DEFAULT, probe=90.0, host=120.0)
    enum = by_id(result, "CIAJ-2.3-EXTENSION-ENUMERATION")
    assert [(f.status, f.evidence["found"], f.evidence["told_apart_by"]) for f in enum] == [
        (Status.FAIL, ["101"], "OPTIONS")
    ]
    assert {p["status"] for p in enum[0].evidence["probed"]} == {401}  # REGISTER: everyone alike
    assert not any(d.startswith(b"INVITE sip:101@") for n, d in dev.received if n == "sip")  # never rung


async def test_an_extension_list_is_enumerated_as_given(emulated: StartDevice) -> None:
    dev = await emulated(**{**WEAK, "extensions": {"2001": "Strong-2001-x"}})
    cfg = config_for(dev, Mode.DEFAULT, probe=90.0, host=120.0)
    pc = cfg.probe_config.with_options(SipSecretOptions(sip_extensions=parse_extensions("2000-2002,ops")))
    engine = Engine(dataclasses.replace(cfg, probe_config=pc), profiles.load_all())
    result = await engine.scan_host(dev.spec.address)
    enum = by_id(result, "CIAJ-2.3-EXTENSION-ENUMERATION")
    assert [(f.status, f.evidence["found"], f.evidence["candidates"]) for f in enum] == [(Status.FAIL, ["2001"], 4)]
    assert [p["extension"] for p in enum[0].evidence["probed"]] == ["2000", "2001", "2002", "ops"]


async def test_enumeration_cut_by_the_deadline_is_not_a_pass(
    emulated: StartDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probes.sip import sip_secret

    monkeypatch.setattr(sip_secret, "ENUMERATION_RESERVE_S", 10_000.0)  # no time left for even one candidate
    dev = await emulated(**HARD)
    result = await scan_device(dev, Mode.DEFAULT, probe=90.0, host=120.0)
    enum = by_id(result, "CIAJ-2.3-EXTENSION-ENUMERATION")
    assert [f.status for f in enum] == [Status.INCONCLUSIVE] and "deadline" in enum[0].evidence["reason"]


def test_extension_lists_parse_ranges_files_and_refuse_junk(tmp_path: Path) -> None:
    words = tmp_path / "ext.txt"
    words.write_text("# front desk\n200\nsales  # trailing comment\n\n", encoding="utf-8")
    assert parse_extensions(f"098-101,@{words},100") == ("098", "099", "100", "101", "200", "sales")
    for bad in ("1-5000", "9-1", "a b", "sip:x@y", "<100>", "", f"@{tmp_path / 'missing'}"):
        with pytest.raises(UsageError):
            parse_extensions(bad)
    with pytest.raises(UsageError, match="more than"):
        parse_extensions(",".join(f"{n}00-{n}99" for n in range(1, 12)))


async def test_refer_is_sent_only_when_intrusive_and_an_accepted_transfer_fails_the_relay_check(
    emulated: StartDevice,
) -> None:
    dev = await emulated(**{**HARD, "refer_allowed": True})
    default = await scan_device(dev, Mode.DEFAULT, probe=60.0, host=90.0)
    assert dev.sip.transfers == [] and not any(d.startswith(b"REFER") for n, d in dev.received if n == "sip")
    assert [f.status for f in by_id(default, "CIAJ-2.3-OPEN-RELAY")] == [Status.PASS]
    intrusive = await scan_device(dev, Mode.INTRUSIVE, probe=60.0, host=90.0)
    relay = by_id(intrusive, "CIAJ-2.3-OPEN-RELAY")
    assert [f.status for f in relay] == [Status.FAIL] and "REFER" in relay[0].evidence["transfer"]
    transfer = [c for c in relay[0].evidence["calls"] if c["purpose"] == "transfer"]
    assert [(c["outcome"], c["statuses"]) for c in transfer] == [("accepted", [202])]
    assert len(dev.sip.transfers) == 1 and "999" in dev.sip.transfers[0]
    hardened = await emulated(**HARD)
    relay = by_id(await scan_device(hardened, Mode.INTRUSIVE, probe=60.0, host=90.0), "CIAJ-2.3-OPEN-RELAY")
    assert [f.status for f in relay] == [Status.PASS]
    assert [c["outcome"] for c in relay[0].evidence["calls"] if c["purpose"] == "transfer"] == ["challenged"]


async def test_dial_prefixes_come_from_the_options_and_the_profile(emulated: StartDevice) -> None:
    dev = await emulated(**{**WEAK, "guest_routes": ["0011", "8"]})  # routes only these two prefixes abroad
    cfg = config_for(dev, Mode.DEFAULT, probe=60.0, host=90.0)
    pc = cfg.probe_config.with_options(SipCallOptions(sip_dial_prefixes=("0011",)))
    cfg = dataclasses.replace(cfg, probe_config=pc)
    known = [dataclasses.replace(p, sip_dial_prefixes=("8",)) if p.id == "asterisk" else p for p in profiles.load_all()]
    relay = by_id(await Engine(cfg, known).scan_host(dev.spec.address), "CIAJ-2.3-OPEN-RELAY")
    numbers = [c["number"] for c in relay[0].evidence["calls"] if c["purpose"] == "international"]
    assert [n[: n.index("999")] for n in numbers] == ["0011", "8"]  # the option's, then the profile's
    assert [f.status for f in relay] == [Status.FAIL]
    _no_call_left_up(dev)


async def scan_with_ledger(device: Device, **timeouts: float) -> tuple[HostResult, Ledger]:
    """scan_device, keeping the engine's own attempt ledger (one per sweep) to read afterwards."""
    engine = Engine(config_for(device, Mode.DEFAULT, **timeouts), profiles.load_all())
    return await asyncio.wait_for(engine.scan_host(device.spec.address), 60), engine.ledger


def test_dial_prefix_option_is_checked() -> None:
    from probes.sip.sipcall import parse_prefixes

    assert parse_prefixes(" +, 00 ,010") == ("+", "00", "010")
    assert SipCallOptions().sip_dial_prefixes == ("+", "00", "010")  # none given: the default
    for bad in (",", "1,2,3,4,5,6,7", "00a", "sip:+1"):
        with pytest.raises(UsageError):
            parse_prefixes(bad)


async def test_real_weak_asterisk_gives_up_both_weak_secrets_in_the_challenges_dialog(emulated: StartDevice) -> None:
    """Issue 17: each answer in a new Call-ID drew a fresh 401 and was counted wrong; the pairs were never checked."""
    dev = await emulated(**REAL_WEAK)
    result, ledger = await scan_with_ledger(dev, probe=90.0, host=120.0)
    weak = by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")
    assert [f.status for f in weak] == [Status.FAIL], weak[0].evidence
    assert weak[0].evidence["weak"] == [
        {"extension": "100", "secret": "100", "source": "extension"},
        {"extension": "101", "secret": "1234", "source": "generic"},
    ]
    assert [f.evidence["found"] for f in by_id(result, "CIAJ-2.3-EXTENSION-ENUMERATION")] == [["100", "101", "102"]]
    assert ("SuccessfulAuth", "100") in dev.sip.events and ("SuccessfulAuth", "101") in dev.sip.events
    assert max(dev.sip.invalid_passwords(u) for u in ("100", "101", "102")) <= 2  # never a third failure
    refused = await ledger.refusals(dev.spec.address)
    assert pair_digest(dev.spec.address, "101", "101") in refused  # a 403: that pair is refused
    assert pair_digest(dev.spec.address, "100", "100") not in refused  # the right answers are never skipped later
    assert pair_digest(dev.spec.address, "101", "1234") not in refused
    assert await ledger.used((dev.spec.address, "101"), 3600) == 0  # the success reset the count


async def test_real_hardened_asterisk_saying_only_pbx_gets_every_sip_test(emulated: StartDevice) -> None:
    """Server: PBX matches no profile; its challenge to REGISTER shows a registrar, so it gets the PBX tests."""
    dev = await emulated(**REAL_HARD)
    result = await scan_device(dev, Mode.DEFAULT, probe=90.0, host=120.0)
    relay = by_id(result, "CIAJ-2.3-OPEN-RELAY")
    assert [f.status for f in relay] == [Status.PASS], relay[0].evidence
    assert {c["outcome"] for c in relay[0].evidence["calls"]} == {"challenged"}
    enum = by_id(result, "CIAJ-2.3-EXTENSION-ENUMERATION")
    assert [f.status for f in enum] == [Status.PASS], enum[0].evidence  # _X.: numbers answer OPTIONS alike
    assert {u["status"] for u in enum[0].evidence["options_random_users"]} == {200}
    assert all(u["user"].isdigit() for u in enum[0].evidence["options_random_users"])
    weak = by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")
    assert [f.status for f in weak] == [Status.FAIL], weak[0].evidence
    assert [w["extension"] for w in weak[0].evidence["weak"]] == ["101", "102"]
    _no_call_left_up(dev)


async def test_a_fresh_challenge_to_an_answer_is_not_checked_and_not_counted(emulated: StartDevice) -> None:
    dev = await emulated(**REAL_WEAK)
    answer = dev.sip.handle

    def forgetful(data: bytes, send: Callable[[bytes], None]) -> None:
        if b"\r\nAuthorization:" in data:
            dev.sip._dialog_nonce.clear()  # as if the answer came in another dialog: re-challenged, never checked
        answer(data, send)

    dev.sip.handle = forgetful  # type: ignore[method-assign]
    result, ledger = await scan_with_ledger(dev, probe=90.0, host=120.0)
    weak = by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")
    assert [f.status for f in weak] == [Status.INCONCLUSIVE]
    assert "not checked" in weak[0].evidence["stopped"] and weak[0].evidence["tried"] == []
    assert weak[0].evidence["not_checked"][0].startswith("100 (extension): 401")
    assert await ledger.used((dev.spec.address, "100"), 3600) == 0  # no failure toward the cap
    assert pair_digest(dev.spec.address, "100", "100") not in await ledger.refusals(dev.spec.address)


async def test_a_user_agent_refusing_register_gets_no_invite(emulated: StartDevice) -> None:
    phone = await emulated(persona="phone", services=["sip"], sip_user_agent="Unknown-UA/1.0")
    result = await scan_device(phone, Mode.DEFAULT)
    assert phone.sip.calls == {}
    relay = by_id(result, "CIAJ-2.3-OPEN-RELAY")
    assert [f.status for f in relay] == [Status.INCONCLUSIVE]
    assert "REGISTER answered 405" in relay[0].evidence["reason"]


def test_shaped_baselines_and_dialplan_patterns() -> None:
    from lab.emulator.sip_pbx import pattern_matches
    from probes.sip.sip_secret import random_like, shape

    assert shape("100") == "3 digits" and shape("ops") == "other"
    user = random_like("1001", {"1001"})
    assert user.isdigit() and len(user) == 4 and user != "1001"
    assert random_like("ops", set()).startswith("ea")
    assert pattern_matches("_X.", "4827361") and not pattern_matches("_X.", "eaxyzq")
    assert not pattern_matches("_X.", "1") and not pattern_matches("100", "1000")
    assert pattern_matches("_+.", "+99987650") and pattern_matches("_1[0-2]X", "115")


# A registrar that refuses a wrong answer with a fresh challenge (RFC 2617's way; Kamailio's auth module),
# uniform for unknown users: seen on a random user first, so its 401s to answers are refusals, not "unchecked".
RFC_STYLE = {**REAL_HARD, "sip_user_agent": "kamailio (5.6.3 (x86_64/linux))", "sip_wrong_secret": "challenge"}


async def test_a_registrar_refusing_with_a_fresh_challenge_is_judged(emulated: StartDevice) -> None:
    strong = await emulated(**{**RFC_STYLE, "extensions": {"100": "Strong-Ext-100", "101": "Strong-Ext-101"}})
    result, ledger = await scan_with_ledger(strong, probe=90.0, host=120.0)
    [weak] = by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")
    assert weak.status == Status.PASS, weak.evidence
    assert weak.evidence["wrong_answer_status"] == 401 and weak.evidence["tried"]
    assert await ledger.used((strong.spec.address, "100"), 3600) >= 1  # each refusal counted toward the cap
    leaky = await emulated(**RFC_STYLE)  # 101/1234 and 102/102 are weak
    result = await scan_device(leaky, Mode.DEFAULT, probe=90.0, host=120.0)
    [weak] = by_id(result, "CIAJ-2.3-WEAK-SIP-SECRET")
    assert weak.status == Status.FAIL and [w["extension"] for w in weak.evidence["weak"]] == ["101", "102"]
