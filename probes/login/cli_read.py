"""Authenticated mode: a profile's allowlisted read-only commands over SSH, read into config facts.

Runs only for hosts the operator's --auth-file names (host, range or profile)
and whose profile declares read-only commands. One login per sweep, under the
login engine's per-account cap and pacing; each command runs in its own exec
channel with a bounded read. A command that is not read-only in shape is never
sent (checked at profile load and again here).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from probes.base import HostSnapshot, Phase, Probe, ProbeConfig, ProbeContext, ProbeTarget, map_errors, register
from probes.login import account_cap, assess_password, auth, capped_attempt, extended_list, generic_list
from probes.login.auth import AuthOptions
from probes.login.ssh import ssh_login
from probes.observations import ConfigFacts, Observation, Risk, Service, WifiNetwork
from probes.wifi import config as wifi_config
from profiles import BOOL_FACTS, LIST_FACTS, ReadOnlyCommand, is_read_only
from profiles.errors import AuthRejected, ProbeError, Unreachable

MAX_OUTPUT = 256 * 1024  # per command
LIST_ITEM = re.compile(r"[^\s,'\"]+")


def extract(outputs: Sequence[tuple[ReadOnlyCommand, str]]) -> tuple[dict[str, Any], list[str]]:
    """Facts from command outputs, by the profile's rules, and the commands whose output counted.

    Only outputs that match the command's ``valid`` pattern (when it has one)
    count. A boolean or text fact takes the first rule that matches, in command
    order. A list fact unions every match; it is known (possibly empty) once a
    valid command that has a rule for it answered.
    """
    facts: dict[str, Any] = {}
    lists: dict[str, list[str]] = {}
    answered: list[str] = []
    for command, text in outputs:
        if command.valid is not None and not command.valid.search(text):
            continue
        answered.append(command.command)
        for rule in command.facts:
            if rule.fact in LIST_FACTS:
                found = lists.setdefault(rule.fact, [])
                for m in rule.regex.finditer(text):
                    # one match may list several items (uci: option='a' 'b'): blanks or commas, quotes dropped
                    for item in LIST_ITEM.findall(m["value"]):
                        if item not in found:
                            found.append(item)
                continue
            if rule.fact in facts:
                continue
            hit = rule.regex.search(text)
            if hit is None:
                continue
            facts[rule.fact] = rule.value if rule.fact in BOOL_FACTS else hit["value"]
    for name, values in lists.items():
        facts[name] = tuple(values)
    return facts, answered


@register
class CliRead(Probe):
    """Read-only CLI commands with the operator's own credentials."""

    name = "cli-read"
    imports = ("asyncssh",)
    risk = Risk.CREDENTIAL
    phase = Phase.READ
    services = frozenset({"ssh"})
    description = "Authenticated mode (--auth-file): the profile's allowlisted read-only SSH commands"
    deadline_s: ClassVar[float | None] = 60.0

    def targets(self, host: HostSnapshot, config: ProbeConfig) -> Sequence[Service | None]:
        """The host's SSH service, when the auth file names the host and its profile has commands."""
        auth_file = config.options(AuthOptions).auth_file
        if not auth_file or host.profile is None:
            return []
        if not any(c.protocol == "ssh" for c in host.profile.read_only_commands):
            return []
        entry = auth.lookup(auth.load(auth_file), host.address, host.profile.id)
        if entry is None:
            return []
        ssh = host.services_named(self.services)
        if entry.port is not None:
            return [s for s in ssh if s.port == entry.port] or [Service(entry.port, "tcp", "ssh")]
        return ssh[:1]

    async def run(self, target: ProbeTarget, ctx: ProbeContext) -> list[Observation]:
        """Log in once, run each command, extract facts."""
        import asyncssh

        auth_file = ctx.config.options(AuthOptions).auth_file
        assert target.service is not None and ctx.profile is not None and auth_file
        entry = auth.lookup(auth.load(auth_file), target.address, ctx.profile.id)
        assert entry is not None
        port = target.service.port
        holder: list[Any] = []

        async def login() -> bool:
            try:
                conn = await ssh_login(target.address, port, ctx, entry.username, entry.password, entry.key_file)
            except asyncssh.PermissionDenied:
                return False
            except (asyncssh.DisconnectError, asyncssh.ConnectionLost) as exc:
                raise Unreachable(f"ssh {target.address}:{port}: {exc}") from exc
            holder.append(conn)
            return True

        ok = await capped_attempt(
            target.address, entry.username, entry.password, target.service.key, account_cap(ctx), ctx, login
        )
        if ok is None:
            raise AuthRejected(f"account {entry.username!r} is at its failure cap on this host: not tried")
        if not ok:
            raise AuthRejected(f"the --auth-file login for {entry.username!r} was refused")
        conn = holder[0]
        outputs: list[tuple[ReadOnlyCommand, str]] = []
        try:
            for command in ctx.profile.read_only_commands:
                if command.protocol != "ssh":
                    continue
                if not is_read_only(command.command):  # defence in depth: the loader refuses these already
                    raise ProbeError(f"refusing to send {command.command!r}: not a read-only command")
                outputs.append((command, await _run(conn, command.command, ctx, asyncssh)))
        finally:
            conn.close()
        facts, answered = extract(outputs)
        strength: tuple[int | None, tuple[str, ...], float | None, str | None] = (None, (), None, None)
        if entry.password is not None:
            known = {p for _u, p, _ in generic_list()} | {c.password for c in ctx.profile.default_credentials}
            known |= {p for _u, p in extended_list()[1]}  # every password the extended list would guess
            strength = assess_password(entry.password, entry.username, known)
        config_text = "\n".join(text for c, text in outputs if c.purpose == "config" and c.command in answered)
        wifi = [
            wifi_observation(target.service, net, command.command)
            for command, text in outputs
            if command.wifi_format and command.command in answered
            for net in wifi_networks(command, text)
        ]
        return [
            *wifi,
            ConfigFacts(
                target.service,
                username=entry.username,
                commands=tuple(answered),
                logging_enabled=facts.get("logging_enabled"),
                log_hosts=facts.get("log_hosts"),
                ntp_servers=facts.get("ntp_servers"),
                ntp_synced=facts.get("ntp_synced"),
                version=facts.get("version"),
                dns_servers=facts.get("dns_servers"),
                password_length=strength[0],
                password_classes=strength[1],
                password_bits=strength[2],
                password_weakness=strength[3],
                config_sha256=hashlib.sha256(config_text.encode()).hexdigest() if config_text else None,
            ),
        ]


def wifi_networks(command: ReadOnlyCommand, text: str) -> list[wifi_config.ConfiguredNetwork]:
    """The networks a purpose-wifi command's output lists, in its profile's format."""
    if command.wifi_format == "uci":
        return wifi_config.parse_uci(text)
    if command.wifi_format == "hostapd":
        return wifi_config.parse_hostapd(text)
    assert command.wifi_network is not None
    return wifi_config.parse_lines(text, command.wifi_network)


def wifi_observation(service: Service, net: wifi_config.ConfiguredNetwork, command: str) -> WifiNetwork:
    """A configured network as the same observation a capture gives (no BSSID: the config does not say)."""
    return WifiNetwork(
        service,
        ssid=net.ssid,
        security=net.security,
        pairwise=net.pairwise,
        akms=net.akms,
        pmf=net.pmf,
        tkip=net.tkip,
        wps=net.wps,
        source=f"config: {command}",
        where=net.where,
        malformed=tuple(net.malformed),
    )


async def _run(conn: Any, command: str, ctx: ProbeContext, asyncssh: Any) -> str:
    """One command in its own exec channel; output bounded, read under the deadline."""
    chunks: list[str] = []
    total = 0
    with map_errors(f"ssh exec {command!r}"):
        try:
            async with asyncio.timeout(ctx.budget(ctx.timeouts.read * 2)):
                process = await conn.create_process(command, stdin=asyncssh.DEVNULL)
                try:
                    while total < MAX_OUTPUT:
                        data = await process.stdout.read(4096)
                        if not data:
                            break
                        chunks.append(data)
                        total += len(data)
                finally:
                    process.close()
        except asyncssh.Error as exc:
            raise Unreachable(f"ssh exec {command!r}: {exc}") from exc
    return "".join(chunks)[:MAX_OUTPUT]
