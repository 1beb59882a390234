"""Group answers in the table: loading many groups at start-up must answer exactly as
applying them one change at a time does, the unusual cases included."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import pytest

from fodns.groups import GroupRecords, apply_groups, load_groups
from fodns.model import App, Group
from fodns.query import QueryHandler
from fodns.server import build_table, record_zone_files
from fodns.store import Store, ZoneDefaults
from fodns.table import AnswerTable
from fodns.zone import ZoneData, load_zone_file, wire_key

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


def test_start_up_from_the_store_answers_exactly_as_applying(tmp_path: Path) -> None:
    # build_table reads the groups as plain rows (label, active app id, TTL) zone by
    # zone; that must answer as the Groups the rest of fodns reads do.
    zone_file = tmp_path / "fo.test.zone"
    zone_file.write_text(ZONE_TEXT)
    zones = [load_zone_file(zone_file, "fo.test")]
    with Store(tmp_path / "fodns.db", {"fo.test": ZoneDefaults(serial=1)}) as store:
        record_zone_files(store, zones)
        for app in APPS.values():
            store.create_app("test", app.name, app.load_balancer, app.web_servers)
        for group in GROUPS[:-1]:  # www is the zone file's: the store refuses it
            store.create_group("test", "fo.test", group.label, group.primary, group.backup)
            if group.active == "backup":
                store.switch("test", group.label, "backup")
        started, seq = build_table(load_zones_again(zone_file), store)
        groups, apps, serials, snapshot_seq = store.snapshot()
    applied = AnswerTable(load_zones_again(zone_file))
    apply_groups(applied, groups, apps, serials)
    assert seq == snapshot_seq
    for qname, qtype in QUESTIONS:
        assert reply_text(QueryHandler(started), qname, qtype) == reply_text(
            QueryHandler(applied), qname, qtype
        ), (qname, qtype)
    assert "192.0.2.10" in reply_text(QueryHandler(started), "111-111-111.fo.test", "A")
    assert "2001:db8::1" in reply_text(QueryHandler(started), "222-222-222.fo.test", "AAAA")


def load_zones_again(zone_file: Path) -> list[ZoneData]:
    return [load_zone_file(zone_file, "fo.test")]


def test_groups_on_one_web_head_share_its_records(tmp_path: Path) -> None:
    # A million groups on 100,000 apps: the table keeps one HeadRecords per web head
    # and TTL, and two references per group.
    zone_file = tmp_path / "fo.test.zone"
    zone_file.write_text(ZONE_TEXT)
    table = AnswerTable(load_zones_again(zone_file))
    same = [Group("fo.test", label, "v4", "v6", "primary", 30) for label in ("a-1", "a-2")]
    other_ttl = Group("fo.test", "a-3", "v4", "v6", "primary", 60)
    load_groups(table, [*same, other_ttl], APPS, {})
    records = table.zones[wire_key(dns.name.from_text("fo.test"))].records
    first, second, third = (records[group_key(label)] for label in ("a-1", "a-2", "a-3"))
    assert isinstance(first, GroupRecords) and isinstance(second, GroupRecords)
    assert isinstance(third, GroupRecords)
    assert first.shared is second.shared and third.shared is not first.shared
    assert first.key == group_key("a-1")


@pytest.mark.parametrize("load", [True, False])
def test_a_group_that_changes_types_keeps_no_reply_of_the_old_ones(
    tmp_path: Path, load: bool
) -> None:
    # The table keeps no list of a group's reply keys (it tries A, AAAA and CNAME):
    # a group moving from a CNAME (replies for A, AAAA and CNAME) to IPv4 servers
    # must answer AAAA and CNAME with NODATA, and a deleted group NXDOMAIN for all.
    served = handler(tmp_path, load=load)
    assert "CNAME lb.example.com." in reply_text(served, "333-333-333.fo.test", "AAAA")
    moved = Group("fo.test", "333-333-333", "v4", "lb-out", "primary", 30)
    apply_groups(served.table, [moved], APPS, {"fo.test": 10})
    assert "192.0.2.10" in reply_text(served, "333-333-333.fo.test", "A")
    for qtype in ("AAAA", "CNAME"):
        reply = reply_text(served, "333-333-333.fo.test", qtype)
        assert reply.startswith("NOERROR") and "IN SOA" in reply and "CNAME lb" not in reply
    apply_groups(served.table, [], APPS, {"fo.test": 11}, [("fo.test", "333-333-333")])
    for qtype in ("A", "AAAA", "CNAME"):
        assert reply_text(served, "333-333-333.fo.test", qtype).startswith("NXDOMAIN")
    assert not [key for key in served.table.answers if key.startswith(group_key("333-333-333"))]


def group_key(label: str) -> bytes:
    return wire_key(dns.name.from_text(f"{label}.fo.test"))
