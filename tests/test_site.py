"""The site file (scanner.site): every scan flag is a key, the command line wins, errors name file, key and line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from profiles.errors import UsageError
from scanner import cli, site


def _args(tmp_path: Path, text: str, *argv: str, name: str = "office.toml") -> argparse.Namespace:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    full = [argv[0] if argv else "scan", "--site", str(path), *argv[1:]]
    parser = cli.build_parser()
    args = parser.parse_args(full)
    cli._apply_site(parser, full, args)
    return args


def _error(tmp_path: Path, text: str, *argv: str) -> str:
    with pytest.raises(UsageError) as info:
        _args(tmp_path, text, *argv)
    return str(info.value)


def _valid_value(action: argparse.Action) -> object:
    """A TOML value each kind of flag accepts."""
    if isinstance(action, argparse._StoreTrueAction):
        return True
    if action.choices is not None:
        return (
            [next(iter(action.choices))] if isinstance(action, argparse._AppendAction) else next(iter(action.choices))
        )
    if isinstance(action, argparse._AppendAction) or action.nargs == "*":
        return ["x"]
    if action.type is int:
        return 7
    if action.type is float:
        return 2.5
    return "x"


def test_every_scan_flag_is_a_key_and_sets_what_the_flag_sets(tmp_path: Path) -> None:
    """Derived from the parser: a flag added later is a key too, and one the loader cannot take fails here."""
    scan = site.subparser(cli.build_parser(), "scan")
    keys = site.scan_keys(scan)
    paths = site._path_dests()
    flags = {s[2:] for a in scan._actions for s in a.option_strings if s.startswith("--")}
    assert flags - set(keys) == {"help", "resume", "site", "quiet", "verbose"}  # a run's flags, not a site's
    assert {"targets", "exclude", "auth-file", "syslog-listen", "ports", "out", "dns-expect"} <= set(keys)
    for key, action in keys.items():
        value = _valid_value(action)
        loaded = site.load(_write(tmp_path, {key: value}), scan)
        got = loaded.values[action.dest]
        if isinstance(value, str) and (action.type is Path or action.dest in paths):
            assert Path(str(got)) == tmp_path / value, key  # paths are read from the site file's directory
        elif isinstance(value, list) and action.type is Path:
            assert got == [tmp_path / value[0]], key
        else:
            assert got == value, key


def _write(tmp_path: Path, values: dict[str, object]) -> Path:
    def toml(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v + '"'
        if isinstance(v, list):
            return "[" + ", ".join(toml(x) for x in v) + "]"
        return str(v)

    path = tmp_path / "gen.toml"
    path.write_text("".join(f"{k} = {toml(v)}\n" for k, v in values.items()), encoding="utf-8")
    return path


SITE = """
name = "branch-7"
targets = ["192.0.2.0/28", "192.0.2.100"]
exclude = "192.0.2.5"
mode = "safe"
ports = [22, 80, "2222:ssh"]
probe-timeout = 5
host-budget = 90
lang = "en"
dhcp = true
dns-expect = ["www.bank.example=198.19.0.80"]
syslog-listen = "0.0.0.0:5514"
out = "reports/branch-7"
"""


def test_site_values_reach_the_sweep_as_flags_would(tmp_path: Path) -> None:
    args = _args(tmp_path, SITE)
    assert args.targets == ["192.0.2.0/28", "192.0.2.100"] and args.exclude == ["192.0.2.5"]
    assert args.safe is True and args.intrusive is False
    assert args.ports == "22,80,2222:ssh" and args.probe_timeout == 5.0 and args.host_budget == 90.0
    assert args.lang == "en" and args.syslog_listen == "0.0.0.0:5514"
    assert getattr(args, "dhcp.dhcp") is True  # a probe's flag, by its option set's dest
    assert [v for k, v in vars(args).items() if k.endswith("dns_expect")] == [["www.bank.example=198.19.0.80"]]
    assert args.out == tmp_path / "reports/branch-7"  # relative to the site file, not the working directory
    assert args.site_file.name == "branch-7"
    # untouched flags keep their defaults
    assert args.concurrency == 64 and args.fail_on == "high"


def test_the_command_line_wins_key_by_key_and_choice_by_choice(tmp_path: Path) -> None:
    args = _args(tmp_path, SITE, "scan", "198.51.100.1", "--intrusive", "--probe-timeout", "9", "--exclude", "1.2.3.4")
    assert args.targets == ["198.51.100.1"]  # the command line's targets replace the site's
    assert args.intrusive is True and args.safe is False  # its mode replaces the site's mode as a whole
    assert args.probe_timeout == 9.0 and args.exclude == ["192.0.2.5", "1.2.3.4"]  # excludes add up
    assert args.host_budget == 90.0 and args.ports == "22,80,2222:ssh"  # the rest still from the site
    nmap = tmp_path / "n.xml"
    nmap.write_text("<nmaprun/>")
    args = _args(tmp_path, SITE, "scan", "--from-nmap", str(nmap))
    assert args.targets == [] and args.from_nmap == nmap  # --from-nmap is the scope: the site's targets go
    args = _args(tmp_path, SITE, "scan", "--resume")
    assert args.targets == []  # a resumed sweep has its own scope


def test_discover_takes_only_its_keys_and_stays_safe(tmp_path: Path) -> None:
    text = SITE.replace('mode = "safe"', 'mode = "intrusive"') + 'auth-file = "auth.toml"\n'
    args = _args(tmp_path, text, "discover")
    assert args.safe is True  # discovery is a safe sweep whatever the site's mode
    assert args.targets == ["192.0.2.0/28", "192.0.2.100"] and args.probe_timeout == 5.0
    assert not any(v for k, v in vars(args).items() if k.endswith("auth_file"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'targets = ["192.0.2.1"]\n\nprobe-timout = 5\n',
            ":3: probe-timout: unknown key (did you mean 'probe-timeout'?)",
        ),
        ('targets = ["192.0.2.1"]\nprobe-timeout = "slow"\n', ":2: probe-timeout: expects a number, not 'slow'"),
        ('targets = ["192.0.2.1"]\nconcurrency = 2.5\n', ":2: concurrency: expects an integer"),
        ('lang = "fr"\n', ":1: lang: must be one of ja, en, not 'fr'"),
        ('mode = "aggressive"\n', ":1: mode: must be one of safe, default, intrusive"),
        ('mode = "safe"\nintrusive = true\n', ":1: mode: give mode or safe/intrusive, not both"),
        ("dhcp = 1\n", ":1: dhcp: expects true or false"),
        ("targets = []\n", ":1: targets: expects a string or a non-empty list of strings"),
        ('targets = ["a"]\nfrom-nmap = "x.xml"\n', ":2: from-nmap: give targets or from-nmap, not both"),
        ("[scan]\ntargets = []\n", ":1: scan: unknown table"),
        ("targets = [127.0.0.1]\n", ":1: not TOML: Unclosed array (at line 1"),
        ('name = "a\\nb"\n', ":1: name: must be one line of printable text"),
        ('[[notify]]\ntype = "webhook"\nurl = "http://127.0.0.1:99999/"\n', ":3: notify[0].url: has a port that is"),
        ('[[notify]]\ntype = "webhook"\nurl = "http://h/a b"\n', ":3: notify[0].url: needs an http:// or https:// URL"),
        ('[[notify]]\ntype = "webhook"\nurl = "http://h/"\nheaders = {A = "x\\ny"}\n', ":4: notify[0].headers: 'A'"),
        ('[[notify]]\ntype = "webhook"\nurl = "http://h/"\nbackoff = inf\n', ":4: notify[0].backoff: must be from 0"),
        ('[[notify]]\ntype = "webhook"\nurl = "http://h/"\ntimeout = nan\n', ":4: notify[0].timeout: must be from"),
        ('[[notify]]\ntype = "email"\nhost = "m"\nfrom = "a@b"\nto = "c@d"\nport = 70000\n', ":6: notify[0].port"),
        ('[[notify]]\ntype = "pager"\n', ":2: notify[0].type: must be one of webhook, email"),
        ('[[notify]]\ntype = "webhook"\nurl = "ftp://x/"\n', ":3: notify[0].url: needs an http:// or https:// URL"),
        (
            '[[notify]]\ntype = "webhook"\nurl = "http://127.0.0.1/"\n\n[[notify]]\ntype = "email"\nhost = "m"\n'
            'from = "a@b"\nto = "c@d"\ntls = "none"\nuser = "u"\npassword-env = "P"\n',
            ":11: notify[1].user: a login needs tls",
        ),
        ('[[notify]]\ntype = "webhook"\nurl = "http://127.0.0.1/"\nretry = 2\n', ":4: notify[0].retry: unknown key"),
    ],
)
def test_bad_site_files_exit_2_naming_file_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    message = _error(tmp_path, text)
    assert message.startswith(f"site file {tmp_path / 'office.toml'}"), message
    assert expected in message, message


async def test_a_bad_site_file_is_exit_2_from_the_command(tmp_path: Path) -> None:
    from tests.conftest import cli_exit

    bad = tmp_path / "office.toml"
    bad.write_text('targets = ["127.0.0.1"]\nport = 22\n')
    code, err = await cli_exit("scan", "--site", str(bad), "--db", str(tmp_path / "h.db"), "--out", str(tmp_path))
    assert code == 2 and f"{bad}:2: port: unknown key (did you mean 'ports'?)" in err
    missing = tmp_path / "none.toml"
    code, err = await cli_exit("scan", "--site", str(missing))
    assert code == 2 and "none.toml: No such file or directory" in err


def test_numbers_for_text_options_and_paths_of_targets_files_and_alert_files(tmp_path: Path) -> None:
    """arp-rate is parsed by its probe from text: a TOML number is given to it as text; @FILE is the site's."""
    args = _args(tmp_path, 'targets = "@hosts.txt"\narp-rate = 2500\n[[notify]]\ntype = "email"\nhost = "m"\n'
                 'from = "a@example.jp"\nto = "b@example.jp"\ncafile = "~/ca.pem"\n')  # fmt: skip
    assert args.targets == [f"@{tmp_path / 'hosts.txt'}"]
    assert [v for k, v in vars(args).items() if k.endswith("arp_rate")] == ["2500"]
    (channel,) = args.site_file.notify
    assert channel.to_json()["target"]["cafile"] == str(Path("~/ca.pem").expanduser())  # ~ expanded
