"""DNS over TCP as the wire tests speak it: a connection, a parsed reply, one checked query."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import dns.message
import dns.rcode

from tests.support.wire import framed, read_framed

if TYPE_CHECKING:
    from tests.support.process import FodnsProcess


def tcp_connect(server: FodnsProcess, timeout: float = 5.0) -> socket.socket:
    """A connection to the server's DNS port; NODELAY, so each write is its own segment."""
    sock = socket.create_connection((server.dns_host, server.dns_port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_reply(sock: socket.socket) -> dns.message.Message | None:
    """One framed reply, parsed; None when the server closed before sending one."""
    body = read_framed(sock)
    return None if body is None else dns.message.from_wire(body)


def ask(sock: socket.socket, qname: str = "www.test.example", qtype: str = "A") -> bool:
    """One query on `sock`: True when it was answered (NOERROR, with an answer, to this
    question), False when the server closed the connection instead."""
    query = dns.message.make_query(qname, qtype)
    try:
        sock.sendall(framed(query.to_wire()))
    except (BrokenPipeError, ConnectionResetError):
        return False
    reply = read_reply(sock)
    if reply is None:
        return False
    assert reply.id == query.id and reply.question == query.question
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    return True
