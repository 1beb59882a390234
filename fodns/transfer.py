"""Zone transfers out of fodns: AXFR (RFC 5936) and IXFR (RFC 1995) over TCP, with
TSIG (RFC 8945).

A secondary asks over TCP; fodns checks the zone's `allow_transfer` list (the
peer's address, and the TSIG key when the entry names one), then streams the
zone. AXFR: its SOA, every RRset (zone file and failover groups alike), the SOA
again. IXFR: the difference sequences since the secondary's serial, from the
store's journal; the whole zone in AXFR form when the journal no longer reaches
back that far or the differences would outweigh the zone (RFC 1995 §4).

Replies are produced message by message from a snapshot taken when the query
arrives, so the server can send one, serve other queries, and send the next.
A message ends before a record set that would take it past 64 KiB, so sets
are never cut in two when they fit in a message; a set too large for any
message has its records spread over several (RFC 5936 §2.2), and only a single
record too large for any message is left out, logged and counted.
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset
import dns.tsig
import dns.tsigkeyring

from fodns import querystats
from fodns.config import TransferPeer, TsigKeyConfig, ZoneConfig
from fodns.groups import GroupRecords
from fodns.journal import JournalEntry, JournalRecord, is_current
from fodns.logs import get_logger
from fodns.table import AnswerTable
from fodns.tsig import (
    BADKEY,
    BADSIG,
    BADTIME,
    TSIG_SIGN,
    Verdict,
    check_request,
    sign_reply,
    tsig_keyring,
)
from fodns.wire import (
    FORMERR,
    MAX_TCP_MESSAGE,
    NOTAUTH,
    POINTER_TO_QUESTION,
    error_reply,
    unsigned_tsig_error,
)
from fodns.zone import SOA, RRset, ZoneData, name_to_wire, wire_key

log = get_logger()
TRANSFER_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
# A message is sent once it holds this many octets: small enough that other
# queries get the loop between messages, large enough to amortise each one's
# header and TSIG. A record set that would take it past the 64 KiB TCP limit
# (RFC 1035 §4.2.2) starts the next message instead.
MESSAGE_BUDGET = 16_000
IN = dns.rdataclass.IN
POINTER_TO_QUESTION_BYTES = POINTER_TO_QUESTION.to_bytes(2, "big")
# dnspython's renderer, which its type hints leave untyped.
RENDERER: Any = dns.renderer.Renderer
# The store's journal for a zone between two serials (see journal.read_journal).
Journal = Callable[[str, int, int], list[JournalEntry] | None]


class Transfers:
    """Answers AXFR/IXFR queries for the table the server serves now."""

    def __init__(
        self,
        table: Callable[[], AnswerTable],
        zones: list[ZoneConfig],
        keys: dict[str, TsigKeyConfig],
        journal: Journal | None = None,
        counters: list[int] | None = None,
    ) -> None:
        self.table = table
        self.journal = journal
        # The DNS process's counters (querystats), for records left out.
        self.counters = counters if counters is not None else querystats.new_counters()
        self.keyring = tsig_keyring(keys)
        self.allowed: dict[bytes, list[TransferPeer]] = {
            wire_key(dns.name.from_text(zone.name)): zone.allow_transfer for zone in zones
        }

    def answer(self, wire: bytes, peer: str) -> Iterator[bytes]:
        """The messages of the reply to one transfer query (none: close the connection).

        The checks and the snapshot of the zone happen now; the messages are
        rendered as the iterator is advanced.
        """
        try:
            # Read before verifying: a query that does not parse is FORMERR like any
            # other (RFC 1035 §4.1.1), a TSIG that cannot be read included (RFC 8945
            # §5.2); the signature is checked below.
            query = dns.message.from_wire(wire, keyring=False)
        except dns.exception.DNSException:
            return iter([error_reply(wire, FORMERR)])
        if query.had_tsig:
            verdict = check_request(wire, query, self.keyring)
            if verdict.error:
                return iter([_tsig_error(wire, query, verdict, peer)])
            query = verdict.request
        question = query.question[0]
        zone = self.table().zones.get(wire_key(question.name))
        key = query.keyname if query.had_tsig else None
        if zone is None:
            return iter([self._refuse(query, peer, key, "not a zone of this server")])
        if not any(p.admits(peer, key) for p in self.allowed.get(zone.origin_key, [])):
            return iter([self._refuse(query, peer, key, "peer or key not in allow_transfer")])
        if question.rdtype == dns.rdatatype.IXFR:
            if not query.authority or query.authority[0].rdtype != SOA:
                # RFC 1995 §3: the query carries the secondary's SOA in authority.
                return iter([_error(query, dns.rcode.FORMERR)])
            client_serial = int(query.authority[0][0].serial)
            style, rrsets = self._incremental(zone, client_serial)
        else:
            client_serial, style, rrsets = None, "full", _full(zone)
        log.info(
            "zone_transferred",
            zone=zone.origin.to_text(),
            peer=peer,
            key=key.to_text() if key else None,
            type=dns.rdatatype.to_text(question.rdtype),
            style=style,
            serial=zone.serial,
            client_serial=client_serial,
        )
        return _stream(query, rrsets, zone.origin, self.counters)

    def _incremental(self, zone: ZoneData, client_serial: int) -> tuple[str, Iterable[Item]]:
        """IXFR's answer: ("up-to-date" | "incremental" | "full", the RRsets to send)."""
        serial = zone.serial
        if is_current(client_serial, serial):
            # RFC 1995 §2: a secondary as new as us gets our SOA alone.
            return "up-to-date", [zone.soa]
        name = zone.origin.to_text(omit_final_dot=True)
        entries = self.journal(name, client_serial, serial) if self.journal else None
        if entries is None:
            return "full", _full(zone)
        changed = sum(len(e.removed) + len(e.added) for e in entries)
        if changed > len(zone.records):
            # §4: when the differences outweigh the zone, the zone is the better reply.
            return "full", _full(zone)
        rrsets = [zone.soa]
        for entry in entries:
            rrsets.append(_soa_at(zone.soa, entry.serial_from))
            rrsets.extend(_journal_rrsets(entry.removed))
            rrsets.append(_soa_at(zone.soa, entry.serial_to))
            rrsets.extend(_journal_rrsets(entry.added))
        rrsets.append(zone.soa)
        return "incremental", rrsets

    @staticmethod
    def _refuse(
        query: dns.message.Message, peer: str, key: dns.name.Name | None, why: str
    ) -> bytes:
        log.warning(
            "transfer_refused",
            zone=query.question[0].name.to_text(),
            peer=peer,
            key=key.to_text() if key else None,
            reason=why,
        )
        return _error(query, dns.rcode.REFUSED)


def _error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response.to_wire()


class RawRecords(NamedTuple):
    """Resource records already in wire form, and how many there are: each record is
    `owner` (labels, then a pointer to the question) then TYPE, CLASS, TTL,
    RDLENGTH and RDATA."""

    owner: bytes
    wire: bytes
    records: int

    def each(self) -> list[RawRecords]:
        """One RawRecords per record."""
        pieces = []
        offset, after_owner = 0, len(self.owner)
        while offset < len(self.wire):
            rdata_at = offset + after_owner + 10
            end = rdata_at + int.from_bytes(self.wire[rdata_at - 2 : rdata_at], "big")
            pieces.append(RawRecords(self.owner, self.wire[offset:end], 1))
            offset = end
        return pieces

    def rdtype(self) -> int:
        """The type of the first record."""
        return int.from_bytes(self.wire[len(self.owner) : len(self.owner) + 2], "big")

    def owner_name(self, origin: dns.name.Name) -> dns.name.Name:
        labels = []
        offset = 0
        while offset < len(self.owner) - 2:  # the last two octets point at the origin
            length = self.owner[offset]
            labels.append(self.owner[offset + 1 : offset + 1 + length])
            offset += 1 + length
        return dns.name.Name(labels).concatenate(origin)


Item = RRset | RawRecords


def _full(zone: ZoneData) -> Iterator[Item]:
    """AXFR's answer: SOA, every other RRset, SOA (RFC 5936 §2.2).

    The snapshot is a copy of the dict of each name's records as they are now: a
    change replaces a name's mapping in the table and never edits one, so the copy
    keeps this serial's data while the messages go out. A copy, not a list of
    (name, records) pairs: with a million groups the list's million new tuples
    woke the garbage collector again and again, and the first message took 1.5 s,
    during which this process answered no query; the copy takes 40 ms.
    """
    return _whole_zone(zone.soa, zone.records.copy(), zone.origin_key)


def _whole_zone(soa: RRset, nodes: dict[bytes, Any], origin_key: bytes) -> Iterator[Item]:
    yield soa
    for key, records in nodes.items():
        if isinstance(records, GroupRecords):
            # Groups' records straight to wire (dnspython's RRsets cost 100 us
            # each, 10 s for 100,000 groups); the owner ends in a pointer to the
            # zone's name, which is the question.
            if records:
                owner = key[: len(key) - len(origin_key)] + POINTER_TO_QUESTION_BYTES
                yield RawRecords(owner, *records.wire_records(owner))
            continue
        for rdtype in records:
            if rdtype != SOA:
                yield records[rdtype]
    yield soa


def _soa_at(soa: RRset, serial: int) -> RRset:
    """The zone's SOA as it was at `serial` (only the serial moves between versions)."""
    rrset = dns.rrset.RRset(soa.name, soa.rdclass, SOA)
    rrset.add(soa[0].replace(serial=serial), soa.ttl)
    return rrset


def _journal_rrsets(records: Iterable[JournalRecord]) -> list[RRset]:
    """The journal's records as RRsets, one per owner, type and TTL."""
    by_set: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for owner, ttl, rdtype, data in records:
        by_set[(owner, rdtype, ttl)].append(data)
    rrsets = []
    for (owner, rdtype, ttl), values in by_set.items():
        typed = dns.rdatatype.from_text(rdtype)
        rrset = dns.rrset.RRset(dns.name.from_text(owner), IN, typed)
        for value in values:
            rrset.add(dns.rdata.from_text(IN, typed, value), ttl)
        rrsets.append(rrset)
    return rrsets


def _stream(
    query: dns.message.Message,
    items: Iterable[Item],
    origin: dns.name.Name,
    counters: list[int],
) -> Iterator[bytes]:
    """The records in messages of about MESSAGE_BUDGET octets, signed as one stream
    (RFC 8945 §5.3.1: each message's MAC covers the previous one's).

    Each item goes into the current message if it fits whole; if not, the message
    is sent and the item starts the next one. An item no message can hold is
    broken up: a group's records type by type, then a set record by record (RFC
    5936 §2.2: "clients MUST accept any ordering and grouping of the non-SOA
    RRs"). A single record that fits in no message is left out and reported.
    """
    messages = _Messages(query)
    for item in items:
        left_out: dict[tuple[dns.name.Name, int], int] = {}
        pending = [item]
        while pending:
            piece = pending.pop()
            if messages.add(piece):
                if messages.size >= MESSAGE_BUDGET:
                    yield messages.finish()
                continue
            if messages.items:
                yield messages.finish()  # full: the piece starts the next message
                pending.append(piece)
                continue
            smaller = _smaller(piece)
            if smaller:
                pending.extend(reversed(smaller))
            else:
                where = _owner_and_type(piece, origin)
                left_out[where] = left_out.get(where, 0) + 1
        for (owner, rdtype), records in left_out.items():
            counters[querystats.TRANSFER_RECORDS_LEFT_OUT] += records
            log.warning(
                "transfer_records_left_out",
                zone=origin.to_text(),
                owner=owner.to_text(),
                type=dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype)),
                records=records,
                reason="larger than any DNS message (65,535 octets) can hold",
            )
    if messages.items:
        yield messages.finish()


def _smaller(item: Item) -> list[Item]:
    """`item` in smaller pieces, for when no message holds it whole: a group's
    records set by set, else a set record by record; none for a single record."""
    if isinstance(item, RawRecords):
        records = item.each()
        by_type: dict[int, list[RawRecords]] = defaultdict(list)
        for record in records:
            by_type[record.rdtype()].append(record)
        if len(by_type) > 1:
            return [
                RawRecords(item.owner, b"".join(r.wire for r in same), len(same))
                for same in by_type.values()
            ]
        return list(records) if len(records) > 1 else []
    if len(item) > 1:
        return [dns.rrset.from_rdata_list(item.name, item.ttl, [rdata]) for rdata in item]
    return []


def _owner_and_type(item: Item, origin: dns.name.Name) -> tuple[dns.name.Name, int]:
    if isinstance(item, RawRecords):
        return item.owner_name(origin), item.rdtype()
    return item.name, int(item.rdtype)


class _Messages:
    """The messages of one transfer reply, filled one at a time: every message
    repeats the question (RawRecords point at it) and, when the query was signed,
    ends with a TSIG record (room for it and for an OPT is kept from the start)."""

    def __init__(self, query: dns.message.Message) -> None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        self.response = response
        self.tsig_context: Any = None
        self.reserved = sum(_wire_size(rrset) for rrset in (response.opt, response.tsig) if rrset)
        self._start()

    def _start(self) -> None:
        self.renderer = RENDERER(self.response.id, self.response.flags, MAX_TCP_MESSAGE)
        for question in self.response.question:
            self.renderer.add_question(question.name, question.rdtype, question.rdclass)
        self.renderer.reserve(self.reserved)
        self.items = 0

    @property
    def size(self) -> int:
        size: int = self.renderer.output.tell()
        return size

    def add(self, item: Item) -> bool:
        """Put `item` in the current message if it fits whole; False (the message
        unchanged) if it does not."""
        renderer = self.renderer
        if isinstance(item, RawRecords):
            if self.size + len(item.wire) > renderer.max_size:
                return False
            renderer.output.write(item.wire)
            renderer.counts[dns.renderer.ANSWER] += item.records
        else:
            try:
                renderer.add_rrset(dns.renderer.ANSWER, item)
            except dns.exception.TooBig:  # the renderer has rolled the message back
                return False
        self.items += 1
        return True

    def finish(self) -> bytes:
        """The current message, signed, as wire; the next message is begun."""
        response, renderer = self.response, self.renderer
        renderer.release_reserved()
        if response.opt is not None:
            renderer.add_opt(response.opt)
        renderer.write_header()
        tsig: Any = response.tsig
        if tsig is not None:
            signed, self.tsig_context = TSIG_SIGN(
                renderer.get_wire(),
                response.keyring,
                tsig[0],
                int(time.time()),
                response.request_mac,
                self.tsig_context,
                True,
            )
            tsig.clear()
            tsig.add(signed)
            renderer.add_rrset(dns.renderer.ADDITIONAL, tsig)
            renderer.write_header()
        wire: bytes = renderer.get_wire()
        self._start()
        return wire


def _wire_size(rrset: dns.rrset.RRset) -> int:
    """Octets of `rrset` uncompressed: what it can take in a message at most."""
    output = io.BytesIO()
    rrset.to_wire(output)
    return output.tell()


_TSIG_REFUSALS = {
    BADKEY: "unknown TSIG key",
    BADSIG: "bad TSIG signature",
    BADTIME: "TSIG time outside the fudge (clocks apart?)",
}


def _tsig_error(wire: bytes, query: dns.message.Message, verdict: Verdict, peer: str) -> bytes:
    """NOTAUTH with a TSIG carrying the error (RFC 8945 §5.2): unsigned for a key or
    MAC that did not check out, signed, with our time, for BADTIME (§5.2.3)."""
    assert query.keyname is not None and query.tsig is not None
    log.warning(
        "transfer_refused",
        zone=query.question[0].name.to_text() if query.question else None,
        peer=peer,
        key=query.keyname.to_text(),
        reason=_TSIG_REFUSALS[verdict.error],
    )
    question_wire = b""
    if query.question:
        question = query.question[0]
        question_wire = (
            name_to_wire(question.name)
            + question.rdtype.to_bytes(2, "big")
            + question.rdclass.to_bytes(2, "big")
        )
    if verdict.key is not None:
        reply = error_reply(wire, NOTAUTH, question_wire)
        return sign_reply(reply, verdict.key, query.tsig[0], query.mac or b"", verdict.error)
    tsig = unsigned_tsig_error(query.keyname, query.tsig[0], verdict.error)
    return error_reply(wire, NOTAUTH, question_wire, b"", tsig)
