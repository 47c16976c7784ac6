"""A site file: one TOML file that describes a site's sweep, for schedules (``scan --site FILE``).

Every scan flag is a key of the same name without its dashes (``probe-timeout = 20``,
``auth-file = "auth.toml"``, ``dhcp = true``); the positional targets are ``targets``; ``mode``
is ``"safe"``, ``"default"`` or ``"intrusive"``; ``name`` names the site (default: the file's
stem), which is how the next sweep finds this one to compare with; ``[[notify]]`` tables are the
alerts (scanner.alerts). A flag given on the command line wins over its key. Relative paths are
read from the site file's directory, so a timer or cron job may run from anywhere.

The keys are derived from the scan parser itself (its actions and the probes' option sets), so
a new flag is a new key with the same checks. A key that is no flag, a value of the wrong type
or outside the flag's choices is a UsageError naming the file, the key and its line.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probes import options
from profiles.errors import UsageError
from scanner.alerts import channels
from scanner.tomllines import Lines

MODES = ("safe", "default", "intrusive")
NOT_KEYS = frozenset({"help", "resume", "site"})  # flags that describe a run, not a site
# Lists the command line adds to rather than replaces: a device the site keeps out of its sweeps
# (a fragile one) stays out when a one-off run excludes more.
ADDED = frozenset({"exclude"})
# Alternatives where a command-line choice replaces the site's whole choice, not one flag of it.
GROUPS = (frozenset({"safe", "intrusive"}), frozenset({"targets", "from_nmap"}))


@dataclass(frozen=True)
class Site:
    """A loaded site file: the flag values it sets (by argparse dest) and its alerts' tables."""

    path: Path
    name: str
    values: dict[str, Any]
    notify: tuple[channels.Channel, ...]
    lines: Lines

    def to_json(self) -> dict[str, Any]:
        """What a sweep records of its site: its name, its file and its alerts (resumed with it)."""
        return {"name": self.name, "file": str(self.path), "notify": [c.to_json() for c in self.notify]}


def _key_of(action: argparse.Action) -> str | None:
    if not action.option_strings:
        return action.dest if action.dest not in NOT_KEYS else None
    longs = [s for s in action.option_strings if s.startswith("--")]
    if not longs or action.dest in NOT_KEYS or action.help == argparse.SUPPRESS:
        return None
    return longs[0][2:]


def scan_keys(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Site-file key -> the scan parser's action it sets."""
    keys: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._CountAction | argparse._VersionAction):
            continue
        key = _key_of(action)
        if key is not None:
            keys[key] = action
    return keys


def _path_dests() -> set[str]:
    return {d.dest for d in options.OPTIONS.declared() if isinstance(d.option.parse, options.InputFile)}


def _text(value: Any, key: str, lines: Lines) -> str:
    if isinstance(value, str):
        return value
    raise lines.error((key,), f"expects a string, not {type(value).__name__} {value!r}")


def _convert(action: argparse.Action, key: str, value: Any, base: Path, lines: Lines, paths: set[str]) -> Any:
    """A TOML value as the flag's parsed value, checked as argparse checks the flag's text."""
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise lines.error((key,), f"expects true or false, not {value!r}")
        return value
    many = isinstance(action, argparse._AppendAction) or action.nargs == "*"
    if many:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise lines.error((key,), "expects a string or a non-empty list of strings")
        return [_one(action, key, _text(v, key, lines), base, lines, paths) for v in items]
    if key == "ports" and isinstance(value, list):  # ports = [22, 80, "2222:ssh"]
        if not value or not all(isinstance(v, int | str) and not isinstance(v, bool) for v in value):
            raise lines.error((key,), 'expects a list of ports (22 or "2222:ssh")')
        return ",".join(str(v) for v in value)
    if action.type is None and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # a probe option parsed from text (arp-rate = 2500): its own parser checks it
    if action.type in (int, float):
        ok = isinstance(value, int) if action.type is int else isinstance(value, int | float)
        if not ok or isinstance(value, bool):
            kind = "an integer" if action.type is int else "a number"
            raise lines.error((key,), f"expects {kind}, not {value!r}")
        value = action.type(value)
        if action.choices is not None and value not in action.choices:
            raise lines.error((key,), f"must be one of {', '.join(map(str, action.choices))}, not {value!r}")
        return value
    return _one(action, key, _text(value, key, lines), base, lines, paths)


def _one(action: argparse.Action, key: str, text: str, base: Path, lines: Lines, paths: set[str]) -> Any:
    if action.choices is not None and text not in action.choices:
        raise lines.error((key,), f"must be one of {', '.join(map(str, action.choices))}, not {text!r}")
    if action.dest == "targets" and text.startswith("@"):  # @FILE of targets: read from the site file's directory
        return "@" + str(base / Path(text[1:]).expanduser())
    if action.type is Path or action.dest in paths:
        path = Path(text).expanduser()
        path = path if path.is_absolute() else base / path
        return path if action.type is Path else str(path)
    return text


def load(path: Path, scan: argparse.ArgumentParser) -> Site:
    """Read and check a site file against the scan parser's flags."""
    text, data = options.read_toml("site file", path)
    lines = Lines(path, text)
    keys = scan_keys(scan)
    paths = _path_dests()
    base = path.resolve().parent
    values: dict[str, Any] = {}
    name = path.stem
    notify: list[dict[str, Any]] = []
    for key, value in data.items():
        if key == "name":
            name = _text(value, key, lines).strip()
            if not name or not name.isprintable():
                raise lines.error((key,), "must be one line of printable text")
        elif key == "notify":
            if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
                raise lines.error((key,), "expects [[notify]] tables")
            notify.extend(value)
        elif key == "mode":
            mode = _text(value, key, lines)
            if mode not in MODES:
                raise lines.error((key,), f"must be one of {', '.join(MODES)}, not {mode!r}")
            if {"safe", "intrusive"} & set(data):
                raise lines.error((key,), "give mode or safe/intrusive, not both")
            values["safe"], values["intrusive"] = mode == "safe", mode == "intrusive"
        elif key in keys:
            action = keys[key]
            values[action.dest] = _convert(action, key, value, base, lines, paths)
        else:
            near = difflib.get_close_matches(key, [*keys, "name", "mode", "notify"], n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            what = "table" if isinstance(value, dict) else "key"
            raise lines.error((key,), f"unknown {what}{hint}: a site file's keys are the scan flags")
    if values.get("safe") and values.get("intrusive"):
        raise lines.error(("intrusive",), "safe and intrusive exclude each other")
    if values.get("targets") and values.get("from_nmap"):
        raise lines.error(("from-nmap",), "give targets or from-nmap, not both")
    if notify:
        from reports.render import default_lang

        lang = values.get("lang") or default_lang()
        return Site(path, name, values, channels.parse(tuple(notify), lines, base, lang), lines)
    return Site(path, name, values, (), lines)


class _Unset(list[Any]):
    """The default of a flag while finding which flags the command line gave (argparse copies lists)."""


_UNSET = object()


def explicit(parser_factory: Callable[[], argparse.ArgumentParser], argv: Sequence[str], dests: set[str]) -> set[str]:
    """Of ``dests`` and their alternatives (GROUPS), those the command line gave: parsed again, defaults unset."""
    dests = dests.union(*(g for g in GROUPS if g & dests))
    parser = parser_factory()
    unset_list = _Unset()
    for sub in _subparsers(parser):
        for action in sub._actions:
            if action.dest in dests:
                action.default = unset_list if isinstance(action, argparse._AppendAction) else _UNSET
    parsed = vars(parser.parse_args(list(argv)))
    return {d for d in dests if d in parsed and parsed[d] is not _UNSET and parsed[d] is not unset_list}


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [p for s in subs for p in s.choices.values()]


def apply(site: Site, args: argparse.Namespace, given: set[str], accepted: set[str]) -> list[str]:
    """Set the site's values on ``args`` where the command line gave none; the keys that do not apply.

    ``accepted``: the dests the command takes (``discover`` takes only the flags that shape
    discovery, and stays a safe sweep whatever the site's mode). A command-line choice among
    alternatives (``--safe``/``--intrusive``, targets/``--from-nmap``) replaces the site's
    choice as a whole; ``--exclude`` adds to the site's excludes."""
    skipped: list[str] = []
    for dest, value in site.values.items():
        group = next((g for g in GROUPS if dest in g), frozenset({dest}))
        if dest in ADDED and dest in given and dest in accepted:  # the site's excludes stay excluded
            setattr(args, dest, [*value, *(v for v in getattr(args, dest) if v not in value)])
            continue
        if group & given:
            continue
        if dest not in accepted:
            skipped.append(dest)
            continue
        setattr(args, dest, value)
    return skipped


def subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            found: argparse.ArgumentParser = action.choices[command]
            return found
    raise UsageError(f"no command {command!r}")
