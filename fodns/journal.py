"""Each zone's history: its SOA serial (RFC 1982), the digest of its zone file, and the
journal of differences between serials that IXFR answers from (RFC 1995).

The three tables this module reads and writes (zone_serials, zone_files and
zone_journal) are the store's, created by its migrations; every function here
takes the connection of the store transaction it is part of and opens none, so
a group's change and the serial it moves commit together.

The serial served for a zone is max(stored serial, zone file serial). A change
that may alter a zone's answers moves it on by one and journals what the
answers lost and gained; a zone file whose records differ from the last load
(by digest) moves it on too and starts the journal afresh, as the file's edits
are not in it. The serial never wraps: past 2**32 - 1 a change is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import dns.serial
from sqlite_utils import Database

from fodns.errors import FodnsError
from fodns.model import App, ChallengeRecords, Group
from fodns.records import group_answer

SERIAL_MAX = 2**32 - 1  # RFC 1982: serials are unsigned 32-bit numbers
# Serial changes kept per zone for IXFR (Knot's journal keeps 20 by default):
# a secondary further behind than this is sent the whole zone.
JOURNAL_DEPTH = 1000

# One record as the journal keeps it: (owner without the final dot, TTL, type, data).
JournalRecord = tuple[str, int, str, str]


@dataclass(frozen=True)
class JournalEntry:
    """What one serial change of a zone removed and added (an IXFR difference sequence)."""

    serial_from: int
    serial_to: int
    removed: tuple[JournalRecord, ...]
    added: tuple[JournalRecord, ...]


@dataclass
class AnswerChange:
    """A zone's group answers before and after one write, for its journal entry."""

    before: set[JournalRecord] = field(default_factory=set)
    after: set[JournalRecord] = field(default_factory=set)


def answer_records(group: Group, apps: Mapping[str, App]) -> set[JournalRecord]:
    """The records a group answers with, its apps being `apps` (by name), as the
    journal keeps them."""
    answer = group_answer(group, apps)
    return {(answer.fqdn, answer.ttl, kind, data) for kind, data in answer.records}


def challenge_journal_records(records: ChallengeRecords) -> set[JournalRecord]:
    """An ACME challenge name's TXT records (one string each), as the journal keeps them."""
    return {(records.fqdn, records.ttl, "TXT", f'"{value}"') for value in records.values}


# ---- serials -----------------------------------------------------------------------


def is_current(client_serial: int, serial: int) -> bool:
    """Whether a secondary at `client_serial` is as new as `serial` or newer, in serial
    arithmetic (RFC 1982 §3.2: 2**31 + 1 above a serial is below it)."""
    return bool(dns.serial.Serial(client_serial) >= dns.serial.Serial(serial))


def served_serial(db: Database, zone: str, file_serial: int) -> int:
    """The SOA serial to serve for a zone: max(stored serial, its zone file's serial)."""
    row = db.execute("SELECT serial FROM zone_serials WHERE zone = ?", [zone]).fetchone()
    stored = 0 if row is None else int(row[0])
    return max(stored, file_serial)


def next_serial(zone: str, serial: int) -> int:
    """The serial after `serial`; refused rather than wrapped past SERIAL_MAX, where
    a secondary would take the smaller number for an older zone."""
    if serial + 1 > SERIAL_MAX:
        raise FodnsError(f"the SOA serial of zone {zone} would pass {SERIAL_MAX}")
    return serial + 1


def bump_serials(
    db: Database, answers: Mapping[str, AnswerChange], file_serials: Mapping[str, int]
) -> dict[str, int]:
    """Move each zone's serial past both its stored value and its zone file's
    (`file_serials`, by zone), and journal what its answers lost and gained (RFC 1995
    §4's difference sequence). Returns each zone's new serial."""
    serials: dict[str, int] = {}
    for zone in sorted(answers):
        serial_from = served_serial(db, zone, file_serials.get(zone, 0))
        serial = next_serial(zone, serial_from)
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


# ---- zone files ----------------------------------------------------------------------


def file_loaded(db: Database, zone: str, file_serial: int, digest: str, names: int) -> int:
    """A zone file was (re)loaded: store its digest and name count, and return the
    serial to serve with it.

    At least the file's serial. When the file's records differ from the last
    load (`digest` is zone.file_digest of the file), the serial moves on by one,
    so secondaries fetch the edit even if the operator did not raise the file's
    serial past fodns's, and the journal starts afresh.
    """
    row = db.execute("SELECT digest FROM zone_files WHERE zone = ?", [zone]).fetchone()
    serial = served_serial(db, zone, file_serial)
    if row is not None and row[0] != digest:
        serial = next_serial(zone, serial)
        db.execute("DELETE FROM zone_journal WHERE zone = ?", [zone])
    db.execute(
        "INSERT INTO zone_files (zone, digest, names) VALUES (?, ?, ?)"
        " ON CONFLICT (zone) DO UPDATE SET digest = excluded.digest,"
        " names = excluded.names",
        [zone, digest, names],
    )
    _store_serial(db, zone, serial)
    return serial


def file_names(db: Database) -> dict[str, int]:
    """How many names with records each zone's file had when last loaded, by zone."""
    rows = db.execute("SELECT zone, names FROM zone_files")
    return {str(zone): int(names) for zone, names in rows}


# ---- the journal -----------------------------------------------------------------------


def read_journal(
    db: Database, zone: str, serial_from: int, serial_to: int
) -> list[JournalEntry] | None:
    """The zone's changes from `serial_from` to `serial_to`, oldest first; None when
    the journal does not hold that whole history (IXFR then falls back to AXFR)."""
    start = db.execute(
        "SELECT MIN(id) FROM zone_journal WHERE zone = ? AND serial_from = ?",
        [zone, serial_from],
    ).fetchone()[0]
    if start is None:
        return None
    rows = db.conn.execute(
        "SELECT serial_from, serial_to, removed, added FROM zone_journal"
        " WHERE zone = ? AND id >= ? ORDER BY id",
        [zone, start],
    )
    entries: list[JournalEntry] = []
    serial = serial_from
    for row_from, row_to, removed, added in rows:
        if row_from != serial:
            return None  # a gap: the zone file's serial jumped past the journal
        entries.append(
            JournalEntry(row_from, row_to, _journal_records(removed), _journal_records(added))
        )
        serial = row_to
        if serial == serial_to:
            return entries
    return None


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
