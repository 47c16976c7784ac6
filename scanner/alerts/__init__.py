"""Alerts on change: after a site's sweep, tell its ``[[notify]]`` channels what changed.

The sweep is compared with the site's previous complete sweep of the same command and vantage
(scanner.alerts.changes): newly failing, resolved, no longer verified, devices new and gone.
Nothing is sent when nothing changed (unless a channel says ``always``), for the first sweep
of a site, or for an interrupted sweep (its missing hosts would read as gone).

Delivery never fails or loses the sweep: the sweep is recorded and its reports written before
this stage runs; an alert that still fails after its retries is kept in the history's outbox
and tried again, oldest first, after the site's next sweep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from profiles.errors import EdgeAuditError
from scanner.alerts.changes import Changes, body, compare, compose
from scanner.alerts.channels import Channel, DeliveryError, deliver
from scanner.store import Store, SweepRecord

__all__ = ["Changes", "Channel", "after_sweep", "compare", "compose"]

log = logging.getLogger("edgeaudit")


def after_sweep(store: Store, record: SweepRecord) -> list[str]:
    """Run the alert stage of a recorded sweep; the lines to print. Never raises."""
    section: dict[str, Any] = record.config.get("site") or {}
    if not section.get("notify"):
        return []
    try:
        channels = [Channel.from_json(c) for c in section["notify"]]
        return asyncio.run(_run(store, record, str(section["name"]), channels))
    except (EdgeAuditError, OSError) as exc:
        return [f"alerts not sent: {exc}"]
    except Exception as exc:  # a bug here must not cost the sweep: it is recorded, its reports are written
        log.debug("alert stage failed", exc_info=True)
        return [f"alerts not sent: internal error {type(exc).__name__}: {exc} (a bug; -vv shows the traceback)"]


async def _run(store: Store, record: SweepRecord, site: str, channels: list[Channel]) -> list[str]:
    lines = await _retry_queued(store, site)
    if record.state != "complete":
        return [*lines, f"sweep {record.state}: no comparison, no alert (alerts compare complete sweeps)"]
    previous = store.previous_of_site(record.id, site)
    if previous is None:
        return [*lines, f"first {record.vantage} {record.command} of site {site!r}: nothing to compare with yet"]
    changes = compare(site, store.load(previous), record)
    for channel in channels:
        if changes.empty and not channel.always:
            lines.append(f"{channel.target.label}: no change since {previous}, nothing sent")
            continue
        subject, text = compose(changes, channel.lang)
        payload = body(changes)
        message = {"subject": subject, "text": text, "body": payload}
        try:
            tries = await deliver(channel, subject, text, payload)
            lines.append(f"{channel.target.label}: sent ({subject}; {tries} tr{'y' if tries == 1 else 'ies'})")
        except DeliveryError as exc:
            store.queue_alert(site, record.id, channel.to_json(), message, str(exc), channel.retries + 1)
            lines.append(f"{channel.target.label}: not delivered: {exc}; kept, tried again after the next sweep")
    return lines


# An alert kept in the outbox is tried once after each sweep, and given up after this many tries
# or this many days (it would tell of a state long gone).
MAX_QUEUED_TRIES = 20
MAX_QUEUED_DAYS = 14


async def _retry_queued(store: Store, site: str) -> list[str]:
    lines = []
    down: set[str] = set()  # a channel that failed once in this stage is not tried again in it
    for queued in store.pending_alerts(site):
        try:
            channel = dataclasses.replace(Channel.from_json(queued["channel"]), retries=0)
        except (KeyError, TypeError, ValueError):
            store.alert_tried(queued["id"], None, 0)  # an entry this version cannot read: dropped, and said
            lines.append(f"dropped an unreadable kept alert of sweep {queued['sweep']}")
            continue
        age_days = (time.time() - queued["created_at"]) / 86400
        if queued["tries"] >= MAX_QUEUED_TRIES or age_days > MAX_QUEUED_DAYS:
            store.alert_tried(queued["id"], None, 0)
            lines.append(f"{channel.target.label}: gave up the alert of sweep {queued['sweep']} after "
                         f"{queued['tries']} tries over {age_days:.0f} day(s): {queued['error']}")  # fmt: skip
            continue
        if channel.target.label in down:
            continue
        m = queued["message"]
        try:
            await deliver(channel, m["subject"], m["text"], m["body"])
            store.alert_tried(queued["id"], None, 1)
            lines.append(f"{channel.target.label}: sent the alert kept from sweep {queued['sweep']}")
        except DeliveryError as exc:
            down.add(channel.target.label)
            store.alert_tried(queued["id"], str(exc), 1)
            lines.append(f"{channel.target.label}: the alert of sweep {queued['sweep']} still not delivered: {exc}")
    return lines
