"""Lists that scale: `q`, `limit` and `cursor` on GET /v1/groups and /v1/apps over real
HTTP to a real `fodns serve`, the CLI's spellings of them, and the query plans of a
page on a real SQLite file (a page seeks an index; it never sorts nor reads every row)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fodns.listing import PageRequest, app_page_query, group_page_query
from fodns.store import Store, ZoneDefaults
from tests.support import Api, FodnsProcess, run_cli

TOKEN = "lists-test-token-5c1e"
ZONE = "fo.example.net"
StartFodns = Callable[..., FodnsProcess]


@pytest.fixture
def api(fodns_factory: StartFodns) -> Api:
    return Api(fodns_factory(TOKEN), TOKEN)


def query(path: str, **params: str) -> str:
    return f"{path}?{urllib.parse.urlencode(params)}"


def every_page(api: Api, path: str, key: str, limit: int, **params: str) -> list[dict[str, Any]]:
    """The items of every page of a list, following `next` until null."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):  # bounded: a list that never ends is a failure, not a hang
        page_params = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        reply = api.ok("GET", query(path, **page_params))
        assert set(reply) == {key, "next"}
        assert len(reply[key]) <= limit
        items += reply[key]
        cursor = reply["next"]
        if cursor is None:
            return items
        assert len(reply[key]) == limit, "a page short of the limit must be the last"
    raise AssertionError("the pages never ended")


def labels(groups: list[dict[str, Any]]) -> list[str]:
    return [group["label"] for group in groups]


# ---- paging -----------------------------------------------------------------------------


def test_pages_list_every_group_and_app_once_in_the_unpaged_order(api: Api) -> None:
    api.ok("POST", "/v1/apps", {"name": "Web", "web_servers": ["192.0.2.10"]}, 201)
    api.ok("POST", "/v1/apps", {"name": "api", "load_balancer": ["lb.example.com"]}, 201)
    api.ok("POST", "/v1/apps", {"name": "spare"}, 201)
    for number in range(13):
        sides = {"primary": "Web", "backup": "api"} if number % 3 == 0 else {}
        api.ok("POST", "/v1/groups", {"label": f"g{number:02d}x", **sides}, 201)
    api.ok("POST", "/v1/groups", {}, 201)  # a generated label, NNN-NNN-NNN, sorts first
    api.ok("POST", "/v1/groups/g03x/switch", {"to": "backup"})

    whole = api.ok("GET", "/v1/groups")
    assert set(whole) == {"groups"}, "without q, limit or cursor the reply is as it always was"
    assert len(whole["groups"]) == 14
    for limit in (1, 4, 5, 14, 1000):
        assert every_page(api, "/v1/groups", "groups", limit) == whole["groups"]
    in_zone = api.ok("GET", query("/v1/groups", zone=ZONE.upper()))
    assert every_page(api, "/v1/groups", "groups", 3, zone=ZONE.upper()) == in_zone["groups"]
    assert api.ok("GET", query("/v1/groups", zone="other.example", limit="5")) == {
        "groups": [],
        "next": None,
    }

    apps = api.ok("GET", "/v1/apps")
    assert set(apps) == {"apps"}
    statuses = {app["name"]: app["failover_status"] for app in apps["apps"]}
    assert statuses == {"api": "online", "spare": "none", "Web": "online"}
    for limit in (1, 2, 3):
        assert every_page(api, "/v1/apps", "apps", limit) == apps["apps"]


def test_a_q_without_limit_is_a_page_of_a_thousand(
    fodns_factory: StartFodns, tmp_path: Path
) -> None:
    """A q that finds every group is a page, never the whole list by another name."""
    folder = tmp_path / "many"
    folder.mkdir()
    Store(folder / "fodns.db", {ZONE: ZoneDefaults(serial=1)}).close()
    names = [f"g{number:04d}" for number in range(1001)]
    with sqlite3.connect(folder / "fodns.db") as db:  # in bulk: 1,001 API calls take long
        now = "2026-12-02T00:00:00.000Z"
        db.executemany("INSERT INTO labels VALUES (?, ?, ?)", [(ZONE, n, now) for n in names])
        db.executemany(
            "INSERT INTO groups (zone, label, active, ttl, created_at, updated_at)"
            " VALUES (?, ?, 'primary', 30, ?, ?)",
            [(ZONE, name, now, now) for name in names],
        )
    api = Api(fodns_factory(TOKEN, directory=folder), TOKEN)
    assert len(api.ok("GET", "/v1/groups")["groups"]) == 1001
    first = api.ok("GET", query("/v1/groups", q="g"))
    assert labels(first["groups"]) == names[:1000]
    rest = api.ok("GET", query("/v1/groups", q="g", cursor=first["next"]))
    assert (labels(rest["groups"]), rest["next"]) == (names[1000:], None)


def test_pages_stay_whole_while_groups_come_and_go(api: Api) -> None:
    """Groups created and deleted between pages: no group is listed twice, and none
    that existed throughout is skipped (keyset pages, not OFFSET)."""
    for number in range(20):
        api.ok("POST", "/v1/groups", {"label": f"g{number:02d}"}, 201)
    throughout = {f"g{number:02d}" for number in range(20)} - {"g02", "g15"}
    seen: list[str] = []
    reply = api.ok("GET", query("/v1/groups", limit="4"))
    seen += labels(reply["groups"])
    # Before the cursor and after it; one deleted already listed, one not yet listed.
    api.ok("POST", "/v1/groups", {"label": "g00a"}, 201)
    api.ok("POST", "/v1/groups", {"label": "g10a"}, 201)
    api.ok("DELETE", "/v1/groups/g02", status=204)
    api.ok("DELETE", "/v1/groups/g15", status=204)
    for _ in range(20):
        reply = api.ok("GET", query("/v1/groups", limit="4", cursor=reply["next"]))
        seen += labels(reply["groups"])
        if reply["next"] is None:
            break
        api.ok("POST", "/v1/groups", {"label": f"{seen[-1]}b"}, 201)  # just past the cursor
    assert len(seen) == len(set(seen)), f"listed twice: {seen}"
    assert seen == sorted(seen)
    assert throughout <= set(seen), f"skipped: {throughout - set(seen)}"
    assert "g10a" in seen  # created ahead of the cursor: reached in its turn
    assert "g00a" not in seen  # created behind it: the pages had passed it


# ---- q ----------------------------------------------------------------------------------------


@pytest.fixture
def findable(api: Api) -> Api:
    api.ok(
        "POST",
        "/v1/apps",
        {"name": "Alpha", "web_servers": ["192.0.2.10", "2001:db8::5"]},
        201,
    )
    # beta's web head is its load balancer: its web servers are not what it answers with.
    beta = {"name": "beta", "load_balancer": ["lb.example.com"], "web_servers": ["198.51.100.9"]}
    api.ok("POST", "/v1/apps", beta, 201)
    api.ok("POST", "/v1/apps", {"name": "gamma", "web_servers": ["203.0.113.7"]}, 201)
    api.ok("POST", "/v1/groups", {"label": "shop-one", "primary": "Alpha"}, 201)
    api.ok("POST", "/v1/groups", {"label": "blog-two", "backup": "beta"}, 201)
    api.ok("POST", "/v1/groups", {"label": "empty-three"}, 201)
    return api


def found(api: Api, path: str, text: str) -> list[str]:
    key = path.rsplit("/", 1)[1]
    reply = api.ok("GET", query(path, q=text))
    assert reply["next"] is None
    return [item["label" if key == "groups" else "name"] for item in reply[key]]


# (q, the groups it finds, the apps it finds) among `findable`'s.
FINDS = [
    ("SHOP", ["shop-one"], []),  # a label, case-blind
    ("three.FO.example", ["empty-three"], []),  # a full name
    ("alpha", ["shop-one"], ["Alpha"]),  # an app's name (the primary)
    ("BETA", ["blog-two"], ["beta"]),  # an app's name (the backup)
    ("192.0.2.1", ["shop-one"], ["Alpha"]),  # an address, in part
    ("2001:DB8::5", ["shop-one"], ["Alpha"]),  # an IPv6 address, case-blind
    ("LB.Example", ["blog-two"], ["beta"]),  # a hostname
    ("198.51.100.9", [], []),  # a web server behind a load balancer is not the web head
    ("203.0.113", [], ["gamma"]),  # gamma is in no group
    ('", "', [], []),  # the JSON the web heads are stored as is not searched
    ("_", [], []),  # not a wildcard
    ("fo.example.net", ["blog-two", "empty-three", "shop-one"], []),
    ("", ["blog-two", "empty-three", "shop-one"], ["Alpha", "beta", "gamma"]),
    ("nowhere", [], []),
]


def test_q_finds_labels_apps_addresses_and_hostnames_and_nothing_else(findable: Api) -> None:
    got = [
        (text, found(findable, "/v1/groups", text), found(findable, "/v1/apps", text))
        for text, _, _ in FINDS
    ]
    assert got == FINDS


def test_q_pages_like_the_rest(findable: Api) -> None:
    for number in range(5):
        findable.ok("POST", "/v1/groups", {"label": f"shop-{number}", "backup": "gamma"}, 201)
    whole = findable.ok("GET", query("/v1/groups", q="shop"))["groups"]
    assert labels(whole) == ["shop-0", "shop-1", "shop-2", "shop-3", "shop-4", "shop-one"]
    assert every_page(findable, "/v1/groups", "groups", 2, q="shop") == whole


# ---- bad values ------------------------------------------------------------------------------


# (raw query, the field its 400 names)
BAD_VALUES = [
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=-1", "limit"),
    ("limit=ten", "limit"),
    ("limit=", "limit"),
    ("cursor=", "cursor"),
    ("cursor=a%00b", "cursor"),
    ("cursor=" + "x" * 2001, "cursor"),
    ("q=" + "x" * 201, "q"),
    ("q=%FF%FE", "q"),
    ("q=a%00b", "q"),
]


def test_bad_list_parameters_are_400s_naming_the_field(api: Api) -> None:
    got = []
    for path in ("/v1/groups", "/v1/apps"):
        for raw, _ in BAD_VALUES:
            status, reply = api.call("GET", f"{path}?{raw}")
            got.append((path, raw, status, (reply.get("error") or {}).get("field")))
    assert got == [
        (path, raw, 400, field) for path in ("/v1/groups", "/v1/apps") for raw, field in BAD_VALUES
    ]
    assert api.ok("GET", query("/v1/groups", q="x" * 200, limit="1000")) == {
        "groups": [],
        "next": None,
    }


def test_a_cursor_is_the_name_a_page_starts_after(api: Api) -> None:
    """`next` is the last item's name (an app's, a group's label.zone), and any name is
    a position in the list's order: the items after it, never a 400."""
    for name in ("alpha", "Bravo", "charlie"):
        api.ok("POST", "/v1/apps", {"name": name}, 201)
    first = api.ok("GET", "/v1/apps?limit=2")
    assert [app["name"] for app in first["apps"]] == ["alpha", "Bravo"]
    assert first["next"] == "Bravo"
    assert [app["name"] for app in api.ok("GET", query("/v1/apps", cursor="b"))["apps"]] == [
        "Bravo",
        "charlie",
    ]  # by hand, case-blind as the list is ordered
    for label in ("g1", "g2", "g3"):
        api.ok("POST", "/v1/groups", {"label": label}, 201)
    page = api.ok("GET", "/v1/groups?limit=1")
    assert page["next"] == "g1.fo.example.net"
    after = api.ok("GET", query("/v1/groups", cursor="G2.FO.EXAMPLE.NET."))
    assert [group["label"] for group in after["groups"]] == ["g3"]
    # Another list's cursor, or no name of ours at all, is still just a position: a
    # text without a dot is a label before every zone, one in a later zone is past all.
    before_all = api.ok("GET", query("/v1/groups", cursor="Bravo"))["groups"]
    assert [group["label"] for group in before_all] == ["g1", "g2", "g3"]
    assert api.ok("GET", query("/v1/groups", cursor="x.\u20ac.example"))["groups"] == []


# ---- the CLI ---------------------------------------------------------------------------------


def fodns(api: Api, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(api.server, TOKEN, *args)


def test_the_cli_finds_pages_and_follows_pages(findable: Api) -> None:
    done = fodns(findable, "group", "list", "--limit", "2")
    assert done.returncode == 0, done.stderr
    assert labels(json.loads(done.stdout)) == ["blog-two", "empty-three"]
    assert done.stderr.startswith("fodns: next page: --cursor ")
    cursor = done.stderr.split()[-1]
    rest = fodns(findable, "group", "list", "--limit", "2", "--cursor", cursor)
    assert (labels(json.loads(rest.stdout)), rest.stderr) == (["shop-one"], "")

    every = fodns(findable, "group", "list", "--all", "--limit", "1")
    assert (every.returncode, every.stderr) == (0, "")
    assert json.loads(every.stdout) == findable.ok("GET", "/v1/groups")["groups"]
    searched = fodns(findable, "app", "list", "--find", "LB.EXAMPLE", "--all")
    assert [app["name"] for app in json.loads(searched.stdout)] == ["beta"]
    spelled = fodns(findable, "group", "list", "--q", "192.0.2")
    assert labels(json.loads(spelled.stdout)) == ["shop-one"]

    refused = fodns(findable, "group", "list", "--limit", "0")
    assert refused.returncode == 1 and "limit" in refused.stderr


# ---- the store: a page seeks an index ---------------------------------------------------------


def query_plan(path: Path, sql: str, params: list[Any]) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def test_a_page_is_an_index_seek_not_a_sort_or_a_scan(tmp_path: Path) -> None:
    database = tmp_path / "fodns.db"
    with Store(database, {ZONE: ZoneDefaults(serial=1), "b.example": ZoneDefaults(1)}) as store:
        store.create_app("test", "web", web_servers=["192.0.2.1"])
        for number in range(50):
            store.create_group("test", ZONE, f"g{number:02d}", primary="web")
        pages = [
            group_page_query(PageRequest(limit=100), None),
            group_page_query(PageRequest(after=(ZONE, "g10"), limit=100), None),
            group_page_query(PageRequest(after=(ZONE, "g10"), limit=100), ZONE),
            group_page_query(PageRequest(find="web", after=(ZONE, "g10"), limit=100), None),
        ]
        for sql, params in pages:
            plan = query_plan(database, sql, params)
            assert "USING INDEX sqlite_autoindex_groups_1" in plan[0], plan
            assert not any("TEMP B-TREE" in step for step in plan), plan
        seek = query_plan(database, *pages[1])[0]
        assert seek.startswith("SEARCH g") and "(zone,label)>(?,?)" in seek
        in_zone = query_plan(database, *pages[2])[0]
        assert in_zone.startswith("SEARCH g") and "zone=? AND label>?" in in_zone

        plan = query_plan(database, *app_page_query(PageRequest(after=("m",), limit=100)))
        assert plan[0].startswith("SEARCH a USING INDEX sqlite_autoindex_apps_1 (name>?)"), plan
        statuses = [step for step in plan if "groups" in step]
        assert statuses and all("COVERING INDEX groups_by_" in step for step in statuses), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan
