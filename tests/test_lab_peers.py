"""The side-by-side benchmark's helpers (lab/peers.py) and the fleet's own ICMP limits, without root."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lab import control, fleet, peers


def test_fleet_namespace_gets_icmp_limits_of_separate_devices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """One namespace, one ICMP limiter: the fleet's is lifted to what its devices would have each, there only."""
    calls: list[tuple[str, dict[str, str]]] = []
    monkeypatch.setattr(control.netns, "add_namespace", lambda name: None)
    batches: list[tuple[str | None, list[str]]] = []
    monkeypatch.setattr(control.netns, "ip_batch", lambda lines, ns=None: batches.append((ns, list(lines))))
    monkeypatch.setattr(control.netns, "host_link_mac", lambda: "02:00:00:00:00:fe")
    monkeypatch.setattr(control.netns, "sysctl", lambda ns, values: calls.append((ns, values)))
    monkeypatch.setattr(control, "_spawn", lambda *a: control.Proc("fleet", "emulator", 1, "log"))
    state = control.State(0.0, "198.18.0.0/21", "198.19.0.0/24", "198.18.1.254", {})
    control._start_fleet(tmp_path, state, 20)
    # Each device knows the host's leg by a permanent entry: none learnt into the table all namespaces share.
    fleet_lines = [line for ns, lines in batches if ns == fleet.NAMESPACE for line in lines]
    permanent = [line for line in fleet_lines if line.startswith("neigh replace 198.18.1.254 ")]
    assert permanent == [
        f"neigh replace 198.18.1.254 lladdr 02:00:00:00:00:fe dev mv{i} nud permanent" for i in range(20)
    ]
    assert {ns for ns, _ in calls} == {fleet.NAMESPACE}  # never the host's, never another node's
    applied = {k: v for _, values in calls for k, v in values.items()}
    assert applied["net.ipv4.icmp_ratelimit"] == "0"
    assert int(applied["net.ipv4.icmp_msgs_per_sec"]) == 20 * fleet.LINUX_MSGS_PER_SEC
    assert int(applied["net.ipv4.icmp_msgs_burst"]) == 20 * fleet.LINUX_MSGS_BURST


def test_found_reads_each_tools_output() -> None:
    nmap = (
        "Nmap scan report for 198.18.4.1\n22/tcp open  ssh\n80/tcp   open  http\n"
        "Nmap done: 256 IP addresses (254 hosts up) scanned in 1.3 seconds\n"
    )
    assert peers.found(nmap) == "254 up, 2 open ports"
    svmap = (
        "| SIP Device         | User Agent           |\n+====+\n"
        "| 198.18.4.5:5060    | Asterisk PBX 16.30.0 |\n| 198.18.4.6:5060    | Asterisk PBX 22.6.0  |\n"
    )
    assert peers.found(svmap) == "2 answered"
    onesixtyone = "Scanning 3 hosts, 1 communities\n198.18.4.1 [public] EdgeLab EL-R100\n198.18.4.3 [public] EL-M300\n"
    assert peers.found(onesixtyone) == "2 answered"
    assert peers.found("edgeaudit: 251 device(s) answered") == "251 answered"
    assert peers.found("nothing to see") == ""


def test_wait_capped_measures_the_child_and_cuts_it_at_the_cap() -> None:
    burn = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass"],
        start_new_session=True,
    )
    status, cpu, rss, cut = peers.wait_capped(burn, 30.0)
    assert (status, cut) == (0, False) and cpu >= 0.25 and rss > 1
    started = time.monotonic()
    slow = subprocess.Popen(["sleep", "30"], start_new_session=True)
    status, _, _, cut = peers.wait_capped(slow, 0.3)
    assert cut and status != 0 and time.monotonic() - started < 10


def test_peak_rss_is_the_childs_own_not_the_harness_it_was_forked_from() -> None:
    """A small tool's peak RSS: rusage's ru_maxrss would carry this test process's memory into the child."""
    ballast = b"\x01" * (200 * 1024 * 1024)  # this process now holds 200 MiB (touched pages)
    small = subprocess.Popen(["sleep", "0.5"], start_new_session=True)
    _, _, rss, _ = peers.wait_capped(small, 30.0, every_s=0.05)
    assert 0 < rss < 50
    del ballast


def test_a_cut_pipeline_still_counts_the_cpu_its_tools_used() -> None:
    """The shell killed at the cap never waited for its tool: its CPU comes from the samples."""
    burn = f"{sys.executable} -c 'import time\nwhile True: pass'"
    shell = subprocess.Popen(["sh", "-c", f"{burn}; true"], start_new_session=True)
    _, cpu, _, cut = peers.wait_capped(shell, 1.0, every_s=0.05)
    assert cut and cpu >= 0.5


def test_missing_peer_is_named_and_its_rows_keep_edgeaudit(tmp_path: Path) -> None:
    tools: dict[str, Any] = {"nmap": "/usr/bin/nmap", "svmap": None, "onesixtyone": None}
    rows = peers.stages("198.18.4.0/24", tmp_path / "h", tmp_path / "c", tools, 60.0, nft=False)
    by_key = {r.key: r for r in rows}
    assert by_key["sip"].peer.argv is None and by_key["sip"].ours.argv is not None
    assert "svmap: missing" in peers.table([by_key["sip"]])
    inventory = by_key["inventory"]  # the goal: discover within nmap -sn's time
    assert inventory.peer.argv == ["/usr/bin/nmap", "-n", "-sn", "198.18.4.0/24"]
    assert inventory.ours.argv is not None and "discover" in inventory.ours.argv
    assert "--presence-only" not in inventory.ours.argv
    assert "discovery-silent" not in by_key  # no nft: that case cannot be built, so it is not pretended
    full = by_key["full"].peer.argv
    assert full is not None and "svmap" not in " ".join(full) and "onesixtyone" not in " ".join(full)


def test_debug_mode_stalls_are_read_from_asyncio_s_own_report(tmp_path: Path) -> None:
    """The debug run's figure comes from asyncio's warning; a real 0.2 s stall must be counted."""
    script = "import asyncio, time\nasync def m():\n    time.sleep(0.2)\nasyncio.run(m())\n"
    env = {"PYTHONASYNCIODEBUG": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, timeout=30
    )
    (stall,) = peers.slow_callbacks(done.stderr)
    assert 0.19 <= stall < 1.0
    quiet = subprocess.run(
        [sys.executable, "-c", script.replace("0.2", "0.01")], capture_output=True, text=True, env=env, check=True,
        timeout=30,
    )  # fmt: skip
    assert peers.slow_callbacks(quiet.stderr) == []


def test_report_states_and_rates(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(
        '{"summary": {"hosts_down": 4090}, "devices": [{"state": "up"}, {"state": "up"}, {"state": "budget"}]}'
    )
    assert peers.report_states(tmp_path) == "2 up, 1 cut by budget, 4090 down"
    assert peers.report_states(tmp_path / "missing") == ""
    run = peers.Run(5.0, 1.0, 80.0, 0, False, "", None)
    sparse = peers.Stage("sparse-20", "t", peers.Side("ours", ["x"], [run]), peers.Side("p", None), addresses=4094,
                         live=4)  # fmt: skip
    assert peers.dead_per_s(sparse, sparse.ours) == 818.0
    assert peers.rate(sparse, sparse.ours) == "; 818 dead addresses/s"
    big = peers.Stage("fleet-1000", "t", peers.Side("ours", ["x"], [run]), peers.Side("-", None), addresses=1000,
                      peer_expected=False)  # fmt: skip
    assert peers.rate(big, big.ours) == "; 200.0 hosts/s" and peers.peer_cell(big) == "-"
    cut = peers.Run(5.0, 1.0, 80.0, -9, True, "", None)
    assert peers.rate(sparse, peers.Side("p", ["y"], [cut])) == "; cut before the end"


def test_sparse_live_addresses_are_seeded_and_inside_the_network() -> None:
    import ipaddress

    from lab import sparse

    live = sparse.pick_live("198.19.0.0/16", 50)
    assert live == sparse.pick_live("198.19.0.0/16", 50) and len(set(live)) == 50
    net = ipaddress.ip_network("198.19.0.0/16")
    assert all(ipaddress.ip_address(a) in net for a in live)
    assert "198.19.0.1" not in live and "198.19.0.0" not in live and "198.19.255.255" not in live
    stage = peers.large_fleet_stage(1000, 600.0, Path("/tmp/x"))
    assert "198.18.4.1-198.18.7.238" in (stage.ours.argv or [])


def test_a_late_sample_of_an_exited_child_does_not_erase_its_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between exit and reaping, a child's status has no VmHWM: that sample (0) must not replace the peak."""
    samples = iter([{1: (0.1, 50.0)}, {1: (0.2, 60.0)}])
    monkeypatch.setattr(peers, "_group", lambda pgid: next(samples, {1: (0.0, 0.0)}))
    child = subprocess.Popen(["sleep", "0.6"], start_new_session=True)
    _, _, rss, _ = peers.wait_capped(child, 30.0, every_s=0.05)
    assert rss == 60.0


def test_a_source_checkout_runs_by_its_own_entry_point(tmp_path: Path) -> None:
    """--source: a checkout with scanner/entry.py starts by it, an older one by its own CLI module, never
    by this environment's `edgeaudit` script (which would import this checkout's entry point)."""
    new, old = tmp_path / "new", tmp_path / "old"
    for checkout in (new, old):
        (checkout / "scanner").mkdir(parents=True)
        (checkout / "scanner" / "cli.py").write_text("")
    (new / "scanner" / "entry.py").write_text("")
    assert peers.command(new) == [sys.executable, "-P", "-m", "scanner.entry"]
    assert peers.command(old) == [sys.executable, "-P", "-m", "scanner.cli"]
    assert peers.command() == [str(Path(sys.executable).with_name("edgeaudit"))]
    tools: dict[str, Any] = {"nmap": None, "svmap": None, "onesixtyone": None}
    rows = peers.stages("198.18.4.0/24", tmp_path / "h", tmp_path / "c", tools, 60.0, False, peers.command(old))
    old_cli = peers.command(old)
    assert old_cli == [sys.executable, "-P", "-m", "scanner.cli"]
    ours = [r.ours.argv or [] for r in rows if r.key in ("arp", "inventory", "tcp", "full")]
    ours.append(peers.large_fleet_stage(10, 60.0, tmp_path, old_cli).ours.argv or [])
    ours += [r.ours.argv or [] for r in peers.sparse_stages(None, tmp_path, 60.0, old_cli)]
    assert len(ours) == 7 and all(argv[:4] == old_cli for argv in ours), ours


def test_a_source_checkout_is_what_runs_from_this_checkouts_directory(tmp_path: Path) -> None:
    """make runs the harness from this checkout: the source's own modules must still be the ones imported."""
    source = tmp_path / "src"
    (source / "scanner").mkdir(parents=True)
    (source / "scanner" / "__init__.py").write_text("")
    (source / "scanner" / "entry.py").write_text("print(__file__)\n")
    root = Path(peers.__file__).resolve().parents[1]
    assert (root / "scanner" / "entry.py").is_file()  # this checkout has its own, which must not run
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        peers.command(source), cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == str(source / "scanner" / "entry.py"), (done.stdout, done.stderr[-500:])
