"""Configurations and command lines for the real Debian daemons of the namespace lab.

Each builder writes its files under the node's run directory and returns a
Launch: the argv to run inside the node's namespace, extra environment, and
the (proto, port) pairs that must be bound before the daemon counts as up.
Every daemon runs in the foreground, so the PID we keep is the daemon's own.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.netns import LabError

REPO = Path(__file__).resolve().parents[1]

# Debian package for each daemon: what `make lab-up` installs and what a missing binary asks for.
PACKAGES = {
    "sshd": ("/usr/sbin/sshd", "openssh-server"),
    "snmpd": ("/usr/sbin/snmpd", "snmpd"),
    "lighttpd": ("/usr/sbin/lighttpd", "lighttpd"),
    "lighttpd-tls": ("/usr/lib/lighttpd/mod_openssl.so", "lighttpd-mod-openssl"),
    "dnsmasq": ("/usr/sbin/dnsmasq", "dnsmasq-base"),
    "chrony": ("/usr/sbin/chronyd", "chrony"),
    "rsyslog": ("/usr/sbin/rsyslogd", "rsyslog"),
    "kamailio": ("/usr/sbin/kamailio", "kamailio"),
    "kamailio-tls": ("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so", "kamailio-tls-modules"),
    "openssl": ("/usr/bin/openssl", "openssl"),
    "miniupnpd": ("/usr/sbin/miniupnpd", "miniupnpd-nftables"),
    "ssh-keygen": ("/usr/bin/ssh-keygen", "openssh-client"),
    "vsftpd": ("/usr/sbin/vsftpd", "vsftpd"),
    "inetd": ("/usr/sbin/inetd", "openbsd-inetd"),
    "telnetd": ("/usr/sbin/telnetd", "inetutils-telnetd"),
    "login": ("/bin/login", "login"),
    "dropbear": ("/usr/sbin/dropbear", "dropbear-bin"),
    "dropbearkey": ("/usr/bin/dropbearkey", "dropbear-bin"),
    "ippeveprinter": ("/usr/sbin/ippeveprinter", "cups-ipp-utils"),
    "cupsd": ("/usr/sbin/cupsd", "cups-daemon"),
    "dbus": ("/usr/bin/dbus-daemon", "dbus-daemon"),
}


@dataclass
class Launch:
    """How to run one daemon inside a node's namespace."""

    argv: list[str]
    ports: set[tuple[str, int]]
    env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The whole environment the daemon starts with (nothing inherited from ours)."""
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **self.env}


@dataclass
class NodeContext:
    """What a builder knows about the node it configures."""

    name: str
    directory: Path
    addresses: dict[str, str]  # segment -> address

    @property
    def address(self) -> str:
        """The node's main address: LAN if it has one, else its first."""
        return self.addresses.get("lan") or next(iter(self.addresses.values()))

    def path(self, name: str) -> Path:
        """A file in the node's run directory."""
        return self.directory / name

    def interface(self, segment: str) -> str:
        """The node's interface on one segment (lab.control names them eth0, eth1, ... in topology order)."""
        return f"eth{list(self.addresses).index(segment)}"

    def listen(self, opts: dict[str, Any]) -> list[str]:
        """Where a daemon binds: every leg of the node, or with ``listen: lan`` the LAN leg only."""
        if opts.get("listen", "all") == "lan":
            return [self.address]
        return list(self.addresses.values())


def require(*keys: str) -> None:
    """Fail with the apt-get line when a daemon's binary is missing."""
    missing = sorted({PACKAGES[k][1] for k in keys if not Path(PACKAGES[k][0]).exists()})
    if missing:
        raise LabError("missing packages: apt-get install --no-install-recommends " + " ".join(missing))


def _run(argv: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise LabError(f"{argv[0]}: {done.stderr.strip()[:300]}")
    return done.stdout


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def sha512_crypt(password: str) -> str:
    """A crypt(3) SHA-512 hash for /etc/shadow, made by `openssl passwd -6`."""
    return _run(["openssl", "passwd", "-6", "-stdin"], stdin=password + "\n").strip()


HOST_LOGS = ("/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog")  # login records the host keeps


def private_accounts(node: NodeContext, users: dict[str, Any], system: list[str], private_run: bool = False) -> str:
    """Shell commands that bind this node's own passwd, shadow and group over /etc (and, for
    daemons that log logins, empty wtmp/btmp/lastlog over the host's).

    Run them under ``unshare --mount --propagation private``: the binds exist in that
    mount namespace only, so the lab's weak accounts are never the host's and the
    host's login records are untouched. ``system``: extra passwd lines (daemon users,
    each with a locked shadow entry). ``private_run``: a tmpfs over /run too (inetd's
    and dbus's files, utmp), so nothing is written to the host's.
    """
    passwd = ["root:x:0:0:root:/root:/bin/sh", *system, "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin"]
    shadow = [f"{line.split(':')[0]}:*:19000:0:99999:7:::" for line in passwd]
    group = ["root:x:0:", "nogroup:x:65534:"]
    for line in system:  # a daemon user's own group, unless it uses one listed already
        name, gid = line.split(":")[0], line.split(":")[3]
        if all(g.split(":")[2] != gid for g in group):
            group.append(f"{name}:x:{gid}:")
    for uid, (user, password) in enumerate(sorted(users.items()), start=2000):
        # Home is /: a run directory under a 0700 parent (pytest's tmp_path) cannot be entered by
        # the user, and vsftpd then answers a right password "500 OOPS: cannot change directory".
        passwd.append(f"{user}:x:{uid}:{uid}:lab user:/:/bin/sh")
        shadow.append(f"{user}:{sha512_crypt(str(password))}:19000:0:99999:7:::")
        group.append(f"{user}:x:{uid}:")
    files = {
        "/etc/passwd": _write(node.path("passwd"), "\n".join(passwd) + "\n"),
        "/etc/shadow": _write(node.path("shadow"), "\n".join(shadow) + "\n", 0o600),
        "/etc/group": _write(node.path("group"), "\n".join(group) + "\n"),
    }
    for log in HOST_LOGS:
        if Path(log).exists():
            files[log] = _write(node.path(Path(log).name), "", 0o600)
    lines = [f"mount --bind {shlex.quote(str(src))} {dst}" for dst, src in files.items()]
    if private_run:
        lines.insert(0, "mount -t tmpfs -o mode=755 ealab-run /run")
    return " && ".join(lines)


def sshd(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """OpenSSH with its own host keys and its own users.

    The users exist only for this sshd: passwd, shadow and group are bind-mounted
    over /etc in a private mount namespace, so the host's accounts are untouched.
    """
    require("sshd", "ssh-keygen", "openssl")
    keys = []
    for kind in ("ed25519", "ecdsa"):
        key = node.path(f"ssh_host_{kind}_key")
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", node.name, "-f", str(key)])
        keys.append(key)
    binds = private_accounts(node, opts.get("users", {}), ["sshd:x:100:65534::/run/sshd:/usr/sbin/nologin"])
    cfg = _write(
        node.path("sshd_config"),
        "\n".join(
            [
                "Port 22",
                *(f"ListenAddress {a}" for a in node.listen(opts)),
                *(f"HostKey {k}" for k in keys),
                f"PidFile {node.path('sshd.pid')}",
                "UsePAM no",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin no",
                "PrintMotd no",
                "MaxAuthTries 6",
                "LogLevel VERBOSE",
                "",
            ]
        ),
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    script = f"{binds} && exec /usr/sbin/sshd -D -e -f {shlex.quote(str(cfg))}"
    return Launch(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], {("tcp", 22)})


def _in_own_mounts(script: str, *, uts: str | None = None) -> list[str]:
    """argv running ``script`` in a private mount namespace (and, with ``uts``, its own host name)."""
    if uts is not None:
        script = f"hostname {shlex.quote(uts)} && {script}"
    return ["unshare", "--mount", *(["--uts"] if uts else []), "--propagation", "private", "sh", "-c", script]


def vsftpd(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """Stock vsftpd 3.0.3: anonymous login on or off, local users (``users``) through Debian's PAM stack.

    A wrong password is answered 530 after PAM's delay and vsftpd's delay_failed_login
    (2.6-3.6 s measured), as on any stock install. Nothing can be uploaded.
    """
    require("vsftpd")
    anon, empty = node.path("ftp-anon"), node.path("ftp-empty")
    for d in (anon, empty):
        d.mkdir(exist_ok=True)
        d.chmod(0o555)  # vsftpd refuses a writable anonymous root
    cfg = _write(
        node.path("vsftpd.conf"),
        "\n".join(
            [
                "listen=YES",
                "listen_ipv6=NO",
                f"listen_address={node.address}",
                "background=NO",
                f"anonymous_enable={'YES' if opts.get('anonymous') else 'NO'}",
                "local_enable=YES",
                "write_enable=NO",
                f"anon_root={anon}",
                f"secure_chroot_dir={empty}",
                "pam_service_name=vsftpd",
                "xferlog_enable=NO",
                f"vsftpd_log_file={node.path('vsftpd.log')}",
                "seccomp_sandbox=NO",
                "",
            ]
        ),
    )
    binds = private_accounts(node, opts.get("users", {}), [f"ftp:x:106:109:ftp daemon:{anon}:/usr/sbin/nologin"])
    return Launch(_in_own_mounts(f"{binds} && exec /usr/sbin/vsftpd {shlex.quote(str(cfg))}"), {("tcp", 21)})


def telnetd(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """inetutils-telnetd under openbsd-inetd, logging in through Debian's /bin/login and its PAM stack.

    /bin/login refuses a wrong password after pam_faildelay's 3 s (2.2-4.3 s measured).
    The node has its own host name (the login prompt shows it), and its own /run
    (inetd's pid file, utmp).
    """
    require("inetd", "telnetd", "login")
    cfg = _write(node.path("inetd.conf"), f"{node.address}:23 stream tcp nowait root /usr/sbin/telnetd telnetd\n")
    binds = private_accounts(node, opts.get("users", {}), [], private_run=True)
    script = f"{binds} && exec /usr/sbin/inetd -d {shlex.quote(str(cfg))}"
    return Launch(_in_own_mounts(script, uts=node.name), {("tcp", 23)})


def dropbear(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """Dropbear 2022.83, RSA, ECDSA and Ed25519 host keys (Ed25519 alone makes some clients abort), its own users."""
    require("dropbear", "dropbearkey")
    keys = []
    for kind in ("rsa", "ecdsa", "ed25519"):
        key = node.path(f"dropbear_{kind}_host_key")
        if not key.exists():
            _run(["dropbearkey", "-t", kind, "-f", str(key)])
        keys.append(key)
    binds = private_accounts(node, opts.get("users", {}), [])
    argv = ["/usr/sbin/dropbear", "-F", "-E", "-p", f"{node.address}:22", "-P", str(node.path("dropbear.pid"))]
    argv += [a for k in keys for a in ("-r", str(k))]
    return Launch(_in_own_mounts(f"{binds} && exec {shlex.join(argv)}"), {("tcp", 22)})


DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=/run/dbus/system_bus_socket</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/>
<allow send_type="signal"/><allow send_type="method_return"/><allow send_type="error"/>
<allow receive_type="method_call"/><allow receive_type="signal"/><allow receive_type="method_return"/>
<allow receive_type="error"/></policy></busconfig>
"""


def ippeveprinter(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """cups-ipp-utils' ippeveprinter, an IPP Everywhere printer on /ipp/print: open, or with ``auth`` (-A, Basic).

    It wants a system D-Bus for Avahi even with ``-r off``: a private dbus-daemon in
    the node's own /run (no avahi-daemon: its client waits, IPP is served). It binds
    the first IPv4 and IPv6 address its ``-n`` name resolves to, so a private
    /etc/hosts names the node's address (and ::1), /etc/gai.conf puts the IPv4 first.
    """
    require("ippeveprinter", "dbus")
    spool = node.path("ipp-spool")
    spool.mkdir(exist_ok=True)
    bus = _write(node.path("dbus.conf"), DBUS_CONF)
    hosts = _write(node.path("hosts"), f"{node.address} {node.name}\n::1 {node.name}\n")
    gai = _write(node.path("gai.conf"), f"precedence ::ffff:{node.address}/128 100\nprecedence ::1/128 50\n")
    argv = ["ippeveprinter", "-r", "off", "-n", node.name, "-p", "631", "-d", str(spool)]
    argv += ["-M", str(opts.get("make", "EdgeLab")), "-m", str(opts.get("model", node.name))]
    argv += (["-A"] if opts.get("auth") else []) + [str(opts.get("queue", node.name))]
    script = " && ".join(
        [
            "mount -t tmpfs -o mode=755 ealab-run /run",
            "mkdir -p /run/dbus",
            f"mount --bind {shlex.quote(str(hosts))} /etc/hosts",
            f"mount --bind {shlex.quote(str(gai))} /etc/gai.conf",
            f"dbus-daemon --fork --config-file={shlex.quote(str(bus))}",
            f"exec {shlex.join(argv)}",
        ]
    )
    return Launch(_in_own_mounts(script), {("tcp", 631)})


def cupsd_conf(listens: list[str]) -> str:
    """Debian's default cupsd.conf, listening only on ``listens``, browsing and the web interface off, open to all."""
    conf: list[str] = []
    for line in Path("/usr/share/cups/cupsd.conf.default").read_text(encoding="utf-8").splitlines():
        if line.startswith(("Listen ", "Browsing ", "BrowseLocalProtocols ", "WebInterface ", "IdleExitTimeout")):
            continue
        conf.append(line)
        if line == "<Location />":
            conf.append("  Allow all")
    conf += [*(f"Listen {where}" for where in listens), "Browsing No", "BrowseLocalProtocols none", "WebInterface No"]
    return "\n".join(conf) + "\n"


def cupsd(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """A CUPS 2.4 print server with shared queues (``queues``: name -> open | authenticated) under /printers/NAME.

    Debian's cupsd.conf with the LAN allowed in, no browsing and no web interface;
    every file under the node's run directory, /run private (cupsd's socket and pid).
    """
    require("cupsd")
    import shutil

    etc = node.path("cups")
    for sub in ("spool/tmp", "cache", "state", "log"):
        (etc / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("spool", "spool/tmp"):
        shutil.chown(etc / sub, "root", "lp")
    (etc / "spool/tmp").chmod(0o1770)
    etc.chmod(0o755)
    node.directory.chmod(0o755)  # cupsd's lp children read their files here
    # cupsd will not start without a loopback listener: the node's own, inside its namespace
    _write(etc / "cupsd.conf", cupsd_conf([f"{node.address}:631", "127.0.0.1:631"]))
    files = [f"ServerRoot {etc}", f"RequestRoot {etc / 'spool'}", f"CacheDir {etc / 'cache'}"]
    files += [f"StateDir {etc / 'state'}", f"TempDir {etc / 'spool/tmp'}", f"AccessLog {etc / 'log/access_log'}"]
    files += [f"ErrorLog {etc / 'log/error_log'}", f"PageLog {etc / 'log/page_log'}", "FileDevice Yes"]
    files += ["User lp", "Group lp", "SystemGroup root"]
    _write(etc / "cups-files.conf", "\n".join(files) + "\n")
    printers = []
    for i, (queue, policy) in enumerate(sorted((opts.get("queues") or {"office": "open"}).items()), start=1):
        printers += [
            f"<Printer {queue}>",
            f"UUID urn:uuid:6f1c4c62-7a2e-3b59-4f6e-{i:012x}",
            f"Info {queue}",
            "MakeModel Local Raw Printer",
            "DeviceURI file:///dev/null",  # nothing is printed anywhere
            "State Idle",
            "Accepting Yes",
            "Shared Yes",
            *(["OpPolicy authenticated"] if policy == "authenticated" else []),
            "</Printer>",
        ]
    _write(etc / "printers.conf", "\n".join(printers) + "\n", 0o600)
    argv = ["cupsd", "-f", "-c", str(etc / "cupsd.conf"), "-s", str(etc / "cups-files.conf")]
    script = f"mount -t tmpfs -o mode=755 ealab-run /run && exec {shlex.join(argv)}"
    return Launch(_in_own_mounts(script), {("tcp", 631)})


def snmpd(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """net-snmp with the node's sysDescr/sysObjectID; v1/v2c communities and v3 users from options."""
    require("snmpd")
    lines = [
        f"sysDescr {opts['sys_descr']}",
        f"sysObjectID {opts.get('object_id', '.1.3.6.1.4.1.8072.3.2.10')}",
        f"sysName {node.name}",
        "sysLocation edgeaudit lab",
        "sysContact lab@example.invalid",
    ]
    for community, access in opts.get("communities", {}).items():
        lines.append(f"{'rwcommunity' if access == 'rw' else 'rocommunity'} {community} default")
    for user, secret in opts.get("v3_users", {}).items():
        lines += [f'createUser {user} SHA-256 "{secret}" AES "{secret}"', f"rouser {user} priv"]
    cfg = _write(node.path("snmpd.conf"), "\n".join(lines) + "\n", 0o600)
    state = node.path("snmp-state")
    state.mkdir(exist_ok=True)
    argv = [
        "/usr/sbin/snmpd", "-f", "-Lf", str(node.path("snmpd.log")), "-C", "-c", str(cfg),
        "-p", str(node.path("snmpd.pid")), *(f"udp:{a}:161" for a in node.listen(opts)),
    ]  # fmt: skip
    env = {"MIBS": "", "MIBDIRS": "/nonexistent", "SNMP_PERSISTENT_DIR": str(state), "SNMPCONFPATH": str(state)}
    return Launch(argv, {("udp", 161)}, env)


def lighttpd(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """lighttpd as a web admin UI: basic auth on plain HTTP, or a redirect to HTTPS with auth there."""
    require("lighttpd")
    www = node.path("www")
    www.mkdir(exist_ok=True)
    title = opts.get("title", node.name)
    _write(www / "index.html", f"<!doctype html><html><head><title>{title}</title></head><body>{title}</body></html>\n")
    users = "\n".join(f"{u}:{p}" for u, p in opts.get("users", {}).items()) + "\n"
    userfile = _write(node.path("lighttpd.users"), users, 0o600)
    addr, tls = node.address, bool(opts.get("tls"))
    modules = ["mod_auth", "mod_authn_file", "mod_redirect"] + (["mod_openssl"] if tls else [])
    auth = (
        'auth.backend = "plain"\n'
        f'auth.backend.plain.userfile = "{userfile}"\n'
        f'auth.require = ("/" => ("method" => "basic", "realm" => "{opts.get("realm", node.name)}",'
        ' "require" => "valid-user"))\n'
    )
    conf = [
        f"server.modules = ({', '.join(repr(m).replace(chr(39), chr(34)) for m in modules)})",
        f'server.document-root = "{www}"',
        f'server.bind = "{addr}"',
        "server.port = 80",
        f'server.tag = "{opts.get("server_tag", "lighttpd")}"',
        f'server.pid-file = "{node.path("lighttpd.pid")}"',
        f'server.errorlog = "{node.path("lighttpd.log")}"',
        'index-file.names = ("index.html")',
        'mimetype.assign = (".html" => "text/html")',
    ]
    ports = {("tcp", 80)}
    if tls:
        require("openssl", "lighttpd-tls")
        cert, key = self_signed(node, "https")
        conf += [
            f'url.redirect = ("^/(.*)" => "https://{addr}/$1")',
            f'$SERVER["socket"] == "{addr}:443" {{',
            '  ssl.engine = "enable"',
            f'  ssl.pemfile = "{cert}"',
            f'  ssl.privkey = "{key}"',
            "  url.redirect = ()",
            "  " + auth.replace("\n", "\n  ").rstrip(),
            "}",
        ]
        ports.add(("tcp", 443))
    else:
        conf.append(auth)
    cfg = _write(node.path("lighttpd.conf"), "\n".join(conf) + "\n")
    return Launch(["/usr/sbin/lighttpd", "-D", "-f", str(cfg)], ports)


def dnsmasq(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """dnsmasq as a DNS forwarder (its own records, then its ``servers``, if any) and optional DHCP."""
    require("dnsmasq")
    lines = [
        "port=53",
        *(f"listen-address={a}" for a in node.listen(opts)),
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        "no-poll",
        "user=root",
        "group=root",
        f"pid-file={node.path('dnsmasq.pid')}",
        f"log-facility={node.path('dnsmasq.log')}",
        "log-queries",
        *(f"address=/{name}/{ip}" for name, ip in opts.get("records", {}).items()),
        *(f"server={upstream}" for upstream in opts.get("servers", [])),
    ]
    if opts.get("dhcp"):
        lines += [f"dhcp-range={opts['dhcp']},12h", f"dhcp-leasefile={node.path('dnsmasq.leases')}"]
        if opts.get("dhcp_dns"):  # else dnsmasq hands out its own address
            lines.append("dhcp-option=option:dns-server," + ",".join(opts["dhcp_dns"]))
    cfg = _write(node.path("dnsmasq.conf"), "\n".join(lines) + "\n")
    return Launch(["/usr/sbin/dnsmasq", "-k", "-C", str(cfg)], {("udp", 53), ("tcp", 53)})


def miniupnpd(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """miniupnpd as a UPnP IGD: SSDP on udp/1900, its description on tcp/5000, on the legs ``listen`` names.

    Its firewall backend works on the node's own nftables (gone with the
    namespace). The lab's addresses are private, so it warns that port
    forwarding is impossible: nothing asks it to forward anything.
    """
    require("miniupnpd")
    import uuid

    legs = ["lan"] if opts.get("listen", "all") == "lan" else list(node.addresses)
    lines = [
        f"ext_ifname={node.interface('wan')}",
        *(f"listening_ip={node.interface(leg)}" for leg in legs),
        "http_port=5000",
        "enable_natpmp=no",
        "enable_upnp=yes",
        "secure_mode=yes",
        "system_uptime=yes",
        f"uuid={uuid.uuid5(uuid.NAMESPACE_DNS, node.name + '.lab')}",
        f"friendly_name={opts.get('friendly_name', node.name)}",
        f"manufacturer_name={opts.get('manufacturer', 'EdgeLab')}",
        f"model_name={opts.get('model_name', node.name)}",
        f"model_number={opts.get('model_number', '1')}",
        "allow 1024-65535 198.18.0.0/21 1024-65535",
        "deny 0-65535 0.0.0.0/0 0-65535",
    ]
    cfg = _write(node.path("miniupnpd.conf"), "\n".join(lines) + "\n")
    argv = ["/usr/sbin/miniupnpd", "-d", "-f", str(cfg), "-P", str(node.path("miniupnpd.pid"))]
    return Launch(argv, {("udp", 1900), ("tcp", 5000)})


def chrony(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """chronyd serving NTP: synced from servers, a local reference clock, or nothing (unsynchronised)."""
    require("chrony")
    # No bindaddress: chrony keeps only the last one per address family, which
    # left a two-legged router serving NTP on its WAN side only. The namespace
    # holds only the node's own addresses, so the wildcard is the node.
    lines = [
        "allow",
        "cmdport 0",
        "bindcmdaddress /",
        f"pidfile {node.path('chronyd.pid')}",
        *(f"server {s} iburst minpoll -2 maxpoll 0" for s in opts.get("servers", [])),
    ]
    if "local_stratum" in opts:
        lines.append(f"local stratum {int(opts['local_stratum'])}")
    cfg = _write(node.path("chrony.conf"), "\n".join(lines) + "\n")
    # -x: never touch the clock (it is shared with the host); -u root: no user switch.
    return Launch(["/usr/sbin/chronyd", "-d", "-x", "-u", "root", "-f", str(cfg)], {("udp", 123)})


def rsyslog(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """rsyslogd as a remote log collector on UDP and TCP 514, writing to remote.log."""
    require("rsyslog")
    addr = node.address
    conf = "\n".join(
        [
            f'global(workDirectory="{node.directory}")',
            'module(load="imudp")',
            f'input(type="imudp" address="{addr}" port="514")',
            'module(load="imtcp")',
            f'input(type="imtcp" address="{addr}" port="514")',
            f'*.* action(type="omfile" file="{node.path("remote.log")}")',
            "",
        ]
    )
    cfg = _write(node.path("rsyslog.conf"), conf)
    return Launch(
        ["/usr/sbin/rsyslogd", "-n", "-f", str(cfg), "-i", str(node.path("rsyslogd.pid"))], {("udp", 514), ("tcp", 514)}
    )


def self_signed(node: NodeContext, stem: str) -> tuple[Path, Path]:
    """A self-signed P-256 certificate and key for the node (made once per run directory)."""
    require("openssl")
    cert, key = node.path(f"{stem}.crt"), node.path(f"{stem}.key")
    if not cert.exists():
        _run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", f"/CN={node.name}.lab",
        ])  # fmt: skip
    return cert, key


KAMAILIO_PORTS = {"udp": ("udp", 5060), "tcp": ("tcp", 5060), "tls": ("tcp", 5061)}


def kamailio(node: NodeContext, opts: dict[str, Any]) -> Launch:
    """Kamailio as a SIP registrar on UDP, TCP and/or TLS: REGISTER saved without authentication, or challenged."""
    require("kamailio")
    transports = list(opts.get("transports", ["udp"]))
    tpl = (REPO / "lab" / "configs" / "kamailio.cfg").read_text(encoding="utf-8")
    users = "".join(f'    $sht(users=>{u}) = "{p}";\n' for u, p in opts.get("users", {}).items())
    listen = [f"listen={t}:{node.address}:{KAMAILIO_PORTS[t][1]}" for t in transports]
    tls = ""
    if "tls" in transports:
        require("kamailio-tls")
        cert, key = self_signed(node, "sip-tls")
        tls_cfg = _write(
            node.path("kamailio-tls.cfg"),
            f"[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
            f"certificate = {cert}\nprivate_key = {key}\n",
        )
        tls = f'enable_tls=yes\nloadmodule "tls.so"\nmodparam("tls", "config", "{tls_cfg}")'
    text = tpl.replace("@LISTEN@", "\n".join(listen)).replace(
        "@AUTH@", "#!define WITH_AUTH" if opts.get("auth") else "# (no authentication)"
    )
    text = text.replace("@USERS@", users).replace("@TLS@", tls)
    cfg = _write(node.path("kamailio.cfg"), text)
    rundir = node.path("kamailio-run")
    rundir.mkdir(exist_ok=True)
    argv = [
        "/usr/sbin/kamailio", "-DD", "-E", "-f", str(cfg), "-Y", str(rundir),
        "-P", str(node.path("kamailio.pid")), "-m", "64", "-M", "8",
    ]  # fmt: skip
    return Launch(argv, {KAMAILIO_PORTS[t] for t in transports})


def emulator(node: NodeContext, persona: dict[str, Any]) -> Launch:
    """An emulated device (lab/emulator) bound to the node's address."""
    from lab.emulator.spec import TCP_SERVICES, DeviceSpec

    entry = {"name": node.name, "address": node.address, **persona}
    if persona.get("wan_services") and "wan" in node.addresses:
        entry["wan_address"] = node.addresses["wan"]
    spec = DeviceSpec.from_dict(entry)
    ports = {("tcp" if s in TCP_SERVICES else "udp", p) for s, p in spec.services.items()}
    return emulator_launch([entry], node.path("emulator.yaml"), node.path("emulator.pid"), ports)


def emulator_launch(devices: list[dict[str, Any]], config: Path, pidfile: Path, ports: set[tuple[str, int]]) -> Launch:
    """Run ``python -m lab.emulator`` on these devices (written to ``config``); the pidfile appears when all are up."""
    import yaml

    _write(config, yaml.safe_dump({"devices": devices}))
    argv = [sys.executable, "-m", "lab.emulator", str(config), "--pidfile", str(pidfile)]
    return Launch(argv, ports, {"PYTHONPATH": str(REPO)})


def launches(node: NodeContext, spec: dict[str, Any]) -> list[tuple[str, Launch]]:
    """Every daemon of one topology node, then its emulator persona, as (name, launch)."""
    out = [(name, BUILDERS[name](node, opts or {})) for name, opts in (spec.get("daemons") or {}).items()]
    if spec.get("emulate"):
        out.append(("emulator", emulator(node, spec["emulate"])))
    return out


BUILDERS: dict[str, Callable[[NodeContext, dict[str, Any]], Launch]] = {
    "sshd": sshd,
    "snmpd": snmpd,
    "lighttpd": lighttpd,
    "dnsmasq": dnsmasq,
    "chrony": chrony,
    "rsyslog": rsyslog,
    "kamailio": kamailio,
    "miniupnpd": miniupnpd,
    "vsftpd": vsftpd,
    "telnetd": telnetd,
    "dropbear": dropbear,
    "ippeveprinter": ippeveprinter,
    "cupsd": cupsd,
}
