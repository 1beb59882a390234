"""Requests as fodns/schemas.py defines them: the document publishes the very schemas the
server validates with, its examples pass, and each constraint holds on a real `fodns
serve` over real HTTP at its boundary (just inside accepted, just outside a 400
naming the field)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fodns import schemas
from fodns.openapi import openapi_document
from tests.support import Api, FodnsProcess, serving, start_with_config

TOKEN = "schemas-test-token-5d1c"

# Every operation of the document with the body schema the server checks it against:
# a route added to the document must be added here.
BODIES: dict[tuple[str, str], schemas.Schema | None] = {
    ("get", "/v1/zones"): None,
    ("get", "/v1/apps"): None,
    ("post", "/v1/apps"): schemas.NEW_APP,
    ("get", "/v1/apps/{name}"): None,
    ("patch", "/v1/apps/{name}"): schemas.APP_CHANGE,
    ("delete", "/v1/apps/{name}"): None,
    ("get", "/v1/apps/{name}/status"): None,
    ("put", "/v1/apps/{name}/check"): schemas.CHECK_BODY,
    ("get", "/v1/apps/{name}/check"): None,
    ("delete", "/v1/apps/{name}/check"): None,
    ("get", "/v1/groups"): None,
    ("post", "/v1/groups"): schemas.NEW_GROUP,
    ("get", "/v1/groups/{label}"): None,
    ("patch", "/v1/groups/{label}"): schemas.GROUP_CHANGE,
    ("delete", "/v1/groups/{label}"): None,
    ("post", "/v1/groups/{label}/switch"): schemas.SWITCH,
    ("delete", "/v1/groups/{label}/pin"): None,
    ("get", "/v1/events"): None,
    ("get", "/v1/health"): None,
    ("post", "/v1/probes/{name}/reports"): schemas.REPORT,
    ("get", "/v1/route53/plan"): None,
    ("post", "/v1/route53/sync"): None,
    ("get", "/v1/token"): None,
    ("get", "/v1/tokens"): None,
    ("post", "/v1/tokens"): schemas.NEW_TOKEN,
    ("get", "/v1/tokens/{name}"): None,
    ("delete", "/v1/tokens/{name}"): None,
    ("get", "/v1/webhooks"): None,
    ("post", "/v1/webhooks"): schemas.NEW_WEBHOOK,
    ("get", "/v1/webhooks/{id}"): None,
    ("patch", "/v1/webhooks/{id}"): schemas.WEBHOOK_CHANGE,
    ("delete", "/v1/webhooks/{id}"): None,
    ("get", "/v1/webhooks/{id}/deliveries"): None,
    ("post", "/v1/webhooks/{id}/test"): None,
    ("get", "/v1/acme/registrations"): None,
    ("post", "/v1/acme/registrations"): schemas.NEW_ACME_REGISTRATION,
    ("get", "/v1/acme/registrations/{subdomain}"): None,
    ("delete", "/v1/acme/registrations/{subdomain}"): None,
}
# The parameters each operation's server-side checks read: path and query schemas.
PARAMETERS: dict[tuple[str, str], list[schemas.Schema]] = {
    ("get", "/v1/apps"): [schemas.APPS_QUERY],
    ("get", "/v1/apps/{name}"): [schemas.APP_PATH],
    ("patch", "/v1/apps/{name}"): [schemas.APP_PATH],
    ("delete", "/v1/apps/{name}"): [schemas.APP_PATH, schemas.DELETE_QUERY],
    ("get", "/v1/apps/{name}/status"): [schemas.APP_PATH],
    ("put", "/v1/apps/{name}/check"): [schemas.APP_PATH],
    ("get", "/v1/apps/{name}/check"): [schemas.APP_PATH],
    ("delete", "/v1/apps/{name}/check"): [schemas.APP_PATH, schemas.DELETE_QUERY],
    ("get", "/v1/groups"): [schemas.GROUPS_QUERY],
    ("get", "/v1/groups/{label}"): [schemas.GROUP_PATH, schemas.GROUP_QUERY],
    ("patch", "/v1/groups/{label}"): [schemas.GROUP_PATH, schemas.GROUP_QUERY],
    ("delete", "/v1/groups/{label}"): [schemas.GROUP_PATH, schemas.DELETE_GROUP_QUERY],
    ("post", "/v1/groups/{label}/switch"): [schemas.GROUP_PATH, schemas.GROUP_QUERY],
    ("delete", "/v1/groups/{label}/pin"): [schemas.GROUP_PATH, schemas.DELETE_GROUP_QUERY],
    ("get", "/v1/events"): [schemas.EVENTS_QUERY],
    ("post", "/v1/probes/{name}/reports"): [schemas.PROBE_PATH],
    ("get", "/v1/tokens"): [schemas.TOKENS_QUERY],
    ("get", "/v1/tokens/{name}"): [schemas.TOKEN_PATH],
    ("delete", "/v1/tokens/{name}"): [schemas.TOKEN_PATH, schemas.DELETE_QUERY],
    ("get", "/v1/webhooks/{id}"): [schemas.WEBHOOK_PATH],
    ("patch", "/v1/webhooks/{id}"): [schemas.WEBHOOK_PATH],
    ("delete", "/v1/webhooks/{id}"): [schemas.WEBHOOK_PATH],
    ("get", "/v1/webhooks/{id}/deliveries"): [schemas.WEBHOOK_PATH],
    ("post", "/v1/webhooks/{id}/test"): [schemas.WEBHOOK_PATH],
    ("get", "/v1/acme/registrations"): [schemas.ACME_QUERY],
    ("get", "/v1/acme/registrations/{subdomain}"): [schemas.ACME_PATH],
    ("delete", "/v1/acme/registrations/{subdomain}"): [schemas.ACME_PATH, schemas.DELETE_QUERY],
}


def document_operations() -> Iterator[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    """(method, path, operation, its parameters with the path's) of the document."""
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            by_name = {p["name"]: p for p in item.get("parameters", [])}
            by_name.update({p["name"]: p for p in operation.get("parameters", [])})
            yield method, path, operation, list(by_name.values())


def body_schema(operation: dict[str, Any]) -> Any:
    body = operation.get("requestBody")
    if body is None:
        return None
    ref = body["content"]["application/json"]["schema"]["$ref"]
    return openapi_document()["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_every_request_schema_in_the_document_is_the_one_the_server_checks() -> None:
    seen = set()
    for method, path, operation, parameters in document_operations():
        seen.add((method, path))
        assert body_schema(operation) is BODIES[(method, path)], (method, path)
        checked: dict[str, Any] = {}
        for schema in PARAMETERS.get((method, path), []):
            checked.update(schema["properties"])
        documented = {p["name"]: p["schema"] for p in parameters}
        assert documented.keys() == checked.keys(), (method, path)
        for name, schema in documented.items():
            assert schema is checked[name], (method, path, name)
    assert seen == set(BODIES)


def examples() -> Iterator[tuple[str, schemas.Schema, Any]]:
    """Every example the document gives for a request: bodies and their fields."""
    bodies = (
        "NEW_APP",
        "APP_CHANGE",
        "NEW_GROUP",
        "GROUP_CHANGE",
        "SWITCH",
        "CHECK_BODY",
        "REPORT",
        "NEW_TOKEN",
        "NEW_WEBHOOK",
        "WEBHOOK_CHANGE",
        "NEW_ACME_REGISTRATION",
    )
    for name in bodies:
        body = getattr(schemas, name)
        for example in body["examples"]:
            yield name, body, example
        for field, schema in body["properties"].items():
            for example in schema.get("examples", []):
                yield f"{name}.{field}", schema, example
    for name in (
        "APPS_QUERY",
        "GROUPS_QUERY",
        "EVENTS_QUERY",
        "DELETE_QUERY",
        "PROBE_PATH",
        "TOKENS_QUERY",
        "TOKEN_PATH",
        "WEBHOOK_PATH",
        "ACME_PATH",
        "ACME_QUERY",
    ):
        for field, schema in getattr(schemas, name)["properties"].items():
            for example in schema.get("examples", []):
                yield f"{name}.{field}", schema, example


def test_every_request_body_has_an_example() -> None:
    for method, path, operation, _ in document_operations():
        body = body_schema(operation)
        assert body is None or body.get("examples"), (method, path)


@pytest.mark.parametrize(("where", "schema", "example"), list(examples()))
def test_the_documents_examples_are_accepted(where: str, schema: Any, example: Any) -> None:
    assert not list(schemas.validator(schema).iter_errors(example)), (where, example)


# ---- each constraint on a real server ------------------------------------------------


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FodnsProcess]:
    directory: Path = tmp_path_factory.mktemp("schemas")
    # The boundaries' webhooks point anywhere: nothing may be sent to them.
    no_delivery = "[webhooks]\nenabled = false\n"
    with serving(start_with_config(directory, TOKEN, workers=2, extra=no_delivery)) as server:
        yield server


@pytest.fixture(scope="module")
def api(running: FodnsProcess) -> Api:
    api = Api(running, TOKEN)
    api.ok("POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.1"]}, 201)
    api.ok("POST", "/v1/apps", {"name": "us", "web_servers": ["192.0.2.2"]}, 201)
    api.ok("POST", "/v1/groups", {"label": "edge", "primary": "eu", "backup": "us"}, 201)
    held = {"label": "held", "primary": "eu", "backup": "us", "failover": "auto"}
    api.ok("POST", "/v1/groups", held, 201)
    return api


ADDRESSES_32 = [f"192.0.2.{n}" for n in range(1, 33)]
ADDRESSES_33 = [*ADDRESSES_32, "192.0.2.33"]
LONGEST_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
HOOK = "http://127.0.0.1:9/"
LONGEST_URL = HOOK + "u" * (2048 - len(HOOK))
NO_WEBHOOK = "wh_0000000000000000"  # of a webhook's form, and none has it


def q(**values: str) -> str:
    return "?" + urllib.parse.urlencode(values)


# (method, path, body, field): a 400 naming `field`, or when it is None, taken past the
# checks (2xx, or 404 for a well-formed name that names nothing). The cases run on
# several xdist workers in any order, so none depends on another.
# ACME registrations (ACME is off on this server: a body the schema takes is a 404 after
# it, so only refusals are listed; tests/test_acme.py makes registrations).
ACME = "/v1/acme/registrations"
ACME_BOUNDARIES: list[tuple[str, str, Any, str | None]] = [
    ("POST", ACME, {"group": "edge"}, "names"),
    ("POST", ACME, {"names": ["www.shop.com"]}, "group"),
    ("POST", ACME, {"group": "-edge", "names": ["www.shop.com"]}, "group"),
    ("POST", ACME, {"group": "edge", "names": []}, "names"),
    ("POST", ACME, {"group": "edge", "names": [f"n{i}.shop.com" for i in range(101)]}, "names"),
    ("POST", ACME, {"group": "edge", "names": ["localhost"]}, "names"),
    ("POST", ACME, {"group": "edge", "names": ["*.*.shop.com"]}, "names"),
    ("POST", ACME, {"group": "edge", "names": ["www.shop.com"], "allowfrom": ["abc"]}, "allowfrom"),
    (
        "POST",
        ACME,
        {"group": "edge", "names": ["www.shop.com"], "allowfrom": ["192.0.2.0/33"]},
        "allowfrom",
    ),
    (
        "POST",
        ACME,
        {"group": "edge", "names": ["a.shop.com"], "allowfrom": [f"10.0.0.{i}" for i in range(33)]},
        "allowfrom",
    ),
    ("GET", f"{ACME}?group=-edge", None, "group"),
    ("GET", f"{ACME}/not-a-uuid", None, "subdomain"),
    ("DELETE", f"{ACME}/not-a-uuid", None, "subdomain"),
]
BOUNDARIES: list[tuple[str, str, Any, str | None]] = [
    *ACME_BOUNDARIES,
    # app names: 1-63 of [A-Za-z0-9._-], a letter or digit first, nothing after
    ("POST", "/v1/apps", {"name": "a"}, None),
    ("POST", "/v1/apps", {"name": "A" * 63}, None),
    ("POST", "/v1/apps", {"name": "b" * 64}, "name"),
    ("POST", "/v1/apps", {"name": "-b"}, "name"),
    ("POST", "/v1/apps", {"name": "b\n"}, "name"),
    ("POST", "/v1/apps", {"name": 7}, "name"),
    ("POST", "/v1/apps", {}, "name"),
    ("POST", "/v1/apps", {"name": "c", "colour": "red"}, "colour"),
    # an app without a web head is allowed, however it is said
    ("POST", "/v1/apps", {"name": "bare", "load_balancer": [], "web_servers": []}, None),
    ("POST", "/v1/apps", {"name": "bare-lb", "load_balancer": None}, "load_balancer"),
    # reasons: 1 to 1000 characters, not only spaces, no NUL, never null
    ("POST", "/v1/apps", {"name": "r1", "reason": "x" * 1000}, None),
    ("POST", "/v1/apps", {"name": "r2", "reason": "x" * 1001}, "reason"),
    ("POST", "/v1/apps", {"name": "r3", "reason": ""}, "reason"),
    ("POST", "/v1/apps", {"name": "r4", "reason": " \t\x1c"}, "reason"),
    ("POST", "/v1/apps", {"name": "r5", "reason": None}, "reason"),
    ("POST", "/v1/apps", {"name": "r6", "reason": " x "}, None),
    # web heads: up to 32 addresses or one hostname, servable, no duplicates
    ("POST", "/v1/apps", {"name": "w1", "web_servers": ADDRESSES_32}, None),
    (
        "POST",
        "/v1/apps",
        {"name": "w2", "web_servers": [*ADDRESSES_32, "192.0.2.33"]},
        "web_servers",
    ),
    ("POST", "/v1/apps", {"name": "w3", "web_servers": ["192.0.2.1", "192.0.2.1"]}, "web_servers"),
    ("POST", "/v1/apps", {"name": "w4", "load_balancer": ["lb.example.com."]}, None),
    (
        "POST",
        "/v1/apps",
        {"name": "w5", "load_balancer": ["a.ex", "b.ex"]},
        "load_balancer",
    ),
    (
        "POST",
        "/v1/apps",
        {"name": "w6", "load_balancer": ["a.ex", "192.0.2.1"]},
        "load_balancer",
    ),
    ("POST", "/v1/apps", {"name": "w7", "load_balancer": [LONGEST_HOST]}, None),
    ("POST", "/v1/apps", {"name": "w8", "load_balancer": [LONGEST_HOST + "d"]}, "load_balancer"),
    ("POST", "/v1/apps", {"name": "w9", "load_balancer": ["localhost"]}, "load_balancer"),
    ("POST", "/v1/apps", {"name": "w10", "load_balancer": ["host.x1"]}, None),
    ("POST", "/v1/apps", {"name": "w11", "load_balancer": ["192.0.2.300"]}, "load_balancer"),
    ("POST", "/v1/apps", {"name": "w12", "load_balancer": ["host.1x"]}, "load_balancer"),
    ("POST", "/v1/apps", {"name": "w13", "web_servers": ["223.255.255.255"]}, None),
    ("POST", "/v1/apps", {"name": "w14", "web_servers": ["224.0.0.1"]}, "web_servers"),
    ("POST", "/v1/apps", {"name": "w15", "web_servers": ["::"]}, "web_servers"),
    ("POST", "/v1/apps", {"name": "w16", "web_servers": ["fe80::1%eth0"]}, "web_servers"),
    ("POST", "/v1/apps", {"name": "w17", "web_servers": ["ff02::1"]}, "web_servers"),
    ("POST", "/v1/apps", {"name": "w18", "web_servers": ["ff::1"]}, None),
    ("POST", "/v1/apps", {"name": "w19", "web_servers": [" 192.0.2.9"]}, "web_servers"),
    ("POST", "/v1/apps", {"name": "w20", "web_servers": "192.0.2.9"}, "web_servers"),
    ("PATCH", "/v1/apps/-x", {}, "name"),
    ("PATCH", "/v1/apps/eu", {"reason": None}, "reason"),
    ("PATCH", "/v1/apps/eu", {"name": "eu", "reason": "no change"}, None),
    # groups: labels, TTLs, sides
    ("POST", "/v1/groups", {"label": "a" * 63}, None),
    ("POST", "/v1/groups", {"label": "a" * 64}, "label"),
    ("POST", "/v1/groups", {"label": "g-"}, "label"),
    ("POST", "/v1/groups", {"label": "G-1"}, None),
    ("POST", "/v1/groups", {"label": "g1\n"}, "label"),
    ("POST", "/v1/groups", {"ttl": 5}, None),
    ("POST", "/v1/groups", {"ttl": 4}, "ttl"),
    ("POST", "/v1/groups", {"ttl": 86400}, None),
    ("POST", "/v1/groups", {"ttl": 86401}, "ttl"),
    ("POST", "/v1/groups", {"ttl": 30.0}, None),
    ("POST", "/v1/groups", {"ttl": True}, "ttl"),
    ("POST", "/v1/groups", {"primary": None, "backup": None}, None),
    ("POST", "/v1/groups", {"primary": 7}, "primary"),
    ("POST", "/v1/groups", {"zone": None}, "zone"),
    ("POST", "/v1/groups", {"label": None}, "label"),
    ("PATCH", "/v1/groups/edge", {"ttl": 5}, None),
    ("PATCH", "/v1/groups/edge", {"ttl": 4}, "ttl"),
    ("PATCH", "/v1/groups/edge", {"backup": "-us"}, "backup"),
    ("PATCH", "/v1/groups/edge-", {}, "label"),
    ("POST", "/v1/groups/edge/switch", {"to": "primary"}, None),
    ("POST", "/v1/groups/edge/switch", {"to": "sideways"}, "to"),
    ("POST", "/v1/groups/edge/switch", {}, "to"),
    ("POST", "/v1/groups/edge/switch", {"to": "primary", "reason": ""}, "reason"),
    # query parameters
    ("GET", "/v1/events" + q(after="0", before="9223372036854775807"), None, None),
    ("GET", "/v1/events" + q(after="-1"), None, "after"),
    ("GET", "/v1/events" + q(before="9223372036854775808"), None, "before"),
    ("GET", "/v1/events" + q(limit="1"), None, None),
    ("GET", "/v1/events" + q(limit="1000"), None, None),
    ("GET", "/v1/events" + q(limit="1001"), None, "limit"),
    ("GET", "/v1/events" + q(limit="0"), None, "limit"),
    ("GET", "/v1/events" + q(group="", app=""), None, None),
    ("GET", "/v1/apps" + q(limit="1000"), None, None),
    ("GET", "/v1/apps" + q(limit="1001"), None, "limit"),
    ("GET", "/v1/apps" + q(q="x" * 200), None, None),
    ("GET", "/v1/apps" + q(q="x" * 201), None, "q"),
    ("GET", "/v1/groups" + q(limit="0"), None, "limit"),
    ("GET", "/v1/groups" + q(cursor=""), None, "cursor"),
    ("GET", "/v1/groups" + q(cursor="a+b"), None, None),  # any name is a position
    ("GET", "/v1/groups" + q(cursor="a\x00b"), None, "cursor"),
    ("GET", "/v1/apps" + q(cursor="x" * 2000), None, None),
    ("GET", "/v1/apps" + q(cursor="x" * 2001), None, "cursor"),
    ("GET", "/v1/apps/-x", None, "name"),
    ("GET", "/v1/groups/-x", None, "label"),
    ("DELETE", "/v1/apps/us" + q(reason=""), None, "reason"),
    ("DELETE", "/v1/groups/edge" + q(reason="x" * 1001), None, "reason"),
    ("DELETE", "/v1/apps/gone" + q(reason="x" * 1000), None, None),
    # automatic failover: modes, a hold-down of 0 to a day, 1 to 100 switches an hour
    ("POST", "/v1/groups", {"failover": "auto", "failback": "auto"}, None),
    ("POST", "/v1/groups", {"failover": "sometimes"}, "failover"),
    ("POST", "/v1/groups", {"failback": None}, "failback"),
    ("POST", "/v1/groups", {"hold_down": 0}, None),
    ("POST", "/v1/groups", {"hold_down": 86400}, None),
    ("POST", "/v1/groups", {"hold_down": 86401}, "hold_down"),
    ("POST", "/v1/groups", {"hold_down": -1}, "hold_down"),
    ("POST", "/v1/groups", {"hold_down": 30.0}, None),
    ("POST", "/v1/groups", {"max_auto_switches": 1}, None),
    ("POST", "/v1/groups", {"max_auto_switches": 100}, None),
    ("POST", "/v1/groups", {"max_auto_switches": 101}, "max_auto_switches"),
    ("POST", "/v1/groups", {"max_auto_switches": 0}, "max_auto_switches"),
    ("PATCH", "/v1/groups/edge", {"failback": "auto", "hold_down": 0}, None),
    ("PATCH", "/v1/groups/edge", {"failover": None}, "failover"),
    ("PATCH", "/v1/groups/edge", {"max_auto_switches": True}, "max_auto_switches"),
    # pins: 1 s to 366 days, or null (until unpinned)
    ("POST", "/v1/groups/held/switch", {"to": "primary", "pin_for": 1}, None),
    ("POST", "/v1/groups/held/switch", {"to": "primary", "pin_for": 31622400}, None),
    ("POST", "/v1/groups/held/switch", {"to": "primary", "pin_for": None}, None),
    ("POST", "/v1/groups/held/switch", {"to": "primary", "pin_for": 0}, "pin_for"),
    ("POST", "/v1/groups/held/switch", {"to": "primary", "pin_for": 31622401}, "pin_for"),
    ("POST", "/v1/groups/held/switch", {"to": "primary", "pin_for": "1h"}, "pin_for"),
    ("DELETE", "/v1/groups/held/pin" + q(reason="x" * 1000), None, None),
    ("DELETE", "/v1/groups/held/pin" + q(reason=""), None, "reason"),
    ("DELETE", "/v1/groups/held-/pin", None, "label"),
    # checks: each bound of CheckSpec, and the rules between a type and its fields
    ("PUT", "/v1/apps/eu/check", {}, None),
    ("PUT", "/v1/apps/eu/check", {"port": 1}, None),
    ("PUT", "/v1/apps/eu/check", {"port": 65535}, None),
    ("PUT", "/v1/apps/eu/check", {"port": 0}, "port"),
    ("PUT", "/v1/apps/eu/check", {"port": 65536}, "port"),
    ("PUT", "/v1/apps/eu/check", {"port": 80.0}, None),
    ("PUT", "/v1/apps/eu/check", {"port": None}, "port"),
    ("PUT", "/v1/apps/eu/check", {"interval": 1}, None),
    ("PUT", "/v1/apps/eu/check", {"interval": 3600, "timeout": 3600}, None),
    ("PUT", "/v1/apps/eu/check", {"interval": 0}, "interval"),
    ("PUT", "/v1/apps/eu/check", {"interval": 0.999}, "interval"),
    ("PUT", "/v1/apps/eu/check", {"interval": 3600.5}, "interval"),
    ("PUT", "/v1/apps/eu/check", {"timeout": 0.1}, None),
    ("PUT", "/v1/apps/eu/check", {"timeout": 0.09}, "timeout"),
    ("PUT", "/v1/apps/eu/check", {"path": "/" + "a" * 999}, None),
    ("PUT", "/v1/apps/eu/check", {"path": "/" + "a" * 1000}, "path"),
    ("PUT", "/v1/apps/eu/check", {"path": "health"}, "path"),
    ("PUT", "/v1/apps/eu/check", {"path": "/a b"}, "path"),
    ("PUT", "/v1/apps/eu/check", {"path": "/health\n"}, "path"),
    ("PUT", "/v1/apps/eu/check", {"fall": 1, "rise": 100}, None),
    ("PUT", "/v1/apps/eu/check", {"fall": 0}, "fall"),
    ("PUT", "/v1/apps/eu/check", {"fall": 101}, "fall"),
    ("PUT", "/v1/apps/eu/check", {"rise": 0}, "rise"),
    ("PUT", "/v1/apps/eu/check", {"min_healthy": 32, "quorum": 16}, None),
    ("PUT", "/v1/apps/eu/check", {"min_healthy": 33}, "min_healthy"),
    ("PUT", "/v1/apps/eu/check", {"quorum": 17}, "quorum"),
    ("PUT", "/v1/apps/eu/check", {"status_min": 100, "status_max": 599}, None),
    ("PUT", "/v1/apps/eu/check", {"status_min": 99}, "status_min"),
    ("PUT", "/v1/apps/eu/check", {"status_max": 600}, "status_max"),
    ("PUT", "/v1/apps/eu/check", {"host": "Shop.Example.com."}, None),
    ("PUT", "/v1/apps/eu/check", {"host": None}, None),
    ("PUT", "/v1/apps/eu/check", {"host": "-shop.example.com"}, "host"),
    ("PUT", "/v1/apps/eu/check", {"host": "a" * 64 + ".example.com"}, "host"),
    ("PUT", "/v1/apps/eu/check", {"body_contains": "x" * 1000}, None),
    ("PUT", "/v1/apps/eu/check", {"body_contains": "x" * 1001}, "body_contains"),
    ("PUT", "/v1/apps/eu/check", {"body_contains": ""}, "body_contains"),
    ("PUT", "/v1/apps/eu/check", {"body_contains": "o\x00k"}, "body_contains"),
    ("PUT", "/v1/apps/eu/check", {"method": "HEAD", "body_contains": None}, None),
    ("PUT", "/v1/apps/eu/check", {"method": "HEAD", "body_contains": "ok"}, "body_contains"),
    ("PUT", "/v1/apps/eu/check", {"method": "POST"}, "method"),
    (
        "PUT",
        "/v1/apps/eu/check",
        {"type": "https", "method": "HEAD", "body_contains": "ok"},
        "body_contains",
    ),
    ("PUT", "/v1/apps/eu/check", {"type": "tcp", "port": 5432}, None),
    ("PUT", "/v1/apps/eu/check", {"type": "tcp"}, "port"),
    ("PUT", "/v1/apps/eu/check", {"type": "tcp", "port": 5432, "path": "/"}, "path"),
    ("PUT", "/v1/apps/eu/check", {"type": "tcp", "port": 5432, "host": None}, "host"),
    ("PUT", "/v1/apps/eu/check", {"type": "ftp"}, "type"),
    ("PUT", "/v1/apps/eu/check", {"tls_verify": "yes"}, "tls_verify"),
    ("PUT", "/v1/apps/eu/check", {"answers_follow_health": 1}, "answers_follow_health"),
    ("PUT", "/v1/apps/eu/check", {"colour": "red"}, "colour"),
    ("PUT", "/v1/apps/eu/check", {"reason": ""}, "reason"),
    ("PUT", "/v1/apps/eu/check", [], "body"),
    ("PUT", "/v1/apps/-eu/check", {}, "name"),
    ("GET", "/v1/apps/-eu/check", None, "name"),
    ("DELETE", "/v1/apps/us/check" + q(reason="x" * 1000), None, None),
    ("DELETE", "/v1/apps/us/check" + q(reason=" "), None, "reason"),
    # tokens: names (lower-case, not reserved), scopes, limits, expiry
    ("POST", "/v1/tokens", {"name": "t" * 63, "scope": "read"}, None),
    ("POST", "/v1/tokens", {"name": "t" * 64, "scope": "read"}, "name"),
    ("POST", "/v1/tokens", {"name": "Tok", "scope": "read"}, "name"),
    ("POST", "/v1/tokens", {"name": "health", "scope": "read"}, "name"),
    ("POST", "/v1/tokens", {"name": "t1", "scope": "root"}, "scope"),
    ("POST", "/v1/tokens", {"name": "t2", "scope": "admin", "groups": ["a*"]}, "groups"),
    ("POST", "/v1/tokens", {"name": "t3", "scope": "admin", "apps": ["a*"]}, "apps"),
    ("POST", "/v1/tokens", {"name": "t4", "scope": "admin", "groups": None}, None),
    ("POST", "/v1/tokens", {"name": "t5", "scope": "write", "groups": []}, "groups"),
    ("POST", "/v1/tokens", {"name": "t6", "scope": "write", "apps": ["x" * 64] * 32}, None),
    ("POST", "/v1/tokens", {"name": "t7", "scope": "write", "apps": ["x" * 65]}, "apps"),
    ("POST", "/v1/tokens", {"name": "t8", "scope": "write", "apps": ["x"] * 33}, "apps"),
    ("POST", "/v1/tokens", {"name": "t9", "scope": "write", "apps": ["a b"]}, "apps"),
    ("POST", "/v1/tokens", {"name": "t10", "scope": "read", "expires_in": 1}, None),
    ("POST", "/v1/tokens", {"name": "t11", "scope": "read", "expires_in": 0}, "expires_in"),
    ("POST", "/v1/tokens", {"name": "t12", "scope": "read", "expires_in": 315360000}, None),
    ("POST", "/v1/tokens", {"name": "t13", "scope": "read", "expires_in": 315360001}, "expires_in"),
    ("GET", "/v1/tokens" + q(revoked="true"), None, None),
    ("GET", "/v1/tokens" + q(revoked="yes"), None, "revoked"),
    ("DELETE", "/v1/tokens/Nobody", None, "name"),
    # webhooks: an http(s) URL of at most 2048 characters without userinfo or fragment,
    # kinds once each, name patterns, a secret of 16-200 printable characters
    ("POST", "/v1/webhooks", {"url": LONGEST_URL}, None),
    ("POST", "/v1/webhooks", {"url": LONGEST_URL + "u"}, "url"),
    ("POST", "/v1/webhooks", {"url": "HTTPS://[::1]:65535/a?b=c"}, None),
    ("POST", "/v1/webhooks", {"url": "http://127.0.0.1:65536/"}, "url"),
    ("POST", "/v1/webhooks", {"url": "http://127.0.0.1:0/"}, "url"),
    ("POST", "/v1/webhooks", {"url": "http://[:]/"}, "url"),
    ("POST", "/v1/webhooks", {"url": "http://me:pw@127.0.0.1/"}, "url"),
    ("POST", "/v1/webhooks", {"url": "http://127.0.0.1/#top"}, "url"),
    ("POST", "/v1/webhooks", {"url": "ftp://127.0.0.1/"}, "url"),
    ("POST", "/v1/webhooks", {"url": "http://127.0.0.1/a b"}, "url"),
    ("POST", "/v1/webhooks", {}, "url"),
    ("POST", "/v1/webhooks", {"url": HOOK, "events": ["switch", "admin"]}, None),
    ("POST", "/v1/webhooks", {"url": HOOK, "events": None}, None),
    ("POST", "/v1/webhooks", {"url": HOOK, "events": []}, "events"),
    ("POST", "/v1/webhooks", {"url": HOOK, "events": ["switch", "switch"]}, "events"),
    ("POST", "/v1/webhooks", {"url": HOOK, "events": ["test"]}, "events"),
    ("POST", "/v1/webhooks", {"url": HOOK, "groups": ["SHOP-*", "a" * 64]}, None),
    ("POST", "/v1/webhooks", {"url": HOOK, "groups": ["a" * 65]}, "groups"),
    ("POST", "/v1/webhooks", {"url": HOOK, "groups": []}, "groups"),
    ("POST", "/v1/webhooks", {"url": HOOK, "apps": [f"a{n}" for n in range(33)]}, "apps"),
    ("POST", "/v1/webhooks", {"url": HOOK, "apps": ["shop eu"]}, "apps"),
    ("POST", "/v1/webhooks", {"url": HOOK, "secret": "s" * 16}, None),
    ("POST", "/v1/webhooks", {"url": HOOK, "secret": "s" * 15}, "secret"),
    ("POST", "/v1/webhooks", {"url": HOOK, "secret": "s" * 200}, None),
    ("POST", "/v1/webhooks", {"url": HOOK, "secret": "s" * 201}, "secret"),
    ("POST", "/v1/webhooks", {"url": HOOK, "secret": "with a space 123"}, "secret"),
    ("POST", "/v1/webhooks", {"url": HOOK, "description": "d" * 200}, None),
    ("POST", "/v1/webhooks", {"url": HOOK, "description": "d" * 201}, "description"),
    ("POST", "/v1/webhooks", {"url": HOOK, "active": "yes"}, "active"),
    ("PATCH", "/v1/webhooks/wh_x", {}, "id"),
    ("PATCH", f"/v1/webhooks/{NO_WEBHOOK}", {"url": "gopher://x"}, "url"),
    ("GET", "/v1/webhooks/WH_0000000000000000", None, "id"),
    ("DELETE", f"/v1/webhooks/{NO_WEBHOOK}", None, None),
    # probes' reports: the path, the interval, each list's bound
    ("POST", "/v1/probes/local/reports", {"interval": 10, "apps": []}, "name"),
    ("POST", "/v1/probes/-p/reports", {"interval": 10, "apps": []}, "name"),
    ("POST", "/v1/probes/p1/reports", {"interval": 0.5, "apps": []}, "interval"),
    ("POST", "/v1/probes/p1/reports", {"interval": 3601, "apps": []}, "interval"),
    ("POST", "/v1/probes/p1/reports", {"interval": 10}, "apps"),
    ("POST", "/v1/probes/p1/reports", {"interval": 10, "apps": {}}, "apps"),
    (
        "POST",
        "/v1/probes/p1/reports",
        {"interval": 10, "apps": [{"app": "eu", "addresses": [{"address": "192.0.2.1"}]}]},
        "apps",
    ),
    (
        "POST",
        "/v1/probes/p1/reports",
        {
            "interval": 10,
            "apps": [{"app": "eu", "addresses": [{"address": "192.0.2.1", "state": "gone"}]}],
        },
        "apps",
    ),
    (
        "POST",
        "/v1/probes/p1/reports",
        {
            "interval": 10,
            "apps": [
                {"app": "eu", "addresses": [{"address": a, "state": "up"} for a in ADDRESSES_33]}
            ],
        },
        "apps",
    ),
    (
        "POST",
        "/v1/probes/p1/reports",
        {
            "interval": 10,
            "apps": [
                {
                    "app": "eu",
                    "addresses": [
                        {
                            "address": "192.0.2.1",
                            "state": "up",
                            "evidence": {f"k{n}": n for n in range(11)},
                        }
                    ],
                }
            ],
        },
        "apps",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    BOUNDARIES,
    ids=[f"{m} {p[:40]} {json.dumps(b)[:40]}" for m, p, b, _ in BOUNDARIES],
)
def test_each_constraint_holds_at_its_boundary(
    api: Api, method: str, path: str, body: Any, field: str | None
) -> None:
    status, reply = api.call(method, path, body)
    if field is None:
        assert status < 300 or (status == 404 and method == "DELETE"), (status, reply)
        return
    assert status == 400, (status, reply)
    assert reply["error"]["code"] == "invalid" and reply["error"]["field"] == field, reply
    assert reply["error"]["message"].startswith(f"{field}: ")


def test_the_boundaries_are_the_definitions_own() -> None:
    """The boundary table agrees with the definitions themselves: what the server refuses
    the schema refuses, what it takes the schema accepts."""
    for method, path, body, field in BOUNDARIES:
        if body is None or method == "GET":
            continue
        schema = {
            ("POST", "/v1/apps"): schemas.NEW_APP,
            ("POST", "/v1/groups"): schemas.NEW_GROUP,
            ("PATCH", "/v1/groups/edge"): schemas.GROUP_CHANGE,
            ("POST", "/v1/groups/edge/switch"): schemas.SWITCH,
            ("POST", "/v1/groups/held/switch"): schemas.SWITCH,
            ("PUT", "/v1/apps/eu/check"): schemas.CHECK_BODY,
            ("POST", "/v1/probes/p1/reports"): schemas.REPORT,
            ("POST", "/v1/tokens"): schemas.NEW_TOKEN,
            ("POST", "/v1/webhooks"): schemas.NEW_WEBHOOK,
            ("POST", ACME): schemas.NEW_ACME_REGISTRATION,
        }.get((method, path))
        if schema is None:
            continue
        valid = not list(schemas.validator(schema).iter_errors(body))
        assert valid is (field is None), (method, path, body)


# A check's rules between two fields, which JSON Schema cannot say: the schema takes
# these bodies, the server refuses each with a 400 naming the field (the operation's
# description says so).
BETWEEN_FIELDS: list[tuple[Any, str]] = [
    ({"timeout": 10.5}, "timeout"),  # the interval's default is 10
    ({"interval": 2, "timeout": 2.5}, "timeout"),
    ({"status_min": 300, "status_max": 299}, "status_max"),
    ({"status_min": 400}, "status_max"),  # the default status_max is 399
]


@pytest.mark.parametrize(("body", "field"), BETWEEN_FIELDS)
def test_a_checks_rules_between_fields_are_the_servers(api: Api, body: Any, field: str) -> None:
    assert not list(schemas.validator(schemas.CHECK_BODY).iter_errors(body))
    status, reply = api.call("PUT", "/v1/apps/eu/check", body)
    assert status == 400 and reply["error"]["field"] == field, reply
    assert field in schemas.CHECK_BODY["description"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/groups", {"primary": "eu", "backup": "eu"}),
        ("PATCH", "/v1/groups/edge", {"backup": "eu"}),
    ],
)
def test_one_app_on_both_sides_is_a_conflict_naming_the_side(
    api: Api, method: str, path: str, body: Any
) -> None:
    """A rule of groups no schema can say (two fields equal): 409, as the document
    lists for a rule of groups, not a 400 for a request its schema accepts."""
    status, reply = api.call(method, path, body)
    assert status == 409 and reply["error"]["field"] == "backup", reply


def test_a_group_is_created_without_a_body(api: Api) -> None:
    """The document makes POST /v1/groups's body optional: no body is an empty one."""
    status, reply = api.call("POST", "/v1/groups")
    assert status == 201, reply


def test_the_longest_query_the_document_allows_is_read(api: Api) -> None:
    """A reason of 1000 four-byte characters is 12,000 bytes percent-encoded, and a
    zone of 254 more: past aiohttp's default 8,190-byte request line, which answered
    a text/plain 400 to a request the document allows."""
    path = "/v1/groups/" + "z" * 63 + q(zone="\U0001d11e" * 254, reason="\U0001d11e" * 1000)
    status, reply = api.call("DELETE", path)
    assert status == 404 and reply["error"]["code"] == "not_found", reply
