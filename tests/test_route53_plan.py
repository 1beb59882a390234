"""The Route53 mirror's pure parts: record sets of a group, differences, batching
within Route53's limits, and the config section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fodns.config import load_config
from fodns.errors import ConfigError
from fodns.model import App, Group
from fodns.route53 import BATCH_MAX_CHARACTERS, BATCH_MAX_RECORDS, batches, diff, group_records
from tests.conftest import EXAMPLE_ZONE, write_config

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
