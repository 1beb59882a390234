"""Hostile and malformed input over real UDP and TCP: the server answers what it can read
(FORMERR, NOTIMP, NOTAUTH, REFUSED, RFC 1035 §4.1.1, RFC 6891, RFC 8945), drops what has
no header or is itself a response (RFC 1035 §7.3), and never crashes or stalls.

Packets are built by hand, byte by byte, where the point is that they are malformed;
dnspython is the independent parser of every reply.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Callable, Iterator

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from tests.support import FodnsProcess, recv_exactly, tcp_exchange
from tests.support.dnstcp import tcp_connect

HEADER = struct.Struct("!HHHHHH")
QR = 0x8000
RD = 0x0100
SEED = 20260501
RANDOM_PACKETS = 3000
MUTATED_PACKETS = 2000
TCP_MUTATED_PACKETS = 300
# Never waited out when the server works (the sentinel ends each wait): generous for load.
REPLY_TIMEOUT = 10.0
# Our OPT: root owner, TYPE 41, payload 1232, extended rcode 0, version 0, no flags, no data.
OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
NOERROR, FORMERR, NXDOMAIN = dns.rcode.NOERROR, dns.rcode.FORMERR, dns.rcode.NXDOMAIN
NOTIMP, REFUSED, NOTAUTH = dns.rcode.NOTIMP, dns.rcode.REFUSED, dns.rcode.NOTAUTH


# ---- building packets by hand ---------------------------------------------------------


def header(
    qid: int = 0x1234, flags: int = RD, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0
) -> bytes:
    return HEADER.pack(qid, flags, qd, an, ns, ar)


def wire_name(name: str) -> bytes:
    labels = [label.encode() for label in name.strip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def question(name: str, qtype: int = 1, qclass: int = 1) -> bytes:
    return wire_name(name) + struct.pack("!HH", qtype, qclass)


def query(
    name: str = "www.test.example", qtype: int = 1, qid: int = 0x1234, **counts: int
) -> bytes:
    return header(qid, **counts) + question(name, qtype)


def rcode_of(reply: bytes) -> int:
    return reply[3] & 0x0F


# ---- a UDP client that knows at once when no reply is coming --------------------------


class UdpProbe:
    """One connected socket. Every packet is followed by a known query, the sentinel:
    the server answers one socket's datagrams in order, so once the sentinel's answer
    arrives, whatever came before it is the whole reply to the packet (or nothing),
    with no timeout to wait out."""

    def __init__(self, server: FodnsProcess) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(REPLY_TIMEOUT)
        self.sock.connect((server.dns_host, server.dns_port))
        self.sentinel = query("www.test.example", qid=0)
        self.sock.send(self.sentinel)
        self.sentinel_reply = self.sock.recv(65535)
        assert self.sentinel_reply[:2] == b"\x00\x00" and rcode_of(self.sentinel_reply) == 0

    def exchange(self, packet: bytes) -> bytes | None:
        """The server's reply to `packet`, or None when it sent none."""
        packet_id = packet[:2].ljust(2, b"\x00")
        sentinel_id = bytes([packet_id[0] ^ 0x80, packet_id[1]])  # never the packet's ID
        self.sock.send(packet)
        self.sock.send(sentinel_id + self.sentinel[2:])
        replies: list[bytes] = []
        for _ in range(3):
            data = self.sock.recv(65535)
            if data[:2] == sentinel_id and data[2:] == self.sentinel_reply[2:]:
                break
            replies.append(data)
        else:
            raise AssertionError(f"more than one reply to {packet.hex()}: {replies}")
        assert len(replies) <= 1, f"two replies to one query {packet.hex()}: {replies}"
        return replies[0] if replies else None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def probe(server: FodnsProcess) -> Iterator[UdpProbe]:
    udp = UdpProbe(server)
    yield udp
    udp.close()


def assert_still_serving(server: FodnsProcess) -> None:
    assert server.alive(), "the server process died"
    for transport in (server.udp, server.tcp):
        reply = transport(dns.message.make_query("www.test.example", "A"))
        assert reply.rcode() == NOERROR
        assert [rdata.to_text() for rdata in reply.answer[0]] == ["192.0.2.1"]


def check_reply(packet: bytes, reply: bytes | None, udp: bool = True) -> None:
    """What every datagram must get: no reply for no header or a response, otherwise
    a reply with its ID and opcode, QR set, that parses (DESIGN.md: FORMERR when the
    header can be read, otherwise dropped)."""
    if len(packet) < 12 or packet[2] & 0x80:
        assert reply is None, f"replied to {packet.hex()} (no header or QR=1): {reply!r}"
        return
    assert reply is not None, f"no reply to a query with a readable header: {packet.hex()}"
    assert reply[:2] == packet[:2], f"ID not echoed for {packet.hex()}: {reply.hex()}"
    assert reply[2] & 0x80, f"QR not set in reply to {packet.hex()}: {reply.hex()}"
    assert (reply[2] >> 3) & 0x0F == (packet[2] >> 3) & 0x0F, "opcode not copied"
    try:
        message = dns.message.from_wire(reply, keyring=False)  # a TSIG is read, not verified
    except Exception as exc:
        raise AssertionError(f"unparseable reply {reply.hex()} to {packet.hex()}: {exc}") from exc
    if udp:
        # RFC 6891 §6.2.5: 512 bytes without EDNS (no OPT back means none was usable),
        # and never more than our own payload size, 1232.
        limit = 1232 if message.edns >= 0 else 512
        assert len(reply) <= limit, f"{len(reply)}-byte UDP reply to {packet.hex()}"


# ---- fuzzing ---------------------------------------------------------------------------

VALID_QUERIES = [
    query("www.test.example", 1),
    query("test.example", 2, ar=1) + OPT,
    query("big.test.example", 16, ar=1) + OPT[:7] + b"\x80\x00\x00\x08" + b"\xfd\xe9\x00\x04abcd",
    query("nope.fo.example.net", 28),
    query("foo.wild.test.example", 255, ar=1) + OPT,
]


def mutate(rng: random.Random, packet: bytes) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.randrange(6)
        if kind == 0 and data:  # bit flips
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncation
            del data[rng.randint(0, len(data)) :]
        elif kind == 2 and len(data) >= 12:  # a count set to the maximum
            offset = rng.choice((4, 6, 8, 10))
            data[offset : offset + 2] = b"\xff\xff"
        elif kind == 3:  # random bytes inserted
            at = rng.randint(0, len(data))
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == 4 and data:  # one byte overwritten
            data[rng.randrange(len(data))] = rng.randrange(256)
        else:  # garbage appended
            data += rng.randbytes(rng.randint(1, 40))
    if len(data) >= 2:
        data[:2] = rng.randbytes(2)
    return bytes(data)


def test_random_bytes_never_get_a_bad_reply(server: FodnsProcess, probe: UdpProbe) -> None:
    rng = random.Random(SEED)
    for _ in range(RANDOM_PACKETS):
        packet = rng.randbytes(rng.randint(0, 600))
        if rng.random() < 0.5 and len(packet) >= 3:
            # Half as queries (QR=0), half of those with opcode QUERY, so most get past
            # the first checks and reach the parser.
            mask = 0x07 if rng.random() < 0.5 else 0x7F
            packet = packet[:2] + bytes([packet[2] & mask]) + packet[3:]
        check_reply(packet, probe.exchange(packet))
    assert_still_serving(server)


def test_mutated_queries_never_get_a_bad_reply(server: FodnsProcess, probe: UdpProbe) -> None:
    rng = random.Random(SEED + 1)
    for index in range(MUTATED_PACKETS):
        packet = mutate(rng, VALID_QUERIES[index % len(VALID_QUERIES)])
        check_reply(packet, probe.exchange(packet))
    assert_still_serving(server)


def test_mutated_queries_over_tcp(server: FodnsProcess) -> None:
    rng = random.Random(SEED + 2)
    sock = tcp_connect(server)
    try:
        for index in range(TCP_MUTATED_PACKETS):
            packet = mutate(rng, VALID_QUERIES[index % len(VALID_QUERIES)])
            reply = tcp_exchange(sock, packet)
            if len(packet) < 12 or packet[2] & 0x80:
                # Nothing to answer: the stream cannot be trusted any further.
                assert reply is None, f"answered {packet.hex()} over TCP: {reply!r}"
            else:
                assert reply is not None, f"connection closed on {packet.hex()}"
                check_reply(packet, reply, udp=False)
            if reply is None:
                sock.close()
                sock = tcp_connect(server)
    finally:
        sock.close()
    assert_still_serving(server)


# ---- targeted cases --------------------------------------------------------------------

# www.test.example A is 34 bytes: header 12, name 18, type and class 4.
END_OF_QUESTION = 34
LONG_LABELS = ".".join(["a" * 63] * 3)


def _rr(owner: bytes, rtype: int, rdata: bytes, rclass: int = 1) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, 300, len(rdata)) + rdata


DROPPED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("1 byte", b"\x12"),
    ("2 bytes", b"\x12\x34"),
    ("11 bytes", header()[:11]),
    ("response", header(flags=QR | RD) + question("www.test.example")),
    (
        "response with answer",
        header(flags=QR | 0x0400, an=1)
        + question("www.test.example")
        + _rr(b"\xc0\x0c", 1, b"\xc0\x00\x02\x01"),
    ),
    ("response, header only", header(flags=QR, qd=0)),
]


@pytest.mark.parametrize("packet", [p for _, p in DROPPED], ids=[i for i, _ in DROPPED])
def test_no_reply_without_a_header_or_to_a_response(probe: UdpProbe, packet: bytes) -> None:
    assert probe.exchange(packet) is None


FORMERRS: list[tuple[str, bytes]] = [
    ("header only, QDCOUNT 1", header()),
    ("pointer loop in question", header() + b"\xc0\x0c\x00\x01\x00\x01"),
    ("pointer forward in question", header() + b"\xc0\x20\x00\x01\x00\x01" + bytes(20)),
    (
        "pointer loop in additional owner",
        query(ar=1) + _rr(bytes([0xC0, END_OF_QUESTION]), 1, b"\x7f\x00\x00\x01"),
    ),
    (
        "two-pointer loop in additional owner",
        query(ar=1)
        + _rr(bytes([0xC0, END_OF_QUESTION + 2, 0xC0, END_OF_QUESTION]), 1, b"\x7f\x00\x00\x01"),
    ),
    (
        "label then pointer back to itself in additional",
        query(ar=1) + _rr(b"\x01a" + bytes([0xC0, END_OF_QUESTION]), 1, b"\x7f\x00\x00\x01"),
    ),
    (
        "pointer loop in additional rdata",
        query(ar=1) + _rr(b"\x00", 2, bytes([0xC0, END_OF_QUESTION + 11])),
    ),
    ("QDCOUNT 0xFFFF", query(qd=0xFFFF)),
    ("ANCOUNT 0xFFFF", query(an=0xFFFF)),
    ("NSCOUNT 0xFFFF", query(ns=0xFFFF)),
    ("ARCOUNT 0xFFFF", query(ar=0xFFFF)),
    ("all counts 0xFFFF", query(qd=0xFFFF, an=0xFFFF, ns=0xFFFF, ar=0xFFFF)),
    (
        "label length 64",
        header() + b"\x40" + b"a" * 64 + wire_name("test.example") + b"\x00\x01\x00\x01",
    ),
    ("extended label type 0x41", header() + b"\x41" + b"a" * 20 + b"\x00\x00\x01\x00\x01"),
    ("name of 256 bytes", query(f"{'a' * 49}.{LONG_LABELS}.test.example")),
    ("name of 321 bytes", query(".".join(["a" * 63] * 5))),
    ("name without its root label", header() + b"\x03www"),
    ("question cut in its type", query()[:-3]),
    ("trailing garbage after the question", query() + b"\xde\xad\xbe\xef"),
    ("trailing zero byte after the question", query() + b"\x00"),
    ("QDCOUNT 0", header(qd=0)),
    ("QDCOUNT 0 with a question", header(qd=0) + question("www.test.example")),
    ("QDCOUNT 2", header(qd=2) + question("www.test.example") + question("mail.test.example")),
    ("QTYPE OPT", query(qtype=41)),
    ("QTYPE OPT with EDNS", query(qtype=41, ar=1) + OPT),
    ("QTYPE TSIG", query(qtype=250)),
    ("answer section in a query", query(an=1) + _rr(b"\xc0\x0c", 1, b"\xc0\x00\x02\x01")),
    ("authority section in a query", query(ns=1) + _rr(b"\xc0\x0c", 1, b"\xc0\x00\x02\x01")),
    (
        "rdata length past the end",
        query(ar=1) + b"\x00\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x10\x7f",
    ),
    ("OPT with rdata length past the end", query(ar=1) + OPT[:-2] + b"\x00\x08\xfd\xe9"),
]


@pytest.mark.parametrize("packet", [p for _, p in FORMERRS], ids=[i for i, _ in FORMERRS])
def test_formerr(probe: UdpProbe, packet: bytes) -> None:
    reply = probe.exchange(packet)
    check_reply(packet, reply)
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.rcode() == FORMERR, dns.rcode.to_text(message.rcode())
    assert message.id == int.from_bytes(packet[:2], "big")
    assert not message.answer and not message.authority


# A question name may only point back, and before the question there is only the header:
# legal, if odd. These are answered, with the question written out uncompressed.
ODD_BUT_LEGAL: list[tuple[str, bytes, str]] = [
    ("pointer to QDCOUNT's zero byte", header() + b"\xc0\x04\x00\x02\x00\x01", "."),
    ("pointer to the ID as a label", header(0x0178, flags=0) + b"\xc0\x00\x00\x01\x00\x01", "x."),
]


@pytest.mark.parametrize(
    ("packet", "qname"), [c[1:] for c in ODD_BUT_LEGAL], ids=[c[0] for c in ODD_BUT_LEGAL]
)
def test_question_compressed_into_the_header(probe: UdpProbe, packet: bytes, qname: str) -> None:
    reply = probe.exchange(packet)
    check_reply(packet, reply)
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.rcode() == REFUSED  # not a name of ours
    assert message.question[0].name == dns.name.from_text(qname)
    assert b"\xc0" not in reply[12:], "the question is echoed uncompressed"


def test_name_of_255_bytes_is_fine(probe: UdpProbe) -> None:
    """The longest legal name (RFC 1035 §3.1) is answered, one byte more is FORMERR."""
    name = f"{'a' * 48}.{LONG_LABELS}.test.example"
    assert len(wire_name(name)) == 255
    reply = probe.exchange(query(name))
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.rcode() == NXDOMAIN
    assert message.question[0].name == dns.name.from_text(name)


@pytest.mark.parametrize("opcode", [1, 2, 3, 6, 15])
@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
def test_unknown_opcodes_get_notimp(probe: UdpProbe, opcode: int, edns: bool) -> None:
    packet = (
        header(0xBEEF, (opcode << 11) | RD, ar=1 if edns else 0)
        + question("www.test.example")
        + (OPT if edns else b"")
    )
    reply = probe.exchange(packet)
    check_reply(packet, reply)
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.id == 0xBEEF
    assert message.rcode() == NOTIMP
    assert message.opcode() == opcode, "RFC 1035 §4.1.1: the opcode is copied to the reply"
    assert not message.answer
    assert (message.edns == 0) is edns


@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
def test_dns_update_gets_notimp_and_changes_nothing(server: FodnsProcess, edns: bool) -> None:
    """A well-formed RFC 2136 UPDATE (zone section: test.example SOA) is not implemented."""
    update = dns.update.UpdateMessage("test.example")
    update.add("added-by-update", 300, "A", "192.0.2.200")
    if edns:
        update.use_edns(0)
    reply = server.udp(update)
    assert reply.id == update.id
    assert reply.opcode() == dns.opcode.UPDATE
    assert reply.rcode() == NOTIMP
    assert (reply.edns == 0) is edns
    check = server.udp(dns.message.make_query("added-by-update.test.example", "A"))
    assert check.rcode() == NXDOMAIN


def test_update_with_a_non_soa_zone_is_still_notimp(probe: UdpProbe) -> None:
    """RFC 2136 §3.1.1 makes this FORMERR for a server that does UPDATE; one that does not
    says NOTIMP to every UPDATE, whatever its body."""
    packet = header(0xBEEF, 5 << 11) + question("www.test.example")
    reply = probe.exchange(packet)
    check_reply(packet, reply)
    assert reply is not None and rcode_of(reply) == NOTIMP


def test_dso_keepalive_gets_notimp_and_the_connection_stays(server: FodnsProcess) -> None:
    """RFC 8490 §5.1: a server without DSO answers a DSO request (empty sections, then a
    TLV: here Keepalive, type 1) with NOTIMP, which the client reads as "no DSO"."""
    keepalive = header(0x0D50, 6 << 11, qd=0) + struct.pack("!HHII", 1, 8, 15000, 15000)
    with tcp_connect(server) as sock:
        reply = tcp_exchange(sock, keepalive)
        assert reply is not None, "connection closed on a DSO message"
        assert reply[:2] == b"\x0d\x50" and reply[2] & 0x80
        assert (reply[2] >> 3) & 0x0F == 6, "the DSO opcode is copied"
        assert rcode_of(reply) == NOTIMP
        after = tcp_exchange(sock, query(qid=0x0D51))
        assert after is not None and after[:2] == b"\x0d\x51" and rcode_of(after) == NOERROR


def test_tsig_with_an_unknown_key_gets_notauth(probe: UdpProbe) -> None:
    """RFC 8945 §5.2.2: a key the server does not know is NOTAUTH."""
    request = dns.message.make_query("www.test.example", "A")
    keyring = dns.tsigkeyring.from_text({"no-such-key.": "c2VjcmV0c2VjcmV0c2VjcmV0"})
    request.use_tsig(keyring, keyname="no-such-key.", algorithm=dns.tsig.HMAC_SHA256)
    packet = request.to_wire()
    reply = probe.exchange(packet)
    check_reply(packet, reply)
    assert reply is not None
    # keyring=False: read the TSIG record without verifying it (it is unsigned).
    message = dns.message.from_wire(reply, keyring=False)
    assert message.id == request.id
    assert message.rcode() == NOTAUTH
    assert not message.answer
    assert message.question == request.question
    # §5.3.2: the reply carries a TSIG with error BADKEY, the query's key and time,
    # and an empty MAC, as the last additional record.
    assert message.keyname == dns.name.from_text("no-such-key.")
    tsig = message.tsig[0]
    assert tsig.error == 17 and tsig.mac == b""
    assert tsig.time_signed == request.tsig[0].time_signed
    assert tsig.original_id == request.id


@pytest.mark.parametrize(
    ("name", "qtype", "qclass"),
    [
        ("version.bind", "TXT", "CH"),
        ("hostname.bind", "TXT", "CH"),
        ("www.test.example", "A", "HS"),
    ],
)
def test_other_classes_are_refused(
    server: FodnsProcess, name: str, qtype: str, qclass: str
) -> None:
    reply = server.udp(dns.message.make_query(name, qtype, qclass))
    assert reply.rcode() == REFUSED
    assert not reply.answer


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_axfr_is_refused(server: FodnsProcess, transport: str) -> None:
    """Refused over UDP (RFC 5936 §4.2), and over TCP to a peer not in allow_transfer
    (this server lists nobody)."""
    request = dns.message.make_query("test.example", "AXFR")
    reply = getattr(server, transport)(request)
    assert reply.id == request.id
    assert reply.rcode() == REFUSED
    assert not reply.answer


def test_ixfr_with_its_soa_is_refused_not_formerr(server: FodnsProcess) -> None:
    """An IXFR query carries the client's SOA in authority (RFC 1995 §3): a well-formed
    query, so it is refused like AXFR rather than called malformed."""
    request = dns.message.make_query("test.example", "IXFR")
    request.authority.append(
        dns.rrset.from_text(
            "test.example.",
            0,
            "IN",
            "SOA",
            "ns1.test.example. hostmaster.test.example. 1 3600 600 86400 60",
        )
    )
    reply = server.tcp(request)
    assert reply.rcode() == REFUSED


# ---- TCP framing abuse ------------------------------------------------------------------

GARBAGE = random.Random(SEED + 3).randbytes(60)


def test_tcp_garbage_message_gets_formerr_and_the_connection_stays(server: FodnsProcess) -> None:
    """A whole message with a readable header that is not a valid query: FORMERR, as over
    UDP (RFC 1035 §4.1.1; DESIGN.md: FORMERR whenever the header can be read). The
    framing is intact, so the stream is still in step and the next query is answered
    (RFC 7766 §6.2.4 leaves closing to servers that cannot carry on)."""
    packet = GARBAGE[:2] + bytes([GARBAGE[2] & 0x07]) + GARBAGE[3:]  # QR=0, QUERY
    with tcp_connect(server) as sock:
        reply = tcp_exchange(sock, packet)
        assert reply is not None, "the connection was closed instead of answering FORMERR"
        check_reply(packet, reply, udp=False)
        message = dns.message.from_wire(reply)
        assert message.rcode() == FORMERR, dns.rcode.to_text(message.rcode())
        assert not message.answer and not message.authority
        after = tcp_exchange(sock, query(qid=0x6A6B))
        assert after is not None, "the connection was closed after the FORMERR"
        assert after[:2] == b"\x6a\x6b" and rcode_of(after) == NOERROR
    assert_still_serving(server)


@pytest.mark.parametrize(
    "framed",
    [b"\x00\x01\xff", b"\x00\x00", b"\x00\x0b" + header()[:11]],
    ids=["1-byte message", "empty message", "11-byte message"],
)
def test_tcp_message_without_a_header_closes_the_connection(
    server: FodnsProcess, framed: bytes
) -> None:
    with tcp_connect(server) as sock:
        sock.sendall(framed)
        assert recv_exactly(sock, 1) is None, "connection left open after a headerless message"
    assert_still_serving(server)


def test_tcp_response_closes_the_connection(server: FodnsProcess) -> None:
    with tcp_connect(server) as sock:
        assert tcp_exchange(sock, header(flags=QR) + question("www.test.example")) is None
    assert_still_serving(server)


@pytest.mark.parametrize(
    "send",
    [
        lambda sock: sock.sendall(b"\xff\xff" + query()),  # promises 65535 bytes, sends 34
        lambda sock: sock.sendall(b"\x00"),  # half a length prefix
        lambda sock: sock.sendall(b"\x00\x22" + query()[:20]),
    ],
    ids=["long promise", "half prefix", "cut message"],
)
def test_tcp_incomplete_message_then_close(
    server: FodnsProcess, send: Callable[[socket.socket], None]
) -> None:
    with tcp_connect(server) as sock:
        send(sock)
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing complete to answer yet
    assert_still_serving(server)


def test_tcp_good_query_after_garbage_on_a_fresh_connection(server: FodnsProcess) -> None:
    with tcp_connect(server) as sock:
        assert tcp_exchange(sock, b"\x01") is None
    with tcp_connect(server) as sock:
        reply = tcp_exchange(sock, query(qid=0x4242))
        assert reply is not None
        message = dns.message.from_wire(reply)
        assert message.id == 0x4242 and message.rcode() == NOERROR


# ---- afterwards --------------------------------------------------------------------------


def test_server_survived_and_never_raised(server: FodnsProcess) -> None:
    assert_still_serving(server)
    time.sleep(0.1)  # let the log reader catch up
    assert server.log_events("query_failed") == []
