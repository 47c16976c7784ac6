"""A device's clock as other protocols show it: strict, bounded parsers.

HTTP ``Date`` (RFC 9110 IMF-fixdate) and SIP ``Date`` (RFC 3261 SIP-date, the
RFC 1123 form in GMT) share one grammar; SNMP ``hrSystemDate`` is a
DateAndTime octet string (RFC 2579). Anything else is MalformedResponse: a
device's clock is only read from text that says exactly one instant.
"""

from __future__ import annotations

import calendar
import re
import time

from probes.observations import ClockReading, Service
from profiles.errors import MalformedResponse

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_IMF_FIXDATE = re.compile(
    r"(?P<wkday>[A-Z][a-z]{2}), (?P<day>\d{2}) (?P<month>[A-Z][a-z]{2}) (?P<year>\d{4}) "
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2}) GMT",
    re.ASCII,  # RFC 5234 DIGIT: without it \d took any script's digits ('Sun, ٠٦ Nov 1994 ...' was a date)
)
MAX_DATE_TEXT = 64


def parse_http_date(text: str) -> float:
    """Unix time of an IMF-fixdate / SIP-date such as ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    if len(text) > MAX_DATE_TEXT:
        raise MalformedResponse(f"date of {len(text)} characters")
    m = _IMF_FIXDATE.fullmatch(text.strip())
    if not m:
        raise MalformedResponse(f"not an RFC 1123 GMT date: {text[:40]!r}")
    if m["wkday"] not in _DAYS or m["month"] not in _MONTHS:
        raise MalformedResponse(f"unknown day or month name in {text[:40]!r}")
    fields = (
        int(m["year"]),
        _MONTHS.index(m["month"]) + 1,
        int(m["day"]),
        int(m["hour"]),
        int(m["minute"]),
        int(m["second"]),
    )
    return _unix(fields, m["wkday"])


def parse_date_and_time(raw: bytes) -> float:
    """Unix time of an SNMP DateAndTime (8 octets local time, or 11 with the UTC offset)."""
    if len(raw) not in (8, 11):
        raise MalformedResponse(f"DateAndTime of {len(raw)} octets, need 8 or 11")
    year = int.from_bytes(raw[0:2], "big")
    month, day, hour, minute, second, deci = raw[2:8]
    if deci > 9:
        raise MalformedResponse("DateAndTime deci-seconds out of range")
    unix = _unix((year, month, day, hour, minute, min(second, 60)), None) + deci / 10
    if len(raw) == 11:
        direction, hours, minutes = chr(raw[8]), raw[9], raw[10]
        if direction not in "+-" or hours > 14 or minutes > 59:
            raise MalformedResponse("DateAndTime UTC offset out of range")
        offset = (hours * 3600 + minutes * 60) * (1 if direction == "+" else -1)
        unix -= offset  # local time minus its offset from UTC is UTC
    return unix


def _unix(fields: tuple[int, int, int, int, int, int], wkday: str | None) -> float:
    year, month, day, hour, minute, second = fields
    if not (1970 <= year <= 9999 and 1 <= month <= 12 and 0 <= hour <= 23 and 0 <= minute <= 59 and second <= 60):
        raise MalformedResponse(f"date field out of range: {fields}")
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise MalformedResponse(f"no day {day} in {year}-{month:02d}")
    if wkday is not None and _DAYS[calendar.weekday(year, month, day)] != wkday:
        raise MalformedResponse(f"{wkday} is not the weekday of {year}-{month:02d}-{day:02d}")
    return float(calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0)))


def reading(
    service: Service | None, source: str, device_time: float, sent_at: float, received_at: float, resolution: float
) -> ClockReading:
    """The device's clock offset from ours, with the uncertainty of one request/response.

    The device stamped its time somewhere between our send and our receipt, and
    truncated it to ``resolution``; the midpoint is the best guess.
    """
    midpoint = (sent_at + received_at) / 2
    offset = device_time + resolution / 2 - midpoint
    uncertainty = resolution / 2 + (received_at - sent_at) / 2
    return ClockReading(service, source=source, offset_s=round(offset, 3), uncertainty_s=round(uncertainty, 3))


def now() -> float:
    """The scanner's clock (one place, so tests and probes agree on which clock)."""
    return time.time()
