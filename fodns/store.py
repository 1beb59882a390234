"""The store: apps, groups, label tombstones, events and zone serials in SQLite, and its writer.

Every write is one `BEGIN IMMEDIATE ... COMMIT` transaction run by a single
writer thread that owns the only write connection (datasette's pattern), so
writes are serialised without lock juggling and each returns only once it is
on disk (WAL, synchronous=FULL). Readers use one connection per thread and
never wait for the writer. Each write appends exactly one event to the log,
except a write that changes nothing (switching to the side already active,
or an update that sets what is already set), which appends none.

Decisions beyond the design page:

- A rename is an `app_updated` event whose `before` and `after` carry the old
  and new names: one action per kind of change, whatever fields it touched.
- App names are unique regardless of case ("Web" finds "web").
- Clearing a group's active side is allowed: the group then answers NODATA,
  the same as a group created with no apps.
- A zone's SOA serial is max(stored serial, zone file serial); a change sets
  it to that plus one, and only for zones whose answers may have changed (a
  rename or a change to an inactive side's web head changes no answer).
- An event's `app` names the app of an app event and is None for group
  events; `events(app=...)` still finds the group events touching the app,
  through the `event_apps` table, across renames.
"""

from __future__ import annotations

import enum
import json
import queue
import random
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlite_utils import Database

from fodns.errors import Conflict, FodnsError, Invalid, NotFound
from fodns.migrations import migrate
from fodns.model import (
    App,
    Event,
    Group,
    Side,
    check_app_name,
    check_group_label,
    check_side,
    check_ttl,
    check_web_head,
    head_records,
)

T = TypeVar("T")
FailoverStatus = Literal["online", "offline", "none"]
WebHead = Sequence[str] | str
SERIAL_MAX = 2**32 - 1  # RFC 1982: serials are unsigned 32-bit numbers
# How long a write waits for another process holding the write lock (a second
# fodns on the same file, say) before giving up with "database is locked".
BUSY_TIMEOUT = 10.0
LABEL_ATTEMPTS = 1000  # 10**9 labels: a thousand misses in a row means something is wrong
EVENTS_PAGE_MAX = 1000
# Serial changes kept per zone for IXFR (Knot's journal keeps 20 by default):
# a secondary further behind than this is sent the whole zone.
JOURNAL_DEPTH = 1000
TEXT_MAX = 1000


class Unset(enum.Enum):
    """The type of UNSET: "leave it as it is", because None already means "clear it"."""

    UNSET = "UNSET"


UNSET = Unset.UNSET


@dataclass(frozen=True)
class ZoneDefaults:
    """What the store needs to know of a configured zone."""

    serial: int  # the SOA serial in the zone file
    group_ttl: int = 30  # TTL of a new group that names none


# One record as the journal keeps it: (owner without the final dot, TTL, type, data).
JournalRecord = tuple[str, int, str, str]


# A Route53 record set fodns owns: (name with the final dot, type) -> (TTL, values).
MirrorKey = tuple[str, str]
MirrorValue = tuple[int, tuple[str, ...]]


@dataclass(frozen=True)
class JournalEntry:
    """What one serial change of a zone removed and added (an IXFR difference sequence)."""

    serial_from: int
    serial_to: int
    removed: tuple[JournalRecord, ...]
    added: tuple[JournalRecord, ...]


@dataclass
class _AnswerChange:
    """A zone's group answers before and after one write, for its journal entry."""

    before: set[JournalRecord] = field(default_factory=set)
    after: set[JournalRecord] = field(default_factory=set)


@dataclass(frozen=True)
class Change:
    """What one committed write did, for the DNS table and the API to follow."""

    event: Event | None  # None when the write changed nothing (idempotent switch)
    groups: tuple[Group, ...] = ()  # every group whose answer may have changed, in its new state
    deleted_groups: tuple[tuple[str, str], ...] = ()  # (zone, label) of groups that no longer exist
    apps: dict[str, App] = field(default_factory=dict)  # the apps those groups reference, by name
    serials: dict[str, int] = field(default_factory=dict)  # new SOA serial of each changed zone


class Store:
    """The database of apps, groups and events; safe to call from any number of threads."""

    def __init__(
        self,
        path: Path,
        zones: Mapping[str, ZoneDefaults],
        *,
        rng: random.Random | None = None,
    ) -> None:
        """Open (or create) the database file and apply the migrations it lacks.

        `rng` draws generated labels; the default is the operating system's
        random source. Tests pass a seeded one to replay a sequence.
        """
        self.path = Path(path)
        self._zones = {_zone_key(name): defaults for name, defaults in zones.items()}
        for name, defaults in self._zones.items():
            check_ttl(defaults.group_ttl, f"zones.{name}.group_ttl")
        self._rng = rng or random.SystemRandom()
        self._local = threading.local()
        self._readers: list[Database] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _Writer(self.path)
        self.migrations_applied: list[int] = self._writer.migrations_applied

    def close(self) -> None:
        """Finish queued writes, then close every connection. Idempotent."""
        self._writer.close()
        with self._readers_lock:
            self._closed = True
            readers, self._readers = self._readers, []
        for db in readers:
            db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def group_ttl(self, zone: str) -> int:
        """The TTL a new group in `zone` gets when it names none (the zone's `group_ttl`)."""
        return self._zones[_zone_key(zone)].group_ttl

    # Reads: each is one read transaction on this thread's own connection.

    def apps(self) -> list[App]:
        return self._read(lambda db: [row.app for row in _select_apps(db)])

    def app(self, name: str) -> App:
        return self._read(lambda db: _find_app(db, name).app)

    def groups(self, zone: str | None = None) -> list[Group]:
        if zone is None:
            return self._read(lambda db: [row.group for row in _select_groups(db)])
        key = _zone_key(zone)
        return self._read(
            lambda db: [row.group for row in _select_groups(db, "WHERE g.zone = ?", [key])]
        )

    def group(self, label: str, zone: str | None = None) -> Group:
        """The group with this label; with zone None, in whichever zone has it."""
        key = None if zone is None else _zone_key(zone)
        return self._read(lambda db: _find_group(db, label, key).group)

    def groups_using(self, app: str) -> list[Group]:
        return self._read(lambda db: [row.group for row in _groups_using(db, _find_app(db, app))])

    def failover_status(self, app: str) -> FailoverStatus:
        def read(db: Database) -> FailoverStatus:
            found = _find_app(db, app)
            using = _groups_using(db, found)
            if any(_active_app_id(row) == found.id for row in using):
                return "online"
            return "offline" if using else "none"

        return self._read(read)

    def apps_with_status(self) -> list[tuple[App, FailoverStatus]]:
        """Every app with its failover status, in one read: the groups are read once
        (there may be 100,000 of them), not once per app."""

        def read(db: Database) -> list[tuple[App, FailoverStatus]]:
            statuses: dict[int, FailoverStatus] = {}
            sql = "SELECT primary_app_id, backup_app_id, active FROM groups"
            for primary_id, backup_id, active in db.conn.execute(sql):
                live = primary_id if active == "primary" else backup_id
                for app_id in (primary_id, backup_id):
                    if app_id is not None and statuses.get(app_id) != "online":
                        statuses[app_id] = "online" if app_id == live else "offline"
            return [(row.app, statuses.get(row.id, "none")) for row in _select_apps(db)]

        return self._read(read)

    def read_groups(
        self, consume: Callable[[Iterator[Group], dict[str, App]], T], zone: str | None = None
    ) -> T:
        """`consume(groups, apps)` within one read transaction: the groups (of one zone,
        or all) streamed from the database in order, and every app by name. A list of
        100,000 groups is never held whole; holding it made the garbage collector
        pause the process, DNS included, for about 100 ms at a time."""

        def read(db: Database) -> T:
            where, params = ("", []) if zone is None else ("WHERE g.zone = ?", [_zone_key(zone)])
            apps = {row.app.name: row.app for row in _select_apps(db)}
            return consume((row.group for row in _group_rows(db, where, params)), apps)

        return self._read(read)

    def group_counts(self) -> dict[str, int]:
        """How many groups each zone has, by zone name (zones with none are absent)."""
        sql = "SELECT zone, COUNT(*) FROM groups GROUP BY zone"
        return self._read(lambda db: {str(z): int(n) for z, n in db.conn.execute(sql)})

    def events(
        self,
        group: str | None = None,
        app: str | None = None,
        limit: int = 100,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> list[Event]:
        """The log newest first, optionally about one group label or one app, paged by
        seq: older than `before_seq`, newer than `after_seq` (what a follower missed)."""
        _check_int(limit, "limit", 1, EVENTS_PAGE_MAX)
        for bound, name in ((before_seq, "before_seq"), (after_seq, "after_seq")):
            if bound is not None:
                _check_int(bound, name, 0, 2**63 - 1)

        def read(db: Database) -> list[Event]:
            where, params = ["1"], list[Any]()
            if group is not None:
                where.append("group_label = ?")
                params.append(group.lower())
            if app is not None:
                where.append(_app_filter(db, app, params))
            if before_seq is not None:
                where.append("seq < ?")
                params.append(before_seq)
            if after_seq is not None:
                where.append("seq > ?")
                params.append(after_seq)
            sql = f"{_EVENT_SELECT} WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
            return [_event(row) for row in db.query(sql, [*params, limit])]

        return self._read(read)

    def events_since(self, seq: int) -> list[Event]:
        """Every event after `seq`, oldest first: how followers catch up."""
        sql = f"{_EVENT_SELECT} WHERE seq > ? ORDER BY seq"
        return self._read(lambda db: [_event(row) for row in db.query(sql, [seq])])

    def last_seq(self) -> int:
        return self._read(_last_seq)

    def serial(self, zone: str) -> int:
        """The SOA serial to serve for a zone: max(stored serial, zone file serial)."""
        key = _zone_key(zone)
        if key not in self._zones:
            raise NotFound(f"zone {key} is not served here")
        return self._read(lambda db: self._served_serial(db, key))

    def journal(self, zone: str, serial_from: int, serial_to: int) -> list[JournalEntry] | None:
        """The zone's changes from `serial_from` to `serial_to`, oldest first; None when
        the journal does not hold that whole history (IXFR then falls back to AXFR)."""
        key = _zone_key(zone)

        def read(db: Database) -> list[JournalEntry] | None:
            start = db.execute(
                "SELECT MIN(id) FROM zone_journal WHERE zone = ? AND serial_from = ?",
                [key, serial_from],
            ).fetchone()[0]
            if start is None:
                return None
            rows = db.conn.execute(
                "SELECT serial_from, serial_to, removed, added FROM zone_journal"
                " WHERE zone = ? AND id >= ? ORDER BY id",
                [key, start],
            )
            entries: list[JournalEntry] = []
            serial = serial_from
            for row_from, row_to, removed, added in rows:
                if row_from != serial:
                    return None  # a gap: the zone file's serial jumped past the journal
                entries.append(
                    JournalEntry(
                        row_from, row_to, _journal_records(removed), _journal_records(added)
                    )
                )
                serial = row_to
                if serial == serial_to:
                    return entries
            return None

        return self._read(read)

    def snapshot(self) -> tuple[list[Group], dict[str, App], dict[str, int], int]:
        """Groups, apps by name, serial per zone and the last event seq, all as of one moment."""

        def read(db: Database) -> tuple[list[Group], dict[str, App], dict[str, int], int]:
            groups = [row.group for row in _select_groups(db)]
            apps = {row.app.name: row.app for row in _select_apps(db)}
            serials = {zone: self._served_serial(db, zone) for zone in self._zones}
            return groups, apps, serials, _last_seq(db)

        return self._read(read)

    # Writes: check the input here, then hand one transaction to the writer.

    def labels(self, zone: str) -> set[str]:
        """Every label a group of the zone has ever had (the names fodns owns there)."""
        key = _zone_key(zone)
        rows = self._read(lambda db: db.execute("SELECT label FROM labels WHERE zone = ?", [key]))
        return {str(row[0]) for row in rows}

    def mirror_state(self, zone: str) -> tuple[int | None, dict[MirrorKey, MirrorValue]]:
        """The Route53 mirror's cursor for the zone (None: never synced) and the record
        sets it believes Route53 holds for fodns."""
        key = _zone_key(zone)

        def read(db: Database) -> tuple[int | None, dict[MirrorKey, MirrorValue]]:
            row = db.execute("SELECT seq FROM route53_cursor WHERE zone = ?", [key]).fetchone()
            records = {
                (str(name), str(rtype)): (int(ttl), tuple(json.loads(values)))
                for name, rtype, ttl, values in db.execute(
                    "SELECT name, type, ttl, record_values FROM route53_records WHERE zone = ?",
                    [key],
                )
            }
            return (None if row is None else int(row[0])), records

        return self._read(read)

    def save_mirror(
        self,
        zone: str,
        records: Mapping[MirrorKey, MirrorValue | None],
        seq: int | None = None,
        *,
        replace: bool = False,
    ) -> None:
        """Record what Route53 accepted: record sets set (None: deleted), all of them
        when `replace`; and, with `seq`, that every event up to it is mirrored."""
        key = _zone_key(zone)

        def write(db: Database) -> None:
            if replace:
                db.execute("DELETE FROM route53_records WHERE zone = ?", [key])
            for (name, rtype), value in records.items():
                if value is None:
                    db.execute(
                        "DELETE FROM route53_records WHERE zone = ? AND name = ? AND type = ?",
                        [key, name, rtype],
                    )
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO route53_records VALUES (?, ?, ?, ?, ?)",
                        [key, name, rtype, value[0], json.dumps(list(value[1]))],
                    )
            if seq is not None:
                db.execute(
                    "INSERT OR REPLACE INTO route53_cursor VALUES (?, ?, ?)", [key, seq, _now()]
                )

        self._writer.run(write)

    def zone_loaded(self, zone: str, file_serial: int, digest: str) -> int:
        """A zone file was (re)loaded: the serial to serve with it.

        At least the file's serial. When the file's records differ from the last
        load (`digest` is content_digest of the file's records), the serial moves
        on by one, so secondaries fetch the edit even if the operator did not
        raise the file's serial past fodns's, and the journal starts afresh.
        """
        key = _zone_key(zone)

        def write(db: Database) -> int:
            row = db.execute("SELECT digest FROM zone_files WHERE zone = ?", [key]).fetchone()
            serial = max(self._served_serial(db, key), file_serial)
            if row is not None and row[0] != digest:
                serial += 1
                if serial > SERIAL_MAX:
                    raise FodnsError(f"the SOA serial of zone {key} would pass {SERIAL_MAX}")
                db.execute("DELETE FROM zone_journal WHERE zone = ?", [key])
            if row is None or row[0] != digest:
                db.execute(
                    "INSERT INTO zone_files VALUES (?, ?)"
                    " ON CONFLICT (zone) DO UPDATE SET digest = excluded.digest",
                    [key, digest],
                )
            _store_serial(db, key, serial)
            return serial

        return self._writer.run(write)

    def ensure_token_name(self, name: str) -> None:
        """Record the name of an API token (the actor of its changes), if it is new."""
        _check_text(name, "name", required=True)
        now = _now()
        self._writer.run(
            lambda db: db.execute("INSERT OR IGNORE INTO tokens VALUES (?, ?)", [name, now])
        )

    def create_app(
        self,
        actor: str,
        name: str,
        load_balancer: WebHead | None = (),
        web_servers: WebHead | None = (),
        reason: str | None = None,
    ) -> Change:
        _check_change(actor, reason)
        app = App(
            check_app_name(name),
            check_web_head(load_balancer, "load_balancer"),
            check_web_head(web_servers, "web_servers"),
        )

        def write(db: Database) -> Change:
            if _select_apps(db, "WHERE name = ?", [app.name]):
                raise Conflict(f"an app named {app.name!r} already exists", field="name")
            now = _now()
            cursor = db.execute(
                "INSERT INTO apps (name, load_balancer, web_servers, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [app.name, _dump(app.load_balancer), _dump(app.web_servers), now, now],
            )
            event = _append_event(
                db,
                actor,
                "app_created",
                app=app.name,
                after=app.to_json(),
                reason=reason,
                app_ids=[cursor.lastrowid],
            )
            return Change(event, apps={app.name: app})

        return self._writer.run(write)

    def update_app(
        self,
        actor: str,
        name: str,
        *,
        new_name: str | None = None,
        load_balancer: WebHead | None = None,
        web_servers: WebHead | None = None,
        reason: str | None = None,
    ) -> Change:
        """Rename an app or change its web head (None: leave as is; []: clear).

        Every group using the app is in Change.groups, as its answers follow the
        web head at once; serials move only where the app is the active side
        and its web head changed.
        """
        _check_change(actor, reason)
        renamed = None if new_name is None else check_app_name(new_name, "name")
        balancer = None if load_balancer is None else check_web_head(load_balancer, "load_balancer")
        servers = None if web_servers is None else check_web_head(web_servers, "web_servers")

        def write(db: Database) -> Change:
            old = _find_app(db, name)
            app = App(
                renamed if renamed is not None else old.app.name,
                balancer if balancer is not None else old.app.load_balancer,
                servers if servers is not None else old.app.web_servers,
            )
            if app == old.app:
                return Change(None, apps={app.name: app})
            if _select_apps(db, "WHERE name = ? AND id != ?", [app.name, old.id]):
                raise Conflict(f"an app named {app.name!r} already exists", field="name")
            db.execute(
                "UPDATE apps SET name = ?, load_balancer = ?, web_servers = ?, updated_at = ?"
                " WHERE id = ?",
                [app.name, _dump(app.load_balancer), _dump(app.web_servers), _now(), old.id],
            )
            event = _append_event(
                db,
                actor,
                "app_updated",
                app=app.name,
                before=old.app.to_json(),
                after=app.to_json(),
                reason=reason,
                app_ids=[old.id],
            )
            using = _groups_using(db, old)
            answers: dict[str, _AnswerChange] = {}
            if app.web_head != old.app.web_head:
                for row in using:
                    if _active_app_id(row) == old.id:
                        change = answers.setdefault(row.group.zone, _AnswerChange())
                        active = row.group.active_app or ""
                        change.before |= _answer(row.group, {active: old.app})
                        change.after |= _answer(row.group, {active: app})
            groups = tuple(row.group for row in using)
            return Change(
                event,
                groups=groups,
                apps={**_apps_of(db, groups), app.name: app},
                serials=self._bump_serials(db, answers),
            )

        return self._writer.run(write)

    def delete_app(self, actor: str, name: str, reason: str | None = None) -> Change:
        """Delete an app that no group references (Conflict otherwise)."""
        _check_change(actor, reason)

        def write(db: Database) -> Change:
            old = _find_app(db, name)
            using = _groups_using(db, old)
            if using:
                fqdns = ", ".join(row.group.fqdn for row in using)
                raise Conflict(f"app {old.app.name!r} is in group(s) {fqdns}; take it out first")
            db.execute("DELETE FROM apps WHERE id = ?", [old.id])
            event = _append_event(
                db,
                actor,
                "app_deleted",
                app=old.app.name,
                before=old.app.to_json(),
                reason=reason,
                app_ids=[old.id],
            )
            return Change(event)

        return self._writer.run(write)

    def create_group(
        self,
        actor: str,
        zone: str | None = None,
        label: str | None = None,
        primary: str | None = None,
        backup: str | None = None,
        ttl: int | None = None,
        reason: str | None = None,
    ) -> Change:
        """A new group, primary side active; label None draws an unused NNN-NNN-NNN."""
        _check_change(actor, reason)
        zone_name = self._configured_zone(zone)
        wanted = None if label is None else check_group_label(label)
        group_ttl = self._zones[zone_name].group_ttl if ttl is None else check_ttl(ttl)
        primary_name = None if primary is None else check_app_name(primary, "primary")
        backup_name = None if backup is None else check_app_name(backup, "backup")

        def write(db: Database) -> Change:
            primary_row = None if primary_name is None else _find_app(db, primary_name, "primary")
            backup_row = None if backup_name is None else _find_app(db, backup_name, "backup")
            if primary_row and backup_row and primary_row.id == backup_row.id:
                raise Invalid("backup", "must be another app than the primary")
            if wanted is None:
                new_label = self._new_label(db, zone_name)
            else:
                new_label = _claimable_label(db, zone_name, wanted)
            now = _now()
            db.execute("INSERT INTO labels VALUES (?, ?, ?)", [zone_name, new_label, now])
            db.execute(
                "INSERT INTO groups (zone, label, primary_app_id, backup_app_id, active, ttl,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, 'primary', ?, ?, ?)",
                [zone_name, new_label, _id(primary_row), _id(backup_row), group_ttl, now, now],
            )
            new = _find_group(db, new_label, zone_name)
            event = _group_event(db, actor, "group_created", None, new, reason)
            return self._group_change(db, event, new, old=None)

        return self._writer.run(write)

    def update_group(
        self,
        actor: str,
        label: str,
        zone: str | None = None,
        *,
        primary: str | Unset | None = UNSET,
        backup: str | Unset | None = UNSET,
        ttl: int | None = None,
        reason: str | None = None,
    ) -> Change:
        """Set a group's primary, backup or TTL (UNSET: leave as is; None: clear that side).

        Clearing the active side is allowed: the group stays on that side and
        answers NODATA until it gets an app or is switched.
        """
        _check_change(actor, reason)
        zone_key = None if zone is None else _zone_key(zone)
        new_ttl = None if ttl is None else check_ttl(ttl)
        for side, value in (("primary", primary), ("backup", backup)):
            if value is not None and value is not UNSET:
                check_app_name(value, side)

        def write(db: Database) -> Change:
            old = _find_group(db, label, zone_key)
            ids = {
                "primary": _side_app_id(db, "primary", primary, old.primary_id),
                "backup": _side_app_id(db, "backup", backup, old.backup_id),
            }
            if ids["primary"] is not None and ids["primary"] == ids["backup"]:
                named = "backup" if backup is not UNSET else "primary"
                raise Invalid(named, "the primary and the backup must be different apps")
            group_ttl = old.group.ttl if new_ttl is None else new_ttl
            if (ids["primary"], ids["backup"], group_ttl) == (
                old.primary_id,
                old.backup_id,
                old.group.ttl,
            ):
                return self._group_change(db, None, old)
            db.execute(
                "UPDATE groups SET primary_app_id = ?, backup_app_id = ?, ttl = ?, updated_at = ?"
                " WHERE id = ?",
                [ids["primary"], ids["backup"], group_ttl, _now(), old.id],
            )
            new = _find_group(db, old.group.label, old.group.zone)
            event = _group_event(db, actor, "group_updated", old, new, reason)
            return self._group_change(db, event, new, old=old)

        return self._writer.run(write)

    def switch(
        self,
        actor: str,
        label: str,
        to: str,
        zone: str | None = None,
        reason: str | None = None,
    ) -> Change:
        """Make one side of a group active. To the side already active: no event, no serial."""
        _check_change(actor, reason)
        side = check_side(to)
        zone_key = None if zone is None else _zone_key(zone)

        def write(db: Database) -> Change:
            old = _find_group(db, label, zone_key)
            if old.group.active == side:
                return self._group_change(db, None, old)
            if old.group.app_on(side) is None:
                raise Conflict(f"the {side} side of group {old.group.fqdn} has no app", field="to")
            db.execute(
                "UPDATE groups SET active = ?, updated_at = ? WHERE id = ?", [side, _now(), old.id]
            )
            new = _find_group(db, old.group.label, old.group.zone)
            event = _group_event(db, actor, "group_switched", old, new, reason)
            return self._group_change(db, event, new, old=old)

        return self._writer.run(write)

    def delete_group(
        self, actor: str, label: str, zone: str | None = None, reason: str | None = None
    ) -> Change:
        """Delete a group that points at no app (Conflict otherwise); its label stays taken."""
        _check_change(actor, reason)
        zone_key = None if zone is None else _zone_key(zone)

        def write(db: Database) -> Change:
            old = _find_group(db, label, zone_key)
            group = old.group
            if group.primary is not None or group.backup is not None:
                raise Conflict(
                    f"group {group.fqdn} still points at apps (primary {group.primary}, backup "
                    f"{group.backup}); clear both sides first"
                )
            db.execute("DELETE FROM groups WHERE id = ?", [old.id])
            event = _group_event(db, actor, "group_deleted", old, None, reason)
            # Deletable groups point at no app, so they answered nothing: the
            # journal entry removes no records, only moves the serial.
            return Change(
                event,
                deleted_groups=((group.zone, group.label),),
                serials=self._bump_serials(db, {group.zone: _AnswerChange()}),
            )

        return self._writer.run(write)

    # Helpers that need the configured zones or the label source.

    def _read(self, read: Callable[[Database], T]) -> T:
        """Run `read` in one read transaction, so what it sees is one committed state."""
        db = self._reader()
        db.execute("BEGIN")
        try:
            return read(db)
        finally:
            db.conn.execute("ROLLBACK")  # nothing to keep: readers never write

    def _reader(self) -> Database:
        # One connection per thread, kept for the store's life: callers are
        # thread pools and the event loop, a bounded set of threads.
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            with self._readers_lock:
                if self._closed:
                    raise FodnsError("the store is closed")
                db = _connect(self.path, writer=False)
                self._readers.append(db)
            self._local.db = db
        elif self._closed:
            raise FodnsError("the store is closed")
        return db

    def _configured_zone(self, zone: str | None) -> str:
        if zone is None:
            if len(self._zones) != 1:
                raise Invalid("zone", f"name one of the zones: {', '.join(sorted(self._zones))}")
            return next(iter(self._zones))
        if not isinstance(zone, str):
            raise Invalid("zone", "must be a zone name")
        key = _zone_key(zone)
        if key not in self._zones:
            raise NotFound(f"zone {key} is not served here")
        return key

    def _new_label(self, db: Database, zone: str) -> str:
        """Nine random digits as NNN-NNN-NNN, never a label the zone has used before."""
        for _ in range(LABEL_ATTEMPTS):
            number = self._rng.randrange(10**9)
            label = f"{number // 10**6:03d}-{number // 1000 % 1000:03d}-{number % 1000:03d}"
            if not _label_used(db, zone, label):
                return label
        raise FodnsError(f"no unused label found in zone {zone} after {LABEL_ATTEMPTS} draws")

    def _served_serial(self, db: Database, zone: str) -> int:
        row = db.execute("SELECT serial FROM zone_serials WHERE zone = ?", [zone]).fetchone()
        stored = 0 if row is None else int(row[0])
        defaults = self._zones.get(zone)
        return max(stored, 0 if defaults is None else defaults.serial)

    def _bump_serials(self, db: Database, answers: Mapping[str, _AnswerChange]) -> dict[str, int]:
        """Move each zone's serial past both its stored value and its zone file's, and
        journal what its answers lost and gained (RFC 1995 §4's difference sequence)."""
        serials: dict[str, int] = {}
        for zone in sorted(answers):
            serial_from = self._served_serial(db, zone)
            serial = serial_from + 1
            if serial > SERIAL_MAX:
                raise FodnsError(f"the SOA serial of zone {zone} would pass {SERIAL_MAX}")
            _store_serial(db, zone, serial)
            change = answers[zone]
            db.execute(
                "INSERT INTO zone_journal (zone, serial_from, serial_to, removed, added)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    zone,
                    serial_from,
                    serial,
                    json.dumps(sorted(change.before - change.after)),
                    json.dumps(sorted(change.after - change.before)),
                ],
            )
            _trim_journal(db, zone)
            serials[zone] = serial
        return serials

    def _group_change(
        self,
        db: Database,
        event: Event | None,
        row: _GroupRow,
        old: _GroupRow | Unset | None = UNSET,
    ) -> Change:
        """A group write's Change; `old` (None for a new group, UNSET when nothing was
        written) is its state before, to move the serial when the answer changed."""
        apps = _apps_of(db, [row.group] if old is UNSET or old is None else [row.group, old.group])
        serials: dict[str, int] = {}
        if old is not UNSET:
            before = set() if old is None else _answer(old.group, apps)
            after = _answer(row.group, apps)
            if old is None or before != after:
                serials = self._bump_serials(db, {row.group.zone: _AnswerChange(before, after)})
        return Change(
            event,
            groups=(row.group,),
            apps={name: apps[name] for name in (row.group.primary, row.group.backup) if name},
            serials=serials,
        )


class _Writer:
    """The one thread that owns the write connection; each job is one committed transaction."""

    def __init__(self, path: Path) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[Database], Any], Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.migrations_applied: list[int] = []
        opened: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(path, opened), name="fodns-store-writer", daemon=True
        )
        self._thread.start()
        opened.result()  # raises whatever kept the database from opening

    def run(self, job: Callable[[Database], T]) -> T:
        """Run `job` in a write transaction and return its result once committed."""
        future: Future[T] = Future()
        with self._lock:  # so no job is queued behind the stop sentinel
            if self._closed:
                raise FodnsError("the store is closed")
            self._jobs.put((job, future))
        return future.result()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        self._thread.join()

    def _run(self, path: Path, opened: Future[None]) -> None:
        try:
            db = _connect(path, writer=True)
            self.migrations_applied = migrate(db)
        except BaseException as exc:
            self._closed = True
            opened.set_exception(exc)
            return
        opened.set_result(None)
        try:
            while (item := self._jobs.get()) is not None:
                _commit(db, *item)
        finally:
            db.close()


def _commit(db: Database, job: Callable[[Database], Any], future: Future[Any]) -> None:
    """One job as BEGIN IMMEDIATE ... COMMIT; its caller gets the result or the error."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        db.execute("BEGIN IMMEDIATE")
        result = job(db)
        db.execute("COMMIT")
    except BaseException as exc:  # the caller is blocked on the future: it must hear of it
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        future.set_exception(exc)
    else:
        future.set_result(result)


def _connect(path: Path, *, writer: bool) -> Database:
    # isolation_level=None: the driver opens no transactions of its own; we say BEGIN.
    # Readers may be closed by close() from another thread, hence check_same_thread.
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=writer
    )
    db = Database(conn, execute_plugins=False)
    if writer:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise FodnsError(f"{path}: SQLite cannot use WAL here (journal mode {mode})")
        db.execute("PRAGMA foreign_keys = ON")
    else:
        db.execute("PRAGMA query_only = ON")
    # FULL: a commit returns only after the WAL is fsynced, so an acknowledged
    # change survives a crash of the process or the machine.
    db.execute("PRAGMA synchronous = FULL")
    return db


# Rows to values. Groups hold app ids; names come from a join, so a rename shows at once.

_APP_SELECT = "SELECT id, name, load_balancer, web_servers FROM apps"
_GROUP_SELECT = """SELECT g.id, g.zone, g.label, g.primary_app_id, g.backup_app_id,
    p.name AS primary_name, b.name AS backup_name, g.active, g.ttl
FROM groups AS g
LEFT JOIN apps AS p ON p.id = g.primary_app_id
LEFT JOIN apps AS b ON b.id = g.backup_app_id"""
_EVENT_SELECT = (
    "SELECT seq, at, actor, action, zone, group_label, app, before, after, reason FROM events"
)


@dataclass(frozen=True)
class _AppRow:
    id: int
    app: App


@dataclass(frozen=True)
class _GroupRow:
    id: int
    primary_id: int | None
    backup_id: int | None
    group: Group


def _select_apps(db: Database, where: str = "", params: Sequence[Any] = ()) -> list[_AppRow]:
    return [
        _AppRow(
            int(row["id"]),
            App(
                str(row["name"]),
                tuple(json.loads(row["load_balancer"])),
                tuple(json.loads(row["web_servers"])),
            ),
        )
        for row in db.query(f"{_APP_SELECT} {where} ORDER BY name", list(params))
    ]


def _find_app(db: Database, name: str, field: str | None = None) -> _AppRow:
    rows = _select_apps(db, "WHERE name = ?", [name])
    if not rows:
        raise NotFound(f"{field + ': ' if field else ''}no app named {name!r}", field=field)
    return rows[0]


def _select_groups(db: Database, where: str = "", params: Sequence[Any] = ()) -> list[_GroupRow]:
    return list(_group_rows(db, where, params))


def _group_rows(db: Database, where: str = "", params: Sequence[Any] = ()) -> Iterator[_GroupRow]:
    """The groups as the cursor yields them, so a caller need not hold them all at once."""
    # A plain cursor with tuple rows: start-up reads every group, and sqlite-utils'
    # dict per row was a third of that. `active` is guaranteed by a CHECK constraint.
    sql = f"{_GROUP_SELECT} {where} ORDER BY g.zone, g.label"
    rows = db.conn.execute(sql, list(params))
    return (
        _GroupRow(
            group_id,
            primary_id,
            backup_id,
            Group(zone, label, primary_name, backup_name, active, ttl),
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
        ) in rows
    )


def _find_group(db: Database, label: str, zone: str | None) -> _GroupRow:
    """The group with this label, in `zone` or (None) in the one zone that has it."""
    label = label.lower()
    if zone is None:
        rows = _select_groups(db, "WHERE g.label = ?", [label])
    else:
        rows = _select_groups(db, "WHERE g.zone = ? AND g.label = ?", [zone, label])
    if not rows:
        raise NotFound(f"no group {label!r}" + (f" in zone {zone}" if zone else ""))
    if len(rows) > 1:
        zones = ", ".join(row.group.zone for row in rows)
        raise Invalid("zone", f"group {label!r} exists in zones {zones}; name the zone")
    return rows[0]


def _groups_using(db: Database, app: _AppRow) -> list[_GroupRow]:
    return _select_groups(db, "WHERE g.primary_app_id = ? OR g.backup_app_id = ?", [app.id, app.id])


def _id(row: _AppRow | None) -> int | None:
    return None if row is None else row.id


def _active_app_id(row: _GroupRow) -> int | None:
    return row.primary_id if row.group.active == "primary" else row.backup_id


def _side_app_id(
    db: Database, side: Side, value: str | Unset | None, current: int | None
) -> int | None:
    if value is UNSET:
        return current
    return None if value is None else _find_app(db, value, side).id


def _apps_of(db: Database, groups: Iterable[Group]) -> dict[str, App]:
    """The apps these groups reference, by name: what their answers are made of."""
    names = sorted({name for g in groups for name in (g.primary, g.backup) if name is not None})
    if not names:
        return {}
    marks = ", ".join("?" * len(names))
    return {row.app.name: row.app for row in _select_apps(db, f"WHERE name IN ({marks})", names)}


def _label_used(db: Database, zone: str, label: str) -> bool:
    sql = "SELECT 1 FROM labels WHERE zone = ? AND label = ?"
    return db.execute(sql, [zone, label]).fetchone() is not None


def _claimable_label(db: Database, zone: str, label: str) -> str:
    if not _label_used(db, zone, label):
        return label
    if db.execute("SELECT 1 FROM groups WHERE zone = ? AND label = ?", [zone, label]).fetchone():
        raise Conflict(f"label {label!r} is taken by a group in zone {zone}", field="label")
    raise Conflict(
        f"label {label!r} in zone {zone} was used before and is never reused", field="label"
    )


def _answer(group: Group, apps: Mapping[str, App]) -> set[JournalRecord]:
    """The records a group answers with, its apps being `apps` (by name)."""
    active = group.active_app
    head = apps[active].web_head if active is not None and active in apps else ()
    return {(group.fqdn, group.ttl, kind, data) for kind, data in head_records(head)}


def _journal_records(text: str) -> tuple[JournalRecord, ...]:
    return tuple((str(o), int(t), str(k), str(d)) for o, t, k, d in json.loads(text))


def _store_serial(db: Database, zone: str, serial: int) -> None:
    db.execute(
        "INSERT INTO zone_serials VALUES (?, ?)"
        " ON CONFLICT (zone) DO UPDATE SET serial = excluded.serial",
        [zone, serial],
    )


def _trim_journal(db: Database, zone: str) -> None:
    """Keep the zone's newest JOURNAL_DEPTH entries."""
    db.execute(
        "DELETE FROM zone_journal WHERE zone = ? AND id <= (SELECT id FROM zone_journal"
        " WHERE zone = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        [zone, zone, JOURNAL_DEPTH],
    )


def _last_seq(db: Database) -> int:
    return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])


def _app_filter(db: Database, app: str, params: list[Any]) -> str:
    """SQL for "events about this app": by id across renames, or by name once it is gone."""
    rows = _select_apps(db, "WHERE name = ?", [app])
    if rows:
        params.append(rows[0].id)
        return "seq IN (SELECT seq FROM event_apps WHERE app_id = ?)"
    params.append(app)
    return "app = ? COLLATE NOCASE"


def _group_event(
    db: Database,
    actor: str,
    action: str,
    before: _GroupRow | None,
    after: _GroupRow | None,
    reason: str | None,
) -> Event:
    rows = [row for row in (before, after) if row is not None]
    group = rows[-1].group
    return _append_event(
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


def _append_event(
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
) -> Event:
    at = _now()
    cursor = db.execute(
        "INSERT INTO events (at, actor, action, zone, group_label, app, before, after, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [at, actor, action, zone, group, app, _dump_json(before), _dump_json(after), reason],
    )
    seq = int(cursor.lastrowid or 0)
    for app_id in sorted({i for i in app_ids if i is not None}):
        db.execute("INSERT INTO event_apps VALUES (?, ?)", [app_id, seq])
    return Event(seq, at, actor, action, zone, group, app, before, after, reason)


def _event(row: dict[str, Any]) -> Event:
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
    )


# Small checks and conversions.


def _zone_key(zone: str) -> str:
    """Zones are compared as DNS compares names: case-blind, with or without the root dot."""
    return zone.lower().rstrip(".")


def _check_change(actor: Any, reason: Any) -> None:
    _check_text(actor, "actor", required=True)
    _check_text(reason, "reason", required=False)


def _check_text(value: Any, field: str, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip() or len(value) > TEXT_MAX:
        raise Invalid(field, f"must be text of 1 to {TEXT_MAX} characters")


def _check_int(value: Any, field: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(field, f"must be an integer from {low} to {high}")


def _now() -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2024-11-22T06:19:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dump(values: tuple[str, ...]) -> str:
    return json.dumps(list(values))


def _dump_json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))
