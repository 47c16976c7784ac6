"""The ``edgeaudit`` command's entry point: the collector setting first, then the CLI, its exit code kept."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

import scanner.cli
from scanner import entry


def test_entry_sets_the_collector_threshold_before_the_cli_and_returns_its_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int, int]] = []

    def cli_main() -> int:
        seen.append(gc.get_threshold())
        return 5

    saved = gc.get_threshold()
    monkeypatch.setattr(scanner.cli, "main", cli_main)
    try:
        assert entry.main() == 5
    finally:
        gc.set_threshold(*saved)
    assert seen == [(entry.GC_FIRST_GENERATION, saved[1], saved[2])]


def test_the_command_runs_through_the_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scanner.entry", "--version"], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("edgeaudit "), (done.stdout, done.stderr)
    bad = subprocess.run(
        [sys.executable, "-m", "scanner.entry", "--no-such-flag"], check=False, capture_output=True, timeout=60
    )
    assert bad.returncode == 2
