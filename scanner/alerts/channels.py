"""Where alerts go: a site file's ``[[notify]]`` tables, checked, and their delivery.

``type = "webhook"``: an HTTP(S) POST of a JSON body whose ``text`` field is what Slack- and
Teams-style incoming webhooks display (the other fields carry the changes for a program).
``type = "email"``: SMTP with STARTTLS (``tls = "starttls"``, port 587, the default), implicit
TLS (``"ssl"``, 465) or none (``"none"``, then no login: a password never travels in clear).
The password comes from an environment variable (``password-env``) or a file
(``password-file``), never from the site file itself.

Both go through the standard library (urllib, smtplib) on a thread: the engine side imports no
protocol library (the probes own those). Each delivery has a deadline per try and is tried
again with exponential backoff; what still fails is raised as DeliveryError for the caller to
queue (scanner.alerts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import re
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from profiles.errors import EdgeAuditError
from scanner.tomllines import Lines

LANGS = ("ja", "en")
TLS = ("starttls", "ssl", "none")


class DeliveryError(EdgeAuditError):
    """An alert could not be delivered (the reason is the message)."""


@dataclass(frozen=True)
class Webhook:
    """A JSON POST to a URL."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """Where it goes, without the URL's path (a webhook URL is itself a secret)."""
        parts = urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


@dataclass(frozen=True)
class Email:
    """A mail through an SMTP server."""

    host: str
    to: tuple[str, ...]
    sender: str
    port: int = 587
    tls: str = "starttls"
    user: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    cafile: str | None = None

    @property
    def label(self) -> str:
        """Which server and mailboxes."""
        return f"email {self.host}:{self.port} to {', '.join(self.to)}"


@dataclass(frozen=True)
class Channel:
    """One ``[[notify]]`` table: where, in which language, when, and how hard to try."""

    target: Webhook | Email
    lang: str = "en"
    always: bool = False  # also when nothing changed (a heartbeat of the schedule)
    timeout: float = 10.0  # seconds, each try
    retries: int = 3  # tries after the first
    backoff: float = 2.0  # seconds before the first retry, doubled each time

    def to_json(self) -> dict[str, Any]:
        """JSON form, for the sweep's record and the outbox (no secret: passwords are by reference)."""
        data = dataclasses.asdict(self)
        data["type"] = "webhook" if isinstance(self.target, Webhook) else "email"
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Channel:
        """Inverse of to_json."""
        t = dict(data["target"])
        target: Webhook | Email
        if data["type"] == "webhook":
            target = Webhook(t["url"], tuple((str(k), str(v)) for k, v in t.get("headers", ())))
        else:
            target = Email(**{**t, "to": tuple(t["to"])})
        fields = {f.name for f in dataclasses.fields(cls)} - {"target"}
        return cls(target, **{k: v for k, v in data.items() if k in fields})


# key -> (what it is, check) for each type; `lang`, `always`, `timeout`, `retries`, `backoff` for all.
_COMMON = {"type", "lang", "always", "timeout", "retries", "backoff"}
_KEYS = {
    "webhook": {"url", "headers"},
    "email": {"host", "port", "tls", "user", "password-env", "password-file", "from", "to", "cafile"},
}


def parse(tables: tuple[dict[str, Any], ...], lines: Lines, base: Path, lang: str) -> tuple[Channel, ...]:
    """The ``[[notify]]`` tables of a site file, checked; errors name the file, table, key and line."""
    return tuple(_parse_one(i, t, lines, base, lang) for i, t in enumerate(tables))


def _parse_one(i: int, t: dict[str, Any], lines: Lines, base: Path, lang: str) -> Channel:
    def err(key: str, problem: str) -> EdgeAuditError:
        return lines.error(("notify", i, key), problem)

    def get(key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = t.get(key, default)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool)):
            raise err(key, f"has the wrong type ({type(value).__name__})")
        return value

    kind = t.get("type")
    if kind not in _KEYS:
        raise err("type", f"must be one of {', '.join(_KEYS)}, not {kind!r}")
    for key in t:
        if key not in _COMMON | _KEYS[kind]:
            raise err(key, f"unknown key of a {kind} notification (keys: {', '.join(sorted(_COMMON | _KEYS[kind]))})")
    for key in ("url", "host", "from", "user", "password-env", "password-file", "cafile"):
        if isinstance(t.get(key), str) and not _one_line(t[key]):
            raise err(key, "must be one line of printable text")
    chosen = get("lang", str, lang)
    if chosen not in LANGS:
        raise err("lang", f"must be one of {', '.join(LANGS)}, not {chosen!r}")
    timeout, retries, backoff = (
        get("timeout", (int, float), 10.0),
        get("retries", int, 3),
        get("backoff", (int, float), 2.0),
    )
    for key, value, low, high in (
        ("timeout", timeout, 0.1, 120),
        ("retries", retries, 0, 10),
        ("backoff", backoff, 0, 300),
    ):
        if not (math.isfinite(value) and low <= value <= high):
            raise err(key, f"must be from {low:g} to {high:g}, not {value!r}")
    target: Webhook | Email
    if kind == "webhook":
        url = get("url", str)
        parts = urlsplit(url or "")
        try:
            parts.port  # noqa: B018 (urlsplit checks the port when it is read)
        except ValueError:
            raise err("url", "has a port that is not 1-65535") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url or ""):
            raise err("url", "needs an http:// or https:// URL with no space in it")  # the URL is a secret: not echoed
        headers = get("headers", dict, {})
        for name, value in headers.items():
            if not _TOKEN.fullmatch(name) or not isinstance(value, str) or not _one_line(value):
                raise err("headers", f"{name!r}: a header name is a token and its value one line of text")
        target = Webhook(url, tuple(sorted(headers.items())))
    else:
        host, sender = get("host", str), get("from", str)
        to = get("to", (str, list))
        to = [to] if isinstance(to, str) else to
        if not host or not sender or not to or not all(isinstance(a, str) and "@" in a for a in to):
            missing = "host" if not host else "from" if not sender else "to"
            raise err(missing, "is needed (to: one address or a list of addresses)")
        tls = get("tls", str, "starttls")
        if tls not in TLS:
            raise err("tls", f"must be one of {', '.join(TLS)}, not {tls!r}")
        user, pw_env, pw_file = get("user", str), get("password-env", str), get("password-file", str)
        if user and tls == "none":
            raise err("user", 'a login needs tls = "starttls" or "ssl" (the password would cross in clear)')
        if user and not (pw_env or pw_file):
            raise err("user", "needs password-env or password-file")
        cafile = get("cafile", str)
        target = Email(
            host,
            tuple(to),
            sender,
            port=_port(err, get("port", int, 465 if tls == "ssl" else 587)),
            tls=tls,
            user=user,
            password_env=pw_env,
            password_file=str(base / Path(pw_file).expanduser()) if pw_file else None,
            cafile=str(base / Path(cafile).expanduser()) if cafile else None,
        )
    return Channel(target, chosen, bool(get("always", bool, False)), float(timeout), retries, float(backoff))


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 header field names


def _one_line(text: str) -> bool:
    return bool(text) and all(c.isprintable() for c in text)


def _port(err: Callable[[str, str], EdgeAuditError], port: int) -> int:
    if not 0 < port < 65536:
        raise err("port", f"must be 1-65535, not {port}")
    return port


async def deliver(channel: Channel, subject: str, text: str, body: dict[str, Any]) -> int:
    """Send one alert, trying again with backoff; the number of tries it took, or DeliveryError."""
    last: DeliveryError | None = None
    for attempt in range(channel.retries + 1):
        if attempt:
            await asyncio.sleep(channel.backoff * 2 ** (attempt - 1))
        try:
            # urllib and smtplib block: on a thread, each socket operation bounded by the timeout, the whole too
            if isinstance(channel.target, Webhook):
                payload = {"text": f"{subject}\n{text}", **body}
                await asyncio.wait_for(asyncio.to_thread(_post, channel.target, payload, channel.timeout),
                                       channel.timeout * 4)  # fmt: skip
            else:
                password = _password(channel.target)
                await asyncio.wait_for(
                    asyncio.to_thread(_mail, channel.target, channel.timeout, subject, text, password),
                    channel.timeout * 4,
                )
            return attempt + 1
        except DeliveryError as exc:
            last = exc
        except TimeoutError:
            last = DeliveryError(f"no answer within {channel.timeout * 4:g} s")
        except Exception as exc:  # any other failure of one try (a malformed reply...): a failed try, named by type
            last = DeliveryError(type(exc).__name__)
    assert last is not None
    raise DeliveryError(f"{last} (after {channel.retries + 1} tries)")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that answers with a redirect has not taken the alert: say so, do not POST elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(hook: Webhook, body: dict[str, Any], deadline: float) -> None:
    """POST the JSON body (blocking: called on a thread; the socket operations bounded by ``deadline``)."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "edgeaudit", **dict(hook.headers)}
    request = urllib.request.Request(hook.url, data=data, headers=headers, method="POST")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=deadline) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code}") from exc  # the reason phrase is the server's text: not echoed
    except urllib.error.URLError as exc:
        reason = exc.reason
        why = f"{type(reason).__name__}: {reason.strerror}" if isinstance(reason, OSError) else type(reason).__name__
        raise DeliveryError(why) from exc
    except OSError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc.strerror or ''}".rstrip(": ")) from exc
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")


def _password(mail: Email) -> str | None:
    if not mail.user:
        return None
    if mail.password_env:
        value = os.environ.get(mail.password_env)
        if value is None:
            raise DeliveryError(f"password-env: ${mail.password_env} is not set")
        return value
    assert mail.password_file is not None
    try:
        return Path(mail.password_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DeliveryError(f"password-file {mail.password_file}: {exc.strerror or exc}") from exc


def _mail(mail: Email, timeout: float, subject: str, text: str, password: str | None) -> None:
    try:
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, mail.sender, ", ".join(mail.to)
        msg.set_content(text)  # UTF-8: a Japanese body as it is
        context = ssl.create_default_context(cafile=mail.cafile)
        smtp: smtplib.SMTP
        if mail.tls == "ssl":
            smtp = smtplib.SMTP_SSL(mail.host, mail.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(mail.host, mail.port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if mail.tls == "starttls":
                smtp.starttls(context=context)  # refuses a server without STARTTLS: no fallback to clear
                smtp.ehlo()
            if mail.user:
                assert password is not None
                smtp.login(mail.user, password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    except (ValueError, UnicodeError) as exc:  # a header or a password the protocol cannot carry
        raise DeliveryError(type(exc).__name__) from exc
