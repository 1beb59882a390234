"""The Route53 mirror's pure parts: record sets of a group, differences, batching
within Route53's limits, what fodns owns in a hosted zone, and the config section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fodns.config import Route53Config, load_config
from fodns.errors import ConfigError
from fodns.model import App, Group
from fodns.route53 import (
    BATCH_MAX_CHARACTERS,
    BATCH_MAX_RECORDS,
    Listed,
    batches,
    diff,
    group_records,
    in_the_way,
    listed_record_set,
    make_client,
    ownership,
    plan,
    reserved_labels,
    unfit_reason,
)
from tests.support import EXAMPLE_ZONE, write_config

EU = App("eu", web_servers=("192.0.2.11", "192.0.2.10", "2001:db8::1"))
US = App("us", load_balancer=("lb.us.example.com.",))
SHOP = Group("fo.example.net", "shop", "eu", "us", "primary", 30)


def test_a_group_becomes_one_record_set_per_type() -> None:
    assert group_records(SHOP, {"eu": EU, "us": US}) == {
        ("shop.fo.example.net.", "A"): (30, ("192.0.2.10", "192.0.2.11")),
        ("shop.fo.example.net.", "AAAA"): (30, ("2001:db8::1",)),
    }
    switched = Group("fo.example.net", "shop", "eu", "us", "backup", 60)
    assert group_records(switched, {"eu": EU, "us": US}) == {
        ("shop.fo.example.net.", "CNAME"): (60, ("lb.us.example.com.",))
    }
    empty = Group("fo.example.net", "spare", None, None, "primary", 30)
    assert group_records(empty, {}) == {}


def test_a_switch_deletes_the_addresses_before_the_cname_arrives() -> None:
    before = group_records(SHOP, {"eu": EU, "us": US})
    after = group_records(Group("fo.example.net", "shop", "eu", "us", "backup", 30), {"us": US})
    other = {("other.fo.example.net.", "A"): (30, ("192.0.2.99",))}
    plan = diff("fo.example.net", "Z1", {**after, **other}, {**before, **other})
    assert plan.unchanged == 1
    assert [(c["Action"], c["ResourceRecordSet"]["Type"]) for c in plan.changes()] == [
        ("DELETE", "A"),
        ("DELETE", "AAAA"),
        ("CREATE", "CNAME"),  # a CREATE: Route53 refuses it if someone's record is there
    ]
    # A DELETE names exactly what is there (Route53 refuses anything else).
    delete_a = plan.changes()[0]["ResourceRecordSet"]
    assert delete_a["TTL"] == 30
    assert delete_a["ResourceRecords"] == [{"Value": "192.0.2.10"}, {"Value": "192.0.2.11"}]


def test_a_diff_limited_to_some_keys_leaves_the_others_alone() -> None:
    present = {("a.z.", "A"): (30, ("192.0.2.1",)), ("b.z.", "A"): (30, ("192.0.2.2",))}
    plan = diff("z", "Z1", {}, present, keys={("a.z.", "A")})
    assert plan.remove == {("a.z.", "A"): (30, ("192.0.2.1",))}
    assert not plan.add and not plan.change


def upsert(name: str, values: list[str]) -> dict[str, object]:
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": name,
            "Type": "A",
            "TTL": 30,
            "ResourceRecords": [{"Value": v} for v in values],
        },
    }


def test_batches_respect_the_record_limit_counting_upserts_twice() -> None:
    changes = [upsert(f"g{i}.z.", ["192.0.2.1", "192.0.2.2"]) for i in range(1000)]
    cut = batches(changes)  # type: ignore[arg-type]
    # Each change weighs 2 values x 2 (UPSERT) = 4: 250 fit under 1,000.
    assert [len(b) for b in cut] == [250] * 4
    for batch in cut:
        weight = sum(2 * len(c["ResourceRecordSet"]["ResourceRecords"]) for c in batch)
        assert weight <= BATCH_MAX_RECORDS
    assert [c for b in cut for c in b] == changes


def test_batches_respect_the_character_limit() -> None:
    long_name = "x" * 60 + ".example.com."
    changes = [upsert(f"g{i}.z.", [long_name] * 10) for i in range(100)]
    cut = batches(changes)  # type: ignore[arg-type]
    assert len(cut) > 1
    for batch in cut:
        characters = sum(
            2 * len(r["Value"]) for c in batch for r in c["ResourceRecordSet"]["ResourceRecords"]
        )
        assert characters <= BATCH_MAX_CHARACTERS


def test_route53_config_is_checked(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        [("fo.example.net", EXAMPLE_ZONE)],
        zone_extra='route53_hosted_zone_id = "Z123"\n',
        extra='[route53]\nenabled = true\nprofile = "ops"\nfull_sync_interval = 600\n',
    )
    loaded = load_config(config)
    assert loaded.route53.enabled and loaded.route53.profile == "ops"
    assert loaded.route53.full_sync_interval == 600
    assert loaded.zones[0].route53_hosted_zone_id == "Z123"
    nothing_to_mirror = write_config(
        tmp_path, [("fo.example.net", EXAMPLE_ZONE)], extra="[route53]\nenabled = true\n"
    )
    with pytest.raises(ConfigError, match=re.escape("route53.enabled: no [[zones]] entry")):
        load_config(nothing_to_mirror)
    typo = write_config(
        tmp_path, [("fo.example.net", EXAMPLE_ZONE)], extra="[route53]\nregoin = 'x'\n"
    )
    with pytest.raises(ConfigError, match=re.escape("route53.regoin: unknown key")):
        load_config(typo)


ZONE = "fo.example.net"


def listed(name: str, rtype: str, ttl: int | None, *values: str) -> Listed:
    return Listed(name, rtype, None if ttl is None else (ttl, tuple(sorted(values))))


def test_ownership_is_what_fodns_wrote() -> None:
    remembered = {("shop.fo.example.net.", "A"): (30, ("192.0.2.10",))}
    old_cname = ("gone.fo.example.net.", "CNAME", 30, ("lb.example.com.",))
    rrsets = [
        listed("fo.example.net.", "SOA", 900, "ns. hostmaster. 1 7200 900 1209600 86400"),
        listed("fo.example.net.", "A", 300, "192.0.2.1"),  # the apex is never fodns's
        listed("shop.fo.example.net.", "A", 300, "192.0.2.99"),  # remembered, edited: drift
        listed("shop.fo.example.net.", "TXT", 300, '"v=1"'),  # a type fodns never writes
        listed("gone.fo.example.net.", "CNAME", 30, "lb.example.com."),  # a value it wrote
        listed("spare.fo.example.net.", "A", 300, "203.0.113.2"),  # never written
        listed("www.fo.example.net.", "A", None),  # an alias: never fodns's
        listed("a.b.fo.example.net.", "AAAA", 300, "2001:db8::1"),
    ]
    held, foreign = ownership(
        ZONE, rrsets, remembered, lambda key, value: (*key, *value) == old_cname
    )
    assert held == {
        ("shop.fo.example.net.", "A"): (300, ("192.0.2.99",)),
        ("gone.fo.example.net.", "CNAME"): (30, ("lb.example.com.",)),
    }
    assert foreign == {
        "fo.example.net.": frozenset({"SOA", "A"}),
        "shop.fo.example.net.": frozenset({"TXT"}),
        "spare.fo.example.net.": frozenset({"A"}),
        "www.fo.example.net.": frozenset({"A"}),
        "a.b.fo.example.net.": frozenset({"AAAA"}),
    }
    assert reserved_labels(ZONE, foreign) == {"shop", "spare", "www", "b"}


@pytest.mark.parametrize(
    ("key", "theirs", "in_the_way_types"),
    [
        (("n.z.", "A"), {"TXT"}, ()),  # beside each other: fine
        (("n.z.", "A"), {"A", "TXT"}, ("A", "TXT")),  # the same type
        (("n.z.", "CNAME"), {"TXT"}, ("TXT",)),  # a CNAME shares its name with nothing
        (("n.z.", "AAAA"), {"CNAME"}, ("CNAME",)),
        (("m.z.", "CNAME"), {"TXT"}, ()),  # another name
    ],
)
def test_what_is_in_the_way(
    key: tuple[str, str], theirs: set[str], in_the_way_types: tuple[str, ...]
) -> None:
    assert in_the_way(key, {"n.z.": frozenset(theirs)}) == in_the_way_types


def test_a_plan_leaves_conflicts_and_record_sets_too_big_alone() -> None:
    big = (30, tuple(f"198.18.{i // 256}.{i % 256}" for i in range(501)))
    wanted = {
        ("a.z.", "A"): (30, ("192.0.2.1",)),
        ("big.z.", "A"): big,
        ("cname.z.", "CNAME"): (30, ("lb.example.com.",)),
    }
    held = {("big.z.", "A"): (30, ("192.0.2.2",)), ("cname.z.", "A"): (30, ("192.0.2.3",))}
    result = plan("z", "Z1", wanted, held, foreign={"cname.z.": frozenset({"TXT"})})
    assert result.add == {("a.z.", "A"): (30, ("192.0.2.1",))}
    assert result.remove == {("cname.z.", "A"): (30, ("192.0.2.3",))}  # fodns's own, stale
    assert not result.change
    assert result.skipped == {
        ("big.z.", "A"): (big, "an UPSERT of it is 1002 records, Route53 takes 1000 per request")
    }
    assert result.conflicts == {("cname.z.", "CNAME"): ("TXT",)}
    assert result.after() == {
        ("a.z.", "A"): (30, ("192.0.2.1",)),
        ("big.z.", "A"): held[("big.z.", "A")],
    }


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (("192.0.2.1",) * 500, None),  # 1,000 as an UPSERT: the limit, fits
        (("192.0.2.1",) * 501, "an UPSERT of it is 1002 records, Route53 takes 1000 per request"),
        (("x" * 3999 + ".",), None),
        (("x" * 4000 + ".",), "a value is 4001 characters, Route53 takes 4000"),
        (
            tuple("x" * 3000 + f"{i}." for i in range(6)),
            "an UPSERT of it is 36024 characters, Route53 takes 32000 per request",
        ),
    ],
)
def test_what_can_never_fit_in_a_request(values: tuple[str, ...], reason: str | None) -> None:
    assert unfit_reason((30, values)) == reason


@pytest.mark.parametrize(
    ("rrset", "expected"),
    [
        (
            {
                "Name": "\\052.fo.example.net.",
                "Type": "A",
                "TTL": 60,
                "ResourceRecords": [{"Value": "192.0.2.1"}],
            },
            Listed("*.fo.example.net.", "A", (60, ("192.0.2.1",))),
        ),
        # Not octal, or cut short: kept as it is, never a crash.
        (
            {
                "Name": "a\\089b.FO.example.net",
                "Type": "TXT",
                "TTL": 60,
                "ResourceRecords": [{"Value": '"x"'}],
            },
            Listed("a\\089b.fo.example.net.", "TXT", (60, ('"x"',))),
        ),
        (
            {"Name": "tail\\", "Type": "A", "AliasTarget": {"DNSName": "x."}},
            Listed("tail\\.", "A", None),
        ),
        (
            {
                "Name": "w.fo.example.net.",
                "Type": "A",
                "SetIdentifier": "eu",
                "TTL": 60,
                "ResourceRecords": [{"Value": "192.0.2.1"}],
            },
            Listed("w.fo.example.net.", "A", None),
        ),
    ],
)
def test_listed_record_sets_are_read_whatever_their_names(
    rrset: dict[str, object], expected: Listed
) -> None:
    assert listed_record_set(rrset) == expected


def test_request_timeout_is_configurable(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        [("fo.example.net", EXAMPLE_ZONE)],
        zone_extra='route53_hosted_zone_id = "Z123"\n',
        extra="[route53]\nenabled = true\nrequest_timeout = 5\n",
    )
    assert load_config(config).route53.request_timeout == 5
    too_long = write_config(
        tmp_path,
        [("fo.example.net", EXAMPLE_ZONE)],
        zone_extra='route53_hosted_zone_id = "Z123"\n',
        extra="[route53]\nenabled = true\nrequest_timeout = 0\n",
    )
    with pytest.raises(ConfigError, match=re.escape("route53.request_timeout")):
        load_config(too_long)


def test_the_route53_call_timeout_is_configurable_and_bounded(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        [("fo.example.net", EXAMPLE_ZONE)],
        zone_extra='route53_hosted_zone_id = "Z123"\n',
        extra="[route53]\nenabled = true\ncall_timeout = 7\n",
    )
    loaded = load_config(config).route53
    assert loaded.call_timeout == 7
    assert make_client(loaded).meta.config.read_timeout == 7  # boto3 is told, not only us
    assert make_client(Route53Config(enabled=True)).meta.config.read_timeout == 30
    for bad in (0, 301):
        wrong = write_config(
            tmp_path,
            [("fo.example.net", EXAMPLE_ZONE)],
            zone_extra='route53_hosted_zone_id = "Z123"\n',
            extra=f"[route53]\nenabled = true\ncall_timeout = {bad}\n",
        )
        with pytest.raises(ConfigError, match=re.escape("route53.call_timeout")):
            load_config(wrong)
