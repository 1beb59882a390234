"""Configuration: the TOML file of DESIGN.md, checked, with CLI flags layered on top.

Every key is checked for type and range and unknown keys are errors, so a typo
stops start-up with a message naming the file and the key instead of being
silently ignored. Relative paths in a file are relative to that file's folder.

Secrets need not be in the file, which the systemd unit (DynamicUser=) needs
world-readable: a TSIG secret may come from a file of its own or from a systemd
credential (LoadCredential=, read from $CREDENTIALS_DIRECTORY).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import dns.exception
import dns.name

from fodns.acme import (
    DEFAULT_LABEL,
    DEFAULT_OPEN_PER_HOUR,
    DEFAULT_TTL,
    OPEN_PER_HOUR_MAX,
    REGISTRATION_MODES,
    TTL_MAX,
    TTL_MIN,
    AcmePlace,
)
from fodns.errors import ConfigError
from fodns.model import DEFAULT_GROUP_TTL, GROUP_LABEL, GROUP_TTL_MAX, GROUP_TTL_MIN

EXAMPLE_ZONE_NAME = "fo.example.net"
# Shipped inside the package (see pyproject.toml), so a `pip install .` has it too.
EXAMPLE_ZONE_FILE = Path(str(files("fodns") / "zones" / f"{EXAMPLE_ZONE_NAME}.zone"))
DEFAULT_DNS_LISTEN = "127.0.0.1:5353"
DEFAULT_API_LISTEN = "127.0.0.1:8053"
DEFAULT_DB_PATH = "var/fodns.db"
BUILT_IN = "built-in defaults"  # Config.source when no config file was given
HOST_NAME = re.compile(r"^(?=.{1,253}\.?$)([A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?$")
# RFC 6891 §6.2.5: below 512 is not allowed; 1232 is the DNS Flag Day 2020 value.
UDP_PAYLOAD_RANGE = (512, 4096)
DEFAULT_UDP_PAYLOAD = 1232
WORKERS_RANGE = (1, 64)
TCP_TIMEOUT_RANGE = (0.1, 3600.0)  # seconds, for each of the TCP timeouts
TCP_CONNECTIONS_RANGE = (1, 100_000)
# Where systemd puts a service's credentials (systemd.exec(5), "Credentials").
CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
ADMIN_TOKEN_CREDENTIAL = "admin-token"  # LoadCredential=admin-token:/etc/fodns/admin-token
# A [tsig.NAME] table takes its secret from exactly one of these.
SECRET_SOURCES = ("secret", "secret_file", "credential")
# The TSIG algorithms a [tsig.NAME] key may use: RFC 8945 §6's full-length HMACs,
# which Knot, NSD and BIND all speak. HMAC-MD5 is left out (§6: "MUST NOT" be
# used), as is anything else: a name dnspython does not implement would load and
# then fail at the first signed request, so it is refused at start-up instead.
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")
# Response rate limiting (fodns/rrl.py). On by default, with NSD's defaults: 200
# identical replies a second to one source network, every second reply over it
# sent truncated (slip 2). A resolver asks a name again only when its cache
# expires (30 s for a group), so even a large resolver farm behind one /24 stays
# far below 200 a second for any one question, while a reflection attack needs
# thousands. Loopback is exempt: a packet with a loopback source address never
# arrives from the network (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3; Linux drops such
# "martian" packets), so replies to it can only reach this host and amplify
# nothing, and local tools (a resolver on the same host, monitoring, dnsperf)
# would otherwise be limited.
RRL_DEFAULT_RESPONSES_PER_SECOND = 200
RRL_DEFAULT_SLIP = 2
RRL_DEFAULT_IPV4_PREFIX = 24  # NSD's and Knot's /24
RRL_DEFAULT_IPV6_PREFIX = 56  # Knot's /56: a site's allocation (NSD takes /64)
# Distinct (source network, response) pairs counted per second per worker; about
# what one worker answers in a second, so only a flood past the worker's capacity
# fills it (then new pairs go uncounted until the next second).
RRL_DEFAULT_TABLE_SIZE = 100_000
RRL_DEFAULT_EXEMPT = ("127.0.0.0/8", "::1/128")
RRL_KEYS = frozenset(
    {
        "rrl_responses_per_second",
        "rrl_slip",
        "rrl_ipv4_prefix",
        "rrl_ipv6_prefix",
        "rrl_table_size",
        "rrl_exempt",
    }
)


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, where: str) -> ListenAddress:
        """'127.0.0.1:53', '[::1]:53' or ':53' (all IPv4 addresses is never implied)."""
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ConfigError(f"{where}: {text!r} is not HOST:PORT (e.g. {DEFAULT_DNS_LISTEN})")
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{where}: port {port} is out of range 0-65535")
        host = host.removeprefix("[").removesuffix("]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(
                f"{where}: {host!r} is not an IP address (listen addresses are numeric)"
            ) from None
        return cls(host, port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class RateLimitConfig:
    """Response rate limiting of UDP replies (fodns/rrl.py); the `rrl_*` keys of [dns]."""

    responses_per_second: int = RRL_DEFAULT_RESPONSES_PER_SECOND  # 0: off
    slip: int = RRL_DEFAULT_SLIP  # every slip-th limited reply goes out truncated; 0: none
    ipv4_prefix: int = RRL_DEFAULT_IPV4_PREFIX
    ipv6_prefix: int = RRL_DEFAULT_IPV6_PREFIX
    table_size: int = RRL_DEFAULT_TABLE_SIZE
    exempt: list[Network] = field(
        default_factory=lambda: [ipaddress.ip_network(n) for n in RRL_DEFAULT_EXEMPT]
    )

    @property
    def enabled(self) -> bool:
        return self.responses_per_second > 0


@dataclass
class DnsConfig:
    listen: list[ListenAddress]
    workers: int = 1
    udp_payload: int = DEFAULT_UDP_PAYLOAD
    # RFC 7766 §6.2.3: idle TCP connections are closed after a while (Knot's
    # tcp-idle-timeout is 10 s too). Idle: no complete message in, nothing in progress.
    tcp_idle_timeout: float = 10.0
    # Once the first byte of a message is in, the rest must follow within this; the
    # idle timer is not moved by bytes, so a client trickling a message that never
    # completes (slowloris) holds its connection this long, not for ever. RFC 7766
    # §6.2.3 asks for timeouts of "at least a few seconds"; a query is one segment, and
    # 5 s still covers two retransmissions from a fresh connection (RFC 6298: 1 s
    # initial RTO, doubled). Knot times one message at 500 ms (tcp-io-timeout), BIND
    # gives a new connection 30 s for its first one (tcp-initial-timeout), NSD has one
    # 120 s timeout for everything (tcp-timeout).
    tcp_message_timeout: float = 5.0
    # A peer that takes none of our replies (or of a zone transfer, which it paces by
    # reading) for this long is cut. Generous, as transfers go to trusted secondaries
    # that may pause; BIND allows an outgoing transfer 60 minutes without progress
    # (max-transfer-idle-out), NSD 120 s (tcp-timeout, which covers transfers).
    tcp_write_timeout: float = 60.0
    # RFC 7766 §6.2.2: the number of open connections is capped, per DNS worker; a
    # newcomer over the cap closes the connection idle the longest (§6.2.3 lets a
    # loaded server drop idle connections) unless all are sending zone transfers.
    tcp_max_connections: int = 1000
    # ...and per source (an IPv4 address, an IPv6 /64), per worker, "much looser" than
    # the one or two connections a client should open (§6.2.2), as a source may be a
    # NAT or a resolver farm: a tenth of the default total, so no one source takes
    # more than 10 % of the slots. Knot, NSD and BIND have no such cap.
    tcp_max_connections_per_source: int = 100
    rrl: RateLimitConfig = field(default_factory=RateLimitConfig)


@dataclass
class ApiConfig:
    listen: ListenAddress
    token: str | None = None
    # Host names the API answers for besides IP addresses and localhost (behind a
    # reverse proxy, say); any other Host header gets 421 (DNS rebinding).
    allowed_hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TransferPeer:
    """One `allow_transfer` entry: peers in `network`, signing with TSIG key `key` if set."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    key: str | None = None

    def covers(self, address: str) -> bool:
        peer = ipaddress.ip_address(address)
        return peer.version == self.network.version and peer in self.network

    def admits(self, address: str, key: dns.name.Name | None) -> bool:
        """`address` is in the network and, if the entry names a key, signed with it.

        RFC 8945 §4.2: a key name is a domain name, so `XFR.` is the key `xfr`
        (dns.name.Name compares case-insensitively, and is always absolute).
        """
        if not self.covers(address):
            return False
        return self.key is None or (key is not None and key == dns.name.from_text(self.key))


@dataclass(frozen=True)
class NotifyTarget:
    """A secondary to NOTIFY; `key` is that of the allow_transfer entry covering it."""

    host: str
    port: int
    key: str | None = None


@dataclass
class ZoneConfig:
    name: str
    file: Path
    group_ttl: int = DEFAULT_GROUP_TTL
    notify: list[NotifyTarget] = field(default_factory=list)
    allow_transfer: list[TransferPeer] = field(default_factory=list)
    route53_hosted_zone_id: str | None = None


@dataclass
class TsigKeyConfig:
    name: str  # canonical: lower case, no final dot (see key_name)
    algorithm: str
    secret: str  # base64, from the config, a file or a systemd credential


def credential_path(name: str) -> Path | None:
    """The file of systemd credential `name` (LoadCredential=NAME:SOURCE in the unit),
    or None when this process was given no credentials."""
    directory = os.environ.get(CREDENTIALS_DIRECTORY)
    return Path(directory) / name if directory else None


def admin_token_credential() -> str | None:
    """The admin token from the credential `admin-token`, when systemd passes one."""
    path = credential_path(ADMIN_TOKEN_CREDENTIAL)
    if path is None or not path.exists():
        return None
    return _read_secret(path, f"credential {ADMIN_TOKEN_CREDENTIAL}")


def _read_secret(path: Path, what: str) -> str:
    """The text of a secret file, surrounding whitespace dropped; it must hold some."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{what}: {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{what}: {path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what}: {path}: not text") from None
    secret = text.strip()
    if not secret:
        raise ConfigError(f"{what}: {path}: is empty")
    return secret


def key_name(text: str) -> str:
    """A TSIG key name in one spelling: RFC 8945 §4.2 makes key names domain names,
    which compare case-insensitively and are absolute, so `XFR.` and `xfr` are one key."""
    return dns.name.from_text(text).canonicalize().to_text(omit_final_dot=True)


@dataclass
class Route53Config:
    enabled: bool = False
    region: str = "us-east-1"
    endpoint_url: str | None = None  # an emulator's, for tests
    profile: str | None = None  # a profile of ~/.aws/config; else boto3's default chain
    # Seconds between full comparisons of each hosted zone with fodns (0: only at
    # start, after failures and on demand).
    full_sync_interval: int = 3600
    # Seconds an API call to the mirror (GET /v1/route53/plan, POST .../sync) waits for
    # its answer before it replies 504; the mirror goes on with the work regardless.
    request_timeout: int = 120
    # Seconds one Route53 call may take (boto3's read timeout) before the mirror counts
    # it failed, backs off and finds out by a full sync what the call did.
    call_timeout: int = 30


@dataclass
class WebhooksConfig:
    """Webhook delivery (fodns/webhooks.py), the [webhooks] table. Off, the webhooks
    are kept and can be changed, but nothing is sent and their cursors stay where they
    are: turned on again, they deliver what they missed (a copy of a production
    database on a staging host must not call production's receivers)."""

    enabled: bool = True
    timeout: float = 10.0  # seconds an attempt may take, answer included
    first_retry: float = 1.0  # seconds before the second attempt; each wait doubles
    give_up_after: float = 86400.0  # seconds after an event's first attempt


@dataclass
class AcmeConfig:
    """ACME DNS-01 through fodns (fodns/acme.py), the [acme] table: off without `listen`.
    `zone` holds the challenge names (<subdomain>.<label>.<zone>); `registration` says
    who may register through the acme-dns API ("token": a write token of the admin API;
    "open": anyone, `open_registrations_per_hour` per client); `resolver` is where the
    customer's CNAME is looked up (None: the system's resolver)."""

    listen: ListenAddress | None = None
    zone: str | None = None
    label: str = DEFAULT_LABEL
    ttl: int = DEFAULT_TTL
    registration: str = "token"
    open_registrations_per_hour: int = DEFAULT_OPEN_PER_HOUR
    resolver: ListenAddress | None = None

    @property
    def enabled(self) -> bool:
        return self.listen is not None and self.zone is not None

    @property
    def place(self) -> AcmePlace | None:
        """Where new registrations' names go (None: ACME is off)."""
        if not self.enabled or self.zone is None:
            return None
        return AcmePlace(self.zone, self.label, self.ttl)


# [webhooks]'s durations: (low, high) seconds.
WEBHOOK_TIMEOUT_RANGE = (0.1, 300.0)
WEBHOOK_FIRST_RETRY_RANGE = (0.01, 3600.0)
WEBHOOK_GIVE_UP_RANGE = (0.1, 30 * 86400.0)


@dataclass
class Config:
    dns: DnsConfig
    api: ApiConfig
    store_path: Path
    zones: list[ZoneConfig]
    tsig: dict[str, TsigKeyConfig] = field(default_factory=dict)
    route53: Route53Config = field(default_factory=Route53Config)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    acme: AcmeConfig = field(default_factory=AcmeConfig)
    source: str = BUILT_IN


def load_config(
    path: Path | None,
    dns_listen: list[str] | None = None,
    api_listen: str | None = None,
    db_path: str | None = None,
) -> Config:
    """The config file (or the example defaults) with CLI overrides applied."""
    config = default_config() if path is None else _from_file(path)
    if dns_listen:
        config.dns.listen = [ListenAddress.parse(a, "--dns-listen") for a in dns_listen]
    if api_listen:
        config.api.listen = ListenAddress.parse(api_listen, "--api-listen")
    if db_path:
        config.store_path = Path(db_path)
    return config


def default_config() -> Config:
    """No config file: serve the example zone on loopback, as `make run` promises."""
    return Config(
        dns=DnsConfig(listen=[ListenAddress.parse(DEFAULT_DNS_LISTEN, "default")]),
        api=ApiConfig(listen=ListenAddress.parse(DEFAULT_API_LISTEN, "default")),
        store_path=Path(DEFAULT_DB_PATH),
        zones=[
            ZoneConfig(
                name=EXAMPLE_ZONE_NAME,
                file=EXAMPLE_ZONE_FILE,
                # So that the README's AXFR example works as pasted: from this host
                # only, unsigned. A real config names its secondaries and a TSIG key.
                allow_transfer=[TransferPeer(ipaddress.ip_network("127.0.0.0/8"))],
            )
        ],
        source=BUILT_IN,
    )


def _from_file(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    reader = _Reader(path)
    return reader.config(raw)


class _Reader:
    """Reads one config file; every error names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.resolve().parent

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def table(self, raw: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        for unknown in sorted(set(value) - allowed):
            raise self.fail(f"{key}.{unknown}", "unknown key")
        return value

    def typed(self, raw: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
        value = raw.get(key, default)
        if value is not None and (
            not isinstance(value, kind) or (isinstance(value, bool) and kind is int)
        ):
            raise self.fail(f"{where}.{key}", f"must be {kind.__name__}, not {value!r}")
        return value

    def ranged(self, value: int, low: int, high: int, key: str) -> int:
        if not low <= value <= high:
            raise self.fail(key, f"{value} is outside {low}-{high}")
        return value

    def seconds(self, raw: dict[str, Any], key: str, default: float) -> float:
        """A [dns] duration in seconds: an integer or a float, within TCP_TIMEOUT_RANGE."""
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"dns.{key}", f"must be a number of seconds, not {value!r}")
        low, high = TCP_TIMEOUT_RANGE
        if not low <= value <= high:
            raise self.fail(f"dns.{key}", f"{value} is outside {low:g}-{high:g} seconds")
        return float(value)

    def resolve(self, text: str) -> Path:
        path = Path(text)
        return path if path.is_absolute() else self.base / path

    def config(self, raw: dict[str, Any]) -> Config:
        known = {"dns", "api", "store", "zones", "tsig", "route53", "webhooks", "acme"}
        for unknown in sorted(set(raw) - known):
            raise self.fail(unknown, "unknown key")
        dns = self.table(
            raw,
            "dns",
            {
                "listen",
                "workers",
                "udp_payload",
                "tcp_idle_timeout",
                "tcp_message_timeout",
                "tcp_write_timeout",
                "tcp_max_connections",
                "tcp_max_connections_per_source",
                *RRL_KEYS,
            },
        )
        listen = self.typed(dns, "listen", list, [DEFAULT_DNS_LISTEN], "dns")
        if not listen:
            raise self.fail("dns.listen", "needs at least one address")
        api = self.table(raw, "api", {"listen", "token", "allowed_hosts"})
        store = self.table(raw, "store", {"path"})
        zones = raw.get("zones", [])
        if not isinstance(zones, list) or not zones:
            raise self.fail("zones", "needs at least one [[zones]] entry")
        keys = self.tsig(raw)
        zone_configs = [self.zone(z, index, keys) for index, z in enumerate(zones)]
        return Config(
            dns=DnsConfig(
                listen=[ListenAddress.parse(str(a), f"{self.path}: dns.listen") for a in listen],
                workers=self.ranged(
                    self.typed(dns, "workers", int, DnsConfig.workers, "dns"),
                    *WORKERS_RANGE,
                    "dns.workers",
                ),
                udp_payload=self.ranged(
                    self.typed(dns, "udp_payload", int, DnsConfig.udp_payload, "dns"),
                    *UDP_PAYLOAD_RANGE,
                    "dns.udp_payload",
                ),
                tcp_idle_timeout=self.seconds(dns, "tcp_idle_timeout", DnsConfig.tcp_idle_timeout),
                tcp_message_timeout=self.seconds(
                    dns, "tcp_message_timeout", DnsConfig.tcp_message_timeout
                ),
                tcp_write_timeout=self.seconds(
                    dns, "tcp_write_timeout", DnsConfig.tcp_write_timeout
                ),
                tcp_max_connections=self.ranged(
                    self.typed(
                        dns, "tcp_max_connections", int, DnsConfig.tcp_max_connections, "dns"
                    ),
                    *TCP_CONNECTIONS_RANGE,
                    "dns.tcp_max_connections",
                ),
                tcp_max_connections_per_source=self.ranged(
                    self.typed(
                        dns,
                        "tcp_max_connections_per_source",
                        int,
                        DnsConfig.tcp_max_connections_per_source,
                        "dns",
                    ),
                    *TCP_CONNECTIONS_RANGE,
                    "dns.tcp_max_connections_per_source",
                ),
                rrl=self.rate_limit(dns),
            ),
            api=ApiConfig(
                listen=ListenAddress.parse(
                    self.typed(api, "listen", str, DEFAULT_API_LISTEN, "api"),
                    f"{self.path}: api.listen",
                ),
                token=self.typed(api, "token", str, None, "api"),
                allowed_hosts=self.host_names(api),
            ),
            store_path=self.resolve(self.typed(store, "path", str, DEFAULT_DB_PATH, "store")),
            zones=zone_configs,
            tsig=keys,
            route53=self.route53(raw, zone_configs),
            webhooks=self.webhooks(raw),
            acme=self.acme(raw, zone_configs),
            source=str(self.path),
        )

    def host_names(self, api: dict[str, Any]) -> list[str]:
        names = self.typed(api, "allowed_hosts", list, [], "api")
        for index, name in enumerate(names):
            if not isinstance(name, str) or not HOST_NAME.match(name):
                raise self.fail(f"api.allowed_hosts[{index}]", f"{name!r} is not a host name")
        return [name.lower().rstrip(".") for name in names]

    def rate_limit(self, dns: dict[str, Any]) -> RateLimitConfig:
        def number(key: str, default: int, low: int, high: int) -> int:
            return self.ranged(self.typed(dns, key, int, default, "dns"), low, high, f"dns.{key}")

        exempt = []
        for index, text in enumerate(
            self.typed(dns, "rrl_exempt", list, list(RRL_DEFAULT_EXEMPT), "dns")
        ):
            try:
                exempt.append(ipaddress.ip_network(str(text), strict=False))
            except ValueError:
                raise self.fail(
                    f"dns.rrl_exempt[{index}]", f"{text!r} is not an address or network"
                ) from None
        return RateLimitConfig(
            responses_per_second=number(
                "rrl_responses_per_second", RRL_DEFAULT_RESPONSES_PER_SECOND, 0, 1_000_000
            ),
            slip=number("rrl_slip", RRL_DEFAULT_SLIP, 0, 100),
            ipv4_prefix=number("rrl_ipv4_prefix", RRL_DEFAULT_IPV4_PREFIX, 0, 32),
            ipv6_prefix=number("rrl_ipv6_prefix", RRL_DEFAULT_IPV6_PREFIX, 0, 128),
            table_size=number("rrl_table_size", RRL_DEFAULT_TABLE_SIZE, 100, 10_000_000),
            exempt=exempt,
        )

    def zone(self, raw: Any, index: int, keys: dict[str, TsigKeyConfig]) -> ZoneConfig:
        where = f"zones[{index}]"
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a table")
        allowed = {
            "name",
            "file",
            "group_ttl",
            "notify",
            "allow_transfer",
            "route53_hosted_zone_id",
        }
        for unknown in sorted(set(raw) - allowed):
            raise self.fail(f"{where}.{unknown}", "unknown key")
        name = self.typed(raw, "name", str, None, where)
        file = self.typed(raw, "file", str, None, where)
        if not name:
            raise self.fail(f"{where}.name", "is required")
        if not file:
            raise self.fail(f"{where}.file", "is required")
        peers = self.transfer_peers(raw, where, keys)
        return ZoneConfig(
            name=name.rstrip(".").lower(),
            file=self.resolve(file),
            group_ttl=self.ranged(
                self.typed(raw, "group_ttl", int, ZoneConfig.group_ttl, where),
                GROUP_TTL_MIN,
                GROUP_TTL_MAX,
                f"{where}.group_ttl",
            ),
            notify=self.notify_targets(raw, where, peers),
            allow_transfer=peers,
            route53_hosted_zone_id=self.typed(raw, "route53_hosted_zone_id", str, None, where),
        )

    def transfer_peers(
        self, raw: dict[str, Any], where: str, keys: dict[str, TsigKeyConfig]
    ) -> list[TransferPeer]:
        peers = []
        for index, entry in enumerate(self.typed(raw, "allow_transfer", list, [], where)):
            place = f"{where}.allow_transfer[{index}]"
            if not isinstance(entry, dict) or set(entry) - {"address", "key"}:
                raise self.fail(place, 'must be { address = "NETWORK", key = "NAME" }')
            try:
                network = ipaddress.ip_network(str(entry.get("address", "")), strict=False)
            except ValueError:
                raise self.fail(f"{place}.address", "is not an address or network") from None
            key = entry.get("key")
            if key is not None:
                key = self.key_name(str(key), f"{place}.key")
                if key not in keys:
                    raise self.fail(f"{place}.key", f"no [tsig.{key}] in this file")
            peers.append(TransferPeer(network, key))
        return peers

    def notify_targets(
        self, raw: dict[str, Any], where: str, peers: list[TransferPeer]
    ) -> list[NotifyTarget]:
        targets = []
        for index, text in enumerate(self.typed(raw, "notify", list, [], where)):
            address = ListenAddress.parse(str(text), f"{self.path}: {where}.notify[{index}]")
            # Sign with the key the secondary transfers with (RFC 1996 §3.3 NOTIFY, TSIG).
            key = next((p.key for p in peers if p.key and p.covers(address.host)), None)
            targets.append(NotifyTarget(address.host, address.port, key))
        return targets

    def key_name(self, text: str, where: str) -> str:
        try:
            return key_name(text)
        except dns.exception.DNSException as exc:
            raise self.fail(where, f"{text!r} is not a domain name: {exc}") from None

    def tsig(self, raw: dict[str, Any]) -> dict[str, TsigKeyConfig]:
        keys: dict[str, TsigKeyConfig] = {}
        spelled: dict[str, str] = {}  # canonical name -> the table that defined it
        for table_name, key in self.table(raw, "tsig", set(raw.get("tsig", {}))).items():
            where = f"tsig.{table_name}"
            if not isinstance(key, dict):
                raise self.fail(where, "must be a table")
            name = self.key_name(table_name, where)
            if name in spelled:
                raise self.fail(where, f"the same key name as tsig.{spelled[name]}")
            spelled[name] = table_name
            for unknown in sorted(set(key) - {"algorithm", *SECRET_SOURCES}):
                raise self.fail(f"{where}.{unknown}", "unknown key")
            algorithm = self.tsig_algorithm(key, where)
            keys[name] = TsigKeyConfig(name, algorithm, self.tsig_secret(key, where))
        return keys

    def tsig_algorithm(self, key: dict[str, Any], where: str) -> str:
        """The key's algorithm, spelled as TSIG_ALGORITHMS does: algorithm names are
        domain names (RFC 8945 §4.2), so letter case and a final dot do not matter."""
        text: str = self.typed(key, "algorithm", str, "hmac-sha256", where)
        spelled = text.lower().removesuffix(".")
        if spelled not in TSIG_ALGORITHMS:
            raise self.fail(
                f"{where}.algorithm",
                f"{text!r} is not a TSIG algorithm fodns signs with"
                f" (one of {', '.join(TSIG_ALGORITHMS)})",
            )
        return spelled

    def tsig_secret(self, key: dict[str, Any], where: str) -> str:
        """The base64 secret of one [tsig.NAME] table: `secret` inline, `secret_file`
        (a path, relative to this file's folder) or `credential` (a systemd
        credential's name, for LoadCredential=), exactly one of them."""
        given = [source for source in SECRET_SOURCES if source in key]
        if len(given) != 1:
            found = f" (it has {' and '.join(given)})" if given else ""
            raise self.fail(where, f"needs exactly one of {', '.join(SECRET_SOURCES)}{found}")
        [source] = given
        value: str = self.typed(key, source, str, None, where)
        place = f"{where}.{source}"
        if source == "secret":
            secret, what = value.strip(), place
            if not secret:
                raise self.fail(place, "is empty")
        elif source == "secret_file":
            path = self.resolve(value)
            secret, what = self.secret_from(path, place), f"{place}: {path}"
        else:
            path = self.credential(value, place)
            secret, what = self.secret_from(path, place), f"{place}: {path}"
        try:
            if not base64.b64decode(secret, validate=True):
                raise ValueError
        except (binascii.Error, ValueError):
            raise self.fail(what, "is not base64 (`openssl rand -base64 32` makes one)") from None
        return secret

    def secret_from(self, path: Path, place: str) -> str:
        try:
            return _read_secret(path, place)
        except ConfigError as error:
            raise ConfigError(f"{self.path}: {error}") from None

    def credential(self, name: str, place: str) -> Path:
        if not name or "/" in name or name in (".", ".."):
            raise self.fail(place, f"{name!r} is not a credential name (LoadCredential=NAME:...)")
        path = credential_path(name)
        if path is None:
            raise self.fail(
                place,
                f"${CREDENTIALS_DIRECTORY} is not set: run under systemd with "
                f"LoadCredential={name}:/path/to/file, or use secret_file",
            )
        return path

    def route53(self, raw: dict[str, Any], zones: list[ZoneConfig]) -> Route53Config:
        section = self.table(
            raw,
            "route53",
            {
                "enabled",
                "region",
                "endpoint_url",
                "profile",
                "full_sync_interval",
                "request_timeout",
                "call_timeout",
            },
        )
        config = Route53Config(
            enabled=self.typed(section, "enabled", bool, False, "route53"),
            region=self.typed(section, "region", str, Route53Config.region, "route53"),
            endpoint_url=self.typed(section, "endpoint_url", str, None, "route53"),
            profile=self.typed(section, "profile", str, None, "route53"),
            full_sync_interval=self.ranged(
                self.typed(
                    section, "full_sync_interval", int, Route53Config.full_sync_interval, "route53"
                ),
                0,
                7 * 86400,
                "route53.full_sync_interval",
            ),
            request_timeout=self.ranged(
                self.typed(
                    section, "request_timeout", int, Route53Config.request_timeout, "route53"
                ),
                1,
                3600,
                "route53.request_timeout",
            ),
            call_timeout=self.ranged(
                self.typed(section, "call_timeout", int, Route53Config.call_timeout, "route53"),
                1,
                300,
                "route53.call_timeout",
            ),
        )
        if config.enabled and not any(z.route53_hosted_zone_id for z in zones):
            raise self.fail(
                "route53.enabled", "no [[zones]] entry has a route53_hosted_zone_id to mirror"
            )
        return config

    def acme(self, raw: dict[str, Any], zones: list[ZoneConfig]) -> AcmeConfig:
        section = self.table(
            raw,
            "acme",
            {
                "listen",
                "zone",
                "label",
                "ttl",
                "registration",
                "open_registrations_per_hour",
                "resolver",
            },
        )
        listen_text = self.typed(section, "listen", str, None, "acme")
        listen = (
            None
            if not listen_text
            else ListenAddress.parse(listen_text, f"{self.path}: acme.listen")
        )
        names = [zone.name for zone in zones]
        zone_text = self.typed(section, "zone", str, None, "acme")
        if zone_text is None:
            # One zone served: it is the only place the challenges can go.
            zone = names[0] if len(names) == 1 else None
            if listen is not None and zone is None:
                raise self.fail(
                    "acme.zone", f"name the zone of the challenges: one of {', '.join(names)}"
                )
        else:
            zone = zone_text.rstrip(".").lower()
            if zone not in names:
                raise self.fail("acme.zone", f"{zone_text!r} is not a [[zones]] entry of this file")
        label = self.typed(section, "label", str, DEFAULT_LABEL, "acme").lower()
        if not GROUP_LABEL.fullmatch(label):
            raise self.fail("acme.label", f"{label!r} is not one DNS label (letters, digits, '-')")
        if zone is not None:
            below = f"{label}.{zone}"
            nested = [name for name in names if name == below or name.endswith(f".{below}")]
            if nested:
                raise self.fail(
                    "acme.label", f"{below} is at or above the zone {nested[0]} of this file"
                )
        registration = self.typed(section, "registration", str, "token", "acme")
        if registration not in REGISTRATION_MODES:
            raise self.fail("acme.registration", 'must be "token" or "open"')
        resolver_text = self.typed(section, "resolver", str, "", "acme")
        return AcmeConfig(
            listen=listen,
            zone=zone,
            label=label,
            ttl=self.ranged(
                self.typed(section, "ttl", int, DEFAULT_TTL, "acme"), TTL_MIN, TTL_MAX, "acme.ttl"
            ),
            registration=registration,
            open_registrations_per_hour=self.ranged(
                self.typed(
                    section, "open_registrations_per_hour", int, DEFAULT_OPEN_PER_HOUR, "acme"
                ),
                1,
                OPEN_PER_HOUR_MAX,
                "acme.open_registrations_per_hour",
            ),
            resolver=self.resolver(resolver_text),
        )

    def resolver(self, text: str) -> ListenAddress | None:
        """[acme] resolver: "" (the system's), "HOST:PORT", or a bare address (port 53)."""
        if not text:
            return None
        where = f"{self.path}: acme.resolver"
        try:
            ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
        except ValueError:
            return ListenAddress.parse(text, where)
        return ListenAddress(text.removeprefix("[").removesuffix("]"), 53)

    def webhooks(self, raw: dict[str, Any]) -> WebhooksConfig:
        section = self.table(
            raw, "webhooks", {"enabled", "timeout", "first_retry", "give_up_after"}
        )

        def duration(key: str, default: float, bounds: tuple[float, float]) -> float:
            value = section.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(f"webhooks.{key}", f"must be a number of seconds, not {value!r}")
            low, high = bounds
            if not low <= value <= high:
                raise self.fail(f"webhooks.{key}", f"{value} is outside {low:g}-{high:g} seconds")
            return float(value)

        return WebhooksConfig(
            enabled=self.typed(section, "enabled", bool, True, "webhooks"),
            timeout=duration("timeout", WebhooksConfig.timeout, WEBHOOK_TIMEOUT_RANGE),
            first_retry=duration(
                "first_retry", WebhooksConfig.first_retry, WEBHOOK_FIRST_RETRY_RANGE
            ),
            give_up_after=duration(
                "give_up_after", WebhooksConfig.give_up_after, WEBHOOK_GIVE_UP_RANGE
            ),
        )
