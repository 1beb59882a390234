"""DNS on the wire as the tests speak it: TCP framing, and queries that reach every worker."""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

import dns.message

if TYPE_CHECKING:
    from tests.support.process import FodnsProcess

# With SO_REUSEPORT the kernel hashes each source port to one worker; 24 fresh sockets
# miss one of two workers with probability 2**-23, so "every worker" is a safe claim.
FRESH_SOCKETS = 24


def framed(message: bytes) -> bytes:
    """A DNS message with the two-byte length prefix of RFC 1035 §4.2.2 (and RFC 7766 §8)."""
    return struct.pack("!H", len(message)) + message


def recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None if the server closed (or reset) the connection first."""
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def read_framed(sock: socket.socket) -> bytes | None:
    """One length-prefixed message, or None when the server closed before its prefix."""
    prefix = recv_exactly(sock, 2)
    if prefix is None:
        return None
    body = recv_exactly(sock, struct.unpack("!H", prefix)[0])
    if body is None:
        raise AssertionError("connection closed in the middle of a reply")
    return body


def tcp_exchange(sock: socket.socket, message: bytes) -> bytes | None:
    """Send one framed message and read one framed reply (None if closed instead)."""
    sock.sendall(framed(message))
    return read_framed(sock)


def answer_data(reply: dns.message.Message) -> set[str]:
    """Every record's data in the answer section, as text."""
    return {rdata.to_text() for rrset in reply.answer for rdata in rrset}


def ask_every_worker(
    server: FodnsProcess, query: dns.message.Message, count: int = FRESH_SOCKETS
) -> list[dns.message.Message]:
    """The same question from `count` fresh UDP sockets, so SO_REUSEPORT spreads them
    over every worker process; the replies, in order."""
    return [server.udp(query) for _ in range(count)]
