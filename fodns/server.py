"""The DNS server: UDP and TCP listeners, their protocols, reload, and worker processes.

One process (workers = 1) runs DNS and the admin API on one event loop. With
workers = N the main process runs the API and supervises N spawned worker
processes; each binds every listen address itself with SO_REUSEPORT (the
kernel spreads queries over them), loads the zones and builds its own table,
and reports its counters to the main process once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fodns import batchio, rrl
from fodns.config import Config, DnsConfig, ListenAddress, ZoneConfig
from fodns.errors import ListenError
from fodns.groups import catch_up, load_groups
from fodns.logs import configure_logging, get_logger
from fodns.query import QueryHandler
from fodns.store import Store, ZoneDefaults
from fodns.table import AnswerTable
from fodns.transfer import Transfers
from fodns.tsig import tsig_keyring
from fodns.wire import name_end, slip_reply
from fodns.zone import ZoneData, load_zone_file

log = get_logger()
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024  # ride out bursts while the loop is busy
TCP_LISTEN_BACKLOG = 1024
TCP_LENGTH_PREFIX = 2  # RFC 1035 §4.2.2: two-octet length before each message
# Queries a client may pipeline behind a zone transfer before it is cut off.
TCP_PENDING_LIMIT = 64 * 1024
# Transfer messages (~16 KB each) rendered before other work gets the loop.
TRANSFER_MESSAGES_PER_TURN = 4
COUNTER_REPORT_INTERVAL = 1.0
# Workers look for new events this often: a change is served by every worker
# within about this long after it is committed.
STORE_POLL_INTERVAL = 0.005


def load_zones(zones: Iterable[ZoneConfig]) -> list[ZoneData]:
    return [load_zone_file(zone.file, zone.name) for zone in zones]


def build_table(config: Config, store: Store | None = None) -> AnswerTable:
    """The zone files' data, and on top of it every group of the store."""
    table = AnswerTable(load_zones(config.zones))
    add_groups(table, store)
    return table


def add_groups(table: AnswerTable, store: Store | None) -> None:
    """Every group of the store on top of the zone files' data, then frozen."""
    if store is not None:
        for zone in table.zones.values():
            # The store settles the serial: at least the file's, and moved on if
            # the file's records changed since the last load.
            name = zone.origin.to_text(omit_final_dot=True)
            store.zone_loaded(name, zone.serial, zone.file_digest)
        groups, apps, serials, _ = store.snapshot()
        load_groups(table, groups, apps, serials)
    # The table is hundreds of thousands of long-lived objects: move them out of
    # the collector's reach, so full collections stop pausing queries (measured:
    # a 70 ms worst case under dnsperf before, with a 10,000-name zone).
    gc.collect()
    gc.freeze()


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


class TcpProtocol(asyncio.Protocol):
    """RFC 7766: length-framed messages, several per connection, answered in order."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.handler = server.handler
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.last_activity = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None
        self.counted = False
        # A zone transfer being sent: later queries on the connection wait for it
        # (replies go out in order), and the peer's reading paces it.
        self.transfer: asyncio.Task[None] | None = None
        self.writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.server.tcp_connections >= self.server.config.tcp_max_connections:
            # RFC 7766 §6.2.2: over the cap, new connections are closed at once.
            self.transport.abort()  # type: ignore[union-attr]
            return
        self.server.tcp_connections += 1
        self.counted = True
        self.last_activity = time.monotonic()
        self.idle_timer = asyncio.get_running_loop().call_later(
            self.server.config.tcp_idle_timeout, self._check_idle
        )

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        self.buffer += data
        if self.transfer is None:
            self._answer_buffered()
        elif len(self.buffer) > TCP_PENDING_LIMIT:
            self.transport.close()  # type: ignore[union-attr]  # pipelining far past a transfer

    def _answer_buffered(self) -> None:
        buffer = self.buffer
        transport = self.transport
        assert transport is not None
        while len(buffer) >= TCP_LENGTH_PREFIX and not transport.is_closing():
            length = buffer[0] << 8 | buffer[1]
            if len(buffer) < TCP_LENGTH_PREFIX + length:
                break
            message = bytes(buffer[TCP_LENGTH_PREFIX : TCP_LENGTH_PREFIX + length])
            del buffer[: TCP_LENGTH_PREFIX + length]
            transfers = self.server.transfers
            if transfers is not None and is_transfer_query(message):
                # RFC 5936 §4.2: many messages; sent by a task, between other work.
                peer = transport.get_extra_info("peername")
                self.transfer = asyncio.get_running_loop().create_task(
                    self._send_transfer(transfers, message, peer[0])
                )
                return
            try:
                reply = self.handler.answer(message, False)
            except Exception:
                log.exception("query_failed", transport="tcp", size=len(message))
                reply = None
            if reply is None:
                # Not even a header to answer: the stream cannot be trusted further.
                transport.close()
                return
            transport.write(len(reply).to_bytes(2, "big") + reply)

    async def _send_transfer(self, transfers: Transfers, query: bytes, peer: str) -> None:
        transport = self.transport
        assert transport is not None
        sent = 0
        try:
            for message in transfers.answer(query, peer):
                if transport.is_closing():
                    return
                transport.write(len(message).to_bytes(2, "big") + message)
                sent += 1
                self.last_activity = time.monotonic()
                if self.writable is not None:
                    await self.writable  # the secondary reads slower than we render
                elif sent % TRANSFER_MESSAGES_PER_TURN == 0:
                    await asyncio.sleep(0)  # let queries in between
        except Exception:
            log.exception("transfer_failed", peer=peer, messages_sent=sent)
            sent = 0
        finally:
            self.transfer = None
        if sent == 0:
            transport.close()  # nothing to answer with (or a failure half-way)
        elif not transport.is_closing():
            self._answer_buffered()

    def pause_writing(self) -> None:
        # A client that pipelines without reading: stop reading until it catches up,
        # and hold any transfer being sent.
        self.transport.pause_reading()  # type: ignore[union-attr]
        if self.writable is None:
            self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self.transport.resume_reading()  # type: ignore[union-attr]
        self._release_writer()

    def _release_writer(self) -> None:
        if self.writable is not None:
            if not self.writable.done():
                self.writable.set_result(None)
            self.writable = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.server.tcp_connections -= 1
            self.counted = False
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self._release_writer()  # a transfer waiting to write sees the connection closed

    def _check_idle(self) -> None:
        idle_for = time.monotonic() - self.last_activity
        timeout = self.server.config.tcp_idle_timeout
        if idle_for >= timeout:
            self.transport.close()  # type: ignore[union-attr]
        else:
            self.idle_timer = asyncio.get_running_loop().call_later(
                timeout - idle_for, self._check_idle
            )


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


def is_transfer_query(message: bytes) -> bool:
    """A plain QUERY whose one question asks for AXFR or IXFR."""
    if len(message) < 17 or message[2] & 0xF8 or message[4:6] != b"\x00\x01":
        return False
    end = name_end(message)
    return end > 0 and message[end + 1 : end + 3] in (b"\x00\xfc", b"\x00\xfb")


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
    tcp_connections: int = 0
    bound: list[ListenAddress] = field(default_factory=list)
    limiter: rrl.ResponseRateLimiter | None = None
    _transports: list[asyncio.BaseTransport] = field(default_factory=list)
    _readers: list[socket.socket] = field(default_factory=list)
    _servers: list[asyncio.AbstractServer] = field(default_factory=list)
    _second_timer: asyncio.TimerHandle | None = None

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
            self._servers.append(await loop.create_server(lambda: TcpProtocol(self), sock=tcp))
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


def open_store(config: Config, table: AnswerTable) -> Store:
    """The store, told each zone's file serial (from `table`) and default group TTL."""
    serials = zone_serials(table)
    zones = {
        zone.name: ZoneDefaults(serial=serials[zone.name], group_ttl=zone.group_ttl)
        for zone in config.zones
    }
    return Store(config.store_path, zones)


def reload_zones(handler: QueryHandler, config: Config, store: Store | None = None) -> bool:
    """SIGHUP: rebuild the table from the zone files and the store; on any error keep
    serving the old one."""
    try:
        table = build_table(config, store)
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


def worker_main(
    config: Config,
    index: int,
    report: multiprocessing.connection.Connection,
    listen_from: multiprocessing.connection.Connection | None = None,
) -> None:
    """A worker process: its own table, its own SO_REUSEPORT sockets, counters to the parent.

    With `listen_from`, the worker builds its table, then waits there for the
    addresses to bind (worker 0 picks any port given as 0), so that all workers
    build at once instead of one after another.
    """
    configure_logging()
    worker_log = log.bind(worker=index, pid=os.getpid())

    async def serve() -> None:
        table = AnswerTable(load_zones(config.zones))
        store = open_store(config, table)
        applied = store.last_seq()
        add_groups(table, store)
        handler = QueryHandler(table, config.dns.udp_payload, tsig_keyring(config.tsig))
        dns_config = config.dns
        if listen_from is not None:
            addresses = await asyncio.to_thread(listen_from.recv)
            dns_config = dataclasses.replace(
                dns_config, listen=[ListenAddress(host, port) for host, port in addresses]
            )
        server = DnsServer(
            handler,
            dns_config,
            reuse_port=True,
            transfers=Transfers(lambda: handler.table, config.zones, config.tsig, store.journal),
        )
        try:
            bound = await server.start()
        except ListenError as exc:
            report.send(("failed", str(exc)))
            return
        report.send(("ready", [(a.host, a.port) for a in bound]))
        stop = asyncio.Event()

        def reload() -> None:
            reloaded = reload_zones(handler, config, store)
            with contextlib.suppress(OSError):
                report.send(("reloaded", zone_serials(handler.table) if reloaded else None))

        install_signal_handlers(stop, reload)
        worker_log.info("worker_started", listen=[str(a) for a in bound])
        next_report = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), STORE_POLL_INTERVAL)
            # Follow the change log: the store is the spine, every worker reads it.
            if store.last_seq() > applied:
                applied = catch_up(handler.table, store, applied)
                with contextlib.suppress(OSError):
                    report.send(("applied", applied))
            if time.monotonic() >= next_report:
                next_report += COUNTER_REPORT_INTERVAL
                with contextlib.suppress(OSError):
                    report.send(("counters", handler.counters))
        await server.close()
        store.close()

    try:
        run_event_loop(serve)
    except Exception as exc:  # building the table failed, or worse: tell the parent
        with contextlib.suppress(OSError):
            report.send(("failed", str(exc)))
        raise


@dataclass
class Worker:
    index: int
    process: multiprocessing.process.BaseProcess
    report: multiprocessing.connection.Connection
    counters: list[int] = field(default_factory=list)
    applied_seq: int = 0
    reloads: int = 0  # SIGHUP reloads finished (or failed), to wait for the next one
    # Where the parent sends the addresses to bind, for a worker started before
    # worker 0 had picked its port.
    instructions: multiprocessing.connection.Connection | None = None


class WorkerPool:
    """Spawns and supervises DNS worker processes; restarts one that dies unexpectedly."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.workers: dict[int, Worker] = {}
        self.context = multiprocessing.get_context("spawn")
        self.stopping = False
        self.listen: list[ListenAddress] = []

    def start(self) -> list[ListenAddress]:
        """Start every worker at once; worker 0 binds first, and if a port was 0 the
        others are told the port it got before they bind the same."""
        needs_port = any(address.port == 0 for address in self.config.dns.listen)
        first = self._spawn(0, self.config)
        others = [
            self._spawn(index, self.config, wait_for_listen=needs_port)
            for index in range(1, self.config.dns.workers)
        ]
        self.listen = [ListenAddress(h, p) for h, p in self._wait_ready(first)]
        self.config = _with_listen(self.config, self.listen)  # replacements bind these
        for worker in others:
            if worker.instructions is not None:
                worker.instructions.send([(a.host, a.port) for a in self.listen])
        for worker in others:
            self._wait_ready(worker)
        return self.listen

    def _spawn(self, index: int, config: Config, wait_for_listen: bool = False) -> Worker:
        receive, send = self.context.Pipe(duplex=False)
        listen_from, instructions = (
            self.context.Pipe(duplex=False) if wait_for_listen else (None, None)
        )
        process = self.context.Process(
            target=worker_main,
            args=(config, index, send, listen_from),
            name=f"fodns-dns-{index}",
            daemon=True,
        )
        process.start()
        send.close()
        if listen_from is not None:
            listen_from.close()
        worker = Worker(index, process, receive, instructions=instructions)
        self.workers[index] = worker
        return worker

    def _wait_ready(self, worker: Worker, timeout: float = 60.0) -> list[tuple[str, int]]:
        if not worker.report.poll(timeout):
            raise ListenError(f"DNS worker {worker.index} did not start within {timeout:.0f} s")
        try:
            kind, payload = worker.report.recv()
        except EOFError:
            raise ListenError(f"DNS worker {worker.index} exited while starting") from None
        if kind != "ready":
            raise ListenError(str(payload))
        return payload  # type: ignore[no-any-return]

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        for worker in self.workers.values():
            loop.add_reader(worker.report.fileno(), self._on_report, loop, worker)

    def _on_report(self, loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
        try:
            kind, payload = worker.report.recv()
        except (EOFError, OSError):
            loop.remove_reader(worker.report.fileno())
            worker.report.close()
            if not self.stopping:
                log.error("worker_died", worker=worker.index, exitcode=worker.process.exitcode)
                replacement = self._spawn(worker.index, self.config)
                loop.add_reader(replacement.report.fileno(), self._on_report, loop, replacement)
            return
        if kind == "counters":
            worker.counters = payload
        elif kind == "applied":
            worker.applied_seq = payload
        elif kind == "reloaded":
            worker.reloads += 1

    async def served(self, seq: int, timeout: float = 2.0) -> bool:
        """Wait until every worker has applied event `seq`; False if one has not in time."""
        deadline = time.monotonic() + timeout
        while any(w.applied_seq < seq for w in self.workers.values()):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    async def reload(self, timeout: float = 120.0) -> bool:
        """SIGHUP every worker and wait until each has reloaded its zone files (or
        kept its old table); False if one has not in time."""
        wanted = {index: worker.reloads + 1 for index, worker in self.workers.items()}
        self.signal_all(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while any(w.reloads < wanted.get(i, 0) for i, w in self.workers.items()):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def counters(self) -> list[list[int]]:
        return [w.counters for w in self.workers.values() if w.counters]

    def signal_all(self, signum: int) -> None:
        for worker in self.workers.values():
            if worker.process.pid is not None and worker.process.is_alive():
                os.kill(worker.process.pid, signum)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping = True
        self.signal_all(signal.SIGTERM)
        for worker in self.workers.values():
            worker.process.join(timeout)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()


def _with_listen(config: Config, listen: list[ListenAddress]) -> Config:
    return dataclasses.replace(config, dns=dataclasses.replace(config.dns, listen=listen))
