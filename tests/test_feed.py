"""The change feed (fodns/feed.py) on a real SQLite file: what events touched, and cursors."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import pytest

from fodns.consumers import NotifyFollower
from fodns.feed import Touched, catch_up, touched
from fodns.store import Store, ZoneDefaults
from tests.route53_rig import Rig, add_apps
from tests.support import (
    Api,
    FodnsProcess,
    answer_data,
    api_request,
    ask_every_worker,
    wait_for,
)
from tests.support.notify import NotifyReceiver
from tests.support.transfer import ixfr, pull, transfer_options
from tests.support.transfer import served as served_in

ZONE = "fo.example.net"
OTHER_ZONE = "fo.example.org"
ZONES = {ZONE: ZoneDefaults(serial=1), OTHER_ZONE: ZoneDefaults(serial=1)}
TOKEN = "feed-test-token-2b9c"
StartFodns = Callable[..., FodnsProcess]
T = TypeVar("T")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "fodns.db", ZONES) as opened:
        opened.create_app("ops", "dc1", web_servers=["192.0.2.10"])
        opened.create_app("ops", "dc2", web_servers=["192.0.2.20"])
        opened.create_app("ops", "dc3", load_balancer="lb.dc3.example.com")
        yield opened


class Recorder:
    """A consumer of the feed that keeps what it was given, and can fail on demand."""

    def __init__(self, applied_seq: int = 0) -> None:
        self.applied_seq = applied_seq
        self.applied: list[Touched] = []
        self.failures_left = 0

    def apply(self, touched_now: Touched) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("this consumer cannot apply right now")
        self.applied.append(touched_now)


class OneEventAtATime:
    """The real store, read one event per step: how a follower far behind catches up."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def touched_since(self, seq: int) -> Touched:
        return self.store.touched_since(seq, limit=1)


def test_a_group_change_touches_its_group_and_the_apps_on_both_sides(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1", backup="dc2")
    seq = store.last_seq()
    store.update_group("ops", "web", ZONE, primary="dc3")

    touch = touched(store.events_since(seq))

    assert touch.groups == {(ZONE, "web")}
    # dc1 left the group (its failover status may now be "none"), dc3 joined it.
    assert touch.apps == {"dc1", "dc2", "dc3"}
    assert touch.zones == {ZONE}


def test_an_app_rename_touches_both_names_and_every_group_using_it(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1")
    store.create_group("ops", OTHER_ZONE, "api", backup="dc1")
    store.create_group("ops", ZONE, "other", primary="dc2")
    seq = store.last_seq()
    store.update_app("ops", "dc1", new_name="dc1-new")

    touch = touched(store.events_since(seq))
    assert touch.apps == {"dc1", "dc1-new"}
    # The event says which groups used the app when it was written: no store read.
    assert touch.groups == {(ZONE, "web"), (OTHER_ZONE, "api")}
    assert touch.zones == {ZONE, OTHER_ZONE}

    state = store.touched_since(seq)
    assert {(g.zone, g.label) for g in state.groups} == {(ZONE, "web"), (OTHER_ZONE, "api")}
    assert {g.primary for g in state.groups} | {g.backup for g in state.groups} >= {"dc1-new"}
    assert set(state.serials) == {ZONE, OTHER_ZONE}


def test_a_deleted_group_is_touched_and_reported_gone(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1")
    store.create_group("ops", OTHER_ZONE, "kept", primary="dc2")
    seq = store.last_seq()
    store.update_group("ops", "web", ZONE, primary=None)
    store.delete_group("ops", "web", ZONE)

    state = store.touched_since(seq)
    assert state.deleted_groups == ((ZONE, "web"),)
    assert state.groups == ()
    assert state.in_zone(ZONE) == ([], ["web"])
    assert state.in_zone(OTHER_ZONE) == ([], [])


def test_touched_says_each_zone_apart(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1")
    store.create_group("ops", OTHER_ZONE, "web", primary="dc2")

    state = store.touched_since(0)
    here, gone_here = state.in_zone(ZONE)
    there, gone_there = state.in_zone(OTHER_ZONE)
    assert [(g.zone, g.primary) for g in here] == [(ZONE, "dc1")]
    assert [(g.zone, g.primary) for g in there] == [(OTHER_ZONE, "dc2")]
    assert gone_here == gone_there == []


def test_catch_up_applies_every_event_in_sequence_order(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1", backup="dc2")
    for side in ("backup", "primary", "backup"):
        store.switch("ops", "web", side, ZONE)
    consumer = Recorder()

    cursor = catch_up(OneEventAtATime(store), consumer)

    seqs = [t.last_seq for t in consumer.applied]
    assert cursor == consumer.applied_seq == store.last_seq()
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e.seq for t in consumer.applied for e in t.events] == list(range(1, cursor + 1))
    # Each step reads the state as it is now: the last one is the store's.
    assert consumer.applied[-1].groups[0].active == "backup"


class CountedReads:
    """The real store, counting the reads of the log a catch-up makes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    def touched_since(self, seq: int) -> Touched:
        self.reads += 1
        return self.store.touched_since(seq)


def test_a_catch_up_the_log_ends_reads_it_once(store: Store) -> None:
    """On the path from a switch to served: the run the log ended is the last, with
    no second read to learn that nothing came; one cut by the read's bound is not."""
    store.create_group("ops", ZONE, "web", primary="dc1", backup="dc2")
    store.switch("ops", "web", "backup", ZONE)
    source, consumer = CountedReads(store), Recorder()
    assert catch_up(source, consumer) == store.last_seq()
    assert source.reads == 1
    stepped = OneEventAtATime(store)
    assert catch_up(stepped, Recorder()) == store.last_seq()  # bound-cut runs go on


def test_catch_up_from_a_cursor_applies_only_what_came_after(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1", backup="dc2")
    consumer = Recorder(applied_seq=store.last_seq())
    store.switch("ops", "web", "backup", ZONE)

    catch_up(store, consumer)

    assert [[e.action for e in t.events] for t in consumer.applied] == [["group_switched"]]
    assert catch_up(store, consumer) == store.last_seq()
    assert len(consumer.applied) == 1  # nothing new: nothing applied


def test_a_consumer_that_fails_reads_the_same_events_again(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1", backup="dc2")
    consumer = Recorder()
    consumer.failures_left = 1

    with pytest.raises(RuntimeError):
        catch_up(store, consumer)
    assert consumer.applied_seq == 0  # the cursor did not move past what was not applied

    catch_up(store, consumer)
    assert consumer.applied_seq == store.last_seq()
    assert [e.seq for t in consumer.applied for e in t.events] == list(
        range(1, store.last_seq() + 1)
    )


def test_touch_as_json_names_groups_by_zone_label_and_fqdn(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1")
    assert touched(store.events_since(3)).to_json() == {
        "groups": [{"zone": ZONE, "label": "web", "fqdn": f"web.{ZONE}"}],
        "apps": ["dc1"],
        "zones": [ZONE],
    }


def test_every_commit_is_published_once_in_commit_order(store: Store) -> None:
    """Writers on eight threads at once: the callback hears each seq once, in order."""
    published: list[int] = []
    store.on_commit(published.append)
    first = store.last_seq() + 1
    for index in range(8):
        store.create_group("ops", ZONE, f"g{index}", primary="dc1", backup="dc2")

    def switch_back_and_forth(index: int) -> None:
        for side in ("backup", "primary", "backup"):
            store.switch("ops", f"g{index}", side, ZONE)

    threads = [threading.Thread(target=switch_back_and_forth, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert published == list(range(first, store.last_seq() + 1))


def test_a_write_that_changes_nothing_publishes_nothing(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1", backup="dc2")
    published: list[int] = []
    store.on_commit(published.append)

    store.switch("ops", "web", "primary", ZONE)  # already active: no event
    store.heartbeat()  # a write, but not a change

    assert published == []


def test_a_failing_callback_neither_fails_the_write_nor_silences_the_others(
    store: Store,
) -> None:
    def broken(seq: int) -> None:
        raise RuntimeError(f"cannot take {seq}")

    published: list[int] = []
    store.on_commit(broken)
    store.on_commit(published.append)

    change = store.create_group("ops", ZONE, "web", primary="dc1")

    assert change.event is not None
    assert published == [change.event.seq]
    assert store.group("web", ZONE).primary == "dc1"  # durable


def served_everywhere(server: FodnsProcess, fqdn: str) -> set[frozenset[str]]:
    """The distinct answers to `fqdn` from sockets SO_REUSEPORT spreads over every worker."""
    replies = ask_every_worker(server, dns.message.make_query(fqdn, "A"))
    return {frozenset(answer_data(reply)) for reply in replies}


def test_a_change_no_wake_up_announces_is_served_from_the_log(
    fodns_factory: StartFodns, workers: int, tmp_path: Path
) -> None:
    """A change committed by another process (here a second Store on the same file) is
    never announced to this fodns: every DNS process must still find it in the log."""
    folder = tmp_path / "serve"
    running = fodns_factory(TOKEN, directory=folder, workers=workers)
    api = Api(running, TOKEN)
    api.ok("POST", "/v1/apps", {"name": "dc1", "web_servers": ["192.0.2.10"]}, 201)
    api.ok("POST", "/v1/apps", {"name": "dc2", "web_servers": ["192.0.2.20"]}, 201)
    api.ok("POST", "/v1/groups", {"label": "web", "primary": "dc1", "backup": "dc2"}, 201)
    fqdn = f"web.{ZONE}"
    assert served_everywhere(running, fqdn) == {frozenset({"192.0.2.10"})}

    with Store(folder / "fodns.db", {ZONE: ZoneDefaults(serial=1)}) as elsewhere:
        elsewhere.switch("elsewhere", "web", "backup", ZONE)

    assert wait_for(lambda: served_everywhere(running, fqdn) == {frozenset({"192.0.2.20"})}, 5.0)


def test_touched_since_reads_no_further_than_upto(store: Store) -> None:
    store.create_group("ops", ZONE, "web", primary="dc1", backup="dc2")
    start = store.last_seq()
    store.switch("ops", "web", "backup", ZONE)
    bound = store.last_seq()
    store.create_group("ops", OTHER_ZONE, "later", primary="dc3")

    bounded = store.touched_since(start, upto=bound)

    assert [event.seq for event in bounded.events] == [bound]
    assert bounded.last_seq == bound
    assert set(bounded.serials) == {ZONE}  # the later group's zone is not read yet
    assert store.touched_since(bound, upto=bound).events == ()


def test_notify_follows_what_dns_serves_not_what_is_committed(store: Store) -> None:
    """Each zone is announced once DNS serves the change that moved its serial, once;
    a change committed but not served yet is left for later, not read ahead and lost."""
    store.create_group("ops", ZONE, "web", primary="dc1", backup="dc2")
    store.create_group("ops", OTHER_ZONE, "api", primary="dc1", backup="dc2")
    start = store.last_seq()
    # What DNS serves: the frontier, and each zone's serial there.
    served = {"seq": start, ZONE: store.serial(ZONE), OTHER_ZONE: store.serial(OTHER_ZONE)}
    announced: list[str] = []
    follower = NotifyFollower(
        store, start, [ZONE, OTHER_ZONE], lambda zone: served[zone], announced.append
    )
    store.switch("ops", "web", "backup", ZONE)
    first = store.last_seq()
    store.switch("ops", "api", "backup", OTHER_ZONE)

    served.update({"seq": first, ZONE: store.serial(ZONE)})  # DNS serves the first only
    follower.served_up_to(first)
    assert announced == [ZONE]

    served.update({"seq": store.last_seq(), OTHER_ZONE: store.serial(OTHER_ZONE)})
    follower.served_up_to(store.last_seq())
    assert announced == [ZONE, OTHER_ZONE]

    serial = store.serial(ZONE)
    store.update_group("ops", "web", ZONE, primary=None)  # not the active side: same answer
    assert store.serial(ZONE) == serial
    follower.served_up_to(store.last_seq())
    assert announced == [ZONE, OTHER_ZONE]  # served, but no serial moved: nothing told


# ---- concurrent writes: each reply once DNS serves it, and served in commit order -------

ADDRESSES = {"eu": "192.0.2.10", "us": "198.51.100.7", "asia": "203.0.113.5"}
# (what DNS answers for a group: its addresses and TTL)
Answer = tuple[frozenset[str], int]


def answer_of(state: dict[str, Any]) -> Answer:
    """What a group in this state (an event's before or after) answers."""
    return frozenset({ADDRESSES[state[state["active"]]]}), int(state["ttl"])


def dns_answers(server: FodnsProcess, fqdn: str) -> set[Answer]:
    """The distinct answers (addresses, TTL; -1 for none) of every worker to `fqdn`."""
    replies = ask_every_worker(server, dns.message.make_query(fqdn, "A"))
    return {
        (frozenset(answer_data(reply)), reply.answer[0].ttl if reply.answer else -1)
        for reply in replies
    }


class AppliedSeqs:
    """Reads /healthz over and over on a thread (bounded) while writes run: each DNS
    process's applied_seq, as seen, in order."""

    def __init__(self, server: FodnsProcess) -> None:
        self.server = server
        self.seen: dict[tuple[int, int], list[int]] = {}  # (slot, pid) -> applied seqs
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stopping.is_set() and time.monotonic() < deadline:
            _, report = api_request(self.server, "GET", "/healthz")
            for state in report["dns_workers"]:
                key = (state["index"], state["pid"])
                self.seen.setdefault(key, []).append(state["applied_seq"])

    def stop(self) -> dict[tuple[int, int], list[int]]:
        self.stopping.set()
        self.thread.join(10)
        return self.seen


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run each call on its own thread, all released at the same moment; their results
    (a call that raised raises here)."""
    start = threading.Barrier(len(calls))

    def released(call: Callable[[], T]) -> T:
        start.wait(10)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(released, call) for call in calls]
        return [future.result(60) for future in futures]


# Each case: the two writes of one round (method, path, body), given the round's number.
Write = tuple[str, str, dict[str, Any]]
CONCURRENT_CASES = {
    "switches of two groups": lambda round_: (
        ("POST", "/v1/groups/shop/switch", {"to": ("backup", "primary")[round_ % 2]}),
        ("POST", "/v1/groups/cart/switch", {"to": ("backup", "primary")[round_ % 2]}),
    ),
    "a switch and a patch of one group": lambda round_: (
        ("POST", "/v1/groups/shop/switch", {"to": ("backup", "primary")[round_ % 2]}),
        ("PATCH", "/v1/groups/shop", {"ttl": 100 + round_}),
    ),
}


@pytest.mark.parametrize("case", list(CONCURRENT_CASES))
def test_two_concurrent_writes_are_served_in_commit_order(
    fodns_factory: StartFodns, workers: int, case: str
) -> None:
    """Two clients write at the same moment, five rounds. Each reply comes only once
    every DNS process serves that write (what they answer right after it is the state
    of that write's event or a later one); no process's applied seq ever goes back; the
    events list both in commit order, the later one having seen the earlier; and DNS
    ends with the later commit's state, which is what the store holds."""
    running = fodns_factory(TOKEN, workers=workers)
    api = Api(running, TOKEN)
    for name, address in ADDRESSES.items():
        api.ok("POST", "/v1/apps", {"name": name, "web_servers": [address]}, 201)
    api.ok("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"}, 201)
    api.ok("POST", "/v1/groups", {"label": "cart", "primary": "eu", "backup": "asia"}, 201)
    watcher = AppliedSeqs(running)
    try:
        for round_ in range(5):
            before = api.ok("GET", "/v1/events?limit=1")["events"][0]["seq"]

            def write(method: str, path: str, body: dict[str, Any]) -> tuple[Any, ...]:
                status, reply = api.call(method, path, body)
                fqdn = f"{reply['label']}.{ZONE}"
                return status, reply["label"], dns_answers(running, fqdn)

            writes = CONCURRENT_CASES[case](round_)
            results = at_once(*(functools.partial(write, *w) for w in writes))

            events = api.ok("GET", f"/v1/events?after={before}")["events"]
            assert [status for status, _, _ in results] == [200, 200], results
            assert len(events) == 2 and events[0]["seq"] > events[1]["seq"], events
            later, earlier = events
            if later["group"] == earlier["group"]:
                assert later["before"] == earlier["after"]  # it saw the earlier write
            by_action = {"POST": "group_switched", "PATCH": "group_updated"}
            for (method, _, _), (_, label, seen) in zip(writes, results, strict=True):
                mine = next(
                    e for e in events if e["group"] == label and e["action"] == by_action[method]
                )
                # The state of this write's event, or of a later one of the same group.
                allowed = {
                    answer_of(e["after"])
                    for e in events
                    if e["group"] == label and e["seq"] >= mine["seq"]
                }
                assert seen <= allowed, (round_, label, seen, allowed)
            for label in {later["group"], earlier["group"]}:
                stored = api.ok("GET", f"/v1/groups/{label}")
                last = next(e for e in events if e["group"] == label)  # newest first
                assert {key: stored[key] for key in last["after"]} == last["after"]
                assert dns_answers(running, f"{label}.{ZONE}") == {answer_of(last["after"])}
    finally:
        seen_seqs = watcher.stop()
    assert len(seen_seqs) >= workers
    for process, seqs in seen_seqs.items():
        assert seqs == sorted(seqs), (process, seqs)


# ---- one switch through every consumer of the log ------------------------------------

SHOP = f"shop.{ZONE}."
SWITCHED = {(SHOP, "CNAME"): (30, frozenset({"lb.us.example.com."}))}


def soa_serials(server: FodnsProcess) -> set[int]:
    """The zone's SOA serial as each DNS process serves it."""
    replies = ask_every_worker(server, dns.message.make_query(ZONE, "SOA"))
    return {int(reply.answer[0][0].serial) for reply in replies}


def notified_serials(server: FodnsProcess) -> list[int]:
    """The serial of each NOTIFY round a secondary answered, in order."""
    return [int(str(event["serial"])) for event in server.log_events("notify_answered")]


def test_one_switch_reaches_every_consumer(rig: Rig, workers: int) -> None:
    """One switch, followed through every consumer of the change log: every DNS
    process answers it, a secondary's IXFR from the old serial brings it, Route53
    comes to hold it, the secondary is told by NOTIFY (once every DNS process
    serves the new serial), and the event log lists it."""
    receiver = NotifyReceiver()
    try:
        options = transfer_options(notify=receiver.port)
        running = rig.start_fodns(
            workers=workers, zone_extra=options["zone_extra"], extra=options["extra"]
        )
        add_apps(rig)
        rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
        assert rig.mirrored()
        (old_serial,) = soa_serials(running)
        assert wait_for(lambda: old_serial in notified_serials(running), 30)
        secondary = pull(running)  # the secondary's copy at the old serial
        before = rig.api("GET", "/v1/events?limit=1")["events"][0]["seq"]
        receiver.on_notify = lambda: soa_serials(running)
        told_before = len(receiver.seen_on_notify)

        switched = rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})

        assert switched["active"] == "backup"
        # Every DNS process (sixteen sockets: SO_REUSEPORT spreads them over the workers).
        assert rig.served(SHOP, "A") == SWITCHED
        assert soa_serials(running) == {old_serial + 1}
        # A secondary's IXFR from the old serial: just the switch's difference.
        transfer = ixfr(running, secondary)
        assert transfer["client_serial"] == old_serial
        assert secondary.get_soa().serial == old_serial + 1
        assert served_in(secondary, "shop", "CNAME") == {"lb.us.example.com."}
        assert served_in(secondary, "shop", "A") == set()
        # Route53.
        assert rig.mirrored()
        assert rig.owned() == SWITCHED
        # NOTIFY, sent once every DNS process served the new serial.
        assert wait_for(lambda: old_serial + 1 in notified_serials(running), 30)
        told = receiver.seen_on_notify[told_before:]
        assert told and all(serials == {old_serial + 1} for serials in told), told
        # The event log.
        events = rig.api("GET", f"/v1/events?after={before}")["events"]
        assert [(e["action"], e["group"], e["after"]["active"]) for e in events] == [
            ("group_switched", "shop", "backup")
        ]
    finally:
        receiver.close()
