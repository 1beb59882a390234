"""ACME DNS-01 through fodns: the rules of acme-dns registrations and of their TXT values.

acme-dns (joohoi/acme-dns) is how ACME clients delegate DNS-01 (lego, cert-manager,
Caddy, certbot's hooks speak it): the customer adds `_acme-challenge.<name> CNAME
<subdomain>.<label>.<zone>` once, and a client holding a narrow credential sets the TXT
records behind that name, and nothing else. fodns speaks its API unchanged. This module
is what is pure: credentials and what the store keeps of them, the TXT value's form,
allowfrom networks, the customer's names and the CNAMEs they need, and the rate limit
of open registrations. fodns/acmerows.py keeps registrations in the store,
fodns/acmezone.py serves their records, fodns/acmedns.py is the acme-dns API,
fodns/acmeapi.py the admin API's part, fodns/cnamecheck.py the customer's CNAME check.

Decisions beyond the spec:

- A registration keeps the zone and label it was made under: changing `[acme] label`
  or `zone` later never moves a name that customers' CNAMEs already point at.
- A name has records only once a value is set: a registration never updated (or
  deleted) is NXDOMAIN on fodns and on every secondary alike (an empty node would be
  NODATA here and NXDOMAIN on a secondary, which zone transfers cannot carry).
- Setting a value the name already holds changes nothing in DNS (no event, no
  serial): it only becomes the newer of the two, as a client retrying expects.
- A customer name may be a wildcard (`*.shop.com`): its challenge is at
  `_acme-challenge.shop.com` (RFC 8555 §8.4, RFC 8659), so it needs no CNAME of its own.
- allowfrom takes networks (192.0.2.0/24) and single addresses (192.0.2.7 is /32),
  checked against the TCP peer: behind a reverse proxy that is the proxy's address.
- Open registrations are counted per IPv4 address and per IPv6 /64 (one host or
  one customer's network has a /64 to draw from).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fodns.errors import Invalid
from fodns.model import HOSTNAME_MAX
from fodns.tokens import secret_hash

# RFC 8555 §8.4: a DNS-01 TXT value is the base64url SHA-256 digest of the key
# authorization, without padding: 43 characters of the URL-safe alphabet (acme-dns
# accepts exactly these).
TXT_LENGTH = 43
TXT_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# Each name keeps its two newest values: a certificate for shop.com and *.shop.com is
# validated at once, both challenges at _acme-challenge.shop.com.
VALUES_KEPT = 2
# acme-dns's passwords are 40 characters; 30 random bytes are 40 of URL-safe base64.
PASSWORD_LENGTH = 40
PASSWORD_BYTES = 30
PASSWORD = re.compile(r"^[A-Za-z0-9_-]{40}$")
# A subdomain and a username are UUIDs (version 4), written lower-case.
UUID_FORM = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CHALLENGE_LABEL = "_acme-challenge"
# A customer's name: a host name (model.HOSTNAME), or a wildcard's `*.` and one. The
# API publishes this pattern (fodns/schemas.py); check_names takes all it matches.
CUSTOMER_NAME = re.compile(r"^(\*\.)?([A-Za-z0-9_-]{1,63}\.)+[A-Za-z][A-Za-z0-9_-]{0,62}\.?$")
# An allowfrom entry: an IPv4 or IPv6 address, with a prefix length or without (one
# address). Written for every JSON Schema validator, as fodns/schemas.py publishes it:
# IPv6 in RFC 4291 §2.2's forms without an embedded IPv4 address.
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = (
    f"(({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}"
    f"|({_H}:){{1,4}}(:{_H}){{1,3}}|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}"
    f"|{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:))"
)
NETWORK = re.compile(
    rf"^(({_OCTET}\.){{3}}{_OCTET}(/(3[0-2]|[12]?[0-9]))?"
    rf"|{_IPV6}(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$"
)
# Let's Encrypt puts at most 100 names on a certificate.
NAMES_MAX = 100
# A name's 253 characters (model.HOSTNAME_MAX), a wildcard's `*.` and a final dot.
NAME_MAX_LENGTH = HOSTNAME_MAX + 3
ALLOWFROM_MAX = 32
# [acme] defaults and bounds (fodns/config.py reads them).
DEFAULT_LABEL = "acme"
DEFAULT_TTL = 10
TTL_MIN, TTL_MAX = 5, 300
DEFAULT_OPEN_PER_HOUR = 20
OPEN_PER_HOUR_MAX = 10_000
REGISTRATION_MODES = ("token", "open")
# Clients whose open registrations are counted at once; past it new clients wait.
LIMITED_CLIENTS_MAX = 10_000
HOUR = 3600.0
# acme_updated events older than this are deleted (fodns/acmerows.py says why safely).
UPDATED_EVENTS_KEPT = 7 * 86400


@dataclass(frozen=True)
class AcmePlace:
    """Where new registrations' names go and the TTL of their records: the store's
    view of [acme] (zone and label as configured, lower-case)."""

    zone: str
    label: str
    ttl: int = DEFAULT_TTL


@dataclass(frozen=True)
class Credentials:
    """A new registration's credentials: the password is shown once, in the reply
    that makes it; the store keeps only `password_hash`."""

    username: str
    password: str
    subdomain: str

    @property
    def password_hash(self) -> str:
        return password_hash(self.password)


def new_credentials() -> Credentials:
    return Credentials(
        username=str(uuid.uuid4()),
        password=secrets.token_urlsafe(PASSWORD_BYTES),
        subdomain=str(uuid.uuid4()),
    )


def password_hash(password: str) -> str:
    """What the store keeps of a password: its SHA-256, as for the admin tokens (see
    fodns/tokens.py). A password is 240 random bits, so nothing can be guessed from its
    hash and a slow salted hash (acme-dns's bcrypt) buys nothing; it would only cost
    each update tens of milliseconds of CPU on the loop that, with workers = 1, also
    answers DNS. A copy of the database holds no usable password."""
    return secret_hash(password)


def password_matches(presented: str, stored_hash: str) -> bool:
    """Whether `presented` is the password whose hash the store keeps (constant time)."""
    return hmac.compare_digest(password_hash(presented), stored_hash)


def canonical_uuid(text: Any) -> str | None:
    """A username or subdomain as fodns writes it (lower-case), or None when `text` is
    not a UUID at all: such a request names no registration."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def valid_txt(value: Any) -> bool:
    """Whether `value` is a DNS-01 TXT value: 43 characters of base64url, no padding."""
    return isinstance(value, str) and TXT_VALUE.fullmatch(value) is not None


def valid_password(value: Any) -> bool:
    return isinstance(value, str) and PASSWORD.fullmatch(value) is not None


# ---- allowfrom -----------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_allowfrom(values: Any, field: str = "allowfrom") -> tuple[str, ...]:
    """The networks updates may come from, normalised (192.0.2.7/24 is 192.0.2.0/24, a
    single address its /32 or /128); none: from anywhere. Invalid naming `field`."""
    if values is None:
        return ()
    if not isinstance(values, list) or len(values) > ALLOWFROM_MAX:
        raise Invalid(field, f"must be a list of at most {ALLOWFROM_MAX} networks")
    networks: list[str] = []
    for value in values:
        if not isinstance(value, str) or not NETWORK.fullmatch(value.strip()):
            shown = repr(value[:64]) if isinstance(value, str) else "each"
            raise Invalid(field, f"{shown} is not a network such as 192.0.2.0/24 or 2001:db8::/48")
        network = ipaddress.ip_network(value.strip(), strict=False)
        if str(network) not in networks:
            networks.append(str(network))
    return tuple(networks)


def allowed_from(allowfrom: Sequence[str], peer: str | None) -> bool:
    """Whether an update from TCP peer `peer` is allowed: anywhere when `allowfrom` is
    empty, else only from inside one of its networks (an IPv4 peer seen as an
    IPv4-mapped IPv6 address counts as the IPv4 one)."""
    if not allowfrom:
        return True
    address = _address(peer)
    if address is None:
        return False
    for text in allowfrom:
        network = ipaddress.ip_network(text)
        if network.version == address.version and address in network:
            return True
    return False


def _address(peer: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not peer:
        return None
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# ---- the customer's names ----------------------------------------------------------------


def check_names(values: Any, field: str = "names") -> tuple[str, ...]:
    """The customer's names a registration is for (`www.shop.com`, `*.shop.com`):
    lower-case, without the final dot, each once, 1 to NAMES_MAX of them."""
    if not isinstance(values, list) or not 1 <= len(values) <= NAMES_MAX:
        raise Invalid(field, f"must be a list of 1 to {NAMES_MAX} names")
    names: list[str] = []
    for value in values:
        if (
            not isinstance(value, str)
            or len(value) > NAME_MAX_LENGTH
            or not CUSTOMER_NAME.fullmatch(value.strip())
        ):
            shown = repr(value[:80]) if isinstance(value, str) else "each"
            raise Invalid(field, f"{shown} is not a host name such as www.shop.com (or *.shop.com)")
        name = value.strip().lower().rstrip(".")
        if name not in names:
            names.append(name)
    return tuple(names)


def challenge_name(name: str) -> str:
    """Where an ACME server looks for `name`'s DNS-01 TXT (RFC 8555 §8.4): a wildcard's
    at the name below the `*.` (RFC 8659 §3's reading of a wildcard's base)."""
    return f"{CHALLENGE_LABEL}.{name.removeprefix('*.')}"


def cnames(names: Sequence[str], fulldomain: str) -> list[dict[str, str]]:
    """The records the customer adds: one CNAME per challenge name (shop.com and
    *.shop.com share one), each to the registration's name."""
    seen: list[str] = []
    for name in names:
        record = challenge_name(name)
        if record not in seen:
            seen.append(record)
    return [{"name": record, "target": fulldomain} for record in seen]


# ---- registrations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """An acme-dns registration as the store keeps it, without its password's hash.
    `group` and `group_zone` name the failover group it was made for (None: one made
    through the acme-dns API, for no group); `names` are the customer's names."""

    subdomain: str
    username: str
    zone: str
    label: str
    allowfrom: tuple[str, ...] = ()
    group: str | None = None
    group_zone: str | None = None
    names: tuple[str, ...] = ()
    created_at: str = ""
    created_by: str = ""
    updated_at: str | None = None  # when a TXT value was last set (None: never)

    @property
    def fulldomain(self) -> str:
        """The name whose TXT records the registration sets: the customer's CNAME target."""
        return f"{self.subdomain}.{self.label}.{self.zone}"

    def to_json(self) -> dict[str, Any]:
        """As the admin API shows it (and its events' before and after): never the
        password nor its hash."""
        return {
            "subdomain": self.subdomain,
            "username": self.username,
            "fulldomain": self.fulldomain,
            "allowfrom": list(self.allowfrom),
            "group": self.group,
            "group_zone": self.group_zone,
            "names": list(self.names),
            "cnames": cnames(self.names, self.fulldomain),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
        }

    def acme_dns_json(self, password: str) -> dict[str, Any]:
        """acme-dns's own reply to a registration: what its clients read and keep."""
        return {
            "username": self.username,
            "password": password,
            "fulldomain": self.fulldomain,
            "subdomain": self.subdomain,
            "allowfrom": list(self.allowfrom),
        }


# ---- open registrations' rate limit ------------------------------------------------------


def client_key(peer: str | None) -> str:
    """Whom an open registration is counted against: an IPv4 address, an IPv6 /64."""
    address = _address(peer)
    if address is None:
        return peer or "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass
class RegistrationLimiter:
    """At most `per_hour` open registrations from one client in any hour (a sliding
    window), counting at most LIMITED_CLIENTS_MAX clients at once: a flood of clients
    past that waits rather than growing the table without bound."""

    per_hour: int
    clock: Callable[[], float] = time.monotonic
    _taken: dict[str, deque[float]] = field(default_factory=dict)

    def take(self, peer: str | None) -> float | None:
        """Count a registration from `peer`: None when it may go ahead, else the
        seconds until it may (nothing counted)."""
        now = self.clock()
        key = client_key(peer)
        times = self._taken.get(key)
        if times is None:
            if len(self._taken) >= LIMITED_CLIENTS_MAX:
                self._forget_before(now - HOUR)
                if len(self._taken) >= LIMITED_CLIENTS_MAX:
                    return HOUR - (now - min(t[-1] for t in self._taken.values()))
            times = self._taken[key] = deque()
        while times and times[0] <= now - HOUR:
            times.popleft()
        if len(times) >= self.per_hour:
            return max(1.0, HOUR - (now - times[0]))
        times.append(now)
        return None

    def _forget_before(self, moment: float) -> None:
        for key in [key for key, times in self._taken.items() if times[-1] <= moment]:
            del self._taken[key]
