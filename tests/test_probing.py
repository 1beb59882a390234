"""One health check attempt (fodns/probing.py) against real servers on loopback.

Each test starts its servers on 127.0.0.2 or 127.0.0.3 (Linux routes all of
127.0.0.0/8 to loopback) with a port the OS picks, runs its attempts in
asyncio.run, and reads what the server saw: the Host header, the method, the TLS
server name, how many connections it held at once.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fodns.checks import BODY_READ_BYTES, CheckSpec
from fodns.probing import CheckResult, Prober, resolve_error
from tests.support import loopback_v6_available

APP_ADDRESS = "127.0.0.2"
OTHER_ADDRESS = "127.0.0.3"
WORD = "healthy"


@dataclass
class Seen:
    """What the test server saw of each request."""

    hosts: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


def spec(port: int, **fields: Any) -> CheckSpec:
    """A check through CheckSpec.from_json, so its defaults are the stored ones."""
    return CheckSpec.from_json({"port": port, **fields})


def run(scenario: Callable[[Prober], Awaitable[None]], concurrency: int = 256) -> None:
    async def main() -> None:
        prober = Prober(concurrency=concurrency)
        try:
            await scenario(prober)
        finally:
            await prober.close()

    asyncio.run(main())


@asynccontextmanager
async def web_app(
    address: str = APP_ADDRESS, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[int, Seen]]:
    """An aiohttp server with one route per behaviour a check must judge."""
    seen = Seen()

    async def record(request: web.Request) -> None:
        seen.hosts.append(request.headers.get("Host", ""))
        seen.methods.append(request.method)

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text=f"all {WORD} here")

    async def unavailable(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=503, text=f"not {WORD}")

    async def late_word(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="x" * BODY_READ_BYTES + WORD)

    async def moved(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=301, headers={"Location": "/down"})

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/down", unavailable)
    app.router.add_get("/late", late_word)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, address, 0, ssl_context=tls)
    await site.start()
    try:
        yield runner.addresses[0][1], seen
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    address: str = APP_ADDRESS,
) -> AsyncIterator[int]:
    server = await asyncio.start_server(handle, address, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def self_signed(tmp_path: Path, seen: Seen) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.2 and app.test,
    recording the server name (SNI) each client sends."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("app.test"), x509.IPAddress(ipaddress.ip_address(APP_ADDRESS))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    def record_name(_sock: Any, server_name: str | None, _context: ssl.SSLContext) -> None:
        seen.server_names.append(server_name)

    context.sni_callback = record_name
    return context


def test_http_200_passes_with_status_and_latency() -> None:
    async def scenario(prober: Prober) -> None:
        async with web_app() as (port, seen):
            result = await prober.check(spec(port), APP_ADDRESS)
        assert result == CheckResult(APP_ADDRESS, True, result.latency_ms, 200, None)
        assert 0 < result.latency_ms < 2000
        assert seen.methods == ["GET"]
        assert result.to_json() == {
            "address": APP_ADDRESS,
            "ok": True,
            "latency_ms": round(result.latency_ms, 3),
            "status": 200,
            "error": None,
        }

    run(scenario)


def test_status_out_of_range_fails_with_the_status() -> None:
    async def scenario(prober: Prober) -> None:
        async with web_app() as (port, _seen):
            down = await prober.check(spec(port, path="/down"), APP_ADDRESS)
            accepted = await prober.check(
                spec(port, path="/down", status_min=500, status_max=503), APP_ADDRESS
            )
        assert (down.ok, down.status, down.error) == (False, 503, "status 503, expected 200-399")
        assert (accepted.ok, accepted.status) == (True, 503)

    run(scenario)


def test_redirect_is_judged_by_its_status_not_followed() -> None:
    async def scenario(prober: Prober) -> None:
        async with web_app() as (port, seen):
            in_range = await prober.check(spec(port, path="/moved"), APP_ADDRESS)
            out_of_range = await prober.check(
                spec(port, path="/moved", status_max=299), APP_ADDRESS
            )
        assert (in_range.ok, in_range.status) == (True, 301)
        assert (out_of_range.ok, out_of_range.error) == (False, "status 301, expected 200-299")
        assert len(seen.methods) == 2, "the Location (/down, a 503) was followed"

    run(scenario)


def test_body_substring_is_looked_for_in_the_first_5120_bytes_only() -> None:
    async def scenario(prober: Prober) -> None:
        async with web_app() as (port, _seen):
            found = await prober.check(spec(port, body_contains=WORD), APP_ADDRESS)
            missing = await prober.check(spec(port, body_contains="sick"), APP_ADDRESS)
            late = await prober.check(spec(port, path="/late", body_contains=WORD), APP_ADDRESS)
            early = await prober.check(spec(port, path="/late", body_contains="xx"), APP_ADDRESS)
        assert (found.ok, found.error) == (True, None)
        assert (missing.ok, missing.status) == (False, 200)
        assert missing.error == "body has no 'sick' in its first 5120 bytes"
        assert (late.ok, late.status) == (False, 200)
        assert late.error == f"body has no '{WORD}' in its first 5120 bytes"
        assert early.ok

    run(scenario)


def test_head_method_and_host_header_from_the_spec() -> None:
    async def scenario(prober: Prober) -> None:
        async with web_app() as (port, seen):
            head = await prober.check(spec(port, method="HEAD", host="App.Test."), APP_ADDRESS)
            named = await prober.check(spec(port), APP_ADDRESS, "lb.example.com.")
            bare = await prober.check(spec(port), APP_ADDRESS)
        assert (head.ok, head.status, named.ok, bare.ok) == (True, 200, True, True)
        assert seen.methods == ["HEAD", "GET", "GET"]
        # The port is in the Host header when it is not the scheme's default (RFC 9110
        # §7.2): the test server's port never is 80.
        assert seen.hosts == [
            f"app.test:{port}",
            f"lb.example.com:{port}",
            f"{APP_ADDRESS}:{port}",
        ]

    run(scenario)


@pytest.mark.skipif(not loopback_v6_available(), reason="no IPv6 loopback here")
def test_ipv6_address_is_bracketed() -> None:
    async def scenario(prober: Prober) -> None:
        async with web_app("::1") as (port, seen):
            result = await prober.check(spec(port), "::1")
        assert (result.ok, result.status) == (True, 200)
        assert seen.hosts == [f"[::1]:{port}"]

    run(scenario)


def test_https_self_signed_fails_verified_passes_unverified_with_sni(tmp_path: Path) -> None:
    seen_tls = Seen()
    tls = self_signed(tmp_path, seen_tls)

    async def scenario(prober: Prober) -> None:
        async with web_app(tls=tls) as (port, seen):
            verified = await prober.check(spec(port, type="https", host="app.test"), APP_ADDRESS)
            unverified = await prober.check(
                spec(port, type="https", host="app.test", tls_verify=False), APP_ADDRESS
            )
            by_hostname = await prober.check(
                spec(port, type="https", tls_verify=False), APP_ADDRESS, "app.test."
            )
            bare = await prober.check(spec(port, type="https", tls_verify=False), APP_ADDRESS)
            plain_http = await prober.check(spec(port), APP_ADDRESS)
        assert (verified.ok, verified.status) == (False, None)
        assert verified.error is not None
        assert verified.error.startswith("TLS: certificate verify failed: self")
        assert (unverified.ok, unverified.status) == (True, 200)
        assert (by_hostname.ok, bare.ok) == (True, True)
        # SNI: the spec's host, else the web head's hostname; none for a bare IP
        # (RFC 6066 §3), which the server sees as None.
        assert seen_tls.server_names == ["app.test", "app.test", "app.test", None]
        assert seen.hosts == [f"app.test:{port}", f"app.test:{port}", f"{APP_ADDRESS}:{port}"]
        assert not plain_http.ok and plain_http.error

    run(scenario)


def test_tcp_connect_ok_and_refused() -> None:
    accepted: list[str] = []

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername")[0])
        writer.close()

    with socket.socket() as closed:
        closed.bind((OTHER_ADDRESS, 0))
        refused_port = closed.getsockname()[1]

    async def scenario(prober: Prober) -> None:
        async with raw_server(handle, OTHER_ADDRESS) as port:
            up = await prober.check(spec(port, type="tcp"), OTHER_ADDRESS)
        down = await prober.check(spec(refused_port, type="tcp"), OTHER_ADDRESS)
        http_down = await prober.check(spec(refused_port), OTHER_ADDRESS)
        assert (up.ok, up.status, up.error) == (True, None, None)
        assert len(accepted) == 1
        assert (down.ok, down.error) == (False, "connection refused")
        assert (http_down.ok, http_down.error) == (False, "connection refused")

    run(scenario)


def test_silent_server_times_out_after_the_spec_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()  # holds the connection until the client leaves

    async def scenario(prober: Prober) -> None:
        async with raw_server(silent) as port:
            result = await prober.check(spec(port, timeout=0.3), APP_ADDRESS)
        assert (result.ok, result.status) == (False, None)
        assert result.error == "timed out after 0.3 s"
        assert 300 <= result.latency_ms < 1000

    run(scenario)


def test_not_http_is_a_short_error_not_an_exception() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario(prober: Prober) -> None:
        async with raw_server(garbage) as port:
            result = await prober.check(spec(port), APP_ADDRESS)
        assert not result.ok
        assert result.error == "bad HTTP response: bad status line"

    run(scenario)


SERVER_DELAY = 0.5  # seconds each of the slow server's replies takes


def test_concurrent_attempts_are_bounded() -> None:
    open_now = 0
    most = 0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(SERVER_DELAY)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()
        open_now -= 1

    async def scenario(prober: Prober) -> None:
        started = time.monotonic()
        async with raw_server(slow) as port:
            results = await asyncio.gather(
                *(prober.check(spec(port), APP_ADDRESS) for _ in range(6))
            )
        assert [result.ok for result in results] == [True] * 6
        assert most == 2
        # Six attempts two at a time: the last two waited two delays for a slot.
        assert time.monotonic() - started >= 3 * SERVER_DELAY
        # The wait for a slot is not the attempt's: each took about one delay, where
        # the last two would report three if their wait counted. The bound is halfway
        # (two delays), so a loaded CI host has a whole delay of slack either way.
        assert max(result.latency_ms for result in results) < 2 * SERVER_DELAY * 1000

    run(scenario, concurrency=2)


def test_cancellation_propagates() -> None:
    connected = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()

    async def scenario(prober: Prober) -> None:
        async with raw_server(silent) as port:
            attempt = asyncio.create_task(prober.check(spec(port, timeout=5), APP_ADDRESS))
            await asyncio.wait_for(connected.wait(), 2)
            attempt.cancel()
            with pytest.raises(asyncio.CancelledError):
                await attempt

    run(scenario)


def test_targets_keep_addresses_and_resolve_hostnames() -> None:
    async def scenario(prober: Prober) -> None:
        started = time.monotonic()
        pairs = await prober.targets(["192.0.2.1", "localhost.", "2001:db8::1", "192.0.2.1"])
        nothing = await prober.targets(["nothing.invalid."])
        mixed = await prober.targets(["nothing.invalid.", "192.0.2.7"])
        assert time.monotonic() - started < 5
        assert pairs[0] == ("192.0.2.1", None)
        assert pairs[-1] == ("2001:db8::1", None)
        resolved = pairs[1:-1]
        assert ("127.0.0.1", "localhost.") in resolved
        assert {address for address, _ in resolved} <= {"127.0.0.1", "::1"}
        assert {hostname for _, hostname in resolved} == {"localhost."}
        assert nothing == []
        assert mixed == [("192.0.2.7", None)]

    run(scenario)


def test_resolve_error_names_the_hostname() -> None:
    result = resolve_error("shop.example.com.")
    assert result.to_json() == {
        "address": "shop.example.com",
        "ok": False,
        "latency_ms": 0.0,
        "status": None,
        "error": "no address: shop.example.com did not resolve",
    }
