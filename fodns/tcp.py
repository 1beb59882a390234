"""DNS over TCP (RFC 7766): framing, pipelining, zone transfers on a connection, and the
deadlines and caps that keep slow or hostile clients from holding connections.

Each connection is in one of four states, and one deadline governs each:

- a message is arriving (its first byte, the length prefix, is in): it must arrive
  whole within `tcp_message_timeout`, however it trickles;
- our replies are backed up (the peer is not reading): it must take some of them
  within `tcp_write_timeout`, or it is cut; this also bounds a zone transfer whose
  reader stops, since a transfer is paced by the reader and otherwise never ends;
- a zone transfer is being sent and the peer is reading it: no deadline;
- otherwise the connection is idle, and is closed after `tcp_idle_timeout` without a
  complete message. Bytes that never make a message do not count as activity.

One timer per connection carries the nearest deadline; when it fires it looks at the
state again rather than being moved on every byte.

The caps of RFC 7766 §6.2.2 are per DNS process (with SO_REUSEPORT each worker has
its own): at most `tcp_max_connections_per_source` from one source, and at most
`tcp_max_connections` in all, where a newcomer over the total closes the connection
idle the longest (RFC 7766 §6.2.3: servers under load may drop idle connections at
once) instead of being refused while idle ones hold the slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import OrderedDict
from typing import TYPE_CHECKING

from fodns import querystats
from fodns.config import DnsConfig
from fodns.logs import get_logger
from fodns.query import QueryHandler
from fodns.wire import name_end

if TYPE_CHECKING:
    from fodns.transfer import Transfers

log = get_logger()
TCP_LENGTH_PREFIX = 2  # RFC 1035 §4.2.2: two-octet length before each message
# Queries a client may pipeline behind a zone transfer before it is cut off.
TCP_PENDING_LIMIT = 64 * 1024
# Transfer messages (~16 KB each) rendered before other work gets the loop.
TRANSFER_MESSAGES_PER_TURN = 4
# A deadline counts as reached this close to it: uvloop keeps time in milliseconds and
# may fire a timer a fraction of one early.
DEADLINE_SLACK = 0.002
# SO_LINGER on, 0 s: closing sends RST and drops unsent data at once, so a peer that
# stalls is not kept in kernel buffers either.
LINGER_RESET = struct.pack("ii", 1, 0)
# An IPv6 source is its /64: the interface identifier is the low 64 bits (RFC 4291
# §2.5.1), so one host or LAN can use 2^64 addresses of its own.
IPV6_SOURCE_BYTES = 8


def source_key(host: str) -> bytes:
    """What the per-source cap counts: an IPv4 address whole, an IPv6 address's /64."""
    address = host.partition("%")[0]  # a link-local address's zone is not part of it
    if ":" in address:
        return socket.inet_pton(socket.AF_INET6, address)[:IPV6_SOURCE_BYTES]
    return socket.inet_pton(socket.AF_INET, address)


def is_transfer_query(message: bytes) -> bool:
    """A plain QUERY whose one question asks for AXFR or IXFR."""
    if len(message) < 17 or message[2] & 0xF8 or message[4:6] != b"\x00\x01":
        return False
    end = name_end(message)
    return end > 0 and message[end + 1 : end + 3] in (b"\x00\xfc", b"\x00\xfb")


class TcpConnections:
    """The open TCP connections of one process, least recently active first, and how
    many each source holds."""

    def __init__(self, config: DnsConfig, counters: list[int]) -> None:
        self.config = config
        self.counters = counters
        self.by_activity: OrderedDict[TcpProtocol, None] = OrderedDict()
        self.per_source: dict[bytes, int] = {}

    def admit(self, connection: TcpProtocol) -> bool:
        """Count a new connection in, making room if it is over the total cap; False
        when it must be closed instead."""
        held = self.per_source.get(connection.source, 0)
        if held >= self.config.tcp_max_connections_per_source:
            # RFC 7766 §6.2.2: servers may limit connections per client address.
            self.count_closed("source_cap")
            return False
        if len(self.by_activity) >= self.config.tcp_max_connections and not self._make_room():
            self.count_closed("total_cap")
            return False
        self.per_source[connection.source] = held + 1
        self.by_activity[connection] = None
        self.counters[querystats.TCP_OPEN] = len(self.by_activity)
        return True

    def _make_room(self) -> bool:
        """Close the connection idle the longest; a zone transfer being sent is never
        one of them. False when every connection is sending one."""
        idlest = next((c for c in self.by_activity if c.transfer is None), None)
        if idlest is None:
            return False
        idlest.close("evicted")
        return True

    def touch(self, connection: TcpProtocol) -> None:
        self.by_activity.move_to_end(connection)

    def forget(self, connection: TcpProtocol) -> None:
        del self.by_activity[connection]
        held = self.per_source[connection.source] - 1
        if held:
            self.per_source[connection.source] = held
        else:
            del self.per_source[connection.source]
        self.counters[querystats.TCP_OPEN] = len(self.by_activity)

    def count_closed(self, reason: str) -> None:
        self.counters[querystats.TCP_CLOSED[reason]] += 1


class TcpProtocol(asyncio.Protocol):
    """RFC 7766: length-framed messages, several per connection, answered in order."""

    def __init__(
        self, handler: QueryHandler, transfers: Transfers | None, connections: TcpConnections
    ) -> None:
        self.handler = handler
        self.transfers = transfers
        self.connections = connections
        self.config = connections.config
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.peer = ""  # the client's address
        self.source = b""  # what the per-source cap counts of it
        self.admitted = False
        # Loop times: the last sign of life (a complete message in, or the peer taking
        # our replies), the first byte of a message not yet complete, the moment our
        # replies backed up (and how much was waiting), the moment we closed.
        self.last_active = 0.0
        self.message_started: float | None = None
        self.stalled_since: float | None = None
        self.stalled_bytes = 0
        self.closed_at: float | None = None
        self.deadline: asyncio.TimerHandle | None = None
        # A zone transfer being sent: later queries on the connection wait for it
        # (replies go out in order), and the peer's reading paces it.
        self.transfer: asyncio.Task[None] | None = None
        self.writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if not peer:  # reset before we got to it
            self.transport.abort()  # type: ignore[union-attr]
            return
        self.peer = peer[0]
        self.source = source_key(self.peer)
        if not self.connections.admit(self):
            self.transport.abort()  # type: ignore[union-attr]  # over a cap (RFC 7766 §6.2.2)
            return
        self.admitted = True
        self.last_active = self.loop.time()
        self._watch(self.last_active + self.config.tcp_idle_timeout)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.transfer is None:
            self._answer_buffered()
        elif len(self.buffer) > TCP_PENDING_LIMIT:
            self.close()  # pipelining far past a transfer

    def _answer_buffered(self) -> None:
        buffer = self.buffer
        transport = self.transport
        assert transport is not None
        answered = False
        while len(buffer) >= TCP_LENGTH_PREFIX and not transport.is_closing():
            length = buffer[0] << 8 | buffer[1]
            if len(buffer) < TCP_LENGTH_PREFIX + length:
                break
            message = bytes(buffer[TCP_LENGTH_PREFIX : TCP_LENGTH_PREFIX + length])
            del buffer[: TCP_LENGTH_PREFIX + length]
            answered = True
            if self.transfers is not None and is_transfer_query(message):
                # RFC 5936 §4.2: many messages; sent by a task, between other work.
                self.transfer = self.loop.create_task(
                    self._send_transfer(self.transfers, message, self.peer)
                )
                break
            try:
                reply = self.handler.answer(message, False)
            except Exception:
                log.exception("query_failed", transport="tcp", size=len(message))
                reply = None
            if reply is None:
                # Not even a header to answer: the stream cannot be trusted further.
                self.close()
                return
            transport.write(len(reply).to_bytes(2, "big") + reply)
        if answered:
            now = self.loop.time()
            self._active(now)
            # Bytes left over are the start of the next message; while a transfer is
            # sent nothing is read from the buffer, so nothing is timed either.
            if buffer and self.transfer is None:
                self.message_started = now
                self._watch(now + self.config.tcp_message_timeout)
            else:
                self.message_started = None
        elif buffer and self.message_started is None:
            self.message_started = now = self.loop.time()
            self._watch(now + self.config.tcp_message_timeout)

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
                self._active(self.loop.time())
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
            self.close()  # nothing to answer with (or a failure half-way)
        elif not transport.is_closing():
            self._answer_buffered()  # queries pipelined behind the transfer

    def _active(self, now: float) -> None:
        self.last_active = now
        if self.admitted:
            self.connections.touch(self)

    # ---- flow control ------------------------------------------------------------------

    def pause_writing(self) -> None:
        # A client that pipelines without reading: stop reading until it catches up,
        # and hold any transfer being sent.
        transport = self.transport
        assert transport is not None
        transport.pause_reading()
        if self.writable is None:
            self.writable = self.loop.create_future()
        self.stalled_since = now = self.loop.time()
        self.stalled_bytes = transport.get_write_buffer_size()
        self._watch(now + self.config.tcp_write_timeout)

    def resume_writing(self) -> None:
        self.transport.resume_reading()  # type: ignore[union-attr]
        self.stalled_since = None
        now = self.loop.time()
        self._active(now)
        if self.message_started is not None:
            self.message_started = now  # we were not reading: its time starts again
        self._release_writer()

    def _release_writer(self) -> None:
        if self.writable is not None:
            if not self.writable.done():
                self.writable.set_result(None)
            self.writable = None

    # ---- deadlines and closing ---------------------------------------------------------

    def _watch(self, deadline: float) -> None:
        """Have the deadline check run by `deadline` at the latest."""
        timer = self.deadline
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self.deadline = self.loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self.deadline = None
        now = self.loop.time() + DEADLINE_SLACK
        config = self.config
        if self.closed_at is not None:
            # Closed after the replies already written: a peer that never takes them
            # does not keep the socket either.
            deadline = self.closed_at + config.tcp_write_timeout
            if now >= deadline:
                self._cut(None)
                return
        elif self.stalled_since is not None:
            waiting = self.transport.get_write_buffer_size()  # type: ignore[union-attr]
            if waiting < self.stalled_bytes:  # it took some: slow, not stopped
                self.stalled_since, self.stalled_bytes = now, waiting
            deadline = self.stalled_since + config.tcp_write_timeout
            if now >= deadline:
                self._cut("write_timeout")
                return
        elif self.transfer is not None:
            deadline = now + config.tcp_idle_timeout  # being read: look again later
        elif self.message_started is not None:
            deadline = self.message_started + config.tcp_message_timeout
            if now >= deadline:
                self._cut("message_timeout")
                return
        else:
            deadline = self.last_active + config.tcp_idle_timeout
            if now >= deadline:
                self.close("idle")  # RFC 7766 §6.2.3
                return
        self.deadline = self.loop.call_at(deadline, self._check_deadline)

    def close(self, reason: str | None = None) -> None:
        """Close once the replies already written are sent (the slot is free at once)."""
        transport = self.transport
        if transport is None or self.closed_at is not None:
            return
        if reason is not None:
            self.connections.count_closed(reason)
        self._forget()
        transport.close()
        self.closed_at = now = self.loop.time()
        self._watch(now + self.config.tcp_write_timeout)

    def _cut(self, reason: str | None) -> None:
        """Close at once with RST, dropping whatever was not sent."""
        transport = self.transport
        assert transport is not None
        if reason is not None:
            self.connections.count_closed(reason)
        self._forget()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        transport.abort()

    def _forget(self) -> None:
        if self.admitted:
            self.admitted = False
            self.connections.forget(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self._release_writer()  # a transfer waiting to write sees the connection closed
