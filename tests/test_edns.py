"""EDNS(0) and truncation against the real server (RFC 6891, RFC 3225, RFC 2181 §9):
what comes back with and without an OPT, BADVERS, malformed OPTs, and replies too big
for UDP, measured on the wire and parsed with dnspython."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import NamedTuple

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support import TEST_ZONES, FodnsProcess, tcp_exchange

StartFodns = Callable[..., FodnsProcess]  # the fodns_factory fixture

OUR_PAYLOAD = 1232
MIN_PAYLOAD = 512
BIG = ("big.test.example", "TXT")  # 40 TXT records, about 4.4 kB
NS_WITH_GLUE = ("test.example", "NS")
HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH after a record's owner
# An OPT as a client sends it: root owner, TYPE 41, payload 1232, version 0, no options.
OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"


def edns_query(
    qname: str,
    qtype: str,
    payload: int = OUR_PAYLOAD,
    version: int = 0,
    do: bool = False,
    options: list[dns.edns.Option] | None = None,
    rdclass: str = "IN",
) -> dns.message.Message:
    return dns.message.make_query(
        qname,
        qtype,
        rdclass,
        use_edns=version,
        payload=payload,
        ednsflags=dns.flags.DO if do else 0,
        options=options,
    )


def udp_raw(server: FodnsProcess, query: dns.message.Message | bytes) -> bytes:
    """The reply bytes to `query` over UDP, so their size can be measured."""
    wire = query if isinstance(query, bytes) else query.to_wire()
    reply = server.raw_udp(wire, timeout=5.0)
    assert reply is not None, "no reply"
    assert reply[:2] == wire[:2], "reply ID differs from the query's"
    return reply


def tcp_raw(server: FodnsProcess, query: dns.message.Message) -> bytes:
    """The reply bytes to `query` over TCP, as sent (dnspython would re-encode them)."""
    with socket.create_connection((server.dns_host, server.dns_port), timeout=5.0) as sock:
        reply = tcp_exchange(sock, query.to_wire())
    assert reply is not None, "the connection closed without a reply"
    return reply


def header_counts(wire: bytes) -> tuple[int, int, int, int]:
    _id, _flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    return qd, an, ns, ar


def assert_counts_match(wire: bytes) -> dns.message.Message:
    """The header's counts are those of the records the message holds (dnspython refuses
    both a short message and trailing bytes, so parsing at all checks the ends)."""
    message = dns.message.from_wire(wire)
    qd, an, ns, ar = header_counts(wire)
    assert qd == len(message.question)
    assert an == sum(len(rrset) for rrset in message.answer)
    assert ns == sum(len(rrset) for rrset in message.authority)
    assert ar == sum(len(rrset) for rrset in message.additional) + (message.edns >= 0)
    return message


def truncated(message: dns.message.Message) -> bool:
    return bool(message.flags & dns.flags.TC)


# ---- OPT or no OPT -----------------------------------------------------------------------

QUESTIONS = [
    ("www.test.example", "A"),  # answer
    ("nope.test.example", "A"),  # NXDOMAIN
    ("www.test.example", "MX"),  # NODATA
    ("sub.test.example", "A"),  # referral
    ("www.example.org", "A"),  # REFUSED, not ours
    ("version.bind", "TXT"),  # REFUSED, class CH below
    NS_WITH_GLUE,
]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("qname", "qtype"), QUESTIONS)
def test_no_opt_in_query_no_opt_in_reply(
    server: FodnsProcess, transport: str, qname: str, qtype: str
) -> None:
    """RFC 6891 §7: an OPT is only sent back to a client that sent one."""
    rdclass = "CH" if qname == "version.bind" else "IN"
    query = dns.message.make_query(qname, qtype, rdclass)
    reply = getattr(server, transport)(query)
    assert reply.edns == -1
    assert reply.opt is None


@pytest.mark.parametrize(
    "packet",
    [
        HEADER.pack(7, 0x0100, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01" * 2,  # FORMERR
        HEADER.pack(7, 0x1100, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01",  # opcode 2: NOTIMP
        HEADER.pack(7, 0x0100, 1, 0, 0, 0) + b"\x00\x00\x29\x00\x01",  # QTYPE OPT: FORMERR
    ],
    ids=["formerr", "notimp", "qtype-opt"],
)
def test_no_opt_in_error_replies_to_queries_without_one(
    server: FodnsProcess, packet: bytes
) -> None:
    reply = assert_counts_match(udp_raw(server, packet))
    assert reply.rcode() != dns.rcode.NOERROR
    assert reply.edns == -1


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("client_payload", [512, 1232, 4096, 65535])
@pytest.mark.parametrize(("qname", "qtype"), QUESTIONS)
def test_opt_in_query_gets_our_opt(
    server: FodnsProcess, transport: str, client_payload: int, qname: str, qtype: str
) -> None:
    """RFC 6891 §6.1.3/§7: one OPT back, version 0, with our own payload size."""
    rdclass = "CH" if qname == "version.bind" else "IN"
    query = edns_query(qname, qtype, payload=client_payload, rdclass=rdclass)
    reply = getattr(server, transport)(query)
    assert reply.edns == 0
    assert reply.payload == OUR_PAYLOAD
    assert reply.ednsflags & 0xFF0000 == 0, "extended rcode and version are 0"
    assert reply.options == ()
    if qname == "version.bind":
        assert reply.rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("do", [False, True], ids=["do0", "do1"])
@pytest.mark.parametrize(
    ("qname", "qtype"),
    [("www.test.example", "A"), ("nope.test.example", "A"), ("www.example.org", "A")],
)
def test_do_bit_is_copied(
    server: FodnsProcess, transport: str, do: bool, qname: str, qtype: str
) -> None:
    """RFC 3225 §3: the DO bit of the query is copied into the reply."""
    reply = getattr(server, transport)(edns_query(qname, qtype, do=do))
    assert bool(reply.ednsflags & dns.flags.DO) is do
    assert reply.ednsflags & 0x7FFF == 0, "no other EDNS flag is set"


def test_do_bit_is_copied_on_notimp(server: FodnsProcess) -> None:
    query = edns_query("www.test.example", "A", do=True)
    query.set_opcode(dns.opcode.STATUS)
    reply = server.udp(query)
    assert reply.rcode() == dns.rcode.NOTIMP
    assert reply.edns == 0 and reply.ednsflags & dns.flags.DO


# ---- versions and malformed OPTs ---------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("version", [1, 2, 255])
@pytest.mark.parametrize("qname", ["www.test.example", "www.example.org"])
def test_unknown_edns_version_gets_badvers(
    server: FodnsProcess, transport: str, version: int, qname: str
) -> None:
    """RFC 6891 §6.1.3: BADVERS (16, split over header and OPT) with our version, 0."""
    query = edns_query(qname, "A", version=version)
    reply = getattr(server, transport)(query)
    assert reply.id == query.id
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0
    assert reply.payload == OUR_PAYLOAD
    assert not reply.answer


@pytest.mark.parametrize("do", [True, False])
def test_badvers_copies_the_do_bit(server: FodnsProcess, do: bool) -> None:
    """RFC 3225 §3, checked by RFC 8906 §8.2.9: DO is copied into the BADVERS reply too."""
    query = dns.message.make_query("test.example", "SOA", use_edns=1, want_dnssec=do)
    reply = server.udp(query)
    assert reply.rcode() == dns.rcode.BADVERS
    assert bool(reply.ednsflags & dns.flags.DO) == do


def opt_rr(owner: bytes = b"\x00", payload: int = OUR_PAYLOAD, rdata: bytes = b"") -> bytes:
    return owner + struct.pack("!HHBBHH", 41, payload, 0, 0, 0, len(rdata)) + rdata


WWW_A = b"\x03www\x04test\x07example\x00\x00\x01\x00\x01"


@pytest.mark.parametrize(
    "packet",
    [
        HEADER.pack(9, 0x0100, 1, 0, 0, 2) + WWW_A + opt_rr() + opt_rr(),
        HEADER.pack(9, 0x0100, 1, 0, 0, 2) + WWW_A + opt_rr() + opt_rr(payload=4096),
        HEADER.pack(9, 0x0100, 1, 0, 0, 1) + WWW_A + opt_rr(owner=b"\x01x\x00"),
        HEADER.pack(9, 0x0100, 1, 0, 0, 1) + WWW_A + opt_rr(owner=b"\xc0\x0c"),
        HEADER.pack(9, 0x0100, 1, 1, 0, 0) + WWW_A + opt_rr(),
        HEADER.pack(9, 0x0100, 1, 0, 1, 0) + WWW_A + opt_rr(),
    ],
    ids=[
        "two-opts",
        "two-different-opts",
        "opt-owner-x",
        "opt-owner-qname",
        "opt-in-answer",
        "opt-in-authority",
    ],
)
def test_malformed_opt_gets_formerr(server: FodnsProcess, packet: bytes) -> None:
    """RFC 6891 §6.1.1: more than one OPT, or an OPT that is not at the root in the
    additional section, is FORMERR."""
    reply = assert_counts_match(udp_raw(server, packet))
    assert reply.rcode() == dns.rcode.FORMERR
    assert not reply.answer


@pytest.mark.parametrize(
    "options",
    [
        [dns.edns.GenericOption(65001, b"fodns")],
        [dns.edns.GenericOption(65001, b"")],
        [dns.edns.GenericOption(65001, b"a"), dns.edns.GenericOption(65002, b"bc" * 50)],
        [dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)],
    ],
    ids=["one", "empty", "two", "client-cookie"],
)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_unknown_options_are_ignored(
    server: FodnsProcess, transport: str, options: list[dns.edns.Option]
) -> None:
    """RFC 6891 §6.1.2: options a responder does not understand are ignored, and none
    is echoed."""
    reply = getattr(server, transport)(edns_query("www.test.example", "A", options=options))
    assert reply.rcode() == dns.rcode.NOERROR
    assert [r.to_text() for rrset in reply.answer for r in rrset] == ["192.0.2.1"]
    assert reply.edns == 0 and reply.options == ()


# ---- sizes and truncation ------------------------------------------------------------------


def test_big_answer_without_edns_is_truncated_to_512(server: FodnsProcess) -> None:
    wire = udp_raw(server, dns.message.make_query(*BIG))
    assert len(wire) <= MIN_PAYLOAD
    reply = assert_counts_match(wire)
    assert truncated(reply)
    assert reply.edns == -1
    assert str(reply.question[0].name) == "big.test.example."


@pytest.mark.parametrize("client_payload", [1232, 1400, 4096, 65535])
def test_big_answer_with_edns_is_truncated_to_our_payload(
    server: FodnsProcess, client_payload: int
) -> None:
    """The reply is held to min(client's size, ours) (RFC 6891 §6.2.3-§6.2.5)."""
    wire = udp_raw(server, edns_query(*BIG, payload=client_payload))
    assert len(wire) <= OUR_PAYLOAD
    reply = assert_counts_match(wire)
    assert truncated(reply)
    assert reply.edns == 0 and reply.payload == OUR_PAYLOAD, "the OPT survives truncation"


@pytest.mark.parametrize("client_payload", [0, 1, 100, 511, 512])
def test_small_advertised_payloads_count_as_512(server: FodnsProcess, client_payload: int) -> None:
    """RFC 6891 §6.2.5: values below 512 are treated as 512: the big answer is cut to fit
    512, and an answer of a few hundred bytes is sent whole."""
    wire = udp_raw(server, edns_query(*BIG, payload=client_payload))
    assert len(wire) <= MIN_PAYLOAD
    assert truncated(assert_counts_match(wire))

    wire = udp_raw(server, edns_query(*NS_WITH_GLUE, payload=client_payload))
    assert 100 < len(wire) <= MIN_PAYLOAD  # more than a 100-byte limit would allow
    reply = assert_counts_match(wire)
    assert not truncated(reply)
    assert len(reply.answer[0]) == 2
    assert {rrset.rdtype for rrset in reply.additional} == {dns.rdatatype.A, dns.rdatatype.AAAA}


@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
def test_ns_with_glue_fits_in_512(server: FodnsProcess, edns: bool) -> None:
    query = edns_query(*NS_WITH_GLUE) if edns else dns.message.make_query(*NS_WITH_GLUE)
    wire = udp_raw(server, query)
    assert len(wire) <= MIN_PAYLOAD
    reply = assert_counts_match(wire)
    assert not truncated(reply)
    assert {r.to_text() for r in reply.answer[0]} == {
        "ns1.test.example.",
        "ns2.elsewhere.example.",
    }
    glue = {r.to_text() for rrset in reply.additional for r in rrset}
    assert glue == {"127.0.0.1", "::1"}


@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
def test_big_answer_whole_over_tcp(server: FodnsProcess, edns: bool) -> None:
    query = edns_query(*BIG) if edns else dns.message.make_query(*BIG)
    reply = server.tcp(query)
    assert not truncated(reply)
    assert reply.rcode() == dns.rcode.NOERROR
    assert len(reply.answer) == 1 and len(reply.answer[0]) == 40
    texts = sorted(r.strings[0].decode() for r in reply.answer[0])
    assert texts == [f"{i:02d}" * 50 for i in range(40)]
    assert (reply.edns == 0) is edns


@pytest.mark.parametrize(
    "query",
    [
        dns.message.make_query(*BIG),
        edns_query(*BIG, payload=512),
        edns_query(*BIG, payload=100),
        edns_query(*BIG, payload=4096, do=True),
        edns_query("BiG.TeSt.ExAmPlE", "TXT"),
    ],
    ids=["plain", "edns-512", "edns-100", "edns-4096-do", "mixed-case"],
)
def test_truncated_replies_are_well_formed(
    server: FodnsProcess, query: dns.message.Message
) -> None:
    """A TC reply is still a whole message: counts that match what it holds, the
    question echoed as asked, and only whole RRsets (RFC 2181 §9)."""
    wire = udp_raw(server, query)
    reply = assert_counts_match(wire)
    assert truncated(reply)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert reply.question[0].name.to_text() == query.question[0].name.to_text()
    # The one RRset (4.4 kB) fits in no datagram: none of it is sent, rather than part.
    # Replies that keep some RRsets and drop others: test_truncation_keeps_whole_rrsets.
    assert reply.answer == [] and reply.authority == []
    assert bool(reply.ednsflags & dns.flags.DO) is bool(query.ednsflags & dns.flags.DO)


@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
def test_udp_with_fallback_gets_the_whole_answer_over_tcp(server: FodnsProcess, edns: bool) -> None:
    query = edns_query(*BIG) if edns else dns.message.make_query(*BIG)
    reply, used_tcp = dns.query.udp_with_fallback(
        query, server.dns_host, port=server.dns_port, timeout=5.0
    )
    assert used_tcp, "the UDP reply should have been truncated"
    assert not truncated(reply)
    assert len(reply.answer[0]) == 40


def test_small_answer_does_not_fall_back(server: FodnsProcess) -> None:
    query = dns.message.make_query("www.test.example", "A")
    reply, used_tcp = dns.query.udp_with_fallback(
        query, server.dns_host, port=server.dns_port, timeout=5.0
    )
    assert not used_tcp
    assert reply.answer[0][0].to_text() == "192.0.2.1"


# ---- cutting between RRsets (RFC 2181 §9) ----------------------------------------------------

CUT_ZONE = ("cut.example", TEST_ZONES / "cut.example.zone")
TOKEN = "edns-tests-admin-token"
# Questions whose replies hold many RRsets, more than fit in 512 or 1232 bytes.
APEX_NS = ("cut.example", "NS")  # NS answer, then 20 address RRsets of optional glue
REFERRAL = ("host.deleg.cut.example", "A")  # NS authority, then 20 RRsets of in-domain glue
CHAIN = ("chain.cut.example", "TXT")  # CNAME, CNAME, then a 680-byte TXT RRset


class RRsetEnd(NamedTuple):
    """Where an RRset ends in a reply, as a server writes one: consecutive records of one
    owner and type in one section (the OPT is left out: it is not data)."""

    offset: int
    section: int  # 0 answer, 1 authority, 2 additional
    records: int
    owner: dns.name.Name
    rdtype: int


def rrset_ends(wire: bytes) -> tuple[int, list[RRsetEnd]]:
    """The offset where the records start (after the question), and each RRset's end."""
    qd, an, ns, ar = header_counts(wire)
    offset = HEADER.size
    for _ in range(qd):
        _name, used = dns.name.from_wire(wire, offset)
        offset += used + 4
    start = offset
    ends: list[RRsetEnd] = []
    for section, count in enumerate((an, ns, ar)):
        for _ in range(count):
            owner, used = dns.name.from_wire(wire, offset)
            rdtype, _rdclass, _ttl, rdlength = RR_FIXED.unpack_from(wire, offset + used)
            offset += used + RR_FIXED.size + rdlength
            if rdtype == dns.rdatatype.OPT:
                continue
            last = ends[-1] if ends else None
            if last and (last.section, last.owner, last.rdtype) == (section, owner, rdtype):
                ends[-1] = last._replace(offset=offset, records=last.records + 1)
            else:
                ends.append(RRsetEnd(offset, section, 1, owner, rdtype))
    return start, ends


def check_cut(full: bytes, cut: bytes, limit: int, referral: bool) -> int:
    """`cut`, the UDP reply held to `limit` bytes, against `full`, the whole reply to the
    same question over TCP: the same first RRsets, each whole, and nothing of the next;
    as many as fit; TC exactly when answer or authority data (or a referral's required
    glue, RFC 9471 §3) had to go. Returns how many RRsets were kept.

    RRsets are compared as sets of records: with two workers the TCP and UDP replies may
    come from different processes, which may order the records of an RRset differently
    (RFC 2181 §5: an RRset has no order)."""
    message = assert_counts_match(cut)
    full_message = dns.message.from_wire(full)
    assert len(cut) <= limit, f"{len(cut)}-byte reply over the {limit}-byte limit"
    _start, full_ends = rrset_ends(full)
    _start, cut_ends = rrset_ends(cut)
    kept = len(cut_ends)
    assert 0 < kept < len(full_ends), f"kept {kept} of {len(full_ends)} RRsets: nothing to check"
    shape = [(end.section, end.owner, end.rdtype, end.records) for end in cut_ends]
    full_shape = [(end.section, end.owner, end.rdtype, end.records) for end in full_ends]
    assert shape == full_shape[:kept], "not the first RRsets, each whole (one cut short?)"
    for name in ("answer", "authority", "additional"):
        for rrset in getattr(message, name):
            assert rrset in getattr(full_message, name), f"{rrset} differs from the whole reply"
    next_size = full_ends[kept].offset - full_ends[kept - 1].offset
    assert len(cut) + next_size > limit, (
        f"RRset {kept + 1} ({next_size} bytes) would have fit in {limit} bytes, but was left out"
    )
    dropped_sections = {end.section for end in full_ends[kept:]}
    must_set_tc = bool(dropped_sections & {0, 1}) or referral
    assert truncated(message) is must_set_tc, (
        f"TC is {truncated(message)} with sections {sorted(dropped_sections)} cut short"
    )
    return kept


def test_truncation_keeps_whole_rrsets(fodns_factory: StartFodns, workers: int) -> None:
    """Replies of many RRsets cut to fit 512 bytes, and 1232 (ours, whatever more the client
    offers): whole RRsets only, as many as fit, in their order; TC when an answer or a
    referral's glue had to go, not when only optional additional data did (RFC 2181 §9);
    a bigger buffer holds more; over TCP nothing is cut."""
    running = fodns_factory(TOKEN, zones=[CUT_ZONE], workers=workers)
    kept: dict[tuple[str, int], int] = {}
    for qname, qtype in (APEX_NS, REFERRAL, CHAIN):
        full = tcp_raw(running, dns.message.make_query(qname, qtype))
        full_message = dns.message.from_wire(full)
        assert not truncated(full_message)
        referral = not full_message.flags & dns.flags.AA
        assert referral is (qname == REFERRAL[0])
        for query, limit in (
            (dns.message.make_query(qname, qtype), MIN_PAYLOAD),
            (edns_query(qname, qtype, payload=512), MIN_PAYLOAD),
            (edns_query(qname, qtype, payload=1232), OUR_PAYLOAD),
            (edns_query(qname, qtype, payload=4096, do=True), OUR_PAYLOAD),
        ):
            wire = udp_raw(running, query)
            if qname == CHAIN[0] and limit == OUR_PAYLOAD:
                whole = assert_counts_match(wire)
                assert not truncated(whole), "the chain and its TXT fit in 1232 bytes"
                assert whole.answer == full_message.answer
                continue
            case = f"{qname} {qtype} within {limit}"
            try:
                kept[qname, limit] = check_cut(full, wire, limit, referral)
            except AssertionError as failure:
                raise AssertionError(f"{case}: {failure}") from failure
    for qname in (APEX_NS[0], REFERRAL[0]):
        assert kept[qname, OUR_PAYLOAD] > kept[qname, MIN_PAYLOAD] + 4, (
            f"{qname}: 1232 bytes hold hardly more RRsets than 512: {kept}"
        )
    assert kept[CHAIN[0], MIN_PAYLOAD] == 2, "the CNAMEs are kept, the TXT RRset is not"
