"""Golden findings for the lab: what each lab device must produce (lab/expected/NODE.json).

A golden file lists, for one node, the profile it must be identified as and
every finding as (id, status, service), compared as a multiset: a missing, an
extra or a changed finding is a difference. Info findings (inventory) are kept
out except EA-DEVICE-IDENTIFIED's profile, which is compared on its own.

    python -m lab.golden REPORT.json            # differences, exit 1 when any
    python -m lab.golden REPORT.json --write    # (re)write the files, to review with git diff
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from lab.control import TOPOLOGY, load_topology

EXPECTED = Path(__file__).with_name("expected")
INVENTORY = {"EA-DEVICE-IDENTIFIED", "EA-SERVICES-OPEN"}
Entry = tuple[str, str, str]  # id, status, service ("" for host-level)


def lan_nodes(topology: Path = TOPOLOGY) -> dict[str, str]:
    """Node name -> LAN address, for every node on the LAN (what a LAN sweep sees)."""
    nodes = load_topology(topology)["nodes"]
    return {name: node["interfaces"]["lan"] for name, node in nodes.items() if "lan" in node["interfaces"]}


def observed(report: dict[str, Any]) -> dict[str, tuple[str | None, list[Entry]]]:
    """Address -> (profile, sorted findings) from a report.json."""
    out: dict[str, tuple[str | None, list[Entry]]] = {}
    for device in report["devices"]:
        entries = sorted(
            (f["id"], f["status"], f.get("service") or "") for f in device["findings"] if f["id"] not in INVENTORY
        )
        out[device["address"]] = ((device.get("device") or {}).get("profile"), entries)
    return out


def load(node: str, directory: Path = EXPECTED) -> dict[str, Any]:
    """One golden file."""
    data: dict[str, Any] = json.loads((directory / f"{node}.json").read_text(encoding="utf-8"))
    return data


def compare(report: dict[str, Any], directory: Path = EXPECTED) -> list[str]:
    """Differences between a sweep report and the golden files (empty: they agree)."""
    seen = observed(report)
    problems: list[str] = []
    for node, address in lan_nodes().items():
        gold = load(node, directory)
        if address not in seen:
            problems.append(f"{node} ({address}): not in the report")
            continue
        profile, entries = seen[address]
        if profile != gold["profile"]:
            problems.append(f"{node}: identified as {profile!r}, expected {gold['profile']!r}")
        want = Counter(tuple(e) for e in gold["findings"])
        got = Counter(entries)
        for entry in sorted((want - got).elements()):
            problems.append(f"{node}: missing {' '.join(entry)}")
        for entry in sorted((got - want).elements()):
            problems.append(f"{node}: unexpected {' '.join(entry)}")
    return problems


def write(report: dict[str, Any], directory: Path = EXPECTED) -> list[Path]:
    """Write one golden file per LAN node from a report (review the result before committing)."""
    directory.mkdir(exist_ok=True)
    seen = observed(report)
    written = []
    for node, address in lan_nodes().items():
        profile, entries = seen.get(address, (None, []))
        data = {"node": node, "address": address, "profile": profile, "findings": [list(e) for e in entries]}
        path = directory / f"{node}.json"
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main() -> int:
    """CLI: compare a report with the golden files, or rewrite them."""
    parser = argparse.ArgumentParser(prog="python -m lab.golden")
    parser.add_argument("report", type=Path)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    report = json.loads(args.report.read_text(encoding="utf-8"))
    if args.write:
        for path in write(report):
            print(f"wrote {path}")
        return 0
    problems = compare(report)
    for p in problems:
        print(p)
    print(f"golden: {len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
