"""Health checks, automatic failover and pins through the admin API and the CLI, over
real HTTP to one real `fodns serve` (DNS checked on the wire where a change moves an
answer): an app's check set, read and removed with its defaults filled in, each bad
check a 400 naming its field, a group's failover settings, a person's pin and its
end, /v1/health and a probe's report. Every reply is checked against the document."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import dns.message
import jsonschema
import pytest

from tests.support import (
    Api,
    FodnsProcess,
    answer_data,
    http_exchange,
    serving,
    start_with_config,
    wait_for,
)

TOKEN = "health-api-test-token-3b7e"
ACTOR = "admin"  # the name of the token fodns serve takes from FODNS_ADMIN_TOKEN
# Until fodns/service.py hands the checker to the API (create_app's `checker`), the
# health routes are the documented 404s: these tests say what they must do then.


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FodnsProcess]:
    """One fodns for the module; each test uses apps and groups of its own."""
    with serving(start_with_config(tmp_path_factory.mktemp("health"), TOKEN)) as server:
        yield server


@pytest.fixture(scope="module")
def api(running: FodnsProcess) -> Api:
    return Api(running, TOKEN)


@pytest.fixture(scope="module")
def document(api: Api) -> dict[str, Any]:
    return dict(api.ok("GET", "/v1/openapi.json"))


def conforms(document: dict[str, Any], path: str, method: str, status: int, payload: Any) -> Any:
    """`payload`, after checking it against the document's schema for that reply."""
    responses = document["paths"][path][method]["responses"]
    response = responses[str(status)]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    jsonschema.validate(
        payload,
        {**schema, "components": document["components"]},
        cls=jsonschema.Draft202012Validator,
    )
    return payload


def two_apps(api: Api, prefix: str) -> tuple[str, str]:
    primary, backup = f"{prefix}-eu", f"{prefix}-us"
    api.ok("POST", "/v1/apps", {"name": primary, "web_servers": ["192.0.2.10"]}, 201)
    api.ok("POST", "/v1/apps", {"name": backup, "web_servers": ["198.51.100.7"]}, 201)
    return primary, backup


def events_of(api: Api, **query: str) -> list[dict[str, Any]]:
    path = "/v1/events?" + "&".join(f"{name}={value}" for name, value in query.items())
    return list(api.ok("GET", path)["events"])


def served_a(server: FodnsProcess, fqdn: str) -> set[str]:
    return answer_data(server.udp(dns.message.make_query(fqdn, "A")))


# ---- checks ---------------------------------------------------------------------------

CHECK = "/v1/apps/{name}/check"
DEFAULTS = {
    "type": "http",
    "port": 80,
    "method": "GET",
    "path": "/",
    "host": None,
    "status_min": 200,
    "status_max": 399,
    "body_contains": None,
    "tls_verify": True,
    "interval": 10.0,
    "timeout": 5.0,
    "fall": 3,
    "rise": 2,
    "min_healthy": 1,
    "quorum": 1,
    "answers_follow_health": False,
}


def test_a_check_is_set_read_and_removed_with_its_defaults_filled_in(
    api: Api, document: dict[str, Any]
) -> None:
    api.ok("POST", "/v1/apps", {"name": "checked", "web_servers": ["192.0.2.20"]}, 201)
    status, missing = api.call("GET", "/v1/apps/checked/check")
    assert status == 404 and missing["error"]["message"] == "app 'checked' has no check"
    assert "field" not in missing["error"]
    conforms(document, CHECK, "get", 404, missing)

    body = {"path": "/healthz", "interval": 2, "host": "Shop.Example.com.", "reason": "go live"}
    stored = api.ok("PUT", "/v1/apps/checked/check", body)
    expected = {**DEFAULTS, "path": "/healthz", "interval": 2.0, "timeout": 2.0}
    assert stored == {**expected, "host": "shop.example.com"}
    assert conforms(document, CHECK, "get", 200, api.ok("GET", "/v1/apps/checked/check")) == stored
    app = conforms(document, "/v1/apps/{name}", "get", 200, api.ok("GET", "/v1/apps/checked"))
    assert app["down"] == []

    (event,) = events_of(api, app="checked", limit="1")
    assert (event["action"], event["actor"], event["reason"]) == ("check_set", ACTOR, "go live")
    assert (event["before"], event["after"]) == (None, stored)

    # The same check again changes nothing, and records nothing.
    assert api.ok("PUT", "/v1/apps/checked/check", body) == stored
    assert events_of(api, app="checked", limit="1") == [event]

    assert api.ok("DELETE", "/v1/apps/checked/check?reason=retired", status=204) is None
    (deleted,) = events_of(api, app="checked", limit="1")
    assert (deleted["action"], deleted["reason"]) == ("check_deleted", "retired")
    assert (deleted["before"], deleted["after"]) == (stored, None)
    assert api.call("GET", "/v1/apps/checked/check")[0] == 404
    # No check: nothing to remove, nothing recorded; no app: 404.
    assert api.ok("DELETE", "/v1/apps/checked/check", status=204) is None
    assert events_of(api, app="checked", limit="1") == [deleted]
    status, reply = api.call("GET", "/v1/apps/nobody/check")
    assert status == 404 and reply["error"]["message"] == "no app named 'nobody'"


def test_a_tcp_check_has_no_http_fields_and_reads_back(api: Api, document: dict[str, Any]) -> None:
    api.ok("POST", "/v1/apps", {"name": "database", "web_servers": ["192.0.2.30"]}, 201)
    stored = api.ok("PUT", "/v1/apps/database/check", {"type": "tcp", "port": 5432})
    http_only = {"method", "path", "host", "body_contains", "status_min", "status_max"}
    assert stored == {
        **{name: value for name, value in DEFAULTS.items() if name not in http_only},
        "type": "tcp",
        "port": 5432,
    }
    conforms(document, CHECK, "put", 200, stored)
    # Once stored it reads back, and putting it again records nothing.
    assert api.ok("GET", "/v1/apps/database/check") == stored
    before = events_of(api, app="database")
    assert api.ok("PUT", "/v1/apps/database/check", {"type": "tcp", "port": 5432}) == stored
    assert events_of(api, app="database") == before


@pytest.fixture(scope="module")
def checked_app(api: Api) -> str:
    api.ok("POST", "/v1/apps", {"name": "refused", "web_servers": ["192.0.2.40"]}, 201)
    return "refused"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"port": 0}, "port"),
        ({"interval": 0}, "interval"),
        ({"path": "health"}, "path"),
        ({"fall": 0}, "fall"),
        ({"type": "tcp"}, "port"),
        ({"type": "tcp", "port": 22, "method": "GET"}, "method"),
        ({"interval": 5, "timeout": 6}, "timeout"),
        ({"status_min": 300, "status_max": 299}, "status_max"),
        ({"method": "HEAD", "body_contains": "ok"}, "body_contains"),
        ({"path": "/", "retries": 3}, "retries"),
        # Python writes these, JSON has no such numbers, and a NaN passes every bound.
        ({"interval": float("nan")}, "body"),
        ({"timeout": float("inf")}, "body"),
    ],
)
def test_each_bad_check_is_a_400_naming_the_field(
    api: Api, document: dict[str, Any], checked_app: str, body: Any, field: str
) -> None:
    status, reply = api.call("PUT", f"/v1/apps/{checked_app}/check", body)
    assert status == 400, reply
    conforms(document, CHECK, "put", 400, reply)
    assert reply["error"]["field"] == field and reply["error"]["message"].startswith(f"{field}: ")
    assert api.call("GET", f"/v1/apps/{checked_app}/check")[0] == 404, "nothing was stored"


# ---- a group's failover settings, pins -------------------------------------------------

GROUP = "/v1/groups/{label}"


def test_a_groups_failover_settings_are_kept_and_shown(api: Api, document: dict[str, Any]) -> None:
    primary, backup = two_apps(api, "modes")
    created = api.ok(
        "POST",
        "/v1/groups",
        {"label": "modes", "primary": primary, "backup": backup, "failover": "auto"},
        201,
    )
    conforms(document, "/v1/groups", "post", 201, created)
    assert {name: created[name] for name in ("failover", "failback", "hold_down")} == {
        "failover": "auto",
        "failback": "manual",  # the defaults for what was left out
        "hold_down": 300,
    }
    assert (created["max_auto_switches"], created["pin"]) == (4, None)

    change = {"failback": "auto", "hold_down": 0, "max_auto_switches": 100}
    updated = api.ok("PATCH", "/v1/groups/modes", change)
    assert {name: updated[name] for name in change} == change and updated["failover"] == "auto"
    assert conforms(document, GROUP, "get", 200, api.ok("GET", "/v1/groups/modes")) == updated
    (listed,) = [g for g in api.ok("GET", "/v1/groups?q=modes")["groups"] if g["label"] == "modes"]
    assert listed == updated
    (event,) = events_of(api, group="modes", limit="1")
    assert event["action"] == "group_updated"
    assert (event["before"]["hold_down"], event["after"]["hold_down"]) == (300, 0)

    for body, field in [
        ({"failover": "sometimes"}, "failover"),
        ({"hold_down": 86401}, "hold_down"),
        ({"max_auto_switches": 0}, "max_auto_switches"),
    ]:
        status, reply = api.call("PATCH", "/v1/groups/modes", body)
        assert status == 400 and reply["error"]["field"] == field, reply
    assert api.ok("GET", "/v1/groups/modes") == updated


def test_a_persons_switch_pins_an_auto_group_until_unpinned(
    running: FodnsProcess, api: Api, document: dict[str, Any]
) -> None:
    primary, backup = two_apps(api, "pinned")
    body = {"label": "pinned", "primary": primary, "backup": backup, "failover": "auto"}
    api.ok("POST", "/v1/groups", body, 201)

    switch = {"to": "backup", "pin_for": 600, "reason": "eu maintenance"}
    switched = api.ok("POST", "/v1/groups/pinned/switch", switch)
    conforms(document, "/v1/groups/{label}/switch", "post", 200, switched)
    pin = switched["pin"]
    assert switched["active"] == "backup"
    assert (pin["side"], pin["actor"], pin["reason"]) == ("backup", ACTOR, "eu maintenance")
    at, until = datetime.fromisoformat(pin["at"]), datetime.fromisoformat(pin["until"])
    assert until - at == timedelta(seconds=600)
    assert served_a(running, "pinned.fo.example.net") == {"198.51.100.7"}
    assert api.ok("GET", "/v1/groups/pinned")["pin"] == pin
    (event,) = events_of(api, group="pinned", limit="1")
    assert event["action"] == "group_switched" and event["after"]["pin"] == pin

    # To the side already live: no switch, but a new pin, without an end this time.
    again = api.ok("POST", "/v1/groups/pinned/switch", {"to": "backup", "pin_for": None})
    assert again["active"] == "backup" and again["pin"]["until"] is None
    (event,) = events_of(api, group="pinned", limit="1")
    assert event["action"] == "group_pinned" and event["before"]["pin"] == pin

    unpinned = api.ok("DELETE", "/v1/groups/pinned/pin?reason=maintenance%20over")
    conforms(document, "/v1/groups/{label}/pin", "delete", 200, unpinned)
    assert unpinned["pin"] is None and unpinned["active"] == "backup"
    assert api.ok("GET", "/v1/groups/pinned")["pin"] is None
    (event,) = events_of(api, group="pinned", limit="1")
    assert (event["action"], event["reason"]) == ("group_unpinned", "maintenance over")
    assert event["before"]["pin"] == again["pin"] and event["after"]["pin"] is None
    # No pin: the group as it is, nothing recorded.
    assert api.ok("DELETE", "/v1/groups/pinned/pin") == unpinned
    assert events_of(api, group="pinned", limit="1") == [event]
    status, reply = api.call("DELETE", "/v1/groups/no-such-group/pin")
    assert status == 404 and reply["error"]["code"] == "not_found"


def test_a_manual_group_has_nothing_to_pin(api: Api, document: dict[str, Any]) -> None:
    primary, backup = two_apps(api, "manual")
    api.ok("POST", "/v1/groups", {"label": "manual", "primary": primary, "backup": backup}, 201)
    before = events_of(api, group="manual")
    for pin_for in (60, None):
        body = {"to": "backup", "pin_for": pin_for}
        status, reply = api.call("POST", "/v1/groups/manual/switch", body)
        assert status == 409 and reply["error"]["field"] == "pin_for", reply
        conforms(document, "/v1/groups/{label}/switch", "post", 409, reply)
    group = api.ok("GET", "/v1/groups/manual")
    assert (group["active"], group["pin"]) == ("primary", None)
    assert events_of(api, group="manual") == before
    # Without pin_for a person's switch of a manual group pins nothing.
    assert api.ok("POST", "/v1/groups/manual/switch", {"to": "backup"})["pin"] is None


def test_making_a_group_manual_ends_its_pin(api: Api) -> None:
    primary, backup = two_apps(api, "ending")
    body = {"label": "ending", "primary": primary, "backup": backup, "failover": "auto"}
    api.ok("POST", "/v1/groups", body, 201)
    assert api.ok("POST", "/v1/groups/ending/switch", {"to": "backup"})["pin"] is not None
    manual = api.ok("PATCH", "/v1/groups/ending", {"failover": "manual"})
    assert (manual["failover"], manual["pin"], manual["active"]) == ("manual", None, "backup")


# ---- the CLI ---------------------------------------------------------------------------


def fodns(running: FodnsProcess, *args: str, stdin: str | None = None) -> Any:
    """`fodns ARGS` against `running`, which must succeed: its output, JSON-decoded
    when it is JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "fodns", *args],
        capture_output=True,
        text=True,
        timeout=30,
        input=stdin,
        env={
            "PATH": "/usr/bin:/bin",
            "FODNS_API": f"http://127.0.0.1:{running.api_port}",
            "FODNS_ADMIN_TOKEN": TOKEN,
        },
    )
    assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
    try:
        return json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        return done.stdout


def test_the_cli_sets_failover_pins_and_checks(running: FodnsProcess, api: Api) -> None:
    primary, backup = two_apps(api, "cli")
    created = fodns(
        running,
        *("group", "create", "--label", "cli", "--primary", primary, "--backup", backup),
        *("--failover", "auto", "--failback", "auto", "--hold-down", "60"),
        *("--max-auto-switches", "2"),
    )
    assert [created[name] for name in ("failover", "failback", "hold_down")] == ["auto", "auto", 60]
    assert created["max_auto_switches"] == 2
    updated = fodns(running, "group", "update", "cli", "--max-auto-switches", "3")
    assert (updated["max_auto_switches"], updated["hold_down"]) == (3, 60)

    pinned = fodns(running, "group", "switch", "cli", "backup", "--pin-for", "90")
    pin = pinned["pin"]
    assert datetime.fromisoformat(pin["until"]) - datetime.fromisoformat(pin["at"]) == timedelta(
        seconds=90
    )
    forever = fodns(running, "group", "switch", "cli", "backup", "--pin-for", "forever")
    assert forever["pin"]["until"] is None
    assert fodns(running, "group", "unpin", "cli", "--reason", "done")["pin"] is None
    assert events_of(api, group="cli", limit="1")[0]["reason"] == "done"

    check = fodns(
        running,
        *("check", "set", primary, "--type", "https", "--path", "/status"),
        *("--check-timeout", "1.5", "--interval", "3", "--no-tls-verify"),
        "--answers-follow-health",
    )
    assert (check["type"], check["port"], check["path"]) == ("https", 443, "/status")
    assert (check["timeout"], check["interval"], check["tls_verify"]) == (1.5, 3.0, False)
    assert check["answers_follow_health"] is True
    assert fodns(running, "check", "show", primary) == check
    assert fodns(running, "check", "delete", primary, "--reason", "moved") is None
    assert api.call("GET", f"/v1/apps/{primary}/check")[0] == 404


def test_a_bad_pin_for_is_a_usage_error(running: FodnsProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fodns", "group", "switch", "x", "backup", "--pin-for", "1h"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "FODNS_ADMIN_TOKEN": TOKEN},
    )
    assert done.returncode == 2 and "neither a number of seconds nor 'forever'" in done.stderr


# ---- /v1/health and probes' reports -----------------------------------------------------


def checked_in_health(api: Api, name: str) -> dict[str, Any] | None:
    """The app as /v1/health shows it, once the checker has read its check (it reads
    the log a few times a second), else None."""
    for item in api.ok("GET", "/v1/health")["apps"]:
        if item["app"] == name:
            return dict(item)
    return None


def test_health_shows_the_checked_apps_and_the_auto_groups(
    running: FodnsProcess, api: Api, document: dict[str, Any]
) -> None:
    primary, backup = two_apps(api, "shown")
    api.ok("PUT", f"/v1/apps/{primary}/check", {"type": "tcp", "port": 9, "interval": 1})
    body = {"label": "shown", "primary": primary, "backup": backup, "failover": "auto"}
    api.ok("POST", "/v1/groups", body, 201)
    assert wait_for(lambda: checked_in_health(api, primary) is not None)
    health = conforms(document, "/v1/health", "get", 200, api.ok("GET", "/v1/health"))
    assert health["probes"][0]["name"] == "local"
    (app,) = [entry for entry in health["apps"] if entry["app"] == primary]
    assert app["check"] == {**app["check"], "type": "tcp", "port": 9}
    assert "shown.fo.example.net" in {group["fqdn"] for group in health["groups"]}
    table = fodns(running, "health")
    assert primary in table and "shown.fo.example.net" in table
    assert fodns(running, "health", "--json")["started_at"] == health["started_at"]


def test_a_probes_report_is_taken_and_named_back(api: Api, document: dict[str, Any]) -> None:
    api.ok("POST", "/v1/apps", {"name": "reported", "web_servers": ["192.0.2.50"]}, 201)
    api.ok("PUT", "/v1/apps/reported/check", {"type": "tcp", "port": 9})
    assert wait_for(lambda: checked_in_health(api, "reported") is not None)
    report = {
        "interval": 30,
        "apps": [
            {
                "app": "reported",
                "addresses": [
                    {"address": "192.0.2.50", "state": "down", "evidence": {"error": "refused"}}
                ],
            },
            {"app": "unchecked", "addresses": []},
        ],
    }
    path = "/v1/probes/{name}/reports"
    reply = conforms(
        document, path, "post", 200, api.ok("POST", "/v1/probes/probe-a/reports", report)
    )
    assert reply == {"probe": "probe-a", "accepted": 1, "unknown_apps": ["unchecked"]}
    probes = {probe["name"]: probe for probe in api.ok("GET", "/v1/health")["probes"]}
    assert probes["probe-a"]["live"] is True and probes["probe-a"]["interval"] == 30


def test_fodns_own_probe_name_is_refused(api: Api, document: dict[str, Any]) -> None:
    """Whether health checks run here or not: the name is the path's, checked first."""
    status, reply = api.call("POST", "/v1/probes/local/reports", {"interval": 10, "apps": []})
    assert status == 400 and reply["error"]["field"] == "name", reply
    conforms(document, "/v1/probes/{name}/reports", "post", 400, reply)


def test_a_report_may_be_megabytes_but_no_more(
    running: FodnsProcess, api: Api, document: dict[str, Any]
) -> None:
    """A probe reports every address it checks: past the 64 KiB of other bodies, up to
    8 MiB; beyond, a 413 saying the report's limit."""
    evidence = {"ok": False, "latency_ms": 5000.0, "status": None, "error": "timed out"}
    addresses = [{"address": "192.0.2.60", "state": "down", "evidence": evidence}]
    apps = [{"app": f"far-{number}", "addresses": addresses} for number in range(1500)]
    report = {"interval": 10, "apps": apps}
    assert len(json.dumps(report)) > 150_000
    status, reply = api.call("POST", "/v1/probes/big/reports", report)
    if status == 404:  # read and checked whole; no checker runs here to take it
        assert reply["error"]["message"] == "health checks are not running here"
    else:
        assert status == 200 and len(reply["unknown_apps"]) == 1500, (status, reply)

    too_big = json.dumps({"interval": 10, "apps": apps * 40}).encode()
    assert len(too_big) > 8 * 1024 * 1024
    status, _, body = http_exchange(running, "POST", "/v1/probes/big/reports", TOKEN, too_big)
    error = conforms(document, "/v1/probes/{name}/reports", "post", 413, json.loads(body))
    assert status == 413 and error["error"]["message"].endswith(f"{8 * 1024 * 1024} bytes")
