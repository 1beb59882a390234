"""DNS over TCP against a real server (RFC 7766): pipelining, messages split across
segments, the idle timeout and the slots of closed connections (the caps and deadlines
against slow and hostile clients are in test_tcp_limits).

The server here is our own, with a short idle timeout (2 s) and a cap of three
connections (per DNS process), so the limits can be reached quickly on loopback; the
waits around the timeout leave it seconds of slack, as a loaded machine needs. It runs
once with one process and once with two workers, where the TCP connections are theirs.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.support import (
    TEST_ZONES,
    FodnsProcess,
    framed,
    recv_exactly,
    serving,
    start_fodns,
    wait_for,
    write_config,
)
from tests.support.dnstcp import ask, read_reply
from tests.support.dnstcp import tcp_connect as connect

IDLE_TIMEOUT = 2.0
MAX_CONNECTIONS = 3
RECV_TIMEOUT = 10.0
# When the server may close an idle connection: not before its timeout (less the moment
# our clock starts after the server's), and within generous slack after it.
IDLE_CLOSE_WITHIN = (IDLE_TIMEOUT * 0.8, IDLE_TIMEOUT * 4)
# Pauses between queries on a connection kept busy: a fifth of the timeout, so a pause
# stretched by more than a second on a loaded machine still does not reach it.
BUSY_PAUSE = IDLE_TIMEOUT / 5


@pytest.fixture(scope="module", params=[1, 2], ids=["workers1", "workers2"])
def tcp_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FodnsProcess]:
    """(Module-scoped, so it takes its own params: the `workers` fixture is per test.)"""
    directory: Path = tmp_path_factory.mktemp(f"tcp-workers{request.param}")
    config = write_config(
        directory,
        [
            ("test.example", TEST_ZONES / "test.example.zone"),
            ("child.test.example", TEST_ZONES / "child.test.example.zone"),
        ],
        dns_extra=(
            f"tcp_idle_timeout = {IDLE_TIMEOUT}\ntcp_message_timeout = {IDLE_TIMEOUT}\n"
            f"tcp_max_connections = {MAX_CONNECTIONS}"
        ),
        workers=request.param,
    )
    with serving(start_fodns("--config", str(config))) as running:
        yield running


# ---- helpers ---------------------------------------------------------------------------


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed `sock` (EOF or reset), or None if it did not."""
    start = time.monotonic()
    sock.settimeout(within)
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        return time.monotonic() - start
    except TimeoutError:
        return None
    assert data == b"", f"unexpected data from the server: {data!r}"
    return time.monotonic() - start


def open_working(server: FodnsProcess, timeout: float = 10.0) -> socket.socket:
    """A connection that answers; retried while the server frees the slots of connections
    closed just before (it counts them down when it sees them close)."""
    working: list[socket.socket] = []

    def try_one() -> bool:
        sock = connect(server)
        if ask(sock):
            working.append(sock)
            return True
        sock.close()
        return False

    assert wait_for(try_one, timeout=timeout), f"no working connection within {timeout} s"
    return working[0]


Check = Callable[[dns.message.Message], None]


def answers(*rdata: str) -> Check:
    def check(reply: dns.message.Message) -> None:
        assert reply.rcode() == dns.rcode.NOERROR
        assert {r.to_text() for rrset in reply.answer for r in rrset} == set(rdata)

    return check


def rcode(code: dns.rcode.Rcode) -> Check:
    def check(reply: dns.message.Message) -> None:
        assert reply.rcode() == code
        assert not reply.answer

    return check


def forty_txt(reply: dns.message.Message) -> None:
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.TC
    assert len(reply.answer) == 1 and len(reply.answer[0]) == 40


QUESTIONS: list[tuple[str, str, Check]] = [
    ("www.test.example", "A", answers("192.0.2.1")),
    ("mail.test.example", "A", answers("192.0.2.25")),
    ("www.test.example", "AAAA", answers("2001:db8::1")),
    ("nope.test.example", "A", rcode(dns.rcode.NXDOMAIN)),
    ("host.child.test.example", "A", answers("192.0.2.77")),
    ("big.test.example", "TXT", forty_txt),
    ("www.example.org", "A", rcode(dns.rcode.REFUSED)),
    ("foo.wild.test.example", "A", answers("192.0.2.99")),
]


def numbered_queries(count: int, first_id: int) -> list[tuple[dns.message.Message, Check]]:
    queries = []
    for index in range(count):
        qname, qtype, check = QUESTIONS[index % len(QUESTIONS)]
        query = dns.message.make_query(qname, qtype)
        query.id = first_id + index
        queries.append((query, check))
    return queries


def read_and_check(sock: socket.socket, queries: list[tuple[dns.message.Message, Check]]) -> None:
    """One reply per query, matched by ID (RFC 7766 §7 allows any order)."""
    pending = {query.id: (query, check) for query, check in queries}
    for _ in range(len(queries)):
        reply = read_reply(sock)
        assert reply is not None, f"connection closed with {len(pending)} replies missing"
        assert reply.id in pending, f"unexpected or repeated reply ID {reply.id}"
        query, check = pending.pop(reply.id)
        assert reply.question == query.question
        check(reply)
    assert not pending


# ---- pipelining and framing ------------------------------------------------------------


def test_fifty_pipelined_queries_in_one_write(tcp_server: FodnsProcess) -> None:
    """RFC 7766 §6.2.1.1: a client may send many queries without waiting for replies."""
    queries = numbered_queries(50, first_id=1000)
    with connect(tcp_server) as sock:
        sock.sendall(b"".join(framed(query.to_wire()) for query, _ in queries))
        read_and_check(sock, queries)
        assert ask(sock), "the connection stays usable after the burst"


@pytest.mark.parametrize(
    "sizes",
    [[1], [2], [3, 1, 4, 1, 5, 9, 2, 6], [7, 13, 2], [41, 1, 43]],
    ids=["1-byte", "2-byte", "digits-of-pi", "7-13-2", "straddling"],
)
def test_messages_split_across_writes(tcp_server: FodnsProcess, sizes: list[int]) -> None:
    """A message may arrive in pieces and pieces may hold parts of two messages (the
    length prefix itself split in two included)."""
    queries = numbered_queries(10, first_id=2000)
    stream = b"".join(framed(query.to_wire()) for query, _ in queries)
    with connect(tcp_server) as sock:
        offset, index = 0, 0
        while offset < len(stream):
            size = sizes[index % len(sizes)]
            sock.sendall(stream[offset : offset + size])
            offset += size
            index += 1
            time.sleep(0.001)  # separate segments, not coalesced by our side
        read_and_check(sock, queries)


def test_a_complete_message_is_answered_before_the_next_one_is(tcp_server: FodnsProcess) -> None:
    first, second = numbered_queries(2, first_id=3000)
    second_wire = framed(second[0].to_wire())
    with connect(tcp_server) as sock:
        sock.sendall(framed(first[0].to_wire()) + second_wire[:5])
        read_and_check(sock, [first])
        sock.sendall(second_wire[5:])
        read_and_check(sock, [second])


def test_a_client_that_does_not_read_gets_every_reply_in_the_end(
    tcp_server: FodnsProcess,
) -> None:
    """1200 queries for the 4.4 kB answer (5 MB of replies) sent in two bursts before
    reading any, into a small receive window: the server must stop reading while its
    replies back up (flow control) and carry on once they drain, not drop or deadlock."""
    query = dns.message.make_query("big.test.example", "TXT")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # before connect
        sock.settimeout(RECV_TIMEOUT)
        sock.connect((tcp_server.dns_host, tcp_server.dns_port))
        ids = list(range(5000, 6200))
        for burst in (ids[:1000], ids[1000:]):
            stream = bytearray()
            for query_id in burst:
                query.id = query_id
                stream += framed(query.to_wire())
            sock.sendall(stream)
            time.sleep(0.1)  # the server fills its buffers and stops reading
        first: bytes | None = None
        seen: list[int] = []
        for _ in ids:
            prefix = recv_exactly(sock, 2)
            assert prefix is not None, f"closed after {len(seen)} of {len(ids)} replies"
            body = recv_exactly(sock, struct.unpack("!H", prefix)[0])
            assert body is not None
            if first is None:
                first = body
                forty_txt(dns.message.from_wire(body))
            assert body[2:] == first[2:], "replies to the same question differ beyond the ID"
            seen.append(int.from_bytes(body[:2], "big"))
        assert sorted(seen) == ids


def test_half_closed_client_still_gets_its_answer(tcp_server: FodnsProcess) -> None:
    query = dns.message.make_query("www.test.example", "A")
    with connect(tcp_server) as sock:
        sock.sendall(framed(query.to_wire()))
        sock.shutdown(socket.SHUT_WR)
        read_and_check(sock, [(query, answers("192.0.2.1"))])


# ---- idle timeout ----------------------------------------------------------------------


def test_idle_connection_is_closed(tcp_server: FodnsProcess) -> None:
    """RFC 7766 §6.2.3: the server closes connections idle past its timeout."""
    with connect(tcp_server) as sock:
        elapsed = closed_by_server(sock, within=IDLE_CLOSE_WITHIN[1] + 1)
    assert elapsed is not None, "idle connection still open"
    assert IDLE_CLOSE_WITHIN[0] <= elapsed <= IDLE_CLOSE_WITHIN[1], elapsed


def test_activity_restarts_the_idle_timer(tcp_server: FodnsProcess) -> None:
    """A connection kept busy outlives the idle timeout (here twice over), then is closed
    once it falls idle."""
    with connect(tcp_server) as sock:
        started = time.monotonic()
        while time.monotonic() - started < 2 * IDLE_TIMEOUT:
            assert ask(sock), f"closed while in use, {time.monotonic() - started:.1f} s in"
            time.sleep(BUSY_PAUSE)
        assert ask(sock)
        elapsed = closed_by_server(sock, within=IDLE_CLOSE_WITHIN[1] + 1)
    assert elapsed is not None, "idle connection still open"
    assert IDLE_CLOSE_WITHIN[0] <= elapsed <= IDLE_CLOSE_WITHIN[1], elapsed


def test_a_partial_message_does_not_count_as_a_query(tcp_server: FodnsProcess) -> None:
    """Half a message, then silence: closed at the message deadline (here as short as
    the idle timeout; see test_tcp_limits for a message that keeps trickling)."""
    with connect(tcp_server) as sock:
        sock.sendall(framed(dns.message.make_query("www.test.example", "A").to_wire())[:9])
        elapsed = closed_by_server(sock, within=IDLE_CLOSE_WITHIN[1] + 1)
    assert elapsed is not None, "connection with a stalled message still open"
    assert elapsed <= IDLE_CLOSE_WITHIN[1]


# ---- connection cap (more in test_tcp_limits) ------------------------------------------


def test_connections_closed_by_the_server_free_their_slots(tcp_server: FodnsProcess) -> None:
    """Idle-closed connections must leave the count, or the cap would fill for good."""
    for _ in range(2):
        held = [open_working(tcp_server) for _ in range(MAX_CONNECTIONS)]
        try:
            for sock in held:
                assert closed_by_server(sock, within=IDLE_CLOSE_WITHIN[1] + 1) is not None
        finally:
            for sock in held:
                sock.close()
    with connect(tcp_server) as sock:
        assert ask(sock, "mail.test.example")


def test_server_still_answers_udp(tcp_server: FodnsProcess) -> None:
    reply = tcp_server.udp(dns.message.make_query("www.test.example", "A"))
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer[0].rdtype == dns.rdatatype.A
