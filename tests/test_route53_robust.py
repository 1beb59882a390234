"""The Route53 mirror never dies and never stalls: a request that times out, a record
set Route53 can never take, and a hosted zone that keeps failing each leave the rest
mirrored (a real fodns, boto3 and moto_server behind the recording proxy)."""

from __future__ import annotations

import json
import sqlite3

from fodns.route53 import BACKOFF_MAX
from tests.route53_rig import MIRROR_WAIT, OTHER_ZONE, ZONE, Rig, add_apps
from tests.support import wait_for


def test_a_plan_that_times_out_leaves_the_mirror_mirroring(rig: Rig) -> None:
    rig.start_fodns(route53_extra="request_timeout = 1\n")
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    rig.proxy.set_delay(2.0, action="ListResourceRecordSets")  # a slow Route53
    status, body = rig.call("GET", "/v1/route53/plan")
    assert status == 504 and body["error"]["code"] == "route53_timeout", body
    rig.proxy.set_delay(0.0)
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "CNAME"): (30, {"lb.us.example.com."})}
    assert rig.health()["thread_alive"] is True


def test_a_record_set_too_big_for_route53_is_skipped_and_the_rest_mirrored(rig: Rig) -> None:
    running = rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/apps", {"name": "big", "web_servers": ["198.18.0.1"]})
    rig.api("POST", "/v1/groups", {"label": "huge", "primary": "big"})
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    running.stop()
    # A database from before the API capped web heads: 1,000 addresses, an UPSERT of
    # 2,000 records where Route53 takes 1,000 per request.
    addresses = [f"198.18.{i // 256}.{i % 256}" for i in range(1000)]
    with sqlite3.connect(rig.directory / "fodns.db") as db:
        db.execute("UPDATE apps SET web_servers = ? WHERE name = 'big'", [json.dumps(addresses)])
    rig.start_fodns()
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    rig.api("POST", "/v1/groups", {"label": "cart", "primary": "eu"})
    huge = ("huge.fo.example.net.", "A")
    untouched = {huge: (30, frozenset({"198.18.0.1"}))}  # what fodns last wrote, left as it is
    assert rig.mirrored(extra=untouched)
    zone = rig.health()["zones"][ZONE]
    assert zone["skipped_record_sets"] == [
        {
            "name": "huge.fo.example.net.",
            "type": "A",
            "values": 1000,
            "reason": "an UPSERT of it is 2000 records, Route53 takes 1000 per request",
        }
    ]
    assert 'fodns_route53_skipped_record_sets{zone="fo.example.net"} 1.0' in rig.metrics()
    rig.client("route53", "sync")  # compared again: still skipped, not logged again
    assert rig.fodns is not None
    assert len(rig.fodns.log_events("route53_record_set_skipped")) == 1
    assert rig.health()["errors"] == {}
    report = json.loads(rig.fodns.http_get("/healthz")[1])
    assert any("too big for Route53" in line for line in report["degraded"]), report


def test_a_failing_hosted_zone_never_stalls_another(rig: Rig) -> None:
    other_id = rig.moto.create_zone(OTHER_ZONE)
    # The failing zone comes first, so that it is tried first on every round.
    rig.zone_ids = {OTHER_ZONE: other_id, ZONE: rig.zone_id}
    rig.proxy.fail_path(other_id)
    rig.start_fodns()
    add_apps(rig)
    shop = {"zone": ZONE, "label": "shop", "primary": "eu", "backup": "us"}
    rig.api("POST", "/v1/groups", shop)
    rig.api("POST", "/v1/groups", {"zone": OTHER_ZONE, "label": "cart", "primary": "eu"})
    assert rig.mirrored()
    assert wait_for(
        lambda: rig.health()["zones"][OTHER_ZONE]["consecutive_failures"] >= 3, MIRROR_WAIT
    )
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})  # while the other backs off
    assert rig.mirrored()
    health = rig.health()
    assert health["zones"][ZONE]["consecutive_failures"] == 0
    failing = health["zones"][OTHER_ZONE]
    assert failing["last_error"]["kind"] == "ServiceUnavailable"
    assert failing["errors"] >= 3 and failing["pending_events"] >= 0
    assert f'fodns_route53_zone_errors_total{{zone="{OTHER_ZONE}"}}' in rig.metrics()
    rig.proxy.fail_path(other_id, None)
    # After its backoff (up to BACKOFF_MAX by now), a full sync.
    assert rig.mirrored(zone=OTHER_ZONE, timeout=BACKOFF_MAX + MIRROR_WAIT)
    assert wait_for(
        lambda: rig.health()["zones"][OTHER_ZONE]["consecutive_failures"] == 0, MIRROR_WAIT
    )


def test_a_record_set_route53_refuses_is_skipped_and_the_rest_mirrored(rig: Rig) -> None:
    # A value fodns serves but Route53 will not take (here: refused by the emulator).
    rig.proxy.refuse_values("odd.example.com")
    rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/apps", {"name": "odd", "load_balancer": ["odd.example.com"]})
    for index in range(6):
        rig.api("POST", "/v1/groups", {"label": f"g{index}", "primary": "eu", "backup": "us"})
    rig.api("POST", "/v1/groups", {"label": "odd", "primary": "odd"})
    # The refusal brings a full sync, which halves the batch until the change at fault
    # stands alone; a sync on demand does the same.
    rig.client("route53", "sync")
    odd = ("odd.fo.example.net.", "CNAME")
    assert rig.owned() == {key: value for key, value in rig.expected().items() if key != odd}
    skipped = rig.health()["zones"][ZONE]["skipped_record_sets"]
    assert [(s["name"], s["type"]) for s in skipped] == [odd]
    assert "Route53 refused it: InvalidChangeBatch" in skipped[0]["reason"]
    # Later changes go on being mirrored.
    rig.api("POST", "/v1/groups/g3/switch", {"to": "backup"})
    assert wait_for(
        lambda: (
            rig.owned().get(("g3.fo.example.net.", "CNAME"))
            == (30, frozenset({"lb.us.example.com."}))
        ),
        MIRROR_WAIT,
    )
    # Once Route53 takes it, the next comparison sends it.
    rig.proxy.refuse_values("odd.example.com", refuse=False)
    rig.client("route53", "sync")
    assert rig.mirrored()
    assert rig.health()["zones"][ZONE]["skipped_record_sets"] == []
