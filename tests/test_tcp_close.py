"""Closing a TLS stream whose peer never answers close_notify: bounded, and nothing reaches stderr.

The issue saw "Task exception was never retrieved" (TLS shutdown) during sweeps: close_stream waited
one second for the shutdown in a shielded task, and when asyncio's own shutdown timeout later failed
that task, nobody retrieved its exception. The client here shortens that timeout (30 s by default)
to 1.5 s so the failure, if any, comes within the test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probes.tcp import close_stream
from tests.conftest import fresh_address


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_a_tls_peer_that_never_answers_close_notify_is_closed_quietly(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(str(context.get("message"))))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*_self_signed(tmp_path))
    held: list[asyncio.StreamWriter] = []
    paused = asyncio.Event()

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.pause_reading()  # our close_notify is never read, so never answered
        held.append(writer)
        paused.set()
        await asyncio.sleep(10)

    address = fresh_address()
    server = await asyncio.start_server(handle, address, 0, ssl=server_ctx)
    try:
        client_ctx = ssl.create_default_context()
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        port = server.sockets[0].getsockname()[1]
        kwargs: dict[str, Any] = {"ssl": client_ctx, "ssl_shutdown_timeout": 1.5}
        _, writer = await asyncio.open_connection(address, port, **kwargs)
        await asyncio.wait_for(paused.wait(), 5)  # the server has stopped reading before we close
        started = loop.time()
        await close_stream(writer)
        assert loop.time() - started < 1.5  # bounded by close_stream's own second
        await asyncio.sleep(2.5)  # well past the shortened shutdown timeout
        gc.collect()
        await asyncio.sleep(0.1)
        assert errors == []
    finally:
        loop.set_exception_handler(previous)
        for w in held:
            w.transport.abort()
        server.close()
