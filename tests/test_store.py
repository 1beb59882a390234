"""The store on real SQLite files: one test per rule of groups, concurrency and kill -9."""

from __future__ import annotations

import contextlib
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from fodns import journal as zone_journal
from fodns.config import load_config
from fodns.errors import Conflict, FodnsError, Invalid, NotFound
from fodns.migrations import LATEST, MIGRATIONS
from fodns.model import Group
from fodns.server import load_zones, open_store
from fodns.store import UNSET, Change, Store, ZoneDefaults
from tests.support import EXAMPLE_ZONE, file_mode, write_config

REPOSITORY = Path(__file__).resolve().parent.parent
ZONE = "fo.example.net"
OTHER_ZONE = "fo.example.org"
ZONE_SERIAL = 2024112200
ONE_ZONE = {ZONE: ZoneDefaults(serial=ZONE_SERIAL, group_ttl=30)}
TWO_ZONES = {**ONE_ZONE, OTHER_ZONE: ZoneDefaults(serial=7, group_ttl=60)}
ISO_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "fodns.db", ONE_ZONE) as opened:
        yield opened


@pytest.fixture
def two_zone_store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "fodns.db", TWO_ZONES) as opened:
        yield opened


def add_apps(store: Store) -> None:
    store.create_app("ops", "dc1", web_servers=["192.0.2.10", "192.0.2.11"])
    store.create_app("ops", "dc2", load_balancer="lb.dc2.example.com")


def new_group(store: Store, **fields: Any) -> Group:
    return store.create_group("ops", **fields).groups[0]


# Labels


def test_a_label_is_never_reused(store: Store) -> None:
    new_group(store, label="shop")
    store.delete_group("ops", "shop")
    with pytest.raises(NotFound):
        store.group("shop")
    with pytest.raises(Conflict, match="never reused"):
        store.create_group("ops", label="shop")
    with pytest.raises(Conflict, match="never reused"):
        store.create_group("ops", label="SHOP")  # labels are DNS names: case-blind


def test_a_label_in_use_is_taken(store: Store) -> None:
    new_group(store, label="shop")
    with pytest.raises(Conflict, match="taken"):
        store.create_group("ops", label="shop")


def test_generated_labels_are_nine_digits_and_unique(store: Store) -> None:
    labels = [new_group(store).label for _ in range(200)]
    assert all(re.match(r"^\d{3}-\d{3}-\d{3}$", label) for label in labels)
    assert len(set(labels)) == len(labels)


def test_generated_labels_skip_tombstones(tmp_path: Path) -> None:
    rng = random.Random(1982)
    with Store(tmp_path / "fodns.db", ONE_ZONE, rng=rng) as store:
        first = new_group(store).label
        store.delete_group("ops", first)
        rng.seed(1982)  # replay: the first draw is the deleted group's label again
        second = new_group(store).label
        assert second != first
        assert re.match(r"^\d{3}-\d{3}-\d{3}$", second)
        rng.seed(1982)  # and both are now taken
        assert new_group(store).label not in {first, second}


# Groups and their sides


def test_a_group_may_have_no_apps(store: Store) -> None:
    group = new_group(store, label="reserved")
    assert (group.primary, group.backup, group.active, group.ttl) == (None, None, "primary", 30)
    assert group.active_app is None  # answers NODATA
    assert store.group("reserved") == group


def test_backup_is_optional(store: Store) -> None:
    add_apps(store)
    group = new_group(store, primary="dc1")
    assert (group.primary, group.backup, group.active) == ("dc1", None, "primary")


def test_switch_to_a_side_without_app_is_refused(store: Store) -> None:
    add_apps(store)
    new_group(store, label="www", primary="dc1")
    seq = store.last_seq()
    with pytest.raises(Conflict, match=r"backup side of group www\.fo\.example\.net has no app"):
        store.switch("ops", "www", "backup")
    assert store.group("www").active == "primary"
    assert store.last_seq() == seq


def test_switch_moves_the_active_side(store: Store) -> None:
    add_apps(store)
    new_group(store, label="www", primary="dc1", backup="dc2")
    change = store.switch("ops", "www", "backup", reason="dc1 maintenance")
    assert change.event is not None and change.event.action == "group_switched"
    assert change.event.reason == "dc1 maintenance"
    assert change.groups == (store.group("www"),)
    assert change.groups[0].active_app == "dc2"
    assert set(change.apps) == {"dc1", "dc2"}


def test_switch_to_the_active_side_records_nothing(store: Store) -> None:
    add_apps(store)
    new_group(store, label="www", primary="dc1", backup="dc2")
    seq, serial = store.last_seq(), store.serial(ZONE)
    change = store.switch("ops", "www", "primary")
    assert change.event is None
    assert change.serials == {}
    assert change.groups == (store.group("www"),)
    assert (store.last_seq(), store.serial(ZONE)) == (seq, serial)


def test_clearing_the_active_side_is_allowed_and_leaves_nodata(store: Store) -> None:
    add_apps(store)
    new_group(store, label="www", primary="dc1", backup="dc2")
    change = store.update_group("ops", "www", primary=None)
    group = change.groups[0]
    assert (group.primary, group.backup, group.active, group.active_app) == (
        None,
        "dc2",
        "primary",
        None,
    )
    assert change.serials  # the answer changed: from dc1's web head to NODATA


def test_update_group_leaves_unset_fields_alone(store: Store) -> None:
    add_apps(store)
    new_group(store, label="www", primary="dc1")
    change = store.update_group("ops", "www", backup="dc2")
    assert change.groups[0] == Group(ZONE, "www", "dc1", "dc2", "primary", 30)
    assert change.serials == {}  # only the inactive side changed: no answer moved
    assert store.update_group("ops", "www", primary=UNSET, ttl=30).event is None
    assert store.update_group("ops", "www", ttl=300).groups[0].ttl == 300


def test_a_group_needs_two_different_apps_and_known_ones(store: Store) -> None:
    add_apps(store)
    with pytest.raises(Conflict) as caught:
        store.create_group("ops", primary="dc1", backup="DC1")
    assert caught.value.field == "backup"
    with pytest.raises(NotFound, match=r"^primary: no app named 'nope'"):
        store.create_group("ops", primary="nope")
    with pytest.raises(NotFound, match=r"^backup: no app named 'nope'"):
        store.create_group("ops", primary="dc1", backup="nope")
    new_group(store, label="www", primary="dc1")
    with pytest.raises(Conflict) as caught:
        store.update_group("ops", "www", backup="dc1")
    assert caught.value.field == "backup"


def test_a_group_is_deleted_only_once_it_points_at_no_app(store: Store) -> None:
    add_apps(store)
    new_group(store, label="www", primary="dc1", backup="dc2")
    with pytest.raises(Conflict, match=r"\(primary dc1, backup dc2\); clear both sides first$"):
        store.delete_group("ops", "www")
    store.update_group("ops", "www", primary=None)
    # Only the side that is set is named (never "primary None").
    with pytest.raises(Conflict, match=r"points at an app \(backup dc2\); clear that side first$"):
        store.delete_group("ops", "www")
    store.update_group("ops", "www", backup=None)
    change = store.delete_group("ops", "www")
    assert change.deleted_groups == ((ZONE, "www"),)
    assert change.event is not None and change.event.after is None
    assert store.groups() == []


def test_group_ttl_defaults_to_the_zone_and_is_checked(two_zone_store: Store) -> None:
    assert new_group(two_zone_store, zone=OTHER_ZONE).ttl == 60
    assert new_group(two_zone_store, zone=ZONE, ttl=5).ttl == 5


def test_create_group_zone_none_means_the_only_zone(store: Store) -> None:
    assert new_group(store).zone == ZONE
    assert new_group(store, zone="FO.Example.NET.").zone == ZONE
    with pytest.raises(NotFound, match="not served here"):
        store.create_group("ops", zone="elsewhere.example")


def test_a_label_in_two_zones_needs_the_zone(two_zone_store: Store) -> None:
    new_group(two_zone_store, zone=ZONE, label="www")
    new_group(two_zone_store, zone=OTHER_ZONE, label="www")
    with pytest.raises(Invalid) as caught:
        two_zone_store.group("www")
    assert caught.value.field == "zone"
    assert two_zone_store.group("www", OTHER_ZONE).ttl == 60
    assert [g.zone for g in two_zone_store.groups(OTHER_ZONE)] == [OTHER_ZONE]


# Apps


def test_an_app_is_deleted_only_when_no_group_references_it(store: Store) -> None:
    add_apps(store)
    new_group(store, label="www", primary="dc1", backup="dc2")
    with pytest.raises(Conflict, match=r"www\.fo\.example\.net"):
        store.delete_app("ops", "dc2")  # the inactive side counts too
    store.update_group("ops", "www", backup=None)
    change = store.delete_app("ops", "dc2")
    assert change.event is not None and change.event.action == "app_deleted"
    with pytest.raises(NotFound):
        store.app("dc2")


def test_app_names_are_unique_whatever_the_case(store: Store) -> None:
    add_apps(store)
    with pytest.raises(Conflict):
        store.create_app("ops", "DC1")
    assert store.app("DC1").name == "dc1"
    with pytest.raises(Conflict):
        store.update_app("ops", "dc1", new_name="Dc2")


def test_rename_keeps_groups_pointing_at_the_app(store: Store) -> None:
    add_apps(store)
    new_group(store, label="www", primary="dc1", backup="dc2")
    change = store.update_app("ops", "dc1", new_name="frankfurt")
    assert change.event is not None and change.event.action == "app_updated"
    assert change.event.before is not None and change.event.before["name"] == "dc1"
    assert change.event.after is not None and change.event.after["name"] == "frankfurt"
    assert store.group("www").primary == "frankfurt"
    assert change.groups == (store.group("www"),)
    assert change.serials == {}  # the web head, so every answer, is unchanged
    with pytest.raises(NotFound):
        store.app("dc1")


def test_web_head_change_returns_every_group_using_the_app(two_zone_store: Store) -> None:
    store = two_zone_store
    add_apps(store)
    store.create_app("ops", "dc3", web_servers=["2001:db8::3"])
    new_group(store, zone=ZONE, label="a", primary="dc1", backup="dc2")
    new_group(store, zone=OTHER_ZONE, label="b", primary="dc1")
    new_group(store, zone=OTHER_ZONE, label="c", primary="dc2", backup="dc1")
    new_group(store, zone=OTHER_ZONE, label="unrelated", primary="dc3")
    before = store.snapshot()[2]
    change = store.update_app("ops", "dc1", load_balancer=["198.51.100.1"])
    assert {(g.zone, g.label) for g in change.groups} == {
        (ZONE, "a"),
        (OTHER_ZONE, "b"),
        (OTHER_ZONE, "c"),
    }
    assert change.apps["dc1"].web_head == ("198.51.100.1",)
    assert set(change.apps) == {"dc1", "dc2"}
    assert change.serials == {z: before[z] + 1 for z in (ZONE, OTHER_ZONE)}
    # dc1 is live only in "b" now: clearing its load balancer moves only that zone.
    store.switch("ops", "a", "backup")
    change = store.update_app("ops", "dc1", load_balancer=[])
    assert set(change.serials) == {OTHER_ZONE}
    assert store.app("dc1").web_head == ("192.0.2.10", "192.0.2.11")


def test_update_app_that_changes_nothing_records_nothing(store: Store) -> None:
    add_apps(store)
    seq = store.last_seq()
    change = store.update_app("ops", "dc1", web_servers=["192.0.2.10", "192.0.2.11"])
    assert change.event is None
    assert store.last_seq() == seq


def test_failover_status(store: Store) -> None:
    add_apps(store)
    assert store.failover_status("dc1") == "none"
    new_group(store, label="www", backup="dc1")
    assert store.failover_status("dc1") == "offline"
    store.update_group("ops", "www", primary="dc2")
    assert (store.failover_status("dc1"), store.failover_status("dc2")) == ("offline", "online")
    store.switch("ops", "www", "backup")
    assert (store.failover_status("dc1"), store.failover_status("dc2")) == ("online", "offline")
    assert [g.label for g in store.groups_using("dc1")] == ["www"]
    with pytest.raises(NotFound):
        store.failover_status("nope")


def test_every_apps_status_at_once_agrees_with_each_apps_own(two_zone_store: Store) -> None:
    """apps_with_status reads the groups once; it must say what failover_status says."""
    store = two_zone_store
    for name in ("live", "standby", "idle", "both", "renamed"):
        store.create_app("ops", name, web_servers=["192.0.2.1"])
    store.create_group("ops", ZONE, label="a", primary="live", backup="standby")
    store.create_group("ops", OTHER_ZONE, label="a", primary="both", backup="renamed")
    store.create_group("ops", ZONE, label="b", primary="standby", backup="both")
    store.switch("ops", "b", "backup", zone=ZONE)  # "both": offline in one, online in another
    store.update_app("ops", "renamed", new_name="renamed-2")

    statuses = {app.name: status for app, status in store.apps_with_status()}
    assert statuses == {
        "both": "online",
        "idle": "none",
        "live": "online",
        "renamed-2": "offline",
        "standby": "offline",
    }
    assert statuses == {name: store.failover_status(name) for name in statuses}


def test_groups_and_apps_are_read_together(two_zone_store: Store) -> None:
    store = two_zone_store
    store.create_app("ops", "dc1", web_servers=["192.0.2.1"])
    store.create_app("ops", "unused", web_servers=["192.0.2.2"])
    store.create_group("ops", ZONE, label="a", primary="dc1")
    store.create_group("ops", OTHER_ZONE, label="b")
    groups, apps = store.read_groups(lambda groups, apps: (list(groups), apps))
    # In the API's order: by zone, then label.
    assert [(g.zone, g.label) for g in groups] == sorted([(OTHER_ZONE, "b"), (ZONE, "a")])
    assert sorted(apps) == ["dc1", "unused"] and apps["dc1"].web_servers == ("192.0.2.1",)
    labels = store.read_groups(lambda groups, _: [g.label for g in groups], OTHER_ZONE.upper())
    assert labels == ["b"]
    assert store.group_counts() == {ZONE: 1, OTHER_ZONE: 1}


# Input errors name the field


def _invalid_calls(store: Store) -> list[tuple[str, Callable[[], object]]]:
    return [
        ("name", lambda: store.create_app("ops", "-bad")),
        ("name", lambda: store.update_app("ops", "dc1", new_name="has space")),
        ("load_balancer", lambda: store.create_app("ops", "x", load_balancer=["not a host"])),
        ("web_servers", lambda: store.create_app("ops", "x", web_servers=["192.0.2.1", "a.b.c"])),
        ("web_servers", lambda: store.update_app("ops", "dc1", web_servers=[1])),  # type: ignore[list-item]
        ("label", lambda: store.create_group("ops", ZONE, label="-x-")),
        ("label", lambda: store.create_group("ops", ZONE, label="a.b")),
        ("ttl", lambda: store.create_group("ops", ZONE, ttl=4)),
        ("ttl", lambda: store.update_group("ops", "www", ttl=86401)),
        ("to", lambda: store.switch("ops", "www", "sideways")),
        ("zone", lambda: store.create_group("ops")),  # two zones: which one?
        ("actor", lambda: store.create_app("", "x")),
        ("reason", lambda: store.switch("ops", "www", "backup", reason="x" * 1001)),
        ("limit", lambda: store.events(limit=0)),
    ]


def test_invalid_input_names_the_field(two_zone_store: Store) -> None:
    add_apps(two_zone_store)
    new_group(two_zone_store, zone=ZONE, label="www", primary="dc1", backup="dc2")
    seq = two_zone_store.last_seq()
    for field, call in _invalid_calls(two_zone_store):
        with pytest.raises(Invalid) as caught:
            call()
        assert caught.value.field == field, caught.value
        assert str(caught.value).startswith(f"{field}: ")
    assert two_zone_store.last_seq() == seq


# Serials


def test_serial_moves_with_every_change_and_never_below_the_zone_file(tmp_path: Path) -> None:
    path = tmp_path / "fodns.db"
    with Store(path, ONE_ZONE) as store:
        assert store.serial(ZONE) == ZONE_SERIAL
        add_apps(store)  # apps alone change no answer
        assert store.serial(ZONE) == ZONE_SERIAL
        serials = [store.serial(ZONE)]
        writes: list[Callable[[], Change]] = [
            lambda: store.create_group("ops", label="www", primary="dc1", backup="dc2"),
            lambda: store.switch("ops", "www", "backup"),
            lambda: store.update_group("ops", "www", ttl=60),
            lambda: store.update_app("ops", "dc2", load_balancer=["203.0.113.9"]),
            lambda: store.update_group("ops", "www", backup=None),
        ]
        for write in writes:
            assert write().serials == {ZONE: serials[-1] + 1}
            serials.append(store.serial(ZONE))
        assert serials == list(range(ZONE_SERIAL, ZONE_SERIAL + 6))
    # An operator raised the zone file's serial: changes move past it.
    raised = {ZONE: ZoneDefaults(serial=ZONE_SERIAL + 1000)}
    with Store(path, raised) as store:
        assert store.serial(ZONE) == ZONE_SERIAL + 1000
        assert store.switch("ops", "www", "primary").serials == {ZONE: ZONE_SERIAL + 1001}
    # An older zone file comes back: the serial never goes back with it.
    with Store(path, ONE_ZONE) as store:
        assert store.serial(ZONE) == ZONE_SERIAL + 1001
        assert store.snapshot()[2] == {ZONE: ZONE_SERIAL + 1001}


def test_serial_stays_within_32_bits(tmp_path: Path) -> None:
    with Store(tmp_path / "fodns.db", {ZONE: ZoneDefaults(serial=2**32 - 2)}) as store:
        assert new_group(store).label
        assert store.serial(ZONE) == 2**32 - 1
        with pytest.raises(FodnsError, match="would pass 4294967295"):
            store.create_group("ops")
        assert len(store.groups()) == 1  # the refused write left nothing behind


# The IXFR journal


def test_each_serial_change_is_journalled_with_what_it_removed_and_added(store: Store) -> None:
    add_apps(store)
    store.create_group("ops", label="www", primary="dc1", backup="dc2")
    store.switch("ops", "www", "backup")
    store.update_app("ops", "dc2", load_balancer=["203.0.113.9", "2001:db8::9"])
    store.update_group("ops", "www", ttl=60)
    entries = store.journal(ZONE, ZONE_SERIAL, ZONE_SERIAL + 4)
    assert entries is not None
    fqdn = "www.fo.example.net"
    assert [(e.serial_from, e.serial_to) for e in entries] == [
        (ZONE_SERIAL + n, ZONE_SERIAL + n + 1) for n in range(4)
    ]
    created, switched, moved, retimed = entries
    assert created.removed == ()
    assert created.added == ((fqdn, 30, "A", "192.0.2.10"), (fqdn, 30, "A", "192.0.2.11"))
    assert switched.removed == created.added
    assert switched.added == ((fqdn, 30, "CNAME", "lb.dc2.example.com."),)
    assert moved.removed == switched.added
    assert moved.added == ((fqdn, 30, "A", "203.0.113.9"), (fqdn, 30, "AAAA", "2001:db8::9"))
    assert retimed.removed == moved.added
    assert retimed.added == ((fqdn, 60, "A", "203.0.113.9"), (fqdn, 60, "AAAA", "2001:db8::9"))
    # Any stretch of the history can be asked for; serials outside it cannot.
    middle = store.journal(ZONE, ZONE_SERIAL + 1, ZONE_SERIAL + 3)
    assert middle == entries[1:3]
    assert store.journal(ZONE, ZONE_SERIAL - 1, ZONE_SERIAL + 4) is None
    assert store.journal(ZONE, ZONE_SERIAL, ZONE_SERIAL + 9) is None


def test_a_web_head_change_journals_every_group_it_answers_for(store: Store) -> None:
    add_apps(store)
    store.create_group("ops", label="a", primary="dc1")
    store.create_group("ops", label="b", primary="dc2", backup="dc1")  # dc1 idle here
    serial = store.serial(ZONE)
    store.update_app("ops", "dc1", web_servers=["192.0.2.99"])
    [entry] = store.journal(ZONE, serial, serial + 1) or []
    assert {r[0] for r in entry.removed} == {"a.fo.example.net"}
    assert entry.added == (("a.fo.example.net", 30, "A", "192.0.2.99"),)


def test_the_journal_keeps_only_the_newest_changes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zone_journal, "JOURNAL_DEPTH", 5)  # _trim_journal reads it there
    add_apps(store)
    store.create_group("ops", label="www", primary="dc1", backup="dc2")
    for side in ["backup", "primary"] * 5:
        store.switch("ops", "www", side)
    newest = store.serial(ZONE)
    assert store.journal(ZONE, newest - 5, newest) is not None
    assert store.journal(ZONE, newest - 6, newest) is None


def test_an_edited_zone_file_moves_the_serial_and_restarts_the_journal(store: Store) -> None:
    assert store.zone_loaded(ZONE, ZONE_SERIAL, "digest-1") == ZONE_SERIAL
    add_apps(store)
    store.create_group("ops", label="www", primary="dc1", backup="dc2")
    assert store.zone_loaded(ZONE, ZONE_SERIAL, "digest-1") == ZONE_SERIAL + 1  # unchanged
    assert store.journal(ZONE, ZONE_SERIAL, ZONE_SERIAL + 1) is not None
    # Edited without raising the file's serial: fodns raises it, history is gone.
    assert store.zone_loaded(ZONE, ZONE_SERIAL, "digest-2") == ZONE_SERIAL + 2
    assert store.serial(ZONE) == ZONE_SERIAL + 2
    assert store.journal(ZONE, ZONE_SERIAL, ZONE_SERIAL + 2) is None
    assert store.journal(ZONE, ZONE_SERIAL + 1, ZONE_SERIAL + 2) is None
    # The file's serial raised past fodns's (a reload): changes continue from it, and
    # the journal has a gap there.
    assert store.zone_loaded(ZONE, ZONE_SERIAL + 100, "digest-2") == ZONE_SERIAL + 100
    assert store.switch("ops", "www", "backup").serials == {ZONE: ZONE_SERIAL + 101}
    assert store.journal(ZONE, ZONE_SERIAL + 100, ZONE_SERIAL + 101) is not None
    assert store.journal(ZONE, ZONE_SERIAL + 2, ZONE_SERIAL + 101) is None


# The event log


def test_events_record_who_what_when_before_and_after(store: Store) -> None:
    add_apps(store)
    store.ensure_token_name("alice")
    store.ensure_token_name("alice")  # known names are fine
    created = store.create_group(
        "alice", label="www", primary="dc1", backup="dc2", reason="launch"
    ).event
    switched = store.switch("bob", "www", "backup").event
    assert created is not None and switched is not None
    assert (created.actor, created.action, created.zone, created.group) == (
        "alice",
        "group_created",
        ZONE,
        "www",
    )
    assert created.before is None and created.reason == "launch"
    assert created.after == store.events(limit=1, before_seq=switched.seq)[0].after
    assert switched.before == created.after
    assert switched.after is not None and switched.after["active"] == "backup"
    assert ISO_MS_UTC.match(switched.at)
    assert store.events()[0] == switched


def test_events_newest_first_filtered_by_group_and_app(store: Store) -> None:
    add_apps(store)
    store.create_app("ops", "dc3", web_servers=["192.0.2.30"])
    new_group(store, label="www", primary="dc1", backup="dc2")
    new_group(store, label="api", primary="dc3")
    store.switch("ops", "www", "backup")
    store.update_app("ops", "dc1", new_name="frankfurt")
    store.update_group("ops", "api", primary=None)
    store.delete_app("ops", "dc3")

    every = store.events()
    assert [e.seq for e in every] == sorted((e.seq for e in every), reverse=True)
    assert [e.action for e in store.events(group="WWW")] == ["group_switched", "group_created"]
    # By id across the rename: the history of frankfurt includes dc1's.
    assert [e.action for e in store.events(app="frankfurt")] == [
        "app_updated",
        "group_switched",
        "group_created",
        "app_created",
    ]
    # A deleted app is found by the name its events carry.
    assert [e.action for e in store.events(app="dc3")] == ["app_deleted", "app_created"]
    assert [e.action for e in store.events(group="www", app="dc2")] == [
        "group_switched",
        "group_created",
    ]
    page = store.events(limit=3, before_seq=every[1].seq)
    assert [e.seq for e in page] == [every[2].seq, every[3].seq, every[4].seq]
    missed = store.events(after_seq=every[3].seq)
    assert [e.seq for e in missed] == [every[0].seq, every[1].seq, every[2].seq]
    assert store.events(after_seq=every[0].seq) == []
    between = store.events(after_seq=every[4].seq, before_seq=every[1].seq)
    assert [e.seq for e in between] == [every[2].seq, every[3].seq]
    assert store.events_since(every[3].seq) == list(reversed(every[:3]))
    assert store.last_seq() == every[0].seq


def test_events_and_labels_are_append_only(store: Store) -> None:
    new_group(store, label="www")
    store.close()
    with sqlite3.connect(store.path) as conn:
        for sql in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
        with pytest.raises(sqlite3.IntegrityError, match="never released"):
            conn.execute("DELETE FROM labels")


# Snapshot, reopening, concurrency and durability


def test_snapshot_is_one_consistent_state(store: Store) -> None:
    add_apps(store)
    labels = [new_group(store, primary="dc1", backup="dc2").label for _ in range(4)]
    stop = threading.Event()

    def switch_forever() -> None:
        sides = ["backup", "primary"]
        for i in range(10**6):
            if stop.is_set():
                return
            store.switch("ops", labels[i % 4], sides[i // 4 % 2])

    writer = threading.Thread(target=switch_forever)
    writer.start()
    try:
        # At least 200 snapshots, and on until the writer has moved between them a few
        # times: on a busy machine 200 may all fall between two of its commits.
        snapshots = []
        deadline = time.monotonic() + 30
        while len(snapshots) < 200 or len({s[3] for s in snapshots}) < 3:
            assert time.monotonic() < deadline, "the writer never moved during the snapshots"
            snapshots.append(store.snapshot())
    finally:
        stop.set()
        writer.join(timeout=10)
    log = store.events_since(0)
    for groups, apps, serials, seq in snapshots:
        # Replaying the log up to `seq` gives exactly the groups of the snapshot.
        replayed: dict[str, Any] = {}
        for event in log[:seq]:
            if event.group is not None:
                replayed[event.group] = event.after and event.after["active"]
        assert {g.label: g.active for g in groups} == replayed
        group_events = sum(1 for e in log[:seq] if e.group is not None)
        assert serials[ZONE] == ZONE_SERIAL + group_events
        assert set(apps) == {"dc1", "dc2"}
    assert len({s[3] for s in snapshots}) > 1, "the writer never moved during the snapshots"


def test_reopening_runs_no_migration_twice(tmp_path: Path) -> None:
    path = tmp_path / "fodns.db"
    with Store(path, ONE_ZONE) as store:
        assert store.migrations_applied == list(range(1, LATEST + 1))
        store.create_app("ops", "dc1")
    with sqlite3.connect(path) as conn:
        versions = conn.execute("SELECT * FROM schema_version").fetchall()
    assert [v[0] for v in versions] == list(range(1, LATEST + 1))
    with Store(path, ONE_ZONE) as store:
        assert store.migrations_applied == []
        assert [a.name for a in store.apps()] == ["dc1"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT * FROM schema_version").fetchall() == versions
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_database_of_the_first_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "fodns.db"
    db = Database(path)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO schema_version VALUES (1, '2026-01-01T00:00:00Z')")
    db.execute(
        "INSERT INTO apps (name, web_servers, created_at, updated_at)"
        " VALUES ('dc1', '[\"192.0.2.1\"]', 'then', 'then')"
    )
    db.conn.commit()
    db.close()
    with Store(path, ONE_ZONE) as store:
        assert store.migrations_applied == list(range(2, LATEST + 1))
        assert store.app("dc1").web_servers == ("192.0.2.1",)
        store.create_group("ops", primary="dc1", label="shop")
        assert store.journal(ZONE, ZONE_SERIAL, ZONE_SERIAL + 1) is not None


@pytest.mark.usefixtures("umask_022")
def test_the_database_and_its_folder_are_created_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "fodns.db"
    with Store(path, ONE_ZONE) as store:
        store.create_app("ops", "dc1")  # open and written to: -wal and -shm exist
        modes = {file.name: file_mode(file) for file in path.parent.iterdir()}
    assert file_mode(path.parent) == 0o700
    assert modes == {"fodns.db": 0o600, "fodns.db-wal": 0o600, "fodns.db-shm": 0o600}


@pytest.mark.usefixtures("umask_022")
def test_an_existing_folder_and_database_keep_their_modes(tmp_path: Path) -> None:
    """An operator's choice (a backup job's group may read the database, say) stands;
    SQLite gives the -wal and -shm files the database file's mode."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o750)
    path = folder / "fodns.db"
    sqlite3.connect(path).close()
    path.chmod(0o640)
    with Store(path, ONE_ZONE) as store:
        store.create_app("ops", "dc1")
        modes = {file.name: file_mode(file) for file in folder.iterdir()}
    assert file_mode(folder) == 0o750
    assert modes == {"fodns.db": 0o640, "fodns.db-wal": 0o640, "fodns.db-shm": 0o640}


def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = Store(tmp_path / "fodns.db", ONE_ZONE)
    store.close()
    store.close()
    with pytest.raises(FodnsError, match="closed"):
        store.create_app("ops", "dc1")
    with pytest.raises(FodnsError, match="closed"):
        store.apps()


def test_concurrent_switches_are_serialised_without_gaps(store: Store) -> None:
    add_apps(store)
    labels = [new_group(store, primary="dc1", backup="dc2").label for _ in range(4)]
    start = store.last_seq()
    seqs: list[int] = []
    idempotent: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            for _ in range(50):
                label = rng.choice(labels)
                change = store.switch(f"t{n}", label, rng.choice(["primary", "backup"]))
                store.group(label)  # readers in the mix
                with lock:
                    (seqs.append(change.event.seq) if change.event else idempotent.append(1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert len(seqs) + len(idempotent) == 400
    logged = [e.seq for e in store.events_since(start)]
    assert logged == list(range(start + 1, start + len(seqs) + 1))  # no gaps, in order
    assert sorted(seqs) == logged
    for label in labels:  # the state is the last event's
        last = [e for e in store.events_since(start) if e.group == label]
        if last:
            assert last[-1].after is not None
            assert store.group(label).active == last[-1].after["active"]


CHILD = """
import sys
from pathlib import Path
from fodns.store import Store, ZoneDefaults

store = Store(Path(sys.argv[1]), {"fo.example.net": ZoneDefaults(serial=1)})
active = dict.fromkeys(sys.argv[2:], "primary")
print("ready", flush=True)
for i in range(100_000):
    label = list(active)[i % len(active)]
    active[label] = "backup" if active[label] == "primary" else "primary"
    change = store.switch("child", label, active[label])
    print(label, active[label], change.event.seq, flush=True)
"""
STALLED = "store_commit_stalled_for_test"


def test_the_writer_connection_is_wal_and_synchronous_full(tmp_path: Path) -> None:
    """What an acknowledged write's survival rests on, read on the writer's own
    connection of the store as `fodns serve` opens it: WAL, and synchronous = FULL
    (2), under which COMMIT returns only once the WAL is on the disk. A SIGKILL cannot
    tell FULL from OFF (the page cache outlives the process; only a power cut loses
    it), so no kill test can: this does."""
    config = load_config(write_config(tmp_path, [(ZONE, EXAMPLE_ZONE)]))
    opened = open_store(config, load_zones(config.zones))
    try:
        assert opened.durability() == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}
    finally:
        opened.close()


def test_acknowledged_switches_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "fodns.db"
    with Store(path, ONE_ZONE) as store:
        add_apps(store)
        labels = [new_group(store, primary="dc1", backup="dc2").label for _ in range(3)]
        start = store.last_seq()
    lines = _run_and_kill(path, labels, acknowledgements=100)

    acked = [line.split() for line in lines[1:]]
    assert len(acked) >= 100
    with Store(path, ONE_ZONE) as store:
        by_seq = {e.seq: e for e in store.events_since(start)}
        for label, side, seq in acked:
            event = by_seq[int(seq)]
            assert event.group == label and event.after and event.after["active"] == side
        # The child switches one at a time, so at most one switch committed
        # after the last line it printed: the kill can land between the two.
        unacknowledged = [s for s in by_seq if s > int(acked[-1][2])]
        assert len(unacknowledged) <= 1
        for label in labels:
            last_side = [side for lbl, side, _ in acked if lbl == label][-1]
            later = [by_seq[s] for s in unacknowledged if by_seq[s].group == label]
            expected = later[0].after["active"] if later and later[0].after else last_side
            assert store.group(label).active == expected


@pytest.mark.parametrize("point", ["before", "after"])
def test_a_kill_inside_a_commit_leaves_the_switch_whole_or_absent(
    tmp_path: Path, point: str
) -> None:
    """The writer stops inside the 51st switch's commit (FODNS_TEST_STALL_COMMIT: before
    its COMMIT, or after it but before the caller is told) and the process is SIGKILLed
    there. Afterwards the database is intact, the 50 acknowledged switches are all
    there, and the one in flight is there in every table or in none: absent when the
    kill came before COMMIT, present when after."""
    path = tmp_path / "fodns.db"
    with Store(path, ONE_ZONE) as store:
        add_apps(store)
        labels = [new_group(store, primary="dc1", backup="dc2").label for _ in range(3)]
        start, serial_at_start = store.last_seq(), store.serial(ZONE)
    in_flight = start + 51
    trigger = tmp_path / "stall"
    trigger.write_text(f"{point} {in_flight}")
    lines = _run_and_kill(
        path, labels, until_stalled=True, env={"FODNS_TEST_STALL_COMMIT": str(trigger)}
    )
    acked = [line.split() for line in lines[1:] if STALLED not in line]
    assert [int(seq) for _, _, seq in acked] == list(range(start + 1, in_flight))
    assert STALLED in lines[-1] and f"point={point}" in lines[-1]  # the stall was the kill's

    assert integrity(path) == "ok"
    with Store(path, ONE_ZONE) as store:
        events = store.events_since(start)
        committed = [e.seq for e in events]
        expected = list(range(start + 1, in_flight + (1 if point == "after" else 0)))
        assert committed == expected, "an acknowledged switch was lost, or a torn one kept"
        # Every table agrees with the log: one serial step and one journal entry per
        # switch, each group on the side of its last logged switch.
        assert store.serial(ZONE) == serial_at_start + len(events)
        (newest,) = store.journal(ZONE, store.serial(ZONE) - 1, store.serial(ZONE)) or [None]
        assert newest is not None and newest.serial_to == store.serial(ZONE)
        for label in labels:
            last = [e for e in events if e.group == label][-1]
            assert last.after is not None and store.group(label).active == last.after["active"]


def integrity(path: Path) -> str:
    """SQLite's own check of every page and index, after recovering the WAL."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def _run_and_kill(
    path: Path,
    labels: list[str],
    acknowledgements: int = 0,
    until_stalled: bool = False,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Run CHILD, SIGKILL it after that many acknowledged switches (or once its writer
    says it has stalled); return its complete lines."""
    child_env = {**os.environ, "PYTHONPATH": str(REPOSITORY), **(env or {})}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), *labels],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    def done(seen: list[str]) -> bool:
        if until_stalled:
            return bool(seen) and STALLED in seen[-1]
        return len(seen) >= acknowledgements + 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while not done(seen):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"child ended early: {child.stderr and child.stderr.read()}"
            seen.append(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    reader.join(timeout=10)
    while (line := lines.get_nowait()) is not None:
        seen.append(line)
    assert seen[0] == "ready\n"
    return [line for line in seen if line.endswith("\n")]  # a cut-off last line was no ack


def test_the_writer_outlives_a_transaction_it_cannot_roll_back(tmp_path: Path) -> None:
    """A job that leaves the connection unusable (here: closed, so even ROLLBACK
    fails) gets its error, and every later write still commits: the writer thread
    replaces its connection instead of ending, which would hang every later write."""
    with Store(tmp_path / "fodns.db", ONE_ZONE) as store:

        def breaks_the_connection(db: Any) -> None:
            db.conn.close()
            raise RuntimeError("the job failed")

        outcomes: list[object] = []

        def attempt() -> None:
            try:
                store._writer.run(breaks_the_connection)
            except Exception as exc:
                outcomes.append(exc)
            outcomes.append(store.create_app("admin", "after", (), ["192.0.2.1"]))

        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(15)
        assert not worker.is_alive(), "a write hung after a failed rollback"
        assert isinstance(outcomes[0], RuntimeError)
        assert store.app("after").web_servers == ("192.0.2.1",)


def test_a_submitted_write_runs_on_the_writer_and_says_its_change_or_its_error(
    store: Store,
) -> None:
    """Store.submit: what the API awaits. The write's checks and its job run on the
    writer's thread (the job commits there at once, not queued behind itself), the
    change comes back in the future, and so does a refusal."""
    add_apps(store)
    group = new_group(store, primary="dc1", backup="dc2")
    threads: list[str] = []
    store.on_commit(lambda _seq: threads.append(threading.current_thread().name))
    change = store.submit(store.switch, "ops", group.label, "backup").result(timeout=10)
    assert change.event is not None and change.event.action == "group_switched"
    assert change.groups[0].active == "backup"
    assert store.group(group.label).active == "backup"
    assert threads == ["fodns-store-writer"]
    refused = store.submit(store.switch, "ops", "no-such-group", "backup")
    with pytest.raises(NotFound):
        refused.result(timeout=10)
    # The writer goes on after a refusal.
    again = store.submit(store.switch, "ops", group.label, "primary").result(timeout=10)
    assert again.groups[0].active == "primary"


def test_nothing_is_submitted_to_a_closed_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "closed.db", {"fo.example.net": ZoneDefaults(serial=1)})
    store.close()
    with pytest.raises(FodnsError):
        store.submit(store.heartbeat)
