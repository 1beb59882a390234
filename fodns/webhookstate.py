"""The webhooks' tables: the webhooks with their secrets, how far each has followed the
log, and their recent delivery attempts.

Like the Route53 mirror's (fodns/mirrorstate.py), these tables are read and written
here, through the store's hooks, and the store knows nothing of webhooks. A change a
person makes to a webhook is one transaction with its event (`webhook_created`,
`webhook_updated`, `webhook_deleted`; the webhook's JSON, never its secret), published
like any change; so is a webhook giving up (`webhook_failed`, actor `fodns`). What the
deliverer writes as it goes (cursors, attempts) appends no event: it is its own state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from sqlite_utils import Database

from fodns.errors import Conflict, NotFound
from fodns.model import FODNS_ACTOR, Event
from fodns.rows import EVENT_SELECT, append_event, event_from_row, newest_seq, utc_now
from fodns.store import Change
from fodns.webhookmodel import WEBHOOKS_MAX, Delivery, Kind, Webhook

T = TypeVar("T")
DELIVERIES_KEPT = 200  # attempts kept per webhook, the newest
READ_BYTES_MAX = 16 * 1024 * 1024  # JSON of the events a deliverer holds at once, about
_COLUMNS = (
    "id, url, events, groups, apps, active, description, failed_seq, failed_at,"
    " created_at, updated_at"
)


class Transactions(Protocol):
    """The store's hooks (store.Store.read / write / write_event)."""

    def read(self, read: Callable[[Database], T]) -> T: ...

    def write(self, write: Callable[[Database], T]) -> T: ...

    def write_event(self, write: Callable[[Database], Event | None]) -> Change: ...


class Unset:
    """A field left out of a change (None already means null: every kind, no filter)."""


UNSET = Unset()


@dataclass(frozen=True)
class Cursor:
    """How far one webhook has followed the log: the last event done with (delivered
    or not wanted), and the event being retried (`pending_seq`) with the time.time()
    of its first attempt and the attempts made so far."""

    seq: int
    pending_seq: int | None = None
    pending_since: float | None = None
    pending_attempts: int = 0


@dataclass(frozen=True)
class Stored:
    """A webhook with what only the deliverer sees: its secret and its cursor."""

    webhook: Webhook
    secret: str
    cursor: Cursor


class WebhookState:
    """The webhooks' tables in the store's database."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    # ---- what people do (each a transaction with its event) ----

    def create(
        self,
        actor: str,
        webhook: Webhook,
        secret: str,
    ) -> Change:
        """Store a new webhook; its cursor starts at its own `webhook_created` event, so
        it gets every change after its creation and none before. The Change."""

        def write(db: Database) -> Event:
            count = int(db.execute("SELECT COUNT(*) FROM webhooks").fetchone()[0])
            if count >= WEBHOOKS_MAX:
                raise Conflict(f"fodns keeps at most {WEBHOOKS_MAX} webhooks; delete one first")
            now = utc_now()
            made = replace(webhook, created_at=now, updated_at=now)
            db.execute(
                f"INSERT INTO webhooks ({_COLUMNS}, secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
                " ?, ?, ?, ?)",
                [*_row_of(made), secret],
            )
            event = append_event(db, actor, "webhook_created", after=made.to_json())
            db.execute(
                "INSERT INTO webhook_cursors (webhook_id, seq) VALUES (?, ?)", [made.id, event.seq]
            )
            return event

        return self._store.write_event(write)

    def update(
        self,
        actor: str,
        webhook_id: str,
        *,
        url: str | Unset = UNSET,
        events: tuple[Kind, ...] | Unset | None = UNSET,
        groups: tuple[str, ...] | Unset | None = UNSET,
        apps: tuple[str, ...] | Unset | None = UNSET,
        secret: str | Unset = UNSET,
        active: bool | Unset = UNSET,
        description: str | Unset | None = UNSET,
    ) -> Change:
        """Change what is given. `active` true on a failed webhook resumes it at the event
        it failed on; false pauses it (its cursor stays: resuming delivers what it
        missed). A resumed webhook's next attempt starts a new window of retries. The
        Change (no event: nothing changed)."""

        def write(db: Database) -> Event | None:
            old = _find(db, webhook_id)
            fields: dict[str, Any] = {
                name: value
                for name, value in (
                    ("url", url),
                    ("events", events),
                    ("groups", groups),
                    ("apps", apps),
                    ("active", active),
                    ("description", description),
                )
                if not isinstance(value, Unset)
            }
            new = replace(old, **fields)
            if active is True:
                new = replace(new, failed_seq=None, failed_at=None)
            new_secret = not isinstance(secret, Unset) and secret != _secret(db, webhook_id)
            if new == old and not new_secret:
                return None
            new = replace(new, updated_at=utc_now())
            db.execute(
                "UPDATE webhooks SET url = ?, events = ?, groups = ?, apps = ?, active = ?,"
                " description = ?, failed_seq = ?, failed_at = ?, updated_at = ? WHERE id = ?",
                [*_row_of(new)[1:9], new.updated_at, new.id],
            )
            if new_secret:
                db.execute("UPDATE webhooks SET secret = ? WHERE id = ?", [secret, webhook_id])
            if new.active and not old.active:
                # Resumed (paused, or failed: then at the event it gave up on): its next
                # attempt starts a new window of retries.
                db.execute(
                    "UPDATE webhook_cursors SET pending_seq = NULL, pending_since = NULL,"
                    " pending_attempts = 0 WHERE webhook_id = ?",
                    [webhook_id],
                )
            after = new.to_json()
            if new_secret:
                after["secret_changed"] = True  # said in the log; the secret never is
            return append_event(db, actor, "webhook_updated", before=old.to_json(), after=after)

        return self._store.write_event(write)

    def delete(self, actor: str, webhook_id: str) -> Change:
        """Delete a webhook, its cursor and its attempts. The Change."""

        def write(db: Database) -> Event:
            old = _find(db, webhook_id)
            db.execute("DELETE FROM webhooks WHERE id = ?", [webhook_id])
            return append_event(db, actor, "webhook_deleted", before=old.to_json())

        return self._store.write_event(write)

    # ---- reads ----

    def webhooks(self) -> list[Webhook]:
        """Every webhook, oldest first."""
        return self._store.read(lambda db: [_webhook(row) for row in _select(db)])

    def webhook(self, webhook_id: str) -> Webhook:
        return self._store.read(lambda db: _find(db, webhook_id))

    def deliveries(self, webhook_id: str, limit: int = DELIVERIES_KEPT) -> list[Delivery]:
        """The webhook's recent attempts, newest first (NotFound: no such webhook)."""

        def read(db: Database) -> list[Delivery]:
            _find(db, webhook_id)
            rows = db.execute(
                "SELECT seq, kind, attempt, at, status, error, latency_ms, result"
                " FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?",
                [webhook_id, limit],
            )
            return [Delivery(*row) for row in rows]

        return self._store.read(read)

    # ---- the deliverer's ----

    def stored(self) -> tuple[list[Stored], int]:
        """Every webhook with its secret and cursor, and the log's newest seq, read
        together."""

        def read(db: Database) -> tuple[list[Stored], int]:
            cursors = {
                str(row[0]): Cursor(int(row[1]), row[2], row[3], int(row[4]))
                for row in db.execute(
                    "SELECT webhook_id, seq, pending_seq, pending_since, pending_attempts"
                    " FROM webhook_cursors"
                )
            }
            secrets = dict(db.execute("SELECT id, secret FROM webhooks").fetchall())
            last = newest_seq(db)
            stored = [
                Stored(hook, str(secrets[hook.id]), cursors.get(hook.id, Cursor(last)))
                for hook in (_webhook(row) for row in _select(db))
            ]
            return stored, last

        return self._store.read(read)

    def secret(self, webhook_id: str) -> tuple[Webhook, str]:
        """A webhook and its secret (NotFound: none), for a test delivery."""
        return self._store.read(lambda db: (_find(db, webhook_id), _secret(db, webhook_id)))

    def events_after(self, seq: int, limit: int, max_bytes: int = READ_BYTES_MAX) -> list[Event]:
        """The events after `seq`, oldest first: at most `limit`, and no more once they
        hold `max_bytes` of JSON (at least one). An app's event names every group using
        the app (8.5 MB with 100,000 groups): a run of those is read a few at a time."""
        sql = f"{EVENT_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?"

        def read(db: Database) -> list[Event]:
            events: list[Event] = []
            held = 0
            for row in db.query(sql, [seq, limit]):  # rows come from SQLite as they are read
                held += sum(len(row[key] or "") for key in ("before", "after", "touched"))
                if events and held > max_bytes:
                    break
                events.append(event_from_row(row))
            return events

        return self._store.read(read)

    def save_progress(
        self, cursors: Mapping[str, Cursor], attempts: Iterable[tuple[str, Delivery]]
    ) -> None:
        """What the deliverer did since it last saved, in one transaction: each webhook's
        cursor and its attempts (the newest DELIVERIES_KEPT kept). A webhook deleted
        meanwhile is passed over."""
        attempts = list(attempts)

        def write(db: Database) -> None:
            for webhook_id, cursor in cursors.items():
                db.execute(
                    "UPDATE webhook_cursors SET seq = ?, pending_seq = ?, pending_since = ?,"
                    " pending_attempts = ? WHERE webhook_id = ?",
                    [
                        cursor.seq,
                        cursor.pending_seq,
                        cursor.pending_since,
                        cursor.pending_attempts,
                        webhook_id,
                    ],
                )
            for webhook_id, delivery in attempts:
                db.execute(
                    "INSERT INTO webhook_deliveries"
                    " (webhook_id, seq, kind, attempt, at, status, error, latency_ms, result)"
                    " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS"
                    " (SELECT 1 FROM webhooks WHERE id = ?)",
                    [
                        webhook_id,
                        delivery.seq,
                        delivery.kind,
                        delivery.attempt,
                        delivery.at,
                        delivery.status,
                        delivery.error,
                        delivery.latency_ms,
                        delivery.result,
                        webhook_id,
                    ],
                )
            for webhook_id in {webhook_id for webhook_id, _ in attempts}:
                db.execute(
                    "DELETE FROM webhook_deliveries WHERE webhook_id = ? AND id <= (SELECT id"
                    " FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC"
                    " LIMIT 1 OFFSET ?)",
                    [webhook_id, webhook_id, DELIVERIES_KEPT],
                )

        self._store.write(write)

    def fail(self, webhook_id: str, cursor: Cursor, failed: Event, why: str) -> Change:
        """The webhook gave up on `failed`: it stops (state failed, the seq kept) with its
        cursor just before it, and the log says so (`webhook_failed`, actor fodns). The
        Change (no event: the webhook was deleted or stopped meanwhile)."""

        def write(db: Database) -> Event | None:
            try:
                old = _find(db, webhook_id)
            except NotFound:
                return None
            if not old.active:
                return None  # paused meanwhile: a person's word wins
            new = replace(
                old, active=False, failed_seq=failed.seq, failed_at=utc_now(), updated_at=utc_now()
            )
            db.execute(
                "UPDATE webhooks SET active = 0, failed_seq = ?, failed_at = ?, updated_at = ?"
                " WHERE id = ?",
                [new.failed_seq, new.failed_at, new.updated_at, webhook_id],
            )
            db.execute(
                "UPDATE webhook_cursors SET seq = ?, pending_seq = NULL, pending_since = NULL,"
                " pending_attempts = 0 WHERE webhook_id = ?",
                [cursor.seq, webhook_id],
            )
            return append_event(
                db,
                FODNS_ACTOR,
                "webhook_failed",
                before=old.to_json(),
                after=new.to_json(),
                reason=why,
            )

        return self._store.write_event(write)


def _select(db: Database, where: str = "", params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    sql = f"SELECT {_COLUMNS} FROM webhooks {where} ORDER BY created_at, id"
    return list(db.execute(sql, list(params)).fetchall())


def _find(db: Database, webhook_id: str) -> Webhook:
    rows = _select(db, "WHERE id = ?", [webhook_id])
    if not rows:
        raise NotFound(f"no webhook {webhook_id}")
    return _webhook(rows[0])


def _secret(db: Database, webhook_id: str) -> str:
    row = db.execute("SELECT secret FROM webhooks WHERE id = ?", [webhook_id]).fetchone()
    if row is None:
        raise NotFound(f"no webhook {webhook_id}")
    return str(row[0])


def _webhook(row: Sequence[Any]) -> Webhook:
    (
        webhook_id,
        url,
        events,
        groups,
        apps,
        active,
        description,
        failed_seq,
        failed_at,
        created_at,
        updated_at,
    ) = row
    return Webhook(
        id=str(webhook_id),
        url=str(url),
        events=_listed(events),  # type: ignore[arg-type]
        groups=_listed(groups),
        apps=_listed(apps),
        active=bool(active),
        description=description,
        failed_seq=failed_seq,
        failed_at=failed_at,
        created_at=str(created_at),
        updated_at=str(updated_at),
    )


def _row_of(webhook: Webhook) -> list[Any]:
    """The webhook as its columns, in _COLUMNS's order."""
    return [
        webhook.id,
        webhook.url,
        _dumped(webhook.events),
        _dumped(webhook.groups),
        _dumped(webhook.apps),
        int(webhook.active),
        webhook.description,
        webhook.failed_seq,
        webhook.failed_at,
        webhook.created_at,
        webhook.updated_at,
    ]


def _listed(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


def _dumped(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else json.dumps(list(values))
