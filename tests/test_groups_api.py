"""Failover groups end to end: real HTTP to the admin API, real DNS to the same process.

One test per rule of groups (DESIGN.md "Rules of groups"), each checked on the
wire with dnspython, not only in the API's reply, with one DNS process and with two
(the `workers` fixture).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from prometheus_client import CollectorRegistry

from fodns.api import create_app
from fodns.store import Store, ZoneDefaults
from tests.support import (
    Api,
    FodnsProcess,
    answer_data,
    ask_every_worker,
    start_with_config,
    wait_for,
)

TOKEN = "groups-test-token-7f3a"
# What each side of two_apps' groups answers for A.
SIDE_ANSWERS = {"backup": {"198.51.100.7"}, "primary": {"192.0.2.10", "192.0.2.11"}}
STALLED = "store_commit_stalled_for_test"
StartFodns = Callable[..., FodnsProcess]


@pytest.fixture
def running(fodns_factory: StartFodns, workers: int) -> FodnsProcess:
    """fodns serving the example zone, in each worker mode; stopped even if a test fails."""
    return fodns_factory(TOKEN, workers=workers)


@pytest.fixture
def api(running: FodnsProcess) -> Api:
    return Api(running, TOKEN)


@pytest.fixture
def shared_api(shared_server: FodnsProcess) -> Api:
    """The API of the module's shared fodns (conftest `fleet`), for the tests that only
    refuse input or read what every server says alike."""
    return Api(shared_server, TOKEN)


def served(server: FodnsProcess, fqdn: str, qtype: str = "A") -> tuple[int, set[str], int | None]:
    """(rcode, record data, TTL) as the DNS server answers now."""
    reply = server.udp(dns.message.make_query(fqdn, qtype))
    data = {rdata.to_text() for rrset in reply.answer for rdata in rrset}
    ttl = reply.answer[0].ttl if reply.answer else None
    return reply.rcode(), data, ttl


def two_apps(api: Api) -> None:
    api.ok(
        "POST", "/v1/apps", {"name": "shop-eu", "web_servers": ["192.0.2.10", "192.0.2.11"]}, 201
    )
    api.ok("POST", "/v1/apps", {"name": "shop-us", "load_balancer": ["198.51.100.7"]}, 201)


def test_the_readme_walk_through(running: FodnsProcess, api: Api) -> None:
    """Two apps, a group, dig it, switch, dig again: the backup answers at once."""
    two_apps(api)
    group = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)
    assert re.fullmatch(r"\d{3}-\d{3}-\d{3}", group["label"])
    assert group["fqdn"] == f"{group['label']}.fo.example.net"
    assert group["active"] == "primary" and group["ttl"] == 30
    assert served(running, group["fqdn"]) == (dns.rcode.NOERROR, {"192.0.2.10", "192.0.2.11"}, 30)

    switched = api.ok(
        "POST", f"/v1/groups/{group['label']}/switch", {"to": "backup", "reason": "eu maintenance"}
    )
    assert switched["active"] == "backup"
    assert switched["answer"] == [{"type": "A", "data": "198.51.100.7"}]
    assert served(running, group["fqdn"]) == (dns.rcode.NOERROR, {"198.51.100.7"}, 30)

    (event, *_) = api.ok("GET", f"/v1/events?group={group['label']}")["events"]
    assert event["action"] == "group_switched" and event["actor"] == "admin"
    assert event["reason"] == "eu maintenance"
    assert event["before"]["active"] == "primary" and event["after"]["active"] == "backup"


def test_switching_to_the_active_side_records_nothing(running: FodnsProcess, api: Api) -> None:
    two_apps(api)
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
    before = api.ok("GET", "/v1/events")["events"]
    serial = served(running, "fo.example.net", "SOA")[1]
    again = api.ok("POST", f"/v1/groups/{label}/switch", {"to": "primary"})
    assert again["active"] == "primary"
    assert api.ok("GET", "/v1/events")["events"] == before
    assert served(running, "fo.example.net", "SOA")[1] == serial


def test_a_follower_reads_the_events_it_missed(api: Api) -> None:
    two_apps(api)
    seen = api.ok("GET", "/v1/events?limit=1")["events"][0]["seq"]
    assert api.ok("GET", f"/v1/events?after={seen}")["events"] == []
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})
    missed = api.ok("GET", f"/v1/events?after={seen}")["events"]
    assert [e["action"] for e in missed] == ["group_switched", "group_created"]  # newest first
    assert api.ok("GET", f"/v1/events?after={seen}&app=shop-us&limit=1")["events"] == missed[:1]


def test_every_page_of_events_says_the_newest_seq_of_the_whole_log(
    fodns_factory: StartFodns,
) -> None:
    """`last_seq` is the newest seq of the log, whatever the page holds: a follower asks
    `?after=SEQ&limit=1` and learns whether anything is new without reading the newest
    event (an app used by many groups makes a big one), and sees a log that went
    backwards (restored from a backup) as a `last_seq` below its own."""
    api = Api(fodns_factory(TOKEN), TOKEN)
    for path in ("/v1/events", "/v1/events?limit=1", "/v1/events?after=0", "/v1/events?before=9"):
        assert api.ok("GET", path) == {"events": [], "last_seq": 0}, path

    two_apps(api)
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})
    every = api.ok("GET", "/v1/events")
    seqs = [event["seq"] for event in every["events"]]
    assert len(seqs) == 4 and every["last_seq"] == seqs[0]
    newest = seqs[0]
    pages = {
        "?limit=1": seqs[:1],
        f"?after={newest}": [],
        f"?after={newest}&limit=1": [],
        f"?after={seqs[2]}&limit=1": seqs[:1],  # newest first, also after a seq
        f"?before={seqs[1]}": seqs[2:],
        f"?before={seqs[3]}": [],
        f"?after={seqs[3]}&before={seqs[0]}": seqs[1:3],
        "?app=shop-eu&limit=1": seqs[:1],
        f"?group={label}&before={newest}": [seqs[1]],
        "?group=no-such-group": [],
        "?app=no-such-app": [],
    }
    for query, expected in pages.items():
        page = api.ok("GET", f"/v1/events{query}")
        assert [event["seq"] for event in page["events"]] == expected, query
        assert page["last_seq"] == newest, query

    # A write that changes nothing appends no event: the newest seq stays.
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})
    assert api.ok("GET", f"/v1/events?after={newest}&limit=1") == {
        "events": [],
        "last_seq": newest,
    }
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "primary"})
    page = api.ok("GET", f"/v1/events?after={newest}&limit=1")
    assert page["last_seq"] == page["events"][0]["seq"] > newest

    operation = api.ok("GET", "/v1/openapi.json")["paths"]["/v1/events"]["get"]
    reply = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(reply["required"]) == set(reply["properties"]) == {"events", "last_seq"}


def test_a_label_is_never_reused(running: FodnsProcess, api: Api) -> None:
    api.ok("POST", "/v1/groups", {"label": "shop"}, 201)
    status, body = api.call("POST", "/v1/groups", {"label": "shop"})
    assert status == 409 and body["error"] == {
        "code": "conflict",
        "message": "label 'shop' is taken by a group in zone fo.example.net",
        "field": "label",
    }
    api.ok("DELETE", "/v1/groups/shop", status=204)
    assert served(running, "shop.fo.example.net")[0] == dns.rcode.NXDOMAIN
    status, body = api.call("POST", "/v1/groups", {"label": "shop"})
    assert status == 409, "a deleted group's label stays taken forever"
    assert body["error"]["field"] == "label"
    assert "used before and is never reused" in body["error"]["message"]


def test_a_group_without_apps_reserves_the_name(running: FodnsProcess, api: Api) -> None:
    group = api.ok("POST", "/v1/groups", {}, 201)
    assert group["primary"] is None and group["answer"] == []
    reply = running.udp(dns.message.make_query(group["fqdn"], "A"))
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer  # NODATA: the name exists
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


def test_backup_is_optional_and_switching_to_an_empty_side_is_refused(
    running: FodnsProcess, api: Api
) -> None:
    two_apps(api)
    group = api.ok("POST", "/v1/groups", {"primary": "shop-eu"}, 201)
    status, body = api.call("POST", f"/v1/groups/{group['label']}/switch", {"to": "backup"})
    assert status == 409 and "backup side" in body["error"]["message"]
    assert body["error"]["field"] == "to"
    assert served(running, group["fqdn"])[1] == {"192.0.2.10", "192.0.2.11"}


def test_a_group_pointing_at_apps_cannot_be_deleted(running: FodnsProcess, api: Api) -> None:
    two_apps(api)
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
    status, _ = api.call("DELETE", f"/v1/groups/{label}")
    assert status == 409
    api.ok("PATCH", f"/v1/groups/{label}", {"primary": None, "backup": None})
    api.ok("DELETE", f"/v1/groups/{label}?reason=shop%20closed", status=204)
    # A delete takes its reason as a query parameter (a DELETE has no body); the
    # event log keeps it like every other write's.
    api.ok("DELETE", "/v1/apps/shop-us?reason=moved", status=204)
    assert [(e["action"], e["reason"]) for e in api.ok("GET", "/v1/events?limit=2")["events"]] == [
        ("app_deleted", "moved"),
        ("group_deleted", "shop closed"),
    ]
    status, body = api.call("DELETE", "/v1/apps/shop-eu?reason=")
    assert status == 400 and body["error"]["field"] == "reason"


def test_an_app_in_a_group_cannot_be_deleted(running: FodnsProcess, api: Api) -> None:
    two_apps(api)
    api.ok("POST", "/v1/groups", {"primary": "shop-eu"}, 201)
    status, body = api.call("DELETE", "/v1/apps/shop-eu")
    assert status == 409 and "field" not in body["error"], "about the app, not a field"
    api.ok("DELETE", "/v1/apps/shop-us", status=204)


def test_renaming_an_app_keeps_its_groups_answering(running: FodnsProcess, api: Api) -> None:
    two_apps(api)
    group = api.ok("POST", "/v1/groups", {"primary": "shop-eu"}, 201)
    api.ok("PATCH", "/v1/apps/shop-eu", {"name": "shop-eu-west"})
    assert api.ok("GET", f"/v1/groups/{group['label']}")["primary"] == "shop-eu-west"
    assert served(running, group["fqdn"])[1] == {"192.0.2.10", "192.0.2.11"}


def test_a_web_head_change_is_followed_by_every_group_at_once(
    running: FodnsProcess, api: Api
) -> None:
    two_apps(api)
    groups = [api.ok("POST", "/v1/groups", {"primary": "shop-eu"}, 201) for _ in range(3)]
    api.ok("PATCH", "/v1/apps/shop-eu", {"load_balancer": ["lb.shop.example.com"]})
    for group in groups:
        assert served(running, group["fqdn"], "CNAME")[1] == {"lb.shop.example.com."}
    api.ok("PATCH", "/v1/apps/shop-eu", {"load_balancer": [], "web_servers": ["2001:db8::5"]})
    for group in groups:
        assert served(running, group["fqdn"], "AAAA")[1] == {"2001:db8::5"}
        assert served(running, group["fqdn"], "A")[1] == set()


def test_failover_status_follows_switches(running: FodnsProcess, api: Api) -> None:
    two_apps(api)
    api.ok("POST", "/v1/apps", {"name": "lonely", "web_servers": ["192.0.2.99"]}, 201)
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]

    def status(app: str) -> str:
        return str(api.ok("GET", f"/v1/apps/{app}/status")["failover_status"])

    assert (status("shop-eu"), status("shop-us"), status("lonely")) == ("online", "offline", "none")
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})
    assert (status("shop-eu"), status("shop-us")) == ("offline", "online")


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_a_missing_or_wrong_token_gets_401_and_changes_nothing(
    running: FodnsProcess, api: Api, token: str | None
) -> None:
    intruder = Api(running, token or "")
    for method, path, body in [
        ("POST", "/v1/apps", {"name": "evil", "web_servers": ["203.0.113.1"]}),
        ("POST", "/v1/groups", {"label": "evil"}),
        ("GET", "/v1/groups", None),
    ]:
        status, reply = intruder.call(method, path, body)
        assert status == 401 and reply["error"]["code"] == "unauthorized"
    assert api.ok("GET", "/v1/apps")["apps"] == []
    assert api.ok("GET", "/v1/events")["events"] == []
    assert served(running, "evil.fo.example.net")[0] == dns.rcode.NXDOMAIN


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/apps", {"web_servers": ["192.0.2.1"]}, "name"),
        (
            "POST",
            "/v1/apps",
            {"name": "a", "web_servers": ["192.0.2.1", "lb.example.com"]},
            "web_servers",
        ),
        ("POST", "/v1/apps", {"name": "a", "load_balancer": ["not an address"]}, "load_balancer"),
        ("POST", "/v1/apps", {"name": "a", "colour": "red"}, "colour"),
        ("POST", "/v1/groups", {"ttl": 3}, "ttl"),
        ("POST", "/v1/groups", {"label": "-bad-"}, "label"),
        ("POST", "/v1/groups", {"zone": 7}, "zone"),
        ("POST", "/v1/groups", [1, 2], "body"),
        ("GET", "/v1/events?after=x", None, "after"),
        ("GET", "/v1/events?before=-1", None, "before"),
        ("GET", "/v1/events?limit=0", None, "limit"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    shared_api: Api, method: str, path: str, body: Any, field: str
) -> None:
    status, reply = shared_api.call(method, path, body)
    assert status == 400, reply
    assert reply["error"]["field"] == field


def test_unknown_things_are_404(shared_api: Api) -> None:
    api = shared_api
    for path in ("/v1/apps/nobody", "/v1/groups/000-000-000", "/v1/nothing-here"):
        status, reply = api.call("GET", path)
        assert status == 404 and reply["error"]["code"] == "not_found", path
    status, reply = api.call("POST", "/v1/groups", {"primary": "nobody"})
    assert status == 404 and reply["error"]["field"] == "primary"
    api.ok("POST", "/v1/apps", {"name": "taken", "web_servers": ["192.0.2.1"]}, 201)
    status, reply = api.call("POST", "/v1/apps", {"name": "taken"})
    assert status == 409 and reply["error"]["field"] == "name"


def test_a_label_used_by_the_zone_file_is_refused(
    shared_server: FodnsProcess, shared_api: Api
) -> None:
    status, reply = shared_api.call("POST", "/v1/groups", {"label": "www"})
    assert status == 409 and reply["error"]["field"] == "label"
    assert reply["error"]["message"] == (
        "www.fo.example.net is a name in the zone file; choose another label"
    )
    assert served(shared_server, "www.fo.example.net")[1] == {"192.0.2.10", "192.0.2.11"}


def test_the_soa_serial_moves_with_every_change(running: FodnsProcess, api: Api) -> None:
    def serial() -> int:
        reply = running.udp(dns.message.make_query("fo.example.net", "SOA"))
        return int(reply.answer[0][0].serial)

    first = serial()
    two_apps(api)
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
    after_create = serial()
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})
    after_switch = serial()
    assert first < after_create < after_switch
    zones = api.ok("GET", "/v1/zones")["zones"]
    assert zones[0]["serial"] == after_switch and zones[0]["groups"] == 1
    assert zones[0]["group_ttl"] == 30  # the default of a zone that sets none


def test_a_restart_serves_the_same_state(
    tmp_path: Path, workers: int, fodns_factory: StartFodns
) -> None:
    first = fodns_factory(TOKEN, directory=tmp_path, workers=workers)
    api = Api(first, TOKEN)
    two_apps(api)
    group = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)
    api.ok("POST", f"/v1/groups/{group['label']}/switch", {"to": "backup"})
    before = served(first, group["fqdn"]), served(first, "fo.example.net", "SOA")
    assert first.stop() == 0

    again = fodns_factory(TOKEN, directory=tmp_path, workers=workers)
    assert (served(again, group["fqdn"]), served(again, "fo.example.net", "SOA")) == before
    assert Api(again, TOKEN).ok("GET", f"/v1/groups/{group['label']}")["active"] == "backup"


def test_every_worker_serves_a_switch_before_the_api_answers(fodns_factory: StartFodns) -> None:
    running = fodns_factory(TOKEN, workers=2)
    api = Api(running, TOKEN)
    two_apps(api)
    group = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)
    query = dns.message.make_query(group["fqdn"], "A")
    for side in ["backup", "primary"] * 3:
        api.ok("POST", f"/v1/groups/{group['label']}/switch", {"to": side})
        answers = {frozenset(answer_data(reply)) for reply in ask_every_worker(running, query)}
        assert answers == {frozenset(SIDE_ANSWERS[side])}


# Documented routes as they are called: POST, PUT and PATCH with a body (of no fields).
WITH_BODY = {"POST", "PUT", "PATCH"}
API_ROUTES = {
    ("/v1/zones", "GET"),
    ("/v1/apps", "GET"),
    ("/v1/apps", "POST"),
    ("/v1/apps/{name}", "GET"),
    ("/v1/apps/{name}", "PATCH"),
    ("/v1/apps/{name}", "DELETE"),
    ("/v1/apps/{name}/status", "GET"),
    ("/v1/apps/{name}/check", "PUT"),
    ("/v1/apps/{name}/check", "GET"),
    ("/v1/apps/{name}/check", "DELETE"),
    ("/v1/groups", "GET"),
    ("/v1/groups", "POST"),
    ("/v1/groups/{label}", "GET"),
    ("/v1/groups/{label}", "PATCH"),
    ("/v1/groups/{label}", "DELETE"),
    ("/v1/groups/{label}/switch", "POST"),
    ("/v1/groups/{label}/pin", "DELETE"),
    ("/v1/events", "GET"),
    ("/v1/health", "GET"),
    ("/v1/probes/{name}/reports", "POST"),
    ("/v1/route53/plan", "GET"),
    ("/v1/route53/sync", "POST"),
    ("/v1/token", "GET"),
    ("/v1/tokens", "GET"),
    ("/v1/tokens", "POST"),
    ("/v1/tokens/{name}", "GET"),
    ("/v1/tokens/{name}", "DELETE"),
    ("/v1/webhooks", "GET"),
    ("/v1/webhooks", "POST"),
    ("/v1/webhooks/{id}", "GET"),
    ("/v1/webhooks/{id}", "PATCH"),
    ("/v1/webhooks/{id}", "DELETE"),
    ("/v1/webhooks/{id}/deliveries", "GET"),
    ("/v1/webhooks/{id}/test", "POST"),
    ("/v1/acme/registrations", "GET"),
    ("/v1/acme/registrations", "POST"),
    ("/v1/acme/registrations/{subdomain}", "GET"),
    ("/v1/acme/registrations/{subdomain}", "DELETE"),
}


def routed_under_v1(directory: Path) -> set[tuple[str, str]]:
    """Every (path template, method) the admin app routes under /v1, read from the
    router of the app fodns builds (create_app with a store, as `fodns serve` calls it).
    HEAD, which aiohttp adds beside each GET, is not an operation of its own."""
    with Store(directory / "routes.db", {"fo.example.net": ZoneDefaults(serial=1)}) as store:
        app = create_app(CollectorRegistry(), dict, store=store)
        return {
            (route.resource.canonical, route.method)
            for route in app.router.routes()
            if route.resource is not None
            and route.resource.canonical.startswith("/v1/")
            and route.method != "HEAD"
        }


def test_openapi_document_lists_exactly_the_served_routes(shared_api: Api, tmp_path: Path) -> None:
    """Both ways: every operation the document lists is routed by the running server,
    and every route the app serves under /v1 is in the document (bar the document)."""
    api = shared_api
    document = api.ok("GET", "/v1/openapi.json")
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == API_ROUTES
    # The document describes the API; it is served beside it, not listed in itself.
    assert routed_under_v1(tmp_path) - {("/v1/openapi.json", "GET")} == documented

    # What the router answers for a path it has no route for, as against a route whose
    # handler finds no such app or group (also a 404, but saying which is missing).
    status, unrouted = api.call("GET", "/v1/no-such-route")
    assert status == 404 and unrouted == {"error": {"code": "not_found", "message": "Not Found"}}
    for path, method in sorted(documented):
        concrete = path.replace("{name}", "nobody").replace("{label}", "000-000-000")
        concrete = concrete.replace("{id}", "wh_0000000000000000")
        concrete = concrete.replace("{subdomain}", "00000000-0000-4000-8000-000000000000")
        status, reply = api.call(method, concrete, {} if method in WITH_BODY else None)
        assert status != 405 and reply != unrouted, f"{method} {path} is documented, not served"
        assert status in (200, 201, 400, 404), (method, path, status, reply)
        if status == 404:  # the handler ran, and names what it did not find
            assert reply["error"]["message"] != "Not Found", (method, path, reply)


def test_route53_calls_without_the_mirror_say_it_is_not_enabled(shared_api: Api) -> None:
    status, payload = shared_api.call("GET", "/v1/route53/plan")
    assert status == 404
    assert "not enabled" in payload["error"]["message"]


def test_a_generated_token_is_kept_beside_the_database(
    tmp_path: Path, fodns_factory: StartFodns
) -> None:
    running = fodns_factory("", directory=tmp_path)  # no FODNS_ADMIN_TOKEN: one is made
    token_file = tmp_path / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert Api(running, token).ok("GET", "/v1/groups")["groups"] == []
    assert Api(running, "nope").call("GET", "/v1/groups")[0] == 401
    assert token not in "".join(running.stderr_lines), "the token must never be logged"


def kill_9(running: FodnsProcess) -> None:
    """SIGKILL the server (our own child, by PID) and reap it; a no-op once it is dead.
    Its DNS workers see their parent go and stop by themselves."""
    if running.alive():
        running.process.send_signal(signal.SIGKILL)
    running.process.wait(10)


def integrity(database: Path) -> str:
    """SQLite's own check of every page and index, after recovering the WAL."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_every_acknowledged_switch_survives_kill_9(
    tmp_path: Path, workers: int, fodns_factory: StartFodns
) -> None:
    """Switches stream in; the server is SIGKILLed mid-stream; after a restart on the
    same database every acknowledged switch is served. At most one request was in
    flight at the kill: its group may show either side."""
    doomed = start_with_config(tmp_path, TOKEN, workers=workers)
    try:
        api = Api(doomed, TOKEN)
        two_apps(api)
        labels = [
            api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
            for _ in range(4)
        ]
        acknowledged: dict[str, str] = {}
        in_flight: tuple[str, str] | None = None
        killed = False
        for count in range(400):  # bounded: the kill comes after about 100 acknowledgements
            label = labels[count % len(labels)]
            side = "backup" if (count // len(labels)) % 2 == 0 else "primary"
            if count == 101:
                doomed.process.send_signal(signal.SIGKILL)
                killed = True
            in_flight = (label, side)
            try:
                status, _ = api.call("POST", f"/v1/groups/{label}/switch", {"to": side})
            except OSError:
                break  # the connection died with the server
            if status != 200:
                break
            acknowledged[label] = side
            in_flight = None
        assert killed and len(acknowledged) == len(labels)
    finally:
        kill_9(doomed)
    assert integrity(tmp_path / "fodns.db") == "ok"

    again = Api(fodns_factory(TOKEN, directory=tmp_path, workers=workers), TOKEN)
    for label in labels:
        allowed = {acknowledged[label]}
        if in_flight is not None and in_flight[0] == label:
            allowed.add(in_flight[1])
        active = again.ok("GET", f"/v1/groups/{label}")["active"]
        assert active in allowed, label
        assert served(again.server, f"{label}.fo.example.net")[1] == SIDE_ANSWERS[active]


@pytest.mark.parametrize("point", ["before", "after"])
def test_a_kill_inside_a_commit_keeps_what_was_acknowledged_and_tears_nothing(
    tmp_path: Path, workers: int, fodns_factory: StartFodns, point: str
) -> None:
    """The writer stops inside a switch's transaction (FODNS_TEST_STALL_COMMIT, a test
    hook: before its COMMIT, or after COMMIT but before the reply) and fodns is SIGKILLed
    right there. The in-flight switch was never answered; afterwards the database is
    intact, every acknowledged switch is served, and the in-flight one is there in
    every table (group, event log, SOA serial) or in none: none when the kill came
    before COMMIT, all when after it."""
    trigger = tmp_path / "stall"
    doomed = start_with_config(
        tmp_path, TOKEN, workers=workers, env={"FODNS_TEST_STALL_COMMIT": str(trigger)}
    )
    replies: list[object] = []
    try:
        api = Api(doomed, TOKEN)
        two_apps(api)
        labels = [
            api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
            for _ in range(3)
        ]
        acknowledged = dict.fromkeys(labels, "primary")
        for count in range(7):
            label = labels[count % len(labels)]
            acknowledged[label] = "backup" if acknowledged[label] == "primary" else "primary"
            api.ok("POST", f"/v1/groups/{label}/switch", {"to": acknowledged[label]})
        last_seq = api.ok("GET", "/v1/events?limit=1")["events"][0]["seq"]
        serial = served(doomed, "fo.example.net", "SOA")[1]
        label = labels[0]
        side = "backup" if acknowledged[label] == "primary" else "primary"

        trigger.write_text(f"{point} {last_seq + 1}")  # stall the next change's commit

        def switch() -> None:
            with contextlib.suppress(OSError):  # the connection dies with the server
                replies.append(api.call("POST", f"/v1/groups/{label}/switch", {"to": side}))

        threading.Thread(target=switch, daemon=True).start()
        assert wait_for(lambda: doomed.log_events(STALLED), 30), "the writer never stalled"
        assert doomed.log_events(STALLED)[0]["point"] == point
        fqdn = f"{label}.fo.example.net"
        if point == "before":  # not committed: no reader and no DNS worker sees it
            assert api.ok("GET", f"/v1/groups/{label}")["active"] == acknowledged[label]
            assert served(doomed, fqdn)[1] == SIDE_ANSWERS[acknowledged[label]]
        else:  # committed: every reader sees it
            assert api.ok("GET", f"/v1/groups/{label}")["active"] == side
        assert replies == [], "the switch was answered before its commit was done"
        doomed.process.send_signal(signal.SIGKILL)
    finally:
        kill_9(doomed)
    assert replies == [], "the switch was answered before its commit was done"
    assert integrity(tmp_path / "fodns.db") == "ok"

    kept = point == "after"
    again = Api(fodns_factory(TOKEN, directory=tmp_path, workers=workers), TOKEN)
    expected = {**acknowledged, label: side} if kept else acknowledged
    for each in labels:
        assert again.ok("GET", f"/v1/groups/{each}")["active"] == expected[each], each
        assert served(again.server, f"{each}.fo.example.net")[1] == SIDE_ANSWERS[expected[each]]
    logged = again.ok("GET", f"/v1/events?after={last_seq}")["events"]
    assert [(e["seq"], e["group"], e["after"]["active"]) for e in logged] == (
        [(last_seq + 1, label, side)] if kept else []
    )
    (moved,) = served(again.server, "fo.example.net", "SOA")[1]
    (was,) = serial
    assert int(moved.split()[2]) == int(was.split()[2]) + (1 if kept else 0)


def test_metrics_count_switches_requests_changes_and_answer_latency(
    running: FodnsProcess, api: Api
) -> None:
    two_apps(api)
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})  # idempotent: not counted
    api.call("GET", "/v1/groups/000-000-000")
    for _ in range(20):
        served(running, f"{label}.fo.example.net")

    def scrape() -> dict[str, float]:
        status, text = running.http_get("/metrics")
        assert status == 200
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    # Workers report their counters once a second.
    key = 'fodns_dns_queries_total{qtype="A",rcode="NOERROR"}'
    assert wait_for(lambda: scrape().get(key, 0) >= 20, 5)
    samples = scrape()
    assert samples["fodns_groups_switches_total"] == 1
    assert samples["fodns_table_changes_total"] == 4  # two apps, a group, a switch
    switch_route = (
        'fodns_api_requests_total{method="POST",route="/v1/groups/{label}/switch",status="200"}'
    )
    assert samples[switch_route] == 2
    assert (
        samples['fodns_api_requests_total{method="GET",route="/v1/groups/{label}",status="404"}']
        == 1
    )
    assert samples['fodns_dns_queries_total{qtype="A",rcode="NOERROR"}'] >= 20
    assert samples["fodns_dns_answer_latency_seconds_count"] >= 20
    assert (
        samples['fodns_dns_answer_latency_seconds_bucket{le="+Inf"}']
        == (samples["fodns_dns_answer_latency_seconds_count"])
    )


def test_an_oversized_request_is_refused_with_413(shared_api: Api) -> None:
    status, reply = shared_api.call(
        "POST", "/v1/apps", {"name": "big", "web_servers": ["192.0.2.1"], "reason": "x" * 100_000}
    )
    assert status == 413 and reply["error"]["code"] == "too_large"
    assert shared_api.call("GET", "/v1/apps/big")[0] == 404  # nothing was committed


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie's entry (nobody has reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def test_dns_workers_stop_when_fodns_is_killed_9(fodns_factory: StartFodns, tmp_path: Path) -> None:
    """SIGKILL gives fodns no chance to stop its DNS workers: they must notice and stop
    themselves. One left running would go on answering on the SO_REUSEPORT port beside
    a restarted fodns, with whatever state it had when its parent died."""
    doomed = start_with_config(tmp_path, TOKEN, workers=2)
    try:
        status, body = doomed.http_get("/healthz")
        worker_pids = [worker["pid"] for worker in json.loads(body)["dns_workers"]]
        assert status == 200 and len(worker_pids) == 2
    finally:
        kill_9(doomed)
    try:
        assert wait_for(lambda: all(map(process_gone, worker_pids)), 30), "workers outlived fodns"
    finally:
        for pid in worker_pids:  # our own grandchildren, by PID, should the test fail
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)
