"""contrib/: the systemd units, the cron line and the example site file are what the code accepts."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanner import cli, site

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
EDGEAUDIT = "/usr/local/bin/edgeaudit"


def _parses(argv: list[str]) -> None:
    """An edgeaudit command line the parser takes (argparse exits 2 on one it does not)."""
    args = cli.build_parser().parse_args(argv)
    assert args.command == "scan" and args.site is not None


def test_the_example_site_file_loads() -> None:
    loaded = site.load(CONTRIB / "office.toml", site.subparser(cli.build_parser(), "scan"))
    assert loaded.name == "office" and loaded.values["targets"] == ["192.168.10.0/24"]
    assert [c.to_json()["type"] for c in loaded.notify] == ["email", "webhook"]
    assert loaded.values["metrics_file"].suffix == ".prom"


def test_the_cron_line_runs_a_site_sweep_once_at_a_time() -> None:
    lines = [x for x in (CONTRIB / "cron" / "edgeaudit").read_text().splitlines() if x and not x.startswith("#")]
    jobs = [x for x in lines if "=" not in x.split()[0]]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 6)
    assert len(fields) == 7 and fields[5] == "root"  # /etc/cron.d: five time fields, the user, the command
    command = shlex.split(fields[6].split(">>")[0])
    assert command[:3] == ["flock", "-n", "/run/edgeaudit-office.lock"] and command[3] == "edgeaudit"
    _parses(command[4:])


def test_the_service_runs_a_site_sweep_and_takes_exit_1_as_a_result() -> None:
    unit = (CONTRIB / "systemd" / "edgeaudit@.service").read_text()
    (exec_start,) = [x.split("=", 1)[1] for x in unit.splitlines() if x.startswith("ExecStart=")]
    argv = shlex.split(exec_start)
    assert argv[0] == EDGEAUDIT
    _parses(argv[1:])
    assert "SuccessExitStatus=1" in unit.splitlines()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    """An instance of each template, ExecStart pointed at this checkout's command (verify checks it exists)."""
    here = Path(sys.executable).parent / "edgeaudit"
    if not here.exists():
        pytest.skip(f"{here} is not installed (make setup)")
    names = []
    for template in ("edgeaudit@.service", "edgeaudit@.timer"):
        text = (CONTRIB / "systemd" / template).read_text().replace(EDGEAUDIT, str(here))
        name = template.replace("@.", "@office.")
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr  # warnings (unknown keys) count too
