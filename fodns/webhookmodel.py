"""Webhooks as values: their fields and checks, the kinds of event, which events a webhook
wants, and what a delivery sends (its body, headers and signature).

Nothing here reads the database or the network: fodns/webhookstate.py keeps webhooks,
fodns/webhooks.py delivers to them, fodns/webhookapi.py is their part of the API.

Decisions beyond the design page:

- A webhook's id is `wh_` and 16 random hex digits, never a counter: the id is in
  every Idempotency-Key, and two fodns servers (production and a staging copy, say)
  sending to one receiver must never send the same key for different events.
- The secret is kept as it is (an HMAC needs it), in the database fodns keeps private
  (mode 0600), and shown only in the reply that sets it.
- Filters narrow: with `groups`, an event is sent when it names a group whose label
  matches (a group's event; an app's event that touched such a group, an app change
  that changed their answers); with `apps`, when it names a matching app (an app's
  event under any of its names; a group's event whose primary or backup, before or
  after, is one). Both given: both must hold. An event naming no group (or no app)
  never passes that filter: the Route53 mirror's and the admin events are for
  webhooks without one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fodns import __version__
from fodns.errors import Invalid
from fodns.model import HEALTH_ACTOR, Event
from fodns.patterns import check_patterns, matches

# What a webhook may ask for, in the order the API lists them.
Kind = Literal["switch", "auto_switch", "health", "group", "app", "route53", "admin"]
KINDS: tuple[Kind, ...] = ("switch", "auto_switch", "health", "group", "app", "route53", "admin")
TEST_KIND = "test"
WEBHOOK_ID = re.compile(r"^wh_[0-9a-f]{16}$")
URL_MAX = 2048
SECRET_MIN, SECRET_MAX = 16, 200
# Printable ASCII without space: a secret people paste between config files.
SECRET = re.compile(r"^[!-~]+$")
DESCRIPTION_MAX = 200
# At most this many webhooks: each one is a follower of the log and a connection.
WEBHOOKS_MAX = 100
# An http(s) URL with no userinfo and no fragment: the scheme, a host (a name, an IPv4
# address, or an IPv6 address in brackets: RFC 4291 §2.2's forms without an embedded
# IPv4 address), a port of 1-65535, then a path and query of printable ASCII but `"` and
# `#`. Written for every JSON Schema validator (fodns/schemas.py publishes it), and
# exact enough that every URL it takes is one `check_url` takes.
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = (
    f"(({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}"
    f"|({_H}:){{1,4}}(:{_H}){{1,3}}|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}"
    f"|{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:))"
)
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL = re.compile(
    rf"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9._~-]+|\[{_IPV6}\])(:{_PORT})?([/?][!$-~]*)?$"
)


@dataclass(frozen=True)
class Webhook:
    """One webhook as the API shows it (never its secret). `events` None: every kind,
    including kinds a later fodns adds; `groups`, `apps` None: no filter."""

    id: str
    url: str
    events: tuple[Kind, ...] | None = None
    groups: tuple[str, ...] | None = None
    apps: tuple[str, ...] | None = None
    active: bool = True
    description: str | None = None
    failed_seq: int | None = None  # the event it gave up on; it resumes there
    failed_at: str | None = None
    created_at: str = ""
    updated_at: str = ""

    @property
    def state(self) -> str:
        """active (delivering), paused (set inactive) or failed (gave up on an event)."""
        if self.failed_seq is not None:
            return "failed"
        return "active" if self.active else "paused"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": None if self.events is None else list(self.events),
            "groups": None if self.groups is None else list(self.groups),
            "apps": None if self.apps is None else list(self.apps),
            "active": self.active,
            "state": self.state,
            "failed_seq": self.failed_seq,
            "failed_at": self.failed_at,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def wants(self, kind: str | None, event: Event) -> bool:
        """Whether an event of `kind` (None: of no kind) goes to this webhook."""
        if kind is None or (self.events is not None and kind not in self.events):
            return False
        touched = event.touched
        if self.groups is not None:
            labels = {label for _, label in touched.groups}
            if event.group is not None:
                labels.add(event.group)
            if not any(matches(self.groups, label) for label in labels):
                return False
        if self.apps is not None:
            names = set(touched.apps) | ({event.app} if event.app is not None else set())
            if not any(matches(self.apps, name) for name in names):
                return False
        return True


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver (or a test), as GET /v1/webhooks/{id}/deliveries lists it.
    `status` is the HTTP status (None: no answer), `error` None on success."""

    seq: int | None
    kind: str
    attempt: int
    at: str
    status: int | None
    error: str | None
    latency_ms: float
    result: str  # delivered, retrying, failed or test

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "attempt": self.attempt,
            "at": self.at,
            "status": self.status,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "result": self.result,
        }


def event_kind(event: Event) -> Kind | None:
    """The kind of an event, or None for one no kind covers."""
    action = event.action
    if action == "group_switched":
        return "auto_switch" if event.actor == HEALTH_ACTOR else "switch"
    if action == "health_changed":
        return "health"
    if action.startswith("group_"):
        return "group"
    if action.startswith(("app_", "check_")):
        return "app"
    if action.startswith("route53_"):
        return "route53"
    if action == "acme_updated":
        # A TXT value set by an ACME client at each renewal: noise to a receiver, and the
        # log keeps it only a week (fodns/acmerows.py). No kind sends it.
        return None
    if action.startswith(("token_", "webhook_", "acme_")):
        # Who may set a challenge's TXT records: credentials, as tokens are.
        return "admin"
    return None


def new_id() -> str:
    return f"wh_{secrets.token_hex(8)}"


def new_secret() -> str:
    """A 256-bit secret, in the form receivers recognise from other signed webhooks."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def check_url(url: Any, field: str = "url") -> str:
    """An http or https URL of at most URL_MAX characters, no userinfo, no fragment."""
    if not isinstance(url, str) or len(url) > URL_MAX or not URL.fullmatch(url):
        raise Invalid(
            field,
            f"must be an http:// or https:// URL of at most {URL_MAX} characters, without"
            " user:password@ or #fragment",
        )
    host = urllib.parse.urlsplit(url).netloc.rsplit("]", 1)[0]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:])
        except ValueError:
            raise Invalid(field, f"{host}] is not an IPv6 address") from None
    return url


def check_kinds(kinds: Sequence[str] | None, field: str = "events") -> tuple[Kind, ...] | None:
    if kinds is None:
        return None
    if not kinds or len(set(kinds)) != len(kinds):
        raise Invalid(field, "give each kind once, at least one (or null for every kind)")
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise Invalid(field, f"{unknown[0]!r} is not a kind (one of {', '.join(KINDS)})")
    return tuple(kind for kind in KINDS if kind in kinds)


def check_filter(field: str, patterns: Sequence[str] | None) -> tuple[str, ...] | None:
    return check_patterns(field, patterns)


def check_secret(secret: Any, field: str = "secret") -> str:
    if (
        not isinstance(secret, str)
        or not SECRET_MIN <= len(secret) <= SECRET_MAX
        or not SECRET.fullmatch(secret)
    ):
        raise Invalid(
            field,
            f"must be {SECRET_MIN} to {SECRET_MAX} printable ASCII characters without spaces",
        )
    return secret


def check_description(description: Any, field: str = "description") -> str | None:
    if description is None:
        return None
    if (
        not isinstance(description, str)
        or len(description) > DESCRIPTION_MAX
        or "\x00" in description
    ):
        raise Invalid(field, f"must be text of at most {DESCRIPTION_MAX} characters, no NUL")
    return description.strip() or None


# ---- what a delivery sends --------------------------------------------------------------


def delivery_id(webhook_id: str, seq: int | None) -> str:
    """The body's `id` and the Idempotency-Key: the same for every attempt of one event."""
    return f"{webhook_id}:{'test' if seq is None else seq}"


def body_of(webhook_id: str, event: Event | None, kind: str) -> bytes:
    """The bytes POSTed for an event (None: a test). A function of the event alone, so
    every attempt, before a restart or after, sends the very same bytes."""
    seq = None if event is None else event.seq
    payload = {
        "id": delivery_id(webhook_id, seq),
        "seq": seq,
        "kind": kind,
        "event": None if event is None else event.to_json(),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The Fodns-Signature header: Stripe's form, an HMAC-SHA256 of the timestamp, a
    dot and the body, so a receiver can refuse a replay older than a few minutes."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def headers_of(webhook_id: str, seq: int | None, kind: str) -> dict[str, str]:
    """The headers of every attempt but the signature (which has its own time)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"fodns/{__version__}",
        "Idempotency-Key": delivery_id(webhook_id, seq),
        "Fodns-Event": kind,
    }
