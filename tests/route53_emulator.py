"""A Route53 stand-in for tests: a seeded `moto_server` on loopback, and a recording HTTP
proxy that sits between fodns and moto so a test can see every API call, count change
batches in flight, and inject outages and throttling without touching moto.

Everything binds 127.0.0.1; the proxy refuses to forward anywhere else.

Stable hosted zone ids: moto draws zone ids (and the request id of every response) from
one process-wide RNG, `moto.moto_api._internal.mock_random`, which `POST
/moto-api/seed?a=N` reseeds. Route53 has no server-mode way to pin an id (moto's
`_custom_id_` tag and id manager are in-process only, and CreateHostedZone takes no tags),
so `MotoServer` seeds right after every (re)start. Ids are then a function of the seed and
of the sequence of requests moto has answered since: any answer, even an error, consumes
the RNG. `restart_route53_empty` therefore holds the proxy down while it restarts moto
and recreates the zones, so no fodns request can land between the seed and the
CreateHostedZone calls.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple, Self
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

import boto3
from botocore.config import Config

from tests.support.net import free_port

LOOPBACK = "127.0.0.1"
ROUTE53_XML_NAMESPACE = "https://route53.amazonaws.com/doc/2013-04-01/"
DEFAULT_SEED = 20130401
MOTO_STARTUP_TIMEOUT = 15.0
MOTO_STOP_TIMEOUT = 5.0
MOTO_START_ATTEMPTS = 4
# moto answers in milliseconds; a generous bound still keeps a wedged moto from hanging a test.
FORWARD_TIMEOUT = 15.0
# An accepted connection that never sends a request must not pin a proxy thread forever.
PROXY_IDLE_TIMEOUT = 10.0
# ChangeResourceRecordSets limits per request (Route53's quotas page): ResourceRecord
# elements and characters of all Value elements, an UPSERT counting twice. moto has none.
BATCH_LIMIT_RECORDS = 1000
BATCH_LIMIT_CHARACTERS = 32_000
# Guards against a server that keeps answering IsTruncated=true.
MAX_LIST_PAGES = 10_000

RecordKey = tuple[str, str]
RecordValue = tuple[int, frozenset[str]]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Same option moto's (werkzeug's) listener uses, so a port left in TIME_WAIT by
        # the previous moto counts as free, exactly as it will for moto itself.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _require_loopback(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != LOOPBACK or parts.port is None:
        raise ValueError(f"only http://{LOOPBACK}:<port> targets are allowed, got {url!r}")
    return parts.hostname, parts.port


def _http_request(port: int, method: str, path: str, timeout: float) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _decode_route53_name(name: str) -> str:
    """Route53 returns names with characters outside [a-z0-9-_.] as \\ooo octal escapes
    (`\\052` for a wildcard); tests compare against the plain spelling."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), name)


def route53_client(endpoint_url: str, config: Config | None = None) -> Any:
    """A boto3 Route53 client for a loopback endpoint with dummy credentials.

    `proxies={}` stops botocore from reading HTTP(S)_PROXY from the environment, which
    could otherwise send the test's traffic off the machine."""
    _require_loopback(endpoint_url)
    base_config = Config(proxies={}, connect_timeout=5, read_timeout=FORWARD_TIMEOUT + 5)
    session = boto3.session.Session()
    return session.client(
        "route53",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url=endpoint_url,
        config=base_config.merge(config) if config is not None else base_config,
    )


class MotoServer:
    """`moto_server` as a child process on a loopback port, seeded so ids repeat."""

    def __init__(self, seed: int = DEFAULT_SEED, startup_timeout: float = MOTO_STARTUP_TIMEOUT):
        self.seed = seed
        self.startup_timeout = startup_timeout
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._zone_counter = itertools.count(1)
        # Building a boto3 client costs ~0.1 s; the port (so the URL) survives restarts.
        self._direct_client: Any = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("moto_server has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start on a fresh free port, or on the port of a previous start (restart keeps
        the address so fodns and the proxy need no reconfiguring)."""
        if self._process is not None:
            raise RuntimeError("moto_server is already running")
        pinned_port = self._port
        failures: list[str] = []
        for _attempt in range(MOTO_START_ATTEMPTS):
            if pinned_port is None:
                port = free_port()
            elif _port_is_free(pinned_port):
                port = pinned_port
            else:
                failures.append(f"port {pinned_port} still taken")
                time.sleep(0.25)
                continue
            if self._launch(port):
                self._port = port
                self._seed()
                return
            failures.append(f"port {port}: {self._stop_process()}")
            if pinned_port is not None:
                time.sleep(0.25)
        raise RuntimeError("moto_server did not start: " + "; ".join(failures))

    def _launch(self, port: int) -> bool:
        """Spawn moto on `port`; True once it answers HTTP, False if it exited (usually a
        lost race for the port)."""
        moto_executable = Path(sys.executable).parent / "moto_server"
        # moto logs every request; a pipe nobody drains would eventually block it, so the
        # log goes to a file that stays readable for debugging a failed start. It lives as
        # long as the process, so `_stop_process` closes it rather than a with-block.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            [str(moto_executable), "-H", LOOPBACK, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                _http_request(port, "GET", "/moto-api/data.json", timeout=1.0)
            except OSError:
                time.sleep(0.05)
                continue
            # The answer could have come from a squatter on the port while our moto was
            # failing to bind; only a live child proves the listener is ours.
            time.sleep(0.05)
            return self._process.poll() is None
        self._stop_process()
        raise TimeoutError(f"moto_server did not answer within {self.startup_timeout} s")

    def _seed(self) -> None:
        status, body = _http_request(self.port, "POST", f"/moto-api/seed?a={self.seed}", 5.0)
        if status != 200:
            raise RuntimeError(f"seeding moto failed: HTTP {status} {body[:200]!r}")

    def log_text(self) -> str:
        """What moto printed so far (its request log and any traceback)."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _stop_process(self) -> str:
        """Stop the child we spawned (by its PID only); returns its log tail for errors."""
        process, self._process = self._process, None
        tail = ""
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=MOTO_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=MOTO_STOP_TIMEOUT)
            tail = self.log_text()[-500:]
        if self._log is not None:
            self._log.close()
            self._log = None
        return tail

    def stop(self) -> None:
        self._stop_process()

    def restart(self) -> None:
        """A fresh, empty moto on the same port, seeded again: the next zone created gets
        the id the first zone got after the previous (re)start."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self, endpoint_url: str | None = None, config: Config | None = None) -> Any:
        """A Route53 client talking to moto directly, or to `endpoint_url` (a proxy)."""
        return route53_client(endpoint_url or self.url, config)

    def _client_to_moto(self) -> Any:
        if self._direct_client is None:
            self._direct_client = self.client()
        return self._direct_client

    def create_zone(self, name: str) -> str:
        """Create a public hosted zone; returns the bare id (no `/hostedzone/`)."""
        response = self._client_to_moto().create_hosted_zone(
            Name=name,
            # Route53 refuses a CallerReference it has seen before; the counter keeps a
            # zone re-created within this MotoServer from reusing one.
            CallerReference=f"fodns-test-{name}-{next(self._zone_counter)}",
        )
        zone_id: str = response["HostedZone"]["Id"]
        return zone_id.removeprefix("/hostedzone/")

    def records(self, zone_id: str, page_size: int = 300) -> dict[RecordKey, RecordValue]:
        """Every record set in the zone as {(name., TYPE): (ttl, values)}, names lowercased
        and unescaped. Alias records show as ttl 0 and `ALIAS <target>`."""
        client = self._client_to_moto()
        found: dict[RecordKey, RecordValue] = {}
        request: dict[str, Any] = {"HostedZoneId": zone_id, "MaxItems": str(page_size)}
        for _page in range(MAX_LIST_PAGES):
            response = client.list_resource_record_sets(**request)
            for record_set in response["ResourceRecordSets"]:
                name = _decode_route53_name(record_set["Name"]).lower()
                if not name.endswith("."):
                    name += "."
                key = (name, record_set["Type"])
                if key in found:
                    # Real Route53 has one rrset per name and type (without routing
                    # policies); moto can hold two, e.g. after CREATE over an existing one.
                    raise ValueError(f"two record sets for {key} in zone {zone_id}")
                if "AliasTarget" in record_set:
                    values = frozenset({"ALIAS " + record_set["AliasTarget"]["DNSName"]})
                else:
                    values = frozenset(rr["Value"] for rr in record_set.get("ResourceRecords", []))
                found[key] = (int(record_set.get("TTL", 0)), values)
            if not response.get("IsTruncated"):
                return found
            request["StartRecordName"] = response["NextRecordName"]
            request["StartRecordType"] = response["NextRecordType"]
            if "NextRecordIdentifier" in response:
                request["StartRecordIdentifier"] = response["NextRecordIdentifier"]
        raise RuntimeError(f"ListResourceRecordSets still truncated after {MAX_LIST_PAGES} pages")


@dataclass(frozen=True)
class ProxiedCall:
    """One request the proxy answered. Times are `time.monotonic()`; `finished` is taken
    after the response was written to the client."""

    started: float
    finished: float
    action: str
    status: int
    request_body: bytes
    response_body: bytes
    method: str = ""
    path: str = ""


class ParsedChange(NamedTuple):
    """One <Change> of a ChangeResourceRecordSets body, as fodns sent it."""

    action: str
    name: str
    type: str
    ttl: int | None
    values: list[str]


_CHANGE_RRSET_PATH = re.compile(r"/hostedzone/[^/]+/rrset/?$")
_GET_CHANGE_PATH = re.compile(r"/change/([^/]+)$")
# moto writes `/change/ID` in ChangeResourceRecordSets answers but echoes GetChange's id
# bare, so the prefix is optional and kept as moto wrote it.
_CHANGE_INFO_ID = re.compile(rb"(<ChangeInfo>\s*<Id>(?:/change/)?)([^<]+)(</Id>)")
_HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        # Recomputed from the body actually relayed.
        "content-length",
    }
)


def classify_route53_call(method: str, path: str) -> str:
    path = urlsplit(path).path
    if method == "POST" and _CHANGE_RRSET_PATH.search(path):
        return "ChangeResourceRecordSets"
    if method == "GET" and _GET_CHANGE_PATH.search(path):
        return "GetChange"
    if method == "GET" and _CHANGE_RRSET_PATH.search(path):
        return "ListResourceRecordSets"
    return "other"


def route53_error_body(error_type: str, code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0"?>\n'
        f'<ErrorResponse xmlns="{ROUTE53_XML_NAMESPACE}">'
        f"<Error><Type>{error_type}</Type><Code>{code}</Code><Message>{xml_escape(message)}</Message></Error>"
        "<RequestId>00000000-0000-0000-0000-recordingproxy</RequestId>"
        "</ErrorResponse>"
    ).encode()


def _xml_text(element: ElementTree.Element, path: str) -> str | None:
    # `{*}` matches any namespace: moto and botocore both use Route53's, but the parse
    # should not care.
    found = element.find("/".join("{*}" + step for step in path.split("/")))
    return found.text if found is not None else None


def parse_change_batch(request_body: bytes) -> list[ParsedChange]:
    root = ElementTree.fromstring(request_body)
    changes = []
    for change in root.iterfind(".//{*}Changes/{*}Change"):
        ttl = _xml_text(change, "ResourceRecordSet/TTL")
        changes.append(
            ParsedChange(
                action=_xml_text(change, "Action") or "",
                name=_xml_text(change, "ResourceRecordSet/Name") or "",
                type=_xml_text(change, "ResourceRecordSet/Type") or "",
                ttl=int(ttl) if ttl is not None else None,
                values=[
                    value.text or ""
                    for value in change.iterfind(
                        "{*}ResourceRecordSet/{*}ResourceRecords/{*}ResourceRecord/{*}Value"
                    )
                ],
            )
        )
    return changes


def parse_change_info(response_body: bytes) -> tuple[str, str] | None:
    """(change id without `/change/`, Status) from a response carrying ChangeInfo."""
    try:
        root = ElementTree.fromstring(response_body)
    except ElementTree.ParseError:
        return None
    change_info = root.find(".//{*}ChangeInfo")
    if change_info is None:
        return None
    change_id = _xml_text(change_info, "Id") or ""
    return change_id.removeprefix("/change/"), _xml_text(change_info, "Status") or ""


class RecordingProxy:
    """HTTP forwarder on 127.0.0.1 that logs each Route53 call and can fake failures,
    slowness, and the ChangeResourceRecordSets rules moto lacks.

    With `unique_change_ids` (the default) each successful ChangeResourceRecordSets answer
    gets its own change id and the status PENDING, as real Route53 gives: moto answers
    every batch INSYNC with the same constant id, which would make "which batch is
    INSYNC" unanswerable. GetChange for such
    an id is forwarded with moto's original id and the answer mapped back.

    With `route53_rules` (the default) a change batch that Route53 would refuse is
    answered 400 InvalidChangeBatch without reaching moto, which would accept it: a
    CREATE of a record set that exists, a DELETE of one that does not exist or holds
    other values (or another TTL) than it names, a CNAME sharing its name with any
    other record set (RFC 1034 §3.6.2), a batch over Route53's size limits. moto stores
    the first as a second record set and deletes by name and type alone. A CREATE that
    passes goes to moto as an UPSERT: moto wrongly refuses to create again a record set
    it once held."""

    def __init__(self, target_url: str, unique_change_ids: bool = True, route53_rules: bool = True):
        _require_loopback(target_url)
        self._target_url = target_url
        self.unique_change_ids = unique_change_ids
        self.route53_rules = route53_rules
        self._delay = 0.0
        self._delayed_action: str | None = None
        self._delay_after_forwarding = False
        # Set to let every request waiting out the current delay go on at once.
        self._delay_over = threading.Event()
        self._delayed_now = 0  # requests waiting out a delay right now
        self._failing_paths: dict[str, str] = {}  # path fragment -> error code
        self._refused_values: set[str] = set()
        self._rules_client: Any = None
        self._lock = threading.Lock()
        # Signalled whenever a forward to moto finishes, for `held_down` to wait on.
        self._forward_finished = threading.Condition(self._lock)
        self._forwards_in_progress = 0
        self._calls: list[ProxiedCall] = []
        self._down = False
        self._throttled_requests_left = 0
        self._throttle_code = "Throttling"
        self._throttled_action: str | None = None
        self._change_id_counter = itertools.count(1)
        # synthesized id -> moto's id
        self._change_id_aliases: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("proxy has not been started")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    @property
    def target_url(self) -> str:
        with self._lock:
            return self._target_url

    def retarget(self, url: str) -> None:
        _require_loopback(url)
        with self._lock:
            self._target_url = url
            self._rules_client = None

    def set_down(self, down: bool) -> None:
        """While down every request gets 503 ServiceUnavailable and is not forwarded."""
        with self._lock:
            self._down = down

    def set_throttle(self, count: int, code: str = "Throttling", action: str | None = None) -> None:
        """The next `count` requests (of `action`, e.g. "GetChange", or of any kind) get
        400 `code` and are not forwarded. Route53 answers a rate it will not take with
        400 Throttling, and a change sent while an earlier one is still being applied
        with 400 PriorRequestNotComplete (its API reference, Common Errors)."""
        with self._lock:
            self._throttled_requests_left = count
            self._throttle_code, self._throttled_action = code, action

    def set_delay(
        self, seconds: float, action: str | None = None, after_forwarding: bool = False
    ) -> None:
        """Every request (or every one of `action`, e.g. "ListResourceRecordSets") waits
        `seconds`: a slow Route53. By default it waits before it is forwarded (Route53
        slow to act); `after_forwarding`, moto acts at once and the answer waits (Route53
        slow to answer: a client that gives up has had its change made all the same).
        Requests already waiting out the previous delay go on at once."""
        with self._lock:
            self._delay, self._delayed_action = seconds, action
            self._delay_after_forwarding = after_forwarding
            released, self._delay_over = self._delay_over, threading.Event()
        released.set()

    def delayed_now(self) -> int:
        """How many requests are waiting out a delay right now (so a test can act while
        Route53 has not answered yet)."""
        with self._lock:
            return self._delayed_now

    def fail_path(self, fragment: str, code: str | None = "ServiceUnavailable") -> None:
        """Requests whose path contains `fragment` (a hosted zone id, say) get `code`
        (503 ServiceUnavailable, or 400 for any other code) and are not forwarded;
        code None forwards them again."""
        with self._lock:
            if code is None:
                self._failing_paths.pop(fragment, None)
            else:
                self._failing_paths[fragment] = code

    def refuse_values(self, fragment: str, refuse: bool = True) -> None:
        """Change batches with a value containing `fragment` get 400 InvalidChangeBatch,
        as Route53 answers a value it will not take (False: accepted again)."""
        with self._lock:
            if refuse:
                self._refused_values.add(fragment)
            else:
                self._refused_values.discard(fragment)

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("proxy is already running")
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="route53-recording-proxy",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @contextlib.contextmanager
    def held_down(self) -> Iterator[None]:
        """Down for the duration of the block, then back to whatever it was before. On
        entry it also waits (bounded) for requests already on their way to moto, so none
        reaches moto inside the block."""
        with self._lock:
            was_down, self._down = self._down, True
            drained = self._forward_finished.wait_for(
                lambda: self._forwards_in_progress == 0, timeout=FORWARD_TIMEOUT + 1
            )
        if not drained:
            self.set_down(was_down)
            raise TimeoutError("requests to moto were still in progress")
        try:
            yield
        finally:
            self.set_down(was_down)

    # -- the log ---------------------------------------------------------------------

    def calls(self, action: str | None = None) -> list[ProxiedCall]:
        """Recorded calls in the order they started, optionally of one action."""
        with self._lock:
            calls = sorted(self._calls, key=lambda call: call.started)
        return [call for call in calls if action is None or call.action == action]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def change_batches(self, successful_only: bool = False) -> list[list[ParsedChange]]:
        """The Changes of each ChangeResourceRecordSets call, in order. By default this
        includes calls that were refused (by moto or by a simulated outage), so a retried
        batch shows up once per attempt."""
        return [
            parse_change_batch(call.request_body)
            for call in self.calls("ChangeResourceRecordSets")
            if call.status == 200 or not successful_only
        ]

    def max_changes_in_flight(self) -> int:
        """The most change batches in flight at once. A batch is in flight from the start
        of its (successful) ChangeResourceRecordSets call until the finish of the first
        GetChange, started after it, that reported its change id INSYNC; never-confirmed
        batches stay in flight to the end of the log."""
        calls = self.calls()
        insync_confirmations: list[tuple[float, float, str]] = []
        for call in calls:
            if call.action == "GetChange" and call.status == 200:
                info = parse_change_info(call.response_body)
                if info is not None and info[1] == "INSYNC":
                    insync_confirmations.append((call.started, call.finished, info[0]))
        # Events are (time, 1) for a start and (time, 0) for an end, so at equal times the
        # end sorts first: a batch sent the instant another was confirmed does not overlap it.
        events: list[tuple[float, int]] = []
        for call in calls:
            if call.action != "ChangeResourceRecordSets" or call.status != 200:
                continue
            info = parse_change_info(call.response_body)
            change_id = info[0] if info is not None else None
            confirmed_at = min(
                (
                    finished
                    for started, finished, confirmed_id in insync_confirmations
                    if confirmed_id == change_id and started >= call.started
                ),
                default=float("inf"),
            )
            events.append((call.started, 1))
            events.append((confirmed_at, 0))
        in_flight = most = 0
        for _time, kind in sorted(events):
            in_flight += 1 if kind == 1 else -1
            most = max(most, in_flight)
        return most

    # -- forwarding ------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so stopping the proxy leaves no
            # keep-alive connection behind that could still forward to moto.
            protocol_version = "HTTP/1.0"
            timeout = PROXY_IDLE_TIMEOUT

            def do_GET(self) -> None:
                proxy._relay(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                # The recorded calls are the log; stderr noise would only clutter pytest.
                pass

        return Handler

    def _decide_failure(self, path: str, action: str) -> tuple[int, bytes] | None:
        """A simulated failure to answer with, or None after counting the request as a
        forward in progress (the caller must then call `_forward`)."""
        with self._lock:
            for fragment, code in self._failing_paths.items():
                if fragment in path:
                    if code == "ServiceUnavailable":
                        return 503, route53_error_body(
                            "Receiver", code, "Service unavailable (simulated by RecordingProxy)"
                        )
                    return 400, route53_error_body("Sender", code, "refused by RecordingProxy")
            if self._down:
                return 503, route53_error_body(
                    "Receiver",
                    "ServiceUnavailable",
                    "Service unavailable (simulated outage by RecordingProxy)",
                )
            if self._throttled_requests_left > 0 and self._throttled_action in (None, action):
                self._throttled_requests_left -= 1
                message = f"{self._throttle_code} (simulated by RecordingProxy)"
                return 400, route53_error_body("Sender", self._throttle_code, message)
            self._forwards_in_progress += 1
        return None

    def _relay(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        method = handler.command
        action = classify_route53_call(method, handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request_body = handler.rfile.read(length) if length else b""

        with self._lock:
            delay = self._delay if self._delayed_action in (None, action) else 0.0
            answer_late = self._delay_after_forwarding
        if delay and not answer_late:
            self._wait_out(delay)
        failure = self._decide_failure(handler.path, action)
        if failure is None and action == "ChangeResourceRecordSets" and self.route53_rules:
            refusal = self._route53_refusal(handler.path, request_body)
            if refusal is not None:
                with self._lock:
                    self._forwards_in_progress -= 1
                    self._forward_finished.notify_all()
                failure = 400, route53_error_body("Sender", "InvalidChangeBatch", refusal)
        if failure is not None:
            status, response_body = failure
            response_headers = [("Content-Type", "text/xml")]
        else:
            try:
                forwarded_body = request_body
                if action == "ChangeResourceRecordSets" and self.route53_rules:
                    # The rules above refused a CREATE of a record set that exists. moto
                    # refuses one more: a CREATE it has seen before, of a record set
                    # deleted since (it looks for any record at or after the name). As an
                    # UPSERT, such a CREATE does in moto what Route53 does.
                    forwarded_body = request_body.replace(
                        b"<Action>CREATE</Action>", b"<Action>UPSERT</Action>"
                    )
                status, response_headers, response_body = self._forward(
                    method, handler.path, handler.headers.items(), forwarded_body, action
                )
            finally:
                with self._lock:
                    self._forwards_in_progress -= 1
                    self._forward_finished.notify_all()

        if delay and answer_late:
            self._wait_out(delay)
        # Logged before the answer is sent: a client that has its answer may read the log
        # at once, and must find its call there. A client that gave up (read timeout) still
        # had its request served by moto, so the call is recorded either way.
        call = ProxiedCall(
            started=started,
            finished=time.monotonic(),
            action=action,
            status=status,
            request_body=request_body,
            response_body=response_body,
            method=method,
            path=handler.path,
        )
        with self._lock:
            self._calls.append(call)
        with contextlib.suppress(OSError):
            handler.send_response(status)
            for name, value in response_headers:
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(response_body)))
            handler.end_headers()
            if method != "HEAD":
                handler.wfile.write(response_body)
            handler.wfile.flush()

    def _wait_out(self, delay: float) -> None:
        with self._lock:
            self._delayed_now += 1
            over = self._delay_over
        try:
            over.wait(delay)
        finally:
            with self._lock:
                self._delayed_now -= 1

    def _route53_refusal(self, path: str, body: bytes) -> str | None:
        """Why Route53 would refuse this change batch where moto accepts it, or None."""
        zone_match = re.search(r"/hostedzone/([^/]+)/rrset", urlsplit(path).path)
        if zone_match is None:
            return None
        try:
            changes = parse_change_batch(body)
        except ElementTree.ParseError:
            return None  # moto answers malformed bodies itself
        with self._lock:
            refused_values = set(self._refused_values)
        for change in changes:
            if change.action != "DELETE" and any(
                fragment in value for fragment in refused_values for value in change.values
            ):
                return f"Invalid Resource Record: FATAL problem: {change.values} (refused)"
        # Route53's request limits, an UPSERT counting twice (see BATCH_LIMIT_*).
        weights = [2 if change.action == "UPSERT" else 1 for change in changes]
        records = sum(w * len(change.values) for w, change in zip(weights, changes, strict=True))
        characters = sum(
            w * sum(map(len, change.values)) for w, change in zip(weights, changes, strict=True)
        )
        if records > BATCH_LIMIT_RECORDS:
            return f"Number of records limit of {BATCH_LIMIT_RECORDS} exceeded."
        if characters > BATCH_LIMIT_CHARACTERS:
            return f"Number of characters limit of {BATCH_LIMIT_CHARACTERS} exceeded."
        if self._rules_client is None:
            self._rules_client = route53_client(self.target_url)
        response = self._rules_client.list_resource_record_sets(
            HostedZoneId=zone_match.group(1), MaxItems="1000"
        )
        types_at: dict[str, set[str]] = {}
        held: dict[RecordKey, tuple[int | None, frozenset[str]]] = {}
        for record_set in response["ResourceRecordSets"]:
            name = _decode_route53_name(record_set["Name"]).lower().rstrip(".") + "."
            types_at.setdefault(name, set()).add(record_set["Type"])
            values = frozenset(r["Value"] for r in record_set.get("ResourceRecords", []))
            held[(name, record_set["Type"])] = (record_set.get("TTL"), values)
        touched = set()
        for change in changes:
            name = change.name.lower().rstrip(".") + "."
            present = types_at.setdefault(name, set())
            touched.add(name)
            key, value = (name, change.type), (change.ttl, frozenset(change.values))
            if change.action == "DELETE":
                # A DELETE names the record set exactly as it is, TTL and every value
                # (the ChangeResourceRecordSets reference); moto deletes by name and
                # type whatever the values.
                what = f"Tried to delete resource record set [name='{name}', type='{change.type}']"
                if key not in held:
                    return f"{what} but it was not found"
                if held[key] != value:
                    return f"{what} but the values provided do not match the current values"
                del held[key]
                present.discard(change.type)
            elif change.action == "CREATE" and change.type in present:
                return (
                    f"Tried to create resource record set [name='{name}', type='{change.type}']"
                    " but it already exists"
                )
            else:
                present.add(change.type)
                held[key] = value
        for name in sorted(touched):
            if "CNAME" in types_at[name] and len(types_at[name]) > 1:
                return (
                    f"RRSet of type CNAME with DNS name {name} is not permitted as it conflicts"
                    " with other records with the same DNS name"
                )
        return None

    def _forward(
        self,
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        action: str,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        with self._lock:
            host, port = _require_loopback(self._target_url)
            synthesized_id: str | None = None
            match = _GET_CHANGE_PATH.search(path) if action == "GetChange" else None
            if match is not None and match.group(1) in self._change_id_aliases:
                synthesized_id = match.group(1)
                moto_id = self._change_id_aliases[synthesized_id]
                path = path[: match.start(1)] + moto_id + path[match.end(1) :]
        # The client's Host header goes through unchanged: it is part of the SigV4
        # signature, so rewriting it would make the request one a real server rejects.
        forwarded_headers = {
            name: value for name, value in headers if name.lower() not in _HOP_BY_HOP_HEADERS
        }
        connection = http.client.HTTPConnection(host, port, timeout=FORWARD_TIMEOUT)
        try:
            connection.request(method, path, body=body or None, headers=forwarded_headers)
            response = connection.getresponse()
            status = response.status
            response_headers = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in _HOP_BY_HOP_HEADERS
            ]
            response_body = response.read()
        except (OSError, http.client.HTTPException) as error:
            # moto stopped, restarting, or hung up mid-answer: a gateway error, which
            # botocore retries.
            return (
                502,
                [("Content-Type", "text/xml")],
                route53_error_body(
                    "Receiver", "BadGateway", f"proxy could not reach moto: {error}"
                ),
            )
        finally:
            connection.close()

        if status == 200 and action == "ChangeResourceRecordSets" and self.unique_change_ids:
            response_body = self._give_unique_change_id(response_body)
        if synthesized_id is not None:
            # Hand the client back the id it asked about, not moto's.
            replacement = rb"\g<1>" + synthesized_id.encode() + rb"\g<3>"
            response_body = _CHANGE_INFO_ID.sub(replacement, response_body)
        return status, response_headers, response_body

    def _give_unique_change_id(self, response_body: bytes) -> bytes:
        match = _CHANGE_INFO_ID.search(response_body)
        if match is None:
            return response_body
        with self._lock:
            synthesized_id = f"CFODNSPROXY{next(self._change_id_counter):06d}"
            self._change_id_aliases[synthesized_id] = match.group(2).decode()
        response_body = (
            response_body[: match.start(2)]
            + synthesized_id.encode()
            + response_body[match.end(2) :]
        )
        # Real Route53 answers a new batch PENDING and only GetChange later says INSYNC;
        # moto says INSYNC at once, which would let a client skip waiting altogether.
        return response_body.replace(b"<Status>INSYNC</Status>", b"<Status>PENDING</Status>", 1)


def restart_route53_empty(
    moto: MotoServer, proxy: RecordingProxy, zone_names: Iterable[str]
) -> dict[str, str]:
    """Simulate Route53 losing every record: restart moto empty and recreate the zones,
    which get the same ids as after the previous (re)start if they are created in the
    same order. The proxy is held down meanwhile (clients see 503), because any request
    moto answered between the seed and the CreateHostedZone calls would shift the ids."""
    with proxy.held_down():
        moto.restart()
        return {name: moto.create_zone(name) for name in zone_names}
