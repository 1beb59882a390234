"""Pages of the group and app lists: the search filter, keyset cursors and their SQL.

A page is asked for with `find` (a case-blind substring), `after` (the sort key
of the last item of the previous page) and `limit`. Pages are keyset pages, not
OFFSET: each starts just past the previous page's last item in the lists' own
order (groups by zone then label, apps by name), so a group created or deleted
between two pages moves nothing else, and a page costs an index seek plus the
rows it returns (plus, with `find`, the rows it steps over to find them).

What `find` matches, lower-cased on both sides:

- a group: its label or full name, the name of its primary or backup app, or
  an address or hostname in the web head of either app;
- an app: its name, or an address or hostname in its web head (its load
  balancer if it has one, else its web servers).

A cursor is the last item's own name in the list's order: an app's name, a
group's full name (label.zone). Any text is a position in that order, so every
cursor the document allows is answered with the items after it (a cursor made by
hand, or kept from a list that has changed since, too): a page is asked for by
where it starts, not by a token only the server can read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from fodns.model import App, Group
from fodns.rows import apps_of, canonical_zone, group_rows_from, group_rows_sql

FIND_MAX = 200  # characters: longer than any label, app name, address or hostname
CURSOR_MAX = 2000  # characters of a cursor (a name): a label and a zone name fit many times

# An app's web head as SQL: its load balancer if it has one, else its web servers
# (model.App.web_head); both are JSON lists of normalised, lower-case values.
WEB_HEAD_SQL = "CASE WHEN a.load_balancer <> '[]' THEN a.load_balancer ELSE a.web_servers END"
# Apps whose name or a web head value holds the text (instr: no LIKE wildcards to escape).
APP_FOUND_SQL = (
    "(instr(lower(a.name), ?) > 0 OR EXISTS (SELECT 1 FROM json_each("
    f"{WEB_HEAD_SQL}) AS head WHERE instr(lower(head.value), ?) > 0))"
)
FOUND_APP_IDS_SQL = f"SELECT a.id FROM apps AS a WHERE {APP_FOUND_SQL}"
# An app's failover status from two index seeks per side (migration 6's indexes on
# (primary_app_id, active) and (backup_app_id, active)): the same rule as
# store._failover_statuses, without reading every group.
FAILOVER_STATUS_SQL = """CASE
    WHEN EXISTS (SELECT 1 FROM groups WHERE primary_app_id = a.id AND active = 'primary')
      OR EXISTS (SELECT 1 FROM groups WHERE backup_app_id = a.id AND active = 'backup')
    THEN 'online'
    WHEN EXISTS (SELECT 1 FROM groups WHERE primary_app_id = a.id)
      OR EXISTS (SELECT 1 FROM groups WHERE backup_app_id = a.id)
    THEN 'offline'
    ELSE 'none' END"""


@dataclass(frozen=True)
class PageRequest:
    """What a list request asks for; every field None is the whole list."""

    find: str | None = None  # lower-cased already
    after: tuple[str, ...] | None = None  # the sort key the page starts after
    limit: int | None = None


@dataclass(frozen=True)
class GroupPage:
    groups: list[Group]
    apps: dict[str, App]  # the apps the page's groups name, by name
    next: tuple[str, ...] | None  # the key to ask the next page after; None: this is the last


@dataclass(frozen=True)
class AppPage:
    apps: list[tuple[App, str]]  # each app with its failover status
    next: tuple[str, ...] | None


def app_cursor(key: tuple[str, ...]) -> str:
    """The cursor after an app: its name (the key of the app list)."""
    (name,) = key
    return name


def group_cursor(key: tuple[str, ...]) -> str:
    """The cursor after a group: its full name, label.zone (the key is zone, label)."""
    zone, label = key
    return f"{label}.{zone}"


def app_position(cursor: str) -> tuple[str, ...]:
    """Where a page of apps starts: after this name, in the list's (case-blind) order."""
    return (cursor,)


def group_position(cursor: str) -> tuple[str, ...]:
    """Where a page of groups starts: after this full name. The label is up to the
    first dot, the zone the rest (a text without one is a label before every zone)."""
    label, _, zone = cursor.partition(".")
    return (zone.rstrip(".").lower(), label.lower())


def group_page_query(page: PageRequest, zone: str | None) -> tuple[str, list[Any]]:
    """The SQL and parameters of one page of groups (of `zone`, or all), one row more
    than the page so that the reader knows whether there is a next one."""
    conditions: list[str] = []
    params: list[Any] = []
    if zone is None:
        if page.after is not None:
            # A row value comparison, answered by seeking the (zone, label) index.
            conditions.append("(g.zone, g.label) > (?, ?)")
            params.extend(page.after)
    else:
        # In one zone, said as zone = ? AND label > ? so that SQLite seeks both
        # columns (with the row value it seeks the zone, then steps over its labels).
        key = canonical_zone(zone)
        conditions.append("g.zone = ?")
        params.append(key)
        if page.after is not None and page.after[0] == key:
            conditions.append("g.label > ?")
            params.append(page.after[1])
        elif page.after is not None and page.after[0] > key:
            conditions.append("0")  # the cursor is past the zone's last group
    if page.find is not None:
        conditions.append(
            "(instr(g.label || '.' || g.zone, ?) > 0"
            f" OR g.primary_app_id IN ({FOUND_APP_IDS_SQL})"
            f" OR g.backup_app_id IN ({FOUND_APP_IDS_SQL}))"
        )
        params.extend([page.find] * 5)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return group_rows_sql(where, None if page.limit is None else page.limit + 1), params


def read_group_page(db: Database, page: PageRequest, zone: str | None) -> GroupPage:
    """One page of groups in list order, with the apps they name."""
    sql, params = group_page_query(page, zone)
    groups = [row.group for row in group_rows_from(db.conn.execute(sql, params))]
    more = page.limit is not None and len(groups) > page.limit
    if more:
        del groups[page.limit :]
    last = (groups[-1].zone, groups[-1].label) if more else None
    return GroupPage(groups, apps_of(db, groups), last)


def app_page_query(page: PageRequest) -> tuple[str, list[Any]]:
    """The SQL and parameters of one page of apps by name with their failover status,
    one row more than the page."""
    conditions: list[str] = []
    params: list[Any] = []
    if page.after is not None:
        conditions.append("a.name > ?")  # in the column's NOCASE collation, as ORDER BY
        params.extend(page.after)
    if page.find is not None:
        conditions.append(APP_FOUND_SQL)
        params.extend([page.find] * 2)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = (
        f"SELECT a.name, a.load_balancer, a.web_servers, a.down, {FAILOVER_STATUS_SQL} AS status"
        f" FROM apps AS a {where} ORDER BY a.name"
    )
    if page.limit is not None:
        sql += " LIMIT ?"
        params.append(page.limit + 1)
    return sql, params


def read_app_page(db: Database, page: PageRequest) -> AppPage:
    """One page of apps by name, each with its failover status."""
    sql, params = app_page_query(page)
    apps = [
        (
            App(
                str(name),
                tuple(json.loads(balancer)),
                tuple(json.loads(servers)),
                tuple(json.loads(down)),
            ),
            str(status),
        )
        for name, balancer, servers, down, status in db.conn.execute(sql, params)
    ]
    more = page.limit is not None and len(apps) > page.limit
    if more:
        del apps[page.limit :]
    return AppPage(apps, (apps[-1][0].name,) if more else None)
