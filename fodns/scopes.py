"""What a token may do: its scope, its limits, and which scope each /v1 route needs.

Pure rules, no I/O: the API's middleware asks `route_scope` for the scope a request
needs, and the store's writes ask `check_group` / `check_app` inside their write
transaction, with the caller's Grant, whether the change falls within its limits
(so that no other write can slip in between the check and the change).

- One scope per token, each including those below: read < switch < write < admin.
- Limits (`groups`, `apps`: name patterns, fodns/patterns.py) restrict what a token
  CHANGES; what it reads stays global for its scope. A group is within the limits
  when its label matches `groups` and every app it points at, before and after the
  change, matches `apps`. An app is within them when its name (both names, for a
  rename) matches `apps` and every group using it (whose answers its change moves)
  matches `groups`.
- What cannot be bounded to names (a probe's report, which may move any auto group;
  a Route53 sync, which rewrites every zone's records) is refused to a limited token.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fodns.errors import Forbidden
from fodns.patterns import matches


class Scope(enum.IntEnum):
    """A token's scope; a greater one includes every one below it."""

    READ = 1
    SWITCH = 2
    WRITE = 3
    ADMIN = 4

    @property
    def word(self) -> str:
        """As the API and the CLI spell it: "read", "switch", "write", "admin"."""
        return self.name.lower()

    @classmethod
    def named(cls, word: str) -> Scope:
        return cls[word.upper()]


SCOPE_WORDS = tuple(scope.word for scope in Scope)
# The limits a 403's `scope` may name besides a scope.
LIMITS = ("groups", "apps")


@dataclass(frozen=True)
class Grant:
    """What the token presented with a request may do: its name (the actor of its
    changes), its scope, its limits (None: none) and when it expires (ISO 8601 UTC,
    None: never). `bootstrap`: the admin token of the config, the environment or the
    admin-token file, which is not in the database."""

    name: str
    scope: Scope
    groups: tuple[str, ...] | None = None
    apps: tuple[str, ...] | None = None
    expires_at: str | None = None
    bootstrap: bool = False

    @property
    def limited(self) -> bool:
        return self.groups is not None or self.apps is not None

    def allows(self, needed: Scope | None) -> bool:
        return needed is None or self.scope >= needed

    def to_json(self) -> dict[str, Any]:
        """GET /v1/token's reply."""
        return {
            "name": self.name,
            "scope": self.scope.word,
            "groups": None if self.groups is None else list(self.groups),
            "apps": None if self.apps is None else list(self.apps),
            "expires_at": self.expires_at,
            "bootstrap": self.bootstrap,
        }


# The caller of a store write: a Grant (a token's, whose limits are checked in the
# write's transaction) or a plain name (health, and callers inside fodns: no limits).
Actor = str | Grant


def actor_name(actor: Actor) -> str:
    return actor.name if isinstance(actor, Grant) else actor


# ---- which scope each /v1 route needs ---------------------------------------------------

# By method and the route's canonical path (aiohttp's resource.canonical). None: any
# valid token (GET /v1/token, so that a page can learn what its token may do). HEAD is
# answered like GET and needs what GET needs. A route missing here needs admin (see
# route_scope), and tests/test_tokens.py fails for it: a new route cannot be forgotten.
READ, SWITCH, WRITE, ADMIN = Scope.READ, Scope.SWITCH, Scope.WRITE, Scope.ADMIN
ROUTE_SCOPES: Mapping[tuple[str, str], Scope | None] = {
    ("GET", "/v1/token"): None,
    ("GET", "/v1/openapi.json"): READ,
    ("GET", "/v1/zones"): READ,
    ("GET", "/v1/apps"): READ,
    ("POST", "/v1/apps"): WRITE,
    ("GET", "/v1/apps/{name}"): READ,
    ("PATCH", "/v1/apps/{name}"): WRITE,
    ("DELETE", "/v1/apps/{name}"): WRITE,
    ("GET", "/v1/apps/{name}/status"): READ,
    ("PUT", "/v1/apps/{name}/check"): WRITE,
    ("GET", "/v1/apps/{name}/check"): READ,
    ("DELETE", "/v1/apps/{name}/check"): WRITE,
    ("GET", "/v1/groups"): READ,
    ("POST", "/v1/groups"): WRITE,
    ("GET", "/v1/groups/{label}"): READ,
    ("PATCH", "/v1/groups/{label}"): WRITE,
    ("DELETE", "/v1/groups/{label}"): WRITE,
    ("POST", "/v1/groups/{label}/switch"): SWITCH,
    ("DELETE", "/v1/groups/{label}/pin"): SWITCH,
    ("GET", "/v1/events"): READ,
    ("GET", "/v1/health"): READ,
    # A report can move traffic (an auto group follows health): a switch.
    ("POST", "/v1/probes/{name}/reports"): SWITCH,
    ("GET", "/v1/route53/plan"): READ,
    ("POST", "/v1/route53/sync"): WRITE,
    ("GET", "/v1/tokens"): ADMIN,
    ("POST", "/v1/tokens"): ADMIN,
    ("GET", "/v1/tokens/{name}"): ADMIN,
    ("DELETE", "/v1/tokens/{name}"): ADMIN,
    # The webhooks' routes (SPEC-14, built on a branch of their own): admin, GET too,
    # as a webhook's URL and deliveries say where changes are sent.
    ("GET", "/v1/webhooks"): ADMIN,
    ("POST", "/v1/webhooks"): ADMIN,
    ("GET", "/v1/webhooks/{id}"): ADMIN,
    ("PATCH", "/v1/webhooks/{id}"): ADMIN,
    ("DELETE", "/v1/webhooks/{id}"): ADMIN,
    ("GET", "/v1/webhooks/{id}/deliveries"): ADMIN,
    ("POST", "/v1/webhooks/{id}/test"): ADMIN,
    # ACME registrations (SPEC-16): made and deleted with write, as groups are (the
    # token's group limits apply); read like everything else (never a password).
    ("GET", "/v1/acme/registrations"): READ,
    ("POST", "/v1/acme/registrations"): WRITE,
    ("GET", "/v1/acme/registrations/{subdomain}"): READ,
    ("DELETE", "/v1/acme/registrations/{subdomain}"): WRITE,
}
# Routes whose effect cannot be bounded to group or app names: refused to a limited
# token whatever its scope.
UNBOUNDED: Mapping[tuple[str, str], str] = {
    ("POST", "/v1/probes/{name}/reports"): "a probe's report may switch any automatic group",
    ("POST", "/v1/route53/sync"): "a Route53 sync rewrites the records of every group",
}


def route_scope(method: str, path: str) -> Scope | None:
    """The scope `method path` (a route's canonical path) needs; admin for a route the
    table does not know (refusing too much is safe, too little is not)."""
    key = ("GET" if method == "HEAD" else method, path)
    return ROUTE_SCOPES.get(key, ADMIN)


def check_route(grant: Grant, method: str, path: str) -> None:
    """Forbidden unless `grant` may call `method path` at all (its limits on what it
    changes are the store's to check)."""
    needed = route_scope(method, path)
    if not grant.allows(needed):
        assert needed is not None
        raise Forbidden(
            f"the token {grant.name!r} has the {grant.scope.word} scope; this needs {needed.word}",
            scope=needed.word,
        )
    why = UNBOUNDED.get(("GET" if method == "HEAD" else method, path))
    if why is not None and grant.limited:
        raise Forbidden(
            f"the token {grant.name!r} is limited to some {_limit_words(grant)}, and {why}",
            scope=_first_limit(grant),
        )


# ---- limits: checked by the store within each write's transaction ----------------------


def check_group(actor: Actor, label: str | None, apps: Iterable[str | None]) -> None:
    """Forbidden unless the group `label` (None: a label to be generated), pointing at
    `apps` (before and after the change; None for an empty side), is within the limits
    of `actor`'s grant."""
    if not isinstance(actor, Grant):
        return
    if actor.groups is not None:
        if label is None:
            raise Forbidden(
                f"the token {actor.name!r} may only change groups named "
                f"{_patterns(actor.groups)}: give a label (a generated one cannot match)",
                scope="groups",
            )
        if not matches(actor.groups, label):
            raise Forbidden(
                f"the token {actor.name!r} may only change groups named "
                f"{_patterns(actor.groups)}, not {label}",
                scope="groups",
            )
    _check_apps(actor, apps)


def check_app(actor: Actor, names: Iterable[str], groups: Callable[[], Iterable[str]]) -> None:
    """Forbidden unless the app (under each of `names`: a rename has two) is within the
    limits of `actor`'s grant, and so is each group using it (`groups()`, their labels,
    read only for a grant with a group limit: an app may have 100,000 groups), whose
    answers a change of the app moves."""
    if not isinstance(actor, Grant):
        return
    _check_apps(actor, names)
    if actor.groups is not None:
        outside = sorted({label for label in groups() if not matches(actor.groups, label)})
        if outside:
            raise Forbidden(
                f"the token {actor.name!r} may only change groups named "
                f"{_patterns(actor.groups)}, and this app is in {', '.join(outside)}",
                scope="groups",
            )


def _check_apps(grant: Grant, names: Iterable[str | None]) -> None:
    if grant.apps is None:
        return
    outside = sorted({name for name in names if name is not None and not matches(grant.apps, name)})
    if outside:
        raise Forbidden(
            f"the token {grant.name!r} may only change apps named {_patterns(grant.apps)}, "
            f"not {', '.join(outside)}",
            scope="apps",
        )


def _patterns(patterns: Iterable[str]) -> str:
    return " or ".join(patterns)


def _first_limit(grant: Grant) -> str:
    return "groups" if grant.groups is not None else "apps"


def _limit_words(grant: Grant) -> str:
    return " and ".join(limit for limit in LIMITS if getattr(grant, limit) is not None)
