"""What the server answers, name by name, over real UDP and TCP: table-driven (RFC 1034,
2308, 4592, 6604, 8482), each case run over both transports and checked with dnspython,
with one DNS process and with two workers (each loads the zones and builds its own table;
over UDP every case reaches each of them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.support import (
    WIRE_ZONES,
    FodnsProcess,
    ask_every_worker,
    serving,
    start_fodns,
    write_config,
)

NOERROR, NXDOMAIN, REFUSED = dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED


@dataclass
class Case:
    qname: str
    qtype: str
    rcode: int = NOERROR
    authoritative: bool = True
    # "owner TYPE rdata" lines expected in the answer section, in any order.
    answer: set[str] = field(default_factory=set)
    # (owner, TYPE) of authority RRsets, and the TTL of an SOA there if any.
    authority: set[tuple[str, str]] = field(default_factory=set)
    negative_ttl: int | None = None
    additional: set[str] = field(default_factory=set)


SOA_TEST = ("test.example.", "SOA")
CASES = [
    Case(
        "www.fo.example.net",
        "A",
        answer={"www.fo.example.net. A 192.0.2.10", "www.fo.example.net. A 192.0.2.11"},
    ),
    Case("www.test.example", "AAAA", answer={"www.test.example. AAAA 2001:db8::1"}),
    # RFC 2308 §3: negative answers carry the SOA with TTL min(SOA TTL 300, MINIMUM 60).
    Case("nope.test.example", "A", NXDOMAIN, authority={SOA_TEST}, negative_ttl=60),
    Case("www.test.example", "MX", authority={SOA_TEST}, negative_ttl=60),
    # Empty non-terminals exist (RFC 8020): NODATA, not NXDOMAIN.
    Case("b.c.test.example", "A", authority={SOA_TEST}, negative_ttl=60),
    Case("c.test.example", "TXT", authority={SOA_TEST}, negative_ttl=60),
    Case("x.b.c.test.example", "A", NXDOMAIN, authority={SOA_TEST}, negative_ttl=60),
    Case("a.b.c.test.example", "A", answer={"a.b.c.test.example. A 192.0.2.3"}),
    # CNAME answers every type and in-zone targets are followed (RFC 1034 §4.3.2 step 3a).
    Case(
        "alias.test.example",
        "A",
        answer={"alias.test.example. CNAME www.test.example.", "www.test.example. A 192.0.2.1"},
    ),
    Case(
        "alias.test.example",
        "AAAA",
        answer={
            "alias.test.example. CNAME www.test.example.",
            "www.test.example. AAAA 2001:db8::1",
        },
    ),
    Case(
        "alias.test.example",
        "MX",
        answer={"alias.test.example. CNAME www.test.example."},
        authority={SOA_TEST},
        negative_ttl=60,
    ),
    Case("alias.test.example", "CNAME", answer={"alias.test.example. CNAME www.test.example."}),
    Case(
        "chain1.test.example",
        "A",
        answer={
            "chain1.test.example. CNAME chain2.test.example.",
            "chain2.test.example. CNAME www.test.example.",
            "www.test.example. A 192.0.2.1",
        },
    ),
    Case(
        "loop1.test.example",
        "A",
        answer={
            "loop1.test.example. CNAME loop2.test.example.",
            "loop2.test.example. CNAME loop1.test.example.",
        },
    ),
    # RFC 6604 §3: the rcode is that of the last name in the chain.
    Case(
        "dangling.test.example",
        "A",
        NXDOMAIN,
        answer={"dangling.test.example. CNAME nothere.test.example."},
        authority={SOA_TEST},
        negative_ttl=60,
    ),
    Case("external.test.example", "A", answer={"external.test.example. CNAME www.example.org."}),
    # Apex NS carries glue for in-zone nameservers only.
    Case(
        "test.example",
        "NS",
        answer={"test.example. NS ns1.test.example.", "test.example. NS ns2.elsewhere.example."},
        additional={"ns1.test.example. A 127.0.0.1", "ns1.test.example. AAAA ::1"},
    ),
    Case(
        "test.example",
        "SOA",
        answer={"test.example. SOA ns1.test.example. hostmaster.test.example. 7 3600 600 86400 60"},
    ),
    # Below a zone cut: a referral, not authoritative (RFC 1034 §4.3.2 step 3b).
    Case(
        "sub.test.example",
        "A",
        authoritative=False,
        authority={("sub.test.example.", "NS")},
        additional={"ns.sub.test.example. A 192.0.2.53"},
    ),
    Case(
        "deep.sub.test.example",
        "A",
        authoritative=False,
        authority={("sub.test.example.", "NS")},
        additional={"ns.sub.test.example. A 192.0.2.53"},
    ),
    Case(
        "ns.sub.test.example",
        "A",
        authoritative=False,
        authority={("sub.test.example.", "NS")},
        additional={"ns.sub.test.example. A 192.0.2.53"},
    ),
    # DS lives on the parent side of the cut (RFC 4035 §2.4): our NODATA.
    Case("sub.test.example", "DS", authority={SOA_TEST}, negative_ttl=60),
    # Wildcards (RFC 4592): synthesised with the query name as owner.
    Case("foo.wild.test.example", "A", answer={"foo.wild.test.example. A 192.0.2.99"}),
    Case("a.b.wild.test.example", "A", answer={"a.b.wild.test.example. A 192.0.2.99"}),
    Case("foo.wild.test.example", "TXT", answer={'foo.wild.test.example. TXT "wild"'}),
    Case("foo.wild.test.example", "MX", authority={SOA_TEST}, negative_ttl=60),
    Case("explicit.wild.test.example", "A", answer={"explicit.wild.test.example. A 192.0.2.98"}),
    # An existing name is never answered from the wildcard (RFC 4592 §2.2.1).
    Case("explicit.wild.test.example", "TXT", authority={SOA_TEST}, negative_ttl=60),
    Case("*.wild.test.example", "A", answer={"*.wild.test.example. A 192.0.2.99"}),
    Case(
        "x.wildcname.test.example",
        "A",
        answer={
            "x.wildcname.test.example. CNAME www.test.example.",
            "www.test.example. A 192.0.2.1",
        },
    ),
    # A zone nested in another zone we serve answers for itself.
    Case("host.child.test.example", "A", answer={"host.child.test.example. A 192.0.2.77"}),
    Case(
        "gone.child.test.example",
        "A",
        NXDOMAIN,
        authority={("child.test.example.", "SOA")},
        negative_ttl=30,
    ),
    # Not ours: REFUSED, without AA.
    Case("www.example.org", "A", REFUSED, authoritative=False),
    Case("example", "SOA", REFUSED, authoritative=False),
]


@pytest.fixture(scope="module", params=[1, 2], ids=["workers1", "workers2"])
def answering(
    request: pytest.FixtureRequest, server: FodnsProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FodnsProcess]:
    """The session server (one process), or one with the same zones and two DNS workers.
    (Module-scoped, so it takes its own params: the `workers` fixture is per test.)"""
    if request.param == 1:
        yield server
        return
    directory = tmp_path_factory.mktemp("answers-workers2")
    config = write_config(directory, WIRE_ZONES, workers=2)
    with serving(start_fodns("--config", str(config))) as running:
        yield running


def _lines(section: list[dns.rrset.RRset]) -> set[str]:
    return {
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
        for rrset in section
        for rdata in rrset
    }


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.qname}/{c.qtype}")
def test_answer(answering: FodnsProcess, case: Case, transport: str) -> None:
    query = dns.message.make_query(case.qname, case.qtype)
    over_udp = transport == "udp"
    replies = ask_every_worker(answering, query) if over_udp else [answering.tcp(query)]
    for reply in replies:
        check_answer(case, reply)


def check_answer(case: Case, reply: dns.message.Message) -> None:
    assert reply.rcode() == case.rcode
    assert bool(reply.flags & dns.flags.AA) == case.authoritative
    assert not reply.flags & dns.flags.RA  # RA is for recursive servers only
    assert _lines(reply.answer) == case.answer
    assert {(str(r.name), dns.rdatatype.to_text(r.rdtype)) for r in reply.authority} == (
        case.authority
    )
    if case.negative_ttl is not None:
        (soa,) = [r for r in reply.authority if r.rdtype == dns.rdatatype.SOA]
        assert soa.ttl == case.negative_ttl
    if case.additional or not case.authoritative:
        assert _lines(reply.additional) == case.additional


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_question_case_is_echoed(answering: FodnsProcess, transport: str) -> None:
    """0x20: the question and the owner names that point at it keep the query's case."""
    mixed = "wWw.Fo.ExAmPlE.nEt."
    query = dns.message.make_query(mixed, "A")
    reply = answering.udp(query) if transport == "udp" else answering.tcp(query)
    assert reply.question[0].name.to_text() == mixed
    assert {rrset.name.to_text() for rrset in reply.answer} == {mixed}
    assert reply.id == query.id


def test_lookup_ignores_case_for_every_outcome(answering: FodnsProcess) -> None:
    for qname, rcode in [
        ("NOPE.TEST.EXAMPLE", NXDOMAIN),
        ("B.C.Test.Example", NOERROR),
        ("FOO.WILD.TEST.EXAMPLE", NOERROR),
        ("Alias.Test.Example", NOERROR),
    ]:
        reply = answering.udp(dns.message.make_query(qname, "A"))
        assert reply.rcode() == rcode, qname
        assert reply.question[0].name.to_text() == qname + "."


def test_rd_is_copied_and_ra_stays_clear(answering: FodnsProcess) -> None:
    with_rd = answering.udp(dns.message.make_query("www.test.example", "A"))
    without_rd = answering.udp(dns.message.make_query("www.test.example", "A", flags=0))
    assert with_rd.flags & dns.flags.RD and not without_rd.flags & dns.flags.RD
    assert not (with_rd.flags | without_rd.flags) & dns.flags.RA


def test_any_is_answered_with_one_rrset(answering: FodnsProcess) -> None:
    """RFC 8482 §4.2: one RRset of the responder's choosing, not everything."""
    reply = answering.udp(dns.message.make_query("fo.example.net", "ANY"))
    assert reply.rcode() == NOERROR and reply.flags & dns.flags.AA
    assert len(reply.answer) == 1
    www = answering.udp(dns.message.make_query("www.fo.example.net", "ANY"))
    assert len(www.answer) == 1 and www.answer[0].rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
    missing = answering.udp(dns.message.make_query("nope.fo.example.net", "ANY"))
    assert missing.rcode() == NXDOMAIN


def test_other_classes_are_refused(answering: FodnsProcess) -> None:
    query = dns.message.make_query("version.bind", "TXT", rdclass=dns.rdataclass.CH)
    assert answering.udp(query).rcode() == REFUSED
