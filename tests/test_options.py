"""Probe options come from their declarations: flags, input files read before any packet, the --resume codec."""

from __future__ import annotations

import argparse
import dataclasses
import json
import socket
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

import probes
from probes import options
from probes.base import ProbeConfig, Timeouts
from probes.dns_query import DnsOptions
from probes.login import LoginOptions
from probes.login.auth import AuthOptions
from probes.observations import Mode
from probes.options import OPTIONS, OptionSet, option, option_set
from probes.sip.sip_secret import SipSecretOptions
from profiles.errors import RegistryError, UsageError
from scanner import runner
from scanner.cli import build_parser, main
from scanner.orchestrator import SweepConfig
from scanner.store import Store
from scanner.targets import build_scope
from tests.conftest import fresh_address

probes.load_all()


@pytest.fixture
def listener() -> Iterator[tuple[str, int, int, socket.socket, socket.socket]]:
    """A TCP listener and a UDP socket on a fresh loopback address: whatever reaches them is recorded."""
    address = fresh_address()
    tcp = socket.socket()
    tcp.bind((address, 0))
    tcp.listen(16)
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 0))
    udp.setblocking(False)
    yield address, tcp.getsockname()[1], udp.getsockname()[1], tcp, udp
    tcp.close()
    udp.close()


def _nothing_arrived(tcp: socket.socket, udp: socket.socket) -> bool:
    """No connection waits in the listener's backlog and no datagram in the UDP socket."""
    for take in (tcp.accept, lambda: udp.recvfrom(2048)):
        try:
            take()
        except BlockingIOError:
            continue
        return False
    return True


def _scan_args(address: str, tcp_port: int, udp_port: int, tmp_path: Path) -> list[str]:
    ports = [f"--ports={tcp_port}:ssh", f"--snmp-port={udp_port}", f"--sip-port={udp_port}", f"--ntp-port={udp_port}"]
    fast = ["--timeout", "0.5", "--connect-timeout", "0.5", "--probe-timeout", "2", "-q"]
    return [
        "scan",
        address,
        *ports,
        *fast,
        "--unprivileged",
        "--db",
        str(tmp_path / "h.sqlite3"),
        "--out",
        str(tmp_path / "out"),
    ]


def _bad_inputs(tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    creds = tmp_path / "creds.txt"
    creds.write_text("# site passwords\nadmin:Site-1\nno colon here\n", encoding="utf-8")
    yield ["--credentials", str(creds)], f"{creds}:3:"
    words = tmp_path / "ext.txt"
    words.write_text("100\n101\nbad extension!\n", encoding="utf-8")
    yield ["--sip-extensions", f"200,@{words}"], f"{words}:3:"
    toml = tmp_path / "auth.toml"
    toml.write_text(
        '[[device]]\nhost = "192.0.2.1"\nusername = "a"\npassword = "b"\n\n[[device]]\nhost = "x"\n', encoding="utf-8"
    )
    yield ["--auth-file", str(toml)], f"{toml}:6: device #2"
    broken = tmp_path / "broken.toml"
    broken.write_text('[[device]]\nhost = "192.0.2.1"\nusername = \n', encoding="utf-8")
    yield ["--auth-file", str(broken)], f"{broken}:3: not TOML"
    binary = tmp_path / "latin1.txt"
    binary.write_bytes(b"admin:ok\nadmin:caf\xe9\n")
    yield ["--credentials", str(binary)], f"{binary}:2: not UTF-8"


def test_a_malformed_input_file_is_exit_2_naming_file_and_line_before_any_packet(
    listener: tuple[str, int, int, socket.socket, socket.socket],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address, tcp_port, udp_port, tcp, udp = listener
    for extra, where in _bad_inputs(tmp_path):
        rc = main([*_scan_args(address, tcp_port, udp_port, tmp_path), *extra])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert where in err, err
        assert "internal error" not in err and "Traceback" not in err
        assert _nothing_arrived(tcp, udp), f"{extra}: a packet reached the target"
        assert Store(tmp_path / "h.sqlite3").list(10) == []  # no sweep recorded either


def test_a_good_credentials_file_sweeps(
    listener: tuple[str, int, int, socket.socket, socket.socket], tmp_path: Path
) -> None:
    """The same run with a well-formed file does reach the target: the test above can tell."""
    address, tcp_port, udp_port, tcp, udp = listener
    creds = tmp_path / "creds.txt"
    creds.write_text("admin:Site-1\n", encoding="utf-8")
    rc = main([*_scan_args(address, tcp_port, udp_port, tmp_path), "--credentials", str(creds)])
    assert rc in (0, 1)
    assert not _nothing_arrived(tcp, udp)


def _sample(tp: Any, default: Any, depth: int = 0) -> Any:
    """A value of the declared type unlike its default (so a round trip that loses it shows)."""
    base = options._optional_of(tp)
    if base is not None:
        return _sample(base, None, depth)
    if tp is bool:
        return not default
    if tp is int:
        return (default or 0) + 7
    if tp is float:
        return (default or 0.0) + 2.5
    if tp is str:
        return f"/tmp/sample-{depth}" if default is None else default + "x"
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_sample(args[0], None, depth + i + 1) for i in range(2))
    return tuple(_sample(a, None, depth + i + 1) for i, a in enumerate(args))


def _samples() -> tuple[OptionSet, ...]:
    out = []
    for cls in OPTIONS.sets.values():
        values = {d.name: _sample(d.type, d.default) for d in options._declared(cls)}
        out.append(cls(**values))
    return tuple(out)


def _round_trip(config: SweepConfig) -> SweepConfig:
    return runner._config_from_json(json.loads(json.dumps(runner._config_json(config))))


def test_the_resume_codec_round_trips_every_registered_set() -> None:
    sets = _samples()
    assert {type(s).name for s in sets} >= {"login", "auth", "dns", "dhcp", "sip-call", "sip-secret"}
    for s in sets:
        assert all(getattr(s, d.name) != d.default for d in options._declared(type(s)))
    pc = ProbeConfig(tcp_ports=(22, 2222), port_names=((2222, "ssh"),), snmp_port=1161, attempt_ledger="/x", sets=sets)
    config = SweepConfig(mode=Mode.SAFE, timeouts=Timeouts(read=1.0), probe_config=pc)
    back = _round_trip(config)
    assert back.probe_config == pc
    assert back.mode == Mode.SAFE and back.timeouts == config.timeouts


# What the previous version stored (dataclasses.asdict of its flat ProbeConfig, through JSON).
OLD_FLAT = {
    "tcp_ports": [2222, 8080],
    "port_names": [[2222, "ssh"], [8080, "http"]],
    "privileged": False,
    "snmp_port": 1161,
    "sip_port": 15060,
    "sip_extensions": ["100", "200"],
    "sip_dial_prefixes": ["00"],
    "dns_expect": [["www.bank.example", ["192.0.2.80"]]],
    "trusted_resolver": None,
    "dhcp": True,
    "ntp_port": 1123,
    "credentials_file": None,
    "max_attempts": 2,
    "attempt_window_s": 600.0,
    "extended_credentials": True,
    "login_pace_s": 0.0,
    "attempt_ledger": None,
    "auth_file": None,
}
OLD_SWEEP = {
    "mode": "default",
    "timeouts": {"connect": 0.5, "read": 0.5, "login": 1.0, "probe": 2.0, "host": 10.0},
    "probe_config": OLD_FLAT,
    "max_hosts": 4,
    "max_probes": 16,
    "per_host": 4,
    "report_unreachable": False,
    "today": "2025-01-01",
    "max_baseline_age_days": 365,
    "max_clock_skew_s": 60.0,
    "syslog_listen": None,
    "max_feed_age_days": 30,
    "vantage": "lan",
}


def test_an_old_flat_stored_config_maps_onto_the_sets() -> None:
    pc = runner._config_from_json(json.loads(json.dumps(OLD_SWEEP))).probe_config
    assert (pc.tcp_ports, pc.port_names, pc.snmp_port, pc.sip_port, pc.ntp_port) == (
        (2222, 8080),
        ((2222, "ssh"), (8080, "http")),
        1161,
        15060,
        1123,
    )
    login = pc.options(LoginOptions)
    assert (login.max_attempts, login.attempt_window_s, login.extended_credentials, login.login_pace_s) == (
        2,
        600.0,
        True,
        0.0,
    )
    assert pc.options(DnsOptions).dns_expect == (("www.bank.example", ("192.0.2.80",)),)
    assert pc.options(SipSecretOptions).sip_extensions == ("100", "200")
    assert pc.options(AuthOptions) == AuthOptions()


def test_an_old_flat_stored_sweep_resumes(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    store = Store(db)
    scope = build_scope([fresh_address()])
    sweep_id = store.begin("scan", "default", scope.to_json(), OLD_SWEEP, "lan")
    rc = main(["scan", "--resume", "--db", str(db), "--out", str(tmp_path / "out"), "-q"])
    assert rc in (0, 1)
    assert Store(db).load(sweep_id).state == "complete"


def test_a_resumed_sweep_reads_its_input_files_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A credentials file that went bad since the sweep was recorded stops the resume, before any packet."""
    creds = tmp_path / "creds.txt"
    creds.write_text("oops\n", encoding="utf-8")
    stored = json.loads(json.dumps(OLD_SWEEP))
    stored["probe_config"]["credentials_file"] = str(creds)
    db = tmp_path / "h.sqlite3"
    Store(db).begin("scan", "default", build_scope([fresh_address()]).to_json(), stored, "lan")
    assert main(["scan", "--resume", "--db", str(db), "--out", str(tmp_path / "out"), "-q"]) == 2
    assert f"{creds}:1:" in capsys.readouterr().err


def test_a_stored_value_of_the_wrong_type_is_refused() -> None:
    stored = json.loads(json.dumps(OLD_SWEEP))
    stored["probe_config"]["max_attempts"] = "3"
    with pytest.raises(UsageError, match=r"login\.max_attempts"):
        runner._config_from_json(stored)


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sets registered by a test leave the global registry as it was."""
    monkeypatch.setattr(OPTIONS, "sets", dict(OPTIONS.sets))


@pytest.mark.usefixtures("scratch_registry")
def test_a_duplicate_set_name_or_flag_fails_at_registration() -> None:
    before = dict(OPTIONS.sets)
    with pytest.raises(RegistryError, match="'login' registered twice"):

        @option_set
        @dataclass(frozen=True)
        class Again(OptionSet):
            name: ClassVar[str] = "login"
            title: ClassVar[str] = "again"
            other: bool = option(False, flag="--other-thing", help="x", kind="flag")

    with pytest.raises(RegistryError, match="--credentials is already option set 'login'"):

        @option_set
        @dataclass(frozen=True)
        class Clash(OptionSet):
            name: ClassVar[str] = "clash"
            title: ClassVar[str] = "clash"
            fresh: bool = option(False, flag="--fresh-flag", help="x", kind="flag")
            creds: str | None = option(None, flag="--credentials", help="x")

    with pytest.raises(RegistryError, match="not declared with option"):

        @option_set
        @dataclass(frozen=True)
        class Bare(OptionSet):
            name: ClassVar[str] = "bare"
            title: ClassVar[str] = "bare"
            plain: int = 3

    with pytest.raises(RegistryError, match="no JSON codec"):

        @option_set
        @dataclass(frozen=True)
        class Odd(OptionSet):
            name: ClassVar[str] = "odd"
            title: ClassVar[str] = "odd"
            where: Path | None = option(None, flag="--odd-path", help="x")  # noqa: RUF009

    assert OPTIONS.sets == before  # nothing half-registered


@pytest.mark.usefixtures("scratch_registry")
def test_a_set_flag_that_clashes_with_a_cli_flag_fails_when_the_parser_is_built() -> None:
    @option_set
    @dataclass(frozen=True)
    class Ports(OptionSet):
        name: ClassVar[str] = "ports-again"
        title: ClassVar[str] = "ports"
        ports: str | None = option(None, flag="--ports", help="x")

    with pytest.raises(argparse.ArgumentError):
        build_parser()


@pytest.mark.usefixtures("scratch_registry")
def test_a_new_option_needs_no_edit_in_the_cli_or_the_runner(tmp_path: Path) -> None:
    @option_set
    @dataclass(frozen=True)
    class Gadget(OptionSet):
        name: ClassVar[str] = "gadget"
        title: ClassVar[str] = "gadget probe"
        level: int = option(
            1,
            flag="--gadget-level",
            help="how hard (default 1)",
            parse=options.number("--gadget-level", int, 0, "cannot be negative"),
        )
        words: tuple[str, ...] = option((), flag="--gadget-word", kind="append", help="repeatable", parse=tuple)
        loud: bool = option(False, flag="--gadget-loud", kind="flag", help="be loud")

    parser = build_parser()
    assert "--gadget-level" in _scan_help(parser) and "gadget probe:" in _scan_help(parser)
    args = parser.parse_args(
        ["scan", "127.0.0.1", "--gadget-level", "4", "--gadget-word", "a", "--gadget-word", "b", "--gadget-loud"]
    )
    args.db = tmp_path / "h.sqlite3"
    config = runner._config(args, Mode.DEFAULT, "scan")
    assert config.probe_config.options(Gadget) == Gadget(level=4, words=("a", "b"), loud=True)
    assert _round_trip(config).probe_config == config.probe_config
    defaults = runner._config(parser.parse_args(["scan", "127.0.0.1"]), Mode.DEFAULT, "scan")
    assert defaults.probe_config.options(Gadget) == Gadget()
    with pytest.raises(UsageError, match="--gadget-level cannot be negative"):
        runner._config(parser.parse_args(["scan", "127.0.0.1", "--gadget-level", "-1"]), Mode.DEFAULT, "scan")


def _scan_help(parser: argparse.ArgumentParser) -> str:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["scan"].format_help()


def test_every_declared_flag_is_in_scan_help_and_keeps_its_default() -> None:
    """--help stays true: each option's flag is listed, and a '(default N)' in its help is the field's default."""
    import re

    text = _scan_help(build_parser())
    for d in OPTIONS.declared():
        assert d.option.flag in text
        said = re.search(r"\(default:? ([0-9.]+)", d.option.help)
        if said:
            assert float(said.group(1)) == d.default, d.option.flag


def test_probe_config_gives_defaults_for_a_set_it_does_not_hold() -> None:
    pc = ProbeConfig()
    assert pc.options(LoginOptions) == LoginOptions()
    mine = pc.with_options(LoginOptions(max_attempts=1)).with_options(LoginOptions(max_attempts=2))
    assert mine.options(LoginOptions).max_attempts == 2 and len(mine.sets) == 1
    with pytest.raises(ValueError, match="twice"):
        dataclasses.replace(pc, sets=(LoginOptions(), LoginOptions()))
