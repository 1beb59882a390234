"""One health check attempt of one address (CheckResult), and the Prober that runs them.

A Prober connects to the address itself, over HTTP, HTTPS or a plain TCP connect as
the app's CheckSpec says, and reports what happened: whether the attempt passed, how
long it took, the HTTP status it got and, when it failed, why in a short sentence.
It does not decide whether an address is up or down (rise and fall count attempts
elsewhere). It also turns an app's web head into the addresses to check, resolving
a hostname web head when asked, since a load balancer's addresses move.

Every failure is a CheckResult with ok False, never an exception; only cancellation
propagates. A semaphore bounds the attempts in flight, so 10,000 addresses never
hold 10,000 sockets at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from fodns.checks import BODY_READ_BYTES, DEFAULT_PORTS, CheckSpec

USER_AGENT = "fodns-health-check/1"
DEFAULT_CONCURRENCY = 256
# getaddrinfo runs in a thread and follows resolv.conf's own timeouts (5 s per try,
# several tries); a check round must not wait that long for a web head's name.
RESOLVE_TIMEOUT = 5.0
# CPython before 3.12.7 (and 3.13.0) can leak a TLS connection whose peer never
# finishes the TLS shutdown; aiohttp then aborts it after a while when asked. Newer
# versions fixed it and aiohttp warns if asked needlessly.
_TLS_SHUTDOWN_LEAKS = sys.version_info < (3, 12, 7) or (3, 13, 0) <= sys.version_info < (3, 13, 1)
# "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" -> "wrong version number"
_SSL_MESSAGE = re.compile(r"^(\[[^\]]*\]\s*)?(?P<text>.*?)(\s*\(_ssl\.c:\d+\))?$")
_ERROR_MAX = 200


@dataclass(frozen=True)
class CheckResult:
    """What one attempt at one address found."""

    address: str  # the IP address checked (the hostname, for one that did not resolve)
    ok: bool
    latency_ms: float  # from the start of the connect to the verdict, failures included
    status: int | None  # the HTTP status, when a response came
    error: str | None  # None when ok; else a short sentence ("connection refused", ...)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "ok": self.ok,
            "latency_ms": round(self.latency_ms, 3),
            "status": self.status,
            "error": self.error,
        }


def resolve_error(hostname: str) -> CheckResult:
    """The result to report for a hostname web head that resolved to no address.

    `Prober.targets` leaves such a hostname out (it has no address to check): a
    hostname of the web head with no pair in its answer is one to report with this."""
    name = hostname.rstrip(".")
    return CheckResult(
        address=name,
        ok=False,
        latency_ms=0.0,
        status=None,
        error=f"no address: {name} did not resolve",
    )


class _Received:
    """The status of a response, kept when the attempt then fails (a timeout while
    reading the body still reports the status that came)."""

    status: int | None = None


class Prober:
    """Runs check attempts; owns the aiohttp ClientSession and the bound on concurrent
    attempts. Create it inside the event loop that will run the checks; `close` it."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def check(
        self, spec: CheckSpec, address: str, hostname: str | None = None
    ) -> CheckResult:
        """One attempt at `address` (an IP address), `hostname` being the web head's
        name it was resolved from, if any. Waits for a free slot first; the timeout and
        the latency count from the moment the attempt starts, not from the wait."""
        async with self._slots:
            received = _Received()
            started = time.monotonic()
            deadline = asyncio.timeout(spec.timeout)
            error: str | None
            try:
                async with deadline:
                    if spec.type == "tcp":
                        await _connect(address, spec.port)
                        error = None
                    else:
                        error = await self._request(spec, address, hostname, received)
            except Exception as exc:  # every failure is a result; CancelledError is not one
                error = (
                    f"timed out after {spec.timeout:g} s"
                    if deadline.expired()
                    else _describe_failure(exc)
                )
            latency_ms = (time.monotonic() - started) * 1000.0
            return CheckResult(
                address=address,
                ok=error is None,
                latency_ms=latency_ms,
                status=received.status,
                error=error,
            )

    async def targets(self, web_head: Sequence[str]) -> list[tuple[str, str | None]]:
        """The (address, hostname) pairs to check for an app's web head.

        An address is checked as it is (hostname None). A hostname (stored with its
        final dot, "lb.example.com.") is resolved now, A and AAAA, and each of its
        addresses is paired with it. A hostname that does not resolve adds nothing:
        report it with `resolve_error(hostname)`. An address listed twice is checked once.
        """
        names = [entry for entry in web_head if not _is_address(entry)]
        resolved = await asyncio.gather(*(_resolve(name) for name in names))
        addresses_of = dict(zip(names, resolved, strict=True))
        pairs: list[tuple[str, str | None]] = []
        seen: set[tuple[str, str | None]] = set()
        for entry in web_head:
            found: list[tuple[str, str | None]] = (
                [(entry, None)]
                if entry not in addresses_of
                else [(address, entry) for address in addresses_of[entry]]
            )
            for pair in found:
                if pair not in seen:
                    seen.add(pair)
                    pairs.append(pair)
        return pairs

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop (aiohttp ties a session to it).
        if self._session is None:
            connector = aiohttp.TCPConnector(
                # A fresh connection per attempt: a check measures and proves the
                # connect too, and a pooled connection would hide a dead listener.
                force_close=True,
                # The semaphore is the bound (it counts TCP checks too); a pool limit
                # would queue attempts inside aiohttp, where the wait would count
                # against their timeout.
                limit=0,
                limit_per_host=0,
                enable_cleanup_closed=_TLS_SHUTDOWN_LEAKS,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # No cookies kept from one check to the next, no proxy from the
                # environment (a check must reach the address itself), and no
                # timeout of aiohttp's own: `check` bounds the whole attempt.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def _request(
        self, spec: CheckSpec, address: str, hostname: str | None, received: _Received
    ) -> str | None:
        """One HTTP(S) request; None when it passed, else why it did not."""
        name = spec.host or (hostname.rstrip(".") if hostname else None)
        headers = {
            "Host": _host_header(name or _url_host(address), spec),
            # The body is searched as the server sends it, not as a compressed stream.
            "Accept-Encoding": "identity",
        }
        url = URL(f"{spec.type}://{_url_host(address)}:{spec.port}{spec.path}", encoded=True)
        async with self._client().request(
            spec.method,
            url,
            headers=headers,
            # A redirect is an answer: its status is judged against the range.
            allow_redirects=False,
            # True: aiohttp's default context, the system's trust store and a
            # hostname check against the server name. False: TLS without checks.
            ssl=spec.tls_verify,
            # SNI and the name the certificate must match. Without a name the
            # certificate must name the address, and no SNI is sent (RFC 6066 §3
            # allows only hostnames in it).
            server_hostname=name if spec.type == "https" else None,
        ) as response:
            try:
                received.status = response.status
                if not spec.status_min <= response.status <= spec.status_max:
                    return f"status {response.status}, expected {spec.status_min}-{spec.status_max}"
                # A HEAD has no body to search (checks.py refuses body_contains with it).
                if spec.body_contains is None or spec.method == "HEAD":
                    return None
                head = await _read_at_most(response, BODY_READ_BYTES)
                if spec.body_contains not in head.decode("utf-8", errors="replace"):
                    return (
                        f"body has no {spec.body_contains!r} in its first {BODY_READ_BYTES} bytes"
                    )
                return None
            finally:
                # Never read the rest: closing drops the connection unread.
                response.close()


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The first `limit` bytes of the body (fewer if it is shorter)."""
    head = bytearray()
    while len(head) < limit:
        chunk = await response.content.read(limit - len(head))
        if not chunk:
            break
        head += chunk
    return bytes(head)


async def _connect(address: str, port: int) -> None:
    """A TCP check: the connect is the whole test, then the connection is closed."""
    _reader, writer = await asyncio.open_connection(address, port)
    writer.close()
    # The connect succeeded; how the peer takes the close does not matter.
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _is_address(entry: str) -> bool:
    try:
        ipaddress.ip_address(entry)
    except ValueError:
        return False
    return True


def _url_host(address: str) -> str:
    # An IPv6 address is bracketed in a URL and a Host header (RFC 3986 §3.2.2).
    return f"[{address}]" if ":" in address else address


def _host_header(host: str, spec: CheckSpec) -> str:
    """The Host header: the name, with the port when it is not the scheme's default
    (RFC 9110 §7.2; Route53 health checks send it the same way)."""
    return host if spec.port == DEFAULT_PORTS[spec.type] else f"{host}:{spec.port}"


async def _resolve(hostname: str) -> list[str]:
    """The addresses of a hostname web head, A and AAAA, in the resolver's order;
    [] when it does not resolve in RESOLVE_TIMEOUT."""
    loop = asyncio.get_running_loop()
    # The name as stored is absolute ("lb.example.com."), so no search domain applies.
    # glibc's /etc/hosts source matches names only without the final dot, so a name
    # that does not resolve absolute is asked for once more as /etc/hosts writes it.
    candidates = [hostname, hostname.rstrip(".")] if hostname.endswith(".") else [hostname]
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            for candidate in candidates:
                try:
                    infos = await loop.getaddrinfo(
                        candidate, None, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM
                    )
                except (socket.gaierror, UnicodeError):
                    continue
                addresses: list[str] = []
                for _family, _type, _proto, _canonname, sockaddr in infos:
                    address = str(sockaddr[0])
                    if address not in addresses:
                        addresses.append(address)
                if addresses:
                    return addresses
    except TimeoutError:
        pass
    return []


def _describe_failure(exc: BaseException) -> str:
    """A short, stable sentence for why an attempt failed."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        exc = exc.certificate_error
    elif isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or _ssl_text(exc)
        return _short(f"TLS: certificate verify failed: {reason}")
    if isinstance(exc, ssl.SSLError):
        return _short(f"TLS: {_ssl_text(exc)}")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed before a complete response"
    if isinstance(exc, aiohttp.ClientResponseError):
        # A reply that is not HTTP: the first line of aiohttp's message, without the
        # bytes it quotes ("Bad status line:\n  Expected HTTP/...\n  b'SSH-2.0-...'").
        reason = (exc.message.strip().splitlines() or [""])[0].strip().rstrip(":")
        reason = reason or "unreadable"
        return _short(f"bad HTTP response: {reason[:1].lower() + reason[1:]}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "response body cut short"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return _short(exc.strerror[:1].lower() + exc.strerror[1:])  # "no route to host"
    text = str(exc)
    return _short(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _ssl_text(exc: ssl.SSLError) -> str:
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    match = _SSL_MESSAGE.match(text)
    return (match.group("text") if match else text) or (exc.reason or "handshake failed")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 3] + "..."
