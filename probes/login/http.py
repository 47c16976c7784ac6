"""HTTP(S) logins: Basic/Digest where `GET /` challenged, forms where the profile describes them.

Success is never judged by a 200 alone. Basic/Digest: the service must have
answered 401 with a challenge (HttpInfo) and the candidate's request must get
neither 401 nor 403. Forms: the matched profile's ``http_login`` says where to
POST which fields, and what a success looks like (status plus a Location or
body match; a failure text overrides). In both, a random user goes first (the
engine's baseline): a device that accepts anything (soft-404 pages, "login"
forms that take everything) is reported as such, and nothing else is trusted.
429 and a profile's lockout text stop the series.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, import_off_loop, register
from probes.http import LIBRARIES, client, map_httpx, read_body
from probes.login import Candidate, run_series
from probes.observations import HttpInfo, Observation, Risk, Service
from profiles.errors import LockedOut, MalformedResponse

if TYPE_CHECKING:
    import httpx

MAX_BODY = 16_384


def _form_success(form: dict[str, Any], status: int, location: str, body: bytes) -> bool:
    """A form login worked: the profile's status, and its Location/body match, and no failure text."""
    text = body.decode("utf-8", errors="replace")
    if form.get("failure_body") and re.search(form["failure_body"], text):
        return False
    if status not in form["success_status"]:
        return False
    if form.get("success_location") and not re.search(form["success_location"], location):
        return False
    return not (form.get("success_body") and not re.search(form["success_body"], text))


@register
class HttpLogin(Probe):
    """Basic/Digest logins on challenged HTTP(S) services."""

    name = "http-login"
    risk = Risk.CREDENTIAL
    phase = Phase.ASSESS
    services = frozenset({"http", "https"})
    description = "Capped HTTP Basic/Digest logins where challenged; form logins as the profile describes them"
    deadline_s: ClassVar[float | None] = 40.0
    imports = LIBRARIES

    def __init__(self) -> None:
        self._schemes: dict[Service, str] = {}

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Challenged services (Basic/Digest), and login forms when the profile describes its form."""
        form_known = bool(host.profile and host.profile.http_login)
        for o in host.observations:
            if not isinstance(o, HttpInfo) or o.service is None:
                continue
            if o.status == 401 and o.auth_scheme in ("basic", "digest"):
                self._schemes[o.service] = o.auth_scheme
            elif o.login_form and form_known:
                self._schemes[o.service] = "form"
        return sorted(self._schemes)

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Run the capped series with one client."""
        assert target.service is not None
        tls = target.service.name == "https"
        host = f"[{target.address}]" if ":" in target.address else target.address
        url = f"{'https' if tls else 'http'}://{host}:{target.service.port}/"
        scheme = self._schemes.get(target.service, "basic")
        form = ctx.profile.http_login if ctx.profile and scheme == "form" else {}
        lock_texts = [t.encode() for t in (ctx.profile.lockout_texts if ctx.profile else ())]
        await import_off_loop(LIBRARIES, ctx)
        import httpx

        timeout = httpx.Timeout(ctx.timeouts.read, connect=ctx.timeouts.connect)
        async with client(tls, timeout) as http:

            async def attempt(cand: Candidate) -> bool:
                try:
                    # Streamed, the body read with a cap on its decoded size: a refusal page may be a gzip bomb.
                    if form:
                        fields = {**form.get("extra_fields", {}), form["user_field"]: cand.username}
                        fields[form["pass_field"]] = cand.password
                        request = http.stream(
                            "POST", url.rstrip("/") + form["path"], data=fields, timeout=ctx.budget(ctx.timeouts.read)
                        )
                    else:
                        auth: httpx.Auth = (
                            httpx.DigestAuth(cand.username, cand.password)
                            if scheme == "digest"
                            else httpx.BasicAuth(cand.username, cand.password)
                        )
                        request = http.stream("GET", url, auth=auth, timeout=ctx.budget(ctx.timeouts.read))
                    async with request as response:
                        body = await read_body(response, MAX_BODY)
                except httpx.HTTPError as exc:
                    raise map_httpx(exc, f"GET {url}") from exc
                except ssl.SSLError as exc:
                    raise MalformedResponse(f"GET {url}: TLS error {exc.reason}") from exc
                if response.status_code == 429 or any(t in body.lower() for t in lock_texts):
                    raise LockedOut(f"http: status {response.status_code}")
                if form:
                    return _form_success(form, response.status_code, response.headers.get("location", ""), body)
                return response.status_code not in (401, 403) and response.status_code < 500

            return [await run_series("http", target, ctx, attempt)]
