"""Progress: a one-line bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from scanner.findings import Status
from scanner.orchestrator import HostResult


class Progress:
    """Counts hosts and failures; draws to stderr."""

    def __init__(self, total: int, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.up = 0
        self.failures = 0
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0  # when the bar was last drawn: at most 10 redraws a second (a /16 is 65,534 hosts)

    def host(self, result: HostResult) -> None:
        """One host finished."""
        self.done += 1
        if result.state != "down":
            self.up += 1
        fails = sum(1 for f in result.findings if f.status == Status.FAIL)
        self.failures += fails
        if self.quiet:
            return
        if self.tty:
            now = time.monotonic()
            if now - self._drawn < 0.1 and self.done < self.total and result.state == "down":
                return
            self._drawn = now
            width = 30
            filled = int(width * self.done / max(1, self.total))
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} hosts,"
                f" {self.up} up, {self.failures} failures "
            )
            self.stream.flush()
        elif result.state != "down":
            self.stream.write(
                f"edgeaudit: {result.address} {result.state}: {fails} fail,"
                f" {len(result.findings)} findings ({self.done}/{self.total})\n"
            )

    def close(self) -> None:
        """End the bar's line."""
        if self.tty and not self.quiet and self.done:
            self.stream.write("\n")
