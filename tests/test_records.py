"""One derivation of a group's answer, four views that must say the same records.

`records.group_answer` is the one function from a group and its apps to what the
group answers. Four views render it for their consumer: the DNS answer table (asked
here through the real query path, decoded by dnspython), the IXFR journal's record
set, the Route53 mirror's record sets, and the API's JSON. Each rule of groups goes
through all four, which must agree with each other and with the rule.
"""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from fodns.groups import apply_groups
from fodns.journal import answer_records
from fodns.model import App, Group
from fodns.query import QueryHandler
from fodns.records import answer_json
from fodns.route53 import group_records
from fodns.table import AnswerTable
from fodns.zone import load_zone_file

ZONE = "fo.test"
ZONE_TEXT = """$ORIGIN fo.test.
$TTL 300
@       SOA ns1 hostmaster 1 3600 600 86400 60
@       NS  ns1
ns1     A   127.0.0.1
"""
# (owner without the final dot, TTL, type, data as dnspython writes it)
Record = tuple[str, int, str, str]

APPS = {
    "eu": App("eu", web_servers=("192.0.2.10", "192.0.2.11")),
    "us": App("us", load_balancer=("lb.us.example.com.",)),
    # A load balancer wins over the web servers behind it.
    "lb": App("lb", load_balancer=("lb.example.com.",), web_servers=("192.0.2.30",)),
    "dual": App("dual", web_servers=("192.0.2.40", "2001:db8::40", "2001:db8::41")),
    # Stored by an older fodns or by hand: a scoped IPv6 address cannot go on the wire.
    "scoped": App("scoped", web_servers=("fe80::1%eth0", "192.0.2.50")),
    "headless": App("headless"),
}


def records(fqdn: str, ttl: int, *typed: tuple[str, str]) -> set[Record]:
    return {(fqdn, ttl, kind, data) for kind, data in typed}


# (case, group, the records the rules of groups say it answers)
CASES = [
    (
        "both apps, primary active",
        Group(ZONE, "both-primary", "eu", "us", "primary", 30),
        records("both-primary.fo.test", 30, ("A", "192.0.2.10"), ("A", "192.0.2.11")),
    ),
    (
        "both apps, backup active",
        Group(ZONE, "both-backup", "eu", "us", "backup", 60),
        records("both-backup.fo.test", 60, ("CNAME", "lb.us.example.com.")),
    ),
    (
        "primary only",
        Group(ZONE, "primary-only", "eu", None, "primary", 300),
        records("primary-only.fo.test", 300, ("A", "192.0.2.10"), ("A", "192.0.2.11")),
    ),
    ("no apps: NODATA", Group(ZONE, "none", None, None, "primary", 30), set()),
    (
        "active side has no app: NODATA",
        Group(ZONE, "empty-side", "eu", None, "backup", 30),
        set(),
    ),
    (
        "active app has no web head: NODATA",
        Group(ZONE, "headless", "headless", "eu", "primary", 30),
        set(),
    ),
    (
        "a CNAME from a load balancer's hostname",
        Group(ZONE, "cname", "lb", "eu", "primary", 30),
        records("cname.fo.test", 30, ("CNAME", "lb.example.com.")),
    ),
    (
        "mixed A and AAAA web servers",
        Group(ZONE, "mixed", "dual", None, "primary", 45),
        records(
            "mixed.fo.test",
            45,
            ("A", "192.0.2.40"),
            ("AAAA", "2001:db8::40"),
            ("AAAA", "2001:db8::41"),
        ),
    ),
    (
        "an unservable value is left out, the rest served",
        Group(ZONE, "scoped", "scoped", None, "primary", 30),
        records("scoped.fo.test", 30, ("A", "192.0.2.50")),
    ),
]


def table_view(tmp_path: Path, group: Group) -> set[Record]:
    """What the DNS table answers for the group: A and AAAA asked through the real
    query path, the reply decoded by dnspython (a CNAME answers both)."""
    zone_file = tmp_path / "fo.test.zone"
    zone_file.write_text(ZONE_TEXT)
    table = AnswerTable([load_zone_file(zone_file, ZONE)])
    apply_groups(table, [group], APPS, {ZONE: 2})
    handler = QueryHandler(table)
    found: set[Record] = set()
    for qtype in ("A", "AAAA"):
        query = dns.message.make_query(group.fqdn, qtype)
        wire = handler.answer(query.to_wire(), udp=False)
        assert wire is not None
        for rrset in dns.message.from_wire(wire).answer:
            owner = rrset.name.to_text(omit_final_dot=True)
            kind = dns.rdatatype.to_text(rrset.rdtype)
            found.update((owner, rrset.ttl, kind, rdata.to_text()) for rdata in rrset)
    return found


def journal_view(group: Group) -> set[Record]:
    return set(answer_records(group, APPS))


def route53_view(group: Group) -> set[Record]:
    return {
        (name.removesuffix("."), ttl, kind, value)
        for (name, kind), (ttl, values) in group_records(group, APPS).items()
        for value in values
    }


def json_view(group: Group) -> set[Record]:
    shown = answer_json(group, APPS)
    return {(shown["fqdn"], shown["ttl"], r["type"], r["data"]) for r in shown["answer"]}


@pytest.mark.parametrize(
    ("group", "expected"),
    [pytest.param(group, expected, id=case) for case, group, expected in CASES],
)
def test_every_view_of_a_group_answer_says_the_same_records(
    tmp_path: Path, group: Group, expected: set[Record]
) -> None:
    views = {
        "DNS table": table_view(tmp_path, group),
        "IXFR journal": journal_view(group),
        "Route53": route53_view(group),
        "API JSON": json_view(group),
    }
    assert views == dict.fromkeys(views, expected)
