"""Configuration: the TOML file of DESIGN.md, checked, with CLI flags layered on top.

Every key is checked for type and range and unknown keys are errors, so a typo
stops start-up with a message naming the file and the key instead of being
silently ignored. Relative paths in a file are relative to that file's folder.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fodns.errors import ConfigError

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ZONE_NAME = "fo.example.net"
DEFAULT_DNS_LISTEN = "127.0.0.1:5353"
DEFAULT_API_LISTEN = "127.0.0.1:8053"
DEFAULT_DB_PATH = "var/fodns.db"
GROUP_TTL_RANGE = (5, 86400)
# RFC 6891 §6.2.5: below 512 is not allowed; 1232 is the DNS Flag Day 2020 value.
UDP_PAYLOAD_RANGE = (512, 4096)
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
            raise ConfigError(f"{where}: {text!r} is not HOST:PORT (e.g. 127.0.0.1:5353)")
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
    udp_payload: int = 1232
    # RFC 7766 §6.2.3: idle TCP connections are closed after a while...
    tcp_idle_timeout: float = 10.0
    # ...and §6.2.2: the number of open connections is capped.
    tcp_max_connections: int = 1000
    rrl: RateLimitConfig = field(default_factory=RateLimitConfig)


@dataclass
class ApiConfig:
    listen: ListenAddress
    token: str | None = None


@dataclass(frozen=True)
class TransferPeer:
    """One `allow_transfer` entry: peers in `network`, signing with TSIG key `key` if set."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    key: str | None = None

    def covers(self, address: str) -> bool:
        peer = ipaddress.ip_address(address)
        return peer.version == self.network.version and peer in self.network

    def admits(self, address: str, key: str | None) -> bool:
        return self.covers(address) and (self.key is None or self.key == key)


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
    group_ttl: int = 30
    notify: list[NotifyTarget] = field(default_factory=list)
    allow_transfer: list[TransferPeer] = field(default_factory=list)
    route53_hosted_zone_id: str | None = None


@dataclass
class TsigKeyConfig:
    name: str
    algorithm: str
    secret: str


@dataclass
class Route53Config:
    enabled: bool = False
    region: str = "us-east-1"
    endpoint_url: str | None = None  # an emulator's, for tests
    profile: str | None = None  # a profile of ~/.aws/config; else boto3's default chain
    # Seconds between full comparisons of each hosted zone with fodns (0: only at
    # start, after failures and on demand).
    full_sync_interval: int = 3600


@dataclass
class Config:
    dns: DnsConfig
    api: ApiConfig
    store_path: Path
    zones: list[ZoneConfig]
    tsig: dict[str, TsigKeyConfig] = field(default_factory=dict)
    route53: Route53Config = field(default_factory=Route53Config)
    source: str = "built-in defaults"


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
    zone_file = Path("zones") / f"{EXAMPLE_ZONE_NAME}.zone"
    if not zone_file.exists():
        zone_file = REPOSITORY_ROOT / zone_file
    return Config(
        dns=DnsConfig(listen=[ListenAddress.parse(DEFAULT_DNS_LISTEN, "default")]),
        api=ApiConfig(listen=ListenAddress.parse(DEFAULT_API_LISTEN, "default")),
        store_path=Path(DEFAULT_DB_PATH),
        zones=[ZoneConfig(name=EXAMPLE_ZONE_NAME, file=zone_file)],
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

    def resolve(self, text: str) -> Path:
        path = Path(text)
        return path if path.is_absolute() else self.base / path

    def config(self, raw: dict[str, Any]) -> Config:
        for unknown in sorted(set(raw) - {"dns", "api", "store", "zones", "tsig", "route53"}):
            raise self.fail(unknown, "unknown key")
        dns = self.table(
            raw,
            "dns",
            {
                "listen",
                "workers",
                "udp_payload",
                "tcp_idle_timeout",
                "tcp_max_connections",
                *RRL_KEYS,
            },
        )
        listen = self.typed(dns, "listen", list, [DEFAULT_DNS_LISTEN], "dns")
        if not listen:
            raise self.fail("dns.listen", "needs at least one address")
        api = self.table(raw, "api", {"listen", "token"})
        store = self.table(raw, "store", {"path"})
        zones = raw.get("zones", [])
        if not isinstance(zones, list) or not zones:
            raise self.fail("zones", "needs at least one [[zones]] entry")
        idle = self.typed(dns, "tcp_idle_timeout", (int, float), 10.0, "dns")  # type: ignore[arg-type]
        keys = self.tsig(raw)
        zone_configs = [self.zone(z, index, keys) for index, z in enumerate(zones)]
        return Config(
            dns=DnsConfig(
                listen=[ListenAddress.parse(str(a), f"{self.path}: dns.listen") for a in listen],
                workers=self.ranged(
                    self.typed(dns, "workers", int, 1, "dns"), 1, 64, "dns.workers"
                ),
                udp_payload=self.ranged(
                    self.typed(dns, "udp_payload", int, 1232, "dns"),
                    *UDP_PAYLOAD_RANGE,
                    "dns.udp_payload",
                ),
                tcp_idle_timeout=float(idle),
                tcp_max_connections=self.ranged(
                    self.typed(dns, "tcp_max_connections", int, 1000, "dns"),
                    1,
                    100_000,
                    "dns.tcp_max_connections",
                ),
                rrl=self.rate_limit(dns),
            ),
            api=ApiConfig(
                listen=ListenAddress.parse(
                    self.typed(api, "listen", str, DEFAULT_API_LISTEN, "api"),
                    f"{self.path}: api.listen",
                ),
                token=self.typed(api, "token", str, None, "api"),
            ),
            store_path=self.resolve(self.typed(store, "path", str, DEFAULT_DB_PATH, "store")),
            zones=zone_configs,
            tsig=keys,
            route53=self.route53(raw, zone_configs),
            source=str(self.path),
        )

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
                self.typed(raw, "group_ttl", int, 30, where), *GROUP_TTL_RANGE, f"{where}.group_ttl"
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
            if key is not None and key not in keys:
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

    def tsig(self, raw: dict[str, Any]) -> dict[str, TsigKeyConfig]:
        keys = {}
        for name, key in self.table(raw, "tsig", set(raw.get("tsig", {}))).items():
            where = f"tsig.{name}"
            if not isinstance(key, dict):
                raise self.fail(where, "must be a table")
            secret = self.typed(key, "secret", str, None, where)
            if not secret:
                raise self.fail(f"{where}.secret", "is required")
            algorithm = self.typed(key, "algorithm", str, "hmac-sha256", where)
            keys[name] = TsigKeyConfig(name, algorithm, secret)
        return keys

    def route53(self, raw: dict[str, Any], zones: list[ZoneConfig]) -> Route53Config:
        section = self.table(
            raw, "route53", {"enabled", "region", "endpoint_url", "profile", "full_sync_interval"}
        )
        config = Route53Config(
            enabled=self.typed(section, "enabled", bool, False, "route53"),
            region=self.typed(section, "region", str, "us-east-1", "route53"),
            endpoint_url=self.typed(section, "endpoint_url", str, None, "route53"),
            profile=self.typed(section, "profile", str, None, "route53"),
            full_sync_interval=self.ranged(
                self.typed(section, "full_sync_interval", int, 3600, "route53"),
                0,
                7 * 86400,
                "route53.full_sync_interval",
            ),
        )
        if config.enabled and not any(z.route53_hosted_zone_id for z in zones):
            raise self.fail(
                "route53.enabled", "no [[zones]] entry has a route53_hosted_zone_id to mirror"
            )
        return config
