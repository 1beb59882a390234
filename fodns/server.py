"""The DNS server: UDP and TCP listeners, the UDP protocol (TCP's is in tcp.py), the
table they answer from, and reloading it.

One process (workers = 1) runs DNS and the admin API on one event loop; with
workers = N each worker process runs a DnsServer of its own (see workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fodns import batchio, rrl
from fodns.acmezone import apply_challenges
from fodns.config import Config, DnsConfig, ListenAddress, ZoneConfig
from fodns.errors import ListenError
from fodns.groups import load_stored_groups
from fodns.logs import get_logger
from fodns.query import QueryHandler
from fodns.store import Store, StoredGroups, ZoneDefaults
from fodns.table import AnswerTable
from fodns.tcp import TcpConnections, TcpProtocol
from fodns.transfer import Transfers
from fodns.wire import slip_reply
from fodns.zone import ZoneData, load_zone_file

log = get_logger()
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024  # ride out bursts while the loop is busy
TCP_LISTEN_BACKLOG = 1024


def load_zones(zones: Iterable[ZoneConfig]) -> list[ZoneData]:
    return [load_zone_file(zone.file, zone.name) for zone in zones]


def record_zone_files(store: Store, zones: Iterable[ZoneData]) -> None:
    """Tell the store what each zone file holds: it settles the serial (at least the
    file's, moved on if the file's records changed since the last load) and keeps
    the labels the file uses, which no group may take, whichever process asks."""
    for zone in zones:
        store.zone_loaded(
            zone.origin.to_text(omit_final_dot=True),
            zone.serial,
            zone.file_digest,
            zone.file_labels(),
            len(zone.file_names),
        )


def build_table(zones: list[ZoneData], store: Store) -> tuple[AnswerTable, int]:
    """The zone files' data and, on top of it, every group of the store: the table
    and the seq of the last event it includes (where its follower starts)."""
    started = time.monotonic()
    table = AnswerTable(zones)
    # The collector would walk the millions of objects being created again and again
    # (with it on, a million groups took 1.6-1.8 times as long to load): off while
    # loading, which leaves no garbage cycles behind, the rows read and dropped one
    # by one.
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        seq = store.read_stored_groups(lambda stored: _load(table, stored))
    finally:
        # The table is millions of long-lived objects: move them out of the
        # collector's reach, so full collections stop pausing queries (measured:
        # a 70 ms worst case under dnsperf before, with a 10,000-name zone).
        gc.freeze()
        if collecting:
            gc.enable()
    log.info(
        "table_built",
        names=len(table.names),
        replies=len(table.answers),
        seq=seq,
        seconds=round(time.monotonic() - started, 3),
    )
    return table, seq


def _load(table: AnswerTable, stored: StoredGroups) -> int:
    load_stored_groups(table, stored)
    apply_challenges(table, stored.challenges())
    return stored.seq


def zone_serials(table: AnswerTable) -> dict[str, int]:
    """Each zone's name (no trailing dot) and current SOA serial, for logs and /healthz."""
    return {zone.origin.to_text(omit_final_dot=True): zone.serial for zone in table.zones.values()}


# ---- protocols --------------------------------------------------------------------------


class UdpProtocol(asyncio.DatagramProtocol):
    """One datagram in, at most one datagram out; nothing is awaited. Used where
    batched I/O (batchio) is missing; replies are rate limited the same way."""

    def __init__(
        self, handler: QueryHandler, limiter: rrl.ResponseRateLimiter | None = None
    ) -> None:
        self.handler = handler
        self.limiter = limiter
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            reply = self.handler.answer(data, True)
            if reply is not None and self.limiter is not None:
                self.limiter.new_second(int(time.perf_counter()))
                verdict = self.limiter.judge(rrl.host_source(addr[0]), self.handler.limit_key)
                if verdict == rrl.DROP:
                    return
                if verdict == rrl.SLIP:
                    reply = slip_reply(reply)
        except Exception:  # a bug must cost one query, never the server
            log.exception("query_failed", transport="udp", size=len(data))
            return
        if reply is not None:
            self.transport.sendto(reply, addr)  # type: ignore[union-attr]

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier replies (port unreachable): nothing to do.
        pass


# ---- listeners --------------------------------------------------------------------------


def bind_socket(address: ListenAddress, kind: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, address.port))
        if kind == socket.SOCK_STREAM:
            sock.listen(TCP_LISTEN_BACKLOG)
        sock.setblocking(False)
        return sock
    except OSError as exc:
        sock.close()
        protocol = "tcp" if kind == socket.SOCK_STREAM else "udp"
        raise ListenError(f"cannot listen on {address} ({protocol}): {_why(exc)}") from None


def _why(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (is another DNS server running?)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not available on this host"
    return exc.strerror or str(exc)


def bind_pair(address: ListenAddress, reuse_port: bool) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on the same port; port 0 picks one free for both."""
    attempts = 20 if address.port == 0 else 1
    for attempt in range(attempts):
        udp = bind_socket(address, socket.SOCK_DGRAM, reuse_port)
        port = udp.getsockname()[1]
        try:
            tcp = bind_socket(ListenAddress(address.host, port), socket.SOCK_STREAM, reuse_port)
        except ListenError:
            udp.close()
            if attempt == attempts - 1:
                raise
            continue
        return udp, tcp
    raise AssertionError("unreachable")


@dataclass
class DnsServer:
    """UDP and TCP listeners on every address, answering from one QueryHandler.

    UDP replies pass response rate limiting (see rrl) unless `config.rrl` turns
    it off; one limiter serves every UDP socket of the process. TCP is never
    limited: a client that completes a handshake is who it says it is.
    """

    handler: QueryHandler
    config: DnsConfig
    reuse_port: bool = False
    transfers: Transfers | None = None
    bound: list[ListenAddress] = field(default_factory=list)
    tcp: TcpConnections = field(init=False)
    limiter: rrl.ResponseRateLimiter | None = None
    _transports: list[asyncio.BaseTransport] = field(default_factory=list)
    _readers: list[socket.socket] = field(default_factory=list)
    _servers: list[asyncio.AbstractServer] = field(default_factory=list)
    _second_timer: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.tcp = TcpConnections(self.config, self.handler.counters)

    async def start(self) -> list[ListenAddress]:
        loop = asyncio.get_running_loop()
        if self.config.rrl.enabled:
            self.limiter = rrl.ResponseRateLimiter(self.config.rrl, self.handler.counters)
        sockets = [bind_pair(address, self.reuse_port) for address in self.config.listen]
        for udp, tcp in sockets:
            if batchio.available():
                # recvmmsg/sendmmsg: a batch of datagrams per system call (see batchio).
                reader = batchio.BatchedUdpReader(udp, self.handler, self.limiter)
                loop.add_reader(udp.fileno(), reader.on_readable)
                self._readers.append(udp)
            else:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: UdpProtocol(self.handler, self.limiter), sock=udp
                )
                self._transports.append(transport)
            self._servers.append(
                await loop.create_server(
                    lambda: TcpProtocol(self.handler, self.transfers, self.tcp), sock=tcp
                )
            )
            host, port = udp.getsockname()[:2]
            self.bound.append(ListenAddress(host, port))
        if self.limiter is not None:
            self._next_second()
        return self.bound

    def _next_second(self) -> None:
        """Turn the limiter's second even when no query arrives, so its gauge of limited
        networks and its log lines do not wait for traffic."""
        assert self.limiter is not None
        self.limiter.new_second(int(time.perf_counter()))
        self._second_timer = asyncio.get_running_loop().call_later(1.0, self._next_second)

    async def close(self) -> None:
        if self._second_timer is not None:
            self._second_timer.cancel()
        loop = asyncio.get_running_loop()
        for sock in self._readers:
            loop.remove_reader(sock.fileno())
            sock.close()
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()


def open_store(config: Config, zones: list[ZoneData]) -> Store:
    """The store, told each zone's file serial and default group TTL."""
    serials = {zone.origin.to_text(omit_final_dot=True): zone.serial for zone in zones}
    defaults = {
        zone.name: ZoneDefaults(serial=serials[zone.name], group_ttl=zone.group_ttl)
        for zone in config.zones
    }
    return Store(config.store_path, defaults, acme=config.acme.place)


def reload_zones(handler: QueryHandler, config: Config, store: Store) -> bool:
    """SIGHUP: rebuild the table from the zone files and the store; on any error keep
    serving the old one."""
    try:
        zones = load_zones(config.zones)
        record_zone_files(store, zones)
        table, _ = build_table(zones, store)
    except Exception as exc:
        log.error("zone_reload_failed", error=str(exc), kept="previous table")
        return False
    handler.table = table
    log.info("zones_reloaded", zones=zone_serials(table))
    return True


# ---- running --------------------------------------------------------------------------


def run_event_loop(main: Callable[[], Any]) -> Any:
    """Run a coroutine function on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def install_signal_handlers(stop: asyncio.Event, on_reload: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
