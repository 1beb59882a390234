"""DNS over TCP (RFC 7766): framing, pipelining, and zone transfers on a connection."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from fodns.logs import get_logger
from fodns.query import name_end

if TYPE_CHECKING:
    from fodns.server import DnsServer
    from fodns.transfer import Transfers

log = get_logger()
TCP_LENGTH_PREFIX = 2  # RFC 1035 §4.2.2: two-octet length before each message
# Queries a client may pipeline behind a zone transfer before it is cut off.
TCP_PENDING_LIMIT = 64 * 1024
# Transfer messages (~16 KB each) rendered before other work gets the loop.
TRANSFER_MESSAGES_PER_TURN = 4


def is_transfer_query(message: bytes) -> bool:
    """A plain QUERY whose one question asks for AXFR or IXFR."""
    if len(message) < 17 or message[2] & 0xF8 or message[4:6] != b"\x00\x01":
        return False
    end = name_end(message)
    return end > 0 and message[end + 1 : end + 3] in (b"\x00\xfc", b"\x00\xfb")


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
