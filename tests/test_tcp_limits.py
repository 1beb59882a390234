"""Slow and hostile TCP clients against a real server: a message must arrive whole within
its deadline however it trickles, each source address holds at most its share of
connections, over the total cap the connection idle the longest makes room, and a peer
that stops reading a zone transfer is cut off, while everyone else keeps getting answers
and transfers.

The servers here have small limits (per DNS worker process: with SO_REUSEPORT each
worker counts its own connections, so with two workers a source may hold twice its
share in all) and run once with one worker and once with two. Client sockets are bound
to their own 127/8 source addresses, all local on Linux, one set per test.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from fodns.tcp import source_key
from tests.support import (
    EXAMPLE_ZONE,
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

MESSAGE_TIMEOUT = 1.0
WRITE_TIMEOUT = 1.5
IDLE_TIMEOUT = 30.0  # long: whatever closes a connection in these tests, it is not idleness
MAX_CONNECTIONS = 6  # per worker
PER_SOURCE = 3  # per worker
# Generous: the point is that the server closes at all while the client keeps sending
# (it never does without a message deadline), not how punctual it is.
CLOSE_SLACK = 4.0
TRICKLE_INTERVAL = 0.2
BIG_ZONE = "big.example"
BIG_ZONE_RECORDS = 1000  # ~1 MB of TXT
# A slow link's segments (RFC 879's default MSS): the server's socket buffer grows with
# the segment size, and loopback's 64 KB segments would let it swallow megabytes.
SLOW_LINK_MSS = 536
TXT_STRING = "x" * 250
TCP_STATE_ESTABLISHED = 1


@dataclass
class Limited:
    server: FodnsProcess
    workers: int


def write_big_zone(path: Path) -> None:
    lines = [
        f"$ORIGIN {BIG_ZONE}.",
        "$TTL 3600",
        "@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
        "@ IN NS ns1",
        "ns1 IN A 127.0.0.1",
    ]
    text = " ".join(f'"{TXT_STRING}"' for _ in range(4))
    lines += [f"r{index} IN TXT {text}" for index in range(BIG_ZONE_RECORDS)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module", params=[1, 2], ids=["workers=1", "workers=2"])
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Limited]:
    workers: int = request.param
    directory = tmp_path_factory.mktemp(f"tcp-limits-{workers}")
    big_zone = directory / f"{BIG_ZONE}.zone"
    write_big_zone(big_zone)
    config = write_config(
        directory,
        [
            ("fo.example.net", EXAMPLE_ZONE),
            ("test.example", TEST_ZONES / "test.example.zone"),
            (BIG_ZONE, big_zone),
        ],
        dns_extra=(
            f"workers = {workers}\n"
            f"tcp_idle_timeout = {IDLE_TIMEOUT}\n"
            f"tcp_message_timeout = {MESSAGE_TIMEOUT}\n"
            f"tcp_write_timeout = {WRITE_TIMEOUT}\n"
            f"tcp_max_connections = {MAX_CONNECTIONS}\n"
            f"tcp_max_connections_per_source = {PER_SOURCE}\n"
        ),
        zone_extra='allow_transfer = [{ address = "127.0.0.0/8" }]\n',
    )
    with serving(start_fodns("--config", str(config))) as running:
        yield Limited(running, workers)
    assert running.log_events("transfer_failed") == []


# ---- helpers ---------------------------------------------------------------------------


def connect_from(server: FodnsProcess, source: str, receive_buffer: int = 0) -> socket.socket:
    """A TCP connection from `source` (an address of 127/8); with `receive_buffer`, as
    over a slow link: that small a window, and small segments (both set before
    connecting, so they are what the server sees)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, SLOW_LINK_MSS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(3.0)
        sock.bind((source, 0))
        sock.connect((server.dns_host, server.dns_port))
    except OSError:
        sock.close()
        raise
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (EOF or reset waiting to be read); reads
    nothing else."""
    timeout = sock.gettimeout()
    sock.settimeout(0)  # a socket with a timeout would wait for data before peeking
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        sock.settimeout(timeout)
    return data == b""


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of our end (Linux TCP_INFO), without reading anything."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def metric(server: FodnsProcess, name: str, labels: str = "") -> float:
    """One sample of /metrics (0 when absent); with two workers it lags by up to a second."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.api_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return 0.0


def closed_for(server: FodnsProcess, reason: str) -> float:
    return metric(server, "fodns_dns_tcp_connections_closed_total", f'reason="{reason}"')


def all_closed(server: FodnsProcess) -> None:
    """Wait until the server holds no TCP connection, so the next test starts from none."""
    assert wait_for(lambda: metric(server, "fodns_dns_tcp_connections") == 0, timeout=10), (
        "the server still counts connections its clients closed"
    )


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()
    socks.clear()


class Trickler:
    """Keeps up to `count` connections from `source` open, each sending one byte every
    TRICKLE_INTERVAL of a message that never completes; reopens the ones the server
    closes. Bounded: stops by itself after `limit` seconds."""

    def __init__(self, server: FodnsProcess, source: str, count: int, limit: float = 60.0):
        self.server, self.source, self.count, self.limit = server, source, count, limit
        self.stop = threading.Event()
        self.rounds = 0
        self.reopened = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> Trickler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def run(self) -> None:
        socks: list[socket.socket] = []
        deadline = time.monotonic() + self.limit
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                while len(socks) < self.count:
                    try:
                        sock = connect_from(self.server, self.source)
                        sock.sendall(b"\x03\xe8")  # promises 1000 bytes, sends one at a time
                    except OSError:
                        break
                    socks.append(sock)
                    self.reopened += 1
                for sock in list(socks):
                    try:
                        sock.sendall(b"\x00")
                        alive = not closed_by_server(sock)
                    except OSError:
                        alive = False
                    if not alive:
                        socks.remove(sock)
                        sock.close()
                self.rounds += 1
                self.stop.wait(TRICKLE_INTERVAL)
        finally:
            close_all(socks)


# ---- the message deadline --------------------------------------------------------------


def test_a_trickling_client_is_cut_at_the_message_deadline(limited: Limited) -> None:
    """RFC 7766 §6.2.3: a byte every 0.2 s does not keep a connection alive; once its
    length prefix is in, a message must arrive whole within tcp_message_timeout. A
    message in slow pieces that completes in time is answered."""
    server = limited.server
    before = closed_for(server, "message_timeout")
    with connect_from(server, "127.0.1.1") as sock:
        query = dns.message.make_query("www.test.example", "A")
        wire = framed(query.to_wire())
        for piece in (wire[:1], wire[1:9], wire[9:]):
            sock.sendall(piece)
            time.sleep(MESSAGE_TIMEOUT / 10)  # whole at a fifth of the deadline: slack for load
        reply = read_reply(sock)
        assert reply is not None and reply.id == query.id and reply.answer

        sock.sendall(b"\x03\xe8")  # a message of 1000 bytes, trickled one byte at a time
        started = time.monotonic()
        cut_after: float | None = None
        while time.monotonic() - started < MESSAGE_TIMEOUT + CLOSE_SLACK:
            time.sleep(TRICKLE_INTERVAL)
            try:
                sock.sendall(b"\x00")
            except (BrokenPipeError, ConnectionResetError):
                cut_after = time.monotonic() - started
                break
            if closed_by_server(sock):
                cut_after = time.monotonic() - started
                break
    assert cut_after is not None, "a client trickling bytes is never cut off"
    assert cut_after >= MESSAGE_TIMEOUT * 0.8, f"cut after {cut_after:.2f} s, before its deadline"
    assert wait_for(lambda: closed_for(server, "message_timeout") > before)
    all_closed(server)


# ---- the per-source cap ----------------------------------------------------------------


def test_the_per_source_cap_is_exact(limited: Limited) -> None:
    """RFC 7766 §6.2.2: one source holds at most tcp_max_connections_per_source per
    worker; the next one from it is closed at once, while other sources still connect."""
    server = limited.server
    share = PER_SOURCE * limited.workers
    held: list[socket.socket] = []
    try:
        attempts = 0
        while len(held) < share and attempts < 200:  # with two workers: until both are full
            sock = connect_from(server, "127.0.2.1")
            attempts += 1
            if ask(sock):
                held.append(sock)
            else:
                sock.close()
        assert len(held) == share, f"only {len(held)} of {share} connections accepted"
        for _ in range(20):  # lands on every worker, whatever the kernel's hash
            with connect_from(server, "127.0.2.1") as extra:
                assert not ask(extra), "a connection over the per-source cap was answered"
        with connect_from(server, "127.0.2.2") as other:
            assert ask(other), "another source was refused"
        for sock in held:
            assert ask(sock), "a connection within the cap suffered from the refused ones"
        assert closed_for(server, "source_cap") > 0 or wait_for(
            lambda: closed_for(server, "source_cap") > 0
        )
    finally:
        close_all(held)
    all_closed(server)


def test_the_source_of_an_ipv6_client_is_its_slash_64() -> None:
    """One IPv6 host or LAN holds a whole /64 (RFC 4291 interface identifiers), so the
    per-source cap counts /64s; an IPv4 source is its one address."""
    assert source_key("2001:db8:1:2::5") == source_key("2001:db8:1:2:ffff:ffff:ffff:1")
    assert source_key("2001:db8:1:2::5") != source_key("2001:db8:1:3::5")
    assert source_key("fe80::1%eth0") == source_key("fe80::2")
    assert source_key("192.0.2.1") != source_key("192.0.2.2")
    assert source_key("::ffff:192.0.2.1") != source_key("192.0.2.1")


# ---- the total cap ---------------------------------------------------------------------


def test_over_the_total_cap_the_connection_idle_longest_makes_room(limited: Limited) -> None:
    """RFC 7766 §6.2.3 lets a loaded server drop idle connections: over the total cap a
    newcomer is served and the connection idle the longest is closed, so the number open
    per worker stays at tcp_max_connections. Each connection here has its own source."""
    server = limited.server
    before = closed_for(server, "evicted")
    opened: list[socket.socket] = []
    # Enough that, however SO_REUSEPORT spreads them, every worker sees more than its cap.
    count = MAX_CONNECTIONS * 8
    try:
        for index in range(count):
            sock = connect_from(server, f"127.0.3.{index + 1}")
            opened.append(sock)
            assert ask(sock), f"connection {index + 1} over the cap was refused, not let in"
        cap = MAX_CONNECTIONS * limited.workers
        assert wait_for(lambda: sum(not closed_by_server(s) for s in opened) == cap), (
            f"{sum(not closed_by_server(s) for s in opened)} connections open, not {cap}"
        )
        assert closed_by_server(opened[0]), "the connection idle the longest is still open"
        assert not closed_by_server(opened[-1]), "the newest connection was closed"
        assert wait_for(lambda: closed_for(server, "evicted") >= before + count - cap)
        if limited.workers == 1:
            # Idle the longest, not opened first: a query makes the oldest survivor the
            # most recently active, so the next newcomer closes the one after it.
            survivors = [s for s in opened if not closed_by_server(s)]
            assert ask(survivors[0])
            newcomer = connect_from(server, "127.0.3.250")
            opened.append(newcomer)
            assert ask(newcomer)
            assert wait_for(lambda: closed_by_server(survivors[1]))
            assert not closed_by_server(survivors[0])
            for sock in (survivors[0], *survivors[2:], newcomer):
                assert ask(sock)
    finally:
        close_all(opened)
    all_closed(server)


# ---- hostile load does not lock others out ---------------------------------------------


def test_trickling_clients_of_one_source_do_not_lock_out_another(limited: Limited) -> None:
    """The issue: a few hundred trickling connections used to hold every slot for ever.
    Now one source gets its share, each trickler is cut at its deadline, and a client
    from another address gets TCP answers and a whole zone transfer meanwhile."""
    server = limited.server
    attackers = 3 * MAX_CONNECTIONS * limited.workers
    cut_before = closed_for(server, "message_timeout")
    refused_before = closed_for(server, "source_cap")
    with Trickler(server, "127.0.4.1", attackers) as trickler:
        assert wait_for(lambda: trickler.rounds >= 5), "the trickling clients did not start"
        # Queries spread over more than one message deadline, while tricklers are cut
        # and come back.
        for index in range(6):
            query = dns.message.make_query("www.test.example", "A")
            reply = dns.query.tcp(
                query, server.dns_host, port=server.dns_port, timeout=3, source="127.0.4.2"
            )
            assert reply.rcode() == dns.rcode.NOERROR and reply.answer, index
            time.sleep(MESSAGE_TIMEOUT / 4)
        zone = dns.zone.from_xfr(
            dns.query.xfr(
                server.dns_host,
                "fo.example.net",
                port=server.dns_port,
                timeout=5,
                source="127.0.4.2",
            )
        )
        assert {r.to_text() for r in zone.find_rdataset("www", "A")} == {
            "192.0.2.10",
            "192.0.2.11",
        }
        rounds = trickler.rounds
        assert wait_for(lambda: trickler.rounds > rounds), "the trickling clients stopped"
    assert closed_for(server, "source_cap") > refused_before
    assert closed_for(server, "message_timeout") > cut_before
    all_closed(server)


# ---- zone transfers: paced by the reader, cut when it stops ----------------------------


def read_transfer(sock: socket.socket, pause_every: int, pause: float) -> list[dns.message.Message]:
    """The messages of one AXFR, read `pause_every` bytes at a time with a pause between."""
    messages: list[dns.message.Message] = []
    since_pause = 0
    soa_seen = 0
    while soa_seen < 2:
        prefix = recv_exactly(sock, 2)
        assert prefix is not None, f"closed after {len(messages)} transfer messages"
        (length,) = struct.unpack("!H", prefix)
        body = recv_exactly(sock, length)
        assert body is not None, f"closed inside transfer message {len(messages) + 1}"
        message = dns.message.from_wire(body, xfr=True)
        messages.append(message)
        soa_seen += sum(rrset.rdtype == dns.rdatatype.SOA for rrset in message.answer)
        since_pause += length + 2
        if since_pause >= pause_every:
            since_pause = 0
            time.sleep(pause)
    return messages


def test_a_transfer_is_paced_by_its_reader_and_cut_when_it_stops_reading(
    limited: Limited,
) -> None:
    """A secondary that reads slowly gets the whole zone although it takes far longer
    than the message deadline; one that stops reading is cut after tcp_write_timeout
    (RST) instead of holding the connection for ever."""
    server = limited.server
    query = framed(dns.message.make_query(BIG_ZONE, "AXFR").to_wire())

    with connect_from(server, "127.0.5.1", receive_buffer=16384) as slow:
        slow.settimeout(10)
        started = time.monotonic()
        slow.sendall(query)
        messages = read_transfer(slow, pause_every=64 * 1024, pause=0.1)
        took = time.monotonic() - started
        records = sum(len(rrset) for m in messages for rrset in m.answer)
        assert records == BIG_ZONE_RECORDS + 4  # the TXTs, NS, A, and the SOA twice
        assert took > MESSAGE_TIMEOUT, f"the transfer took {took:.2f} s: too fast to tell"
        assert ask(slow, "www.test.example"), "the connection is usable after the transfer"

    before = closed_for(server, "write_timeout")
    with connect_from(server, "127.0.5.2", receive_buffer=4096) as stuck:
        stuck.sendall(query)
        # Never read: the server's buffers fill, it stops sending, and after the write
        # timeout it resets the connection.
        cut = wait_for(
            lambda: tcp_state(stuck) != TCP_STATE_ESTABLISHED,
            timeout=WRITE_TIMEOUT + CLOSE_SLACK + 4,
        )
        assert cut, "a peer that stopped reading a transfer still holds its connection"
    assert wait_for(lambda: closed_for(server, "write_timeout") > before)
    all_closed(server)
