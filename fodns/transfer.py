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
"""

from __future__ import annotations

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
import dns.serial
import dns.tsig
import dns.tsigkeyring

from fodns.config import TransferPeer, TsigKeyConfig, ZoneConfig
from fodns.groups import GroupRecords
from fodns.logs import get_logger
from fodns.rows import JournalRecord
from fodns.store import JournalEntry
from fodns.table import AnswerTable
from fodns.tsig import TSIG_SIGN, tsig_keyring
from fodns.wire import (
    FORMERR,
    NOTAUTH,
    POINTER_TO_QUESTION,
    error_reply,
    unsigned_tsig_error,
)
from fodns.zone import SOA, RRset, ZoneData, name_to_wire, wire_key

log = get_logger()
TRANSFER_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
# Well under the 64 KiB TCP message limit, so a message never needs splitting again.
MESSAGE_BUDGET = 16_000
IN = dns.rdataclass.IN
POINTER_TO_QUESTION_BYTES = POINTER_TO_QUESTION.to_bytes(2, "big")
# dnspython's renderer, which its type hints leave untyped.
RENDERER: Any = dns.renderer.Renderer
# The store's journal for a zone between two serials (see store.Store.journal).
Journal = Callable[[str, int, int], list[JournalEntry] | None]


class Transfers:
    """Answers AXFR/IXFR queries for the table the server serves now."""

    def __init__(
        self,
        table: Callable[[], AnswerTable],
        zones: list[ZoneConfig],
        keys: dict[str, TsigKeyConfig],
        journal: Journal | None = None,
    ) -> None:
        self.table = table
        self.journal = journal
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
            # §5.2); dnspython stops at an unknown key before reading to the end.
            query = dns.message.from_wire(wire, keyring=False)
        except dns.exception.DNSException:
            return iter([error_reply(wire, FORMERR)])
        if query.had_tsig and self.keyring:
            try:
                query = dns.message.from_wire(wire, keyring=self.keyring)
            except dns.message.UnknownTSIGKey:
                return iter([_tsig_error(wire, query, dns.rcode.BADKEY, peer)])
            except dns.exception.DNSException:  # a bad MAC or time
                return iter([_tsig_error(wire, query, dns.rcode.BADSIG, peer)])
        question = query.question[0]
        zone = self.table().zones.get(wire_key(question.name))
        key = query.keyname if query.had_tsig else None
        key_name = key.to_text(omit_final_dot=True) if key else None
        if zone is None:
            return iter([self._refuse(query, peer, key, "not a zone of this server")])
        if not any(p.admits(peer, key_name) for p in self.allowed.get(zone.origin_key, [])):
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
        return _stream(query, rrsets)

    def _incremental(
        self, zone: ZoneData, client_serial: int
    ) -> tuple[str, Iterable[RRset | RawRecords]]:
        """IXFR's answer: ("up-to-date" | "incremental" | "full", the RRsets to send)."""
        serial = zone.serial
        if dns.serial.Serial(client_serial) >= dns.serial.Serial(serial):
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
    """Resource records already in wire form, and how many there are."""

    wire: bytes
    records: int


def _full(zone: ZoneData) -> Iterator[RRset | RawRecords]:
    """AXFR's answer: SOA, every other RRset, SOA (RFC 5936 §2.2).

    The snapshot is the list of each name's records as they are now: a change
    replaces a name's mapping in the table and never edits one, so the list
    keeps this serial's data while the messages go out.
    """
    return _whole_zone(zone.soa, list(zone.records.items()), zone.origin_key)


def _whole_zone(
    soa: RRset, nodes: list[tuple[bytes, Any]], origin_key: bytes
) -> Iterator[RRset | RawRecords]:
    yield soa
    for key, records in nodes:
        if isinstance(records, GroupRecords):
            # Groups' records straight to wire (dnspython's RRsets cost 100 us
            # each, 10 s for 100,000 groups); the owner ends in a pointer to the
            # zone's name, which is the question.
            if records:
                owner = key[: len(key) - len(origin_key)] + POINTER_TO_QUESTION_BYTES
                yield RawRecords(*records.wire_records(owner))
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


def _stream(query: dns.message.Message, items: Iterable[RRset | RawRecords]) -> Iterator[bytes]:
    """The records in messages of about MESSAGE_BUDGET bytes, signed as one stream
    (RFC 8945 §5.3.1: each message's MAC covers the previous one's)."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    tsig_context = None

    def message(batch: list[RRset | RawRecords]) -> bytes:
        # dnspython's Message.to_wire, with group records written as prebuilt bytes.
        nonlocal tsig_context
        renderer = RENDERER(response.id, response.flags, 65535)
        for question in response.question:
            renderer.add_question(question.name, question.rdtype, question.rdclass)
        for item in batch:
            if isinstance(item, RawRecords):
                renderer.output.write(item.wire)
                renderer.counts[dns.renderer.ANSWER] += item.records
            else:
                renderer.add_rrset(dns.renderer.ANSWER, item)
        if response.opt is not None:
            renderer.add_opt(response.opt)
        renderer.write_header()
        tsig: Any = response.tsig
        if tsig is not None:
            signed, tsig_context = TSIG_SIGN(
                renderer.get_wire(),
                response.keyring,
                tsig[0],
                int(time.time()),
                response.request_mac,
                tsig_context,
                True,
            )
            tsig.clear()
            tsig.add(signed)
            renderer.add_rrset(dns.renderer.ADDITIONAL, tsig)
            renderer.write_header()
        wire: bytes = renderer.get_wire()
        return wire

    batch: list[RRset | RawRecords] = []
    size = 0
    for item in items:
        batch.append(item)
        if isinstance(item, RawRecords):
            size += len(item.wire)
        else:
            size += sum(len(rdata.to_digestable()) + 32 for rdata in item)
        if size >= MESSAGE_BUDGET:
            yield message(batch)
            batch, size = [], 0
    if batch:
        yield message(batch)


def _tsig_error(wire: bytes, query: dns.message.Message, error: int, peer: str) -> bytes:
    """NOTAUTH with an unsigned TSIG carrying the error (RFC 8945 §5.2); `query` is
    `wire` as read without verifying its TSIG."""
    assert query.keyname is not None and query.tsig is not None
    log.warning(
        "transfer_refused",
        zone=query.question[0].name.to_text() if query.question else None,
        peer=peer,
        key=query.keyname.to_text(),
        reason="unknown TSIG key" if error == dns.rcode.BADKEY else "bad TSIG signature",
    )
    tsig = unsigned_tsig_error(query.keyname, query.tsig[0], error)
    question = query.question[0]
    # The question as asked, its class too (RFC 1035 §7.1).
    question_wire = (
        name_to_wire(question.name)
        + question.rdtype.to_bytes(2, "big")
        + question.rdclass.to_bytes(2, "big")
    )
    return error_reply(wire, NOTAUTH, question_wire, b"", tsig)
