"""The store's schema as numbered migrations, and the code that applies the missing ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from fodns.errors import FodnsError
from fodns.model import GroupKey, Touch
from fodns.rows import dump_json, utc_now

# A step of a migration: an SQL statement, or a function run on the same connection
# (for what SQL cannot say, such as replaying the event log).
Step = str | Callable[[Database], None]
EVENTS_APPEND_ONLY_UPDATE = """CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"""


def write_touched_on_old_events(db: Database) -> None:
    """Migration 7: what each event written before it touched (model.Touch), worked out
    as the event was written: the log is replayed from the start, keeping each group's
    apps by name, so an app event touches the groups that used the app at that moment,
    not those that use it now. Group events carry their apps in `before` and `after`;
    names follow renames as the log does. Deterministic: the same log gives the same
    result on every node, whatever its state now."""
    sides: dict[GroupKey, set[str]] = {}  # each group's apps, lower-cased, as the log goes
    members: dict[str, set[GroupKey]] = {}  # each app's groups, by lower-cased name
    updates: list[tuple[str | None, int]] = []
    rows = db.execute(
        "SELECT seq, zone, group_label, app, before, after FROM events ORDER BY seq"
    ).fetchall()
    for seq, zone, label, app, before_text, after_text in rows:
        before, after = _state(before_text), _state(after_text)
        app_groups: list[GroupKey] = []
        if label is not None and zone is not None:
            key = (zone, label)
            for name in sides.pop(key, set()):
                members.get(name, set()).discard(key)
            if after is not None:
                names = {
                    n.lower()
                    for n in (after.get("primary"), after.get("backup"))
                    if isinstance(n, str)
                }
                sides[key] = names
                for name in names:
                    members.setdefault(name, set()).add(key)
        elif app is not None:
            old = before.get("name") if before is not None else None
            new = after.get("name") if after is not None else None
            if isinstance(old, str):
                app_groups = sorted(members.get(old.lower(), ()))
                if isinstance(new, str) and new.lower() != old.lower():
                    moved = members.pop(old.lower(), set())
                    members.setdefault(new.lower(), set()).update(moved)
                    for key in moved:
                        sides[key] = {new.lower() if n == old.lower() else n for n in sides[key]}
        touch = Touch.of_event(
            zone=zone, group=label, app=app, before=before, after=after, app_groups=app_groups
        )
        updates.append((dump_json(touch.to_stored()), int(seq)))
    db.conn.executemany("UPDATE events SET touched = ? WHERE seq = ?", updates)


def _state(text: str | None) -> dict[str, Any] | None:
    value = None if text is None else json.loads(text)
    return value if isinstance(value, dict) else None


# Migration N is MIGRATIONS[N - 1]: a tuple of steps run in one transaction.
# Append new migrations; never edit one that has shipped, files out there ran it.
MIGRATIONS: tuple[tuple[Step, ...], ...] = (
    (
        # AUTOINCREMENT: an id is never handed out twice, so the event_apps rows
        # of a deleted app can never be mistaken for a newer app's history.
        # COLLATE NOCASE: "Web" and "web" as two apps would only confuse people.
        """CREATE TABLE apps (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            load_balancer TEXT NOT NULL DEFAULT '[]',
            web_servers TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        # Every label ever given out, per zone: the tombstones that keep a
        # deleted group's name from pointing at someone else's app later.
        """CREATE TABLE labels (
            zone TEXT NOT NULL,
            label TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (zone, label)
        ) WITHOUT ROWID""",
        """CREATE TRIGGER labels_are_forever BEFORE DELETE ON labels
        BEGIN SELECT RAISE(ABORT, 'a used label is never released'); END""",
        # Groups hold app ids, not names, so renaming an app keeps every group
        # pointing at it.
        """CREATE TABLE groups (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            zone TEXT NOT NULL,
            label TEXT NOT NULL,
            primary_app_id INTEGER REFERENCES apps (id) ON DELETE RESTRICT,
            backup_app_id INTEGER REFERENCES apps (id) ON DELETE RESTRICT,
            active TEXT NOT NULL CHECK (active IN ('primary', 'backup')),
            ttl INTEGER NOT NULL CHECK (ttl BETWEEN 5 AND 86400),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (zone, label),
            FOREIGN KEY (zone, label) REFERENCES labels (zone, label),
            CHECK (primary_app_id IS NULL OR primary_app_id IS NOT backup_app_id)
        )""",
        "CREATE INDEX groups_by_label ON groups (label)",
        "CREATE INDEX groups_by_primary ON groups (primary_app_id)",
        "CREATE INDEX groups_by_backup ON groups (backup_app_id)",
        # The append-only change log; seq is its cursor for everything downstream.
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            zone TEXT,
            group_label TEXT,
            app TEXT,
            before TEXT,
            after TEXT,
            reason TEXT
        )""",
        "CREATE INDEX events_by_group ON events (group_label, seq)",
        "CREATE INDEX events_by_app ON events (app COLLATE NOCASE, seq)",
        EVENTS_APPEND_ONLY_UPDATE,
        """CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        # Which apps (by id, stable across renames) each event touched, so the
        # history of an app includes the switches of the groups it is in.
        """CREATE TABLE event_apps (
            app_id INTEGER NOT NULL,
            seq INTEGER NOT NULL REFERENCES events (seq),
            PRIMARY KEY (app_id, seq)
        ) WITHOUT ROWID""",
        # RFC 1982 serials are unsigned 32-bit numbers.
        """CREATE TABLE zone_serials (
            zone TEXT PRIMARY KEY,
            serial INTEGER NOT NULL CHECK (serial BETWEEN 0 AND 4294967295)
        )""",
        "CREATE TABLE tokens (name TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
    ),
    (
        # The serial history that IXFR (RFC 1995) answers from: per zone, what each
        # serial change removed and added, as JSON lists of [owner, ttl, type, data].
        # Only the newest entries are kept (see journal.JOURNAL_DEPTH).
        """CREATE TABLE zone_journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            zone TEXT NOT NULL,
            serial_from INTEGER NOT NULL,
            serial_to INTEGER NOT NULL,
            removed TEXT NOT NULL,
            added TEXT NOT NULL
        )""",
        "CREATE INDEX zone_journal_by_zone ON zone_journal (zone, id)",
        # A digest of each zone file's records as last loaded: when it changes,
        # the serial moves and the journal starts again (the file's edits are
        # not in it, so older serials can only be answered with AXFR).
        "CREATE TABLE zone_files (zone TEXT PRIMARY KEY, digest TEXT NOT NULL)",
    ),
    (
        # The Route53 mirror's outbox cursor: per zone, the last event whose effect
        # Route53 has accepted (events after it are replayed until it does)...
        """CREATE TABLE route53_cursor (
            zone TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            synced_at TEXT NOT NULL
        )""",
        # ...and what fodns's records in the hosted zone are, as far as fodns knows:
        # DELETE must name a record set's exact TTL and values.
        """CREATE TABLE route53_records (
            zone TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            ttl INTEGER NOT NULL,
            record_values TEXT NOT NULL,
            PRIMARY KEY (zone, name, type)
        ) WITHOUT ROWID""",
    ),
    (
        # Labels a group may not take in a zone because someone else's records are
        # there: the zone file's names ('zone_file') and, with the Route53 mirror,
        # record sets of the hosted zone that fodns did not write ('route53'). Kept
        # in the store so that the rule holds in every process, whatever the mode.
        """CREATE TABLE reserved_labels (
            zone TEXT NOT NULL,
            label TEXT NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (zone, label, source)
        ) WITHOUT ROWID""",
        # How many names with records the zone file has (for GET /v1/zones).
        "ALTER TABLE zone_files ADD COLUMN names INTEGER NOT NULL DEFAULT 0",
        # One row, rewritten now and then: proof that the database still takes
        # writes (a full disk or a read-only mount shows here before a switch).
        "CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL)",
    ),
    (
        # Every record set the Route53 mirror has sent (the newest few per name and
        # type), written before the batch goes out: a record set found in the hosted
        # zone is fodns's only if fodns wrote it, even when Route53 took a batch whose
        # answer fodns never saw. Seeded with what the mirror believed it had written.
        """CREATE TABLE route53_written (
            zone TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            ttl INTEGER NOT NULL,
            record_values TEXT NOT NULL,
            UNIQUE (zone, name, type, ttl, record_values)
        )""",
        """INSERT OR IGNORE INTO route53_written (zone, name, type, ttl, record_values)
        SELECT zone, name, type, ttl, record_values FROM route53_records""",
    ),
    (
        # A page of apps says each app's failover status with one index seek per side
        # ("is it the active side of some group?"), instead of reading every group
        # (listing.FAILOVER_STATUS_SQL); these replace the indexes on the app id alone,
        # which they begin with. Pages of groups seek the UNIQUE (zone, label) index.
        "DROP INDEX groups_by_primary",
        "DROP INDEX groups_by_backup",
        "CREATE INDEX groups_by_primary_side ON groups (primary_app_id, active)",
        "CREATE INDEX groups_by_backup_side ON groups (backup_app_id, active)",
    ),
    (
        # What each event touched (model.Touch.to_stored), written with the event at
        # commit: for an app event, the groups that used the app at that moment. The
        # change feed reads it instead of asking the store, so applying an event is
        # the same on every node and at any later time. NULL only in a row written by
        # hand (read as touching nothing).
        "ALTER TABLE events ADD COLUMN touched TEXT",
        # Events already written get it by replaying the log (the one time the log
        # is rewritten, so the append-only trigger steps aside and comes back).
        "DROP TRIGGER events_are_append_only_update",
        write_touched_on_old_events,
        EVENTS_APPEND_ONLY_UPDATE,
    ),
    (
        # Health checks and automatic failover (fodns/checks.py, fodns/checker.py).
        # An app's check (checks.CheckSpec as JSON; NULL: none), and the addresses of
        # its web head that health found down and its answer leaves out (only with
        # answers_follow_health; written by health events, so every process and every
        # follower of the log answers the same).
        "ALTER TABLE apps ADD COLUMN health_check TEXT",
        "ALTER TABLE apps ADD COLUMN down TEXT NOT NULL DEFAULT '[]'",
        # Who may switch a group (people only, or health too), whether health may
        # switch it back, how long the primary must be up first, how many automatic
        # switches an hour, and a person's pin (model.Pin as JSON; NULL: none).
        "ALTER TABLE groups ADD COLUMN failover TEXT NOT NULL DEFAULT 'manual'"
        " CHECK (failover IN ('manual', 'auto'))",
        "ALTER TABLE groups ADD COLUMN failback TEXT NOT NULL DEFAULT 'manual'"
        " CHECK (failback IN ('manual', 'auto'))",
        "ALTER TABLE groups ADD COLUMN hold_down INTEGER NOT NULL DEFAULT 300",
        "ALTER TABLE groups ADD COLUMN max_auto_switches INTEGER NOT NULL DEFAULT 4",
        "ALTER TABLE groups ADD COLUMN pin TEXT",
        # The last switch health made ({at, from, to, reason} as JSON), shown with the
        # group; written with the switch's event, so it is the same on every node.
        "ALTER TABLE groups ADD COLUMN last_auto_switch TEXT",
        # The last known health of each address as each probe saw it, rewritten with
        # each health event: shown after a restart as "last known" (decisions start
        # from unknown). Keyed by app id, so a rename keeps it; gone with the check.
        """CREATE TABLE health_last (
            app_id INTEGER NOT NULL,
            address TEXT NOT NULL,
            probe TEXT NOT NULL,
            state TEXT NOT NULL,
            since TEXT NOT NULL,
            evidence TEXT NOT NULL,
            PRIMARY KEY (app_id, address, probe)
        ) WITHOUT ROWID""",
        # Finding the groups with a pin (to end those whose time is up) without
        # reading every group.
        "CREATE INDEX groups_pinned ON groups (id) WHERE pin IS NOT NULL",
        "CREATE INDEX groups_auto ON groups (id) WHERE failover = 'auto'",
    ),
    (
        # Named tokens with scopes (fodns/scopes.py, fodns/tokenrows.py), in the table
        # that already holds every token name used: a row without a scope is a name
        # only (the bootstrap admin token's). `groups` and `apps` are JSON lists of
        # name patterns (NULL: no limit); `hash` the SHA-256 of the secret, never the
        # secret. Times are ISO 8601 UTC; NULL: never expires, not revoked.
        "ALTER TABLE tokens ADD COLUMN scope TEXT"
        " CHECK (scope IS NULL OR scope IN ('read', 'switch', 'write', 'admin'))",
        "ALTER TABLE tokens ADD COLUMN groups TEXT",
        "ALTER TABLE tokens ADD COLUMN apps TEXT",
        "ALTER TABLE tokens ADD COLUMN hash TEXT CHECK (hash IS NULL OR length(hash) = 64)",
        "ALTER TABLE tokens ADD COLUMN created_by TEXT",
        "ALTER TABLE tokens ADD COLUMN expires_at TEXT",
        "ALTER TABLE tokens ADD COLUMN revoked_at TEXT",
        "ALTER TABLE tokens ADD COLUMN revoked_by TEXT",
        # A presented secret is looked up by its hash; two tokens never share one.
        "CREATE UNIQUE INDEX tokens_by_hash ON tokens (hash)",
        # A revoked token stays, so that its name is never reused (the event log's
        # actors stay unambiguous) and a request with it is refused saying so.
        """CREATE TRIGGER token_names_are_forever BEFORE DELETE ON tokens
        BEGIN SELECT RAISE(ABORT, 'a token name is never released'); END""",
    ),
    (
        # Webhooks (fodns/webhookstate.py, fodns/webhooks.py). The secret is kept as it
        # is: an HMAC needs it. events, groups, apps: JSON lists (NULL: every kind, no
        # filter). A webhook that gave up on an event keeps its seq (failed_seq) until a
        # person resumes it there.
        """CREATE TABLE webhooks (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            events TEXT,
            groups TEXT,
            apps TEXT,
            active INTEGER NOT NULL CHECK (active IN (0, 1)),
            description TEXT,
            failed_seq INTEGER,
            failed_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        ) WITHOUT ROWID""",
        # How far each webhook has followed the log: the last event delivered (or not
        # wanted), and the event being retried with its first attempt's time and the
        # attempts so far, so a restart neither resets the 24 hours nor the count. Written
        # in batches, so it may lag: a restart then delivers again (same Idempotency-Key).
        """CREATE TABLE webhook_cursors (
            webhook_id TEXT PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            pending_seq INTEGER,
            pending_since REAL,
            pending_attempts INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID""",
        # The most recent attempts of each webhook (the newest 200 are kept).
        """CREATE TABLE webhook_deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
            seq INTEGER,
            kind TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            at TEXT NOT NULL,
            status INTEGER,
            error TEXT,
            latency_ms REAL NOT NULL,
            result TEXT NOT NULL
        )""",
        "CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id)",
        # The Route53 mirror's own events (a zone failing, recovered; webhooks of kind
        # route53 get them): at start it reads each zone's last one without a scan.
        """CREATE INDEX events_of_the_route53_mirror ON events (zone, seq)
        WHERE action IN ('route53_failed', 'route53_recovered')""",
    ),
    (
        # ACME DNS-01 through fodns (fodns/acme.py, fodns/acmerows.py): acme-dns
        # registrations. The subdomain, the username and the zone and label it was made
        # under fix its name (subdomain.label.zone) for good; the password is kept only
        # as its SHA-256. allowfrom and names are JSON lists; group_zone and group_label
        # name the failover group it was made for (NULL: none); ttl is its TXT records'
        # as of the last update.
        """CREATE TABLE acme_registrations (
            subdomain TEXT PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL CHECK (length(password_hash) = 64),
            zone TEXT NOT NULL,
            label TEXT NOT NULL,
            ttl INTEGER NOT NULL CHECK (ttl BETWEEN 1 AND 86400),
            allowfrom TEXT NOT NULL DEFAULT '[]',
            group_zone TEXT,
            group_label TEXT,
            names TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX acme_registrations_by_group ON acme_registrations (group_label)",
        "CREATE INDEX acme_registrations_by_label ON acme_registrations (zone, label)",
        # Each registration's TXT values, the two newest kept (id orders them: two set
        # within the same millisecond still have an order).
        """CREATE TABLE acme_txt (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            subdomain TEXT NOT NULL REFERENCES acme_registrations (subdomain) ON DELETE CASCADE,
            value TEXT NOT NULL,
            set_at TEXT NOT NULL,
            UNIQUE (subdomain, value)
        )""",
        # The log stays append-only but for acme_updated events, which are deleted once
        # old (acmerows.trim_updated_events): a TXT value set every renewal of every
        # certificate is history nobody reads after a week.
        "DROP TRIGGER events_are_append_only_delete",
        """CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
        WHEN OLD.action <> 'acme_updated'
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        "CREATE INDEX events_acme_updated ON events (at) WHERE action = 'acme_updated'",
    ),
)
LATEST = len(MIGRATIONS)


def migrate(db: Database) -> list[int]:
    """Apply the migrations the file lacks, in one write transaction; return their numbers.

    BEGIN IMMEDIATE takes the write lock before reading the version, so two
    processes opening the same new file cannot both run migration 1.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        current = schema_version(db)
        if current > LATEST:
            raise FodnsError(
                f"the database has schema version {current}, newer than this fodns knows "
                f"({LATEST}); run a newer fodns or restore an older database"
            )
        applied = list(range(current + 1, LATEST + 1))
        now = utc_now()
        for version in applied:
            for step in MIGRATIONS[version - 1]:
                if isinstance(step, str):
                    db.execute(step)
                else:
                    step(db)
            db.execute("INSERT INTO schema_version VALUES (?, ?)", [version, now])
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    return applied


def schema_version(db: Database) -> int:
    """The highest migration applied to the file (0 for a new file)."""
    row = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])
