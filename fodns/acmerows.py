"""ACME registrations and their TXT values as the store keeps them: rows to values, and the
SQL on them (migration 11's tables).

Every function takes the connection of the store transaction it is part of and opens
none, as fodns/tokenrows.py does for tokens. A password is never here, only its
SHA-256 (fodns/acme.py says why a plain hash).

acme_updated events are deleted once older than a week (`trim_updated_events`, run by
each update): the TXT values are the state, the events only their history, and no
follower of the log acts on an old one. Each DNS table and NOTIFY read a challenge's
records as they are when the log says they moved, never from the event, and they
are bounded besides by the served frontier (no event they have not applied is
deleted); webhooks send no acme_updated (fodns/webhookmodel.py), the Route53 mirror
mirrors no challenge. A client following /v1/events sees a gap in the seqs, as a
write rolled back leaves one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlite_utils import Database

from fodns.acme import VALUES_KEPT, Registration
from fodns.model import ChallengeRecords

_COLUMNS = (
    "r.subdomain, r.username, r.zone, r.label, r.allowfrom, r.group_label, r.group_zone,"
    " r.names, r.created_at, r.created_by,"
    " (SELECT MAX(t.set_at) FROM acme_txt AS t WHERE t.subdomain = r.subdomain)"
)
_SELECT = f"SELECT {_COLUMNS} FROM acme_registrations AS r"


def _registration(row: tuple[Any, ...]) -> Registration:
    (
        subdomain,
        username,
        zone,
        label,
        allowfrom,
        group_label,
        group_zone,
        names,
        created_at,
        created_by,
        updated_at,
    ) = row
    return Registration(
        subdomain=str(subdomain),
        username=str(username),
        zone=str(zone),
        label=str(label),
        allowfrom=_strings(allowfrom),
        group=group_label,
        group_zone=group_zone,
        names=_strings(names),
        created_at=str(created_at),
        created_by=str(created_by),
        updated_at=updated_at,
    )


def _strings(text: Any) -> tuple[str, ...]:
    """A JSON list of strings kept in a column; anything else (edited by hand) is none."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return ()
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def insert_registration(
    db: Database, registration: Registration, password_hash: str, ttl: int
) -> None:
    db.execute(
        "INSERT INTO acme_registrations (subdomain, username, password_hash, zone, label, ttl,"
        " allowfrom, group_zone, group_label, names, created_at, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            registration.subdomain,
            registration.username,
            password_hash,
            registration.zone,
            registration.label,
            ttl,
            json.dumps(list(registration.allowfrom)),
            registration.group_zone,
            registration.group,
            json.dumps(list(registration.names)),
            registration.created_at,
            registration.created_by,
        ],
    )


def find_registration(db: Database, subdomain: str) -> Registration | None:
    row = db.execute(f"{_SELECT} WHERE r.subdomain = ?", [subdomain]).fetchone()
    return None if row is None else _registration(row)


def find_by_username(db: Database, username: str) -> tuple[Registration, str] | None:
    """The registration of `username` and its password's hash, or None."""
    row = db.execute(
        f"SELECT {_COLUMNS}, r.password_hash FROM acme_registrations AS r WHERE r.username = ?",
        [username],
    ).fetchone()
    return None if row is None else (_registration(row[:-1]), str(row[-1]))


def read_registrations(db: Database, group: str | None = None) -> list[Registration]:
    """Every registration (of the groups labelled `group`), oldest first."""
    where, params = ("", []) if group is None else (" WHERE r.group_label = ?", [group.lower()])
    sql = f"{_SELECT}{where} ORDER BY r.created_at, r.subdomain"
    return [_registration(row) for row in db.execute(sql, params)]


def delete_registration(db: Database, subdomain: str) -> None:
    db.execute("DELETE FROM acme_txt WHERE subdomain = ?", [subdomain])
    db.execute("DELETE FROM acme_registrations WHERE subdomain = ?", [subdomain])


def label_in_use(db: Database, zone: str, label: str) -> bool:
    """Whether registrations live under `label` of `zone` (made under an [acme] label
    that may have changed since): no group may take it, their names would vanish."""
    sql = "SELECT 1 FROM acme_registrations WHERE zone = ? AND label = ? LIMIT 1"
    return db.execute(sql, [zone, label]).fetchone() is not None


def txt_ttl(db: Database, subdomain: str) -> int:
    row = db.execute("SELECT ttl FROM acme_registrations WHERE subdomain = ?", [subdomain])
    found = row.fetchone()
    return 0 if found is None else int(found[0])


def txt_values(db: Database, subdomain: str) -> tuple[str, ...]:
    """The registration's TXT values, oldest first."""
    sql = "SELECT value FROM acme_txt WHERE subdomain = ? ORDER BY id"
    return tuple(str(row[0]) for row in db.execute(sql, [subdomain]))


def set_txt(db: Database, subdomain: str, value: str, ttl: int, now: str) -> tuple[str, ...]:
    """Make `value` the registration's newest value (a value it holds moves up), keep
    the VALUES_KEPT newest, and set its records' TTL; the values after, oldest first."""
    db.execute("DELETE FROM acme_txt WHERE subdomain = ? AND value = ?", [subdomain, value])
    db.execute(
        "INSERT INTO acme_txt (subdomain, value, set_at) VALUES (?, ?, ?)", [subdomain, value, now]
    )
    db.execute(
        "DELETE FROM acme_txt WHERE subdomain = ? AND id NOT IN"
        " (SELECT id FROM acme_txt WHERE subdomain = ? ORDER BY id DESC LIMIT ?)",
        [subdomain, subdomain, VALUES_KEPT],
    )
    db.execute("UPDATE acme_registrations SET ttl = ? WHERE subdomain = ?", [ttl, subdomain])
    return txt_values(db, subdomain)


def challenge_records(db: Database, registration: Registration) -> ChallengeRecords:
    """The registration's records as they are now (no values: none)."""
    return ChallengeRecords(
        registration.zone,
        registration.fulldomain,
        txt_ttl(db, registration.subdomain),
        txt_values(db, registration.subdomain),
    )


def records_of_names(
    db: Database, names: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], ChallengeRecords]:
    """The records now of each (zone, name) the log touched; a name whose registration
    is gone has none."""
    found: dict[tuple[str, str], ChallengeRecords] = {}
    for zone, name in names:
        subdomain = name.partition(".")[0]
        registration = find_registration(db, subdomain)
        if registration is None or registration.zone != zone or registration.fulldomain != name:
            found[(zone, name)] = ChallengeRecords(zone, name, 0)
        else:
            found[(zone, name)] = challenge_records(db, registration)
    return found


def every_challenge(db: Database) -> Iterator[ChallengeRecords]:
    """Every name with records, oldest registration first: what a new table loads."""
    rows = db.execute(
        "SELECT r.zone, r.subdomain || '.' || r.label || '.' || r.zone, r.ttl, t.value"
        " FROM acme_registrations AS r JOIN acme_txt AS t ON t.subdomain = r.subdomain"
        " ORDER BY r.subdomain, t.id"
    ).fetchall()
    current: ChallengeRecords | None = None
    for zone, name, ttl, value in rows:
        if current is not None and current.fqdn == name:
            current = ChallengeRecords(zone, name, int(ttl), (*current.values, str(value)))
            continue
        if current is not None:
            yield current
        current = ChallengeRecords(str(zone), str(name), int(ttl), (str(value),))
    if current is not None:
        yield current


def trim_updated_events(db: Database, before: str, upto: int) -> int:
    """Delete the acme_updated events written before `before` (ISO 8601 UTC) whose seq
    is at most `upto` (what every DNS process has applied); how many."""
    cursor = db.execute(
        "DELETE FROM events WHERE action = 'acme_updated' AND at < ? AND seq <= ?", [before, upto]
    )
    return int(cursor.rowcount)
