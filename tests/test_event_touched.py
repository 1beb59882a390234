"""Each event says what it touched (`touched`), written with it at commit: over real HTTP
to a real `fodns serve`, and on a database written by the fodns before the column."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fodns.feed import touched
from fodns.migrations import LATEST
from fodns.model import Touch
from fodns.store import Store, ZoneDefaults
from tests.support import (
    EXAMPLE_ZONE,
    REPOSITORY,
    TEST_ZONES,
    Api,
    FodnsProcess,
    serving,
    start_with_config,
)

TOKEN = "touched-test-token-7e41"
ZONE = "fo.example.net"
OTHER = "test.example"
# A database written by fodns at schema version 6 (main at f25917f, before events had
# `touched`), as `sqlite3 .dump` prints it; tests/support/make_schema6_dump.py made it.
SCHEMA6_DUMP = REPOSITORY / "tests" / "support" / "schema6_events.sql"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FodnsProcess]:
    folder = tmp_path_factory.mktemp("touched")
    zones = [(ZONE, EXAMPLE_ZONE), (OTHER, TEST_ZONES / "test.example.zone")]
    with serving(start_with_config(folder, TOKEN, zones=zones)) as started:
        yield started


@pytest.fixture(scope="module")
def api(running: FodnsProcess) -> Api:
    return Api(running, TOKEN)


def group(zone: str, label: str) -> dict[str, str]:
    return {"zone": zone, "label": label, "fqdn": f"{label}.{zone}"}


def expected(
    groups: list[dict[str, str]], apps: list[str], zones: list[str] | None = None
) -> dict[str, Any]:
    """A `touched` as the API shows it: groups by zone then label, apps and zones sorted."""
    ordered = sorted(groups, key=lambda g: (g["zone"], g["label"]))
    return {
        "groups": ordered,
        "apps": sorted(apps),
        "zones": sorted(zones if zones is not None else {g["zone"] for g in groups}),
    }


def events_after(api: Api, seq: int) -> list[dict[str, Any]]:
    """The events after `seq`, oldest first."""
    return list(reversed(api.ok("GET", f"/v1/events?after={seq}")["events"]))


def newest_seq(api: Api) -> int:
    events = api.ok("GET", "/v1/events?limit=1")["events"]
    return int(events[0]["seq"]) if events else 0


def new_app(api: Api, name: str, address: str) -> None:
    api.ok("POST", "/v1/apps", {"name": name, "web_servers": [address]}, 201)


def test_a_switch_touches_its_group_and_the_apps_on_both_sides(api: Api) -> None:
    new_app(api, "sw-a", "192.0.2.1")
    new_app(api, "sw-b", "192.0.2.2")
    api.ok(
        "POST",
        "/v1/groups",
        {"zone": ZONE, "label": "sw", "primary": "sw-a", "backup": "sw-b"},
        201,
    )
    seq = newest_seq(api)

    api.ok("POST", "/v1/groups/sw/switch?zone=fo.example.net", {"to": "backup"})

    [event] = events_after(api, seq)
    assert event["action"] == "group_switched"
    assert event["touched"] == expected([group(ZONE, "sw")], ["sw-a", "sw-b"])


def test_a_group_patch_touches_the_apps_that_left_and_joined(api: Api) -> None:
    """A group's label never changes (labels are never reused); a PATCH changes its
    apps or TTL, and touches the group and every app on either side, before and after."""
    for name, address in (("pa-a", "192.0.2.11"), ("pa-b", "192.0.2.12"), ("pa-c", "192.0.2.13")):
        new_app(api, name, address)
    api.ok("POST", "/v1/groups", {"zone": OTHER, "label": "pa", "primary": "pa-a"}, 201)
    seq = newest_seq(api)

    api.ok("PATCH", "/v1/groups/pa?zone=test.example", {"primary": "pa-b", "backup": "pa-c"})
    refused = api.call("PATCH", "/v1/groups/pa?zone=test.example", {"label": "pa-renamed"})

    [event] = events_after(api, seq)
    assert event["action"] == "group_updated"
    assert event["touched"] == expected([group(OTHER, "pa")], ["pa-a", "pa-b", "pa-c"])
    assert refused[0] == 400  # a label is not something a PATCH changes: no event


def test_an_app_rename_touches_both_names_and_the_groups_using_it(api: Api) -> None:
    new_app(api, "rn-old", "192.0.2.21")
    new_app(api, "rn-other", "192.0.2.22")
    api.ok("POST", "/v1/groups", {"zone": ZONE, "label": "rn1", "primary": "rn-old"}, 201)
    api.ok(
        "POST",
        "/v1/groups",
        {"zone": OTHER, "label": "rn2", "primary": "rn-other", "backup": "rn-old"},
        201,
    )
    api.ok("POST", "/v1/groups", {"zone": ZONE, "label": "rn3", "primary": "rn-other"}, 201)
    seq = newest_seq(api)

    api.ok("PATCH", "/v1/apps/rn-old", {"name": "rn-new"})

    [event] = events_after(api, seq)
    assert event["action"] == "app_updated"
    assert event["touched"] == expected(
        [group(ZONE, "rn1"), group(OTHER, "rn2")], ["rn-old", "rn-new"]
    )


def test_an_app_update_touches_the_three_groups_using_it_then(api: Api) -> None:
    new_app(api, "up", "192.0.2.31")
    new_app(api, "up-spare", "192.0.2.32")
    for label in ("up1", "up2", "up3"):
        api.ok(
            "POST",
            "/v1/groups",
            {"zone": ZONE, "label": label, "primary": "up", "backup": "up-spare"},
            201,
        )
    api.ok("POST", "/v1/groups", {"zone": ZONE, "label": "up-not", "primary": "up-spare"}, 201)
    seq = newest_seq(api)

    api.ok("PATCH", "/v1/apps/up", {"load_balancer": ["lb.up.example.com"]})
    # Later, the app leaves one group: the update's event still says what it touched then.
    api.ok("PATCH", "/v1/groups/up3?zone=fo.example.net", {"primary": None})

    update, leave = events_after(api, seq)
    assert update["action"] == "app_updated"
    groups = [group(ZONE, label) for label in ("up1", "up2", "up3")]
    assert update["touched"] == expected(groups, ["up"])
    assert leave["touched"] == expected([group(ZONE, "up3")], ["up", "up-spare"])


def test_deletes_touch_what_was_there(api: Api) -> None:
    new_app(api, "del-a", "192.0.2.41")
    api.ok("POST", "/v1/groups", {"zone": ZONE, "label": "del", "primary": "del-a"}, 201)
    api.ok("PATCH", "/v1/groups/del?zone=fo.example.net", {"primary": None})
    seq = newest_seq(api)

    api.ok("DELETE", "/v1/groups/del?zone=fo.example.net", status=204)
    api.ok("DELETE", "/v1/apps/del-a", status=204)

    group_deleted, app_deleted = events_after(api, seq)
    assert group_deleted["action"] == "group_deleted"
    assert group_deleted["touched"] == expected([group(ZONE, "del")], [])
    assert app_deleted["action"] == "app_deleted"
    assert app_deleted["touched"] == expected([], ["del-a"])


def test_every_event_listed_carries_touched(api: Api) -> None:
    new_app(api, "ev-a", "192.0.2.51")
    for path in ("/v1/events", "/v1/events?app=ev-a", "/v1/events?limit=1"):
        events = api.ok("GET", path)["events"]
        assert events and all(set(e["touched"]) == {"groups", "apps", "zones"} for e in events)
    document = api.ok("GET", "/v1/openapi.json")
    event_schema = document["components"]["schemas"]["Event"]
    assert "touched" in event_schema["required"]
    assert set(event_schema["properties"]["touched"]["properties"]) == {"groups", "apps", "zones"}


def test_the_feed_reads_what_an_event_touched_from_the_event(tmp_path: Path) -> None:
    """An app event's groups are those using it when it was written, read from the
    event itself: a consumer needs no lookup of the store (it has none here)."""
    zones = {ZONE: ZoneDefaults(serial=1)}
    with Store(tmp_path / "fodns.db", zones) as store:
        store.create_app("ops", "dc1", web_servers=["192.0.2.10"])
        store.create_group("ops", ZONE, "web", primary="dc1")
        seq = store.last_seq()
        store.update_app("ops", "dc1", web_servers=["192.0.2.11"])
        store.update_group("ops", "web", ZONE, primary=None)
        events = store.events_since(seq)

    touch = touched(events[:1])
    assert touch.groups == {(ZONE, "web")}
    assert touch.apps == {"dc1"}
    assert touch.zones == {ZONE}


def test_a_database_of_the_previous_schema_gets_touched_on_its_old_events(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fodns.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA6_DUMP.read_text())
    zones = {ZONE: ZoneDefaults(serial=1), OTHER: ZoneDefaults(serial=1)}

    with Store(path, zones) as store:
        assert store.migrations_applied == list(range(7, LATEST + 1))
        by_action: dict[str, list[dict[str, Any]]] = {}
        for event in store.events(limit=1000)[::-1]:
            by_action.setdefault(event.action, []).append(event.to_json()["touched"])

    # What tests/support/make_schema6_dump.py did with the fodns of schema version 6.
    assert by_action["app_created"] == [
        expected([], ["dc1"]),
        expected([], ["dc2"]),
        expected([], ["dc3"]),
    ]
    assert by_action["group_created"] == [
        expected([group(ZONE, "web")], ["dc1", "dc2"]),
        expected([group(ZONE, "api")], ["dc1"]),
        expected([group(OTHER, "web")], ["dc1", "dc3"]),
        expected([group(ZONE, "gone")], []),
    ]
    assert by_action["group_switched"] == [expected([group(ZONE, "web")], ["dc1", "dc2"])]
    assert by_action["group_updated"] == [
        expected([group(ZONE, "api")], ["dc1", "dc2"]),
        expected([group(OTHER, "web")], ["dc1-renamed", "dc3"]),
    ]
    # The rename touched the three groups that used dc1 then; the web-head change after
    # it only the two still using it (test.example's web had dropped it by then).
    assert by_action["app_updated"] == [
        expected(
            [group(ZONE, "web"), group(ZONE, "api"), group(OTHER, "web")], ["dc1", "dc1-renamed"]
        ),
        expected([group(ZONE, "web"), group(ZONE, "api")], ["dc1-renamed"]),
    ]
    assert by_action["group_deleted"] == [expected([group(ZONE, "gone")], [])]
    assert by_action["app_deleted"] == [expected([], ["dc3"])]


def test_what_an_event_touched_is_kept_compact_and_read_back_whatever_the_row_holds() -> None:
    touch = Touch(
        frozenset({(ZONE, "web"), (ZONE, "api"), (OTHER, "web")}),
        frozenset({"dc1", "dc2"}),
        frozenset({ZONE, OTHER}),
    )
    stored = json.loads(json.dumps(touch.to_stored()))
    assert stored == {"groups": {OTHER: ["web"], ZONE: ["api", "web"]}, "apps": ["dc1", "dc2"]}
    assert Touch.from_stored(stored) == touch
    # A row written by hand: what is not of the form is left out, never a crash.
    for junk in (None, [], "groups", {"groups": ["web"], "apps": "dc1"}, {"groups": {ZONE: 7}}):
        assert Touch.from_stored(junk) == Touch()
    assert Touch.from_stored({"groups": {ZONE: ["web", 7]}}) == Touch(
        frozenset({(ZONE, "web")}), frozenset(), frozenset({ZONE})
    )
