"""The change feed (fodns/feed.py) on a real SQLite file: what events touched, and cursors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import pytest

from fodns.feed import Touched, catch_up, touched
from fodns.store import Store, ZoneDefaults
from tests.support import Api, FodnsProcess, answer_data, ask_every_worker, wait_for

ZONE = "fo.example.net"
OTHER_ZONE = "fo.example.org"
ZONES = {ZONE: ZoneDefaults(serial=1), OTHER_ZONE: ZoneDefaults(serial=1)}
TOKEN = "feed-test-token-2b9c"
StartFodns = Callable[..., FodnsProcess]


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
