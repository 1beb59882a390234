"""Health checks and automatic failover, end to end: real HTTP and TCP servers on
loopback addresses that the tests stop and start, a real `fodns serve` checking them,
and real DNS queries to every worker.

The checks run every second (the shortest interval) with fall 2 and rise 1, so a
verdict takes about two seconds. To keep the suite quick, one server and one window
of time serve many groups at once: each group below is one rule of the issue, set
up before the servers change and read after.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype
import pytest

from tests.conftest import StartFodns
from tests.route53_rig import TOKEN as RIG_TOKEN
from tests.route53_rig import Rig
from tests.secondaries import KnotSecondary
from tests.support.api import Api
from tests.support.process import FodnsProcess, wait_for
from tests.support.transfer import transfer_options
from tests.support.wire import ask_every_worker
from tests.support.workers import children, command_line, running

TOKEN = "autofailover-test-token"
ZONE = "fo.example.net"
FAST_CHECK = {"type": "http", "interval": 1, "timeout": 0.5, "fall": 2, "rise": 1}
VERDICT = 12.0  # seconds to wait for something checks decide (a busy CI host)


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers as its server's `mode` says: "ok" 200, "fail" 503, "alternate" one then
    the other (a server failing every other check)."""

    server: SwitchableServer.Http

    def do_GET(self) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.requests += 1
            mode = owner.mode
            if mode == "alternate":
                mode = "ok" if owner.requests % 2 else "fail"
        status = 200 if mode == "ok" else 503
        body = b"ok\n" if status == 200 else b"broken\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class SwitchableServer:
    """An HTTP server on one loopback address and port that a test turns off (its
    socket closed: connection refused) and on again, or makes fail."""

    host: str
    port: int
    mode: str = "ok"
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    listener: SwitchableServer.Http | None = None

    class Http(http.server.ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True
        owner: SwitchableServer

    def start(self) -> SwitchableServer:
        server = self.Http((self.host, self.port), Handler)
        server.owner = self
        self.port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.listener = server
        return self

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.shutdown()
            self.listener.server_close()
            self.listener = None


@pytest.fixture
def servers() -> Iterator[dict[str, SwitchableServer]]:
    """HTTP servers on 127.0.0.2 to 127.0.0.12, all on the port the first one got."""
    first = SwitchableServer("127.0.0.2", 0).start()
    started = {"127.0.0.2": first}
    try:
        for last in range(3, 13):
            host = f"127.0.0.{last}"
            started[host] = SwitchableServer(host, first.port).start()
        yield started
    finally:
        for server in started.values():
            server.stop()


def free_tcp_port_on(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def app(api: Api, name: str, *addresses: str, check: dict[str, Any] | None = None) -> None:
    api.ok("POST", "/v1/apps", {"name": name, "web_servers": list(addresses)}, 201)
    if check is not None:
        api.ok("PUT", f"/v1/apps/{name}/check", check)


def group(api: Api, label: str, primary: str, backup: str | None, **settings: Any) -> None:
    body = {"label": label, "primary": primary, "failover": "auto", **settings}
    if backup is not None:
        body["backup"] = backup
    api.ok("POST", "/v1/groups", body, 201)


def active(api: Api, label: str) -> str:
    return str(api.ok("GET", f"/v1/groups/{label}")["active"])


def health_of(api: Api, label: str) -> dict[str, Any]:
    """The group's decision in /v1/health (state None until the checker has read it)."""
    for item in api.ok("GET", "/v1/health")["groups"]:
        if item["label"] == label:
            return dict(item)
    return {"state": None}


def app_health(api: Api, name: str) -> dict[str, Any]:
    """The app in /v1/health (state None until the checker has read its check)."""
    for item in api.ok("GET", "/v1/health")["apps"]:
        if item["app"] == name:
            return dict(item)
    return {"state": None, "addresses": [], "down": [], "last_known": []}


def events(api: Api, label: str, action: str) -> list[dict[str, Any]]:
    found = api.ok("GET", f"/v1/events?group={label}&limit=1000")["events"]
    return [event for event in found if event["action"] == action]


def answers(server: FodnsProcess, label: str) -> set[frozenset[str]]:
    """What every worker answers for the group's name: one set of addresses per reply."""
    query = dns.message.make_query(f"{label}.{ZONE}", dns.rdatatype.A)
    return {
        frozenset(rdata.to_text() for rrset in reply.answer for rdata in rrset)
        for reply in ask_every_worker(server, query)
    }


def test_groups_follow_health_as_each_rule_says(
    fodns_factory: StartFodns, servers: dict[str, SwitchableServer]
) -> None:
    server = fodns_factory(TOKEN, workers=2)
    api = Api(server, TOKEN)
    port = servers["127.0.0.2"].port
    check = {**FAST_CHECK, "port": port}
    # A primary that will die, its backup, and the rest of the cast.
    app(api, "dies", "127.0.0.2", check=check)
    app(api, "lives", "127.0.0.3", check=check)
    app(api, "flaps", "127.0.0.4", check=check)
    app(api, "dies-too", "127.0.0.5", check=check)
    app(api, "unchecked", "127.0.0.6")
    app(api, "two-heads", "127.0.0.7", "127.0.0.8", check={**check, "answers_follow_health": True})
    group(api, "failover", "dies", "lives", failback="auto", hold_down=3)
    group(api, "stays-back", "dies", "lives")  # failback manual (the default)
    group(api, "flapping", "flaps", "lives")
    group(api, "both-down", "dies", "dies-too")
    group(api, "no-target", "dies", "unchecked")
    group(api, "no-backup", "dies", None)
    api.ok("POST", "/v1/groups", {"label": "manual", "primary": "dies", "backup": "lives"}, 201)
    group(api, "pinned", "dies", "lives")
    pin = api.ok(
        "POST", "/v1/groups/pinned/switch", {"to": "primary", "reason": "maintenance", "pin_for": 5}
    )
    assert pin["pin"]["actor"] and pin["pin"]["reason"] == "maintenance"
    group(api, "follows", "two-heads", None)

    # Everything up first: the first verdicts, and no switch anywhere.
    assert wait_for(lambda: app_health(api, "dies")["state"] == "up", VERDICT)
    assert answers(server, "follows") == {frozenset({"127.0.0.7", "127.0.0.8"})}

    servers["127.0.0.2"].stop()  # the primary dies
    servers["127.0.0.4"].mode = "alternate"  # fails every other check
    servers["127.0.0.5"].stop()
    servers["127.0.0.8"].stop()  # one of two web servers
    stopped = time.monotonic()

    # After fall failed checks the group switches, by health, saying why.
    assert wait_for(lambda: active(api, "failover") == "backup", VERDICT)
    detected = time.monotonic() - stopped
    switched = events(api, "failover", "group_switched")
    assert [event["actor"] for event in switched] == ["health"]
    assert "127.0.0.2" in switched[0]["reason"] and "refused" in switched[0]["reason"]
    assert "lives" in switched[0]["reason"]
    # Every worker answers the backup.
    assert wait_for(lambda: answers(server, "failover") == {frozenset({"127.0.0.3"})}, 5)
    # The health transition itself is an event with its evidence.
    transitions = [
        event
        for event in api.ok("GET", "/v1/events?app=dies&limit=1000")["events"]
        if event["action"] == "health_changed" and event["after"]["state"] == "down"
    ]
    assert transitions and transitions[0]["actor"] == "health"
    moved = transitions[0]["after"]["addresses"]
    assert moved[0]["address"] == "127.0.0.2" and moved[0]["to"] == "down"
    assert moved[0]["evidence"]["ok"] is False and "refused" in moved[0]["evidence"]["error"]
    assert detected < VERDICT

    # The answer that follows health drops the dead address, and only it.
    assert wait_for(lambda: answers(server, "follows") == {frozenset({"127.0.0.7"})}, VERDICT)
    assert app_health(api, "two-heads")["down"] == ["127.0.0.8"]

    # Both sides down: no switch, reported. A side without a check: never a target.
    assert wait_for(lambda: health_of(api, "both-down")["state"] == "both_down", VERDICT)
    assert wait_for(lambda: health_of(api, "no-target")["state"] == "no_target", VERDICT)
    assert wait_for(lambda: health_of(api, "no-backup")["state"] == "no_target", VERDICT)
    assert "no backup app" in health_of(api, "no-backup")["reason"]
    assert active(api, "both-down") == "primary" and active(api, "no-target") == "primary"
    assert active(api, "no-backup") == "primary"
    # A manual group never moves; a pinned one holds while its pin lasts.
    assert active(api, "manual") == "primary"
    assert health_of(api, "pinned")["state"] == "pinned"
    assert active(api, "pinned") == "primary"
    assert active(api, "stays-back") == "backup"

    # The pin ends on time: health takes the group back, and switches it.
    assert wait_for(lambda: active(api, "pinned") == "backup", VERDICT)
    unpinned = events(api, "pinned", "group_unpinned")
    assert [event["actor"] for event in unpinned] == ["health"]
    assert api.ok("GET", "/v1/groups/pinned")["pin"] is None

    # The primary comes back: the auto-failback group returns only after its
    # hold-down; the manual-failback one never.
    servers["127.0.0.2"].start()
    servers["127.0.0.8"].start()
    back = time.monotonic()
    assert wait_for(lambda: app_health(api, "dies")["state"] == "up", VERDICT)
    up_at = time.monotonic()
    assert active(api, "failover") == "backup"
    assert wait_for(lambda: active(api, "failover") == "primary", VERDICT)
    assert time.monotonic() - up_at >= 3 - 1.0  # the hold-down (give or take a tick)
    assert wait_for(
        lambda: answers(server, "follows") == {frozenset({"127.0.0.7", "127.0.0.8"})}, VERDICT
    )
    assert active(api, "stays-back") == "backup"
    assert time.monotonic() - back < 2 * VERDICT

    # The server failing every other check never took its group anywhere.
    assert active(api, "flapping") == "primary"
    assert events(api, "flapping", "group_switched") == []
    assert servers["127.0.0.4"].requests >= 6


def test_a_flapping_group_is_held_after_max_auto_switches(
    fodns_factory: StartFodns, servers: dict[str, SwitchableServer]
) -> None:
    server = fodns_factory(TOKEN, workers=1)
    api = Api(server, TOKEN)
    check = {**FAST_CHECK, "port": servers["127.0.0.2"].port}
    app(api, "east", "127.0.0.9", check=check)
    app(api, "west", "127.0.0.10", check=check)
    group(api, "held", "east", "west", max_auto_switches=1)
    assert wait_for(lambda: app_health(api, "west")["state"] == "up", VERDICT)

    servers["127.0.0.9"].stop()
    assert wait_for(lambda: active(api, "held") == "backup", VERDICT)
    # Now the other way round: it would switch back, but the hour's one switch is spent.
    servers["127.0.0.9"].start()
    servers["127.0.0.10"].stop()
    assert wait_for(lambda: health_of(api, "held")["state"] == "held", VERDICT)
    said = health_of(api, "held")
    assert "1 automatic switch" in said["reason"] and said["held_until"]
    assert active(api, "held") == "backup"
    assert len(events(api, "held", "group_switched")) == 1
    # The metrics say the same.
    status, metrics = server.http_get("/metrics")
    assert status == 200
    assert "fodns_auto_switches_total 1.0" in metrics
    assert 'fodns_app_up{app="west"} 0.0' in metrics
    assert 'fodns_health_checks_total{app="east",result="fail"}' in metrics
    assert "fodns_health_check_seconds_count" in metrics
    # A person can always act.
    api.ok("POST", "/v1/groups/held/switch", {"to": "primary", "reason": "by hand"})
    assert active(api, "held") == "primary"


def test_two_probes_with_quorum_two_must_both_see_an_app_down(
    fodns_factory: StartFodns, servers: dict[str, SwitchableServer]
) -> None:
    server = fodns_factory(TOKEN, workers=1)
    api = Api(server, TOKEN)
    check = {**FAST_CHECK, "port": servers["127.0.0.2"].port, "quorum": 2}
    app(api, "far", "127.0.0.11", check=check)
    app(api, "near", "127.0.0.12", check=check)
    group(api, "quorum", "far", "near")

    def report(state_far: str, state_near: str = "up") -> None:
        api.ok(
            "POST",
            "/v1/probes/eu-1/reports",
            {
                "interval": 1,
                "apps": [
                    {"app": "far", "addresses": [{"address": "127.0.0.11", "state": state_far}]},
                    {"app": "near", "addresses": [{"address": "127.0.0.12", "state": state_near}]},
                ],
            },
        )

    report("up")
    assert wait_for(lambda: (report("up"), app_health(api, "far")["state"] == "up")[1], VERDICT)
    servers["127.0.0.11"].stop()  # fodns sees it down; the other probe does not
    assert wait_for(
        lambda: (
            report("up"),
            app_health(api, "far")["addresses"][0]["probes"]["local"]["state"] == "down",
        )[1],
        VERDICT,
    )
    report("up")
    assert app_health(api, "far")["state"] != "down"
    assert active(api, "quorum") == "primary"
    # Both see it down: switched.
    assert wait_for(lambda: (report("down"), active(api, "quorum") == "backup")[1], VERDICT)
    # A probe that goes silent ages out after three of its intervals.
    assert wait_for(
        lambda: (
            not next(p for p in api.ok("GET", "/v1/health")["probes"] if p["name"] == "eu-1")[
                "live"
            ]
        ),
        VERDICT,
    )
    # One live probe of a quorum of two: unknown, at the next decision (once a second).
    assert wait_for(lambda: app_health(api, "far")["state"] == "unknown", VERDICT)


def test_after_a_restart_nothing_switches_before_a_verdict(
    fodns_factory: StartFodns, servers: dict[str, SwitchableServer], tmp_path: Path
) -> None:
    folder = tmp_path / "restarted"
    server = fodns_factory(TOKEN, folder, workers=1)
    api = Api(server, TOKEN)
    check = {**FAST_CHECK, "port": servers["127.0.0.2"].port, "interval": 2, "fall": 2}
    servers["127.0.0.9"].stop()
    app(api, "gone", "127.0.0.9", check=check)
    app(api, "there", "127.0.0.10", check=check)
    group(api, "restart", "gone", "there")
    app(api, "pair", "127.0.0.9", "127.0.0.10", check={**check, "answers_follow_health": True})
    server.stop()  # before any verdict

    server = fodns_factory(TOKEN, folder, workers=1)
    api = Api(server, TOKEN)
    started = time.monotonic()
    assert events(api, "restart", "group_switched") == []  # fall x interval is 2 s away
    assert wait_for(lambda: active(api, "restart") == "backup", VERDICT)
    # Not before fall (2) checks 2 s apart could have failed: the first is at start.
    assert time.monotonic() - started >= 2 - 0.5
    log = api.ok("GET", "/v1/events?limit=1000")["events"]
    verdict = next(
        e
        for e in log
        if e["action"] == "health_changed" and e["app"] == "gone" and e["after"]["state"] == "down"
    )
    switch = next(e for e in log if e["action"] == "group_switched" and e["group"] == "restart")
    assert verdict["seq"] < switch["seq"]
    assert wait_for(lambda: app_health(api, "pair")["down"] == ["127.0.0.9"], VERDICT)

    # Restarted while everything is up: no switch at all; and an address left out of
    # an answer is answered again from the start (unknown, until its first verdict).
    servers["127.0.0.9"].start()
    server.stop()
    server = fodns_factory(TOKEN, folder, workers=1)
    api = Api(server, TOKEN)
    assert wait_for(lambda: api.ok("GET", "/v1/apps/pair")["down"] == [], VERDICT)
    restarted = [
        e
        for e in api.ok("GET", "/v1/events?app=pair&limit=1000")["events"]
        if e["action"] == "health_changed" and (e["reason"] or "").startswith("fodns started")
    ]
    assert len(restarted) == 1 and restarted[0]["after"]["down"] == []
    assert wait_for(lambda: app_health(api, "gone")["state"] == "up", VERDICT)
    assert wait_for(lambda: app_health(api, "there")["state"] == "up", VERDICT)
    assert len(events(api, "restart", "group_switched")) == 1
    assert active(api, "restart") == "backup"  # failback manual: a person brings it back
    # The last known state of each address survived the restarts, for display.
    assert app_health(api, "gone")["last_known"]


def test_an_automatic_switch_reaches_route53_and_a_knot_secondary(
    rig: Rig, servers: dict[str, SwitchableServer], tmp_path: Path
) -> None:
    """An automatic switch is a change like a person's: the Route53 mirror and a real
    Knot DNS secondary (by NOTIFY and IXFR) follow it."""
    knot = KnotSecondary(tmp_path / "knot")
    options = transfer_options(notify=knot.port)
    running = rig.start_fodns(workers=2, zone_extra=options["zone_extra"], extra=options["extra"])
    try:
        knot.start(running.dns_port)
        check = {**FAST_CHECK, "port": servers["127.0.0.2"].port}
        for name, address in (("eu", "127.0.0.2"), ("us", "127.0.0.3")):
            rig.api("POST", "/v1/apps", {"name": name, "web_servers": [address]})
            rig.api("PUT", f"/v1/apps/{name}/check", check)
        rig.api(
            "POST",
            "/v1/groups",
            {"label": "shop", "primary": "eu", "backup": "us", "failover": "auto"},
        )
        api = Api(running, RIG_TOKEN)
        assert wait_for(lambda: app_health(api, "eu")["state"] == "up", VERDICT)
        assert rig.mirrored()

        servers["127.0.0.2"].stop()

        assert wait_for(lambda: active(api, "shop") == "backup", VERDICT)
        assert rig.served(f"shop.{ZONE}.", "A") == {
            (f"shop.{ZONE}.", "A"): (30, frozenset({"127.0.0.3"}))
        }
        assert rig.mirrored()
        assert rig.owned()[(f"shop.{ZONE}.", "A")][1] == frozenset({"127.0.0.3"})
        serial = primary_soa_serial(running)
        assert knot.wait_serial(serial, timeout=30), knot.log_text()[-2000:]
        reply = knot.query(f"shop.{ZONE}", "A")
        assert {rdata.to_text() for rrset in reply.answer for rdata in rrset} == {"127.0.0.3"}
        assert any(kind == "IXFR" and got == serial for kind, got in knot.transfers())
    finally:
        knot.stop()


def primary_soa_serial(server: FodnsProcess) -> int:
    reply = server.udp(dns.message.make_query(ZONE, "SOA"))
    return int(reply.answer[0][0].serial)


def test_fodns_probe_reports_what_it_sees_from_another_host(
    fodns_factory: StartFodns, servers: dict[str, SwitchableServer]
) -> None:
    """`fodns probe` (run here as a second process, as it would run on another host)
    reads the checks from /v1/health, runs them and reports; fodns counts it."""
    server = fodns_factory(TOKEN, workers=1)
    api = Api(server, TOKEN)
    app(api, "probed", "127.0.0.11", check={**FAST_CHECK, "port": servers["127.0.0.2"].port})
    probe = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fodns",
            "probe",
            "--api",
            f"http://127.0.0.1:{server.api_port}",
            "--name",
            "eu-west",
            "--interval",
            "1",
        ],
        env={**os.environ, "FODNS_ADMIN_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def seen_by_probe() -> str | None:
            addresses = app_health(api, "probed")["addresses"]
            views = addresses[0]["probes"] if addresses else {}
            return views.get("eu-west", {}).get("state")

        assert wait_for(lambda: seen_by_probe() == "up", VERDICT)
        probes = {p["name"]: p for p in api.ok("GET", "/v1/health")["probes"]}
        assert probes["eu-west"]["live"] and probes["eu-west"]["interval"] == 1
        servers["127.0.0.11"].stop()
        assert wait_for(lambda: seen_by_probe() == "down", VERDICT)
        evidence = app_health(api, "probed")["addresses"][0]["probes"]["eu-west"]["evidence"]
        assert "refused" in evidence["error"]
    finally:
        probe.terminate()
        probe.wait(10)


def health_processes(server: FodnsProcess) -> list[int]:
    return [
        pid for pid in children(server.process.pid) if b"fodns.probeworker" in command_line(pid)
    ]


def test_the_check_process_is_replaced_when_it_dies_and_ends_with_fodns(
    fodns_factory: StartFodns, servers: dict[str, SwitchableServer]
) -> None:
    """Checks run in a process of their own (never on a DNS loop): one that dies is
    started again and checking goes on; one whose fodns is killed ends by itself."""
    server = fodns_factory(TOKEN, workers=1)
    api = Api(server, TOKEN)
    # Without a check anywhere, no process runs for checks (after the checker's first
    # look: it says it checks no app).
    app(api, "plain", "127.0.0.11")
    assert wait_for(lambda: json.loads(server.http_get("/healthz")[1])["health_checks"], VERDICT)
    assert health_processes(server) == []
    app(api, "watched", "127.0.0.12", check={**FAST_CHECK, "port": servers["127.0.0.2"].port})
    assert wait_for(lambda: len(health_processes(server)) == 1, VERDICT)
    (first,) = health_processes(server)
    assert wait_for(lambda: app_health(api, "watched")["state"] == "up", VERDICT)

    status, body = server.http_get("/healthz")
    said = json.loads(body)["health_checks"]
    assert status == 200 and said["process_running"] and said["apps_checked"] == 1

    os.kill(first, signal.SIGKILL)

    # Until it is replaced (a second later), /healthz says checks are not running,
    # as degraded: DNS and people's switches still work, so fodns stays ready.
    def degraded() -> list[str]:
        return list(json.loads(server.http_get("/healthz")[1])["degraded"])

    assert wait_for(lambda: any("health check process" in d for d in degraded()), VERDICT)
    assert server.http_get("/healthz")[0] == 200
    assert wait_for(lambda: health_processes(server) not in ([], [first]), VERDICT)
    assert server.log_events("health_process_died")
    assert wait_for(lambda: not any("health check" in d for d in degraded()), VERDICT)
    servers["127.0.0.12"].stop()
    assert wait_for(lambda: app_health(api, "watched")["state"] == "down", VERDICT)

    (second,) = health_processes(server)
    server.kill()
    assert wait_for(lambda: not running(second), VERDICT)
