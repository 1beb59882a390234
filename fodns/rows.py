"""Rows of the store's tables to values and back, for the store's reads and writes.

Groups hold app ids; names come from a join, so a rename shows at once. Also the
event rows, and the small checks and conversions the store's methods share. Every
function takes the connection of the transaction it is part of; none opens one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from fodns.errors import Conflict, Invalid, NotFound
from fodns.model import App, Event, Group, GroupKey, Pin, Touch

TEXT_MAX = 1000


APP_SELECT = "SELECT id, name, load_balancer, web_servers, down FROM apps"
GROUP_SELECT = """SELECT g.id, g.zone, g.label, g.primary_app_id, g.backup_app_id,
    p.name AS primary_name, b.name AS backup_name, g.active, g.ttl,
    g.failover, g.failback, g.hold_down, g.max_auto_switches, g.pin, g.last_auto_switch
FROM groups AS g
LEFT JOIN apps AS p ON p.id = g.primary_app_id
LEFT JOIN apps AS b ON b.id = g.backup_app_id"""
EVENT_SELECT = (
    "SELECT seq, at, actor, action, zone, group_label, app, before, after, reason, touched"
    " FROM events"
)


@dataclass(frozen=True)
class AppRow:
    id: int
    app: App


@dataclass(frozen=True)
class GroupRow:
    id: int
    primary_id: int | None
    backup_id: int | None
    group: Group


def select_apps(db: Database, where: str = "", params: Sequence[Any] = ()) -> list[AppRow]:
    return [
        AppRow(
            int(row["id"]),
            App(
                str(row["name"]),
                tuple(json.loads(row["load_balancer"])),
                tuple(json.loads(row["web_servers"])),
                tuple(json.loads(row["down"])),
            ),
        )
        for row in db.query(f"{APP_SELECT} {where} ORDER BY name", list(params))
    ]


def stored_object(text: Any) -> dict[str, Any] | None:
    """A JSON object kept in a column, read back; anything else (a row edited by hand)
    is None, never a crash."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def find_app(db: Database, name: str, field: str | None = None) -> AppRow:
    rows = select_apps(db, "WHERE name = ?", [name])
    if not rows:
        raise NotFound(f"{field + ': ' if field else ''}no app named {name!r}", field=field)
    return rows[0]


def select_groups(db: Database, where: str = "", params: Sequence[Any] = ()) -> list[GroupRow]:
    return list(group_rows(db, where, params))


def group_rows_sql(where: str = "", limit: int | None = None) -> str:
    """The query of group_rows: the groups `where` selects, in list order (zone, label)."""
    tail = "" if limit is None else f" LIMIT {int(limit)}"
    return f"{GROUP_SELECT} {where} ORDER BY g.zone, g.label{tail}"


def group_rows(db: Database, where: str = "", params: Sequence[Any] = ()) -> Iterator[GroupRow]:
    """The groups as the cursor yields them, so a caller need not hold them all at once."""
    # A plain cursor with tuple rows: start-up reads every group, and sqlite-utils'
    # dict per row was a third of that. `active` is guaranteed by a CHECK constraint.
    return group_rows_from(db.conn.execute(group_rows_sql(where), list(params)))


def group_rows_from(rows: Iterable[tuple[Any, ...]]) -> Iterator[GroupRow]:
    """GroupRows from the tuples of a query that selects GROUP_SELECT's columns."""
    return (
        GroupRow(
            group_id,
            primary_id,
            backup_id,
            Group(
                zone,
                label,
                primary_name,
                backup_name,
                active,
                ttl,
                failover,
                failback,
                hold_down,
                max_auto_switches,
                None if pin is None else Pin.from_stored(pin),
                None if last_auto_switch is None else stored_object(last_auto_switch),
            ),
        )
        for (
            group_id,
            zone,
            label,
            primary_id,
            backup_id,
            primary_name,
            backup_name,
            active,
            ttl,
            failover,
            failback,
            hold_down,
            max_auto_switches,
            pin,
            last_auto_switch,
        ) in rows
    )


def active_group_rows(
    db: Database, zone: str, origin_key: bytes
) -> Iterator[tuple[bytes, int | None, int]]:
    """(name key, id of the active side's app or None, TTL) of each group of `zone`, in
    no particular order: what a table needs of a group, read without joins.

    The name key is the wire name the table keys on (fodns.zone.wire_key): the
    label's length octet, the label in lower case, then `origin_key`. SQLite builds
    it: a label is 1 to 63 ASCII characters (model.GROUP_LABEL), so char(length)
    is that one octet. Built in Python, the keys of a million groups took a second more.
    """
    # `active` is guaranteed by a CHECK constraint to be one of the two.
    return db.conn.execute(
        "SELECT CAST(char(length(label)) || lower(label) || ? AS BLOB),"
        " CASE active WHEN 'primary' THEN primary_app_id ELSE backup_app_id END, ttl"
        " FROM groups WHERE zone = ?",
        [origin_key, zone],
    )


def find_group(db: Database, label: str, zone: str | None) -> GroupRow:
    """The group with this label, in `zone` or (None) in the one zone that has it."""
    label = label.lower()
    if zone is None:
        rows = select_groups(db, "WHERE g.label = ?", [label])
    else:
        rows = select_groups(db, "WHERE g.zone = ? AND g.label = ?", [zone, label])
    if not rows:
        raise NotFound(f"no group {label!r}" + (f" in zone {zone}" if zone else ""))
    if len(rows) > 1:
        zones = ", ".join(row.group.zone for row in rows)
        raise Invalid("zone", f"group {label!r} exists in zones {zones}; name the zone")
    return rows[0]


def rows_using(db: Database, app: AppRow) -> list[GroupRow]:
    return select_groups(db, "WHERE g.primary_app_id = ? OR g.backup_app_id = ?", [app.id, app.id])


def rows_by_keys(db: Database, keys: Sequence[GroupKey]) -> list[GroupRow]:
    """The groups of these (zone, label) keys that exist, a few hundred per query."""
    rows: list[GroupRow] = []
    for start in range(0, len(keys), 400):  # two bound parameters each
        chunk = keys[start : start + 400]
        marks = ", ".join("(?, ?)" for _ in chunk)
        where = f"WHERE (g.zone, g.label) IN (VALUES {marks})"
        rows.extend(group_rows(db, where, [part for key in chunk for part in key]))
    return rows


def id_of(row: AppRow | None) -> int | None:
    return None if row is None else row.id


def active_app_id(row: GroupRow) -> int | None:
    return row.primary_id if row.group.active == "primary" else row.backup_id


def apps_of(db: Database, groups: Iterable[Group]) -> dict[str, App]:
    """The apps these groups reference, by name: what their answers are made of."""
    names = sorted({name for g in groups for name in (g.primary, g.backup) if name is not None})
    if not names:
        return {}
    marks = ", ".join("?" * len(names))
    return {row.app.name: row.app for row in select_apps(db, f"WHERE name IN ({marks})", names)}


def label_used(db: Database, zone: str, label: str) -> bool:
    sql = "SELECT 1 FROM labels WHERE zone = ? AND label = ?"
    return db.execute(sql, [zone, label]).fetchone() is not None


def claimable_label(db: Database, zone: str, label: str) -> str:
    if not label_used(db, zone, label):
        return label
    if db.execute("SELECT 1 FROM groups WHERE zone = ? AND label = ?", [zone, label]).fetchone():
        raise Conflict(f"label {label!r} is taken by a group in zone {zone}", field="label")
    raise Conflict(
        f"label {label!r} in zone {zone} was used before and is never reused", field="label"
    )


def newest_seq(db: Database) -> int:
    return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])


def app_filter(db: Database, app: str, params: list[Any]) -> str:
    """SQL for "events about this app": by id across renames, or by name once it is gone."""
    rows = select_apps(db, "WHERE name = ?", [app])
    if rows:
        params.append(rows[0].id)
        return "seq IN (SELECT seq FROM event_apps WHERE app_id = ?)"
    params.append(app)
    return "app = ? COLLATE NOCASE"


def group_event(
    db: Database,
    actor: str,
    action: str,
    before: GroupRow | None,
    after: GroupRow | None,
    reason: str | None,
) -> Event:
    rows = [row for row in (before, after) if row is not None]
    group = rows[-1].group
    return append_event(
        db,
        actor,
        action,
        zone=group.zone,
        group=group.label,
        before=None if before is None else before.group.to_json(),
        after=None if after is None else after.group.to_json(),
        reason=reason,
        app_ids=[i for row in rows for i in (row.primary_id, row.backup_id)],
    )


def append_event(
    db: Database,
    actor: str,
    action: str,
    *,
    zone: str | None = None,
    group: str | None = None,
    app: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
    app_ids: Iterable[int | None] = (),
    app_groups: Iterable[GroupRow] = (),
    names: Iterable[GroupKey] = (),
) -> Event:
    """Append one event about the apps `app_ids` (indexed in event_apps, so an app's
    history survives its renames), with what it touched (model.Touch): for an app
    event, the groups that use its app (`app_groups`, as the caller read them in the
    transaction that changed it); for an ACME event, the challenge `names` (zone,
    name) whose records it changed."""
    at = utc_now()
    ids = sorted({i for i in app_ids if i is not None})
    touch = Touch.of_event(
        zone=zone,
        group=group,
        app=app,
        before=before,
        after=after,
        app_groups=[(row.group.zone, row.group.label) for row in app_groups],
        names=names,
    )
    cursor = db.execute(
        "INSERT INTO events"
        " (at, actor, action, zone, group_label, app, before, after, reason, touched)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            at,
            actor,
            action,
            zone,
            group,
            app,
            dump_json(before),
            dump_json(after),
            reason,
            dump_json(touch.to_stored()),
        ],
    )
    seq = int(cursor.lastrowid or 0)
    for app_id in ids:
        db.execute("INSERT INTO event_apps VALUES (?, ?)", [app_id, seq])
    return Event(seq, at, actor, action, zone, group, app, before, after, reason, touch)


def event_from_row(row: dict[str, Any]) -> Event:
    return Event(
        seq=int(row["seq"]),
        at=str(row["at"]),
        actor=str(row["actor"]),
        action=str(row["action"]),
        zone=row["zone"],
        group=row["group_label"],
        app=row["app"],
        before=None if row["before"] is None else json.loads(row["before"]),
        after=None if row["after"] is None else json.loads(row["after"]),
        reason=row["reason"],
        # NULL only in a row written by hand: it then names nothing it touched.
        touched=Touch.from_stored(None if row["touched"] is None else json.loads(row["touched"])),
    )


# Small checks and conversions.


def canonical_zone(zone: str) -> str:
    """Zones are compared as DNS compares names: case-blind, with or without the root dot."""
    return zone.lower().rstrip(".")


def check_change(actor: Any, reason: Any) -> None:
    check_text(actor, "actor", required=True)
    check_text(reason, "reason", required=False)


def check_text(value: Any, field: str, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip() or len(value) > TEXT_MAX:
        raise Invalid(field, f"must be text of 1 to {TEXT_MAX} characters")
    if "\x00" in value or not is_utf8(value):
        # JSON can carry a lone surrogate ("\ud800") or a NUL, which SQLite, the
        # logs and every reader of the event log would then choke on.
        raise Invalid(field, "must be valid UTF-8 text without NUL characters")


def is_utf8(value: str) -> bool:
    """False for a str holding lone surrogates, which have no UTF-8 form."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_int(value: Any, field: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(field, f"must be an integer from {low} to {high}")


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2024-11-22T06:19:00.123Z."""
    return utc_text(datetime.now(UTC))


def utc_text(moment: datetime) -> str:
    """A moment as the log writes times (utc_now's form)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_from_epoch(seconds: float) -> str:
    """An epoch time (time.time()) in utc_now's form."""
    return utc_text(datetime.fromtimestamp(seconds, UTC))


def seconds_since(at: str) -> float:
    """Seconds from a utc_now() timestamp until now."""
    return (datetime.now(UTC) - datetime.fromisoformat(at.replace("Z", "+00:00"))).total_seconds()


def dump_list(values: tuple[str, ...]) -> str:
    return json.dumps(list(values))


def dump_json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))
