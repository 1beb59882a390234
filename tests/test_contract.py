"""The OpenAPI document is the contract. It lists exactly the operations the router
serves; every status an operation can answer is in it, each error with the Error body,
and each one, sent for real, validates against it; and schemathesis, generating
requests from /v1/openapi.json, finds no reply the document does not promise (a real
`fodns serve` with two DNS workers, every check, the stateful phase, a fixed seed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fodns.openapi import NOT_WAITING, openapi_document
from tests.route53_rig import TOKEN as RIG_TOKEN
from tests.route53_rig import Rig
from tests.support import FodnsProcess, contract_run, http_exchange
from tests.support.contract import routed_methods
from tests.support.workers import worker_pids

TOKEN = "contract-test-token-91c4"
StartFodns = Callable[..., FodnsProcess]
# A seed of its own and a time budget: fuzzing and the stateful phase repeat until 20 s
# are spent, so the run lasts that long on two busy cores however many operations
# pass (one that fails stops early). benchmarks/contract.py runs minutes, another seed.
SEED = 17
MAX_EXAMPLES = 100
MAX_TIME = 20
# schemathesis makes up webhook URLs: nothing may ever be sent to them.
NO_DELIVERY = "[webhooks]\nenabled = false\n"


@pytest.mark.timeout(180)
def test_schemathesis_finds_no_failure(fodns_factory: StartFodns, tmp_path: Path) -> None:
    assert shutil.which("st", path=str(Path(sys.executable).parent)), "schemathesis missing"
    running = fodns_factory(TOKEN, workers=2, extra=NO_DELIVERY)
    command = contract_run(running, TOKEN, SEED, MAX_EXAMPLES, MAX_TIME, tmp_path / "report")
    finished = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=170,
        cwd=tmp_path,  # its .schemathesis/
    )
    print(" ".join(command).replace(TOKEN, "$TOKEN"))
    print(finished.stdout[-20_000:], finished.stderr[-5_000:])
    assert running.alive()
    assert finished.returncode == 0, "schemathesis found failures (its summary is above)"


# ---- the document and the router agree --------------------------------------------------


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }


def test_the_document_lists_exactly_the_routed_operations(tmp_path: Path) -> None:
    """Walks the router of the app `fodns serve` builds: a route the document lacks, or
    an operation no route serves, fails here. HEAD (beside every GET) and OPTIONS (on
    every path) are the HTTP methods of every resource, said once in info.description
    (tests/test_http_methods.py checks them); the document is not listed in itself."""
    routes = routed_methods(tmp_path)
    routed = {
        (path, method)
        for path, methods in routes.items()
        if path.startswith("/v1/") and path != "/v1/openapi.json"
        for method in methods
        if method != "HEAD"
    }
    document = openapi_document()
    assert documented_operations(document) == routed
    assert all("HEAD" in methods for methods in routes.values() if "GET" in methods)
    assert "HEAD" in document["info"]["description"]
    assert "OPTIONS" in document["info"]["description"]


def test_every_operation_documents_its_errors_with_the_error_body() -> None:
    document = openapi_document()
    responses = document["components"]["responses"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            statuses = set(operation["responses"])
            # Every call meets the token, the Host check and (in a bug) the JSON 500.
            assert {"401", "421", "500"} <= statuses, (method, path)
            assert any(status.startswith("2") for status in statuses), (method, path)
            for status in statuses - {"200", "201", "202", "204"}:
                reference = operation["responses"][status]["$ref"]
                error = responses[reference.rsplit("/", 1)[1]]
                schema = error["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
            # A write answers 202 when durable but not yet served; a read never does,
            # nor a write that waits for no DNS (a probe's report).
            writes = method in ("post", "put", "patch", "delete") and "503" in statuses
            waits = (path, method) not in NOT_WAITING
            assert ("202" in statuses) == (writes and waits), (method, path)


# ---- each error status, sent for real, matches the document ------------------------------


def response_schema(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    """The schema the document gives `method path`'s `status` reply (an error that no
    operation has, the 405, has the Error body), with the document's components beside
    it, so that its $refs resolve."""
    operation = document["paths"].get(path, {}).get(method.lower())
    if operation is None:
        response: dict[str, Any] = {"$ref": "#/components/responses/Invalid"}
        assert status == 405, (method, path, status)
    else:
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {path} answered {status}, not documented"
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    if "content" not in response:
        return None
    schema = response["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def check_reply(
    document: dict[str, Any],
    template: str,
    method: str,
    reply: tuple[int, dict[str, str], bytes],
    expected: int,
) -> dict[str, Any]:
    """Asserts the reply is `expected`, documented for the operation, and that its body
    validates against the document's schema for it (jsonschema, draft 2020-12)."""
    status, headers, body = reply
    assert status == expected, (method, template, status, body[:300])
    schema = response_schema(document, template, method, status)
    if schema is None:
        assert body == b""
        return {}
    assert headers["content-type"].startswith("application/json"), headers
    payload = json.loads(body)
    jsonschema.validate(payload, schema, cls=jsonschema.Draft202012Validator)
    assert isinstance(payload, dict)
    return payload


def test_each_error_status_is_the_documented_reply(
    fodns_factory: StartFodns, tmp_path: Path
) -> None:
    """400, 401, 404, 405, 409, 413, 421, 500, 503 and the 202 of a change not served in
    time, each driven through real HTTP to `fodns serve` with two DNS workers."""
    running = fodns_factory(TOKEN, directory=tmp_path, workers=2, extra=NO_DELIVERY)
    document = json.loads(http_exchange(running, "GET", "/v1/openapi.json", TOKEN)[2])

    def send(
        method: str,
        path: str,
        value: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps(value).encode() if value is not None else b""
        return http_exchange(
            running, method, path, TOKEN, body=body, headers=headers, timeout=timeout
        )

    ok = {"name": "eu", "web_servers": ["192.0.2.10"]}
    check_reply(document, "/v1/apps", "POST", send("POST", "/v1/apps", ok), 201)
    group = {"label": "shop", "primary": "eu"}
    check_reply(document, "/v1/groups", "POST", send("POST", "/v1/groups", group), 201)
    spare = {"name": "spare", "load_balancer": ["lb.example.com"]}
    check_reply(document, "/v1/apps", "POST", send("POST", "/v1/apps", spare), 201)
    # 400, 404, 409, 413
    check_reply(document, "/v1/apps", "GET", send("GET", "/v1/apps?limit=0"), 400)
    check_reply(document, "/v1/events", "GET", send("GET", "/v1/events?after=x"), 400)
    bad = {"to": "sideways"}
    switch = "/v1/groups/{label}/switch"
    check_reply(document, switch, "POST", send("POST", "/v1/groups/shop/switch", bad), 400)
    check_reply(document, "/v1/apps/{name}", "GET", send("GET", "/v1/apps/nobody"), 404)
    status_path = "/v1/apps/{name}/status"
    check_reply(document, status_path, "GET", send("GET", "/v1/apps/x/status"), 404)
    check_reply(document, "/v1/apps", "POST", send("POST", "/v1/apps", ok), 409)
    check_reply(document, "/v1/apps/{name}", "DELETE", send("DELETE", "/v1/apps/eu"), 409)
    backup = {"to": "backup"}
    check_reply(document, switch, "POST", send("POST", "/v1/groups/shop/switch", backup), 409)
    check_reply(document, "/v1/route53/plan", "GET", send("GET", "/v1/route53/plan"), 404)
    huge = {"name": "big", "web_servers": ["192.0.2.1"] * 8000}
    error = check_reply(document, "/v1/apps", "POST", send("POST", "/v1/apps", huge), 413)
    assert error["error"]["code"] == "too_large"
    # 401 (with WWW-Authenticate), 421, 405 (with Allow)
    reply = http_exchange(running, "GET", "/v1/groups", "not-the-token-0000")
    check_reply(document, "/v1/groups", "GET", reply, 401)
    assert reply[1]["www-authenticate"].startswith("Bearer")
    reply = send("GET", "/v1/zones", headers={"Host": "evil.example"})
    assert check_reply(document, "/v1/zones", "GET", reply, 421)["error"]["field"] == "Host"
    reply = send("PUT", "/v1/groups/shop")
    check_reply(document, "/v1/groups/{label}", "PUT", reply, 405)
    assert reply[1]["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH"

    # 500: the database changed under fodns (a table gone) is a bug's JSON, logged.
    database = sqlite3.connect(tmp_path / "fodns.db", isolation_level=None)
    try:
        database.execute("ALTER TABLE events RENAME TO events_moved_by_test")
        reply = send("GET", "/v1/events")
    finally:
        database.execute("ALTER TABLE events_moved_by_test RENAME TO events")
    error = check_reply(document, "/v1/events", "GET", reply, 500)
    assert error["error"]["code"] == "internal"
    assert running.log_events("api_request_failed")

    # 202: a DNS worker stopped, so the switch is durable but not served in time.
    stalled = worker_pids(running)[1]
    os.kill(stalled, signal.SIGSTOP)  # our own child process, by PID
    try:
        reply = send("PATCH", "/v1/groups/shop", {"ttl": 60})
        patched = check_reply(document, "/v1/groups/{label}", "PATCH", reply, 202)
        assert patched["served"] is False and patched["ttl"] == 60
        reply = send("DELETE", "/v1/apps/spare?reason=retired")
        deleted = check_reply(document, "/v1/apps/{name}", "DELETE", reply, 202)
        assert deleted["served"] is False and "durable" in deleted["message"]
    finally:
        os.kill(stalled, signal.SIGCONT)

    # 503: another process holds the write lock past SQLite's busy timeout (10 s).
    database.execute("BEGIN EXCLUSIVE")
    try:
        # The reply comes after the busy timeout: wait well past it.
        reply = send("POST", "/v1/groups", {"label": "blocked"}, timeout=60)
    finally:
        database.execute("ROLLBACK")
        database.close()
    error = check_reply(document, "/v1/groups", "POST", reply, 503)
    assert error["error"]["code"] == "store_unavailable"


def test_route53_failures_are_the_documented_replies(rig: Rig) -> None:
    """502 when Route53 refuses the plan's calls, 504 when it answers too late."""
    rig.start_fodns(route53_extra="request_timeout = 1\n")
    document = rig.api("GET", "/v1/openapi.json")
    assert rig.fodns is not None
    plan = "/v1/route53/plan"
    rig.proxy.set_delay(2.0, action="ListResourceRecordSets")  # slower than the timeout
    reply = http_exchange(rig.fodns, "GET", plan, RIG_TOKEN)
    assert check_reply(document, plan, "GET", reply, 504)["error"]["code"] == "route53_timeout"
    rig.proxy.set_delay(0.0)
    rig.proxy.fail_path(rig.zone_id, "AccessDenied")  # a 400 that no retry mends
    reply = http_exchange(rig.fodns, "POST", "/v1/route53/sync", RIG_TOKEN)
    error = check_reply(document, "/v1/route53/sync", "POST", reply, 502)
    assert error["error"]["code"] == "route53_error"
    rig.proxy.fail_path(rig.zone_id, None)
