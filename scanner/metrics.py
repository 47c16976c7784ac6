"""The report document as Prometheus metrics, for node_exporter's textfile collector.

``to_prometheus`` renders the document (scanner.document ``build``) in the Prometheus text
exposition format; ``write`` puts it where the collector reads it. Every metric is a gauge named
``edgeaudit_...``: the file describes the last sweep, and the next sweep's file replaces it.

Labels. ``site`` (when given) and ``vantage`` are on every series: one textfile directory may
hold the files of several sweeps (a LAN and a WAN sweep, or the sweeps of several sites run from
one host), node_exporter joins all files into one scrape, and a series with the same name and
labels in two files fails the scrape ("was collected before with the same name and label
values"). Both are bounded: a site is one per site file, a vantage one of a handful (lan, wan,
lan+wan, air). ``mode`` and ``command`` describe how the sweep ran rather than what was measured,
so they are only on ``edgeaudit_sweep_info`` (value 1), the info-metric pattern Prometheus's
exporter guidance recommends over repeating a label on every metric: a change of mode does not
start new series for every finding count, and a query joins them when it needs them
(``edgeaudit_findings * on(site, vantage) group_left(mode) edgeaudit_sweep_info``).

Cardinality is bounded by the check catalog, never by the scope: findings are counted by
status, severity and clause (no address, device or check-id label), devices by clause verdict.
Finding counts known in advance (each status of each catalog clause and severity) are written
as 0 when none occurred, so a query sees 0 rather than no data. The HELP texts are constant:
node_exporter refuses a metric whose HELP differs between two files. No sample has a
timestamp (the collector rejects files with client-side timestamps).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from profiles.errors import UsageError
from scanner.checks import catalog
from scanner.document import SEVERITIES, STATUSES

PREFIX = "edgeaudit_"
VERDICTS = ("fail", "inconclusive", "pass", "na")  # a clause_matrix cell (reports/schema.json)
Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, float]


def escape_label_value(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote and line feed escaped.

    A lone surrogate (a name decoded with surrogateescape) is written as its backslash escape,
    since the file must be valid UTF-8."""
    value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _family(name: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} gauge"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
        lines.append(f"{PREFIX}{name}{{{inner}}} {_number(value)}" if inner else f"{PREFIX}{name} {_number(value)}")
    return lines


def _timestamp(iso: str | None) -> float | None:
    return dt.datetime.fromisoformat(iso).timestamp() if iso else None


def _finding_counts(devices: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, ...]]:
    """Findings by (status, severity, clause): one pass over every finding, with the catalog's zeros."""
    counts: Counter[tuple[str, ...]] = Counter(
        (f["status"], f["severity"], f["clause"]) for d in devices for f in d["findings"]
    )
    for entry in catalog().values():
        for status in STATUSES:
            counts[(status, str(entry.severity), entry.clause)] += 0
    return counts


def _clause_verdicts(summary: Mapping[str, Any]) -> Counter[tuple[str, ...]]:
    """Devices by (clause, verdict) from the clause matrix, every clause and verdict present."""
    counts: Counter[tuple[str, ...]] = Counter(
        (clause, verdict) for row in summary["clause_matrix"].values() for clause, verdict in row.items()
    )
    for clause in summary["clauses"]:
        for verdict in VERDICTS:
            counts[(clause, verdict)] += 0
    return counts


def _sorted(counts: Mapping[tuple[str, ...], int], names: tuple[str, ...], base: Labels) -> list[Sample]:
    """Samples in a stable order: statuses, severities and verdicts worst first, clauses as text."""
    rank: dict[str, Sequence[str]] = {"status": STATUSES, "severity": SEVERITIES, "verdict": VERDICTS}

    def key(item: tuple[tuple[str, ...], int]) -> tuple[tuple[int, str], ...]:
        order = [rank.get(n, ()) for n in names]
        return tuple((o.index(v) if v in o else len(o), v) for o, v in zip(order, item[0], strict=True))

    return [((*base, *zip(names, labels, strict=True)), float(n)) for labels, n in sorted(counts.items(), key=key)]


def to_prometheus(report: dict[str, Any], *, site: str | None, last_complete: float | None) -> str:
    """The report document in the Prometheus text format (every line ends with a line feed).

    ``last_complete`` is the finish time (Unix seconds) of the newest complete sweep before this
    one, or None; it is written only when this sweep did not complete (a complete sweep is itself
    the last complete sweep, and its own finish time is written)."""
    sweep, summary = report["sweep"], report["summary"]
    base: Labels = ((("site", site),) if site else ()) + (("vantage", str(sweep["vantage"])),)
    started, finished = _timestamp(sweep["started_at"]), _timestamp(sweep["finished_at"])
    complete = sweep["state"] == "complete"
    latest = finished if complete and finished is not None else last_complete

    def one(value: float | None) -> list[Sample]:
        return [] if value is None else [(base, value)]

    info = (*base, ("mode", str(sweep["mode"])), ("command", str(sweep["command"])))
    families = [
        ("sweep_info", "The last sweep's mode and command (value 1).", [(info, 1.0)]),
        ("sweep_complete", "1 if the last sweep completed, 0 if it was interrupted or is still running.",
         one(1.0 if complete else 0.0)),
        ("sweep_start_timestamp_seconds", "When the last sweep started, Unix time.", one(started)),
        ("sweep_end_timestamp_seconds", "When the last sweep ended, Unix time.", one(finished)),
        ("sweep_duration_seconds", "How long the last sweep ran.",
         one(None if started is None or finished is None else finished - started)),
        ("last_complete_sweep_timestamp_seconds", "When the newest complete sweep ended, Unix time.", one(latest)),
        ("scope_addresses", "Addresses in the last sweep's scope.", one(float(sweep["scope"]["address_count"]))),
        ("hosts_reported", "Hosts the last sweep reports (up, or with findings).",
         one(float(summary["hosts_reported"]))),
        ("hosts_down", "Addresses the last sweep found down with nothing to report.",
         one(float(summary.get("hosts_down", 0)))),
        ("findings", "Findings of the last sweep by status, severity and guideline clause.",
         _sorted(_finding_counts(report["devices"]), ("status", "severity", "clause"), base)),
        ("clause_devices", "Devices of the last sweep by guideline clause and verdict (worst finding of the clause).",
         _sorted(_clause_verdicts(summary), ("clause", "verdict"), base)),
    ]  # fmt: skip
    return "\n".join(line for name, text, samples in families for line in _family(name, text, samples)) + "\n"


def write(path: Path, text: str) -> None:
    """Replace ``path`` (a ``.prom`` file in the collector's directory) with ``text`` atomically.

    The collector reads only ``*.prom`` files and may read one at any moment, so the text goes
    to a temporary file of another name in the same directory (same filesystem), is flushed to
    disk, and is renamed over ``path``: a reader sees the old file or the new one, never half of
    one. The file is 0644: node_exporter runs as another user, and metrics hold no secret."""
    if path.suffix != ".prom":
        raise UsageError(f"metrics file {path}: node_exporter's textfile collector reads only *.prom files")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"metrics file {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            os.fchmod(fh.fileno(), 0o644)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)  # no stray temporary file, whatever stopped the write
        if isinstance(exc, OSError):
            raise UsageError(f"metrics file {path}: {exc.strerror}") from exc
        raise
