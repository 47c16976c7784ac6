"""HTTP(S) Basic and Digest logins on services whose `GET /` asked for them.

Success is judged against the challenge, never by a 200 alone: the service
must have answered 401 with a Basic/Digest challenge (HttpInfo), a random user
must be refused (the engine's baseline: a device that accepts anything is
flagged as such and nothing else is trusted), and the candidate's request must
get neither 401 nor 403. 429 and a profile's lockout text stop the series.
Form logins need a profile's login description and are not tried here.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import ClassVar

import httpx

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, register
from probes.http import USER_AGENT, _map_httpx, _ssl_context
from probes.login import Candidate, run_series
from scanner.errors import LockedOut, MalformedResponse
from scanner.model import HttpInfo, Observation, Risk, Service

MAX_BODY = 16_384


@register
class HttpLogin(Probe):
    """Basic/Digest logins on challenged HTTP(S) services."""

    name = "http-login"
    risk = Risk.CREDENTIAL
    phase = Phase.ASSESS
    services = frozenset({"http", "https"})
    description = "Capped HTTP Basic/Digest logins where the device challenges for them"
    deadline_s: ClassVar[float | None] = 40.0

    def __init__(self) -> None:
        self._schemes: dict[Service, str] = {}

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """Only services that answered GET / with a Basic or Digest challenge (their scheme is kept)."""
        for o in host.observations:
            challenged = isinstance(o, HttpInfo) and o.status == 401 and o.auth_scheme in ("basic", "digest")
            if challenged and o.service is not None:
                assert isinstance(o, HttpInfo) and o.auth_scheme is not None
                self._schemes[o.service] = o.auth_scheme
        return sorted(self._schemes)

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Run the capped series with one client."""
        assert target.service is not None
        tls = target.service.name == "https"
        host = f"[{target.address}]" if ":" in target.address else target.address
        url = f"{'https' if tls else 'http'}://{host}:{target.service.port}/"
        digest = self._schemes.get(target.service) == "digest"
        lock_texts = [t.encode() for t in (ctx.profile.lockout_texts if ctx.profile else ())]
        timeout = httpx.Timeout(ctx.timeouts.read, connect=ctx.timeouts.connect)
        async with httpx.AsyncClient(
            verify=_ssl_context() if tls else False,
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        ) as client:

            async def attempt(cand: Candidate) -> bool:
                auth: httpx.Auth = (
                    httpx.DigestAuth(cand.username, cand.password)
                    if digest
                    else httpx.BasicAuth(cand.username, cand.password)
                )
                try:
                    response = await client.get(url, auth=auth, timeout=ctx.budget(ctx.timeouts.read))
                    body = response.content[:MAX_BODY]
                except httpx.HTTPError as exc:
                    raise _map_httpx(exc, f"GET {url}") from exc
                except ssl.SSLError as exc:
                    raise MalformedResponse(f"GET {url}: TLS error {exc.reason}") from exc
                if response.status_code == 429 or any(t in body.lower() for t in lock_texts):
                    raise LockedOut(f"http: status {response.status_code}")
                return response.status_code not in (401, 403) and response.status_code < 500

            return [await run_series("http", target, ctx, attempt)]
