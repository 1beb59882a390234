"""An app's health check: its settings (CheckSpec), their defaults and their checks.

A check probes each address of the app's web head (a hostname web head is resolved
when the check runs) over HTTP, HTTPS or a plain TCP connect, every `interval`
seconds. `fall` failures in a row take an address down, `rise` successes in a row
bring it up (two thresholds, unlike Route53's one: going down fast and coming back
carefully are different wishes). The app is up while at least `min_healthy` of
its addresses are, and down for a group only when at least `quorum` of the probes
that report (fodns itself is one) see it down.

The API validates a check's JSON with fodns/schemas.py (CHECK_BODY); `from_json`
here is the store's last line for callers that are not the API, and fills in the
defaults, so what is stored and shown is always complete.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fodns.errors import Invalid

CheckType = Literal["http", "https", "tcp"]
CHECK_TYPES: tuple[CheckType, ...] = ("http", "https", "tcp")
HttpMethod = Literal["GET", "HEAD"]
HTTP_METHODS: tuple[HttpMethod, ...] = ("GET", "HEAD")
# The fields of an http or https check; a tcp check (a connect) has none of them.
HTTP_ONLY = ("method", "path", "host", "body_contains", "status_min", "status_max")

# Defaults, and why: 10 s between checks and 3 failures to go down detects a dead
# app in about 30 s (one group TTL); 2 successes to come back keeps one lucky answer
# from ending an outage. Route53's defaults are 30 s and 3 for both.
DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_FALL = 3
DEFAULT_RISE = 2
DEFAULT_MIN_HEALTHY = 1
DEFAULT_QUORUM = 1
DEFAULT_PORTS: dict[CheckType, int | None] = {"http": 80, "https": 443, "tcp": None}
DEFAULT_STATUS = (200, 399)
# Bounds, written once for the schema and the checks below.
INTERVAL_MIN, INTERVAL_MAX = 1.0, 3600.0
TIMEOUT_MIN = 0.1
THRESHOLD_MAX = 100  # fall, rise
QUORUM_MAX = 16
MIN_HEALTHY_MAX = 32  # model.WEB_HEAD_MAX: an app has at most 32 addresses
PATH_MAX = 1000
BODY_MATCH_MAX = 1000
# The body is searched in its first 5,120 bytes only (as Route53 does): a check
# must not read a large page to decide.
BODY_READ_BYTES = 5120
# An HTTP path: '/' then visible ASCII (RFC 3986 §3.3 characters, % escapes included).
PATH = re.compile(r"^/[!-~]*$")
# A Host header and TLS server name: a hostname (RFC 1123), letters, digits, '-', '.'.
HOST = re.compile(
    r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
)
HOST_MAX = 253
# fodns's own probe, beside the remote probes that report to it (`fodns probe`): no
# remote probe may take its name.
LOCAL_PROBE = "local"
# A remote probe's report holds at most this many apps (a probe checks what fodns checks).
REPORT_APPS_MAX = 100_000


@dataclass(frozen=True)
class CheckSpec:
    """One app's check, every field filled in (see the module's docstring)."""

    type: CheckType = "http"
    port: int = 80
    method: HttpMethod = "GET"  # http and https only
    path: str = "/"  # http and https only
    host: str | None = None  # Host header and TLS SNI; None: the address (or the hostname)
    status_min: int = DEFAULT_STATUS[0]  # expected status range, inclusive
    status_max: int = DEFAULT_STATUS[1]
    body_contains: str | None = None  # looked for in the first BODY_READ_BYTES bytes
    tls_verify: bool = True
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    fall: int = DEFAULT_FALL
    rise: int = DEFAULT_RISE
    min_healthy: int = DEFAULT_MIN_HEALTHY
    quorum: int = DEFAULT_QUORUM
    # Leave addresses that are down out of the app's answer while one is up.
    answers_follow_health: bool = False

    def to_json(self) -> dict[str, Any]:
        """Every field, but a tcp check's HTTP_ONLY ones (from_json refuses those, so
        what is stored reads back)."""
        value = asdict(self)
        if self.type == "tcp":
            for name in HTTP_ONLY:
                del value[name]
        return value

    @classmethod
    def from_json(cls, value: Any) -> CheckSpec:
        """A check from its JSON (the API's body or a stored row), defaults filled in;
        Invalid naming the field for anything out of place."""
        if not isinstance(value, dict):
            raise Invalid("check", "must be an object")
        unknown = sorted(set(value) - set(cls.__dataclass_fields__))
        if unknown:
            raise Invalid(unknown[0], "is not a field of a check")
        kind = value.get("type", "http")
        if kind not in CHECK_TYPES:
            raise Invalid("type", 'must be "http", "https" or "tcp"')
        port = value.get("port", DEFAULT_PORTS[kind])
        if port is None:
            raise Invalid("port", "is required for a tcp check")
        fields: dict[str, Any] = {"type": kind, "port": _integer(port, "port", 1, 65535)}
        for name in HTTP_ONLY:
            if name in value and kind == "tcp":
                raise Invalid(name, "is for http and https checks only")
        method = value.get("method", "GET")
        if method not in HTTP_METHODS:
            raise Invalid("method", 'must be "GET" or "HEAD"')
        fields["method"] = method
        path = value.get("path", "/")
        if not isinstance(path, str) or len(path) > PATH_MAX or not PATH.fullmatch(path):
            raise Invalid(
                "path", f"must start with '/' and be 1 to {PATH_MAX} visible ASCII characters"
            )
        fields["path"] = path
        host = value.get("host")
        if host is not None and (
            not isinstance(host, str) or len(host) > HOST_MAX or not HOST.fullmatch(host)
        ):
            raise Invalid("host", "must be a hostname (letters, digits, '-' and '.')")
        fields["host"] = None if host is None else host.rstrip(".").lower()
        fields["status_min"] = _integer(
            value.get("status_min", DEFAULT_STATUS[0]), "status_min", 100, 599
        )
        fields["status_max"] = _integer(
            value.get("status_max", DEFAULT_STATUS[1]), "status_max", 100, 599
        )
        if fields["status_max"] < fields["status_min"]:
            raise Invalid("status_max", "must be at least status_min")
        body = value.get("body_contains")
        if body is not None and (
            not isinstance(body, str) or not 1 <= len(body) <= BODY_MATCH_MAX or "\x00" in body
        ):
            raise Invalid(
                "body_contains", f"must be text of 1 to {BODY_MATCH_MAX} characters, no NUL"
            )
        if body is not None and method == "HEAD":
            raise Invalid("body_contains", "needs a body: use method GET")
        fields["body_contains"] = body
        verify = value.get("tls_verify", True)
        if not isinstance(verify, bool):
            raise Invalid("tls_verify", "must be true or false")
        fields["tls_verify"] = verify
        interval = _seconds(
            value.get("interval", DEFAULT_INTERVAL), "interval", INTERVAL_MIN, INTERVAL_MAX
        )
        fields["interval"] = interval
        timeout = _seconds(
            value.get("timeout", min(DEFAULT_TIMEOUT, interval)),
            "timeout",
            TIMEOUT_MIN,
            INTERVAL_MAX,
        )
        if timeout > interval:
            raise Invalid(
                "timeout", "must be at most the interval (a check ends before the next starts)"
            )
        fields["timeout"] = timeout
        fields["fall"] = _integer(value.get("fall", DEFAULT_FALL), "fall", 1, THRESHOLD_MAX)
        fields["rise"] = _integer(value.get("rise", DEFAULT_RISE), "rise", 1, THRESHOLD_MAX)
        fields["min_healthy"] = _integer(
            value.get("min_healthy", DEFAULT_MIN_HEALTHY), "min_healthy", 1, MIN_HEALTHY_MAX
        )
        fields["quorum"] = _integer(value.get("quorum", DEFAULT_QUORUM), "quorum", 1, QUORUM_MAX)
        follow = value.get("answers_follow_health", False)
        if not isinstance(follow, bool):
            raise Invalid("answers_follow_health", "must be true or false")
        fields["answers_follow_health"] = follow
        return cls(**fields)


def _integer(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(field, f"must be a whole number from {low} to {high}")
    return value


def _seconds(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise Invalid(field, f"must be a number of seconds from {low:g} to {high:g}")
    return float(value)
