"""What every edgeaudit command shares: exit codes, signals, the sweep mode, and added commands.

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 usage or runtime
error; 3 an internal error (a bug, never mistaken for findings by a scheduler).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol

from probes.observations import Mode
from scanner.findings import Severity, Status

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERNAL = 0, 1, 2, 3
COMMAND_GROUP = "edgeaudit.commands"
log = logging.getLogger("edgeaudit")


class Command(Protocol):
    """A command another distribution adds to ``edgeaudit`` (entry-point group ``edgeaudit.commands``)."""

    def add_parser(self, sub: Any, common: argparse.ArgumentParser) -> None:
        """Register the command on edgeaudit's subparsers."""

    def run(self, args: argparse.Namespace) -> int:
        """Run it; the exit code."""


@cache
def plugins() -> dict[str, Command]:
    """The added commands by name; one that fails to load is skipped with a warning, never fatal."""
    found: dict[str, Command] = {}
    for ep in entry_points(group=COMMAND_GROUP):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken development install must not break a user's sweep
            log.warning("command %s (%s) not loaded: %s", ep.name, ep.value, exc)
    return found


def worst_exit(findings: Sequence[Any], fail_on: str) -> int:
    """Exit code for a set of findings and a --fail-on threshold."""
    threshold = Severity(fail_on).rank
    return EXIT_FINDINGS if any(f.status == Status.FAIL and f.severity.rank >= threshold for f in findings) else EXIT_OK


def install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """First Ctrl-C: stop starting hosts, let running ones finish. Second: cancel."""

    def on_signal() -> None:
        if stop.is_set():
            print("\nedgeaudit: second interrupt, cancelling running probes", file=sys.stderr)
            task.cancel()
            return
        stop.set()
        print(
            "\nedgeaudit: interrupt: no new hosts; running hosts finish within their budget "
            "(Ctrl-C again to cancel). Resume later with --resume.",
            file=sys.stderr,
        )

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def mode_from(args: argparse.Namespace) -> Mode:
    """The sweep mode chosen by --safe / --intrusive."""
    return Mode.SAFE if args.safe else Mode.INTRUSIVE if args.intrusive else Mode.DEFAULT


def is_root() -> bool:
    """Whether raw sockets (ARP/ICMP) are available."""
    return hasattr(os, "geteuid") and os.geteuid() == 0
