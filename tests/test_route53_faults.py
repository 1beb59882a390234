"""Route53 failing the ways it does, injected by the recording proxy between a real fodns
and moto_server: a throttled call is retried after an exponential backoff, a batch
Route53 refuses as invalid brings a full sync that sets the hosted zone right, and a
slow Route53 (answering within fodns's call timeout or not at all in time) holds up
neither DNS nor the API. Each ends with Route53 holding exactly fodns's answers. A zone
that keeps failing is said in the log once, and once more when it recovers."""

from __future__ import annotations

import pytest

from fodns.route53 import BACKOFF_FIRST, BACKOFF_MAX, FAILING_AFTER
from tests.route53_emulator import ParsedChange, ProxiedCall
from tests.route53_rig import MIRROR_WAIT, ZONE, Records, Rig, add_apps
from tests.support import Receiver, wait_for

SHOP = "shop.fo.example.net."
CART = "cart.fo.example.net."
EU_A = (30, frozenset({"192.0.2.10", "192.0.2.11"}))
SWITCHED: Records = {(SHOP, "CNAME"): (30, frozenset({"lb.us.example.com."}))}
# Seconds a Route53 call is held while the test looks at DNS and the API: far longer
# than that takes, so the call is still unanswered when the test checks it is.
HELD = 120.0
# A slow answer that is still well inside fodns's call timeout (read from fodns below).
SLOW = 5.0
# fodns's Route53 call timeout in the test of a Route53 that never answers in time.
SHORT_CALL_TIMEOUT = 3
# retry_in is logged rounded to 0.01 s.
ROUNDING = 0.01


def start_with_shop(rig: Rig, workers: int = 1, route53_extra: str = "") -> None:
    """fodns mirroring one group, `shop`, on eu's addresses; the proxy's log emptied."""
    rig.start_fodns(workers=workers, route53_extra=route53_extra)
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    # Mirrored means remembered too: the batch is INSYNC and stored, so what follows
    # starts from fodns knowing the record set is its own.
    assert rig.fodns is not None
    assert wait_for(lambda: rig.fodns is not None and rig.fodns.log_events("route53_mirrored"))
    assert rig.health()["errors"] == {}
    rig.proxy.clear()


def settled_after(rig: Rig, code: str, count: int) -> bool:
    """Whether the mirror has met `count` errors `code` and succeeded since the last."""
    health = rig.health()
    zone = health["zones"][ZONE]
    return bool(health["errors"].get(code) == count and zone["consecutive_failures"] == 0)


def next_call(calls: list[ProxiedCall], after: ProxiedCall) -> ProxiedCall:
    """The first call that reached the proxy after `after` was answered."""
    return next(call for call in calls if call.started > after.finished)


@pytest.mark.parametrize(
    ("code", "action", "count"),
    [
        # Three in a row: the third wait (1 to 2 s) cannot be met without the doubling.
        ("Throttling", "ChangeResourceRecordSets", 3),
        ("PriorRequestNotComplete", "ChangeResourceRecordSets", 3),
        ("Throttling", "GetChange", 1),  # the batch was taken: it must not go out again
    ],
)
def test_a_throttled_call_is_retried_after_a_backoff_and_ends_right(
    rig: Rig, code: str, action: str, count: int
) -> None:
    start_with_shop(rig)
    rig.proxy.set_throttle(count, code=code, action=action)
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    # Route53 may hold the switch before fodns hears it is INSYNC: done means every
    # refusal seen and a success after the last.
    assert wait_for(lambda: settled_after(rig, code, count), count * BACKOFF_MAX + MIRROR_WAIT)
    assert rig.mirrored()
    assert rig.owned() == SWITCHED

    calls = rig.proxy.calls()
    throttled = [call for call in calls if code.encode() in call.response_body]
    assert [call.action for call in throttled] == [action] * count
    # Each one counted by kind and for the zone, and logged with the wait before the retry.
    health = rig.health()
    assert health["errors"] == {code: count}
    assert health["zones"][ZONE]["errors"] == count
    assert health["zones"][ZONE]["last_error"]["kind"] == code
    metrics = rig.metrics()
    assert f'fodns_route53_errors_total{{kind="{code}"}} {count}.0' in metrics
    assert f'fodns_route53_zone_errors_total{{zone="{ZONE}"}} {count}.0' in metrics
    assert f'fodns_route53_consecutive_failures{{zone="{ZONE}"}} 0.0' in metrics
    assert rig.fodns is not None
    failed = rig.fodns.log_events("route53_failed")
    assert [(e["zone"], e["kind"]) for e in failed] == [(ZONE, code)] * count
    # Exponential backoff with full jitter: the n-th failure in a row waits between half
    # of and all of BACKOFF_FIRST * 2**(n - 1) ...
    waits = [float(e["retry_in"]) for e in failed]  # type: ignore[arg-type]
    for failures_before, wait in enumerate(waits):
        ceiling = BACKOFF_FIRST * 2**failures_before
        assert ceiling / 2 - ROUNDING <= wait <= ceiling + ROUNDING, (waits, failures_before)
    # ... and fodns keeps to it: its next call comes no sooner (both times are this
    # machine's monotonic clock; the wait starts after fodns read the refusal).
    for refused, wait in zip(throttled, waits, strict=True):
        assert next_call(calls, refused).started - refused.finished >= wait - ROUNDING
    # The switch went out once, in the batch Route53 took: nothing sent twice.
    assert [
        [(change.action, change.type) for change in batch]
        for batch in rig.proxy.change_batches(successful_only=True)
    ] == [[("DELETE", "A"), ("CREATE", "CNAME")]]


def test_a_batch_refused_as_invalid_brings_a_full_sync_that_sets_it_right(rig: Rig) -> None:
    start_with_shop(rig)
    # Someone edits fodns's own record set behind its back. fodns does not know (its
    # next full sync is an hour away), so the switch's batch deletes the addresses it
    # wrote, which are no longer there: Route53 refuses the whole batch as invalid.
    rig.manual_record(SHOP, "A", "192.0.2.99", ttl=30)
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert rig.mirrored()
    assert rig.owned() == SWITCHED

    calls = rig.proxy.calls()
    refused = [call for call in calls if call.status != 200]
    assert [call.action for call in refused] == ["ChangeResourceRecordSets"]
    assert b"InvalidChangeBatch" in refused[0].response_body
    # fodns's idea of Route53 was wrong, so its next attempt lists the hosted zone and
    # compares all of it: the edited record set is still fodns's, deleted as it is now.
    after = [call.action for call in calls if call.started > refused[0].finished]
    assert after[:2] == ["ListResourceRecordSets", "ChangeResourceRecordSets"], after
    assert rig.proxy.change_batches(successful_only=True)[-1][0] == ParsedChange(
        "DELETE", SHOP, "A", 30, ["192.0.2.99"]
    )
    assert rig.fodns is not None
    assert [e["kind"] for e in rig.fodns.log_events("route53_failed")] == ["InvalidChangeBatch"]
    full_sync = rig.fodns.log_events("route53_full_sync")[-1]  # the first was at start
    assert (full_sync["add"], full_sync["remove"], full_sync["change"]) == (1, 1, 0)
    assert wait_for(lambda: settled_after(rig, "InvalidChangeBatch", 1), MIRROR_WAIT)
    zone = rig.health()["zones"][ZONE]
    assert zone["full_syncs"] == 2
    assert zone["skipped_record_sets"] == [] and zone["conflicts"] == []
    assert rig.health()["errors"] == {"InvalidChangeBatch": 1}
    assert 'fodns_route53_errors_total{kind="InvalidChangeBatch"} 1.0' in rig.metrics()


def test_a_slow_route53_holds_up_neither_dns_nor_the_api(rig: Rig, workers: int) -> None:
    start_with_shop(rig, workers)
    rig.proxy.set_delay(HELD, action="ChangeResourceRecordSets")
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert wait_for(lambda: rig.proxy.delayed_now() == 1, MIRROR_WAIT)
    # Route53 has not answered the switch's batch: DNS (every worker) answers the switch
    # already, and the API reads and writes, its writes served by DNS (200/201, not 202).
    assert rig.served(SHOP, "A") == SWITCHED
    rig.api("POST", "/v1/groups", {"label": "cart", "primary": "eu"})
    assert rig.served(CART, "A") == {(CART, "A"): EU_A}
    assert rig.api("GET", "/v1/groups/shop")["active"] == "backup"
    assert rig.health()["zones"][ZONE]["pending_events"] >= 0  # /healthz answers too
    assert rig.proxy.delayed_now() == 1, "Route53 answered before the checks were done"
    rig.proxy.set_delay(0.0)
    assert rig.mirrored()
    # An answer that takes a while but comes within fodns's call timeout is a success.
    rig.proxy.clear()
    rig.proxy.set_delay(SLOW, action="ChangeResourceRecordSets")
    rig.api("POST", "/v1/groups/shop/switch", {"to": "primary"})
    assert rig.mirrored()

    # (The cart's batch may be logged by the proxy only now: moto had it already. So
    # may the slow one: the proxy logs a call once its answer is back with fodns.)
    def shop_changes() -> list[ProxiedCall]:
        changes = rig.proxy.calls("ChangeResourceRecordSets")
        return [call for call in changes if SHOP.encode() in call.request_body]

    assert wait_for(shop_changes, MIRROR_WAIT)
    (slow,) = shop_changes()
    assert slow.status == 200 and slow.finished - slow.started >= SLOW
    assert rig.health()["errors"] == {}
    assert rig.owned()[(SHOP, "A")] == EU_A


def test_a_route53_slower_than_fodns_waits_is_a_failure_and_nothing_is_sent_twice(
    rig: Rig,
) -> None:
    # A short call timeout ([route53] call_timeout) keeps the test short; the path is
    # the same at the default 30 s.
    timeout = SHORT_CALL_TIMEOUT
    start_with_shop(rig, route53_extra=f"call_timeout = {timeout}\n")
    # Route53 makes the change at once but never answers in time (as when its answer is
    # lost): fodns gives up after its call timeout, backs off, and its full sync finds
    # the record sets it sent there.
    rig.proxy.set_delay(timeout + HELD, action="ChangeResourceRecordSets", after_forwarding=True)
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert wait_for(lambda: rig.proxy.delayed_now() == 1, MIRROR_WAIT)
    assert rig.served(SHOP, "A") == SWITCHED  # DNS meanwhile
    # And the API (a write with nothing for Route53: a batch now would be held too).
    rig.api("POST", "/v1/apps", {"name": "spare", "web_servers": ["192.0.2.20"]})
    assert wait_for(
        lambda: rig.health()["errors"] == {"ReadTimeoutError": 1}, timeout + MIRROR_WAIT
    )
    assert rig.mirrored()
    assert wait_for(lambda: rig.health()["zones"][ZONE]["consecutive_failures"] == 0, MIRROR_WAIT)
    assert rig.proxy.delayed_now() == 1  # the late answer is still on its way
    rig.proxy.set_delay(0.0)
    assert wait_for(lambda: rig.proxy.delayed_now() == 0, MIRROR_WAIT)
    rig.api("POST", "/v1/groups", {"label": "cart", "primary": "eu"})  # and then, as usual
    assert rig.mirrored()
    assert rig.owned() == {**SWITCHED, (CART, "A"): EU_A}
    zone = rig.health()["zones"][ZONE]
    assert zone["last_error"]["kind"] == "ReadTimeoutError"
    assert 'fodns_route53_errors_total{kind="ReadTimeoutError"} 1.0' in rig.metrics()
    assert rig.fodns is not None
    assert [e["kind"] for e in rig.fodns.log_events("route53_failed")] == ["ReadTimeoutError"]
    assert zone["skipped_record_sets"] == [] and zone["conflicts"] == []
    # The switch went to Route53 once: the full sync after the timeout found it made.
    switch_batches = [
        batch for batch in rig.proxy.change_batches() if any(c.name == SHOP for c in batch)
    ]
    assert len(switch_batches) == 1, switch_batches


def test_the_log_says_once_that_a_zone_fails_and_once_that_it_recovers(rig: Rig) -> None:
    """Failing on and on is one route53_failed event (after FAILING_AFTER failures in a
    row, never one per retry), and taking changes again one route53_recovered: what a
    webhook of kind route53 is sent, each once."""
    start_with_shop(rig)
    with Receiver() as receiver:
        rig.api("POST", "/v1/webhooks", {"url": receiver.url, "events": ["route53"]}, 201)
        rig.proxy.fail_path(rig.zone_id, "AccessDenied")  # every call for the zone refused
        rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
        failing = FAILING_AFTER + 1  # one more than it takes: still one event
        assert wait_for(
            lambda: rig.health()["zones"][ZONE]["consecutive_failures"] >= failing,
            failing * BACKOFF_MAX + MIRROR_WAIT,
        )
        rig.proxy.fail_path(rig.zone_id, None)
        assert wait_for(lambda: rig.owned() == SWITCHED, BACKOFF_MAX + MIRROR_WAIT)
        assert receiver.wait_for(lambda got: len(got) == 2, MIRROR_WAIT)
    logged = rig.api("GET", "/v1/events?limit=20")["events"]
    mirror = [event for event in reversed(logged) if event["action"].startswith("route53_")]
    assert [(e["action"], e["actor"], e["zone"]) for e in mirror] == [
        ("route53_failed", "fodns", ZONE),
        ("route53_recovered", "fodns", ZONE),
    ]
    failed, recovered = mirror
    assert failed["after"]["error"] == "AccessDenied" and failed["after"]["state"] == "failing"
    assert failed["after"]["failed_attempts"] == FAILING_AFTER
    assert "AccessDenied" in failed["reason"]
    assert recovered["before"]["state"] == "failing" and recovered["after"]["state"] == "ok"
    assert [r.payload["event"] for r in receiver.requests()] == mirror
    assert [r.headers["Fodns-Event"] for r in receiver.requests()] == ["route53"] * 2
