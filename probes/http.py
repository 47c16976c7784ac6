"""HTTP(S) fingerprint: GET / without following redirects, bounded body read.

httpx is imported here and in probes/login/http.py only, and only when a probe talks HTTP: a
sweep that runs none (``discover``) never loads it (about 50 ms). Certificates are not verified (devices
ship self-signed ones); the peer certificate's SHA-256 is recorded instead so
that a changed or shared certificate can be seen.
"""

from __future__ import annotations

import functools
import hashlib
import re
import ssl
import zlib
from typing import TYPE_CHECKING, Any

from probes import clock
from probes.base import Probe, ProbeContext, ProbeTarget, import_off_loop, register
from probes.observations import HttpInfo, Observation
from profiles.errors import MalformedResponse, ProbeError, Refused, Timeout, Unreachable

if TYPE_CHECKING:
    import httpx

MAX_BODY = 65_536
# the attributes' match is bounded too: '[^>]*' made '<title' * 10,922 (64 KiB) cost 0.47 s of the event loop
TITLE_RE = re.compile(rb"<title[^>]{0,512}>(.{0,512}?)</title>", re.IGNORECASE | re.DOTALL)
PASSWORD_INPUT_RE = re.compile(rb"<input[^>]{0,400}type\s*=\s*[\"']?password", re.IGNORECASE)
USER_AGENT = "edgeaudit/0.1 (+hardening scanner)"
# httpx, and the transport it imports on its first request (about 70 ms more): for every probe that talks HTTP.
LIBRARIES = ("httpx", "httpcore", "h11", "anyio._backends._asyncio", "certifi")


def map_httpx(exc: httpx.HTTPError, what: str) -> ProbeError:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"{what}: timed out")
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text:
            return Refused(f"{what}: connection refused")
        if "ssl" in text or "tls" in text or "handshake" in text:
            return MalformedResponse(f"{what}: TLS handshake failed: {exc}")
        return Unreachable(f"{what}: {exc}")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return MalformedResponse(f"{what}: {exc}")
    return Unreachable(f"{what}: {exc}")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # One per process: building it loads the CA store (about 40 ms of CPU, on the event loop) although
    # nothing is verified, and a context is safe to share between connections.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # Old device firmware: let the handshake succeed so we can report on it.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    return ctx


def client(tls: bool, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """The one way edgeaudit talks HTTP(S): no redirects, no proxies from the environment,
    certificates not verified (devices ship self-signed ones; old TLS still allowed)."""
    import httpx

    return httpx.AsyncClient(
        verify=_ssl_context() if tls else False,
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )


MAX_RAW = 8 * 1024 * 1024  # raw bytes read for one body at most, whatever it inflates to


async def read_body(response: httpx.Response, limit: int = MAX_BODY) -> bytes:
    """The body of a streamed response, decoded (gzip, deflate) up to ``limit`` bytes: never more is inflated
    or kept, so a body that inflates a thousandfold costs ``limit`` (a 401 page as a gzip bomb)."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    inflate = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "x-gzip", "deflate") else None
    out = bytearray()
    raw = 0
    async for chunk in response.aiter_raw():
        raw += len(chunk)
        if inflate is None:
            out += chunk[: limit - len(out)]
        else:
            try:
                out += inflate.decompress(chunk, limit - len(out))
            except zlib.error as exc:
                if encoding == "deflate" and raw == len(chunk):  # raw deflate without the zlib header, as some send
                    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                    out += inflate.decompress(chunk, limit - len(out))
                else:
                    raise MalformedResponse(f"{encoding} body does not inflate: {exc}") from exc
        if len(out) >= limit or raw >= MAX_RAW:
            break
    return bytes(out)


async def fetch(
    url: str,
    ctx: ProbeContext,
    limit: int = MAX_BODY,
    *,
    method: str = "GET",
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One bounded request (a GET unless told) to a URL (status, decoded body cut at ``limit``); no redirects."""
    await import_off_loop(LIBRARIES, ctx)
    import httpx

    timeout = httpx.Timeout(ctx.budget(ctx.timeouts.read), connect=ctx.budget(ctx.timeouts.connect))
    tls = url.lower().startswith("https:")
    try:
        async with (
            client(tls, timeout) as http,
            http.stream(method, url, content=content, headers=headers) as response,
        ):
            body = await read_body(response, limit)
    except httpx.HTTPError as exc:
        raise map_httpx(exc, f"{method} {url}") from exc
    except ssl.SSLError as exc:
        raise MalformedResponse(f"{method} {url}: TLS error {exc.reason}") from exc
    return response.status_code, body


def _cert_sha256(response: httpx.Response) -> str | None:
    stream: Any = response.extensions.get("network_stream")
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


def parse_auth(header: str | None) -> tuple[str | None, str | None]:
    """(scheme, realm) from a WWW-Authenticate header."""
    if not header:
        return None, None
    scheme = header.strip().split(" ", 1)[0].lower() or None
    m = re.search(r'realm\s*=\s*"([^"]{0,200})"', header, re.IGNORECASE)
    return scheme, (m.group(1) if m else None)


def parse_title(body: bytes) -> str | None:
    """Text of the first <title>, whitespace folded, bounded."""
    m = TITLE_RE.search(body)
    if not m:
        return None
    return " ".join(m.group(1).decode("utf-8", errors="replace").split())[:200] or None


@register
class HttpProbe(Probe):
    """GET / on each HTTP and HTTPS service."""

    name = "http"
    imports = LIBRARIES
    services = frozenset({"http", "https"})
    description = "GET / : Server, title, auth challenge, redirect, login form, certificate"

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """One bounded GET, no redirects followed."""
        assert target.service is not None
        tls = target.service.name == "https"
        host = f"[{target.address}]" if ":" in target.address else target.address
        url = f"{'https' if tls else 'http'}://{host}:{target.service.port}/"
        await import_off_loop(LIBRARIES, ctx)
        import httpx

        timeout = httpx.Timeout(ctx.budget(ctx.timeouts.read), connect=ctx.budget(ctx.timeouts.connect))
        what = f"GET {url}"
        try:
            async with client(tls, timeout) as http:
                sent_at = clock.now()
                async with http.stream("GET", url) as response:
                    received_at = clock.now()
                    body = await read_body(response)
                    cert = _cert_sha256(response) if tls else None
        except httpx.HTTPError as exc:
            raise map_httpx(exc, what) from exc
        except ssl.SSLError as exc:
            raise MalformedResponse(f"{what}: TLS error {exc.reason}") from exc
        scheme, realm = parse_auth(response.headers.get("www-authenticate"))
        location = response.headers.get("location")
        out: list[Observation] = []
        date = response.headers.get("date")
        if date:
            try:
                device_time = clock.parse_http_date(date)
            except MalformedResponse:
                pass  # a malformed Date says nothing about the clock; the text stays in HttpInfo
            else:
                out.append(clock.reading(target.service, "http-date", device_time, sent_at, received_at, 1.0))
        return [
            HttpInfo(
                target.service,
                tls=tls,
                status=response.status_code,
                server=response.headers.get("server"),
                title=parse_title(body),
                auth_scheme=scheme,
                realm=realm,
                location=location,
                redirects_to_https=bool(
                    300 <= response.status_code < 400 and location and location.lower().startswith("https://")
                ),
                login_form=bool(PASSWORD_INPUT_RE.search(body)),
                date=date,
                cert_sha256=cert,
            ),
            *out,
        ]
