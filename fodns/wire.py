"""The wire codec: prebuilt answer templates, OPT records, truncation and error replies.

Bytes in, bytes out, no I/O. An answer is prebuilt as a `Template` when data
changes: everything of the reply except the 2-byte ID and the question, which
are copied from the query (so the query's own letter case is echoed, RFC 1035
§7.1 and the 0x20 practice). Names in the prebuilt part point at the question
with compression pointers, which is why a template only depends on the length
of the question name, never on its case.
"""

from __future__ import annotations

import functools
import io
import struct
from typing import NamedTuple

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from fodns import rrl
from fodns.lookup import Outcome, Result
from fodns.zone import name_to_wire

HEADER_LEN = 12
CLASS_IN = b"\x00\x01"  # QCLASS IN as it appears on the wire
POINTER_TO_QUESTION = 0xC00C

# Header flag bits (RFC 1035 §4.1.1), as the two flag bytes of the header.
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
CD = 0x0010
OPCODE_MASK = 0x7800

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
NOTAUTH = 9
BADVERS = 16  # RFC 6891 §6.1.3, an extended rcode: 12 bits split over header and OPT

TYPE_OPT = dns.rdatatype.OPT
EDNS_DO = 0x8000  # RFC 3225 §3: the DO bit of the query is copied into the response
MIN_UDP_PAYLOAD = 512  # RFC 6891 §6.2.5: smaller advertised sizes are treated as 512
MAX_TCP_MESSAGE = 65535
MAX_NAME_WIRE_LEN = 255  # RFC 1035 §3.1

_FLAGS_AND_COUNTS = struct.Struct("!HHHHH")
_OPT_RR = struct.Struct("!BHHBBHH")
_RCODE_OF = {
    Outcome.ANSWER: NOERROR,
    Outcome.NODATA: NOERROR,
    Outcome.REFERRAL: NOERROR,
    Outcome.NXDOMAIN: NXDOMAIN,
    Outcome.REFUSED: REFUSED,
}


class Template(NamedTuple):
    """A prebuilt reply, less its ID and question.

    `headers[i]` and `headers_edns[i]` are the 10 bytes after the ID (flags and
    counts) for each setting of the query's RD and CD bits, which are copied to
    the reply; index `i` is `(byte2 & 1) | ((byte3 & 0x10) >> 3)`. The EDNS
    variant counts one more additional record, the OPT appended after `tail`.
    """

    headers: tuple[bytes, bytes, bytes, bytes]
    headers_edns: tuple[bytes, bytes, bytes, bytes]
    tail: bytes
    # (end offset in tail, section 0/1/2, records) after each RRset: where a
    # reply that does not fit may be cut (RFC 2181 §9).
    rrset_ends: tuple[tuple[int, int, int], ...]
    # Referrals need their glue (RFC 9471): dropping it sets TC.
    glue_required: bool
    rcode: int
    # Counter slot for (qtype, rcode); -1 when the template serves many qtypes.
    stat: int
    # What response rate limiting counts the reply as (rrl.classify); b"": the question.
    limit_key: bytes = b""


@functools.lru_cache(maxsize=4096)
def header_variants(flags: int, counts: tuple[int, int, int]) -> tuple[bytes, bytes, bytes, bytes]:
    an, ns, ar = counts
    # Cached: a whole zone of answers shares a handful of distinct headers.
    return tuple(  # type: ignore[return-value]
        _FLAGS_AND_COUNTS.pack(
            flags | (RD if index & 1 else 0) | (CD if index & 2 else 0), 1, an, ns, ar
        )
        for index in range(4)
    )


def make_template(
    outcome: Outcome,
    tail: bytes,
    rrset_ends: tuple[tuple[int, int, int], ...],
    stat: int = -1,
    limit_key: bytes = b"",
) -> Template:
    rcode = _RCODE_OF[outcome]
    # RFC 1034 §4.3.1: AA only on answers from our own authoritative data;
    # a referral hands authority to the child and so does not set it.
    flags = QR | rcode | (AA if outcome not in (Outcome.REFERRAL, Outcome.REFUSED) else 0)
    counts = [0, 0, 0]
    for _end, section, records in rrset_ends:
        counts[section] += records
    an, ns, ar = counts
    return Template(
        headers=header_variants(flags, (an, ns, ar)),
        headers_edns=header_variants(flags, (an, ns, ar + 1)),
        tail=tail,
        rrset_ends=rrset_ends,
        glue_required=outcome is Outcome.REFERRAL,
        rcode=rcode,
        stat=stat,
        limit_key=limit_key,
    )


def render(result: Result, qname: dns.name.Name | None, qname_len: int, stat: int = -1) -> Template:
    """Prebuild the reply for `result` to a question whose name is `qname_len` bytes long.

    Compression (RFC 1035 §4.1.4) is seeded with the two names every reply can
    point into the question at a place fixed by its length alone: the query name
    itself at offset 12, and the zone apex, which ends the query name. Every
    other name is compressed against earlier names in the tail. So one template
    serves any question of that length, in any letter case.
    """
    question_end = HEADER_LEN + qname_len + 4
    buffer = io.BytesIO()
    buffer.write(bytes(question_end))
    compress: dict[dns.name.Name, int] = {}
    if result.zone is not None:
        apex_length, suffixes = _apex_suffixes(result.zone.origin)
        apex_position = HEADER_LEN + qname_len - apex_length
        for suffix, offset in suffixes:
            compress[suffix] = apex_position + offset
    if qname is not None:
        compress[qname] = HEADER_LEN
    rrset_ends: list[tuple[int, int, int]] = []
    for section, rrsets in enumerate((result.answer, result.authority, result.additional)):
        for rrset in rrsets:
            records = rrset.to_wire(buffer, compress)
            rrset_ends.append((buffer.tell() - question_end, section, records))
    tail = buffer.getvalue()[question_end:]
    return make_template(result.outcome, tail, tuple(rrset_ends), stat, rrl.classify(result))


@functools.lru_cache(maxsize=1024)
def _apex_suffixes(apex: dns.name.Name) -> tuple[int, tuple[tuple[dns.name.Name, int], ...]]:
    """The apex's wire length, and each of its non-root suffixes with its offset in it."""
    suffixes = []
    offset = 0
    for index, label in enumerate(apex.labels[:-1]):
        suffixes.append((dns.name.Name(apex.labels[index:]), offset))
        offset += len(label) + 1
    return len(name_to_wire(apex)), tuple(suffixes)


def opt_record(payload: int, do_bit: int, extended_rcode: int = 0) -> bytes:
    """Our OPT pseudo-RR (RFC 6891 §6.1.2): root owner, our UDP size, version 0."""
    return _OPT_RR.pack(0, TYPE_OPT, payload, extended_rcode >> 4, 0, do_bit, 0)


def reply_limit(client_payload: int | None, our_payload: int) -> int:
    """The largest UDP reply we may send (RFC 6891 §6.2.3-§6.2.5)."""
    if client_payload is None:
        return MIN_UDP_PAYLOAD
    return max(MIN_UDP_PAYLOAD, min(client_payload, our_payload))


def truncated(
    template: Template, query_id: bytes, flag_index: int, question: bytes, opt: bytes, limit: int
) -> bytes:
    """The reply cut at the last RRset that fits (RFC 2181 §9).

    TC is set when part of the answer or authority had to go, or glue of a
    referral; additional data that does not fit is left out silently.
    """
    header = template.headers_edns[flag_index] if opt else template.headers[flag_index]
    flags = int.from_bytes(header[:2], "big")
    budget = limit - HEADER_LEN - len(question) - len(opt)
    counts = [0, 0, 0]
    cut = 0
    truncate = False
    for end, section, records in template.rrset_ends:
        if end > budget:
            truncate = section < 2 or template.glue_required
            break
        cut = end
        counts[section] += records
    if truncate:
        flags |= TC
    an, ns, ar = counts
    head = _FLAGS_AND_COUNTS.pack(flags, 1, an, ns, ar + (1 if opt else 0))
    return b"".join((query_id, head, question, template.tail[:cut], opt))


def slip_reply(reply: bytes) -> bytes:
    """`reply` cut to its header and question, with TC set and no records: what response
    rate limiting sends instead of a reply it "slips", so that a real client asks again
    over TCP (TC: RFC 1035 §4.1.1; retry over TCP: RFC 7766 §5)."""
    flags = int.from_bytes(reply[2:4], "big") | TC
    end = name_end(reply) if reply[4:6] == b"\x00\x01" else -1
    question = reply[HEADER_LEN : end + 5] if 0 < end <= len(reply) - 5 else b""
    counts = _FLAGS_AND_COUNTS.pack(flags, 1 if question else 0, 0, 0, 0)
    return b"".join((reply[:2], counts, question))


def name_end(data: bytes, start: int = HEADER_LEN) -> int:
    """Offset of the root label ending an uncompressed name at `start`, or -1 if malformed."""
    index = start
    length_of_data = len(data)
    while index < length_of_data:
        label_length = data[index]
        if label_length == 0:
            return index
        if label_length > 63 or index + label_length + 1 - start >= MAX_NAME_WIRE_LEN:
            # 0xC0: a pointer (nothing precedes the question to point at);
            # 0x40/0x80: extended label types, obsolete (RFC 6891 §5).
            return -1
        index += label_length + 1
    return -1


def error_reply(
    query: bytes, rcode: int, question: bytes = b"", opt: bytes = b"", tsig: bytes = b""
) -> bytes:
    """A reply with no records: the query's ID, opcode, RD and CD, and `rcode`.

    `question` is the query's question, echoed when it could be read; `opt` is
    our OPT record, sent when the query had a usable one (RFC 6891 §7); `tsig`
    a TSIG record, which must come last (RFC 8945 §5.1).
    """
    flags = int.from_bytes(query[2:4], "big")
    reply_flags = QR | (flags & (OPCODE_MASK | RD | CD)) | (rcode & 0xF)
    additional = (1 if opt else 0) + (1 if tsig else 0)
    return b"".join(
        (
            query[:2],
            _FLAGS_AND_COUNTS.pack(reply_flags, 1 if question else 0, 0, 0, additional),
            question,
            opt,
            tsig,
        )
    )


_RR_HEADER = struct.Struct("!HHIH")


def unsigned_tsig_error(keyname: dns.name.Name, query_tsig: dns.rdata.Rdata, error: int) -> bytes:
    """The TSIG record of an error reply that cannot be signed (RFC 8945 §5.3.2):
    the query's key, algorithm, time and fudge, an empty MAC, and the error."""
    return tsig_record(keyname, query_tsig.replace(mac=b"", error=error, other=b""))


def tsig_record(keyname: dns.name.Name, rdata: dns.rdata.Rdata) -> bytes:
    """A TSIG resource record: class ANY, TTL 0 (RFC 8945 §4.2)."""
    rdata_wire = rdata.to_wire()
    assert rdata_wire is not None
    return b"".join(
        (
            name_to_wire(keyname),
            _RR_HEADER.pack(dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata_wire)),
            rdata_wire,
        )
    )


def refused_template() -> Template:
    return make_template(Outcome.REFUSED, b"", (), limit_key=rrl.ERROR_KEY)
