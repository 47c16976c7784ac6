"""Trailing bytes, parser by parser: where each protocol allows bytes after what is read, and where they are malformed.

One datagram (or one length-delimited part) is one message: bytes after it are malformed unless the
protocol itself puts something there (padding, optional fields, extensions, a MAC, document data).
"""

from __future__ import annotations

import io
import socket
import struct

import pytest

from probes import dhcp, ipp, ntp, wifi
from probes.sip import sipmsg
from probes.wifi import radio as wifi_radio
from probes.wifi.capture import CaptureFile, Record
from probes.wire import ber, route, snmp_wire
from profiles.errors import MalformedResponse


def _ipp_attr(tag: int, name: bytes, value: bytes) -> bytes:
    return struct.pack(">BH", tag, len(name)) + name + struct.pack(">H", len(value)) + value


IPP_OK = (
    struct.pack(">BBHI", 2, 0, 0x0000, 42)
    + bytes([ipp.TAG_OPERATION])
    + _ipp_attr(ipp.T_CHARSET, b"attributes-charset", b"utf-8")
    + bytes([ipp.TAG_PRINTER])
    + _ipp_attr(0x41, b"printer-make-and-model", b"EdgeLab MFP")
    + bytes([ipp.TAG_END])
)


def test_ipp_allows_document_data_after_the_end_of_attributes() -> None:
    """RFC 8010 3.1.1: the optional data follows the end-of-attributes tag."""
    got = ipp.parse_response(IPP_OK + b"%!PS-Adobe-3.0 a document")
    assert got.printer == ipp.parse_response(IPP_OK).printer == {"printer-make-and-model": ["EdgeLab MFP"]}
    with pytest.raises(MalformedResponse, match="without an end-of-attributes tag"):
        ipp.parse_response(IPP_OK[:-1])


def _bootp(options: bytes) -> bytes:
    fixed = struct.pack(">BBBBIHH", 2, 1, 6, 0, 7, 0, 0x8000) + bytes(16) + bytes(16) + bytes(192)
    return fixed + dhcp.MAGIC + options


def test_dhcp_allows_only_pad_after_the_end_option() -> None:
    """RFC 2132 3.2: what follows End is Pad (BOOTP's 300-octet minimum); anything else is malformed."""
    offer = bytes([53, 1, 2, 6, 4, 192, 0, 2, 53, 255])
    assert dhcp.parse_reply(_bootp(offer + bytes(60)), "192.0.2.1").dns_servers == ("192.0.2.53",)
    with pytest.raises(MalformedResponse, match="other than pad after its end option"):
        dhcp.parse_reply(_bootp(offer + b"\x00\x06\x04\xc6\x12\x00\x35"), "192.0.2.1")  # a DNS option after End


def _ntp(origin: int) -> bytes:
    return ntp.PACKET.pack(0x24, 2, 6, -20, b"\0" * 4, b"\0" * 4, b"\x7f\0\0\1", 0, origin, origin, origin)


def test_ntp_allows_extension_fields_and_a_mac_up_to_its_ceiling() -> None:
    """RFC 5905 7.3, RFC 7822: extension fields and a MAC follow the header."""
    origin = 0xE000_0000_0000_1234
    mac = struct.pack("!I", 1) + bytes(20)
    assert ntp.parse_reply(_ntp(origin) + mac, origin, 0.0).stratum == 2
    with pytest.raises(MalformedResponse, match="too large"):
        ntp.parse_reply(_ntp(origin) + bytes(1024), origin, 0.0)


def test_ntp_control_and_private_replies_allow_padding_after_their_data() -> None:
    """RFC 9327 2: mode 6 data is padded to 4 octets and may carry an authenticator; mode 7 counts its records."""
    text = b'version="ntpd 4.2.8p15", stratum=2'
    head = ntp.CONTROL_HEADER.pack((2 << 3) | 6, 0x80 | ntp.READVAR, 9, 0x0618, 0, 0, len(text))
    padded = head + text + bytes(-len(text) % 4) + struct.pack("!I", 1) + bytes(16)
    assert dict(ntp.parse_readvar(padded, 9))["stratum"] == "2"
    with pytest.raises(MalformedResponse, match="truncated"):
        ntp.parse_readvar(head + text[:-1], 9)
    monlist = bytes([0x80 | (2 << 3) | 7, 0, 3, 42]) + struct.pack("!HH", 2, 72) + bytes(144)
    assert ntp.parse_monlist(monlist + bytes(8)) == 2
    with pytest.raises(MalformedResponse, match="shorter than its records"):
        ntp.parse_monlist(monlist[:-1])


def _snmp(binds: bytes, request_id: int = 5) -> bytes:
    pdu = ber.enc_seq(ber.enc_int(request_id), ber.enc_int(0), ber.enc_int(0), binds, tag=ber.RESPONSE)
    return ber.enc_seq(ber.enc_int(1), ber.enc_str(b"public"), pdu)


def test_snmp_refuses_trailing_bytes_at_every_level() -> None:
    """A BER value is exactly its TLVs and a datagram exactly one message."""
    bind = ber.enc_seq(ber.enc_oid("1.3.6.1.2.1.1.5.0"), ber.enc_str(b"edge"))
    good = _snmp(ber.enc_seq(bind))
    assert snmp_wire.parse_response(good, "v2c", "public", 5).varbinds == (("1.3.6.1.2.1.1.5.0", 4, b"edge"),)
    padded_bind = ber.enc_seq(ber.enc_oid("1.3.6.1.2.1.1.5.0"), ber.enc_str(b"edge"), b"\x00")
    for bad in (good + b"\x00", _snmp(ber.enc_seq(padded_bind))):
        with pytest.raises(MalformedResponse, match="trailing"):
            snmp_wire.parse_response(bad, "v2c", "public", 5)


def _suite(kind: int) -> bytes:
    return wifi.RSN_OUI + bytes([kind])


def test_rsn_allows_its_optional_fields_and_wps_refuses_a_byte_that_is_no_tlv() -> None:
    """RSNE: capabilities, PMKIDs and group management cipher are optional (and skipped); WPS is TLVs only."""
    rsn = struct.pack("<H", 1) + _suite(4) + struct.pack("<H", 1) + _suite(4) + struct.pack("<H", 1) + _suite(8)
    with_more = rsn + struct.pack("<H", 0xC0) + struct.pack("<H", 1) + bytes(16) + _suite(6)  # PMKID, BIP
    got = wifi.parse_rsn(with_more)
    assert (got.akms, got.mfp_capable, got.mfp_required) == (("SAE",), True, True)
    wps = struct.pack(">HH", 0x1044, 1) + b"\x02"
    assert wifi.parse_wps(wps) == (True, None)
    with pytest.raises(MalformedResponse, match="WPS element: truncated"):
        wifi.parse_wps(wps + b"\x10")


def test_a_byte_after_the_last_information_element_is_a_malformed_frame() -> None:
    """The elements fill the frame body to its end (the FCS already removed)."""
    header = b"\x80\x00\x00\x00" + b"\xff" * 6 + bytes.fromhex("02aabbccddee") * 2 + b"\x10\x00"
    body = bytes(8) + struct.pack("<HH", 100, 0x11) + bytes([0, 4]) + b"edge"
    assert wifi.parse_frame("02:aa:bb:cc:dd:ee", header + body).malformed == []
    net = wifi.parse_frame("02:aa:bb:cc:dd:ee", header + body + b"\x30")
    assert net.ssid == "edge" and net.malformed == ["frame: information element header truncated"]


def test_radiotap_fields_after_flags_are_skipped_to_it_len() -> None:
    """it_len covers the whole header: fields this reader does not know (here a channel) are not the frame."""
    fields = bytes([0x10, 0]) + struct.pack("<HH", 2437, 0x00A0)  # Flags (FCS), a pad to align, Channel (MHz, flags)
    header = struct.pack("<BBHI", 0, 0, 8 + len(fields), 0x0000_000A) + fields
    assert wifi_radio.radiotap(header + b"frame") == (8 + len(fields), 0x10)
    with pytest.raises(MalformedResponse, match="radiotap length"):
        wifi_radio.radiotap(header[:-1])


def test_pcapng_ignores_what_follows_opt_endofopt_in_an_interface_block() -> None:
    """As libpcap reads it: options end at opt_endofopt; the rest of the block is not read."""

    def block(kind: int, body: bytes) -> bytes:
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    options = struct.pack("<HH", 13, 1) + bytes([4, 0, 0, 0]) + struct.pack("<HH", 0, 0) + b"junk"
    data = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    data += block(1, struct.pack("<HHI", 105, 0, 0) + options)
    data += block(6, struct.pack("<IIIII", 0, 0, 0, 4, 4) + b"abcd")
    reader = CaptureFile(io.BytesIO(data))
    assert list(reader.records()) == [Record(105, b"abcd", 4, 0, 4)] and reader.truncated is None


def _netlink(attrs: bytes, seq: int = 1) -> bytes:
    body = route._RTMSG.pack(socket.AF_INET, 32, 0, 0, 254, 0, 0, route._RTN_UNICAST, 0) + attrs
    return route._NLMSG_HDR.pack(route._NLMSG_HDR.size + len(body), route._RTM_NEWROUTE, 0, seq, 0) + body


def test_netlink_allows_a_second_message_and_refuses_an_unpadded_attribute() -> None:
    """netlink(7): a datagram may hold several messages; inside one, attributes are RTA_ALIGNed."""
    gateway = route._RTATTR.pack(8, route._RTA_GATEWAY) + bytes([192, 0, 2, 1])
    done = route._NLMSG_HDR.pack(20, 3, 0, 1, 0) + bytes(4)  # NLMSG_DONE after the reply
    assert route.parse_reply(_netlink(gateway) + done, 1).gateway == "192.0.2.1"
    unpadded = route._RTATTR.pack(6, route._RTA_OIF) + b"\x01\x00"  # 6 bytes, not padded to 8
    with pytest.raises(ValueError, match="padding"):
        route.parse_reply(_netlink(unpadded), 1)


SIP = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n"
)


def test_sip_discards_extra_datagram_bytes_and_refuses_them_on_a_stream() -> None:
    """RFC 3261 18.3: over UDP bytes past Content-Length are discarded; a stream's framing hands over one message."""
    assert sipmsg.parse(SIP + b"garbage").body == b"v=0\n"
    assert sipmsg.parse(SIP, stream=True).body == b"v=0\n"
    with pytest.raises(MalformedResponse, match="after its Content-Length body"):
        sipmsg.parse(SIP + b"garbage", stream=True)
