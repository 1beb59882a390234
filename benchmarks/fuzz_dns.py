"""The DNS half of benchmarks/fuzz.py: valid queries, the random and mutated packets made
from them, what every reply must be, and the UDP and TCP clients that send them.

Runs in client processes of its own (see fuzz.py); each client gets a seed, a
share of the count and a deadline, and returns what it sent and what it found.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import random
import selectors
import socket
import struct
import time
import traceback
from collections.abc import Iterator
from typing import Any

import dns.edns
import dns.exception
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.update

ORIGIN = "fo.example.net."
TSIG_NAME = "fuzz"
TSIG_SECRET = base64.b64encode(b"fodns-fuzz-secret-32-bytes-long!").decode()
UDP_PAYLOAD = 1232  # the server's (the default); replies with an OPT fit in this
PLAIN_UDP_LIMIT = 512  # RFC 1035 §4.2.1: without EDNS
QUERY_BUFFER = 4096  # fodns/batchio.py: longer datagrams are cut and answered FORMERR
SENSIBLE_RCODES = frozenset(
    {
        dns.rcode.NOERROR,
        dns.rcode.FORMERR,
        dns.rcode.NXDOMAIN,
        dns.rcode.NOTIMP,
        dns.rcode.REFUSED,
        dns.rcode.NOTAUTH,
        dns.rcode.BADVERS,
    }
)
UDP_SOCKETS_PER_CLIENT = 8
UDP_PAIRS_IN_FLIGHT = 16  # per socket: a packet and its sentinel each
TCP_CONNECTIONS_PER_CLIENT = 8
TCP_MESSAGES_PER_CONNECTION = 40  # at most
REPLY_TIMEOUT = 3.0  # a packet with no answer (and no sentinel answer) for this long is lost
TRANSFER_IDLE = 1.0  # a transfer reply that pauses this long is taken as finished
FINDING_EXAMPLES = 5  # kept per kind of finding


# ---- valid queries: the corpus every mutation starts from ------------------------------

HEADER = struct.Struct("!HHHHHH")
QR_BIT = 0x80  # in byte 2
OPT_PLAIN = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"


def wire_name(name: str) -> bytes:
    labels = [label.encode() for label in name.strip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def raw_query(
    name: str, qtype: int = 1, qclass: int = 1, flags: int = 0x0100, **counts: int
) -> bytes:
    header = HEADER.pack(
        0x1234,
        flags,
        counts.get("qd", 1),
        counts.get("an", 0),
        counts.get("ns", 0),
        counts.get("ar", 0),
    )
    return header + wire_name(name) + struct.pack("!HH", qtype, qclass)


def record(owner: bytes, rtype: int, rdata: bytes, rclass: int = 1, ttl: int = 300) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def build_corpus(labels: list[str]) -> list[bytes]:
    """Valid (and deliberately odd but legal) queries: the seeds of every mutation."""
    names = [
        ORIGIN,
        f"www.{ORIGIN}",
        "WwW.Fo.ExAmPlE.nEt.",
        f"mail.{ORIGIN}",
        f"status.{ORIGIN}",  # CNAME to www (in zone)
        f"docs.{ORIGIN}",  # CNAME out of zone
        f"_https._tcp.{ORIGIN}",
        f"apps.{ORIGIN}",  # empty non-terminal
        f"web.apps.{ORIGIN}",
        f"x.preview.{ORIGIN}",  # wildcard
        f"a.b.preview.{ORIGIN}",
        f"no-such-name.{ORIGIN}",
        f"ns1.{ORIGIN}",
        "example.com.",  # not ours: REFUSED
        ".",
        *(f"{label}.{ORIGIN}" for label in labels),
        *(f"{label.upper()}.{ORIGIN}" for label in labels[:2]),
        f"sub.{labels[0]}.{ORIGIN}",
    ]
    qtypes = ["A", "AAAA", "NS", "SOA", "MX", "TXT", "CAA", "SRV", "CNAME", "ANY", "PTR"]
    corpus: list[bytes] = []
    for index, name in enumerate(names):
        for qtype in qtypes:
            query = dns.message.make_query(name, qtype)
            corpus.append(query.to_wire())
        # EDNS forms: payload sizes, DO, options (cookie, ECS, NSID, padding, unknown).
        options: list[list[dns.edns.Option]] = [
            [],
            [dns.edns.CookieOption(bytes(range(8)), b"")],
            [dns.edns.CookieOption(bytes(range(8)), bytes(range(16)))],
            [dns.edns.ECSOption("192.0.2.0", 24)],
            [dns.edns.ECSOption("2001:db8::", 56)],
            [dns.edns.NSIDOption(b"")],
            [dns.edns.GenericOption(12, bytes(64))],  # padding (RFC 7830)
            [dns.edns.GenericOption(65001, b"fuzz")],
        ]
        payload = (0, 512, 1232, 4096, 65535)[index % 5]
        for qtype in ("A", "AAAA", "TXT", "ANY"):
            query = dns.message.make_query(
                name,
                qtype,
                use_edns=0,
                payload=payload,
                want_dnssec=index % 2 == 0,
                options=options[index % len(options)],
            )
            corpus.append(query.to_wire())
    # Other classes, meta and unusual types, flags.
    for qclass in (3, 4, 254, 255, 0, 65535):
        corpus.append(raw_query(f"www.{ORIGIN}", 1, qclass))
        corpus.append(raw_query("version.bind.", 16, qclass))
    for qtype in (0, 41, 43, 46, 48, 64, 65, 99, 249, 250, 251, 252, 253, 254, 255, 256, 65535):
        corpus.append(raw_query(f"www.{ORIGIN}", qtype))
        corpus.append(raw_query(f"{labels[0]}.{ORIGIN}", qtype, ar=1) + OPT_PLAIN)
    for flags in (0x0000, 0x0010, 0x0020, 0x0200, 0x0400, 0x0080, 0x07F0, 0x7FFF & ~0x7800):
        corpus.append(raw_query(f"www.{ORIGIN}", 1, flags=flags))
    # Opcodes other than QUERY: IQUERY, STATUS, NOTIFY (with an SOA), UPDATE, DSO, 15.
    for opcode in (1, 2, 3, 6, 7, 15):
        corpus.append(raw_query(f"www.{ORIGIN}", 1, flags=(opcode << 11) | 0x0100))
    notify = dns.message.make_query(ORIGIN, "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    corpus.append(notify.to_wire())
    update = dns.update.UpdateMessage(ORIGIN)
    update.add("fuzz-update", 300, "A", "192.0.2.99")
    corpus.append(update.to_wire())
    corpus.append(HEADER.pack(0x1234, 6 << 11, 0, 0, 0, 0) + struct.pack("!HHII", 1, 8, 1, 1))
    # EDNS errors: version 1, two OPTs, an OPT not at the root, an option cut short.
    corpus.append(raw_query(f"www.{ORIGIN}", 1, ar=1) + OPT_PLAIN[:5] + b"\x01" + OPT_PLAIN[6:])
    corpus.append(raw_query(f"www.{ORIGIN}", 1, ar=2) + OPT_PLAIN + OPT_PLAIN)
    corpus.append(raw_query(f"www.{ORIGIN}", 1, ar=1) + b"\x01a" + OPT_PLAIN)
    corpus.append(raw_query(f"www.{ORIGIN}", 1, ar=1) + OPT_PLAIN[:-2] + b"\x00\x08\x00\x0a\x00")
    # Compression pointers: the question pointing into the header, records pointing
    # at the question, a pointer loop, a forward pointer.
    base = raw_query(f"www.{ORIGIN}", 1)
    question_end = len(base)
    corpus.append(HEADER.pack(0x1234, 0x0100, 1, 0, 0, 0) + b"\xc0\x04\x00\x01\x00\x01")
    corpus.append(raw_query(f"www.{ORIGIN}", 1, ar=1) + record(b"\xc0\x0c", 1, bytes(4)))
    corpus.append(raw_query(f"www.{ORIGIN}", 1, ar=1) + record(b"\x01a\xc0\x10", 16, b"\x01x"))
    corpus.append(
        raw_query(f"www.{ORIGIN}", 1, ar=1)
        + record(bytes([0xC0, question_end]), 1, bytes(4))  # points at itself
    )
    corpus.append(HEADER.pack(0x1234, 0x0100, 1, 0, 0, 0) + b"\xc0\x20\x00\x01\x00\x01" + bytes(24))
    # Odd counts: none, two questions, records in answer and authority, too many.
    corpus.append(HEADER.pack(0x1234, 0x0100, 0, 0, 0, 0))
    corpus.append(
        HEADER.pack(0x1234, 0x0100, 2, 0, 0, 0)
        + wire_name(f"www.{ORIGIN}")
        + b"\x00\x01\x00\x01"
        + wire_name(f"mail.{ORIGIN}")
        + b"\x00\x01\x00\x01"
    )
    corpus.append(raw_query(f"www.{ORIGIN}", 1, an=1) + record(b"\xc0\x0c", 1, bytes(4)))
    corpus.append(raw_query(f"www.{ORIGIN}", 1, ns=1) + record(b"\xc0\x0c", 1, bytes(4)))
    corpus.append(raw_query(f"www.{ORIGIN}", 1, qd=3, an=2, ns=2, ar=2))
    # Zone transfers: AXFR, IXFR with the client's SOA (RFC 1995 §3), IXFR without it.
    corpus.append(dns.message.make_query(ORIGIN, "AXFR").to_wire())
    ixfr = dns.message.make_query(ORIGIN, "IXFR")
    ixfr.authority.append(
        dns.rrset.from_text(ORIGIN, 0, "IN", "SOA", f"ns1.{ORIGIN} hostmaster.{ORIGIN} 1 1 1 1 1")
    )
    corpus.append(ixfr.to_wire())
    corpus.append(dns.message.make_query(ORIGIN, "IXFR").to_wire())
    # TSIG: our key (good until its time drifts past the fudge), a wrong secret, an
    # unknown key, and a signed AXFR.
    good = dns.tsigkeyring.from_text({TSIG_NAME: TSIG_SECRET})
    wrong = dns.tsigkeyring.from_text({TSIG_NAME: base64.b64encode(b"x" * 32).decode()})
    unknown = dns.tsigkeyring.from_text({"nobody.": TSIG_SECRET})
    for keyring, keyname in ((good, TSIG_NAME), (wrong, TSIG_NAME), (unknown, "nobody.")):
        for qtype in ("A", "SOA", "AXFR"):
            signed = dns.message.make_query(f"www.{ORIGIN}" if qtype == "A" else ORIGIN, qtype)
            signed.use_tsig(keyring, keyname=keyname, algorithm=dns.tsig.HMAC_SHA256)
            corpus.append(signed.to_wire())
    # Signed answers too big for UDP: truncated with room kept for our TSIG.
    for label in labels:
        for payload in (None, 512, 1232, 4096):
            signed = dns.message.make_query(
                f"{label}.{ORIGIN}", "A", use_edns=payload is not None, payload=payload or 1232
            )
            signed.use_tsig(good, keyname=TSIG_NAME, algorithm=dns.tsig.HMAC_SHA256)
            corpus.append(signed.to_wire())
    # The longest legal name, and one byte longer.
    long_labels = ".".join(["a" * 63] * 3)
    corpus.append(raw_query(f"{'b' * 47}.{long_labels}.{ORIGIN}"))
    corpus.append(raw_query(f"{'b' * 48}.{long_labels}.{ORIGIN}"))
    return corpus


# ---- making packets: random, mutated, walked ------------------------------------------

INTERESTING_BYTES = (0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFF)


def mutate(rng: random.Random, packet: bytes, corpus: list[bytes]) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
        kind = rng.randrange(11)
        if kind == 0 and data:  # bit flips
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:  # cut short
            del data[rng.randint(0, len(data)) :]
        elif kind == 2 and len(data) >= 12:  # a count changed
            offset = rng.choice((4, 6, 8, 10))
            data[offset : offset + 2] = rng.choice(
                (b"\xff\xff", b"\x00\x00", b"\x00\x02", rng.randbytes(2))
            )
        elif kind == 3:  # random bytes inserted
            at = rng.randint(0, len(data))
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == 4 and data:  # a byte overwritten with an interesting value
            data[rng.randrange(len(data))] = rng.choice(INTERESTING_BYTES)
        elif kind == 5:  # garbage appended
            data += rng.randbytes(rng.randint(1, 40))
        elif kind == 6 and data:  # a range deleted
            start = rng.randrange(len(data))
            del data[start : start + rng.randint(1, 8)]
        elif kind == 7 and data:  # a range repeated
            start = rng.randrange(len(data))
            data[start:start] = data[start : start + rng.randint(1, 24)]
        elif kind == 8:  # spliced with another query's tail
            other = rng.choice(corpus)
            data = data[: rng.randint(0, len(data))] + other[rng.randint(0, len(other)) :]
        elif kind == 9 and len(data) > 13:  # a compression pointer somewhere
            at = rng.randrange(12, len(data) - 1)
            data[at : at + 2] = bytes([0xC0 | rng.randrange(4), rng.randrange(256)])
        elif kind == 10 and len(data) >= 4:  # header flag bits, QR left clear mostly
            data[2] = rng.randrange(256) & (0xFF if rng.random() < 0.1 else 0x7F)
            data[3] = rng.randrange(256)
    if len(data) >= 2:
        data[:2] = rng.randbytes(2)
    return bytes(data)


def random_packet(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        return rng.randbytes(rng.randint(0, 20))
    if roll < 0.6:
        # A plausible header (QR clear, QUERY, one question) and random bytes after it.
        counts = rng.choice(((1, 0, 0, 0), (1, 0, 0, 1), tuple(rng.randrange(4) for _ in "1234")))
        return HEADER.pack(rng.randrange(65536), 0x0100, *counts) + rng.randbytes(
            rng.randint(0, 300)
        )
    packet = rng.randbytes(rng.randint(12, 600))
    if rng.random() < 0.5:
        # Half as queries (QR=0), half of those with opcode QUERY, so they reach the parser.
        mask = 0x07 if rng.random() < 0.5 else 0x7F
        packet = packet[:2] + bytes([packet[2] & mask]) + packet[3:]
    return packet


def oversized_packet(rng: random.Random, corpus: list[bytes]) -> bytes:
    """A query padded past the server's 4096-byte UDP buffer (or just under it)."""
    base = rng.choice(corpus)
    size = rng.choice((QUERY_BUFFER - 1, QUERY_BUFFER, QUERY_BUFFER + 1, rng.randint(4097, 9000)))
    return rng.randbytes(2) + base[2:] + rng.randbytes(max(0, size - len(base)))


def walk(corpus: list[bytes], part: int, parts: int) -> Iterator[bytes]:
    """Every single-bit flip and every interesting byte value at every offset of every
    corpus query, offset by offset (headers first); this client's share of them."""
    longest = max(map(len, corpus))
    index = 0
    while True:  # around again if the run is longer than the walk
        for offset in range(longest):
            for packet in corpus:
                if offset >= len(packet):
                    continue
                for change in range(8 + len(INTERESTING_BYTES)):
                    index += 1
                    if index % parts != part:
                        continue
                    data = bytearray(packet)
                    if change < 8:
                        data[offset] ^= 1 << change
                    elif data[offset] != INTERESTING_BYTES[change - 8]:
                        data[offset] = INTERESTING_BYTES[change - 8]
                    else:
                        continue
                    yield bytes(data)


class Packets:
    """Draws the next packet to send, and says what kind it is."""

    def __init__(self, rng: random.Random, corpus: list[bytes], part: int, parts: int) -> None:
        self.rng = rng
        self.corpus = corpus
        self.walk = walk(corpus, part, parts)

    def next(self, udp: bool = True) -> tuple[str, bytes]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.10:
            return "random", random_packet(rng)
        if roll < 0.15:
            return "valid", rng.randbytes(2) + rng.choice(self.corpus)[2:]
        if roll < 0.35:
            return "walk", next(self.walk)
        if roll < 0.36 and udp:
            return "oversized", oversized_packet(rng, self.corpus)
        return "mutated", mutate(rng, rng.choice(self.corpus), self.corpus)


# ---- what every reply must be ---------------------------------------------------------


def expects_reply(packet: bytes) -> bool:
    """DESIGN.md: FORMERR when the header can be read, otherwise dropped; and never a
    reply to a reply (RFC 1035 §7.3)."""
    return len(packet) >= 12 and not packet[2] & QR_BIT


def query_question(packet: bytes) -> dns.message.Message | None:
    """The query as dnspython reads it (its question at least), or None."""
    with contextlib.suppress(Exception):
        return dns.message.from_wire(packet, keyring=False)
    with contextlib.suppress(Exception):
        return dns.message.from_wire(packet, keyring=False, question_only=True)
    return None


def reply_problem(packet: bytes, reply: bytes, udp: bool) -> str | None:
    """What is wrong with `reply` as the answer to `packet`, or None."""
    if len(reply) < 12:
        return "reply shorter than a header"
    if reply[:2] != packet[:2]:
        return "ID not echoed"
    if not reply[2] & QR_BIT:
        return "QR clear in a reply"
    if (reply[2] >> 3) & 0x0F != (packet[2] >> 3) & 0x0F:
        return "opcode not copied"
    if reply[3] & 0x80:
        return "RA set (an authoritative server does not recurse)"
    try:
        # keyring=False: a TSIG record is read, not verified.
        message = dns.message.from_wire(reply, keyring=False)
    except Exception as exc:
        return f"reply does not parse: {type(exc).__name__}"
    if message.rcode() not in SENSIBLE_RCODES:
        return f"rcode {dns.rcode.to_text(message.rcode())}"
    opcode = (packet[2] >> 3) & 0x0F
    oversized = udp and len(packet) > QUERY_BUFFER
    if opcode != 0 and not oversized and message.rcode() not in (dns.rcode.NOTIMP, 9):
        return f"opcode {opcode} answered {dns.rcode.to_text(message.rcode())}, not NOTIMP"
    query = query_question(packet) if message.question or message.edns >= 0 else None
    if message.question:
        if query is None or len(query.question) != 1 or len(message.question) != 1:
            return "a question in the reply that the query did not have"
        asked, echoed = query.question[0], message.question[0]
        if (asked.name.labels, asked.rdtype, asked.rdclass) != (
            echoed.name.labels,
            echoed.rdtype,
            echoed.rdclass,
        ):
            return "question not echoed as asked (name, case, type or class)"
    if udp:
        limit = PLAIN_UDP_LIMIT
        if message.edns >= 0:
            limit = UDP_PAYLOAD
            if query is not None and query.edns >= 0:
                limit = max(PLAIN_UDP_LIMIT, min(query.payload, UDP_PAYLOAD))
        if len(reply) > limit:
            return f"UDP reply of {len(reply)} bytes over the limit of {limit}"
    return None


class Findings:
    """Problems by kind: a count and the first few examples of each."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)

    def add(self, problem: str, **example: Any) -> None:
        self.counts[problem] += 1
        if len(self.examples[problem]) < FINDING_EXAMPLES:
            self.examples[problem].append(example)

    def merge(self, other: dict[str, Any]) -> None:
        for kind, count in other["counts"].items():
            self.counts[kind] += count
            room = FINDING_EXAMPLES - len(self.examples[kind])
            self.examples[kind].extend(other["examples"].get(kind, [])[: max(0, room)])

    def to_json(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "examples": dict(self.examples)}


@dataclasses.dataclass
class Tally:
    """What one client sent and saw."""

    sent: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    rcodes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    replies: int = 0
    no_reply_expected: int = 0
    lost: int = 0
    findings: Findings = dataclasses.field(default_factory=Findings)

    def judge(self, transport: str, kind: str, packet: bytes, replies: list[bytes]) -> None:
        udp = transport == "udp"
        if not expects_reply(packet):
            self.no_reply_expected += 1
            if replies:
                self.findings.add(
                    f"{transport}: reply to a packet without a header or with QR set",
                    kind=kind,
                    packet=packet.hex(),
                    reply=replies[0].hex(),
                )
            return
        if not replies:
            self.findings.add(f"{transport}: no reply", kind=kind, packet=packet.hex())
            return
        if len(replies) > 1:
            self.findings.add(
                f"{transport}: {len(replies)} replies to one query",
                kind=kind,
                packet=packet.hex(),
            )
        self.replies += 1
        reply = replies[0]
        self.rcodes[str(reply[3] & 0x0F)] += 1
        problem = reply_problem(packet, reply, udp)
        if problem is not None:
            self.findings.add(
                f"{transport}: {problem}", kind=kind, packet=packet.hex(), reply=reply.hex()
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": dict(self.sent),
            "replies_checked": self.replies,
            "no_reply_expected": self.no_reply_expected,
            "lost": self.lost,
            "rcodes": {
                dns.rcode.to_text(dns.rcode.Rcode(int(rcode))): count
                for rcode, count in sorted(self.rcodes.items(), key=lambda item: int(item[0]))
            },
            "findings": self.findings.to_json(),
        }


# ---- UDP: a packet, then a sentinel whose answer closes the packet's account ----------

SENTINEL_QUESTION = wire_name(f"www.{ORIGIN}") + b"\x00\x01\x00\x01"


@dataclasses.dataclass
class Pending:
    kind: str
    packet: bytes
    sentinel_id: bytes
    replies: list[bytes]


class Lane:
    """One connected UDP socket with packets in flight, answered in order.

    The server answers one socket's datagrams in the order they came (one worker
    gets them all: SO_REUSEPORT hashes the address pair; one event loop answers
    them), so whatever arrives before a packet's sentinel answer is the answer to
    that packet.
    """

    def __init__(self, port: int, selector: selectors.BaseSelector) -> None:
        self.port = port
        self.selector = selector
        self.pending: collections.deque[Pending] = collections.deque()
        self.last_progress = time.monotonic()
        self.sock = self._open()

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.connect(("127.0.0.1", self.port))
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, self)
        return sock

    def send(self, kind: str, packet: bytes) -> None:
        packet_id = packet[:2].ljust(2, b"\x00")
        sentinel_id = bytes([packet_id[0] ^ 0x80, packet_id[1]])
        sentinel = sentinel_id + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + SENTINEL_QUESTION
        if not self.pending:
            self.last_progress = time.monotonic()
        self.pending.append(Pending(kind, packet, sentinel_id, []))
        self.sock.send(packet)
        self.sock.send(sentinel)

    def receive(self, tally: Tally) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                tally.findings.add("udp: ICMP port unreachable (the server is gone?)")
                return
            self.last_progress = time.monotonic()
            if not self.pending:
                tally.findings.add("udp: a datagram with no query outstanding", reply=data.hex())
                continue
            head = self.pending[0]
            if data[:2] == head.sentinel_id and data[12:].startswith(SENTINEL_QUESTION):
                self.pending.popleft()
                tally.judge("udp", head.kind, head.packet, head.replies)
            else:
                head.replies.append(data)

    def stalled(self, now: float) -> bool:
        return bool(self.pending) and now - self.last_progress > REPLY_TIMEOUT

    def reset(self, tally: Tally) -> None:
        """A sentinel answer never came: count what was in flight as lost, start afresh."""
        tally.lost += len(self.pending)
        self.pending.clear()
        self.selector.unregister(self.sock)
        self.sock.close()
        self.sock = self._open()

    def close(self) -> None:
        self.selector.unregister(self.sock)
        self.sock.close()


def udp_fuzz(job: ClientJob) -> dict[str, Any]:
    rng = random.Random(job.seed)
    packets = Packets(rng, job.corpus, job.part, job.parts)
    tally = Tally()
    selector = selectors.DefaultSelector()
    lanes = [Lane(job.port, selector) for _ in range(UDP_SOCKETS_PER_CLIENT)]
    sent = 0
    try:
        while time.monotonic() < job.deadline:
            for lane in lanes:
                while len(lane.pending) < UDP_PAIRS_IN_FLIGHT and sent < job.count:
                    kind, packet = packets.next(udp=True)
                    tally.sent[kind] += 1
                    sent += 1
                    try:
                        lane.send(kind, packet)
                    except ConnectionRefusedError:
                        tally.findings.add("udp: ICMP port unreachable (the server is gone?)")
                        time.sleep(0.1)
            if sent >= job.count and not any(lane.pending for lane in lanes):
                break
            for key, _ in selector.select(timeout=0.5):
                key.data.receive(tally)
            now = time.monotonic()
            for lane in lanes:
                if lane.stalled(now):
                    lane.reset(tally)
    finally:
        for lane in lanes:
            tally.lost += len(lane.pending)
            lane.close()
    return {"udp": tally.to_json()}


# ---- TCP: pipelines of framed messages, some framed wrongly ---------------------------


def is_transfer_query(message: bytes) -> bool:
    """What fodns/server.py hands to the transfer code instead of the query handler."""
    if len(message) < 17 or message[2] & 0xF8 or message[4:6] != b"\x00\x01":
        return False
    index = 12
    while index < len(message):
        length = message[index]
        if length == 0:
            break
        if length > 63 or index + length + 1 - 12 >= 255:
            return False
        index += length + 1
    else:
        return False
    return message[index + 1 : index + 3] in (b"\x00\xfc", b"\x00\xfb")


def frame_stream(rng: random.Random, messages: list[bytes]) -> bytes:
    """The messages with their 2-byte lengths, a few of them wrong (RFC 1035 §4.2.2)."""
    stream = bytearray()
    for message in messages:
        length = len(message)
        if rng.random() < 0.05:
            length = rng.choice((0, 1, 11, length - 1, length + 1, rng.randrange(65536)))
            length = max(0, min(65535, length))
        stream += length.to_bytes(2, "big") + message
    if rng.random() < 0.05:
        stream += rng.randbytes(rng.randint(1, 3))  # a stray half frame at the end
    return bytes(stream)


def server_view(stream: bytes) -> tuple[list[bytes], bytes]:
    """The messages the server reads from `stream`, up to the first it will not answer
    (it closes the connection there) or the first transfer query (answered by a task);
    and the stream cut there, so nothing is sent after a point where it closes."""
    messages = []
    offset = 0
    while offset + 2 <= len(stream):
        length = stream[offset] << 8 | stream[offset + 1]
        if offset + 2 + length > len(stream):
            break
        message = stream[offset + 2 : offset + 2 + length]
        offset += 2 + length
        messages.append(message)
        if not expects_reply(message) or is_transfer_query(message):
            return messages, stream[:offset]
    return messages, stream


async def tcp_connection(
    port: int, rng: random.Random, packets: Packets, budget: int, tally: Tally
) -> int:
    """One connection: a pipeline of messages, their replies read and judged; how many
    messages it sent."""
    count = rng.randint(1, min(budget, TCP_MESSAGES_PER_CONNECTION))
    drawn = [packets.next(udp=False) for _ in range(count)]
    kinds = {message: kind for kind, message in drawn}
    stream = frame_stream(rng, [message for _, message in drawn])
    messages, stream = server_view(stream)
    for message in messages:
        tally.sent[kinds.get(message, "reframed")] += 1
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), REPLY_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        tally.findings.add("tcp: connection refused or timed out", error=repr(exc))
        tally.lost += len(messages)
        return len(messages)
    replies_task = asyncio.ensure_future(read_replies(reader, messages, kinds, tally))
    try:
        if rng.random() < 0.3:
            # In pieces: the server must put messages together across reads.
            offset = 0
            while offset < len(stream):
                step = rng.randint(1, 64)
                writer.write(stream[offset : offset + step])
                offset += step
                await writer.drain()
                await asyncio.sleep(0)
        else:
            writer.write(stream)
            await writer.drain()
        ends_open = not messages or (
            expects_reply(messages[-1]) and not is_transfer_query(messages[-1])
        )
        if ends_open:
            writer.write_eof()  # the server closes once it has answered all
        await asyncio.wait_for(replies_task, REPLY_TIMEOUT + TRANSFER_IDLE + 2)
    except (ConnectionError, TimeoutError) as exc:
        if not replies_task.done():
            replies_task.cancel()
            tally.findings.add(
                "tcp: replies not complete", error=repr(exc), stream=stream[:2000].hex()
            )
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return len(messages)


async def read_message(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """One framed message, or None when the server closed the connection."""
    try:
        prefix = await asyncio.wait_for(reader.readexactly(2), timeout)
        return await asyncio.wait_for(reader.readexactly(prefix[0] << 8 | prefix[1]), timeout)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def read_replies(
    reader: asyncio.StreamReader, messages: list[bytes], kinds: dict[bytes, str], tally: Tally
) -> None:
    for index, message in enumerate(messages):
        kind = kinds.get(message, "reframed")
        if is_transfer_query(message):
            await read_transfer(reader, message, kind, tally)
            return
        if not expects_reply(message):
            reply = await read_message(reader, REPLY_TIMEOUT)
            tally.judge("tcp", kind, message, [reply] if reply is not None else [])
            return
        reply = await read_message(reader, REPLY_TIMEOUT)
        if reply is None:
            tally.judge("tcp", kind, message, [])
            tally.lost += len(messages) - index - 1
            return
        tally.judge("tcp", kind, message, [reply])
    # Everything answered and our side closed: nothing more may come.
    extra = await read_message(reader, REPLY_TIMEOUT)
    if extra is not None:
        tally.findings.add("tcp: a reply nobody asked for", reply=extra.hex())


async def read_transfer(
    reader: asyncio.StreamReader, query: bytes, kind: str, tally: Tally
) -> None:
    """An AXFR/IXFR reply: any number of messages (none: refused by closing), each a
    well-formed reply to the query; over when it pauses or ends in its closing SOA."""
    soa_seen = 0
    first = True
    while True:
        try:
            message = await read_message(reader, TRANSFER_IDLE)
        except TimeoutError:
            return
        if message is None:
            if first:
                tally.judge("tcp", kind, query, [])  # a transfer query is answered too
            return
        tally.replies += 1
        tally.rcodes[str(message[3] & 0x0F)] += 1
        problem = reply_problem(query, message, udp=False)
        if problem is not None and not (not first and problem.startswith("question")):
            tally.findings.add(
                f"tcp transfer: {problem}", kind=kind, packet=query.hex(), reply=message[:512].hex()
            )
            return
        tally.sent["transfer_messages"] += 1
        first = False
        try:
            parsed = dns.message.from_wire(message, keyring=False, xfr=True, one_rr_per_rrset=True)
        except Exception:
            return
        if parsed.rcode() != dns.rcode.NOERROR:
            return
        soa_seen += sum(1 for rrset in parsed.answer if rrset.rdtype == dns.rdatatype.SOA)
        answers = sum(len(rrset) for rrset in parsed.answer)
        if soa_seen >= 2 or (answers == 1 and soa_seen == 1):
            return  # AXFR and IXFR end in the SOA; an IXFR "up to date" is the SOA alone


async def tcp_fuzz_async(job: ClientJob) -> Tally:
    rng = random.Random(job.seed)
    packets = Packets(rng, job.corpus, job.part, job.parts)
    tally = Tally()
    sent = 0

    async def connection_loop(lane_rng: random.Random) -> None:
        nonlocal sent
        while sent < job.count and time.monotonic() < job.deadline:
            # Reserved before the await, so that the connections together stop at the count.
            budget = min(job.count - sent, TCP_MESSAGES_PER_CONNECTION)
            sent += budget
            try:
                used = await tcp_connection(job.port, lane_rng, packets, budget, tally)
            except Exception:  # a bug of the fuzzer's own: say so, keep going
                tally.findings.add("tcp: fuzzer error", error=traceback.format_exc(limit=-3))
                used = budget
            sent -= budget - min(used, budget)

    await asyncio.gather(
        *(connection_loop(random.Random(rng.random())) for _ in range(TCP_CONNECTIONS_PER_CLIENT))
    )
    return tally


def tcp_fuzz(job: ClientJob) -> dict[str, Any]:
    return {"tcp": asyncio.run(tcp_fuzz_async(job)).to_json()}


@dataclasses.dataclass
class ClientJob:
    transport: str
    port: int
    corpus: list[bytes]
    seed: int
    count: int
    deadline: float
    part: int
    parts: int


def run_client(job: ClientJob) -> dict[str, Any]:
    # The deadline is monotonic time of the parent: the same clock in a child on Linux.
    began = time.monotonic()
    result = udp_fuzz(job) if job.transport == "udp" else tcp_fuzz(job)
    result[job.transport]["seconds"] = time.monotonic() - began
    return result
