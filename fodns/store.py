"""The store: apps, groups, label tombstones and events in SQLite, and the rules of groups.

This module holds the store's reads and writes (the rules of groups); rows.py
turns table rows into values, writer.py is the writer thread, journal.py keeps
each zone's serial, zone file digest and IXFR journal within the same
transactions.

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
- A change moves a zone's SOA serial (journal.bump_serials) only for zones
  whose answers may have changed (a rename or a change to an inactive side's
  web head changes no answer).
- An event's `app` names the app of an app event and is None for group
  events; `events(app=...)` still finds the group events touching the app,
  through the `event_apps` table, across renames.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from sqlite_utils import Database

from fodns.acme import UPDATED_EVENTS_KEPT, AcmePlace, Credentials, Registration, valid_txt
from fodns.acmerows import (
    challenge_records,
    delete_registration,
    every_challenge,
    find_by_username,
    find_registration,
    insert_registration,
    label_in_use,
    read_registrations,
    records_of_names,
    set_txt,
    trim_updated_events,
    txt_values,
)
from fodns.checks import CheckSpec
from fodns.errors import Conflict, FodnsError, Forbidden, Invalid, NotFound
from fodns.feed import Touched, touched
from fodns.journal import (
    AnswerChange,
    JournalEntry,
    answer_records,
    bump_serials,
    challenge_journal_records,
    file_loaded,
    file_names,
    read_journal,
    served_serial,
)
from fodns.listing import AppPage, GroupPage, PageRequest, read_app_page, read_group_page
from fodns.logs import get_logger
from fodns.model import (
    ACME_ACTOR,
    DEFAULT_GROUP_TTL,
    DEFAULT_HOLD_DOWN,
    DEFAULT_MAX_AUTO_SWITCHES,
    EVENTS_PAGE_DEFAULT,
    EVENTS_PAGE_MAX,
    HEALTH_ACTOR,
    HOLD_DOWN_MAX,
    MAX_AUTO_SWITCHES_MAX,
    PIN_FOR_MAX,
    App,
    ChallengeRecords,
    Event,
    EventPage,
    Group,
    Mode,
    Pin,
    Side,
    check_app_name,
    check_group_label,
    check_mode,
    check_side,
    check_ttl,
    check_web_head,
    check_whole,
)
from fodns.patterns import check_patterns
from fodns.rows import (
    EVENT_SELECT,
    AppRow,
    GroupRow,
    active_app_id,
    active_group_rows,
    app_filter,
    append_event,
    apps_of,
    canonical_zone,
    check_change,
    check_int,
    check_text,
    claimable_label,
    dump_list,
    event_from_row,
    find_app,
    find_group,
    group_event,
    group_rows,
    id_of,
    label_used,
    newest_seq,
    rows_by_keys,
    rows_using,
    seconds_since,
    select_apps,
    select_groups,
    utc_now,
    utc_text,
)
from fodns.scopes import Actor, Grant, Scope, actor_name, check_app, check_group
from fodns.tokenrows import (
    StoredToken,
    find_token,
    insert_token,
    mark_revoked,
    name_taken,
    read_hashes,
    read_tokens,
)
from fodns.tokens import EXPIRES_IN_MAX, check_token_name
from fodns.writer import WriteHealth, Writer, connect

log = get_logger()
T = TypeVar("T")
P = ParamSpec("P")
FailoverStatus = Literal["online", "offline", "none"]
WebHead = Sequence[str] | str
LABEL_ATTEMPTS = 1000  # 10**9 labels: a thousand misses in a row means something is wrong
# Who holds a reserved label (see _refuse_reserved).
# Events read at once by touched_since: a follower far behind catches up in steps.
TOUCHED_EVENTS_MAX = 10_000
RESERVED_BY_ZONE_FILE = "zone_file"
RESERVED_BY_ROUTE53 = "route53"
RESERVED_BY_NESTED_ZONE = "nested_zone"
RESERVED_BY_ACME = "acme"


class Unset(enum.Enum):
    """The type of UNSET: "leave it as it is", because None already means "clear it"."""

    UNSET = "UNSET"


UNSET = Unset.UNSET


@dataclass(frozen=True)
class ZoneDefaults:
    """What the store needs to know of a configured zone."""

    serial: int  # the SOA serial in the zone file
    group_ttl: int = DEFAULT_GROUP_TTL  # TTL of a new group that names none


@dataclass(frozen=True)
class Change:
    """What one committed write did, for the DNS table and the API to follow."""

    event: Event | None  # None when the write changed nothing (idempotent switch)
    groups: tuple[Group, ...] = ()  # every group whose answer may have changed, in its new state
    deleted_groups: tuple[tuple[str, str], ...] = ()  # (zone, label) of groups that no longer exist
    apps: dict[str, App] = field(default_factory=dict)  # the apps those groups reference, by name
    serials: dict[str, int] = field(default_factory=dict)  # new SOA serial of each changed zone


@dataclass(frozen=True)
class CheckedApp:
    """An app with a check: its id (stable across renames), the app, its check."""

    id: int
    app: App
    check: CheckSpec


@dataclass(frozen=True)
class HealthLast:
    """The last known health of one address as one probe saw it (for display)."""

    address: str
    probe: str
    state: str  # "up", "down" or "unknown"
    since: str  # ISO 8601 UTC
    evidence: dict[str, Any]  # the check result that decided it (probing.CheckResult)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "probe": self.probe,
            "state": self.state,
            "since": self.since,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class StoredGroups:
    """Every group as of one committed state, for building a table: the apps by id,
    each zone's served serial, the seq of the last event, and each zone's groups
    as plain rows from the cursor (see `rows`). Valid only inside Store.read_stored_groups."""

    apps: dict[int, App]
    serials: dict[str, int]
    seq: int
    db: Database

    def rows(self, zone: str, origin_key: bytes) -> Iterator[tuple[bytes, int | None, int]]:
        """(name key, active app id or None, TTL) of each group of `zone`, as SQLite
        yields them: a million groups never exist as a million Group objects.
        `origin_key` is the zone's wire name (see rows.active_group_rows)."""
        return active_group_rows(self.db, zone, origin_key)

    def challenges(self) -> Iterator[ChallengeRecords]:
        """Every ACME challenge name with records, of every zone (the table skips those
        it does not serve), read in the same transaction as the groups."""
        return every_challenge(self.db)


class Store:
    """The database of apps, groups and events; safe to call from any number of threads."""

    def __init__(
        self,
        path: Path,
        zones: Mapping[str, ZoneDefaults],
        *,
        rng: random.Random | None = None,
        acme: AcmePlace | None = None,
    ) -> None:
        """Open (or create) the database file and apply the migrations it lacks.

        `rng` draws generated labels; the default is the operating system's
        random source. Tests pass a seeded one to replay a sequence. `acme` is where
        new ACME registrations' names go ([acme]; None: ACME is off here).
        """
        self.path = Path(path)
        self.acme = acme
        self._zones = {canonical_zone(name): defaults for name, defaults in zones.items()}
        for name, defaults in self._zones.items():
            check_ttl(defaults.group_ttl, f"zones.{name}.group_ttl")
        self._rng = rng or random.SystemRandom()
        self._local = threading.local()
        self._readers: list[Database] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        # A folder fodns creates is private (the admin token is kept here too) whatever
        # the umask; one that exists keeps the mode its operator gave it.
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot create the database folder: {exc.strerror}"
            raise FodnsError(f"{self.path.parent}: {problem}") from None
        self._writer = Writer(self.path)
        self.migrations_applied: list[int] = self._writer.migrations_applied
        self._committed: tuple[Callable[[int], None], ...] = ()
        self._writer.after_commit = self._published

    def submit(self, write: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run one of this store's writes (a bound method, e.g. `store.switch`) on the
        writer's thread, its checks included; its Change (or error) in the future.
        What an event loop awaits (asyncio.wrap_future) instead of handing the call
        to a thread pool that would only wait for the writer."""
        return self._writer.call(functools.partial(write, *args, **kwargs))

    def on_commit(self, callback: Callable[[int], None]) -> None:
        """Call `callback(seq)` after each write that appends an event, once it is
        committed: on the writer thread, in commit order, before the write's caller
        hears of it. This is how the change feed learns of a change at once; the log
        stays the truth (a follower always reads it from its own cursor), so a
        callback must be quick, must not block, and must never write to the store."""
        self._committed = (*self._committed, callback)

    def _published(self, result: object) -> None:
        if not isinstance(result, Change) or result.event is None:
            return  # not a change (a heartbeat, the mirror's state) or a change of nothing
        seq = result.event.seq
        for callback in self._committed:
            try:
                callback(seq)
            except Exception:  # one consumer's fault must not keep the others uninformed
                log.exception("store_commit_callback_failed", seq=seq)

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
        return self._zones[canonical_zone(zone)].group_ttl

    # Reads: each is one read transaction on this thread's own connection.

    def apps(self) -> list[App]:
        return self._read(lambda db: [row.app for row in select_apps(db)])

    def app(self, name: str) -> App:
        return self._read(lambda db: find_app(db, name).app)

    def groups(self, zone: str | None = None) -> list[Group]:
        where, params = _in_zone(zone)
        return self._read(lambda db: [row.group for row in group_rows(db, where, params)])

    def group(self, label: str, zone: str | None = None) -> Group:
        """The group with this label; with zone None, in whichever zone has it."""
        key = None if zone is None else canonical_zone(zone)
        return self._read(lambda db: find_group(db, label, key).group)

    def groups_using(self, app: str) -> list[Group]:
        return self._read(lambda db: [row.group for row in rows_using(db, find_app(db, app))])

    def failover_status(self, app: str) -> FailoverStatus:
        def read(db: Database) -> FailoverStatus:
            found = find_app(db, app)
            sides = ((r.primary_id, r.backup_id, r.group.active) for r in rows_using(db, found))
            return _failover_statuses(sides).get(found.id, "none")

        return self._read(read)

    def apps_with_status(self) -> list[tuple[App, FailoverStatus]]:
        """Every app with its failover status, in one read: the groups are read once
        (there may be 100,000 of them), not once per app."""

        def read(db: Database) -> list[tuple[App, FailoverStatus]]:
            sides = db.conn.execute("SELECT primary_app_id, backup_app_id, active FROM groups")
            statuses = _failover_statuses(sides)
            return [(row.app, statuses.get(row.id, "none")) for row in select_apps(db)]

        return self._read(read)

    def read_groups(
        self, consume: Callable[[Iterator[Group], dict[str, App]], T], zone: str | None = None
    ) -> T:
        """`consume(groups, apps)` within one read transaction: the groups (of one zone,
        or all) streamed from the database in order, and every app by name. A list of
        100,000 groups is never held whole; holding it made the garbage collector
        pause the process, DNS included, for about 100 ms at a time."""

        where, params = _in_zone(zone)

        def read(db: Database) -> T:
            apps = {row.app.name: row.app for row in select_apps(db)}
            return consume((row.group for row in group_rows(db, where, params)), apps)

        return self._read(read)

    def group_page(self, page: PageRequest, zone: str | None = None) -> GroupPage:
        """One page of the groups (of one zone, or all), found and paged as
        fodns/listing.py says, with the apps they name, in one read transaction."""
        return self._read(lambda db: read_group_page(db, page, zone))

    def app_page(self, page: PageRequest) -> AppPage:
        """One page of the apps, found and paged as fodns/listing.py says, each with its
        failover status, in one read transaction."""
        return self._read(lambda db: read_app_page(db, page))

    def group_counts(self) -> dict[str, int]:
        """How many groups each zone has, by zone name (zones with none are absent)."""
        sql = "SELECT zone, COUNT(*) FROM groups GROUP BY zone"
        return self._read(lambda db: {str(z): int(n) for z, n in db.conn.execute(sql)})

    def events(
        self,
        group: str | None = None,
        app: str | None = None,
        limit: int = EVENTS_PAGE_DEFAULT,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> list[Event]:
        """The log newest first, optionally about one group label or one app, paged by
        seq: older than `before_seq`, newer than `after_seq` (what a follower missed)."""
        return self.event_page(group, app, limit, before_seq, after_seq).events

    def event_page(
        self,
        group: str | None = None,
        app: str | None = None,
        limit: int = EVENTS_PAGE_DEFAULT,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> EventPage:
        """The page `events` reads and the newest seq of the whole log, in one read
        transaction: no event the page would hold is newer than its `last_seq`."""
        check_int(limit, "limit", 1, EVENTS_PAGE_MAX)
        for bound, name in ((before_seq, "before_seq"), (after_seq, "after_seq")):
            if bound is not None:
                check_int(bound, name, 0, 2**63 - 1)

        def read(db: Database) -> EventPage:
            where, params = ["1"], list[Any]()
            if group is not None:
                where.append("group_label = ?")
                params.append(group.lower())
            if app is not None:
                where.append(app_filter(db, app, params))
            if before_seq is not None:
                where.append("seq < ?")
                params.append(before_seq)
            if after_seq is not None:
                where.append("seq > ?")
                params.append(after_seq)
            sql = f"{EVENT_SELECT} WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
            events = [event_from_row(row) for row in db.query(sql, [*params, limit])]
            return EventPage(events, newest_seq(db))

        return self._read(read)

    def events_since(self, seq: int) -> list[Event]:
        """Every event after `seq`, oldest first: how followers catch up."""
        sql = f"{EVENT_SELECT} WHERE seq > ? ORDER BY seq"
        return self._read(lambda db: [event_from_row(row) for row in db.query(sql, [seq])])

    def touched_since(
        self, seq: int, limit: int = TOUCHED_EVENTS_MAX, upto: int | None = None
    ) -> Touched:
        """The events after `seq` (at most `limit`, none after `upto`, oldest first) and
        everything they touched, as it is now, in one read transaction.

        `upto` is for a consumer that must not run ahead of another (NOTIFY follows
        what every DNS process serves): seqs may have gaps (a rolled-back write
        leaves one), so it bounds by seq, never by a count.

        The log orders, the state answers: however many events are read at once,
        a follower that applies the result ends up as the store is, and never
        applies an older state over a newer one. What the events touched is
        feed.touched's to say, from what each event says it touched (for an app
        event, the groups that used the app when it was written).
        """

        last = 2**63 - 1 if upto is None else upto

        def read(db: Database) -> Touched:
            events = tuple(
                event_from_row(row)
                for row in db.query(
                    f"{EVENT_SELECT} WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    [seq, last, limit],
                )
            )
            if not events:
                return Touched(last_seq=seq)
            touch = touched(events)
            keys = sorted(touch.groups)
            groups = {
                (row.group.zone, row.group.label): row.group for row in rows_by_keys(db, keys)
            }
            deleted = [key for key in keys if key not in groups]
            zones = {zone for zone, _ in keys} | {zone for zone, _ in touch.names}
            return Touched(
                last_seq=events[-1].seq,
                events=events,
                groups=tuple(groups.values()),
                deleted_groups=tuple(deleted),
                apps=apps_of(db, groups.values()),
                serials={zone: self._served_serial(db, zone) for zone in sorted(zones)},
                challenges=records_of_names(db, sorted(touch.names)),
                more=len(events) == limit,
            )

        return self._read(read)

    def event_age(self, seq: int) -> float | None:
        """Seconds since event `seq` was committed, or None if there is no such event."""

        def read(db: Database) -> float | None:
            row = db.execute("SELECT at FROM events WHERE seq = ?", [seq]).fetchone()
            return None if row is None else seconds_since(str(row[0]))

        return self._read(read)

    def last_seq(self) -> int:
        return self._read(newest_seq)

    def serial(self, zone: str) -> int:
        """The SOA serial to serve for a zone: max(stored serial, zone file serial)."""
        key = canonical_zone(zone)
        if key not in self._zones:
            raise NotFound(f"zone {key} is not served here")
        return self._read(lambda db: self._served_serial(db, key))

    def journal(self, zone: str, serial_from: int, serial_to: int) -> list[JournalEntry] | None:
        """The zone's changes from `serial_from` to `serial_to`, oldest first; None when
        the journal does not hold that whole history (IXFR then falls back to AXFR)."""
        key = canonical_zone(zone)
        return self._read(lambda db: read_journal(db, key, serial_from, serial_to))

    def snapshot(self) -> tuple[list[Group], dict[str, App], dict[str, int], int]:
        """Groups, apps by name, serial per zone and the last event seq, all as of one moment."""

        def read(db: Database) -> tuple[list[Group], dict[str, App], dict[str, int], int]:
            groups = [row.group for row in select_groups(db)]
            apps = {row.app.name: row.app for row in select_apps(db)}
            serials = {zone: self._served_serial(db, zone) for zone in self._zones}
            return groups, apps, serials, newest_seq(db)

        return self._read(read)

    def read_stored_groups(self, use: Callable[[StoredGroups], T]) -> T:
        """Call `use` with every group as of one moment (see StoredGroups), inside one
        read transaction; what it returns. Start-up builds its table this way."""

        def read(db: Database) -> T:
            apps = {row.id: row.app for row in select_apps(db)}
            serials = {zone: self._served_serial(db, zone) for zone in self._zones}
            return use(StoredGroups(apps, serials, newest_seq(db), db))

        return self._read(read)

    # Writes: check the input here, then hand one transaction to the writer.

    def labels(self, zone: str) -> set[str]:
        """Every label a group of the zone has ever had (the names fodns owns there)."""
        key = canonical_zone(zone)
        rows = self._read(lambda db: db.execute("SELECT label FROM labels WHERE zone = ?", [key]))
        return {str(row[0]) for row in rows}

    def zone_loaded(
        self,
        zone: str,
        file_serial: int,
        digest: str,
        labels: Iterable[str] = (),
        names: int = 0,
    ) -> int:
        """A zone file was (re)loaded: the serial to serve with it.

        At least the file's serial; one more when its records differ from the last
        load (see journal.file_loaded). `labels` are the labels just below the apex
        that the file uses (no group may take one) and `names` how many names with
        records it has.
        """
        key = canonical_zone(zone)
        file_labels = {label.lower() for label in labels}

        def write(db: Database) -> int:
            floor = max(file_serial, self._file_serial(key))
            serial = file_loaded(db, key, floor, digest, names)
            _replace_reserved(db, key, RESERVED_BY_ZONE_FILE, file_labels)
            return serial

        return self._writer.run(write)

    def replace_reserved_labels(self, zone: str, source: str, labels: Iterable[str]) -> None:
        """The labels `source` ("route53": records of the hosted zone fodns did not
        write) holds in the zone now; no new group may take one."""
        key = canonical_zone(zone)
        wanted = {label.lower() for label in labels}
        self._writer.run(lambda db: _replace_reserved(db, key, source, wanted))

    def reserved_labels(self, zone: str) -> dict[str, str]:
        """Every label of the zone held by records that are not fodns's: label -> source."""
        key = canonical_zone(zone)
        # Ascending, so that the zone file (named last) wins where both hold a label.
        sql = "SELECT label, source FROM reserved_labels WHERE zone = ? ORDER BY source"
        return self._read(lambda db: {str(lb): str(src) for lb, src in db.execute(sql, [key])})

    def zone_summaries(self) -> list[dict[str, Any]]:
        """Every configured zone by name: its SOA serial, groups, names with records
        (the zone file's and the groups') and the TTL of new groups, at one moment."""

        def read(db: Database) -> list[dict[str, Any]]:
            groups = dict(db.execute("SELECT zone, COUNT(*) FROM groups GROUP BY zone").fetchall())
            names = file_names(db)
            return [
                {
                    "name": zone,
                    "serial": self._served_serial(db, zone),
                    "groups": int(groups.get(zone, 0)),
                    "names": int(names.get(zone, 0)) + int(groups.get(zone, 0)),
                    "group_ttl": defaults.group_ttl,
                }
                for zone, defaults in sorted(self._zones.items())
            ]

        return self._read(read)

    def heartbeat(self) -> None:
        """Write one row: raises if the database no longer takes writes (disk full,
        read-only, locked), which /healthz reports."""
        now = utc_now()
        self._writer.run(
            lambda db: db.execute("INSERT OR REPLACE INTO heartbeat VALUES (1, ?)", [now])
        )

    def durability(self) -> dict[str, object]:
        """How the writer's connection is set up now, as SQLite reports it on that very
        connection (another connection cannot see its `synchronous`): what an
        acknowledged write's survival rests on. Expected: journal_mode "wal",
        synchronous 2 (FULL: each COMMIT waits for the WAL to reach the disk)."""

        def read(db: Database) -> dict[str, object]:
            return {
                "journal_mode": db.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": db.execute("PRAGMA synchronous").fetchone()[0],
                "foreign_keys": db.execute("PRAGMA foreign_keys").fetchone()[0],
            }

        return self._writer.run(read)

    @property
    def write_health(self) -> WriteHealth:
        """The outcome of the most recent write (see writer.Writer)."""
        return self._writer.health

    def ensure_token_name(self, name: str) -> None:
        """Record the name of an API token (the actor of its changes), if it is new."""
        check_text(name, "name", required=True)
        now = utc_now()
        self._writer.run(
            lambda db: db.execute(
                "INSERT OR IGNORE INTO tokens (name, created_at) VALUES (?, ?)", [name, now]
            )
        )

    # Named tokens (fodns/tokenrows.py): a secret is never here, only its SHA-256.

    def create_token(
        self,
        actor: Actor,
        name: str,
        scope: str,
        digest: str,
        *,
        groups: Sequence[str] | None = None,
        apps: Sequence[str] | None = None,
        expires_in: int | None = None,
        reason: str | None = None,
    ) -> Change:
        """A named token (`token_created`, its JSON in `after`), its secret's SHA-256
        `digest` kept. A name is never reused, even after its token is revoked; an
        admin token cannot be limited (it could make itself tokens without limits)."""
        who = actor_name(actor)
        check_change(who, reason)
        checked_name = check_token_name(name)
        if scope not in ("read", "switch", "write", "admin"):
            raise Invalid("scope", "must be read, switch, write or admin")
        granted = Scope.named(scope)
        group_limit = check_patterns("groups", groups)
        app_limit = check_patterns("apps", apps)
        if granted is Scope.ADMIN and (group_limit is not None or app_limit is not None):
            limit = "groups" if group_limit is not None else "apps"
            raise Invalid(
                limit, "an admin token cannot be limited: it could make tokens without limits"
            )
        if expires_in is not None:
            check_whole(expires_in, "expires_in", 1, EXPIRES_IN_MAX)
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise Invalid("digest", "must be a SHA-256 in lower-case hex")

        def write(db: Database) -> Change:
            if name_taken(db, checked_name):
                raise Conflict(
                    f"a token named {checked_name!r} exists or existed: token names are "
                    "never reused",
                    field="name",
                )
            now = utc_now()
            token = StoredToken(
                name=checked_name,
                scope=granted,
                groups=group_limit,
                apps=app_limit,
                created_at=now,
                created_by=who,
                expires_at=None if expires_in is None else _later(now, expires_in),
            )
            insert_token(db, token, digest)
            event = append_event(db, who, "token_created", after=token.to_json(now), reason=reason)
            return Change(event)

        return self._writer.run(write)

    def revoke_token(self, actor: Actor, name: str, reason: str | None = None) -> Change:
        """Revoke a named token (`token_revoked`); its name stays taken. One revoked
        already: nothing written (no event)."""
        who = actor_name(actor)
        check_change(who, reason)

        def write(db: Database) -> Change:
            old = find_token(db, name)
            if old is None:
                raise NotFound(f"no token named {name!r}")
            if old.revoked_at is not None:
                return Change(None)
            now = utc_now()
            mark_revoked(db, old.name, now, who)
            new = replace(old, revoked_at=now, revoked_by=who)
            event = append_event(
                db,
                who,
                "token_revoked",
                before=old.to_json(now),
                after=new.to_json(now),
                reason=reason,
            )
            return Change(event)

        return self._writer.run(write)

    def token(self, name: str) -> StoredToken:
        """A named token (revoked ones too); NotFound otherwise."""

        def read(db: Database) -> StoredToken:
            found = find_token(db, name)
            if found is None:
                raise NotFound(f"no token named {name!r}")
            return found

        return self._read(read)

    def tokens(self, revoked: bool = False) -> list[StoredToken]:
        """Every named token by name; the revoked ones too when `revoked`."""
        return self._read(lambda db: read_tokens(db, revoked))

    def token_hashes(self) -> list[tuple[str, StoredToken]]:
        """Every named token with its secret's SHA-256: what the API looks tokens up by."""
        return self._read(read_hashes)

    # ACME registrations (fodns/acme.py, fodns/acmerows.py): a password is never here,
    # only its SHA-256.

    def check_acme_place(self) -> None:
        """Start-up: the [acme] label may not be a failover group's name in its zone
        (the group's answer would stand where the challenge names hang)."""
        place = self.acme
        if place is None:
            return
        sql = "SELECT 1 FROM groups WHERE zone = ? AND label = ?"
        taken = self._read(lambda db: db.execute(sql, [place.zone, place.label]).fetchone())
        if taken is not None:
            raise FodnsError(
                f"[acme] label: {place.label}.{place.zone} is a failover group's name; "
                "choose another label"
            )

    def acme_register(
        self,
        actor: Actor,
        credentials: Credentials,
        *,
        allowfrom: Sequence[str] = (),
        group: str | None = None,
        names: Sequence[str] = (),
        reason: str | None = None,
    ) -> Change:
        """A new registration (`acme_registered`, its JSON in `after`) under [acme]'s zone
        and label, for the group labelled `group` (its limits apply to a token's grant)
        or for none. It has no records until its first update: nothing to serve."""
        place = self.acme
        if place is None:
            raise NotFound(ACME_OFF)
        who = actor_name(actor)
        check_change(who, reason)

        def write(db: Database) -> Change:
            group_zone = group_label = None
            if group is not None:
                found = _acme_group(db, group)
                check_group(actor, found.label, [found.primary, found.backup])
                group_zone, group_label = found.zone, found.label
            else:
                _refuse_limited(actor, "a registration for no group")
            registration = Registration(
                subdomain=credentials.subdomain,
                username=credentials.username,
                zone=place.zone,
                label=place.label,
                allowfrom=tuple(allowfrom),
                group=group_label,
                group_zone=group_zone,
                names=tuple(names),
                created_at=utc_now(),
                created_by=who,
            )
            insert_registration(db, registration, credentials.password_hash, place.ttl)
            event = append_event(
                db,
                who,
                "acme_registered",
                zone=place.zone,
                after=registration.to_json(),
                reason=reason,
            )
            return Change(event)

        return self._writer.run(write)

    def acme_delete(self, actor: Actor, subdomain: str, reason: str | None = None) -> Change:
        """Delete a registration (`acme_deleted`): its credentials stop working and its
        records go, moving the zone's serial when it had any."""
        who = actor_name(actor)
        check_change(who, reason)

        def write(db: Database) -> Change:
            registration = _acme_registration(db, subdomain)
            if registration.group is not None:
                apps: list[str | None] = []
                with contextlib.suppress(NotFound):
                    found = find_group(db, registration.group, registration.group_zone)
                    apps = [found.group.primary, found.group.backup]
                check_group(actor, registration.group, apps)
            else:
                _refuse_limited(actor, "a registration for no group")
            before = challenge_records(db, registration)
            delete_registration(db, registration.subdomain)
            event = append_event(
                db,
                who,
                "acme_deleted",
                zone=registration.zone,
                before=registration.to_json(),
                reason=reason,
                names=[(before.zone, before.fqdn)] if before.values else [],
            )
            serials = self._challenge_serials(db, before, replace(before, values=()))
            return Change(event, serials=serials)

        return self._writer.run(write)

    def acme_set_txt(
        self,
        subdomain: str,
        value: str,
        *,
        served_upto: int | None = None,
        keep_events: float = UPDATED_EVENTS_KEPT,
    ) -> Change:
        """The acme-dns update (actor `acme`): `value` becomes the newest of the name's
        two values (`acme_updated`, before and after naming them), at [acme]'s TTL,
        moving the zone's serial. A value it holds already only becomes the newer (no
        event). acme_updated events older than `keep_events` seconds and at most
        `served_upto` (the seq every DNS process serves; None: none) are deleted."""
        if not valid_txt(value):
            raise Invalid("txt", "must be 43 characters of base64url")

        def write(db: Database) -> Change:
            registration = _acme_registration(db, subdomain)
            before = challenge_records(db, registration)
            ttl = before.ttl if self.acme is None else self.acme.ttl
            now = utc_now()
            if served_upto is not None:
                trim_updated_events(db, _later(now, -int(keep_events)), served_upto)
            after = replace(before, ttl=ttl, values=set_txt(db, subdomain, value, ttl, now))
            if (set(after.values), after.ttl) == (set(before.values), before.ttl):
                return Change(None)
            shown = {"subdomain": registration.subdomain, "fulldomain": registration.fulldomain}
            event = append_event(
                db,
                ACME_ACTOR,
                "acme_updated",
                zone=registration.zone,
                before={**shown, "txt": list(before.values)},
                after={**shown, "txt": list(after.values)},
                names=[(after.zone, after.fqdn)],
            )
            return Change(event, serials=self._challenge_serials(db, before, after))

        return self._writer.run(write)

    def acme_registration(self, subdomain: str) -> Registration:
        """A registration by its subdomain; NotFound otherwise."""
        return self._read(lambda db: _acme_registration(db, subdomain))

    def acme_registrations(self, group: str | None = None) -> list[Registration]:
        """Every registration (of the groups labelled `group`), oldest first."""
        return self._read(lambda db: read_registrations(db, group))

    def acme_credentials(self, username: str) -> tuple[Registration, str] | None:
        """The registration of `username` and its password's SHA-256, or None."""
        return self._read(lambda db: find_by_username(db, username))

    def acme_txt(self, subdomain: str) -> tuple[str, ...]:
        """A registration's TXT values, oldest first (none for no such registration)."""
        return self._read(lambda db: txt_values(db, subdomain))

    def _challenge_serials(
        self, db: Database, before: ChallengeRecords, after: ChallengeRecords
    ) -> dict[str, int]:
        """Move the zone's serial and journal the records a challenge lost and gained
        (nothing for a zone no longer served: its records are served nowhere)."""
        if before.zone not in self._zones or before == after:
            return {}
        change = AnswerChange(challenge_journal_records(before), challenge_journal_records(after))
        return self._bump_serials(db, {before.zone: change})

    def create_app(
        self,
        actor: Actor,
        name: str,
        load_balancer: WebHead | None = (),
        web_servers: WebHead | None = (),
        reason: str | None = None,
    ) -> Change:
        who = actor_name(actor)
        check_change(who, reason)
        app = App(
            check_app_name(name),
            check_web_head(load_balancer, "load_balancer"),
            check_web_head(web_servers, "web_servers"),
        )

        def write(db: Database) -> Change:
            check_app(actor, [app.name], list)  # a new app: no group uses it
            if select_apps(db, "WHERE name = ?", [app.name]):
                raise Conflict(f"an app named {app.name!r} already exists", field="name")
            now = utc_now()
            cursor = db.execute(
                "INSERT INTO apps (name, load_balancer, web_servers, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [app.name, dump_list(app.load_balancer), dump_list(app.web_servers), now, now],
            )
            event = append_event(
                db,
                who,
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
        actor: Actor,
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
        who = actor_name(actor)
        check_change(who, reason)
        renamed = None if new_name is None else check_app_name(new_name, "name")
        balancer = None if load_balancer is None else check_web_head(load_balancer, "load_balancer")
        servers = None if web_servers is None else check_web_head(web_servers, "web_servers")

        def write(db: Database) -> Change:
            old = find_app(db, name)
            new = old.app.name if renamed is None else renamed
            check_app(actor, [old.app.name, new], lambda: _labels_using(db, old))
            app = App(
                renamed if renamed is not None else old.app.name,
                balancer if balancer is not None else old.app.load_balancer,
                servers if servers is not None else old.app.web_servers,
            )
            # Addresses health found down stay left out only while still in the web head.
            app = replace(app, down=tuple(a for a in old.app.down if a in app.web_head))
            if app == old.app:
                return Change(None, apps={app.name: app})
            if select_apps(db, "WHERE name = ? AND id != ?", [app.name, old.id]):
                raise Conflict(f"an app named {app.name!r} already exists", field="name")
            db.execute(
                "UPDATE apps SET name = ?, load_balancer = ?, web_servers = ?, down = ?,"
                " updated_at = ? WHERE id = ?",
                [
                    app.name,
                    dump_list(app.load_balancer),
                    dump_list(app.web_servers),
                    dump_list(app.down),
                    utc_now(),
                    old.id,
                ],
            )
            using = rows_using(db, old)  # read again: each group now names the new name
            event = append_event(
                db,
                who,
                "app_updated",
                app=app.name,
                before=old.app.to_json(),
                after=app.to_json(),
                reason=reason,
                app_ids=[old.id],
                app_groups=using,
            )
            return self._app_change(db, event, old, app, using)

        return self._writer.run(write)

    def delete_app(self, actor: Actor, name: str, reason: str | None = None) -> Change:
        """Delete an app that no group references (Conflict otherwise)."""
        who = actor_name(actor)
        check_change(who, reason)

        def write(db: Database) -> Change:
            old = find_app(db, name)
            using = rows_using(db, old)
            check_app(actor, [old.app.name], lambda: [row.group.label for row in using])
            if using:
                fqdns = ", ".join(row.group.fqdn for row in using)
                raise Conflict(f"app {old.app.name!r} is in group(s) {fqdns}; take it out first")
            db.execute("DELETE FROM apps WHERE id = ?", [old.id])
            db.execute("DELETE FROM health_last WHERE app_id = ?", [old.id])
            event = append_event(
                db,
                who,
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
        actor: Actor,
        zone: str | None = None,
        label: str | None = None,
        primary: str | None = None,
        backup: str | None = None,
        ttl: int | None = None,
        reason: str | None = None,
        *,
        failover: Mode = "manual",
        failback: Mode = "manual",
        hold_down: int = DEFAULT_HOLD_DOWN,
        max_auto_switches: int = DEFAULT_MAX_AUTO_SWITCHES,
    ) -> Change:
        """A new group, primary side active; label None draws an unused NNN-NNN-NNN."""
        who = actor_name(actor)
        check_change(who, reason)
        settings = _check_auto_settings(failover, failback, hold_down, max_auto_switches)
        zone_name = self._configured_zone(zone)
        wanted = None if label is None else check_group_label(label)
        group_ttl = self._zones[zone_name].group_ttl if ttl is None else check_ttl(ttl)
        primary_name = None if primary is None else check_app_name(primary, "primary")
        backup_name = None if backup is None else check_app_name(backup, "backup")

        def write(db: Database) -> Change:
            primary_row = None if primary_name is None else find_app(db, primary_name, "primary")
            backup_row = None if backup_name is None else find_app(db, backup_name, "backup")
            apps = [None if row is None else row.app.name for row in (primary_row, backup_row)]
            check_group(actor, wanted, apps)
            if primary_row and backup_row and primary_row.id == backup_row.id:
                raise Conflict("the primary and the backup must be different apps", field="backup")
            if wanted is None:
                new_label = self._new_label(db, zone_name)
            else:
                self._refuse_reserved(db, zone_name, wanted)
                new_label = claimable_label(db, zone_name, wanted)
            now = utc_now()
            db.execute("INSERT INTO labels VALUES (?, ?, ?)", [zone_name, new_label, now])
            db.execute(
                "INSERT INTO groups (zone, label, primary_app_id, backup_app_id, active, ttl,"
                " created_at, updated_at, failover, failback, hold_down, max_auto_switches)"
                " VALUES (?, ?, ?, ?, 'primary', ?, ?, ?, ?, ?, ?, ?)",
                [
                    zone_name,
                    new_label,
                    id_of(primary_row),
                    id_of(backup_row),
                    group_ttl,
                    now,
                    now,
                    *settings,
                ],
            )
            new = find_group(db, new_label, zone_name)
            event = group_event(db, who, "group_created", None, new, reason)
            return self._group_change(db, event, new, old=None)

        return self._writer.run(write)

    def update_group(
        self,
        actor: Actor,
        label: str,
        zone: str | None = None,
        *,
        primary: str | Unset | None = UNSET,
        backup: str | Unset | None = UNSET,
        ttl: int | None = None,
        reason: str | None = None,
        failover: Mode | None = None,
        failback: Mode | None = None,
        hold_down: int | None = None,
        max_auto_switches: int | None = None,
    ) -> Change:
        """Set a group's primary, backup, TTL or automatic failover settings (UNSET or
        None: leave as is; None for a side: clear that side).

        Clearing the active side is allowed: the group stays on that side and
        answers NODATA until it gets an app or is switched. Making a group manual
        ends its pin: with only people switching it, there is nothing to pin against.
        """
        who = actor_name(actor)
        check_change(who, reason)
        wanted = {
            "failover": None if failover is None else check_mode(failover, "failover"),
            "failback": None if failback is None else check_mode(failback, "failback"),
            "hold_down": None
            if hold_down is None
            else check_whole(hold_down, "hold_down", 0, HOLD_DOWN_MAX),
            "max_auto_switches": None
            if max_auto_switches is None
            else check_whole(max_auto_switches, "max_auto_switches", 1, MAX_AUTO_SWITCHES_MAX),
        }
        zone_key = None if zone is None else canonical_zone(zone)
        new_ttl = None if ttl is None else check_ttl(ttl)
        for side, value in (("primary", primary), ("backup", backup)):
            if value is not None and value is not UNSET:
                check_app_name(value, side)

        def write(db: Database) -> Change:
            old = find_group(db, label, zone_key)
            ids = {
                "primary": _side_app_id(db, "primary", primary, old.primary_id),
                "backup": _side_app_id(db, "backup", backup, old.backup_id),
            }
            # The group's apps before the change and after it (a side given by name).
            given = [value for value in (primary, backup) if isinstance(value, str)]
            check_group(actor, old.group.label, [old.group.primary, old.group.backup, *given])
            if ids["primary"] is not None and ids["primary"] == ids["backup"]:
                named = "backup" if backup is not UNSET else "primary"
                raise Conflict("the primary and the backup must be different apps", field=named)
            group_ttl = old.group.ttl if new_ttl is None else new_ttl
            settings = {
                name: getattr(old.group, name) if value is None else value
                for name, value in wanted.items()
            }
            pin = old.group.pin if settings["failover"] == "auto" else None
            if (ids["primary"], ids["backup"], group_ttl, settings, pin) == (
                old.primary_id,
                old.backup_id,
                old.group.ttl,
                {name: getattr(old.group, name) for name in wanted},
                old.group.pin,
            ):
                return self._group_change(db, None, old)
            db.execute(
                "UPDATE groups SET primary_app_id = ?, backup_app_id = ?, ttl = ?, updated_at = ?,"
                " failover = ?, failback = ?, hold_down = ?, max_auto_switches = ?, pin = ?"
                " WHERE id = ?",
                [
                    ids["primary"],
                    ids["backup"],
                    group_ttl,
                    utc_now(),
                    settings["failover"],
                    settings["failback"],
                    settings["hold_down"],
                    settings["max_auto_switches"],
                    _stored_pin(pin),
                    old.id,
                ],
            )
            new = find_group(db, old.group.label, old.group.zone)
            event = group_event(db, who, "group_updated", old, new, reason)
            return self._group_change(db, event, new, old=old)

        return self._writer.run(write)

    def switch(
        self,
        actor: Actor,
        label: str,
        to: str,
        zone: str | None = None,
        reason: str | None = None,
        pin_for: int | Unset | None = UNSET,
    ) -> Change:
        """Make one side of a group active. To the side already active: no event, no
        serial, except that a person's switch of an automatic group always pins it
        (model.Pin; `pin_for` seconds, None or UNSET: until unpinned), so health never
        undoes what a person chose; the pin alone is then a `group_pinned` event."""
        who = actor_name(actor)
        check_change(who, reason)
        side = check_side(to)
        zone_key = None if zone is None else canonical_zone(zone)
        if pin_for is not UNSET and pin_for is not None:
            check_whole(pin_for, "pin_for", 1, PIN_FOR_MAX)

        def write(db: Database) -> Change:
            old = find_group(db, label, zone_key)
            check_group(actor, old.group.label, [old.group.primary, old.group.backup])
            if old.group.app_on(side) is None and old.group.active != side:
                raise Conflict(f"the {side} side of group {old.group.fqdn} has no app", field="to")
            pin = None
            if old.group.failover == "auto":
                at = utc_now()
                until = None if pin_for is UNSET or pin_for is None else _later(at, pin_for)
                pin = Pin(side, reason, who, at, until)
            elif pin_for is not UNSET:
                raise Conflict(
                    f"group {old.group.fqdn} is switched by people only (failover is manual):"
                    " there is no health to pin it against",
                    field="pin_for",
                )
            if old.group.active == side and pin is None:
                return self._group_change(db, None, old)
            db.execute(
                "UPDATE groups SET active = ?, pin = ?, updated_at = ? WHERE id = ?",
                [side, _stored_pin(pin), utc_now(), old.id],
            )
            new = find_group(db, old.group.label, old.group.zone)
            action = "group_switched" if old.group.active != side else "group_pinned"
            event = group_event(db, who, action, old, new, reason)
            return self._group_change(db, event, new, old=old)

        return self._writer.run(write)

    def unpin(
        self, actor: Actor, label: str, zone: str | None = None, reason: str | None = None
    ) -> Change:
        """Hand an automatic group back to health (`group_unpinned`); no pin: no event."""
        who = actor_name(actor)
        check_change(who, reason)
        zone_key = None if zone is None else canonical_zone(zone)

        def write(db: Database) -> Change:
            old = find_group(db, label, zone_key)
            check_group(actor, old.group.label, [old.group.primary, old.group.backup])
            if old.group.pin is None:
                return self._group_change(db, None, old)
            return self._unpinned(db, who, old, reason)

        return self._writer.run(write)

    def end_pins(self, now: str) -> list[Change]:
        """Unpin every group whose pin ended at `now` or before (actor `health`, the
        reason saying whose pin ended when): health takes such a group back on time.
        One write per group, so each is published like any other change."""
        sql = "SELECT g.id FROM groups AS g WHERE g.pin IS NOT NULL"
        pinned = self._read(lambda db: [int(row[0]) for row in db.execute(sql)])

        def write(group_id: int) -> Change | None:
            def end(db: Database) -> Change | None:
                rows = select_groups(db, "WHERE g.id = ?", [group_id])
                pin = rows[0].group.pin if rows else None
                if pin is None or pin.until is None or pin.until > now:
                    return None
                said = f"the pin {pin.actor} set at {pin.at} ended at {pin.until}"
                return self._unpinned(db, HEALTH_ACTOR, rows[0], said)

            return self._writer.run(end)

        return [change for group_id in pinned if (change := write(group_id)) is not None]

    def _unpinned(self, db: Database, actor: str, old: GroupRow, reason: str | None) -> Change:
        db.execute("UPDATE groups SET pin = NULL, updated_at = ? WHERE id = ?", [utc_now(), old.id])
        new = find_group(db, old.group.label, old.group.zone)
        event = group_event(db, actor, "group_unpinned", old, new, reason)
        return self._group_change(db, event, new, old=old)

    def auto_switch(
        self, label: str, zone: str, to: Side, reason: str, *, expected_active: Side
    ) -> Change | None:
        """Health's switch of an automatic group (actor `health`): made only if, at
        commit, the group is still automatic, unpinned, on `expected_active` and has an
        app on `to`; None (nothing written) when a person or a change got there first."""

        def write(db: Database) -> Change | None:
            try:
                old = find_group(db, label, zone)
            except NotFound:
                return None
            group = old.group
            if (
                group.failover != "auto"
                or group.pin is not None
                or group.active != expected_active
                or group.app_on(to) is None
                or to == expected_active
            ):
                return None
            at = utc_now()
            last = {"at": at, "from": expected_active, "to": to, "reason": reason}
            db.execute(
                "UPDATE groups SET active = ?, last_auto_switch = ?, updated_at = ? WHERE id = ?",
                [to, json.dumps(last), at, old.id],
            )
            new = find_group(db, group.label, group.zone)
            event = group_event(db, HEALTH_ACTOR, "group_switched", old, new, reason)
            return self._group_change(db, event, new, old=old)

        return self._writer.run(write)

    # Health: checks, what they found, and the answers that follow it.

    def set_check(
        self, actor: Actor, name: str, check: dict[str, Any] | None, reason: str | None = None
    ) -> Change:
        """Set an app's check (its JSON, defaults filled in: `check_set`) or, with None,
        remove it (`check_deleted`; the addresses it found down are answered again)."""
        who = actor_name(actor)
        check_change(who, reason)
        spec = None if check is None else CheckSpec.from_json(check)

        def write(db: Database) -> Change:
            old = find_app(db, name)
            check_app(actor, [old.app.name], lambda: _labels_using(db, old))
            stored = db.execute("SELECT health_check FROM apps WHERE id = ?", [old.id]).fetchone()
            before = None if stored[0] is None else CheckSpec.from_json(json.loads(stored[0]))
            if before == spec:
                return Change(None, apps={old.app.name: old.app})
            app = replace(old.app, down=()) if spec is None else old.app
            db.execute(
                "UPDATE apps SET health_check = ?, down = ?, updated_at = ? WHERE id = ?",
                [
                    None if spec is None else json.dumps(spec.to_json()),
                    dump_list(app.down),
                    utc_now(),
                    old.id,
                ],
            )
            if spec is None:
                db.execute("DELETE FROM health_last WHERE app_id = ?", [old.id])
            return self._app_answer_change(
                db,
                who,
                "check_deleted" if spec is None else "check_set",
                old,
                app,
                before=None if before is None else before.to_json(),
                after=None if spec is None else spec.to_json(),
                reason=reason,
            )

        return self._writer.run(write)

    def check(self, name: str) -> CheckSpec | None:
        """An app's check, or None; NotFound for no such app."""

        def read(db: Database) -> CheckSpec | None:
            row = find_app(db, name)
            stored = db.execute("SELECT health_check FROM apps WHERE id = ?", [row.id]).fetchone()
            return None if stored[0] is None else CheckSpec.from_json(json.loads(stored[0]))

        return self._read(read)

    def checked_apps(self) -> list[CheckedApp]:
        """Every app with a check, with its id (stable across renames)."""

        def read(db: Database) -> list[CheckedApp]:
            sql = "SELECT id, health_check FROM apps WHERE health_check IS NOT NULL"
            specs = {int(row[0]): str(row[1]) for row in db.execute(sql)}
            checked = []
            for row in select_apps(db, "WHERE health_check IS NOT NULL"):
                try:
                    spec = CheckSpec.from_json(json.loads(specs[row.id]))
                except (FodnsError, ValueError):
                    # One bad stored check (edited by hand) never stops the others.
                    log.error("check_unreadable", app=row.app.name)
                    continue
                checked.append(CheckedApp(row.id, row.app, spec))
            return checked

        return self._read(read)

    def record_health(
        self,
        app_id: int,
        *,
        before: dict[str, Any],
        after: dict[str, Any],
        down: tuple[str, ...] | None,
        last: Sequence[HealthLast],
        reason: str,
    ) -> Change | None:
        """A health transition of one app (`health_changed`, actor `health`): what it
        was and is (`before`, `after`: its state, and each address that moved, with
        the evidence), the last known state of each address moved, and, for an app
        whose answers follow health, the addresses its answer leaves out from now on
        (`down`; None: unchanged). None when the app is gone."""

        def write(db: Database) -> Change | None:
            rows = select_apps(db, "WHERE id = ?", [app_id])
            if not rows:
                return None
            old = rows[0]
            app = old.app if down is None else replace(old.app, down=down)
            if app.down != old.app.down:
                db.execute(
                    "UPDATE apps SET down = ?, updated_at = ? WHERE id = ?",
                    [dump_list(app.down), utc_now(), old.id],
                )
            for entry in last:
                db.execute(
                    "INSERT OR REPLACE INTO health_last VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        old.id,
                        entry.address,
                        entry.probe,
                        entry.state,
                        entry.since,
                        json.dumps(entry.evidence),
                    ],
                )
            return self._app_answer_change(
                db, HEALTH_ACTOR, "health_changed", old, app, before, after, reason
            )

        return self._writer.run(write)

    def health_last(self) -> list[tuple[str, HealthLast]]:
        """The last known state of each checked address, by app name (for display)."""

        def read(db: Database) -> list[tuple[str, HealthLast]]:
            sql = (
                "SELECT a.name, h.address, h.probe, h.state, h.since, h.evidence"
                " FROM health_last AS h JOIN apps AS a ON a.id = h.app_id"
                " ORDER BY a.name, h.address, h.probe"
            )
            return [
                (
                    str(name),
                    HealthLast(str(address), str(probe), str(state), str(since), _json(evidence)),
                )
                for name, address, probe, state, since, evidence in db.execute(sql)
            ]

        return self._read(read)

    def auto_groups(self) -> list[Group]:
        """Every group health may switch (failover "auto")."""
        return self._read(
            lambda db: [row.group for row in select_groups(db, "WHERE g.failover = 'auto'")]
        )

    def auto_switch_times(self, zone: str, label: str, since: str) -> list[str]:
        """When health switched this group since `since` (ISO 8601 UTC), oldest first."""
        sql = (
            "SELECT at FROM events WHERE group_label = ? AND zone = ? AND action = 'group_switched'"
            " AND actor = ? AND at >= ? ORDER BY seq"
        )
        return self._read(
            lambda db: [str(row[0]) for row in db.execute(sql, [label, zone, HEALTH_ACTOR, since])]
        )

    def _app_answer_change(
        self,
        db: Database,
        actor: str,
        action: str,
        old: AppRow,
        app: App,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        reason: str | None,
    ) -> Change:
        """An app event that may change its answer (its `down` addresses): it touches the
        groups using the app when the answer changed, and moves their zones' serials
        where the app is the active side."""
        using = rows_using(db, old) if app.answered_head != old.app.answered_head else []
        event = append_event(
            db,
            actor,
            action,
            app=app.name,
            before=before,
            after=after,
            reason=reason,
            app_ids=[old.id],
            app_groups=using,
        )
        return self._app_change(db, event, old, app, using)

    def _app_change(
        self, db: Database, event: Event, old: AppRow, app: App, using: Sequence[GroupRow]
    ) -> Change:
        """An app write's Change: every group using the app (`using`) with its new
        answer, and the serials moved where the app is the active side and what it
        answers changed."""
        answers: dict[str, AnswerChange] = {}
        if app.answered_head != old.app.answered_head:
            for row in using:
                if active_app_id(row) == old.id:
                    change = answers.setdefault(row.group.zone, AnswerChange())
                    active = row.group.active_app or ""
                    change.before |= answer_records(row.group, {active: old.app})
                    change.after |= answer_records(row.group, {active: app})
        groups = tuple(row.group for row in using)
        return Change(
            event,
            groups=groups,
            apps={**apps_of(db, groups), app.name: app},
            serials=self._bump_serials(db, answers),
        )

    def delete_group(
        self, actor: Actor, label: str, zone: str | None = None, reason: str | None = None
    ) -> Change:
        """Delete a group that points at no app (Conflict otherwise); its label stays taken."""
        who = actor_name(actor)
        check_change(who, reason)
        zone_key = None if zone is None else canonical_zone(zone)

        def write(db: Database) -> Change:
            old = find_group(db, label, zone_key)
            group = old.group
            check_group(actor, group.label, [group.primary, group.backup])
            sides = [
                f"{side} {app}"
                for side, app in (("primary", group.primary), ("backup", group.backup))
                if app is not None
            ]
            if len(sides) == 1:
                raise Conflict(
                    f"group {group.fqdn} still points at an app ({sides[0]}); clear that side first"
                )
            if sides:
                raise Conflict(
                    f"group {group.fqdn} still points at apps ({', '.join(sides)}); "
                    "clear both sides first"
                )
            db.execute("DELETE FROM groups WHERE id = ?", [old.id])
            event = group_event(db, who, "group_deleted", old, None, reason)
            # Deletable groups point at no app, so they answered nothing: the
            # journal entry removes no records, only moves the serial.
            return Change(
                event,
                deleted_groups=((group.zone, group.label),),
                serials=self._bump_serials(db, {group.zone: AnswerChange()}),
            )

        return self._writer.run(write)

    # Helpers that need the configured zones or the label source.

    def read(self, read: Callable[[Database], T]) -> T:
        """Run `read` in one read transaction: the hook through which a part of fodns
        that keeps tables of its own (the Route53 mirror, fodns/mirrorstate.py) reads
        them, without the store knowing what they hold."""
        return self._read(read)

    def write(self, write: Callable[[Database], T]) -> T:
        """Run `write` as one committed transaction on the store's writer (see
        writer.Writer): the write hook of the same parts. Such a write appends no
        event: it is a consumer's own state, never a change to what DNS answers."""
        return self._writer.run(write)

    def write_event(self, write: Callable[[Database], Event | None]) -> Change:
        """Run `write` as one committed transaction that appends the event it returns
        (None: it changed nothing), published like every change (see on_commit): how a
        part of fodns with tables of its own logs a change of them (a webhook created,
        the Route53 mirror failing), without the store knowing what they hold."""
        return self._writer.run(lambda db: Change(write(db)))

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
                db = connect(self.path, writer=False)
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
        key = canonical_zone(zone)
        if key not in self._zones:
            raise NotFound(f"zone {key} is not served here")
        return key

    def _new_label(self, db: Database, zone: str) -> str:
        """Nine random digits as NNN-NNN-NNN, never a label the zone has used before
        nor one that someone else's records hold."""
        for _ in range(LABEL_ATTEMPTS):
            number = self._rng.randrange(10**9)
            label = f"{number // 10**6:03d}-{number // 1000 % 1000:03d}-{number % 1000:03d}"
            if not label_used(db, zone, label) and self._reserved_by(db, zone, label) is None:
                return label
        raise FodnsError(f"no unused label found in zone {zone} after {LABEL_ATTEMPTS} draws")

    def _refuse_reserved(self, db: Database, zone: str, label: str) -> None:
        """A group may not take a name that other records hold: they would vanish
        behind it (a zone file's name, an apex NS's glue, another served zone, a
        record in the Route53 hosted zone that fodns did not write)."""
        source = self._reserved_by(db, zone, label)
        if source is None:
            return
        fqdn = f"{label}.{zone}"
        if source == RESERVED_BY_ZONE_FILE:
            why = f"{fqdn} is a name in the zone file"
        elif source == RESERVED_BY_NESTED_ZONE:
            why = f"{fqdn} is at or above another zone fodns serves"
        elif source == RESERVED_BY_ACME:
            why = f"{fqdn} holds the ACME challenges ([acme] label)"
        else:
            why = f"{fqdn} exists in the {source} hosted zone as a record fodns did not write"
        raise Conflict(f"{why}; choose another label", field="label")

    def _reserved_by(self, db: Database, zone: str, label: str) -> str | None:
        """Who holds `label` in `zone` besides fodns's groups, or None."""
        fqdn = f"{label}.{zone}"
        if any(other == fqdn or other.endswith("." + fqdn) for other in self._zones):
            return RESERVED_BY_NESTED_ZONE
        if (self.acme is not None and (zone, label) == (self.acme.zone, self.acme.label)) or (
            label_in_use(db, zone, label)
        ):
            return RESERVED_BY_ACME
        row = db.execute(
            "SELECT source FROM reserved_labels WHERE zone = ? AND label = ?"
            " ORDER BY source DESC LIMIT 1",
            [zone, label],
        ).fetchone()
        return None if row is None else str(row[0])

    def _file_serial(self, zone: str) -> int:
        """The SOA serial in a configured zone's file (0 for a zone not configured)."""
        defaults = self._zones.get(zone)
        return 0 if defaults is None else defaults.serial

    def _served_serial(self, db: Database, zone: str) -> int:
        return served_serial(db, zone, self._file_serial(zone))

    def _bump_serials(self, db: Database, answers: Mapping[str, AnswerChange]) -> dict[str, int]:
        file_serials = {zone: self._file_serial(zone) for zone in answers}
        return bump_serials(db, answers, file_serials)

    def _group_change(
        self,
        db: Database,
        event: Event | None,
        row: GroupRow,
        old: GroupRow | Unset | None = UNSET,
    ) -> Change:
        """A group write's Change; `old` (None for a new group, UNSET when nothing was
        written) is its state before, to move the serial when the answer changed."""
        apps = apps_of(db, [row.group] if old is UNSET or old is None else [row.group, old.group])
        serials: dict[str, int] = {}
        if old is not UNSET:
            before = set() if old is None else answer_records(old.group, apps)
            after = answer_records(row.group, apps)
            if old is None or before != after:
                serials = self._bump_serials(db, {row.group.zone: AnswerChange(before, after)})
        return Change(
            event,
            groups=(row.group,),
            apps={name: apps[name] for name in (row.group.primary, row.group.backup) if name},
            serials=serials,
        )


ACME_OFF = "ACME is not enabled here ([acme] listen and zone in the config)"


def _acme_registration(db: Database, subdomain: str) -> Registration:
    found = find_registration(db, subdomain.lower())
    if found is None:
        raise NotFound(f"no ACME registration {subdomain!r}")
    return found


def _acme_group(db: Database, label: str) -> Group:
    """The group an ACME registration is made for, named by its label alone."""
    try:
        return find_group(db, label, None).group
    except NotFound:
        raise NotFound(f"group: no group {label!r}", field="group") from None
    except Invalid as exc:  # the label is in several zones
        raise Invalid("group", str(exc).removeprefix("zone: ")) from None


def _refuse_limited(actor: Actor, what: str) -> None:
    """A token limited to some groups or apps cannot change what belongs to none."""
    if isinstance(actor, Grant) and actor.limited:
        raise Forbidden(
            f"the token {actor.name!r} is limited to some groups or apps, and {what} is "
            "within no limit",
            scope="groups" if actor.groups is not None else "apps",
        )


def _check_auto_settings(
    failover: Any, failback: Any, hold_down: Any, max_auto_switches: Any
) -> tuple[Mode, Mode, int, int]:
    return (
        check_mode(failover, "failover"),
        check_mode(failback, "failback"),
        check_whole(hold_down, "hold_down", 0, HOLD_DOWN_MAX),
        check_whole(max_auto_switches, "max_auto_switches", 1, MAX_AUTO_SWITCHES_MAX),
    )


def _labels_using(db: Database, app: AppRow) -> list[str]:
    """The labels of the groups using `app` (for a token limited to some groups)."""
    return [row.group.label for row in rows_using(db, app)]


def _json(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _stored_pin(pin: Pin | None) -> str | None:
    return None if pin is None else json.dumps(pin.to_json(), separators=(",", ":"))


def _later(at: str, seconds: int) -> str:
    """The ISO 8601 UTC time `seconds` after `at` (as utc_now writes it)."""
    return utc_text(datetime.fromisoformat(at) + timedelta(seconds=seconds))


def _replace_reserved(db: Database, zone: str, source: str, labels: set[str]) -> None:
    """Make `source`'s reserved labels in `zone` exactly `labels` (writes only the difference)."""
    sql = "SELECT label FROM reserved_labels WHERE zone = ? AND source = ?"
    present = {str(row[0]) for row in db.execute(sql, [zone, source])}
    for label in sorted(present - labels):
        db.execute(
            "DELETE FROM reserved_labels WHERE zone = ? AND label = ? AND source = ?",
            [zone, label, source],
        )
    for label in sorted(labels - present):
        db.execute("INSERT INTO reserved_labels VALUES (?, ?, ?)", [zone, label, source])


def _in_zone(zone: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (for group_rows) of the groups in `zone`, or of all (None)."""
    return ("", []) if zone is None else ("WHERE g.zone = ?", [canonical_zone(zone)])


def _side_app_id(
    db: Database, side: Side, value: str | Unset | None, current: int | None
) -> int | None:
    if value is UNSET:
        return current
    return None if value is None else find_app(db, value, side).id


def _failover_statuses(
    sides: Iterable[tuple[int | None, int | None, str]],
) -> dict[int, FailoverStatus]:
    """From groups' (primary app id, backup app id, active side): "online" for an app
    active in one of them, "offline" for one in some but active in none. Apps in none
    are absent (their status is "none")."""
    statuses: dict[int, FailoverStatus] = {}
    for primary_id, backup_id, active in sides:
        live = primary_id if active == "primary" else backup_id
        for app_id in (primary_id, backup_id):
            if app_id is not None and statuses.get(app_id) != "online":
                statuses[app_id] = "online" if app_id == live else "offline"
    return statuses
