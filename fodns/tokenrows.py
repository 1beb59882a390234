"""Named tokens as the store keeps them: a row as a value, its JSON, and the SQL on them.

The tokens table (migrations 1 and 9) holds every token name ever used, so that a
name is never reused: the bootstrap admin token's name (a row with no scope, written
at start so that events can name it) and each named token with its scope, limits,
expiry, who made it and when, who revoked it and when, and the SHA-256 of its secret
(fodns/tokens.py says why a plain hash). The secret itself is never stored, logged
or put in an event. The store's token writes call these inside their transactions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlite_utils import Database

from fodns.rows import utc_now
from fodns.scopes import Grant, Scope

TokenState = Literal["active", "expired", "revoked"]
_COLUMNS = "name, scope, groups, apps, created_at, created_by, expires_at, revoked_at, revoked_by"
# Rows without a scope are names only (the bootstrap token's): not named tokens.
_SELECT = f"SELECT {_COLUMNS} FROM tokens WHERE scope IS NOT NULL"


@dataclass(frozen=True)
class StoredToken:
    """A named token, without its secret. Times are ISO 8601 UTC (rows.utc_now's form),
    so they compare as text; None: never expires, not revoked."""

    name: str
    scope: Scope
    groups: tuple[str, ...] | None
    apps: tuple[str, ...] | None
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None = None
    revoked_by: str | None = None

    def state(self, now: str) -> TokenState:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def grant(self) -> Grant:
        return Grant(self.name, self.scope, self.groups, self.apps, self.expires_at)

    def to_json(self, now: str | None = None) -> dict[str, Any]:
        """As the API shows it (and a token event's before and after), its state as of
        `now` (default: now): never the secret."""
        return {
            "name": self.name,
            "scope": self.scope.word,
            "groups": None if self.groups is None else list(self.groups),
            "apps": None if self.apps is None else list(self.apps),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "state": self.state(utc_now() if now is None else now),
        }


def name_taken(db: Database, name: str) -> bool:
    """Whether any token ever had this name (revoked ones and the bootstrap's included)."""
    return db.execute("SELECT 1 FROM tokens WHERE name = ?", [name]).fetchone() is not None


def insert_token(db: Database, token: StoredToken, digest: str) -> None:
    db.execute(
        "INSERT INTO tokens (name, created_at, scope, groups, apps, hash, created_by, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            token.name,
            token.created_at,
            token.scope.word,
            _patterns_text(token.groups),
            _patterns_text(token.apps),
            digest,
            token.created_by,
            token.expires_at,
        ],
    )


def mark_revoked(db: Database, name: str, at: str, by: str) -> None:
    db.execute(
        "UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE name = ? AND revoked_at IS NULL",
        [at, by, name],
    )


def find_token(db: Database, name: str) -> StoredToken | None:
    row = db.execute(f"{_SELECT} AND name = ?", [name]).fetchone()
    return None if row is None else _token(row)


def read_tokens(db: Database, revoked: bool) -> list[StoredToken]:
    """Every named token by name; the revoked ones only when asked for."""
    where = "" if revoked else " AND revoked_at IS NULL"
    return [_token(row) for row in db.execute(f"{_SELECT}{where} ORDER BY name")]


def read_hashes(db: Database) -> list[tuple[str, StoredToken]]:
    """Every named token (revoked ones too: a revoked token is refused saying so) with
    the hash of its secret."""
    sql = f"SELECT hash, {_COLUMNS} FROM tokens WHERE scope IS NOT NULL AND hash IS NOT NULL"
    return [(str(row[0]), _token(row[1:])) for row in db.execute(sql)]


def _token(row: Any) -> StoredToken:
    name, scope, groups, apps, created_at, created_by, expires_at, revoked_at, revoked_by = row
    return StoredToken(
        name=str(name),
        scope=Scope.named(str(scope)),
        groups=_patterns(groups),
        apps=_patterns(apps),
        created_at=str(created_at),
        created_by=str(created_by),
        expires_at=None if expires_at is None else str(expires_at),
        revoked_at=None if revoked_at is None else str(revoked_at),
        revoked_by=None if revoked_by is None else str(revoked_by),
    )


def _patterns_text(patterns: tuple[str, ...] | None) -> str | None:
    return None if patterns is None else json.dumps(list(patterns))


def _patterns(text: Any) -> tuple[str, ...] | None:
    return None if text is None else tuple(str(pattern) for pattern in json.loads(text))
