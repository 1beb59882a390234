"""The Route53 mirror end to end: a real fodns, a real boto3 inside it, a real
moto_server on loopback behind a recording proxy that can also fake outages."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.route53_emulator import restart_route53_empty
from tests.route53_rig import ZONE, Rig, add_apps, route53_rig
from tests.support import wait_for


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with route53_rig(tmp_path) as running:
        yield running


def test_create_switch_web_head_change_and_delete_are_mirrored(rig: Rig) -> None:
    rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    assert rig.owned()[("shop.fo.example.net.", "A")] == (30, {"192.0.2.10", "192.0.2.11"})
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "CNAME"): (30, {"lb.us.example.com."})}
    rig.api("PATCH", "/v1/apps/us", {"load_balancer": [], "web_servers": ["2001:db8::5"]})
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "AAAA"): (30, {"2001:db8::5"})}
    rig.api("PATCH", "/v1/groups/shop", {"ttl": 60})
    assert rig.mirrored()
    rig.api("PATCH", "/v1/groups/shop", {"primary": None, "backup": None})
    rig.api("DELETE", "/v1/groups/shop")
    assert rig.mirrored()
    assert rig.owned() == {}
    # Once the last batch is INSYNC, nothing is pending and nothing failed.
    assert wait_for(lambda: rig.health()["zones"][ZONE]["pending_events"] == 0, 5)
    assert rig.health()["errors"] == {}


def test_a_sync_touches_only_what_fodns_wrote(rig: Rig) -> None:
    # Ownership is what fodns wrote, not the names it uses (see test_route53_ownership).
    rig.manual_record("manual.fo.example.net.", "A", "203.0.113.1")  # someone else's
    rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    for label in ("gone", "spare"):
        rig.api("POST", "/v1/groups", {"label": label, "primary": "eu"})
    manual = {("manual.fo.example.net.", "A"): (300, frozenset({"203.0.113.1"}))}
    assert rig.mirrored(extra=manual)
    for label in ("gone", "spare"):
        rig.api("PATCH", f"/v1/groups/{label}", {"primary": None})
        rig.api("DELETE", f"/v1/groups/{label}")
    assert rig.mirrored(extra=manual)
    # Records appear behind fodns's back: at a live group's name someone's TXT, and an
    # edit of fodns's own A; at deleted groups' names fodns's old record set (back from a
    # restore, say) and someone's own A.
    rig.manual_record("shop.fo.example.net.", "TXT", '"verification=abc"')
    rig.manual_record("shop.fo.example.net.", "A", "192.0.2.99")
    rig.manual_record("gone.fo.example.net.", "A", ["192.0.2.10", "192.0.2.11"], ttl=30)
    rig.manual_record("spare.fo.example.net.", "A", "203.0.113.2")
    result = rig.client("route53", "sync")
    assert "~ shop.fo.example.net." in result and "- gone.fo.example.net." in result, result
    assert "spare" not in result, result
    spare = {("spare.fo.example.net.", "A"): (300, frozenset({"203.0.113.2"}))}
    assert rig.mirrored(extra={**manual, **spare})
    everything = rig.moto.records(rig.zone_id)
    assert everything[("shop.fo.example.net.", "TXT")] == (300, {'"verification=abc"'})
    assert ("fo.example.net.", "SOA") in everything and ("fo.example.net.", "NS") in everything


def test_plan_shows_a_readable_diff_and_changes_nothing(rig: Rig) -> None:
    rig.start_fodns(full_sync_interval=0)
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    rig.manual_record("shop.fo.example.net.", "A", "192.0.2.99")
    before = rig.moto.records(rig.zone_id)
    batches_before = len(rig.proxy.change_batches())
    plan = rig.client("route53", "plan")
    assert plan.splitlines() == [
        f"zone {ZONE} (hosted zone {rig.zone_id}):",
        "  ~ shop.fo.example.net. 300 A 192.0.2.99",
        "    -> shop.fo.example.net. 30 A 192.0.2.10 192.0.2.11",
        "  0 to add, 1 to change, 0 to remove (to apply); 0 record sets already equal",
    ]
    as_json = json.loads(rig.client("route53", "plan", "--json"))
    assert as_json[0]["change"][0]["after"]["values"] == ["192.0.2.10", "192.0.2.11"]
    time.sleep(0.5)  # the mirror's own polling must not fix it either: nothing changed
    assert rig.moto.records(rig.zone_id) == before
    assert len(rig.proxy.change_batches()) == batches_before


def test_an_outage_loses_nothing_and_ends_equal(rig: Rig) -> None:
    rig.start_fodns()
    add_apps(rig)
    for label in ("a", "b", "c"):
        rig.api("POST", "/v1/groups", {"label": label, "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    # Route53 unreachable: switches go on in fodns and wait.
    rig.proxy.set_down(True)
    rig.api("POST", "/v1/groups/a/switch", {"to": "backup"})
    rig.api("POST", "/v1/groups/b/switch", {"to": "backup"})
    assert rig.fodns is not None
    assert wait_for(lambda: rig.health()["errors"].get("ServiceUnavailable", 0) > 0, 5)
    assert rig.health()["zones"][ZONE]["pending_events"] > 0
    metrics = rig.fodns.http_get("/metrics")[1]
    assert 'fodns_route53_errors_total{kind="ServiceUnavailable"}' in metrics
    # Back, but empty: Route53 lost every record (same hosted zone id).
    restart_route53_empty(rig.moto, rig.proxy, [ZONE])
    rig.proxy.set_down(False)
    assert rig.mirrored(timeout=30)  # the backoff's wait, then a full sync
    assert wait_for(lambda: rig.health()["zones"][ZONE]["pending_events"] == 0, 5)


def test_route53_coming_back_with_stale_data_is_corrected(rig: Rig) -> None:
    rig.start_fodns(full_sync_interval=2)  # no change meanwhile: the periodic comparison finds it
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    # Route53 holding the record is not enough: fodns must have seen the batch INSYNC
    # (and so know the record set is its own) before Route53 loses everything.
    assert rig.fodns is not None
    assert wait_for(lambda: rig.fodns is not None and rig.fodns.log_events("route53_mirrored"))
    zone_ids = restart_route53_empty(rig.moto, rig.proxy, [ZONE])
    assert zone_ids[ZONE] == rig.zone_id
    # A stale value in fodns's own record set (a CNAME fodns never wrote there would be
    # someone else's, and left alone: see test_route53_ownership).
    rig.manual_record("shop.fo.example.net.", "A", "192.0.2.50")
    rig.manual_record("other.fo.example.net.", "A", "203.0.113.7")  # not fodns's
    assert rig.mirrored(
        timeout=15, extra={("other.fo.example.net.", "A"): (300, frozenset({"203.0.113.7"}))}
    )


def test_changes_made_while_fodns_was_killed_are_replayed(rig: Rig) -> None:
    running = rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    rig.proxy.set_down(True)
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})  # acknowledged, not mirrored
    running.process.kill()
    running.process.wait()
    rig.proxy.set_down(False)
    rig.start_fodns()
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "CNAME"): (30, {"lb.us.example.com."})}


def test_a_burst_of_2000_switches_is_few_batches_never_two_in_flight(rig: Rig) -> None:
    rig.start_fodns()
    add_apps(rig)
    labels = [f"g{i}" for i in range(20)]
    for label in labels:
        rig.api("POST", "/v1/groups", {"label": label, "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    rig.proxy.clear()

    def switch_many(label: str) -> None:
        for count in range(100):
            rig.api(
                "POST",
                f"/v1/groups/{label}/switch",
                {"to": "backup" if count % 2 == 0 else "primary"},
            )

    threads = [threading.Thread(target=switch_many, args=(label,)) for label in labels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert rig.mirrored(timeout=10)
    batches = rig.proxy.change_batches(successful_only=True)
    print(f"2,000 switches mirrored in {len(batches)} change batches")
    assert len(batches) <= 200, len(batches)  # one per switch would be 2,000
    assert rig.proxy.max_changes_in_flight() == 1
