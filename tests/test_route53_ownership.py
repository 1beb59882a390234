"""What the Route53 mirror owns: the record sets fodns wrote itself, nothing else. An
operator's records are never overwritten or deleted, and their labels are refused to
new groups; fodns's own records are corrected when they drift (end to end, with a real
fodns, boto3 and moto_server behind the recording proxy)."""

from __future__ import annotations

import json

from fodns.route53 import BACKOFF_MAX
from tests.route53_rig import MIRROR_WAIT, ZONE, Rig, add_apps
from tests.support import wait_for


def full_synced(rig: Rig) -> bool:
    return wait_for(lambda: rig.health()["zones"][ZONE]["full_syncs"] >= 1, MIRROR_WAIT)


def test_a_label_an_operator_record_holds_is_refused_to_new_groups(rig: Rig) -> None:
    rig.manual_record("shop.fo.example.net.", "A", "203.0.113.1")
    rig.manual_record("fo.example.net.", "TXT", '"apex records hold no label"')
    rig.start_fodns()
    assert full_synced(rig)
    status, body = rig.call("POST", "/v1/groups", {"label": "shop"})
    assert status == 409 and body["error"]["field"] == "label", body
    assert "route53 hosted zone" in body["error"]["message"]
    rig.api("POST", "/v1/groups", {"label": "cart"})
    assert rig.moto.records(rig.zone_id)[("shop.fo.example.net.", "A")] == (
        300,
        frozenset({"203.0.113.1"}),
    )
    # Once the operator's record is gone, the next comparison frees the label.
    rig.manual_record("shop.fo.example.net.", "A", "203.0.113.1", action="DELETE")
    rig.client("route53", "sync")
    rig.api("POST", "/v1/groups", {"label": "shop"})


def test_an_operator_record_at_a_groups_name_is_never_touched(rig: Rig) -> None:
    rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    # Someone adds records of their own at the group's name: a TXT, and an AAAA (a
    # type fodns serves, but fodns did not write this one).
    txt = ("shop.fo.example.net.", "TXT")
    aaaa = ("shop.fo.example.net.", "AAAA")
    rig.manual_record(*txt, '"verification=abc"')
    rig.manual_record(*aaaa, "2001:db8::99")
    theirs = {
        txt: (300, frozenset({'"verification=abc"'})),
        aaaa: (300, frozenset({"2001:db8::99"})),
    }
    # To the hostname side: a CNAME cannot share its name with their records.
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    # fodns's own A, stale now, goes; the CNAME cannot be written.
    assert wait_for(lambda: ("shop.fo.example.net.", "A") not in rig.owned(), MIRROR_WAIT)
    everything = rig.moto.records(rig.zone_id)
    assert {key: everything.get(key) for key in theirs} == theirs
    assert ("shop.fo.example.net.", "CNAME") not in everything
    assert rig.health()["zones"][ZONE]["conflicts"] == [
        {"name": "shop.fo.example.net.", "type": "CNAME", "held_by": ["AAAA", "TXT"]}
    ]
    assert 'fodns_route53_conflicts{zone="fo.example.net"} 1.0' in rig.metrics()
    result = rig.client("route53", "sync")
    assert "! shop.fo.example.net. CNAME" in result, result
    everything = rig.moto.records(rig.zone_id)
    assert {key: everything.get(key) for key in theirs} == theirs
    # Back to the addresses: fodns's A goes in beside their records; no conflict left.
    rig.api("POST", "/v1/groups/shop/switch", {"to": "primary"})
    assert rig.mirrored(extra={aaaa: (300, frozenset({"2001:db8::99"}))})
    assert rig.moto.records(rig.zone_id)[txt] == theirs[txt]
    assert wait_for(lambda: rig.health()["zones"][ZONE]["conflicts"] == [], MIRROR_WAIT)
    assert rig.fodns is not None
    assert rig.fodns.log_events("route53_conflict")


def test_a_record_set_fodns_wrote_is_corrected_when_it_drifts(rig: Rig) -> None:
    rig.start_fodns(full_sync_interval=2)
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    rig.manual_record("shop.fo.example.net.", "A", "192.0.2.99")  # someone edits fodns's own
    assert rig.mirrored()
    assert rig.health()["zones"][ZONE]["conflicts"] == []


def test_a_value_fodns_wrote_earlier_is_still_fodns_s(rig: Rig) -> None:
    rig.start_fodns(full_sync_interval=2)
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert rig.mirrored()
    rig.api("POST", "/v1/groups/shop/switch", {"to": "primary"})
    assert rig.mirrored()
    # Route53 comes back from a loss with an old record set of fodns's: the CNAME it
    # wrote before the switch back. It is fodns's, so it is replaced, not a conflict.
    with rig.route53_comes_back():
        rig.manual_record("shop.fo.example.net.", "CNAME", "lb.us.example.com.", ttl=30)
    assert rig.mirrored()
    assert rig.health()["zones"][ZONE]["conflicts"] == []


def test_a_batch_route53_took_but_never_confirmed_is_still_fodns_s(rig: Rig) -> None:
    rig.start_fodns()
    add_apps(rig)
    # Route53 applies the batch, but fodns never hears that it is INSYNC (as when fodns
    # is stopped between the two): the record set is in Route53 but not remembered.
    rig.proxy.fail_path("/change/")
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert wait_for(lambda: ("shop.fo.example.net.", "A") in rig.owned(), MIRROR_WAIT)
    assert wait_for(lambda: rig.health()["errors"].get("ServiceUnavailable", 0) > 0, MIRROR_WAIT)
    rig.proxy.fail_path("/change/", None)
    assert wait_for(
        lambda: rig.health()["zones"][ZONE]["consecutive_failures"] == 0, BACKOFF_MAX + MIRROR_WAIT
    )
    assert rig.health()["zones"][ZONE]["conflicts"] == []
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert rig.mirrored()
    assert json.loads(rig.client("route53", "plan", "--json"))[0]["conflicts"] == []
