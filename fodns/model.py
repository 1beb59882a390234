"""Apps, groups and events: the product's words as values, and the checks on their input.

An app's web head is its load balancer when it has one, else its web servers.
Either is one hostname (served as a CNAME) or one or more IP addresses (served
as A and AAAA records). A group names a primary and a backup app (each
optional), which side is active, and a TTL.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dns.name

from fodns.errors import Invalid

Side = Literal["primary", "backup"]
SIDES: tuple[Side, ...] = ("primary", "backup")
# Who may switch a group: only people ("manual"), or health too ("auto"); and
# whether health may switch it back to the primary ("failback").
Mode = Literal["manual", "auto"]
MODES: tuple[Mode, ...] = ("manual", "auto")
# Automatic failback waits until the primary has been up this long (seconds), and a
# group makes at most this many automatic switches in any hour (then it is held).
DEFAULT_HOLD_DOWN, HOLD_DOWN_MAX = 300, 86400
DEFAULT_MAX_AUTO_SWITCHES, MAX_AUTO_SWITCHES_MAX = 4, 100
# A pin lasts at most a year when it is given an end (null: until unpinned).
PIN_FOR_MAX = 366 * 86400
# The actor of every change health makes (automatic switches, health transitions,
# pins that ended): never a token's name (tokens.RESERVED_NAMES holds it, and the store
# refuses it as a token name).
HEALTH_ACTOR = "health"
# The actor of what fodns itself records: the Route53 mirror failing and recovering, a
# webhook giving up. A name reserved for tokens (issue 14), so never a token's.
FODNS_ACTOR = "fodns"
# The actor of what the acme-dns API does on its own credentials (a TXT value set, an open
# registration): reserved for tokens too, so an event's actor is never ambiguous.
ACME_ACTOR = "acme"
# A group's TTL, in seconds: traffic moves within it after a switch. Migration 1's
# CHECK on groups.ttl holds the same range; widening it takes a new migration.
GROUP_TTL_MIN, GROUP_TTL_MAX = 5, 86400
DEFAULT_GROUP_TTL = 30  # a zone's group_ttl when its config names none
# App names: what people type in URLs and shells.
APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Group labels: one DNS label of letters, digits and hyphens (RFC 1123 §2.1),
# stored lower-case; generated ones look like 414-262-781.
# These patterns are also the API's (fodns/schemas.py publishes them), so they are
# written the way every JSON Schema validator reads them alike: no lookarounds, and
# matched with fullmatch (a closing `$` alone lets a final newline through).
GROUP_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# A hostname in a web head: two labels or more of letters, digits, '_' or '-', the
# last starting with a letter (RFC 1123 §2.1, RFC 3696 §2: a top-level label is never
# all digits), at most 253 characters (255 octets on the wire), a final dot optional.
HOSTNAME = re.compile(r"^([A-Za-z0-9_-]{1,63}\.)+[A-Za-z][A-Za-z0-9_-]{0,62}\.?$")
HOSTNAME_MAX = 253
# A web head's answer must fit in one UDP reply of the EDNS size most resolvers
# use (1,232 bytes, DNS Flag Day 2020), or resolvers fall back to TCP for every
# lookup. 32 AAAA records take 32 x 28 = 896 bytes; with a 12-byte header, the
# longest question (259 bytes) and an OPT record (11) that is 1,178 bytes.
WEB_HEAD_MAX = 32
WEB_HEAD_ANSWER_BYTES = 1232
# Events read at once from the log (GET /v1/events?limit=): the default and the most.
EVENTS_PAGE_DEFAULT, EVENTS_PAGE_MAX = 100, 1000
# Groups or apps in one page of a list (GET /v1/groups?limit=, /v1/apps?limit=).
LIST_PAGE_MAX = 1000


@dataclass(frozen=True)
class App:
    name: str
    load_balancer: tuple[str, ...] = ()
    web_servers: tuple[str, ...] = ()
    # Addresses of the web head that health checks found down, left out of the answer
    # (only for an app whose check has answers_follow_health; written by health events).
    down: tuple[str, ...] = ()

    @property
    def web_head(self) -> tuple[str, ...]:
        """What groups answer for this app: the load balancer if any, else the web servers."""
        return self.load_balancer or self.web_servers

    @property
    def answered_head(self) -> tuple[str, ...]:
        """The web head without the addresses that are down, while at least one is
        left; with none left, all of it (fail open, as Route53 does: an answer that
        may work beats one that surely does not)."""
        if not self.down:
            return self.web_head
        left = tuple(value for value in self.web_head if value not in self.down)
        return left or self.web_head

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "load_balancer": list(self.load_balancer),
            "web_servers": list(self.web_servers),
            "down": list(self.down),
        }


@dataclass(frozen=True)
class Pin:
    """A person's word on where an automatic group stays: health never moves it
    while the pin lasts (`until` None: until someone unpins it)."""

    side: Side
    reason: str | None
    actor: str
    at: str  # ISO 8601 UTC
    until: str | None  # ISO 8601 UTC

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "reason": self.reason,
            "actor": self.actor,
            "at": self.at,
            "until": self.until,
        }

    @classmethod
    def from_stored(cls, value: Any) -> Pin | None:
        """A stored pin (JSON text) read back; anything not of its form is no pin."""
        try:
            data = json.loads(value) if isinstance(value, str) else None
            if not isinstance(data, dict) or data.get("side") not in SIDES:
                return None
            return cls(
                data["side"],
                data.get("reason"),
                str(data["actor"]),
                str(data["at"]),
                data.get("until"),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Group:
    zone: str  # "fo.example.net", no trailing dot
    label: str  # "414-262-781"
    primary: str | None
    backup: str | None
    active: Side
    ttl: int
    failover: Mode = "manual"
    failback: Mode = "manual"
    hold_down: int = DEFAULT_HOLD_DOWN
    max_auto_switches: int = DEFAULT_MAX_AUTO_SWITCHES
    pin: Pin | None = None
    # The last switch health made: {"at", "from", "to", "reason"} (None: never).
    last_auto_switch: dict[str, Any] | None = None

    @property
    def fqdn(self) -> str:
        return f"{self.label}.{self.zone}"

    @property
    def active_app(self) -> str | None:
        return self.primary if self.active == "primary" else self.backup

    def app_on(self, side: Side) -> str | None:
        return self.primary if side == "primary" else self.backup

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "fqdn": self.fqdn,
            "zone": self.zone,
            "primary": self.primary,
            "backup": self.backup,
            "active": self.active,
            "ttl": self.ttl,
            "failover": self.failover,
            "failback": self.failback,
            "hold_down": self.hold_down,
            "max_auto_switches": self.max_auto_switches,
            "pin": None if self.pin is None else self.pin.to_json(),
            "last_auto_switch": self.last_auto_switch,
        }


# A group by (zone, label): how events and the change feed name one.
GroupKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Touch:
    """What an event touched, written with it when it is committed: the groups whose
    answer or sides it may have changed, the apps whose failover status or web head
    it may have changed (under every name each had), and the zones of those groups.

    Worked out once, by `of_event`, when the event is written (and, for the events
    written before fodns kept it, by migration 7); every follower of the log reads
    it from the event, never works it out again from the state it finds later.
    """

    groups: frozenset[GroupKey] = frozenset()
    apps: frozenset[str] = frozenset()
    zones: frozenset[str] = frozenset()
    # Names whose own records the event changed, by (zone, name without the final dot):
    # an ACME challenge's TXT (fodns/acme.py). Their zones are in `zones` too.
    names: frozenset[GroupKey] = frozenset()

    @classmethod
    def of_event(
        cls,
        *,
        zone: str | None,
        group: str | None,
        app: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        app_groups: Iterable[GroupKey] = (),
        names: Iterable[GroupKey] = (),
    ) -> Touch:
        """What one event touched. A group event touches its group and the apps on
        either side of it, before and after (their failover status may move). An
        app event touches the app under each name it had (a rename has two) and
        `app_groups`, the groups that used the app when the event was written. An
        ACME event touches the challenge `names` whose records it changed."""
        touched_names = frozenset(names)
        name_zones = frozenset(name_zone for name_zone, _ in touched_names)
        states = [state for state in (before, after) if state is not None]
        if group is not None and zone is not None:
            groups = frozenset({(zone, group)})
            keys: tuple[str, ...] = ("primary", "backup")
        elif app is not None:
            groups = frozenset(app_groups)
            keys = ("name",)
            states.append({"name": app})
        else:
            return cls(zones=name_zones, names=touched_names)
        apps = frozenset(
            name for state in states for key in keys if isinstance(name := state.get(key), str)
        )
        zones = frozenset(group_zone for group_zone, _ in groups) | name_zones
        return cls(groups, apps, zones, touched_names)

    def to_json(self) -> dict[str, Any]:
        """As the API shows it on each event: groups by zone then label, each with its
        full name; apps and zones sorted."""
        return {
            "groups": [
                {"zone": zone, "label": label, "fqdn": f"{label}.{zone}"}
                for zone, label in sorted(self.groups)
            ],
            "apps": sorted(self.apps),
            "zones": sorted(self.zones),
        }

    def to_stored(self) -> dict[str, Any]:
        """As the event log keeps it: labels by zone, so that an app in 100,000 groups
        costs its event about 14 bytes a group (the zones are those of the groups)."""
        labels: dict[str, list[str]] = {}
        for zone, label in sorted(self.groups):
            labels.setdefault(zone, []).append(label)
        stored: dict[str, Any] = {"groups": labels, "apps": sorted(self.apps)}
        if self.names:  # only then: every other event is stored as it always was
            names: dict[str, list[str]] = {}
            for zone, name in sorted(self.names):
                names.setdefault(zone, []).append(name)
            stored["names"] = names
        return stored

    @classmethod
    def from_stored(cls, value: Any) -> Touch:
        """A `to_stored()` read back; what is not of that form (a row edited by hand)
        is left out, never a crash."""
        if not isinstance(value, dict):
            return cls()
        groups = _by_zone(value.get("groups"))
        names = _by_zone(value.get("names"))
        return cls(
            groups,
            frozenset(_strings(value.get("apps"))),
            frozenset(zone for zone, _ in groups | names),
            names,
        )


def _by_zone(value: Any) -> frozenset[GroupKey]:
    """(zone, item) of each item of a stored {zone: [items]}; anything else: none."""
    return frozenset(
        (zone, item)
        for zone, items in (value.items() if isinstance(value, dict) else ())
        if isinstance(zone, str)
        for item in _strings(items)
    )


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class ChallengeRecords:
    """The TXT records of one ACME challenge name (fodns/acme.py) as they are now: each
    value a TXT record of `ttl` seconds at `fqdn` (no final dot) in `zone`. No values:
    the name has no records and does not exist (a registration not yet updated, or
    deleted), so AXFR, IXFR and every DNS process agree on it."""

    zone: str
    fqdn: str
    ttl: int
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    """One entry of the append-only change log."""

    seq: int
    at: str  # ISO 8601 UTC
    actor: str  # the token name that made the change
    action: str  # app_created, app_updated, app_deleted, group_created, ...
    zone: str | None
    group: str | None  # label
    app: str | None  # name
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    touched: Touch = Touch()  # written with the event at commit (see Touch)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "zone": self.zone,
            "group": self.group,
            "app": self.app,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "touched": self.touched.to_json(),
        }


@dataclass(frozen=True)
class EventPage:
    """A page of the log and the newest seq of the whole log (0 when it is empty), read
    together: a follower learns whether anything is new without reading the newest
    event, and a `last_seq` below what it has read says the log went backwards (a
    database restored from a backup)."""

    events: list[Event]
    last_seq: int


def check_app_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not APP_NAME.fullmatch(name):
        raise Invalid(
            field, "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_group_label(label: Any, field: str = "label") -> str:
    if not isinstance(label, str) or not GROUP_LABEL.fullmatch(label):
        raise Invalid(
            field,
            "must be one DNS label: 1-63 letters, digits or '-', not starting or ending with '-'",
        )
    return label.lower()


def check_ttl(ttl: Any, field: str = "ttl") -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise Invalid(field, f"must be an integer number of seconds, not {ttl!r}")
    if not GROUP_TTL_MIN <= ttl <= GROUP_TTL_MAX:
        raise Invalid(field, f"must be between {GROUP_TTL_MIN} and {GROUP_TTL_MAX} seconds")
    return ttl


def check_side(side: Any, field: str = "to") -> Side:
    if side not in SIDES:
        raise Invalid(field, 'must be "primary" or "backup"')
    return side  # type: ignore[no-any-return]


def check_mode(mode: Any, field: str) -> Mode:
    if mode not in MODES:
        raise Invalid(field, 'must be "manual" or "auto"')
    return mode  # type: ignore[no-any-return]


def check_whole(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(field, f"must be a whole number from {low} to {high}")
    return value


def check_web_head(values: Any, field: str) -> tuple[str, ...]:
    """A load balancer or web servers: one hostname, or one to WEB_HEAD_MAX IP addresses.

    Addresses are normalised (2001:DB8::1 -> 2001:db8::1); a hostname is made
    absolute and lower-case. An empty list means "none".
    """
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, Sequence) or not all(isinstance(v, str) for v in values):
        raise Invalid(field, "must be a list of IP addresses or one hostname")
    if len(values) > WEB_HEAD_MAX:
        raise Invalid(
            field,
            f"has {len(values)} values; at most {WEB_HEAD_MAX} addresses fit in one "
            f"{WEB_HEAD_ANSWER_BYTES}-byte UDP answer",
        )
    addresses: list[str] = []
    hostnames: list[str] = []
    for value in values:
        address = _check_address(value.strip(), field)
        if address is not None:
            addresses.append(address)
        else:
            hostnames.append(_check_hostname(value.strip(), field))
    if hostnames and (addresses or len(hostnames) > 1):
        raise Invalid(field, "must be one hostname or only IP addresses, not a mix")
    if len(set(addresses)) != len(addresses):
        raise Invalid(field, "lists an address twice")
    return tuple(hostnames) if hostnames else tuple(addresses)


def _check_address(value: str, field: str) -> str | None:
    """The normalised address, or None when `value` is not an IP address at all."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        # fe80::1%eth0: the zone after % names an interface of one host (RFC 4007 §11);
        # it has no meaning in DNS and cannot be written as AAAA data.
        raise Invalid(field, f"{_shown(value)} is a scoped address; give it without the %zone")
    if address.is_unspecified or address.is_multicast:
        raise Invalid(field, f"{_shown(value)} cannot be a web head (unspecified or multicast)")
    return str(address)


def _check_hostname(value: str, field: str) -> str:
    last = value.rstrip(".").rpartition(".")[2]
    if last.isdigit():
        # RFC 1123 §2.1 and RFC 3696 §2: a top-level label is never all digits, so
        # 192.0.2.300 is a mistyped address, not a hostname.
        raise Invalid(field, f"{_shown(value)} is not a valid IP address (nor a hostname)")
    if len(value) > HOSTNAME_MAX or not HOSTNAME.fullmatch(value):
        raise Invalid(field, f"{_shown(value)} is neither an IP address nor a hostname")
    return dns.name.from_text(value).to_text().lower()


def _shown(value: str) -> str:
    """A value quoted for an error message, cut short: the input may be huge."""
    return repr(value if len(value) <= 80 else value[:77] + "...")
