"""Nothing a client, a typo or a fault can do takes fodns down, opens it, or makes it lie.

Each test is one finding of the hardening review, reproduced the way it was
found: a real `fodns serve` on loopback (with one worker and with two where the
behaviour lives in the DNS workers), real HTTP, real DNS, a real SQLite file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support import (
    EXAMPLE_ZONE,
    REPOSITORY,
    Api,
    FodnsProcess,
    start_fodns,
    wait_for,
    write_config,
)

TOKEN = "hardening-test-token-4b1d"
StartFodns = Callable[..., FodnsProcess]


@pytest.fixture
def running(shared_server: FodnsProcess) -> FodnsProcess:
    """The module's fodns serving the example zone, in each worker mode. The tests that
    take it only refuse input or make names no other test here uses, so they share one
    server per mode; a test that needs a fresh database or a fault starts its own."""
    return shared_server


def call(running: FodnsProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return Api(running, TOKEN).call(method, path, body)


def ok(running: FodnsProcess, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    return Api(running, TOKEN).ok(method, path, body, status)


def answers(running: FodnsProcess, name: str, qtype: str = "A") -> set[str]:
    reply = running.udp(dns.message.make_query(name, qtype))
    return {rdata.to_text() for rrset in reply.answer for rdata in rrset}


def raw_http(running: FodnsProcess, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 exchange with exactly these bytes: status, headers, body."""
    with socket.create_connection(("127.0.0.1", running.api_port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def raw_post(running: FodnsProcess, path: str, body: bytes, token: bytes = TOKEN.encode()) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        + b"Authorization: Bearer "
        + token
        + b"\r\n\r\n"
        + body
    )


def metric(running: FodnsProcess, name: str) -> float:
    status, text = running.http_get("/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def health(running: FodnsProcess) -> tuple[int, dict[str, Any]]:
    status, body = running.http_get("/healthz")
    return status, json.loads(body)


# ---- 1. one call must not poison the store and DNS --------------------------------------


@pytest.mark.parametrize(
    ("web_servers", "why"),
    [
        (["fe80::1%eth0"], "scoped"),
        (["fe80::1%1"], "scoped"),
        (["0.0.0.0"], "unspecified"),
        (["ff02::1"], "multicast"),
        (["192.0.2.300"], "not a valid IP address"),
        (["10.0.0.256"], "not a valid IP address"),
        ([f"192.0.2.{n}" for n in range(1, 34)], "at most 32"),
    ],
)
def test_a_web_head_that_cannot_be_served_is_refused_naming_the_field(
    running: FodnsProcess, web_servers: list[str], why: str
) -> None:
    status, body = call(running, "POST", "/v1/apps", {"name": "bad", "web_servers": web_servers})
    assert status == 400, body
    assert body["error"]["field"] == "web_servers" and why in body["error"]["message"]
    status, body = call(running, "POST", "/v1/apps", {"name": "lb", "load_balancer": web_servers})
    assert status == 400 and body["error"]["field"] == "load_balancer"
    assert call(running, "GET", "/v1/apps/bad")[0] == 404  # nothing was committed
    assert running.alive() and answers(running, "www.fo.example.net")


def test_the_largest_web_head_fits_one_udp_answer(running: FodnsProcess) -> None:
    """32 AAAA records, the cap, fit in a 1,232-byte UDP reply without truncation."""
    addresses = [f"2001:db8::{n:x}" for n in range(1, 33)]
    ok(running, "POST", "/v1/apps", {"name": "wide", "web_servers": addresses}, 201)
    longest = "a" * 63
    ok(running, "POST", "/v1/groups", {"label": longest, "primary": "wide"}, 201)
    query = dns.message.make_query(f"{longest}.fo.example.net", "AAAA", use_edns=0, payload=1232)
    reply = running.udp(query)
    assert not reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == 32 and len(reply.to_wire()) <= 1232


def poison(database: Path, app: str, values: list[str]) -> None:
    """Write web-head values straight into the database, as an older fodns (or a hand
    edit) could have left them: the API refuses them now."""
    with sqlite3.connect(database) as db:
        db.execute("UPDATE apps SET web_servers = ? WHERE name = ?", [json.dumps(values), app])


def test_a_stored_value_that_cannot_be_served_costs_only_itself(
    tmp_path: Path, workers: int, fodns_factory: StartFodns
) -> None:
    """A scoped address already in the database: fodns starts, serves the rest of that
    web head and every other group, logs the value once and counts it."""
    first = fodns_factory(TOKEN, directory=tmp_path, workers=workers)
    ok(first, "POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]}, 201)
    ok(first, "POST", "/v1/apps", {"name": "us", "web_servers": ["198.51.100.7"]}, 201)
    ok(first, "POST", "/v1/groups", {"label": "shop", "primary": "eu"}, 201)
    ok(first, "POST", "/v1/groups", {"label": "other", "primary": "us"}, 201)
    assert first.stop() == 0
    poison(tmp_path / "fodns.db", "eu", ["192.0.2.10", "fe80::1%eth0", "2001:db8::1"])

    running = fodns_factory(TOKEN, directory=tmp_path, workers=workers)
    assert answers(running, "shop.fo.example.net") == {"192.0.2.10"}
    assert answers(running, "shop.fo.example.net", "AAAA") == {"2001:db8::1"}
    assert answers(running, "other.fo.example.net") == {"198.51.100.7"}
    assert ok(running, "GET", "/v1/groups/shop")["answer"] == [
        {"type": "A", "data": "192.0.2.10"},
        {"type": "AAAA", "data": "2001:db8::1"},
    ]
    axfr = dns.query.tcp(
        dns.message.make_query("fo.example.net", "AXFR"), "127.0.0.1", port=running.dns_port
    )
    assert axfr.rcode() == dns.rcode.REFUSED  # no allow_transfer: refused, not broken
    # A switch (a change to the poisoned app's group) is served as usual.
    ok(running, "PATCH", "/v1/groups/shop", {"backup": "us"})
    ok(running, "POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert answers(running, "shop.fo.example.net") == {"198.51.100.7"}
    assert health(running)[0] == 200
    assert metric(running, "fodns_groups_unservable_values") == 1
    # Logged once by each process that builds answers: the main one (at start) and
    # each DNS worker, not once per query or per change.
    logged = [e["value"] for e in running.log_events("record_unservable")]
    assert logged == ["fe80::1%eth0"] * (1 if workers == 1 else 1 + workers)
    assert running.alive()


# ---- 2. empty and short tokens ----------------------------------------------------------


def serve_and_fail(
    tmp_path: Path, env: dict[str, str], config_extra: str = ""
) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, [("fo.example.net", EXAMPLE_ZONE)], extra="")
    if config_extra:
        text = config.read_text().replace("[api]\n", f"[api]\n{config_extra}\n")
        config.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "fodns", "serve", "--config", str(config)],
        cwd=REPOSITORY,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_an_empty_token_file_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "admin-token").write_text("\n")
    result = serve_and_fail(tmp_path, {"FODNS_ADMIN_TOKEN": ""})
    assert result.returncode == 2
    assert f"{tmp_path / 'admin-token'} is empty" in result.stderr
    assert "delete" in result.stderr


@pytest.mark.parametrize(
    ("env", "config_extra", "message"),
    [
        ({"FODNS_ADMIN_TOKEN": "short"}, "", "FODNS_ADMIN_TOKEN is 5 characters long"),
        ({"FODNS_ADMIN_TOKEN": "has spaces in it, see"}, "", "FODNS_ADMIN_TOKEN may only"),
        ({}, 'token = ""', "api.token in the config is empty"),
        ({}, 'token = "0123456789"', "api.token in the config is 10 characters long"),
    ],
)
def test_a_short_or_malformed_token_stops_start_up(
    tmp_path: Path, env: dict[str, str], config_extra: str, message: str
) -> None:
    result = serve_and_fail(tmp_path, {"FODNS_ADMIN_TOKEN": "", **env}, config_extra)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_a_bearer_header_without_a_token_is_refused(
    tmp_path: Path, fodns_factory: StartFodns
) -> None:
    """With a generated token: `Authorization: Bearer` with no value gets 401."""
    running = fodns_factory("", directory=tmp_path)
    token_file = tmp_path / "admin-token"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert len(token_file.read_text().strip()) >= 16
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".admin-token")] == []
    for header in (b"Bearer", b"Bearer ", b"Bearer  ", b"bearer \t"):
        request = (
            b"GET /v1/groups HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Authorization: " + header + b"\r\n\r\n"
        )
        status, _, body = raw_http(running, request)
        assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"


# ---- 3. the rules of groups hold in every mode -----------------------------------------


@pytest.mark.parametrize("label", ["www", "ns1", "WWW", "docs", "preview", "status"])
def test_a_group_cannot_take_a_zone_file_name(running: FodnsProcess, label: str) -> None:
    status, body = call(running, "POST", "/v1/groups", {"label": label})
    assert status == 409, body
    assert body["error"]["field"] == "label" and "zone file" in body["error"]["message"]
    assert answers(running, "ns1.fo.example.net")  # the glue is still there


def test_zones_read_the_same_with_one_worker_or_two(fodns_factory: StartFodns) -> None:
    bodies = []
    for workers in (1, 2):
        running = fodns_factory(TOKEN, workers=workers)
        ok(running, "POST", "/v1/groups", {"label": "a"}, 201)
        bodies.append(ok(running, "GET", "/v1/zones"))
    assert bodies[0] == bodies[1]
    (zone,) = bodies[0]["zones"]
    assert zone["name"] == "fo.example.net" and zone["groups"] == 1 and zone["names"] > 10


def test_a_nested_zone_is_never_a_group_label(
    tmp_path: Path, fodns_factory: StartFodns, workers: int
) -> None:
    child = tmp_path / "child.zone"
    child.write_text(
        "$ORIGIN child.fo.example.net.\n$TTL 300\n"
        "@ SOA ns1.fo.example.net. host.example. 1 3600 600 86400 60\n"
        "@ NS ns1.fo.example.net.\n"
    )
    zones = [("fo.example.net", EXAMPLE_ZONE), ("child.fo.example.net", child)]
    running = fodns_factory(TOKEN, workers=workers, zones=zones)
    status, body = call(running, "POST", "/v1/groups", {"zone": "fo.example.net", "label": "child"})
    assert status == 409 and body["error"]["field"] == "label"
    assert "another zone" in body["error"]["message"]


# ---- 7. /healthz tells the truth; changes not served say so ------------------------------


def worker_pids(running: FodnsProcess) -> list[int]:
    return [w["pid"] for w in health(running)[1]["dns_workers"]]


def test_dead_workers_make_healthz_unready_and_are_replaced_with_growing_waits(
    fodns_factory: StartFodns,
) -> None:
    running = fodns_factory(TOKEN, workers=2)
    status, body = health(running)
    assert status == 200 and body["ready"] and body["problems"] == []
    first = worker_pids(running)
    for pid in first:
        os.kill(pid, signal.SIGKILL)  # our own child processes, by PID
    assert wait_for(lambda: health(running)[0] == 503, 5)
    assert any("DNS workers are serving" in p for p in health(running)[1]["problems"])
    assert wait_for(lambda: health(running)[0] == 200, 20)
    second = worker_pids(running)
    assert set(second).isdisjoint(first)
    assert answers(running, "www.fo.example.net")
    # Kill slot 0's replacement twice more: each wait is longer than the last.
    for _ in range(2):
        before = len(running.log_events("worker_died"))
        os.kill(worker_pids(running)[0], signal.SIGKILL)
        assert wait_for(lambda b=before: len(running.log_events("worker_died")) > b, 5)
        assert wait_for(lambda: health(running)[0] == 200, 20)
    waits = [e["restart_in"] for e in running.log_events("worker_died") if e["worker"] == 0]
    assert waits == sorted(waits) and waits[-1] > waits[0], waits
    assert metric(running, "fodns_dns_worker_restarts_total") == 4


def test_a_change_not_served_in_time_is_a_202_and_healthz_says_so(
    fodns_factory: StartFodns,
) -> None:
    running = fodns_factory(TOKEN, workers=2)
    ok(running, "POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]}, 201)
    ok(running, "POST", "/v1/apps", {"name": "us", "web_servers": ["198.51.100.7"]}, 201)
    ok(running, "POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"}, 201)
    stalled = worker_pids(running)[1]
    os.kill(stalled, signal.SIGSTOP)  # alive, but it serves nothing new
    try:
        status, body = call(running, "POST", "/v1/groups/shop/switch", {"to": "backup"})
        assert status == 202, body
        assert body["served"] is False and "durable" in body["message"]
        assert body["active"] == "backup"
        status, report = health(running)
        assert status == 503 and not report["ready"], report
    finally:
        os.kill(stalled, signal.SIGCONT)
    assert wait_for(lambda: health(running)[0] == 200, 10)
    assert answers(running, "shop.fo.example.net") == {"198.51.100.7"}
    assert ok(running, "GET", "/v1/groups/shop")["active"] == "backup"  # it was durable


def test_a_database_that_takes_no_writes_makes_healthz_unready(
    tmp_path: Path, fodns_factory: StartFodns
) -> None:
    """Another process holds the write lock: the switch fails with 503 and nothing
    changes, /healthz says why, and once the lock is gone fodns is ready again."""
    running = fodns_factory(TOKEN, directory=tmp_path)
    ok(running, "POST", "/v1/groups", {"label": "idle"}, 201)
    blocker = sqlite3.connect(tmp_path / "fodns.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        # The writer waits out SQLite's busy timeout (10 s) before it gives up.
        request = urllib.request.Request(
            f"http://127.0.0.1:{running.api_port}/v1/groups",
            data=b'{"label": "blocked"}',
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        body = json.loads(refused.value.read())
        assert refused.value.code == 503 and body["error"]["code"] == "store_unavailable"
        status, report = health(running)
        assert status == 503
        assert any("does not take writes" in p for p in report["problems"]), report
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert call(running, "GET", "/v1/groups/blocked")[0] == 404
    ok(running, "POST", "/v1/groups", {"label": "after"}, 201)
    assert health(running)[0] == 200


def test_healthz_lists_every_zone_with_its_serial_in_both_modes(running: FodnsProcess) -> None:
    status, report = health(running)
    assert status == 200 and report["ready"]
    assert list(report["zones"]) == ["fo.example.net"] and report["zones"]["fo.example.net"] > 0
    assert all(w["serials"] == report["zones"] for w in report["dns_workers"])


# ---- 10. bad HTTP input is a 4xx JSON error, never a plain-text 500 ----------------------


def test_a_non_utf8_authorization_header_is_a_401(running: FodnsProcess) -> None:
    request = (
        b"GET /v1/groups HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\x80token\r\n\r\n"
    )
    status, headers, body = raw_http(running, request)
    assert status == 401 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/events?limit=%C2%B2", "limit"),  # "²" is a digit to str.isdigit()
        ("/v1/events?limit=" + "9" * 5000, "limit"),
        ("/v1/events?before=%D9%A3", "before"),  # Arabic-Indic three
        ("/v1/events?after=1e3", "after"),
    ],
)
def test_odd_query_values_are_400s_naming_the_parameter(
    running: FodnsProcess, path: str, field: str
) -> None:
    status, body = call(running, "GET", path)
    assert status == 400 and body["error"]["field"] == field


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"name": "a", "web_servers": [' + b"1" * 5000 + b"]}", "not usable JSON"),
        (b"[" * 30000 + b"]" * 30000, "not usable JSON"),
        (b'{"name": "caf\xe9"}', "not UTF-8"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"name": "ok", "reason": "\\ud800"}', "valid UTF-8"),
        (b'{"name": "ok", "reason": "a\\u0000b"}', "valid UTF-8"),
    ],
)
def test_odd_bodies_are_400s_in_json(running: FodnsProcess, payload: bytes, message: str) -> None:
    status, headers, body = raw_http(running, raw_post(running, "/v1/apps", payload))
    assert status == 400, body[:300]
    assert headers["content-type"].startswith("application/json")
    assert message in json.loads(body)["error"]["message"]
    assert running.alive()


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/", "/v1/openapi.json"])
def test_an_unknown_host_header_is_refused(running: FodnsProcess, path: str) -> None:
    """DNS rebinding: a page at evil.example re-pointed to 127.0.0.1 gets nothing."""
    base = f"GET {path} HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n"
    status, _, body = raw_http(running, (base + "Host: evil.example:8053\r\n\r\n").encode())
    assert status == 421 and json.loads(body)["error"]["field"] == "Host"
    for host in ("127.0.0.1:8053", "localhost", "[::1]:8053", "127.0.0.1"):
        status, _, _ = raw_http(running, (base + f"Host: {host}\r\n\r\n").encode())
        assert status == 200, host


def test_configured_host_names_are_answered(tmp_path: Path) -> None:
    config = write_config(tmp_path, [("fo.example.net", EXAMPLE_ZONE)])
    config.write_text(
        config.read_text().replace("[api]\n", '[api]\nallowed_hosts = ["fodns.internal"]\n')
    )
    running = start_fodns("--config", str(config), env={"FODNS_ADMIN_TOKEN": TOKEN})
    try:
        request = b"GET /healthz HTTP/1.1\r\nConnection: close\r\nHost: FODNS.internal:80\r\n\r\n"
        assert raw_http(running, request)[0] == 200
    finally:
        assert running.stop() == 0


def test_concurrent_changes_are_served_in_the_order_they_committed(
    running: FodnsProcess,
) -> None:
    """Forty TTL changes to one group at once, thirty rounds: what DNS serves
    afterwards is always what the store holds, never an older change."""
    ok(running, "POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]}, 201)
    ok(running, "POST", "/v1/groups", {"label": "race", "primary": "eu"}, 201)
    for round_ in range(30):
        ttls = [60 + round_ * 100 + n for n in range(40)]
        threads = [
            threading.Thread(target=call, args=(running, "PATCH", "/v1/groups/race", {"ttl": ttl}))
            for ttl in ttls
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        stored = ok(running, "GET", "/v1/groups/race")["ttl"]
        reply = running.udp(dns.message.make_query("race.fo.example.net", "A"))
        assert reply.answer[0].ttl == stored, (round_, stored, reply.answer[0].ttl)


def test_a_zone_file_name_that_a_group_already_has_is_reported(
    tmp_path: Path, fodns_factory: StartFodns
) -> None:
    """The other way round from the API's 409: the zone file is edited to use a
    group's label. The group keeps answering (customers point at it), and the
    reload says so."""
    zone_file = tmp_path / "fo.example.net.zone"
    zone_file.write_text(EXAMPLE_ZONE.read_text())
    running = fodns_factory(TOKEN, zones=[("fo.example.net", zone_file)])
    ok(running, "POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]}, 201)
    ok(running, "POST", "/v1/groups", {"label": "shop", "primary": "eu"}, 201)
    zone_file.write_text(zone_file.read_text() + "shop 300 IN A 203.0.113.99\n")
    running.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: running.log_events("zone_name_taken_by_group"))
    assert running.log_events("zone_name_taken_by_group")[0]["name"] == "shop.fo.example.net."
    assert answers(running, "shop.fo.example.net") == {"192.0.2.10"}


def test_a_method_not_allowed_says_which_are(running: FodnsProcess) -> None:
    status, headers, body = raw_http(
        running,
        f"PUT /v1/groups HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n".encode(),
    )
    assert status == 405 and json.loads(body)["error"]["code"] == "method_not_allowed"
    assert set(headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


# ---- 11. what a browser is told: content policy and caching ------------------------------

# Spelled out here, not imported from fodns.api, so that a widened policy fails this test:
# the page's own scripts and styles only, API calls to itself only, no framing, no forms
# or <base> elsewhere. The dashboard keeps its token in sessionStorage; injected script
# is the threat this stops.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
BROWSER_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
ADMIN = REPOSITORY / "fodns" / "admin"


def get(running: FodnsProcess, path: str, token: str | None = TOKEN) -> tuple[int, dict[str, str]]:
    authorization = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{authorization}\r\n"
    status, headers, _ = raw_http(running, request.encode())
    return status, headers


def test_the_dashboard_and_the_api_carry_the_exact_content_policy(
    fodns_factory: StartFodns,
) -> None:
    """Every response: the page and each of its files (revalidated on every load, so an
    upgrade never mixes module versions), the API's answers and errors (never stored by
    any cache: they are live state and carry the token's reach), health and metrics."""
    running = fodns_factory(TOKEN)
    files = sorted(path.name for path in ADMIN.iterdir() if path.is_file())
    assert "index.html" in files and "app.js" in files
    for path in ["/", *(f"/admin/{name}" for name in files)]:
        status, headers = get(running, path, token=None)
        assert status == 200, path
        assert {name: headers.get(name) for name in BROWSER_HEADERS} == BROWSER_HEADERS, path
        assert headers["cache-control"] == "no-cache", path
    for path, token, expected in [
        ("/v1/zones", TOKEN, 200),
        ("/v1/openapi.json", TOKEN, 200),
        ("/v1/groups/000-000-000", TOKEN, 404),
        ("/v1/no-such-route", TOKEN, 404),
        ("/v1/groups", None, 401),
    ]:
        status, headers = get(running, path, token)
        assert status == expected, path
        assert {name: headers.get(name) for name in BROWSER_HEADERS} == BROWSER_HEADERS, path
        assert headers["cache-control"] == "no-store", path
    for path in ("/healthz", "/metrics"):
        status, headers = get(running, path, token=None)
        assert status == 200 and headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_the_dashboard_needs_nothing_its_policy_forbids() -> None:
    """No inline script, inline style or style attribute, no page elsewhere: under
    `script-src 'self'; style-src 'self'` a browser would refuse them, silently."""
    page = (ADMIN / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "an inline <script>"
    assert "<style" not in page and not re.search(r"\sstyle=", page)
    assert not re.search(r"\son[a-z]+=", page), "an inline event handler"
    for script in ADMIN.glob("*.js"):
        text = script.read_text()
        assert "eval(" not in text and "new Function" not in text, script.name
        assert not re.search(r"https?://", text), f"{script.name} reaches beyond 'self'"
