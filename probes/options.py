"""Options a probe declares for itself, beside the code that reads them (as nmap's NSE script args).

An option set is a frozen dataclass whose fields are declared with ``option(...)``: the
flag, its help, how its command-line text becomes the typed value (``parse``, raising
UsageError naming the flag) and, for an input file, how the file is read before the
first packet (``load``, raising UsageError naming the file and line). ``@option_set``
registers the class by name; a duplicate name or flag fails at import. The CLI's flags,
their validation and the ``--resume`` codec are all derived from these declarations:

    @option_set
    @dataclass(frozen=True)
    class NtpOptions(OptionSet):
        name: ClassVar[str] = "ntp"
        title: ClassVar[str] = "NTP"
        monlist: bool = option(False, flag="--ntp-monlist", help="...", kind="flag")

The JSON codec follows each field's type: bool, int, float, str, ``X | None``, and
tuples (``tuple[X, ...]`` and fixed ``tuple[X, Y]``) of those.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from profiles.errors import RegistryError, UsageError

METADATA_KEY = "edgeaudit.option"
Kind = Literal["value", "flag", "append"]  # one value; a store_true switch; a repeatable value (a list)


@dataclass(frozen=True)
class Option:
    """How one option field is given on the command line and checked."""

    flag: str
    help: str
    metavar: str | None = None
    kind: Kind = "value"
    # The command-line value (str, or list[str] for "append") -> the field's typed value. None: by the
    # field's type (int, float, str). Only called when the flag was given; otherwise the field's default.
    parse: Callable[[Any], Any] | None = None
    # Reads the input file a value names (raises UsageError with FILE:LINE). Runs on every start,
    # --resume included, before any packet; never for the default value None.
    load: Callable[[Any], object] | None = None
    legacy: str | None = None  # the flat ProbeConfig key this option had in stored configs before option sets


T = TypeVar("T")


def option(
    default: T,
    *,
    flag: str,
    help: str,
    metavar: str | None = None,
    kind: Kind = "value",
    parse: Callable[[Any], Any] | None = None,
    load: Callable[[Any], object] | None = None,
    legacy: str | None = None,
) -> T:
    """A dataclass field declared as a command-line option."""
    meta = Option(flag, help, metavar, kind, parse, load, legacy)
    return field(default=default, metadata={METADATA_KEY: meta})


@dataclass(frozen=True)
class OptionSet:
    """Base of every option set: a frozen dataclass of ``option(...)`` fields, registered by ``name``."""

    name: ClassVar[str]
    title: ClassVar[str]  # the --help section


S = TypeVar("S", bound=OptionSet)


@dataclass(frozen=True)
class Declared:
    """One option field of a registered set."""

    owner: type[OptionSet]
    name: str
    type: Any
    default: Any
    option: Option

    @property
    def dest(self) -> str:
        """The argparse destination: unique per set and field."""
        return f"{self.owner.name}.{self.name}"


@dataclass
class OptionRegistry:
    """Set name -> option-set class. A duplicate name, flag or legacy key fails at registration."""

    sets: dict[str, type[OptionSet]] = field(default_factory=dict)

    def add(self, cls: type[OptionSet]) -> None:
        """Register a set after checking its declarations (nothing is registered when one is wrong)."""
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not name or not isinstance(cls.__dict__.get("title"), str):
            raise RegistryError(f"option set {cls.__qualname__} needs its own name and title")
        if name in self.sets:
            raise RegistryError(f"option set {name!r} registered twice ({self.sets[name].__module__})")
        params = cls.__dict__.get("__dataclass_params__")
        if params is None or not params.frozen:
            raise RegistryError(f"option set {name!r}: not a frozen dataclass")
        flags = {d.option.flag: d.owner.name for d in self.declared()}
        legacy = {d.option.legacy: d.owner.name for d in self.declared() if d.option.legacy}
        for d in _declared(cls):
            if not d.option.flag.startswith("--"):
                raise RegistryError(f"option set {name!r}: {d.name}: flag {d.option.flag!r} must start with --")
            if d.option.flag in flags:
                owner = flags[d.option.flag]
                raise RegistryError(f"option set {name!r}: flag {d.option.flag} is already option set {owner!r}'s")
            if d.option.legacy and d.option.legacy in legacy:
                raise RegistryError(f"option set {name!r}: stored key {d.option.legacy!r} is already mapped")
            flags[d.option.flag] = name
            if d.option.legacy:
                legacy[d.option.legacy] = name
            _check_type(d.type, f"option set {name!r}: {d.name}")
            decode(d.type, encode(d.default), f"{name}.{d.name}")  # its default round-trips
        self.sets[name] = cls

    def declared(self) -> Iterator[Declared]:
        """Every option of every set, sets in name order, fields in declaration order."""
        for name in sorted(self.sets):
            yield from _declared(self.sets[name])


OPTIONS = OptionRegistry()


def option_set(cls: type[S]) -> type[S]:
    """Class decorator: register an option set (after @dataclass(frozen=True))."""
    OPTIONS.add(cls)
    return cls


def _declared(cls: type[OptionSet]) -> Iterator[Declared]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(METADATA_KEY)
        if not isinstance(meta, Option):
            raise RegistryError(f"option set {cls.__qualname__}: field {f.name} is not declared with option()")
        yield Declared(cls, f.name, hints[f.name], f.default, meta)


# -- values from the command line -------------------------------------------------------------


def from_values(values: Mapping[str, Any], registry: OptionRegistry = OPTIONS) -> tuple[OptionSet, ...]:
    """Every registered set, built from parsed command-line values (keyed by ``Declared.dest``)."""
    out: list[OptionSet] = []
    for name in sorted(registry.sets):
        cls = registry.sets[name]
        kwargs: dict[str, Any] = {}
        for d in _declared(cls):
            raw = values.get(d.dest)
            if raw is None or raw is False or raw == []:
                continue  # not given: the declared default
            kwargs[d.name] = d.option.parse(raw) if d.option.parse else _from_text(d.type, raw, d.option.flag)
        out.append(cls(**kwargs))
    return tuple(out)


def load_inputs(sets: tuple[OptionSet, ...]) -> None:
    """Read every input file the sets name: a malformed one is a UsageError here, before any packet."""
    for s in sets:
        for d in _declared(type(s)):
            value = getattr(s, d.name)
            if d.option.load is not None and value is not None:
                d.option.load(value)


def _from_text(tp: Any, raw: Any, flag: str) -> Any:
    base = _optional_of(tp)
    target = base if base is not None else tp
    if target is bool:
        return bool(raw)
    if target in (int, float, str) and isinstance(raw, str):
        try:
            return target(raw)
        except ValueError as exc:
            raise UsageError(f"{flag} takes {'an integer' if target is int else 'a number'}, not {raw!r}") from exc
    raise UsageError(f"{flag}: {raw!r} needs a parse function")


# The parse helpers below are what most options need.


def number(flag: str, kind: type[int] | type[float], minimum: float, why: str) -> Callable[[str], Any]:
    """Parse an int or float of at least ``minimum``; ``why`` ends the message ("cannot be negative")."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError as exc:
            raise UsageError(f"{flag} takes {'an integer' if kind is int else 'a number'}, not {text!r}") from exc
        if value < minimum:
            raise UsageError(f"{flag} {why}")
        return value

    return parse


class InputFile:
    """Parse a path to an existing file, made absolute (a resumed sweep may run from elsewhere).

    A class, not a closure, so that a site file (scanner.site) can tell a path option from others
    and read a relative path from the site file's directory."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def __call__(self, text: str) -> str:
        path = Path(text).expanduser()
        if not path.is_file():
            raise UsageError(f"{self.flag} {text}: no such file")
        return str(path.resolve())


def input_file(flag: str) -> InputFile:
    """The parser of an option naming an input file."""
    return InputFile(flag)


def read_toml(label: str, path: str | Path) -> tuple[str, dict[str, Any]]:
    """A TOML file's text and its table; unreadable, not UTF-8 or not TOML is a UsageError naming LABEL FILE[:LINE].

    The text is returned too: tomllib keeps no positions, so callers that name a key's line count it there."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{label} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{label} {path}: not UTF-8 text") from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        raise UsageError(f"{label} {path}{':' + at[1] if at else ''}: not TOML: {exc}") from exc


def read_lines(flag: str, path: str | Path) -> list[str]:
    """An input file's lines, as UTF-8; unreadable or undecodable is a UsageError naming FILE[:LINE]."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: {exc.strerror or exc}") from exc
    lines: list[str] = []
    for n, raw in enumerate(data.splitlines(), 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise UsageError(f"{flag} {path}:{n}: not UTF-8 text") from exc
    return lines


# -- the --resume codec -----------------------------------------------------------------------


def encode(value: Any) -> Any:
    """A typed option value as JSON: tuples become lists."""
    if isinstance(value, tuple):
        return [encode(v) for v in value]
    return value


def decode(tp: Any, data: Any, where: str) -> Any:
    """JSON back to the declared type; anything else is a UsageError naming ``where``."""
    base = _optional_of(tp)
    if base is not None:
        return None if data is None else decode(base, data, where)
    if tp is bool or tp is str:
        if isinstance(data, tp):
            return data
    elif tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
    elif tp is float:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
    elif typing.get_origin(tp) is tuple and isinstance(data, list):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v, where) for v in data)
        if len(args) == len(data):
            return tuple(decode(a, v, where) for a, v in zip(args, data, strict=True))
    raise UsageError(f"stored option {where}: {data!r} is not a {_type_name(tp)}")


def encode_sets(sets: tuple[OptionSet, ...]) -> dict[str, dict[str, Any]]:
    """{set name: {field: JSON value}} for a stored sweep config."""
    return {type(s).name: {d.name: encode(getattr(s, d.name)) for d in _declared(type(s))} for s in sets}


def decode_sets(data: Mapping[str, Any], registry: OptionRegistry = OPTIONS) -> tuple[OptionSet, ...]:
    """Every registered set from a stored config; a set or field missing there takes its default."""
    unknown = set(data) - set(registry.sets)
    if unknown:
        raise UsageError(f"stored sweep config names option sets this version does not know: {sorted(unknown)}")
    out: list[OptionSet] = []
    for name in sorted(registry.sets):
        cls = registry.sets[name]
        stored = data.get(name, {})
        fields = {d.name: d for d in _declared(cls)}
        if not isinstance(stored, dict) or set(stored) - set(fields):
            raise UsageError(f"stored option set {name!r} has unknown fields: {sorted(set(stored) - set(fields))}")
        out.append(cls(**{k: decode(fields[k].type, v, f"{name}.{k}") for k, v in stored.items()}))
    return tuple(out)


def from_legacy(flat: Mapping[str, Any], registry: OptionRegistry = OPTIONS) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a flat stored probe_config (before option sets) into (option-set data, the rest)."""
    by_key = {d.option.legacy: d for d in registry.declared() if d.option.legacy}
    sets: dict[str, dict[str, Any]] = {}
    rest: dict[str, Any] = {}
    for key, value in flat.items():
        d = by_key.get(key)
        if d is None:
            rest[key] = value
        else:
            sets.setdefault(d.owner.name, {})[d.name] = value
    return sets, rest


def _optional_of(tp: Any) -> Any:
    """X for ``X | None``, else None."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _check_type(tp: Any, where: str) -> None:
    base = _optional_of(tp)
    if base is not None:
        _check_type(base, where)
    elif typing.get_origin(tp) is tuple:
        for a in typing.get_args(tp):
            if a is not Ellipsis:
                _check_type(a, where)
    elif tp not in (bool, int, float, str):
        raise RegistryError(f"{where}: type {_type_name(tp)} has no JSON codec (bool, int, float, str, tuples)")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)
