"""The DNS worker processes (`workers = N`) as an operator meets them: sharing the port,
one killed, one stuck, the whole service restarted or killed. Faults are real ones
(SIGKILL, SIGSTOP to PIDs found in the process tree), and afterwards every worker
answers what the store holds: nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from fodns.apirequest import NOT_SERVED
from tests.support import (
    Api,
    FodnsProcess,
    answer_data,
    ask_every_worker,
    start_with_config,
    wait_for,
)
from tests.support.workers import (
    FORK_SERVER,
    children,
    command_line,
    descendants,
    health,
    kill_leftovers,
    log_order,
    metric,
    running,
    slot_pids,
    stopped,
    worker_pids,
)

TOKEN = "workers-test-token-8d1f"
ZONE = "fo.example.net"
EU = frozenset({"192.0.2.10"})
US = frozenset({"198.51.100.7"})
# The conftest fixture `fodns_factory`: start_with_config's arguments, stopped at teardown.
StartFodns = Callable[..., FodnsProcess]


def shop(api: Api) -> None:
    """Two apps and the group `shop` following the first."""
    api.ok("POST", "/v1/apps", {"name": "eu", "web_servers": sorted(EU)}, 201)
    api.ok("POST", "/v1/apps", {"name": "us", "web_servers": sorted(US)}, 201)
    api.ok("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"}, 201)


def answers(server: FodnsProcess, name: str, qtype: str = "A") -> set[frozenset[str]]:
    """What every worker answers for `name`: one element when they all agree."""
    query = dns.message.make_query(name, qtype)
    return {frozenset(answer_data(reply)) for reply in ask_every_worker(server, query)}


def every_worker_applied_everything(server: FodnsProcess) -> bool:
    """/healthz: ready, and every worker has applied the last event of the log."""
    status, report = health(server)
    return status == 200 and all(
        state["applied_seq"] == report["last_seq"] for state in report["dns_workers"]
    )


def test_workers_share_the_port_and_count_queries_together(fodns_factory: StartFodns) -> None:
    server = fodns_factory(TOKEN, workers=2)
    assert wait_for(lambda: "fodns_dns_workers 2.0" in server.http_get("/metrics")[1])
    assert len(worker_pids(server)) == 2
    assert sorted(slot_pids(server).values()) == worker_pids(server)
    assert len(server.log_events("worker_started")) == 2
    assert answers(server, f"www.{ZONE}") == {frozenset({"192.0.2.10", "192.0.2.11"})}

    def counted_queries() -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in server.http_get("/metrics")[1].splitlines()
            if line.startswith("fodns_dns_queries_total{")
        )

    # Both workers' counters reach the API process (each reports once a second).
    assert wait_for(lambda: counted_queries() >= 24, 30)


def test_workers_outlive_their_fork_server_and_a_replacement_gets_a_new_one(
    fodns_factory: StartFodns,
) -> None:
    """The workers are forked from a fork server, but fodns serve supervises them: the
    fork server dying (OOM killer, a stray kill) leaves them serving, never "orphaned",
    and the next replacement starts from a new fork server."""
    server = fodns_factory(TOKEN, workers=2)
    api = Api(server, TOKEN)
    shop(api)
    (fork_server,) = [
        pid for pid in children(server.process.pid) if FORK_SERVER in command_line(pid)
    ]
    serving = worker_pids(server)
    slots_before = slot_pids(server)
    os.kill(fork_server, signal.SIGKILL)  # our own child, by PID
    killed_at = time.monotonic()

    # Each worker looks for its supervisor right after each report (once a second):
    # two reports from every worker since the kill mean each has looked at least once.
    reports: dict[int, list[float]] = {}

    def every_worker_reported_twice() -> bool:
        for state in health(server)[1]["dns_workers"]:
            sent = time.monotonic() - state["last_report_seconds_ago"]
            seen = reports.setdefault(state["index"], [])
            if sent > killed_at and (not seen or sent - seen[-1] > 0.5):
                seen.append(sent)
        return len(reports) == 2 and all(len(seen) >= 2 for seen in reports.values())

    assert wait_for(every_worker_reported_twice, 15)
    assert server.log_events("worker_orphaned") == []
    assert sorted(slot_pids(server).values()) == serving
    assert health(server)[0] == 200, health(server)
    assert answers(server, f"shop.{ZONE}") == {EU}

    # A worker dies now: its replacement needs a fork server, and gets a new one.
    os.kill(slots_before[0], signal.SIGKILL)  # our own grandchild once, by PID
    assert wait_for(lambda: len(server.log_events("worker_replaced")) == 1, 30)
    assert wait_for(lambda: health(server)[0] == 200, 30)
    # The survivor was handed to init with its fork server; the replacement is the new
    # fork server's. fodns serve supervises both.
    slots = slot_pids(server)
    assert slots[1] == slots_before[1] and slots[0] not in serving
    assert worker_pids(server) == [slots[0]] and running(slots[1])
    api.ok("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert answers(server, f"shop.{ZONE}") == {US}


def test_a_killed_worker_is_replaced_and_serves_what_changed_while_it_was_down(
    fodns_factory: StartFodns,
) -> None:
    server = fodns_factory(TOKEN, workers=2)
    api = Api(server, TOKEN)
    shop(api)
    slots = slot_pids(server)
    assert sorted(slots.values()) == worker_pids(server)
    victim = slots[1]
    os.kill(victim, signal.SIGKILL)  # our own grandchild, by PID

    # While it is down, /healthz says so.
    assert wait_for(lambda: health(server)[0] == 503, 10)
    report = health(server)[1]
    assert "1 of 2 DNS workers are serving" in report["problems"], report
    assert [state["serving"] for state in report["dns_workers"]] == [True, False]
    # A switch now: the dead worker answers nothing, so the live one serving it is
    # "served", and the replacement must start from the store that holds it.
    assert api.ok("POST", "/v1/groups/shop/switch", {"to": "backup"})["active"] == "backup"

    assert wait_for(lambda: health(server)[0] == 200, 60)
    assert log_order(server, "worker_died", "group_switched", "worker_replaced") == [
        "worker_died",
        "group_switched",
        "worker_replaced",
    ], "the switch did not land while the worker was down (a very slow machine?)"
    (died,) = server.log_events("worker_died")
    assert (died["worker"], died["pid"], died["exitcode"]) == (1, victim, -signal.SIGKILL)
    replacement = slot_pids(server)[1]
    assert replacement != victim and not running(victim)
    assert worker_pids(server) == sorted([slots[0], replacement])
    assert metric(server, "fodns_dns_worker_restarts_total") == 1

    assert wait_for(lambda: every_worker_applied_everything(server), 30)
    assert answers(server, f"shop.{ZONE}") == {US}
    # The replacement follows the log like the others: a 200 is served by both.
    api.ok("POST", "/v1/groups/shop/switch", {"to": "primary"})
    assert answers(server, f"shop.{ZONE}") == {EU}


def test_a_stuck_worker_makes_a_change_a_202_until_it_catches_up(
    fodns_factory: StartFodns,
) -> None:
    server = fodns_factory(TOKEN, workers=2)
    api = Api(server, TOKEN)
    shop(api)
    slots = slot_pids(server)
    stuck = slots[1]
    with stopped(stuck):  # alive and holding its sockets, but it serves nothing new
        status, body = api.call("POST", "/v1/groups/shop/switch", {"to": "backup"})
        assert status == 202, body
        assert body["served"] is False and body["message"] == NOT_SERVED
        # The usual body otherwise: the change is made, with the answer it will have.
        assert body["active"] == "backup"
        assert body["answer"] == [{"type": "A", "data": "198.51.100.7"}]
        report = health(server)[1]
        assert not report["ready"] and any("DNS worker 1" in p for p in report["problems"])
        assert metric(server, "fodns_api_changes_not_served_total") == 1
        assert len(server.log_events("change_not_served_in_time")) == 1

        # Stuck for longer than fodns waits to hear from a worker: it still holds its
        # sockets (queries sent to it wait, then get the old answer), so a change is
        # still not served by every worker.
        assert wait_for(
            lambda: "1 of 2 DNS workers are serving" in health(server)[1]["problems"], 30
        )
        status, body = api.call("POST", "/v1/groups/shop/switch", {"to": "primary"})
        assert (status, body["served"]) == (202, False), body
        assert slot_pids(server)[1] == stuck  # stuck is not dead: it is not replaced

    # Once it runs again it catches up: both changes were durable, none is lost.
    assert wait_for(lambda: every_worker_applied_everything(server), 30)
    assert answers(server, f"shop.{ZONE}") == {EU}
    assert api.ok("GET", "/v1/groups/shop")["active"] == "primary"
    assert api.ok("POST", "/v1/groups/shop/switch", {"to": "backup"})["active"] == "backup"
    assert answers(server, f"shop.{ZONE}") == {US}
    assert metric(server, "fodns_dns_worker_restarts_total") == 0


def test_a_replacement_still_starting_keeps_a_change_at_202(fodns_factory: StartFodns) -> None:
    """A replacement binds the port as soon as its table is built, and that table may
    predate a change committed meanwhile: until it reports the change applied, a
    change is not "served" by every worker."""
    server = fodns_factory(TOKEN, workers=2)
    api = Api(server, TOKEN)
    shop(api)
    survivor, victim = slot_pids(server)[0], slot_pids(server)[1]
    os.kill(victim, signal.SIGKILL)

    def replacement() -> int | None:
        pids = [pid for pid in worker_pids(server) if pid not in (survivor, victim)]
        return pids[0] if pids else None

    assert wait_for(replacement, 30)
    starting = replacement()
    assert starting is not None
    with stopped(starting):  # caught while it starts: alive, not yet reporting
        status, body = api.call("POST", "/v1/groups/shop/switch", {"to": "backup"})
        assert (status, body["served"]) == (202, False), body
    assert wait_for(lambda: every_worker_applied_everything(server), 30)
    assert slot_pids(server)[1] == starting
    assert answers(server, f"shop.{ZONE}") == {US}


def served_state(server: FodnsProcess, labels: list[str]) -> dict[str, object]:
    """What every worker serves (each must agree) and what the API lists."""
    soa = dns.message.make_query(ZONE, "SOA")
    serials = {reply.answer[0][0].serial for reply in ask_every_worker(server, soa)}
    names = {}
    for label in labels:
        query = dns.message.make_query(f"{label}.{ZONE}", "A")
        names[label] = {
            (dns.rcode.to_text(reply.rcode()), frozenset(answer_data(reply)))
            for reply in ask_every_worker(server, query)
        }
    assert len(serials) == 1 and all(len(seen) == 1 for seen in names.values()), (serials, names)
    return {
        "serials": serials,
        "names": names,
        "groups": Api(server, TOKEN).ok("GET", "/v1/groups")["groups"],
    }


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "kill9"])
def test_after_a_restart_or_kill_9_every_worker_serves_the_same_state(
    tmp_path: Path, workers: int, stop_signal: int, fodns_factory: StartFodns
) -> None:
    """The whole service stopped (SIGTERM) or killed (SIGKILL), then started again on
    the same database: every worker serves what every worker served before. No worker
    outlives the service: one left behind would go on answering on the shared port
    (SO_REUSEPORT) with nobody to reload, stop or replace it."""
    directory = tmp_path / "state"
    directory.mkdir()
    first = start_with_config(directory, TOKEN, workers=workers)
    pids = worker_pids(first)
    # The fork server, the workers it forked and multiprocessing's resource tracker.
    tree = descendants(first.process.pid)
    try:
        assert len(pids) == (workers if workers > 1 else 0)
        api = Api(first, TOKEN)
        shop(api)
        api.ok("POST", "/v1/groups/shop/switch", {"to": "backup"})
        kept = api.ok("POST", "/v1/groups", {"primary": "us"}, 201)["label"]
        deleted = api.ok("POST", "/v1/groups", {}, 201)["label"]
        api.ok("DELETE", f"/v1/groups/{deleted}", status=204)
        labels = ["shop", kept, deleted, "www"]
        before = served_state(first, labels)
        assert before["names"]["shop"] == {("NOERROR", US)}
        assert before["names"][deleted] == {("NXDOMAIN", frozenset())}

        first.process.send_signal(stop_signal)
        first.process.wait(30)
        assert first.process.returncode == (0 if stop_signal == signal.SIGTERM else -9)
        assert wait_for(lambda: not any(running(pid) for pid in tree), 15), (
            "a child process (a DNS worker?) outlived fodns serve"
        )
    finally:
        left = kill_leftovers(tree)
        first.stop()
    assert left == []

    again = fodns_factory(TOKEN, directory=directory, workers=workers)
    assert len(worker_pids(again)) == len(pids)
    assert served_state(again, labels) == before
