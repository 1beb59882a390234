"""The Route53 mirror's own tables: what it believes the hosted zone holds for fodns,
how far it has mirrored the log, and the record sets it remembers sending.

The store keeps the database and its transactions; these tables are the mirror's
state, not fodns's data (no event is written for them, DNS never reads them), so
they are read and written here, through the store's `read` and `write` hooks,
and the store knows nothing of Route53. The tables themselves are created by the
store's migrations, like every table of the one database file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from sqlite_utils import Database

from fodns.rows import TEXT_MAX, append_event, canonical_zone, utc_now

T = TypeVar("T")
# A Route53 record set fodns owns: (name with the final dot, type) -> (TTL, values).
MirrorKey = tuple[str, str]
MirrorValue = tuple[int, tuple[str, ...]]
# The mirror's own events in the log: a zone it cannot mirror any more, and again.
FAILED, RECOVERED = "route53_failed", "route53_recovered"


class Transactions(Protocol):
    """The store's hooks (store.Store.read / write / write_event)."""

    def read(self, read: Callable[[Database], T]) -> T: ...

    def write(self, write: Callable[[Database], T]) -> T: ...

    def write_event(self, write: Callable[[Database], Any]) -> Any: ...


class MirrorState:
    """The mirror's tables in the store's database, one zone at a time."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    def cursor_and_records(self, zone: str) -> tuple[int | None, dict[MirrorKey, MirrorValue]]:
        """The mirror's cursor for the zone (None: never synced) and the record sets
        it believes Route53 holds for fodns, read together."""
        key = canonical_zone(zone)

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

        return self._store.read(read)

    def save(
        self,
        zone: str,
        records: Mapping[MirrorKey, MirrorValue | None],
        seq: int | None = None,
        *,
        replace: bool = False,
    ) -> None:
        """Record what Route53 accepted: record sets set (None: deleted), all of them
        when `replace`; and, with `seq`, that every event up to it is mirrored. One
        transaction, so the cursor never runs ahead of the records it stands for."""
        key = canonical_zone(zone)

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
                    "INSERT OR REPLACE INTO route53_cursor VALUES (?, ?, ?)", [key, seq, utc_now()]
                )

        self._store.write(write)

    def remember_sent(
        self, zone: str, records: Mapping[MirrorKey, MirrorValue], keep: int = 16
    ) -> None:
        """Record sets the mirror is about to send to Route53 (see `sent`); only the
        newest `keep` of each name and type are kept."""
        key = canonical_zone(zone)

        def write(db: Database) -> None:
            for (name, rtype), (ttl, values) in records.items():
                # REPLACE gives a value sent again a new rowid: rowid order is age.
                db.execute(
                    "INSERT OR REPLACE INTO route53_written"
                    " (zone, name, type, ttl, record_values) VALUES (?, ?, ?, ?, ?)",
                    [key, name, rtype, ttl, json.dumps(sorted(values))],
                )
                db.execute(
                    "DELETE FROM route53_written WHERE zone = ? AND name = ? AND type = ?"
                    " AND rowid NOT IN (SELECT rowid FROM route53_written"
                    " WHERE zone = ? AND name = ? AND type = ? ORDER BY rowid DESC LIMIT ?)",
                    [key, name, rtype, key, name, rtype, keep],
                )

        self._store.write(write)

    def sent(self, zone: str) -> set[tuple[str, str, int, tuple[str, ...]]]:
        """(name, type, TTL, sorted values) of every record set the mirror remembers
        sending to the zone's hosted zone."""
        key = canonical_zone(zone)
        sql = "SELECT name, type, ttl, record_values FROM route53_written WHERE zone = ?"

        def read(db: Database) -> set[tuple[str, str, int, tuple[str, ...]]]:
            return {
                (str(name), str(rtype), int(ttl), tuple(sorted(json.loads(values))))
                for name, rtype, ttl, values in db.execute(sql, [key])
            }

        return self._store.read(read)

    def failing(self, zones: list[str]) -> set[str]:
        """The zones whose last word in the log is that the mirror fails them: a restart
        neither says it again nor forgets to say they recovered."""
        sql = (
            "SELECT action FROM events WHERE zone = ? AND action IN (?, ?)"
            " ORDER BY seq DESC LIMIT 1"
        )

        def read(db: Database) -> set[str]:
            found = set()
            for zone in zones:
                row = db.execute(sql, [canonical_zone(zone), FAILED, RECOVERED]).fetchone()
                if row is not None and row[0] == FAILED:
                    found.add(zone)
            return found

        return self._store.read(read)

    def record(
        self,
        actor: str,
        zone: str,
        action: str,
        before: dict[str, Any],
        after: dict[str, Any],
        reason: str,
    ) -> None:
        """Say in the log that the mirror began failing a zone (FAILED) or mirrors it
        again (RECOVERED): an event of its own, which webhooks of kind route53 get."""
        key = canonical_zone(zone)
        self._store.write_event(
            lambda db: append_event(
                db, actor, action, zone=key, before=before, after=after, reason=reason[:TEXT_MAX]
            )
        )
