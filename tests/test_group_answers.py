"""Group answers in the table: loading many groups at start-up must answer exactly as
applying them one change at a time does, the unusual cases included."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode

from fodns.groups import apply_groups, load_groups
from fodns.model import App, Group
from fodns.query import QueryHandler
from fodns.table import AnswerTable
from fodns.zone import load_zone_file

ZONE_TEXT = """$ORIGIN fo.test.
$TTL 300
@       SOA ns1 hostmaster 1 3600 600 86400 60
@       NS  ns1
ns1     A   127.0.0.1
www     A   192.0.2.1
shop    CNAME 111-111-111   ; a zone-file name that follows a group
"""
APPS = {
    "v4": App("v4", web_servers=("192.0.2.10", "192.0.2.11")),
    "v6": App("v6", web_servers=("2001:db8::1",)),
    "lb-out": App("lb-out", load_balancer=("lb.example.com.",)),
    "lb-in": App("lb-in", load_balancer=("ns1.fo.test.",)),  # in-zone target: full lookup
    "dual": App("dual", web_servers=("192.0.2.20", "2001:db8::20")),
    "empty": App("empty"),
}
GROUPS = [
    Group("fo.test", "111-111-111", "v4", "v6", "primary", 30),
    Group("fo.test", "222-222-222", "v4", "v6", "backup", 60),
    Group("fo.test", "333-333-333", "lb-out", None, "primary", 30),
    Group("fo.test", "444-444-444", "lb-in", None, "primary", 30),
    Group("fo.test", "555-555-555", None, None, "primary", 30),
    Group("fo.test", "666-666-666", "empty", "v4", "primary", 30),
    Group("fo.test", "777-777-777", "dual", None, "primary", 30),
    Group("fo.test", "www", "v6", None, "primary", 30),  # collides with a zone-file name
]
QUESTIONS = [
    (f"{name}.fo.test", qtype)
    for name in [
        "111-111-111",
        "222-222-222",
        "333-333-333",
        "444-444-444",
        "555-555-555",
        "666-666-666",
        "777-777-777",
        "www",
        "shop",
        "888-888-888",
    ]
    for qtype in ["A", "AAAA", "CNAME", "MX", "ANY"]
] + [("fo.test", "SOA")]


def handler(tmp_path: Path, load: bool) -> QueryHandler:
    zone_file = tmp_path / "fo.test.zone"
    zone_file.write_text(ZONE_TEXT)
    table = AnswerTable([load_zone_file(zone_file, "fo.test")])
    (load_groups if load else apply_groups)(table, GROUPS, APPS, {"fo.test": 9})
    return QueryHandler(table)


def reply_text(handler: QueryHandler, qname: str, qtype: str) -> str:
    query = dns.message.make_query(qname, qtype)
    query.id = 1
    wire = handler.answer(query.to_wire(), udp=False)
    assert wire is not None
    message = dns.message.from_wire(wire)
    sections = [
        sorted(line for rrset in section for line in rrset.to_text().splitlines())
        for section in (message.answer, message.authority, message.additional)
    ]
    return f"{dns.rcode.to_text(message.rcode())} {message.flags} {sections}"


def test_loading_answers_exactly_as_applying(tmp_path: Path) -> None:
    loaded, applied = handler(tmp_path, load=True), handler(tmp_path, load=False)
    for qname, qtype in QUESTIONS:
        assert reply_text(loaded, qname, qtype) == reply_text(applied, qname, qtype), (qname, qtype)


def test_what_groups_answer(tmp_path: Path) -> None:
    loaded = handler(tmp_path, load=True)
    assert "192.0.2.10" in reply_text(loaded, "111-111-111.fo.test", "A")
    assert "2001:db8::1" in reply_text(loaded, "222-222-222.fo.test", "AAAA")
    assert "60 IN AAAA" in reply_text(loaded, "222-222-222.fo.test", "AAAA")
    assert "CNAME lb.example.com." in reply_text(loaded, "333-333-333.fo.test", "A")
    chased = reply_text(loaded, "444-444-444.fo.test", "A")
    assert "CNAME ns1.fo.test." in chased and "127.0.0.1" in chased
    assert reply_text(loaded, "555-555-555.fo.test", "A").startswith("NOERROR")
    assert "IN SOA" in reply_text(loaded, "666-666-666.fo.test", "A")  # NODATA
    shop = reply_text(loaded, "shop.fo.test", "A")  # zone-file CNAME follows the group
    assert "CNAME 111-111-111.fo.test." in shop and "192.0.2.10" in shop
    assert "9 3600" in reply_text(loaded, "fo.test", "SOA")
