"""The Route53 mirror end to end: a real fodns, a real boto3 inside it, a real
moto_server on loopback behind a recording proxy that can also fake outages."""

from __future__ import annotations

import json
import threading

from tests.route53_emulator import restart_route53_empty
from tests.route53_rig import MIRROR_WAIT, ZONE, Rig, add_apps
from tests.support import wait_for

SHOP = "shop.fo.example.net."


def test_create_switch_web_head_change_and_delete_are_mirrored(rig: Rig, workers: int) -> None:
    # The mirror runs in the API process; with two workers, DNS is theirs: every one of
    # them must answer what Route53 comes to hold.
    rig.start_fodns(workers=workers)
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    assert rig.owned()[("shop.fo.example.net.", "A")] == (30, {"192.0.2.10", "192.0.2.11"})
    assert rig.served(SHOP, "A") == rig.owned()
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "CNAME"): (30, {"lb.us.example.com."})}
    assert rig.served(SHOP, "A") == rig.owned()
    rig.api("PATCH", "/v1/apps/us", {"load_balancer": [], "web_servers": ["2001:db8::5"]})
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "AAAA"): (30, {"2001:db8::5"})}
    rig.api("PATCH", "/v1/groups/shop", {"ttl": 60})
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "AAAA"): (60, {"2001:db8::5"})}
    assert rig.served(SHOP, "AAAA") == rig.owned()
    rig.api("PATCH", "/v1/groups/shop", {"primary": None, "backup": None})
    rig.api("DELETE", "/v1/groups/shop")
    assert rig.mirrored()
    assert rig.owned() == {}
    assert rig.served(SHOP, "A") == {}
    # Once the last batch is INSYNC, nothing is pending and nothing failed.
    assert wait_for(lambda: rig.health()["zones"][ZONE]["pending_events"] == 0, MIRROR_WAIT)
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
    # INSYNC and stored: the proxy has logged the batch (moto had it a moment before).
    assert rig.fodns is not None
    assert wait_for(lambda: rig.fodns is not None and rig.fodns.log_events("route53_mirrored"))
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
    # Nor does the mirror's own following fix it: a later change is mirrored (so the
    # mirror has been round since the plans), and it is the only batch sent.
    rig.api("POST", "/v1/groups", {"label": "cart", "primary": "eu"})
    cart = ("cart.fo.example.net.", "A")
    assert wait_for(lambda: cart in rig.owned(), MIRROR_WAIT)
    assert {k: v for k, v in rig.moto.records(rig.zone_id).items() if k != cart} == before
    assert [[change.name for change in batch] for batch in rig.proxy.change_batches()][
        batches_before:
    ] == [["cart.fo.example.net."]]


def test_an_outage_loses_nothing_and_ends_equal(rig: Rig, workers: int) -> None:
    rig.start_fodns(workers=workers)
    add_apps(rig)
    for label in ("a", "b", "c"):
        rig.api("POST", "/v1/groups", {"label": label, "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    # Route53 unreachable: switches go on in fodns and wait.
    rig.proxy.set_down(True)
    rig.api("POST", "/v1/groups/a/switch", {"to": "backup"})
    rig.api("POST", "/v1/groups/b/switch", {"to": "backup"})
    assert rig.fodns is not None
    assert wait_for(lambda: rig.health()["errors"].get("ServiceUnavailable", 0) > 0, MIRROR_WAIT)
    assert rig.health()["zones"][ZONE]["pending_events"] > 0
    metrics = rig.fodns.http_get("/metrics")[1]
    assert 'fodns_route53_errors_total{kind="ServiceUnavailable"}' in metrics
    # DNS has the switches meanwhile, from every worker.
    assert rig.served("a.fo.example.net.", "A") == {
        ("a.fo.example.net.", "CNAME"): (30, frozenset({"lb.us.example.com."}))
    }
    # Back, but empty: Route53 lost every record (same hosted zone id).
    restart_route53_empty(rig.moto, rig.proxy, [ZONE])
    rig.proxy.set_down(False)
    assert rig.mirrored()  # the backoff's wait, then a full sync
    assert wait_for(lambda: rig.health()["zones"][ZONE]["pending_events"] == 0, MIRROR_WAIT)


def test_route53_coming_back_with_stale_data_is_corrected(rig: Rig) -> None:
    rig.start_fodns(full_sync_interval=2)  # no change meanwhile: the periodic comparison finds it
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    # Route53 holding the record is not enough: fodns must have seen the batch INSYNC
    # (and so know the record set is its own) before Route53 loses everything.
    assert rig.fodns is not None
    assert wait_for(
        lambda: rig.fodns is not None and rig.fodns.log_events("route53_mirrored"), MIRROR_WAIT
    )
    with rig.route53_comes_back():
        # A stale value in fodns's own record set (a CNAME fodns never wrote there would
        # be someone else's, and left alone: see test_route53_ownership). Written before
        # fodns can list the hosted zone again: had it listed the empty zone first and
        # sent its CREATE after this write, Route53 would rightly refuse the CREATE, and
        # the record set would be someone else's from then on.
        rig.manual_record("shop.fo.example.net.", "A", "192.0.2.50")
        rig.manual_record("other.fo.example.net.", "A", "203.0.113.7")  # not fodns's
    assert rig.mirrored(extra={("other.fo.example.net.", "A"): (300, frozenset({"203.0.113.7"}))})


def test_changes_made_while_fodns_was_killed_are_replayed(rig: Rig) -> None:
    rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    rig.proxy.set_down(True)
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})  # acknowledged, not mirrored
    rig.kill_fodns()
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
    assert rig.mirrored()
    batches = rig.proxy.change_batches(successful_only=True)
    print(f"2,000 switches mirrored in {len(batches)} change batches")
    assert len(batches) <= 200, len(batches)  # one per switch would be 2,000
    assert rig.proxy.max_changes_in_flight() == 1
