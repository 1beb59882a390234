"""The answer table's change seam: `apply` rebuilds only what changed, and the replies
that follow are exactly those of a table built from scratch on the new data."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from fodns.errors import ZoneFileError
from fodns.query import QueryHandler
from fodns.table import AnswerTable
from fodns.zone import ZoneData, load_zone_file
from tests.support import TEST_ZONES

TEST_ZONE = TEST_ZONES / "test.example.zone"
ORIGIN = dns.name.from_text("test.example")


def zone() -> ZoneData:
    return load_zone_file(TEST_ZONE, "test.example")


def ask(handler: QueryHandler, qname: str, qtype: str) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype)
    reply = handler.answer(query.to_wire(), udp=False)
    assert reply is not None
    return dns.message.from_wire(reply)


def section_lines(section: list[dns.rrset.RRset]) -> list[str]:
    """Record lines in a stable order: the order of records in an RRset carries no meaning."""
    return sorted(line for rrset in section for line in rrset.to_text().splitlines())


def answer_text(reply: dns.message.Message) -> list[str]:
    return section_lines(reply.answer)


def records(name: str, *lines: tuple[str, str]) -> dict[int, dns.rrset.RRset]:
    by_type: dict[int, dns.rrset.RRset] = {}
    for rdtype, rdata in lines:
        rrset = by_type.setdefault(
            dns.rdatatype.from_text(rdtype),
            dns.rrset.RRset(dns.name.from_text(name), 1, dns.rdatatype.from_text(rdtype)),
        )
        rrset.add(dns.rdata.from_text(1, rrset.rdtype, rdata), 30)
    return by_type


def fresh_equivalent(table: AnswerTable) -> QueryHandler:
    """A table built from scratch on the same data, to compare replies with."""
    return QueryHandler(AnswerTable(table.zones.values()))


QUESTIONS = [
    ("www.test.example", "A"),
    ("alias.test.example", "A"),
    ("new.test.example", "A"),
    ("x.y.test.example", "A"),
    ("y.test.example", "A"),
    ("test.example", "SOA"),
    ("nope.test.example", "A"),
    ("test.example", "NS"),
    ("chain1.test.example", "A"),
]


def assert_same_as_fresh(handler: QueryHandler) -> None:
    fresh = fresh_equivalent(handler.table)
    for qname, qtype in QUESTIONS:
        ours, theirs = ask(handler, qname, qtype), ask(fresh, qname, qtype)
        assert ours.rcode() == theirs.rcode(), (qname, qtype)
        assert answer_text(ours) == answer_text(theirs), (qname, qtype)
        assert section_lines(ours.authority) == section_lines(theirs.authority)


def test_adding_a_name_answers_it_and_moves_the_serial() -> None:
    handler = QueryHandler(AnswerTable([zone()]))
    assert ask(handler, "new.test.example", "A").rcode() == dns.rcode.NXDOMAIN
    handler.table.apply(
        ORIGIN,
        {dns.name.from_text("new.test.example"): records("new.test.example", ("A", "192.0.2.200"))},
        serial=8,
    )
    assert answer_text(ask(handler, "new.test.example", "A")) == [
        "new.test.example. 30 IN A 192.0.2.200"
    ]
    assert ask(handler, "test.example", "SOA").answer[0][0].serial == 8
    # Negative answers carry the new serial too.
    assert ask(handler, "nope.test.example", "A").authority[0][0].serial == 8
    assert_same_as_fresh(handler)


def test_changing_a_target_updates_the_cnames_that_follow_it() -> None:
    handler = QueryHandler(AnswerTable([zone()]))
    handler.table.apply(
        ORIGIN,
        {
            dns.name.from_text("www.test.example"): records(
                "www.test.example", ("A", "198.51.100.1")
            )
        },
    )
    for qname in ("alias.test.example", "chain1.test.example"):
        assert "www.test.example. 30 IN A 198.51.100.1" in answer_text(ask(handler, qname, "A"))
    assert_same_as_fresh(handler)


def test_changing_an_in_zone_nameserver_updates_the_glue() -> None:
    handler = QueryHandler(AnswerTable([zone()]))
    handler.table.apply(
        ORIGIN,
        {dns.name.from_text("ns1.test.example"): records("ns1.test.example", ("A", "127.0.0.9"))},
    )
    glue = section_lines(ask(handler, "test.example", "NS").additional)
    assert glue == ["ns1.test.example. 30 IN A 127.0.0.9"]


def test_empty_non_terminals_come_and_go_with_their_descendants() -> None:
    handler = QueryHandler(AnswerTable([zone()]))
    deep = dns.name.from_text("x.y.test.example")
    handler.table.apply(ORIGIN, {deep: records("x.y.test.example", ("A", "192.0.2.201"))})
    empty = ask(handler, "y.test.example", "A")
    assert empty.rcode() == dns.rcode.NOERROR and not empty.answer
    assert_same_as_fresh(handler)

    handler.table.apply(ORIGIN, {deep: None})
    assert ask(handler, "x.y.test.example", "A").rcode() == dns.rcode.NXDOMAIN
    assert ask(handler, "y.test.example", "A").rcode() == dns.rcode.NXDOMAIN
    assert_same_as_fresh(handler)


def test_a_name_kept_with_no_records_exists_for_every_type() -> None:
    """A failover group with no active app: the name exists, every type is NODATA."""
    handler = QueryHandler(AnswerTable([zone()]))
    reserved = dns.name.from_text("414-262-781.test.example")
    handler.table.apply(ORIGIN, {reserved: {}}, serial=8)
    for qtype in ("A", "AAAA", "TXT", "ANY"):
        reply = ask(handler, "414-262-781.test.example", qtype)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer, qtype
        assert reply.authority[0][0].serial == 8
    handler.table.apply(ORIGIN, {reserved: records(str(reserved), ("A", "192.0.2.7"))})
    assert answer_text(ask(handler, "414-262-781.test.example", "A")) == [
        "414-262-781.test.example. 30 IN A 192.0.2.7"
    ]
    handler.table.apply(ORIGIN, {reserved: None})
    assert ask(handler, "414-262-781.test.example", "A").rcode() == dns.rcode.NXDOMAIN
    assert_same_as_fresh(handler)


def test_deleting_a_cname_target_makes_the_chain_end_in_nxdomain() -> None:
    handler = QueryHandler(AnswerTable([zone()]))
    handler.table.apply(ORIGIN, {dns.name.from_text("www.test.example"): None})
    reply = ask(handler, "alias.test.example", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN  # RFC 6604
    assert answer_text(reply) == ["alias.test.example. 300 IN CNAME www.test.example."]
    assert_same_as_fresh(handler)


def test_a_new_delegation_rebuilds_the_subtree_as_referrals() -> None:
    handler = QueryHandler(AnswerTable([zone()]))
    handler.table.apply(
        ORIGIN,
        {
            dns.name.from_text("c.test.example"): records(
                "c.test.example", ("NS", "ns1.test.example.")
            )
        },
    )
    reply = ask(handler, "a.b.c.test.example", "A")
    assert not reply.answer and reply.authority[0].rdtype == dns.rdatatype.NS
    assert_same_as_fresh(handler)


def test_a_change_that_cannot_be_built_leaves_the_table_as_it_was() -> None:
    handler = QueryHandler(AnswerTable([zone()]))
    before = {q: answer_text(ask(handler, *q)) for q in QUESTIONS}
    with pytest.raises(ZoneFileError):
        handler.table.apply(
            ORIGIN,
            {
                dns.name.from_text("www.elsewhere.example"): records(
                    "www.elsewhere.example", ("A", "192.0.2.1")
                )
            },
        )
    assert {q: answer_text(ask(handler, *q)) for q in QUESTIONS} == before
    assert ask(handler, "test.example", "SOA").answer[0][0].serial == 7


def test_rebuild_touches_only_changed_names() -> None:
    """Cost in proportion to the change: untouched names keep their very template objects."""
    table = AnswerTable([zone()])
    untouched = {
        key: template for key, template in table.answers.items() if key.startswith(b"\x04mail")
    }
    table.apply(
        ORIGIN,
        {dns.name.from_text("new.test.example"): records("new.test.example", ("A", "192.0.2.200"))},
        serial=9,
    )
    assert untouched and all(table.answers[k] is t for k, t in untouched.items())


def test_a_serial_that_moves_alone_renders_only_the_apex_soa_again() -> None:
    """Every group change moves the serial: the apex's other replies (NS with its glue,
    MX) do not hold it, so they keep their very template objects; the SOA reply, the
    negative answers and the names that chase to the apex carry the new serial."""
    handler = QueryHandler(AnswerTable([zone()]))
    table = handler.table
    handler.table.apply(
        ORIGIN,
        {
            dns.name.from_text("toapex.test.example"): records(
                "toapex.test.example", ("CNAME", "test.example.")
            )
        },
        serial=8,
    )
    apex = b"\x04test\x07example\x00"
    kept = {
        key: template
        for key, template in table.answers.items()
        if key.startswith(apex) and key[len(apex) : len(apex) + 2] != b"\x00\x06"
    }
    handler.table.apply(
        ORIGIN,
        {dns.name.from_text("www.test.example"): records("www.test.example", ("A", "192.0.2.7"))},
        serial=9,
    )
    assert len(kept) >= 2 and all(table.answers[key] is tpl for key, tpl in kept.items())
    assert ask(handler, "test.example", "SOA").answer[0][0].serial == 9
    assert ask(handler, "nope.test.example", "A").authority[0][0].serial == 9
    chased = ask(handler, "toapex.test.example", "SOA").answer
    assert [rrset[0].serial for rrset in chased if rrset.rdtype == dns.rdatatype.SOA] == [9]
    assert_same_as_fresh(handler)


def test_a_change_to_the_apex_glue_with_a_serial_renders_the_apex_again() -> None:
    """The apex is rebuilt whole when something it includes changed, not only its serial."""
    handler = QueryHandler(AnswerTable([zone()]))
    handler.table.apply(
        ORIGIN,
        {dns.name.from_text("ns1.test.example"): records("ns1.test.example", ("A", "127.0.0.9"))},
        serial=10,
    )
    glue = section_lines(ask(handler, "test.example", "NS").additional)
    assert glue == ["ns1.test.example. 30 IN A 127.0.0.9"]
    assert ask(handler, "test.example", "SOA").answer[0][0].serial == 10
    assert_same_as_fresh(handler)


def test_a_cname_in_another_zone_to_the_apex_survives_a_serial_change() -> None:
    """A name that points at the apex may live in another zone we serve (here the child
    zone, with a CNAME to its parent's apex): rebuilt with its own zone's data, it keeps
    answering when the parent's serial moves, as a table built afresh does."""
    child_origin = dns.name.from_text("child.test.example")
    child = load_zone_file(TEST_ZONES / "child.test.example.zone", "child.test.example")
    handler = QueryHandler(AnswerTable([zone(), child]))
    alias = dns.name.from_text("x.child.test.example")
    handler.table.apply(
        child_origin, {alias: records("x.child.test.example", ("CNAME", "test.example."))}
    )
    handler.table.apply(
        ORIGIN,
        {dns.name.from_text("www.test.example"): records("www.test.example", ("A", "192.0.2.7"))},
        serial=9,
    )
    reply = ask(handler, "x.child.test.example", "SOA")
    assert reply.rcode() == dns.rcode.NOERROR
    assert answer_text(reply) == ["x.child.test.example. 30 IN CNAME test.example."]
    fresh = ask(fresh_equivalent(handler.table), "x.child.test.example", "SOA")
    assert answer_text(reply) == answer_text(fresh)
