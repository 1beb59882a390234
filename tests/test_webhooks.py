"""Webhooks end to end: a real `fodns serve` delivering to real HTTP receivers (aiohttp on
127.0.0.1, OS-picked ports). What a receiver gets and how it checks it (with the very
snippet the README shows), retries and their order, a receiver that hangs, fodns killed
mid-delivery, a thousand switches in a row, filters, giving up and resuming, tests,
the deliveries list, the metrics and the CLI."""

from __future__ import annotations

import itertools
import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fodns import __version__
from fodns.store import Store, ZoneDefaults
from fodns.webhookstate import WebhookState
from tests.support import (
    HANG,
    REPOSITORY,
    Api,
    Fleet,
    FodnsProcess,
    Received,
    Receiver,
    answering,
    run_cli,
    wait_for,
)
from tests.support.workers import health

TOKEN = "webhooks-test-token-7a2e"
SECRET = "whsec_test-secret-for-the-webhook-tests"
# Quick retries: 0.05 s, then 0.1, 0.2, 0.4...; an attempt may take 1 s; an event is
# given up 1 s after its first attempt.
QUICK = "[webhooks]\nfirst_retry = 0.05\ntimeout = 1.0\ngive_up_after = 1.0\n"
FLEET_CONFIG = QUICK  # the config of the module's shared servers (conftest `fleet`)
StartFodns = Callable[..., FodnsProcess]
SIGNATURE_MARK = re.compile(r"<!-- readme-test: webhook signature -->\n```python\n(.*?)```", re.S)


def readme_verify() -> Callable[[str, str, bytes], bool]:
    """The README's signature check, run as it is written there."""
    (snippet,) = SIGNATURE_MARK.findall((REPOSITORY / "README.md").read_text())
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


# ---- servers shared by the module, and what every test does with them ----------------------


@pytest.fixture
def api(fleet: Fleet) -> Iterator[Api]:
    """The one-worker server's API; the webhooks a test made are deleted after it, so
    the next test's events go to its own receivers only."""
    yield from _cleaned(Api(fleet.get(1), TOKEN))


def _cleaned(api: Api) -> Iterator[Api]:
    yield api
    for webhook in api.ok("GET", "/v1/webhooks")["webhooks"]:
        api.ok("DELETE", f"/v1/webhooks/{webhook['id']}", status=204)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def seed(api: Api, label: str) -> str:
    """Two apps and a group between them; the group's label."""
    api.ok("POST", "/v1/apps", {"name": f"{label}-eu", "web_servers": ["192.0.2.10"]}, 201)
    api.ok("POST", "/v1/apps", {"name": f"{label}-us", "web_servers": ["192.0.2.20"]}, 201)
    body = {"label": label, "primary": f"{label}-eu", "backup": f"{label}-us"}
    api.ok("POST", "/v1/groups", body, 201)
    return label


def switch(api: Api, label: str, to: str) -> int:
    """Switch the group; the seq of its event."""
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": to})
    return int(api.ok("GET", f"/v1/events?group={label}&limit=1")["events"][0]["seq"])


def create(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    reply: dict[str, Any] = api.ok("POST", "/v1/webhooks", {"url": url, **fields}, 201)
    return reply


def metrics(server: FodnsProcess) -> str:
    status, text = server.http_get("/metrics")
    assert status == 200
    return text


def caught_up(server: FodnsProcess, webhook_id: str) -> bool:
    """Whether the webhook has followed the log to its end (delivered or passed over
    every event), as its lag metric says."""
    return f'fodns_webhook_lag_events{{webhook="{webhook_id}"}} 0.0' in metrics(server)


def seqs(requests: list[Received]) -> list[int | None]:
    return [request.seq for request in requests]


# ---- the tests ---------------------------------------------------------------------------


def test_a_delivery_is_the_event_signed_as_the_readme_checks_it(
    fleet: Fleet, workers: int, receiver: Receiver
) -> None:
    """In both worker modes: the switch's event as GET /v1/events has it, in a body whose
    id and Idempotency-Key are the webhook's id and the seq, signed so that the README's
    snippet accepts it with the secret and refuses it with another."""
    server = fleet.get(workers)
    for api in _cleaned(Api(server, TOKEN)):
        hook = create(api, receiver.url, secret=SECRET, events=["switch", "group"])
        assert hook["secret"] == SECRET and hook["state"] == "active"
        assert "secret" not in api.ok("GET", f"/v1/webhooks/{hook['id']}")
        label = seed(api, f"signed{workers}")
        seq = switch(api, label, "backup")
        assert receiver.wait_for(lambda got: len(got) == 2), seqs(receiver.requests())

        created, switched = receiver.requests()  # the group's creation, then its switch
        assert (created.payload["kind"], switched.payload["kind"]) == ("group", "switch")
        assert created.seq is not None and created.seq < seq
        event = api.ok("GET", f"/v1/events?after={seq - 1}&limit=1")["events"][0]
        assert switched.payload == {
            "id": f"{hook['id']}:{seq}",
            "seq": seq,
            "kind": "switch",
            "event": event,
        }
        headers = switched.headers
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"] == f"fodns/{__version__}"
        assert headers["Idempotency-Key"] == f"{hook['id']}:{seq}"
        assert headers["Fodns-Event"] == "switch"
        verify = readme_verify()
        signature = headers["Fodns-Signature"]
        assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", signature)
        assert verify(SECRET, signature, switched.body)
        assert not verify(SECRET + "x", signature, switched.body)
        assert not verify(SECRET, signature, switched.body + b" ")
        stale = re.sub(r"t=(\d+)", lambda m: f"t={int(m[1]) - 600}", signature)
        assert not verify(SECRET, stale, switched.body)  # a replay from 10 minutes ago
        # The event names no secret, and neither does the log.
        logged = api.ok("GET", "/v1/events?limit=100")["events"]
        assert SECRET not in json.dumps(logged)
        assert any(e["action"] == "webhook_created" for e in logged)


def test_a_receiver_answering_500_three_times_gets_the_event_on_the_fourth_try(
    api: Api, receiver: Receiver
) -> None:
    receiver.answer = lambda index, request: 500 if index < 3 else 200
    hook = create(api, receiver.url, events=["switch"])
    label = seed(api, "retried")
    first = switch(api, label, "backup")
    second = switch(api, label, "primary")  # waits behind the first: one in flight
    assert receiver.wait_for(lambda got: len(got) == 5), seqs(receiver.requests())
    got = receiver.requests()
    assert seqs(got) == [first] * 4 + [second]
    assert {request.key for request in got[:4]} == {f"{hook['id']}:{first}"}
    assert len({request.body for request in got[:4]}) == 1  # the same bytes every time
    # The waits doubled from first_retry (0.05, 0.1, 0.2 s).
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(got[:4])]
    assert all(gap >= wait * 0.9 for gap, wait in zip(gaps, [0.05, 0.1, 0.2], strict=True)), gaps

    listed = api.ok("GET", f"/v1/webhooks/{hook['id']}/deliveries")["deliveries"]
    assert [(d["seq"], d["attempt"], d["status"], d["result"]) for d in listed] == [
        (second, 1, 200, "delivered"),
        (first, 4, 200, "delivered"),
        (first, 3, 500, "retrying"),
        (first, 2, 500, "retrying"),
        (first, 1, 500, "retrying"),
    ]
    assert listed[2]["error"] == "HTTP 500" and listed[0]["error"] is None
    assert all(d["kind"] == "switch" and d["latency_ms"] >= 0 for d in listed)
    text = metrics(api.server)
    series = f'webhook="{hook["id"]}"'
    assert f'fodns_webhook_deliveries_total{{result="retrying",{series}}} 3.0' in text
    assert f'fodns_webhook_deliveries_total{{result="delivered",{series}}} 2.0' in text
    assert wait_for(lambda: caught_up(api.server, hook["id"]))
    assert re.search(r"^fodns_webhook_delivery_seconds_count [1-9]", text, re.M)
    assert re.search(r"^fodns_webhooks_failed 0\.0$", text, re.M)


def test_filters_by_kind_and_by_group_and_app_patterns(api: Api) -> None:
    with Receiver() as switches, Receiver() as shop, Receiver() as eu, Receiver() as both:
        hooks = [
            create(api, switches.url, events=["switch"]),
            create(api, shop.url, groups=["SHOP-*"]),
            create(api, eu.url, apps=["eu-*"]),
            create(api, both.url, groups=["shop-*"], apps=["us-*"], events=["switch"]),
        ]
        for name, address in [("eu-1", "192.0.2.1"), ("us-1", "192.0.2.2"), ("blog", "192.0.2.3")]:
            api.ok("POST", "/v1/apps", {"name": name, "web_servers": [address]}, 201)
        api.ok("POST", "/v1/groups", {"label": "shop-a", "primary": "eu-1", "backup": "us-1"}, 201)
        api.ok("POST", "/v1/groups", {"label": "myshop", "primary": "blog", "backup": "us-1"}, 201)
        api.ok("POST", "/v1/groups/shop-a/switch", {"to": "backup"})
        api.ok("POST", "/v1/groups/myshop/switch", {"to": "backup"})
        api.ok("PATCH", "/v1/apps/eu-1", {"web_servers": ["192.0.2.9"]})
        for hook in hooks:
            assert wait_for(lambda hook=hook: caught_up(api.server, hook["id"]))

        def said(receiver: Receiver) -> list[tuple[str, str | None, str | None]]:
            return [
                (
                    r.payload["event"]["action"],
                    r.payload["event"]["group"],
                    r.payload["event"]["app"],
                )
                for r in receiver.requests()
            ]

        assert said(switches) == [
            ("group_switched", "shop-a", None),
            ("group_switched", "myshop", None),
        ]
        # shop-* is the whole label: myshop is not one; an app's change reaches the
        # groups it touched.
        assert said(shop) == [
            ("group_created", "shop-a", None),
            ("group_switched", "shop-a", None),
            ("app_updated", None, "eu-1"),
        ]
        assert said(eu) == [
            ("app_created", None, "eu-1"),
            ("group_created", "shop-a", None),
            ("group_switched", "shop-a", None),
            ("app_updated", None, "eu-1"),
        ]
        assert said(both) == [("group_switched", "shop-a", None)]


def test_a_hanging_receiver_delays_neither_a_switch_nor_another_webhook(
    fodns_factory: StartFodns,
) -> None:
    """The switch API's latency with a receiver that never answers against none at all:
    the same; and a second webhook gets each switch at once all the while."""
    server = fodns_factory(TOKEN)  # the default 10 s timeout: the request stays held
    api = Api(server, TOKEN)
    label = seed(api, "hang")
    rounds = 30
    sides = itertools.cycle(["backup", "primary"])  # each switch moves the group

    def switch_latencies() -> list[float]:
        latencies = []
        for _ in range(rounds):
            started = time.perf_counter()
            api.ok("POST", f"/v1/groups/{label}/switch", {"to": next(sides)})
            latencies.append(time.perf_counter() - started)
        return latencies

    switch_latencies()  # warm: first connections, first reads
    baseline = switch_latencies()
    with Receiver(answer=answering(HANG)) as hanging, Receiver() as fast:
        stuck = create(api, hanging.url, events=["switch"])
        first = switch(api, label, next(sides))
        assert hanging.wait_for(lambda got: len(got) == 1)  # held from here on
        measured = switch_latencies()
        # Another webhook, made while the first is stuck, gets each switch at once.
        other = create(api, fast.url, events=["switch"])
        for _ in range(5):
            started = time.monotonic()
            seq = switch(api, label, next(sides))
            assert fast.wait_for(lambda got, seq=seq: seq in seqs(got), 5)
            assert fast.requests()[-1].at - started < 1.0
        assert len(fast.requests()) == 5
        assert seqs(hanging.requests()) == [first]  # still the one it holds, alone
        assert caught_up(server, other["id"])
        assert not caught_up(server, stuck["id"])
    p50_before, p50_with = statistics.median(baseline), statistics.median(measured)
    print(
        f"switch latency: p50 {p50_before * 1000:.2f} ms without webhooks, "
        f"{p50_with * 1000:.2f} ms with a hanging receiver (max {max(measured) * 1000:.2f} ms)"
    )
    assert p50_with < 5 * p50_before and p50_with < 0.2, (baseline, measured)


def test_fodns_killed_mid_delivery_delivers_after_the_restart(
    fodns_factory: StartFodns, tmp_path: Path
) -> None:
    """kill -9 while a receiver holds a delivery: after the restart every event arrives,
    in order; an event sent twice carries the same Idempotency-Key and body."""
    folder = tmp_path / "killed"
    server = fodns_factory(TOKEN, directory=folder)
    api = Api(server, TOKEN)
    label = seed(api, "killed")
    with Receiver(answer=answering(HANG)) as receiver:
        hook = create(api, receiver.url, events=["switch"])
        switched = [switch(api, label, side) for side in ("backup", "primary", "backup")]
        assert receiver.wait_for(lambda got: len(got) == 1)  # the first, held
        server.kill()
        receiver.answer = answering(200)
        restarted = fodns_factory(TOKEN, directory=folder)
        assert receiver.wait_for(lambda got: switched[-1] in seqs(got), 15), seqs(
            receiver.requests()
        )
        more = switch(Api(restarted, TOKEN), label, "primary")
        assert receiver.wait_for(lambda got: more in seqs(got))
    got = receiver.requests()
    firsts = list(dict.fromkeys(seqs(got)))
    assert firsts == [*switched, more]  # every one, in order
    by_seq: dict[int | None, list[Received]] = {}
    for request in got:
        by_seq.setdefault(request.seq, []).append(request)
    assert len(by_seq[switched[0]]) >= 2  # held when killed: sent again
    for seq, copies in by_seq.items():
        assert {copy.key for copy in copies} == {f"{hook['id']}:{seq}"}
        assert len({copy.body for copy in copies}) == 1


def test_a_thousand_quick_switches_reach_a_receiver_in_order(api: Api, receiver: Receiver) -> None:
    label = seed(api, "thousand")
    hook = create(api, receiver.url, events=["switch"])
    started = time.perf_counter()
    switched = [
        api.ok("POST", f"/v1/groups/{label}/switch", {"to": ("backup", "primary")[n % 2]})
        for n in range(1000)
    ]
    switching = time.perf_counter() - started
    assert len(switched) == 1000
    events = api.ok("GET", f"/v1/events?group={label}&limit=1000")["events"]
    expected = sorted(e["seq"] for e in events if e["action"] == "group_switched")
    assert len(expected) == 1000
    assert receiver.wait_for(lambda got: expected[-1] in seqs(got), 30)
    lag = time.perf_counter() - started - switching
    got = seqs(receiver.requests())
    assert list(dict.fromkeys(got)) == expected  # each at least once, in order
    assert got == expected  # and here, with nothing failing, exactly once
    assert wait_for(lambda: caught_up(api.server, hook["id"]))
    print(f"1000 switches in {switching:.2f} s; the last delivered {lag:.3f} s after")


def test_giving_up_marks_the_webhook_failed_and_resuming_starts_at_that_event(
    api: Api, receiver: Receiver
) -> None:
    receiver.answer = answering(503)
    hook = create(api, receiver.url, events=["switch"])
    path = f"/v1/webhooks/{hook['id']}"
    label = seed(api, "gaveup")
    failed = switch(api, label, "backup")
    assert wait_for(lambda: api.ok("GET", path)["state"] == "failed", 10)
    shown = api.ok("GET", path)
    assert (shown["active"], shown["failed_seq"]) == (False, failed)
    attempts = len(receiver.requests())
    assert attempts >= 4 and set(seqs(receiver.requests())) == {failed}
    later = switch(api, label, "primary")
    logged = api.ok("GET", "/v1/events?limit=5")["events"]
    gave_up = next(e for e in logged if e["action"] == "webhook_failed")
    assert gave_up["actor"] == "fodns" and f"gave up on event {failed}" in gave_up["reason"]
    assert gave_up["after"]["state"] == "failed"
    listed = api.ok("GET", f"{path}/deliveries")["deliveries"]
    assert listed[0]["result"] == "failed" and listed[0]["seq"] == failed
    assert {d["result"] for d in listed[1:]} == {"retrying"}
    assert re.search(r"^fodns_webhooks_failed 1\.0$", metrics(api.server), re.M)
    assert len(receiver.requests()) == attempts  # stopped: the later switch waits
    # /healthz: degraded, saying which webhook and how to resume it; still ready.
    status, body = health(api.server)
    assert status == 200 and body["ready"]
    (said,) = [line for line in body["degraded"] if hook["id"] in line]
    assert f"gave up on event {failed}" in said and "active" in said
    (shown_health,) = [h for h in body["webhooks"] if h["id"] == hook["id"]]
    assert (shown_health["state"], shown_health["failed_seq"]) == ("failed", failed)

    receiver.answer = answering(204)
    resumed = api.ok("PATCH", path, {"active": True})
    assert (resumed["state"], resumed["failed_seq"]) == ("active", None)
    assert receiver.wait_for(lambda got: later in seqs(got))
    assert seqs(receiver.requests())[attempts:] == [failed, later]  # at the failed one
    assert re.search(r"^fodns_webhooks_failed 0\.0$", metrics(api.server), re.M)
    assert wait_for(
        lambda: not [line for line in health(api.server)[1]["degraded"] if hook["id"] in line]
    )


def test_a_test_event_is_sent_at_once_signed_and_listed(api: Api, receiver: Receiver) -> None:
    hook = create(api, receiver.url, secret=SECRET, active=False)  # paused: tests still go
    reply = api.ok("POST", f"/v1/webhooks/{hook['id']}/test")
    assert reply["seq"] is None and reply["kind"] == "test" and reply["result"] == "test"
    assert (reply["status"], reply["error"]) == (200, None)
    (sent,) = receiver.requests()
    assert sent.payload == {"id": f"{hook['id']}:test", "seq": None, "kind": "test", "event": None}
    assert sent.headers["Fodns-Event"] == "test"
    assert readme_verify()(SECRET, sent.headers["Fodns-Signature"], sent.body)
    receiver.answer = answering(302)
    redirected = api.ok("POST", f"/v1/webhooks/{hook['id']}/test")
    assert redirected["status"] == 302 and "not followed" in redirected["error"]
    listed = api.ok("GET", f"/v1/webhooks/{hook['id']}/deliveries")["deliveries"]
    assert [(d["status"], d["result"]) for d in listed] == [(302, "test"), (200, "test")]
    missing = api.call("POST", "/v1/webhooks/wh_0000000000000000/test")
    assert missing[0] == 404


def test_where_delivery_is_off_webhooks_are_kept_and_nothing_is_sent(
    fodns_factory: StartFodns, receiver: Receiver
) -> None:
    server = fodns_factory(TOKEN, extra="[webhooks]\nenabled = false\n")
    api = Api(server, TOKEN)
    hook = create(api, receiver.url)
    status, reply = api.call("POST", f"/v1/webhooks/{hook['id']}/test")
    assert status == 409 and "enabled = false" in reply["error"]["message"]
    seed(api, "off")
    assert api.ok("GET", f"/v1/webhooks/{hook['id']}/deliveries") == {"deliveries": []}
    assert "fodns_webhook" not in metrics(server)
    assert receiver.requests() == []


def test_the_cli_drives_webhooks(api: Api, receiver: Receiver) -> None:
    def fodns(*args: str) -> Any:
        done = run_cli(api.server, TOKEN, "webhook", *args)
        assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
        return json.loads(done.stdout) if done.stdout.strip() else None

    created = fodns("create", receiver.url, "--events", "switch", "--groups", "cli-*")
    webhook_id = created["id"]
    assert created["secret"].startswith("whsec_") and created["groups"] == ["cli-*"]
    assert [hook["id"] for hook in fodns("list")] == [webhook_id]
    changed = fodns("update", webhook_id, "--all-groups", "--no-active", "--description", "cli")
    assert (changed["groups"], changed["state"], changed["description"]) == (None, "paused", "cli")
    assert "secret" not in fodns("show", webhook_id)
    assert fodns("test", webhook_id)["status"] == 200
    assert [d["kind"] for d in fodns("deliveries", webhook_id)] == ["test"]
    assert fodns("delete", webhook_id) is None
    assert fodns("list") == []


def test_big_events_are_read_a_few_at_a_time(tmp_path: Path) -> None:
    """An app's event names every group using it (8.5 MB with 100,000 groups): the
    deliverer's read of the log stops at a byte budget, never at fewer than one event."""
    with Store(tmp_path / "fodns.db", {"fo.example.net": ZoneDefaults(serial=1)}) as store:
        for n in range(5):
            store.create_app("admin", f"app{n}", web_servers=[f"192.0.2.{n + 1}"])
        state = WebhookState(store)
        assert [e.seq for e in state.events_after(0, 100)] == [1, 2, 3, 4, 5]
        assert [e.seq for e in state.events_after(1, 3)] == [2, 3, 4]
        sql = (
            "SELECT COALESCE(LENGTH(before), 0) + COALESCE(LENGTH(after), 0)"
            " + COALESCE(LENGTH(touched), 0) FROM events ORDER BY seq"
        )
        sizes = store.read(lambda db: [int(row[0]) for row in db.execute(sql)])
        assert [e.seq for e in state.events_after(0, 100, max_bytes=sum(sizes[:2]))] == [1, 2]
        assert [e.seq for e in state.events_after(0, 100, max_bytes=1)] == [1]
