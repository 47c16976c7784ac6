"""What changed since a site's previous sweep, as an alert says it (Japanese or English).

Built on scanner.diff, with two rules of its own, so that an alert says what changed on the
devices and not what changed in the way they were swept:
- a check the previous sweep did not judge at all (a safe-mode sweep sends no credential, an
  older catalog lacked the check) is not "newly failing" on a device both sweeps saw: those
  findings are counted as first judged, and named as such;
- a failure that became inconclusive is not resolved: it is "no longer verified"; an
  inconclusive finding that now fails was not passing before: it is "confirmed", apart from
  what newly fails (a passing check that fails now, or a failure of a device new to the site).
A device is new, with what it fails, when the previous sweep's scope held it and did not find
it; a device is gone when this sweep's scope holds it and this sweep did not find what the
previous one had up. An address only one of the two scopes holds is not compared (a one-off
sweep of one device does not make the rest of the site "gone"), and is counted as such. A
failure with no finding now is resolved only where this sweep judged that check on that host,
the host up and not cut by its budget; otherwise it is "no longer verified" (unless this sweep
ran the check nowhere, as a safe sweep after a default one: then it is no change).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scanner import diff as sweep_diff
from scanner.checks import catalog
from scanner.document import finding_json
from scanner.findings import Finding, Status
from scanner.store import SweepRecord
from scanner.targets import Scope

MAX_LINES = 40  # findings listed in the text; the JSON body carries them all

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "subject": "edgeaudit {site}: {counts}",
        "sep": ", ",
        "nothing": "no change",
        "newly_failing": "{n} newly failing",
        "resolved": "{n} resolved",
        "unverified": "{n} no longer verified",
        "confirmed": "{n} confirmed failing",
        "new_devices": "{n} new device(s)",
        "gone_devices": "{n} device(s) gone",
        "head": "Sweep {sweep} ({mode} mode) compared with {previous} ({previous_mode} mode), vantage {vantage}.",
        "first": "{n} finding(s) of checks the previous sweep did not run are not counted as changes.",
        "scope": "{n} device(s) outside the other sweep's scope are not compared.",
        "sec_newly_failing": "Newly failing:",
        "sec_resolved": "Resolved:",
        "sec_unverified": "Failing before, inconclusive now:",
        "sec_confirmed": "Inconclusive before, failing now (the previous sweep could not tell):",
        "sec_new_devices": "New devices:",
        "sec_gone_devices": "Gone (up in the previous sweep, not found now):",
        "more": "... and {n} more (report.json and findings.jsonl have them all)",
    },
    "ja": {
        "subject": "edgeaudit {site}: {counts}",
        "sep": "、",  # no space: RFC 2047 decoding drops spaces between encoded words of a folded subject
        "nothing": "変化なし",
        "newly_failing": "新たな不適合 {n} 件",
        "resolved": "解消 {n} 件",
        "unverified": "確認不能になった不適合 {n} 件",
        "confirmed": "判定できた不適合 {n} 件",
        "new_devices": "新しい機器 {n} 台",
        "gone_devices": "見つからなくなった機器 {n} 台",
        "head": "スイープ {sweep}（{mode} モード）を前回の {previous}（{previous_mode} モード）と"
        "比較しました（視点 {vantage}）。",
        "first": "前回のスイープで実施しなかったチェックの結果 {n} 件は変化に数えていません。",
        "scope": "もう一方のスイープの対象範囲外の機器 {n} 台は比較していません。",
        "sec_newly_failing": "新たな不適合:",
        "sec_resolved": "解消:",
        "sec_unverified": "前回は不適合、今回は判定不能:",
        "sec_confirmed": "前回は判定不能、今回は不適合（前回は判定できなかったもの）:",
        "sec_new_devices": "新しい機器:",
        "sec_gone_devices": "見つからなくなった機器（前回は応答、今回は未検出）:",
        "more": "… ほか {n} 件（report.json と findings.jsonl に全件）",
    },
}


@dataclass
class Changes:
    """A sweep against the site's previous one."""

    site: str
    sweep: str
    previous: str
    vantage: str
    mode: str
    previous_mode: str
    newly_failing: list[Finding] = field(default_factory=list)
    resolved: list[Finding] = field(default_factory=list)
    unverified: list[Finding] = field(default_factory=list)
    confirmed: list[Finding] = field(default_factory=list)
    new_devices: list[str] = field(default_factory=list)
    gone_devices: list[str] = field(default_factory=list)
    first_judged: int = 0
    not_compared: int = 0  # addresses up in one sweep and outside the other sweep's scope

    @property
    def empty(self) -> bool:
        """Nothing to tell."""
        return not any(self.counts().values())

    def counts(self) -> dict[str, int]:
        """Each kind of change and how many."""
        return {
            "newly_failing": len(self.newly_failing),
            "resolved": len(self.resolved),
            "unverified": len(self.unverified),
            "confirmed": len(self.confirmed),
            "new_devices": len(self.new_devices),
            "gone_devices": len(self.gone_devices),
        }


def _covers(sweep: SweepRecord) -> Callable[[str], bool]:
    """Whether an address is in a sweep's scope (a record with no stored scope covers all)."""
    if not sweep.scope.get("intervals"):
        return lambda _address: True
    scope = Scope.from_json(sweep.scope)
    return lambda address: address in scope


def compare(site: str, old: SweepRecord, new: SweepRecord) -> Changes:
    """The changes from ``old`` to ``new`` (see the module's rules)."""
    in_old, in_new = _covers(old), _covers(new)
    d = sweep_diff.diff(old, new)
    out = Changes(site, new.id, old.id, new.vantage, new.mode, old.mode)
    out.new_devices = [a for a in d.new_devices if in_old(a)]
    out.gone_devices = [a for a in d.vanished_devices if in_new(a)]
    outside = {a for a in d.new_devices if not in_old(a)}
    out.not_compared = len(outside) + sum(1 for a in d.vanished_devices if not in_new(a))
    judged_before = {f.check_id for f in old.findings if f.status != Status.INFO}
    now = {h.address: h for h in new.hosts}
    judged_here = {(f.address, f.check_id) for f in new.findings if f.status != Status.INFO}
    fresh = set(out.new_devices)
    for f in d.new_findings:
        if f.status != Status.FAIL or f.address in outside:
            continue
        if f.address in fresh or f.check_id in judged_before:
            out.newly_failing.append(f)
        else:
            out.first_judged += 1
    for o, n in d.changed:
        if n.status == Status.FAIL:
            (out.confirmed if o.status == Status.INCONCLUSIVE else out.newly_failing).append(n)
        elif o.status == Status.FAIL and n.status == Status.PASS:
            out.resolved.append(n)
        elif o.status == Status.FAIL and n.status == Status.INCONCLUSIVE:
            out.unverified.append(n)
    judged_now = {check for _address, check in judged_here}
    for f in d.resolved:  # a failure with no finding now
        if f.status != Status.FAIL or f.check_id not in judged_now:
            continue  # not a change of the device: this sweep did not run that check (its mode)
        host = now.get(f.address)
        judged = host is not None and host.state == "up" and (f.address, f.check_id) in judged_here
        (out.resolved if judged else out.unverified).append(f)
    for found in (out.newly_failing, out.resolved, out.unverified, out.confirmed):
        found.sort(key=lambda f: f.key)
    return out


def _line(f: Finding, lang: str) -> str:
    entry = catalog().get(f.check_id)
    title = entry.title[lang] if entry else f.check_id
    where = f.address + (f" {f.service}" if f.service else "")
    return f"- {where} {f.check_id} [{f.severity}] {title}"


def compose(c: Changes, lang: str) -> tuple[str, str]:
    """The subject and the text of an alert."""
    t = TEXT[lang]
    counts = [t[k].format(n=n) for k, n in c.counts().items() if n]
    subject = t["subject"].format(site=c.site, counts=t["sep"].join(counts) or t["nothing"])
    lines = [t["head"].format(**vars(c))]
    if c.first_judged:
        lines.append(t["first"].format(n=c.first_judged))
    if c.not_compared:
        lines.append(t["scope"].format(n=c.not_compared))
    budget = MAX_LINES
    for key in ("newly_failing", "resolved", "unverified", "confirmed"):
        items: list[Finding] = sorted(getattr(c, key), key=lambda f: (-f.severity.rank, f.address, f.check_id))
        if not items:
            continue
        lines += ["", t[f"sec_{key}"]]
        shown = items[: max(budget, 0)]
        lines += [_line(f, lang) for f in shown]
        budget -= len(shown)
        if len(items) > len(shown):
            lines.append(t["more"].format(n=len(items) - len(shown)))
    for key in ("new_devices", "gone_devices"):
        if getattr(c, key):
            lines += ["", t[f"sec_{key}"], "  " + ", ".join(getattr(c, key))]
    return subject, "\n".join(lines)


def body(c: Changes) -> dict[str, Any]:
    """The JSON a webhook carries beside its text: every change, findings as report.json has them (masked)."""
    return {
        "site": c.site,
        "sweep": c.sweep,
        "previous": c.previous,
        "vantage": c.vantage,
        "counts": c.counts(),
        "first_judged": c.first_judged,
        "not_compared": c.not_compared,
        "newly_failing": [finding_json(f, show_secrets=False) for f in c.newly_failing],
        "resolved": [finding_json(f, show_secrets=False) for f in c.resolved],
        "unverified": [finding_json(f, show_secrets=False) for f in c.unverified],
        "confirmed": [finding_json(f, show_secrets=False) for f in c.confirmed],
        "new_devices": c.new_devices,
        "gone_devices": c.gone_devices,
    }
