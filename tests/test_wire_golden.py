"""Golden wire vectors: exact reply bytes for fixed queries, written field by field.

These pin down what no dnspython round trip can: compression pointers into the
question, the query's case echoed byte for byte, flag bits, and the OPT we send.
"""

from __future__ import annotations

from fodns.query import QueryHandler
from fodns.table import AnswerTable
from fodns.zone import load_zone_file
from tests.support import EXAMPLE_ZONE


def handler() -> QueryHandler:
    return QueryHandler(AnswerTable([load_zone_file(EXAMPLE_ZONE, "fo.example.net")]))


def wire(spaced_hex: str) -> bytes:
    return bytes.fromhex("".join(spaced_hex.split()))


# Questions, type A class IN: mail.fo.example.net, MaIL.Fo.example.net, nope.fo.example.net
MAIL_QUESTION = "04 6d61696c 02 666f 07 6578616d706c65 03 6e6574 00  0001 0001"
MIXED_QUESTION = "04 4d61494c 02 466f 07 6578616d706c65 03 6e6574 00  0001 0001"
NOPE_QUESTION = "04 6e6f7065 02 666f 07 6578616d706c65 03 6e6574 00  0001 0001"


def test_a_record_points_its_owner_at_the_question() -> None:
    query = wire(f"1234 0100 0001 0000 0000 0000 {MAIL_QUESTION}")
    assert handler().answer(query, udp=True) == wire(
        f"1234 8500 0001 0001 0000 0000 {MAIL_QUESTION}"
        # owner=pointer to 12, A, IN, TTL 3600, RDLENGTH 4, 192.0.2.25
        " c00c 0001 0001 00000e10 0004 c0000219"
    )


def test_the_query_case_is_echoed_and_rd_cleared_when_the_query_clears_it() -> None:
    query = wire(f"beef 0000 0001 0000 0000 0000 {MIXED_QUESTION}")
    assert handler().answer(query, udp=True) == wire(
        f"beef 8400 0001 0001 0000 0000 {MIXED_QUESTION} c00c 0001 0001 00000e10 0004 c0000219"
    )


def test_nxdomain_carries_the_soa_pointing_into_the_question() -> None:
    query = wire(f"abcd 0000 0001 0000 0000 0000 {NOPE_QUESTION}")
    assert handler().answer(query, udp=True) == wire(
        f"abcd 8403 0001 0000 0001 0000 {NOPE_QUESTION}"
        # owner: pointer to "fo.example.net" at offset 17; SOA IN; TTL 300 (RFC 2308)
        " c011 0006 0001 0000012c 0027"
        # MNAME ns1 + pointer 17; RNAME hostmaster + pointer to "example.net" at 20
        " 03 6e7331 c011  0a 686f73746d6173746572 c014"
        # serial 2026112201, refresh 7200, retry 3600, expire 1209600, minimum 300
        " 78c404c9 00001c20 00000e10 00127500 0000012c"
    )


def test_edns_query_gets_our_opt_with_the_do_bit_copied() -> None:
    # OPT: root, type 41, class=4096 (client size), ext-rcode 0, version 0, DO set, RDLEN 0
    query = wire(f"0001 0000 0001 0000 0000 0001 {MAIL_QUESTION} 00 0029 1000 00 00 8000 0000")
    assert handler().answer(query, udp=True) == wire(
        f"0001 8400 0001 0001 0000 0001 {MAIL_QUESTION}"
        " c00c 0001 0001 00000e10 0004 c0000219"
        # our OPT: payload 1232 (0x04d0), version 0, DO copied
        " 00 0029 04d0 00 00 8000 0000"
    )


def test_badvers_splits_the_extended_rcode_between_header_and_opt() -> None:
    # RFC 6891 §6.1.3: BADVERS is 16: header RCODE 0, OPT extended RCODE 1, our version 0.
    query = wire(f"0002 0000 0001 0000 0000 0001 {MAIL_QUESTION} 00 0029 1000 00 01 0000 0000")
    assert handler().answer(query, udp=True) == wire(
        f"0002 8000 0001 0000 0000 0001 {MAIL_QUESTION} 00 0029 04d0 01 00 0000 0000"
    )


def test_unknown_opcode_gets_notimp_with_opcode_and_id_echoed() -> None:
    query = wire(f"0003 7800 0001 0000 0000 0000 {MAIL_QUESTION}")  # opcode 15
    assert handler().answer(query, udp=True) == wire(
        f"0003 f804 0001 0000 0000 0000 {MAIL_QUESTION}"
    )
