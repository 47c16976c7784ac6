"""Ordering of vendor version strings.

Every scheme reduces a version to a tuple of comparable tokens: numbers
compare as numbers, letters as text, and a number sorts after a letter in the
same position ("9.2p1" > "9.2", "15.2(4)M7" < "15.2(4)M10"). Schemes only
strip what is not part of the version ("Rev.", "OpenSSH_", distro suffixes).
"""

from __future__ import annotations

import re

SCHEMES = ("dotted", "yamaha-rev", "cisco-ios", "openssh", "asterisk", "routeros")
_TOKEN = re.compile(r"\d+|[A-Za-z]+")
_PREFIX = {
    "yamaha-rev": re.compile(r"^\s*Rev\.?\s*", re.IGNORECASE),
    "openssh": re.compile(r"^\s*(OpenSSH_)?", re.IGNORECASE),
    "routeros": re.compile(r"^\s*(RouterOS\s*)?v?", re.IGNORECASE),
}

Token = tuple[int, int | str]


def normalize(version: str, scheme: str = "dotted") -> str:
    """The part of a version string the scheme compares."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown version scheme {scheme!r}")
    text = version.strip()
    prefix = _PREFIX.get(scheme)
    if prefix:
        text = prefix.sub("", text)
    if scheme == "openssh":
        text = text.split()[0] if text.split() else text  # "9.2p1 Debian-2+deb12u3" -> upstream part
    return text


def key(version: str, scheme: str = "dotted") -> tuple[Token, ...]:
    """Sort key for a version string under a scheme."""
    text = normalize(version, scheme)
    tokens = _TOKEN.findall(text)
    if not tokens:
        raise ValueError(f"no version in {version!r}")
    return tuple((1, int(t)) if t.isdigit() else (0, t.lower()) for t in tokens)


def compare(a: str, b: str, scheme: str = "dotted") -> int:
    """-1, 0 or 1 as version a is older than, equal to, or newer than b."""
    ka, kb = key(a, scheme), key(b, scheme)
    return (ka > kb) - (ka < kb)


def branch_of(version: str, branch: str, scheme: str = "dotted") -> bool:
    """Whether ``version`` belongs to ``branch`` (its leading tokens equal the branch's)."""
    kv, kb = key(version, scheme), key(branch, scheme)
    return kv[: len(kb)] == kb
