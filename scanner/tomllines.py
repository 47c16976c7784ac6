"""Where each key of a TOML text is, for error messages that name the line (tomllib gives values only)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from profiles.errors import UsageError

_TABLE = re.compile(r"^\[\[\s*([A-Za-z0-9_-]+)\s*\]\]")
_HEADER = re.compile(r"^\[\s*([A-Za-z0-9_-]+)\s*\]")
_KEY = re.compile(r"^([\"']?)([A-Za-z0-9_-]+)\1\s*=")


class Lines:
    """Where each key of a TOML text is, for messages (tomllib gives values, not positions).

    A key is addressed by its table path: ``("probe-timeout",)``, ``("notify", 0, "url")``."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self._at: dict[tuple[str | int, ...], int] = {}
        table: tuple[str | int, ...] = ()
        seen: dict[str, int] = {}
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if m := _TABLE.match(s):
                seen[m[1]] = seen.get(m[1], -1) + 1
                table = (m[1], seen[m[1]])
            elif m := _HEADER.match(s):
                table = (m[1],)
            elif m := _KEY.match(s):
                self._at.setdefault((*table, m[2]), n)
                continue
            else:
                continue
            self._at.setdefault(table, n)

    def where(self, *key: str | int) -> str:
        """``FILE:LINE`` of a key (or of its table, or the file alone when neither is found)."""
        for depth in range(len(key), 0, -1):
            if key[:depth] in self._at:
                return f"{self.path}:{self._at[key[:depth]]}"
        return str(self.path)

    def error(self, key: Sequence[str | int], problem: str) -> UsageError:
        """A UsageError naming the file, line and key."""
        name = ".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in key).replace(".[", "[")
        return UsageError(f"site file {self.where(*key)}: {name}: {problem}")
