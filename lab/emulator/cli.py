"""Vendor-CLI personas over SSH (asyncssh server): Yamaha-like, Cisco-like and OpenWrt-like routers.

Password logins are checked against the spec's users, with an optional lockout
after N failures per account (the device then refuses that account, right
password or not, and records it in ``locked``). Read-only ``show`` commands
answer from the spec (logging, NTP, config); anything that would change the
device is refused and recorded in ``config_attempts`` so tests can prove a
sweep never sends one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

import asyncssh

from lab.emulator.spec import DeviceSpec


class Device(Protocol):
    """What the CLI server needs of the emulated device (lab.emulator.devices.Device) that runs it."""

    spec: DeviceSpec
    received: list[tuple[str, bytes]]
    login_attempts: list[tuple[str, str]]
    auth_users: list[str]
    config_attempts: list[str]

    def check_login(self, username: str, password: str) -> bool:
        """One login attempt, counted toward the device's lockout."""

    async def refusal_pause(self) -> None:
        """The device's delay before it refuses a login."""

CHANGING = ("conf", "configure", "write", "copy", "erase", "reload", "delete", "no ", "administrator", "save")
MAX_LINE = 512
MAX_COMMANDS = 50


def _yamaha(device: Device, cmd: str) -> str | None:
    spec = device.spec
    log, remote = spec.logging, spec.logging.get("remote", [])
    if cmd == "show config":
        lines = [
            f"# RTX-like EL router {spec.model} Rev.{spec.firmware}",
            f"ip lan1 address {spec.address}/21",
            *(f"syslog host {h.partition(':')[0]}" for h in remote),
            f"syslog notice {'on' if log.get('enabled') else 'off'}",
            f"syslog info {'on' if log.get('enabled') else 'off'}",
            *(f"schedule at 1 */* 00:00 * ntpdate {s} syslog" for s in spec.ntp_servers),
            *(f"dns server {s}" for s in spec.dns_servers),
            "telnetd service on" if "telnet" in spec.services else "telnetd service off",
            "sshd service on",
        ]
        return "\n".join(lines)
    if cmd == "show wireless":
        rows = [
            f" ssid {w['ssid']} security {w['security']}"
            + (f" cipher {w['cipher']}" if w.get("cipher") else "")
            + f" wps {'on' if w.get('wps') else 'off'}"
            for w in spec.wifi
        ]
        return "\n".join(["Wireless LAN configuration", *rows]) if spec.wifi else "Wireless LAN: not installed"
    if cmd in ("show environment", "show status boot"):
        return f"{spec.model} Rev.{spec.firmware} (emulated)\nBoot time: 2026/11/01 09:00:00 +09:00"
    if cmd == "show log":
        return "2026/11/22 09:00:00: Login succeeded as admin" if log.get("enabled") else ""
    return None


def _cisco(device: Device, cmd: str) -> str | None:
    spec = device.spec
    log, remote = spec.logging, spec.logging.get("remote", [])
    synced = spec.ntp_stratum < 16 and bool(spec.ntp_servers)
    if cmd == "show logging":
        if not log.get("enabled"):
            return "Syslog logging: disabled (0 messages dropped, 0 flushes, 0 overruns)"
        lines = [
            "Syslog logging: enabled (0 messages dropped, 0 flushes, 0 overruns)",
            "    Console logging: level debugging, 12 messages logged",
            "    Buffer logging:  level debugging, 12 messages logged",
            f"    Trap logging: level informational, {len(remote) * 12} message lines logged",
            *(
                f"        Logging to {host}  (udp port {port or 514}, audit disabled, link up)"
                for host, _, port in (str(h).partition(":") for h in remote)
            ),
        ]
        return "\n".join(lines)
    if cmd in ("show ntp status", "show ntp"):
        if synced:
            ref = spec.ntp_servers[0]
            return f"Clock is synchronized, stratum {spec.ntp_stratum}, reference is {ref}"
        return "Clock is unsynchronized, stratum 16, no reference clock"
    if cmd == "show ntp associations":
        rows = [
            f"*~{s:<15} .GPS.  {spec.ntp_stratum - 1:>3}   12   64  377  0.512  0.102  0.044" for s in spec.ntp_servers
        ]
        return "  address         ref clock       st   when   poll reach  delay  offset   disp\n" + "\n".join(rows)
    if cmd in ("show running-config", "show config"):
        lines = [
            f"version {spec.firmware}",
            f"hostname {spec.name}",
            *(
                f"logging host {host}" + (f" transport udp port {port}" if port else "")
                for host, _, port in (str(h).partition(":") for h in remote)
            ),
            "no logging on" if not log.get("enabled") else "logging buffered 16384",
            *(f"ntp server {s}" for s in spec.ntp_servers),
            *(f"ip name-server {s}" for s in spec.dns_servers),
            "line vty 0 4",
            " transport input ssh" if "telnet" not in spec.services else " transport input telnet ssh",
            "end",
        ]
        return "\n".join(lines)
    if cmd == "show version":
        return f"EdgeLab {spec.model} Software, Version {spec.firmware}, RELEASE SOFTWARE (emulated)"
    return None


UCI_ENCRYPTION = {
    "none": "none", "wep": "wep+open", "wpa-psk": "psk", "wpa2-psk": "psk2", "wpa/wpa2-psk": "psk-mixed",
    "wpa3-sae": "sae", "wpa2/wpa3-psk": "sae-mixed",
}  # fmt: skip


def _openwrt(device: Device, cmd: str) -> str | None:
    """OpenWrt over SSH (dropbear, ash): the files and uci sections the openwrt profile reads."""
    spec = device.spec
    if cmd == "cat /etc/openwrt_release":
        return f"DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='{spec.firmware}'\nDISTRIB_TARGET='x86/64'"
    if cmd == "uci show system":
        lines = ["system.@system[0]=system", f"system.@system[0].hostname='{spec.name}'"]
        lines += [f"system.@system[0].log_ip='{h.partition(':')[0]}'" for h in spec.logging.get("remote", [])[:1]]
        lines += ["system.ntp=timeserver", "system.ntp.enabled='1'"]
        if spec.ntp_servers:  # uci prints a list option on one line: server='a' 'b'
            lines.append("system.ntp.server=" + " ".join(f"'{s}'" for s in spec.ntp_servers))
        return "\n".join(lines)
    if cmd == "uci show network":
        lines = ["network.lan=interface", "network.lan.proto='static'", f"network.lan.ipaddr='{spec.address}'"]
        lines += ["network.wan=interface", "network.wan.proto='dhcp'", "network.wan.peerdns='0'"]
        if spec.dns_servers:
            lines.append("network.wan.dns=" + " ".join(f"'{s}'" for s in spec.dns_servers))
        return "\n".join(lines)
    if cmd == "uci show wireless":
        lines = ["wireless.radio0=wifi-device", "wireless.radio0.type='mac80211'", "wireless.radio0.band='5g'"]
        for i, w in enumerate(spec.wifi):
            sec = f"wireless.wifinet{i}"
            cipher = {"aes": "ccmp"}.get(str(w.get("cipher", "")), str(w.get("cipher", "")))
            lines += [f"{sec}=wifi-iface", f"{sec}.device='radio0'", f"{sec}.mode='ap'", f"{sec}.ssid='{w['ssid']}'"]
            lines.append(f"{sec}.encryption='{UCI_ENCRYPTION[w['security']]}{'+' + cipher if cipher else ''}'")
            if "pmf" in w:
                lines.append(f"{sec}.ieee80211w='{w['pmf']}'")
            lines.append(f"{sec}.wps_pushbutton='{1 if w.get('wps') else 0}'")
        return "\n".join(lines)
    return None


FAMILIES = {
    "yamaha": (_yamaha, "> ", "Error: Invalid command name"),
    "cisco": (_cisco, "# ", "% Invalid input detected"),
    "openwrt": (_openwrt, ":~# ", "-ash: command not found"),
}


class _Server(asyncssh.SSHServer):
    def __init__(self, device: Device) -> None:
        self.device = device

    def begin_auth(self, username: str) -> bool:
        self.device.auth_users.append(username)  # every user name a client announced, tried or not
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        device = self.device
        device.login_attempts.append(("ssh", username))
        ok = device.check_login(username, password)
        if not ok:
            await device.refusal_pause()
        return ok


def host_key(seed: str) -> asyncssh.SSHKey:
    """An Ed25519 host key derived from a seed: the same seed, the same key (as a cloned firmware image)."""
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return asyncssh.import_private_key(pem)


class CliServer:
    """One asyncssh server for a device's SSH service."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.server: asyncssh.SSHAcceptor | None = None

    async def start(self, port: int) -> int:
        """Listen; returns the bound port."""
        spec = self.device.spec
        key = host_key(spec.host_key_seed) if spec.host_key_seed else asyncssh.generate_private_key("ssh-ed25519")
        self.server = await asyncssh.create_server(
            lambda: _Server(self.device),
            spec.listen_on("ssh"),
            port,
            server_host_keys=[key],
            server_version="dropbear_2022.83" if spec.cli == "openwrt" else f"EdgeLabOS_{spec.firmware}",
            process_factory=self._session,
            reuse_address=True,
            login_timeout=20,
        )
        sockets = self.server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    def answer(self, cmd: str) -> str:
        """The CLI's output for one command line."""
        handler, _prompt, invalid = FAMILIES[self.device.spec.cli or "cisco"]
        cmd = " ".join(cmd.split())
        self.device.received.append(("ssh-cmd", cmd.encode()[:200]))
        if cmd.lower().startswith(CHANGING):
            self.device.config_attempts.append(cmd)
            return "% Command rejected: this lab device is read-only"
        out = handler(self.device, cmd)
        return invalid if out is None else out

    async def _session(self, process: asyncssh.SSHServerProcess[Any]) -> None:
        _handler, prompt, _invalid = FAMILIES[self.device.spec.cli or "cisco"]
        try:
            if process.command:
                process.stdout.write(self.answer(process.command) + "\n")
                process.exit(0)
                return
            process.stdout.write(f"{self.device.spec.name}{prompt}")
            for _ in range(MAX_COMMANDS):
                line = await asyncio.wait_for(process.stdin.readline(), 60)
                if not line or line.strip() in ("exit", "quit", "logout"):
                    break
                if line.strip():
                    process.stdout.write(self.answer(line[:MAX_LINE]) + "\n")
                process.stdout.write(f"{self.device.spec.name}{prompt}")
        except (TimeoutError, asyncssh.Error, BrokenPipeError, ConnectionError):
            pass
        process.exit(0)
