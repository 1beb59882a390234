"""Failover groups end to end: real HTTP to the admin API, real DNS to the same process.

One test per rule of groups (DESIGN.md "Rules of groups"), each checked on the
wire with dnspython, not only in the API's reply.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.support import (
    EXAMPLE_ZONE,
    FodnsProcess,
    api_request,
    start_fodns,
    wait_for,
    write_config,
)

TOKEN = "groups-test-token-7f3a"


class Api:
    """The admin API over real HTTP, as curl or the CLI would use it."""

    def __init__(self, server: FodnsProcess, token: str | None = TOKEN) -> None:
        self.server = server
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        chosen = token if token is not None else self.token
        return api_request(self.server, method, path, body, chosen or "")

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, payload = self.call(method, path, body)
        assert got == status, f"{method} {path}: {got} {payload}"
        return payload


def start(tmp_path: Path, workers: int = 1) -> FodnsProcess:
    config = write_config(
        tmp_path, [("fo.example.net", EXAMPLE_ZONE)], dns_extra=f"workers = {workers}"
    )
    return start_fodns("--config", str(config), env={"FODNS_ADMIN_TOKEN": TOKEN})


@pytest.fixture(params=[pytest.param(1, id="workers1"), pytest.param(2, id="workers2")])
def workers(request: pytest.FixtureRequest) -> int:
    """Every rule of groups holds with one DNS process and with several."""
    return int(request.param)


@pytest.fixture
def server(tmp_path: Path, workers: int) -> Iterator[FodnsProcess]:
    running = start(tmp_path, workers)
    try:
        yield running
    finally:
        assert running.stop() == 0


@pytest.fixture
def api(server: FodnsProcess) -> Api:
    return Api(server)


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


def test_the_readme_walk_through(server: FodnsProcess, api: Api) -> None:
    """Two apps, a group, dig it, switch, dig again: the backup answers at once."""
    two_apps(api)
    group = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)
    assert re.fullmatch(r"\d{3}-\d{3}-\d{3}", group["label"])
    assert group["fqdn"] == f"{group['label']}.fo.example.net"
    assert group["active"] == "primary" and group["ttl"] == 30
    assert served(server, group["fqdn"]) == (dns.rcode.NOERROR, {"192.0.2.10", "192.0.2.11"}, 30)

    switched = api.ok(
        "POST", f"/v1/groups/{group['label']}/switch", {"to": "backup", "reason": "eu maintenance"}
    )
    assert switched["active"] == "backup"
    assert switched["answer"] == [{"type": "A", "data": "198.51.100.7"}]
    assert served(server, group["fqdn"]) == (dns.rcode.NOERROR, {"198.51.100.7"}, 30)

    (event, *_) = api.ok("GET", f"/v1/events?group={group['label']}")["events"]
    assert event["action"] == "group_switched" and event["actor"] == "admin"
    assert event["reason"] == "eu maintenance"
    assert event["before"]["active"] == "primary" and event["after"]["active"] == "backup"


def test_switching_to_the_active_side_records_nothing(server: FodnsProcess, api: Api) -> None:
    two_apps(api)
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
    before = api.ok("GET", "/v1/events")["events"]
    serial = served(server, "fo.example.net", "SOA")[1]
    again = api.ok("POST", f"/v1/groups/{label}/switch", {"to": "primary"})
    assert again["active"] == "primary"
    assert api.ok("GET", "/v1/events")["events"] == before
    assert served(server, "fo.example.net", "SOA")[1] == serial


def test_a_follower_reads_the_events_it_missed(api: Api) -> None:
    two_apps(api)
    seen = api.ok("GET", "/v1/events?limit=1")["events"][0]["seq"]
    assert api.ok("GET", f"/v1/events?after={seen}")["events"] == []
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})
    missed = api.ok("GET", f"/v1/events?after={seen}")["events"]
    assert [e["action"] for e in missed] == ["group_switched", "group_created"]  # newest first
    assert api.ok("GET", f"/v1/events?after={seen}&app=shop-us&limit=1")["events"] == missed[:1]


def test_a_label_is_never_reused(server: FodnsProcess, api: Api) -> None:
    api.ok("POST", "/v1/groups", {"label": "shop"}, 201)
    status, body = api.call("POST", "/v1/groups", {"label": "shop"})
    assert status == 409 and body["error"] == {
        "code": "conflict",
        "message": "label 'shop' is taken by a group in zone fo.example.net",
        "field": "label",
    }
    api.ok("DELETE", "/v1/groups/shop", status=204)
    assert served(server, "shop.fo.example.net")[0] == dns.rcode.NXDOMAIN
    status, body = api.call("POST", "/v1/groups", {"label": "shop"})
    assert status == 409, "a deleted group's label stays taken forever"
    assert body["error"]["field"] == "label"
    assert "used before and is never reused" in body["error"]["message"]


def test_a_group_without_apps_reserves_the_name(server: FodnsProcess, api: Api) -> None:
    group = api.ok("POST", "/v1/groups", {}, 201)
    assert group["primary"] is None and group["answer"] == []
    reply = server.udp(dns.message.make_query(group["fqdn"], "A"))
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer  # NODATA: the name exists
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


def test_backup_is_optional_and_switching_to_an_empty_side_is_refused(
    server: FodnsProcess, api: Api
) -> None:
    two_apps(api)
    group = api.ok("POST", "/v1/groups", {"primary": "shop-eu"}, 201)
    status, body = api.call("POST", f"/v1/groups/{group['label']}/switch", {"to": "backup"})
    assert status == 409 and "backup side" in body["error"]["message"]
    assert body["error"]["field"] == "to"
    assert served(server, group["fqdn"])[1] == {"192.0.2.10", "192.0.2.11"}


def test_a_group_pointing_at_apps_cannot_be_deleted(server: FodnsProcess, api: Api) -> None:
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


def test_an_app_in_a_group_cannot_be_deleted(server: FodnsProcess, api: Api) -> None:
    two_apps(api)
    api.ok("POST", "/v1/groups", {"primary": "shop-eu"}, 201)
    status, body = api.call("DELETE", "/v1/apps/shop-eu")
    assert status == 409 and "field" not in body["error"], "about the app, not a field"
    api.ok("DELETE", "/v1/apps/shop-us", status=204)


def test_renaming_an_app_keeps_its_groups_answering(server: FodnsProcess, api: Api) -> None:
    two_apps(api)
    group = api.ok("POST", "/v1/groups", {"primary": "shop-eu"}, 201)
    api.ok("PATCH", "/v1/apps/shop-eu", {"name": "shop-eu-west"})
    assert api.ok("GET", f"/v1/groups/{group['label']}")["primary"] == "shop-eu-west"
    assert served(server, group["fqdn"])[1] == {"192.0.2.10", "192.0.2.11"}


def test_a_web_head_change_is_followed_by_every_group_at_once(
    server: FodnsProcess, api: Api
) -> None:
    two_apps(api)
    groups = [api.ok("POST", "/v1/groups", {"primary": "shop-eu"}, 201) for _ in range(3)]
    api.ok("PATCH", "/v1/apps/shop-eu", {"load_balancer": ["lb.shop.example.com"]})
    for group in groups:
        assert served(server, group["fqdn"], "CNAME")[1] == {"lb.shop.example.com."}
    api.ok("PATCH", "/v1/apps/shop-eu", {"load_balancer": [], "web_servers": ["2001:db8::5"]})
    for group in groups:
        assert served(server, group["fqdn"], "AAAA")[1] == {"2001:db8::5"}
        assert served(server, group["fqdn"], "A")[1] == set()


def test_failover_status_follows_switches(server: FodnsProcess, api: Api) -> None:
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
    server: FodnsProcess, api: Api, token: str | None
) -> None:
    intruder = Api(server, token=token or "")
    for method, path, body in [
        ("POST", "/v1/apps", {"name": "evil", "web_servers": ["203.0.113.1"]}),
        ("POST", "/v1/groups", {"label": "evil"}),
        ("GET", "/v1/groups", None),
    ]:
        status, reply = intruder.call(method, path, body)
        assert status == 401 and reply["error"]["code"] == "unauthorized"
    assert api.ok("GET", "/v1/apps")["apps"] == []
    assert api.ok("GET", "/v1/events")["events"] == []
    assert served(server, "evil.fo.example.net")[0] == dns.rcode.NXDOMAIN


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
    api: Api, method: str, path: str, body: Any, field: str
) -> None:
    status, reply = api.call(method, path, body)
    assert status == 400, reply
    assert reply["error"]["field"] == field


def test_unknown_things_are_404(api: Api) -> None:
    for path in ("/v1/apps/nobody", "/v1/groups/000-000-000", "/v1/nothing-here"):
        status, reply = api.call("GET", path)
        assert status == 404 and reply["error"]["code"] == "not_found", path
    status, reply = api.call("POST", "/v1/groups", {"primary": "nobody"})
    assert status == 404 and reply["error"]["field"] == "primary"
    api.ok("POST", "/v1/apps", {"name": "taken", "web_servers": ["192.0.2.1"]}, 201)
    status, reply = api.call("POST", "/v1/apps", {"name": "taken"})
    assert status == 409 and reply["error"]["field"] == "name"


def test_a_label_used_by_the_zone_file_is_refused(server: FodnsProcess, api: Api) -> None:
    status, reply = api.call("POST", "/v1/groups", {"label": "www"})
    assert status == 409 and reply["error"]["field"] == "label"
    assert reply["error"]["message"] == (
        "www.fo.example.net is a name in the zone file; choose another label"
    )
    assert served(server, "www.fo.example.net")[1] == {"192.0.2.10", "192.0.2.11"}


def test_the_soa_serial_moves_with_every_change(server: FodnsProcess, api: Api) -> None:
    def serial() -> int:
        reply = server.udp(dns.message.make_query("fo.example.net", "SOA"))
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


def test_a_restart_serves_the_same_state(tmp_path: Path, workers: int) -> None:
    running = start(tmp_path, workers)
    api = Api(running)
    two_apps(api)
    group = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)
    api.ok("POST", f"/v1/groups/{group['label']}/switch", {"to": "backup"})
    before = served(running, group["fqdn"]), served(running, "fo.example.net", "SOA")
    assert running.stop() == 0

    again = start(tmp_path, workers)
    try:
        assert (served(again, group["fqdn"]), served(again, "fo.example.net", "SOA")) == before
        assert Api(again).ok("GET", f"/v1/groups/{group['label']}")["active"] == "backup"
    finally:
        assert again.stop() == 0


def test_every_worker_serves_a_switch_before_the_api_answers(tmp_path: Path) -> None:
    running = start(tmp_path, workers=2)
    try:
        api = Api(running)
        two_apps(api)
        group = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)
        for side, expected in [
            ("backup", {"198.51.100.7"}),
            ("primary", {"192.0.2.10", "192.0.2.11"}),
        ] * 3:
            api.ok("POST", f"/v1/groups/{group['label']}/switch", {"to": side})
            # Fresh sockets: SO_REUSEPORT spreads them over both workers.
            answers = {frozenset(served(running, group["fqdn"])[1]) for _ in range(20)}
            assert answers == {frozenset(expected)}
    finally:
        assert running.stop() == 0


def test_openapi_document_lists_exactly_the_served_routes(api: Api) -> None:
    document = api.ok("GET", "/v1/openapi.json")
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    expected = {
        ("/v1/zones", "GET"),
        ("/v1/apps", "GET"),
        ("/v1/apps", "POST"),
        ("/v1/apps/{name}", "GET"),
        ("/v1/apps/{name}", "PATCH"),
        ("/v1/apps/{name}", "DELETE"),
        ("/v1/apps/{name}/status", "GET"),
        ("/v1/groups", "GET"),
        ("/v1/groups", "POST"),
        ("/v1/groups/{label}", "GET"),
        ("/v1/groups/{label}", "PATCH"),
        ("/v1/groups/{label}", "DELETE"),
        ("/v1/groups/{label}/switch", "POST"),
        ("/v1/events", "GET"),
        ("/v1/route53/plan", "GET"),
        ("/v1/route53/sync", "POST"),
    }
    assert documented == expected
    for path, method in expected:
        concrete = path.replace("{name}", "nobody").replace("{label}", "000-000-000")
        status, _ = api.call(method, concrete, {} if method in ("POST", "PATCH") else None)
        assert status != 405, f"{method} {path} is documented but not served"


def test_route53_calls_without_the_mirror_say_it_is_not_enabled(api: Api) -> None:
    status, payload = api.call("GET", "/v1/route53/plan")
    assert status == 404
    assert "not enabled" in payload["error"]["message"]


def test_a_generated_token_is_kept_beside_the_database(tmp_path: Path) -> None:
    config = write_config(tmp_path, [("fo.example.net", EXAMPLE_ZONE)])
    running = start_fodns("--config", str(config), env={"FODNS_ADMIN_TOKEN": ""})
    try:
        token_file = tmp_path / "admin-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        assert Api(running, token=token).ok("GET", "/v1/groups")["groups"] == []
        assert Api(running, token="nope").call("GET", "/v1/groups")[0] == 401
        assert token not in "".join(running.stderr_lines), "the token must never be logged"
    finally:
        running.process.send_signal(signal.SIGTERM)
        assert running.stop() == 0


def test_every_acknowledged_switch_survives_kill_9(tmp_path: Path, workers: int) -> None:
    """Switches stream in; the server is SIGKILLed mid-stream; after a restart on the
    same database every acknowledged switch is served. At most one request was in
    flight at the kill: its group may show either side."""
    running = start(tmp_path, workers)
    api = Api(running)
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
            running.process.send_signal(signal.SIGKILL)
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
    running.process.wait(10)

    again = start(tmp_path, workers)
    try:
        expected = {"backup": {"198.51.100.7"}, "primary": {"192.0.2.10", "192.0.2.11"}}
        for label in labels:
            fqdn = f"{label}.fo.example.net"
            allowed = {acknowledged[label]}
            if in_flight is not None and in_flight[0] == label:
                allowed.add(in_flight[1])
            active = Api(again).ok("GET", f"/v1/groups/{label}")["active"]
            assert active in allowed, label
            assert served(again, fqdn)[1] == expected[active]
    finally:
        assert again.stop() == 0


def test_metrics_count_switches_requests_changes_and_answer_latency(
    server: FodnsProcess, api: Api
) -> None:
    two_apps(api)
    label = api.ok("POST", "/v1/groups", {"primary": "shop-eu", "backup": "shop-us"}, 201)["label"]
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})
    api.ok("POST", f"/v1/groups/{label}/switch", {"to": "backup"})  # idempotent: not counted
    api.call("GET", "/v1/groups/000-000-000")
    for _ in range(20):
        served(server, f"{label}.fo.example.net")

    def scrape() -> dict[str, float]:
        status, text = server.http_get("/metrics")
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


def test_an_oversized_request_is_refused_with_413(api: Api) -> None:
    status, reply = api.call(
        "POST", "/v1/apps", {"name": "big", "web_servers": ["192.0.2.1"], "reason": "x" * 100_000}
    )
    assert status == 413 and reply["error"]["code"] == "too_large"
    assert api.ok("GET", "/v1/apps")["apps"] == []
