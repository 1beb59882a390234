"""The admin HTTP API (aiohttp): apps, groups, switches, checks and events, health and metrics.

Every /v1 call needs `Authorization: Bearer <token>` (401 otherwise) whose scope
covers the route (403 naming the scope it lacks; fodns/scopes.py has the table and
the limits, which the store checks within each write); errors are JSON
`{"error": {"code", "message", "field"?, "scope"?}}` with the status of the FodnsError
behind them, whatever went wrong (a bug is a JSON 500, never a traceback page).
A write is: validate, commit (the store), wait until every DNS process serves
it (the `served` wait the service passes in, see fodns/consumers.py), reply. A
change that is durable but not served within the deadline is answered 202 with
`"served": false`, never 200. Everything else that follows a change (NOTIFY, the
Route53 mirror) follows the store's log, not this module, so it follows changes
made by any process. Health checks run beside it (fodns/checker.py): the API shows
their state and hands them remote probes' reports through HealthView, and imports
nothing of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from fodns.acmeapi import Resolver, add_acme_routes
from fodns.apirequest import (
    ACTOR,
    BODY_LIMIT,
    GRANT,
    MAX_BODY,
    NO_QUERY,
    NOT_SERVED,
    json_body,
    log_change,
    query_of,
)
from fodns.checks import CheckSpec
from fodns.errors import FodnsError, Forbidden, Invalid, NotFound
from fodns.health import STORE_HEARTBEAT_INTERVAL
from fodns.listing import (
    FIND_MAX,
    PageRequest,
    app_cursor,
    app_position,
    group_cursor,
    group_position,
)
from fodns.logs import get_logger
from fodns.metrics import ApiMetrics
from fodns.model import EVENTS_PAGE_DEFAULT, LIST_PAGE_MAX, App, Group
from fodns.openapi import openapi_document
from fodns.records import answer_json
from fodns.schemas import (
    APP_CHANGE,
    APP_PATH,
    APPS_QUERY,
    CHECK_BODY,
    DELETE_GROUP_QUERY,
    DELETE_QUERY,
    EVENTS_QUERY,
    GROUP_CHANGE,
    GROUP_PATH,
    GROUP_QUERY,
    GROUPS_QUERY,
    NEW_APP,
    NEW_GROUP,
    NEW_TOKEN,
    PROBE_PATH,
    REPORT,
    SWITCH,
    TOKEN_PATH,
    TOKENS_QUERY,
    whole_numbers,
)
from fodns.scopes import Actor, Grant, check_route
from fodns.store import UNSET as STORE_UNSET
from fodns.store import Change, HealthLast, Store
from fodns.tokenbook import Refused, TokenBook
from fodns.tokens import new_secret, secret_hash
from fodns.webhookapi import DELIVERIES_KEY, Deliveries, add_webhook_routes

log = get_logger()
P = ParamSpec("P")

HealthCheck = Callable[[], dict[str, Any]]
REGISTRY_KEY: web.AppKey[CollectorRegistry] = web.AppKey("registry")
HEALTH_KEY: web.AppKey[HealthCheck] = web.AppKey("health")
STORE_KEY: web.AppKey[Store] = web.AppKey("store")  # set only when the app has a store
TOKEN_BOOK_KEY: web.AppKey[TokenBook] = web.AppKey("token_book")
# Waits until every DNS worker serves event `seq`; False if one does not in time.
Served = Callable[[int], Awaitable[bool]]
SERVED_KEY: web.AppKey[Served | None] = web.AppKey("served")
ALLOWED_HOSTS_KEY: web.AppKey[frozenset[str]] = web.AppKey("allowed_hosts")
METRICS_KEY: web.AppKey[ApiMetrics] = web.AppKey("metrics")
# The Route53 mirror's "plan" or "sync", as /v1/route53/* ask for it (see
# route53.Route53Mirror.answer): each zone's plan as JSON; a FodnsError when Route53
# fails or does not answer in time.
MirrorRequests = Callable[[str], Awaitable[list[dict[str, Any]]]]
MIRROR_KEY: web.AppKey[MirrorRequests | None] = web.AppKey("route53_mirror")


class HealthView(Protocol):
    """What the API asks of the health checker (fodns/checker.py HealthChecker)."""

    def health_json(self, last_known: Sequence[tuple[str, HealthLast]]) -> dict[str, Any]:
        """/v1/health's reply: probes, checked apps (with `last_known`, each address's
        last known state by app name, from the store) and the auto groups' decisions."""
        ...

    async def report(
        self, probe: str, interval: float, apps: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Take a remote probe's report (its `apps`, as schemas.REPORT has them):
        {"probe", "accepted", "unknown_apps"}; Invalid for a name that is not a probe's."""
        ...


# None: health checks do not run in this process (/v1/health and reports are 404s).
HEALTH_VIEW_KEY: web.AppKey[HealthView | None] = web.AppKey("health_view")
NOT_CHECKING = "health checks are not running here"
# Shipped inside the package (see pyproject.toml), so a `pip install .` serves it too.
DASHBOARD = Path(str(files("fodns") / "admin"))
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# But for a probe's report: every address of every app it checks, about 150 bytes each
# with its evidence, so some 50,000 addresses. Read on a thread (see json_body).
REPORT_MAX_BODY = 8 * 1024 * 1024
# The longest request line the document allows: ?reason= of 1000 characters and
# ?zone= of 254, each up to 4 UTF-8 bytes sent as %XX, 12 characters a character
# (aiohttp's default, 8,190, refused some with a text/plain 400).
MAX_REQUEST_LINE = 16 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Methods counted by name in fodns_api_requests_total; any other counts as "other".
COUNTED_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
# RFC 9110 §11.6.1: a 401 says how to authenticate; RFC 6750 §3 names the scheme.
AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="fodns"'}


# ---- cross-cutting: errors and tokens ---------------------------------------------------


def error_response(
    status: int, code: str, message: str, field: str | None = None, scope: str | None = None
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    if scope is not None:  # a 403: the scope (or the limit) the token lacks
        error["scope"] = scope
    return web.json_response({"error": error}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except FodnsError as exc:
        scope = exc.scope if isinstance(exc, Forbidden) else None
        return error_response(exc.status, exc.code, str(exc), exc.field, scope)
    except web.HTTPRequestEntityTooLarge:
        limit = request.get(BODY_LIMIT, MAX_BODY)
        return error_response(413, "too_large", f"request bodies are limited to {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if "Allow" in exc.headers:  # RFC 9110 §15.5.6: a 405 says which methods are allowed
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        raise  # the client went away: nothing to answer
    except Exception:
        # A bug: say so in JSON like every other error, and log it with its traceback.
        log.exception("api_request_failed", method=request.method, path=request.path)
        return error_response(500, "internal", "internal error (logged as api_request_failed)")


@web.middleware
async def http_methods(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The methods of RFC 9110 that every resource has. OPTIONS (§9.3.7) answers 204
    with `Allow`; a method the resource does not have is a 405 whose `Allow` lists
    exactly the ones it does (§15.5.6), unknown methods included. HEAD is routed
    beside each GET (aiohttp's add_get) and answered like it without the body (§9.3.2).
    Under /v1 this runs after the token check, like every /v1 call: there is no CORS
    preflight to serve, and a caller without the token learns nothing of the API."""
    refused = request.match_info.http_exception
    if not isinstance(refused, web.HTTPMethodNotAllowed):
        return await handler(request)
    allow = ", ".join(sorted({*refused.allowed_methods, "OPTIONS"}))
    if request.method == "OPTIONS":
        return web.Response(status=204, headers={"Allow": allow})
    response = error_response(
        405, "method_not_allowed", f"{request.method[:20]} is not allowed here; allowed: {allow}"
    )
    response.headers["Allow"] = allow
    return response


@web.middleware
async def known_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only answer for an IP address, localhost or a configured name in Host, so a web
    page whose name an attacker re-points at 127.0.0.1 (DNS rebinding) cannot read
    /metrics, /healthz or the dashboard from a browser on this host."""
    host = request.headers.get("Host")
    if host is not None and not host_allowed(host, request.app[ALLOWED_HOSTS_KEY]):
        return error_response(
            421, "unknown_host", "this server does not answer for that Host", "Host"
        )
    return await handler(request)


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8053
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:  # 127.0.0.1:8053 or localhost:8053
        name = name.rpartition(":")[0]
    name = name.rstrip(".")
    if name == "localhost" or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """fodns_api_requests_total by route template, method and status, each bounded:
    a client may send any token as a method, and each would be a series of its own."""
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in COUNTED_METHODS else "other"
    request.app[METRICS_KEY].requests.labels(route, method, str(response.status)).inc()
    return response


@web.middleware
async def bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /v1 call needs a token the book accepts (a 401 otherwise: none, unknown,
    expired or revoked) whose scope the route needs (a 403 naming it otherwise). The
    token's name is the actor in events. A path or method that does not exist (404,
    405, OPTIONS) needs a valid token and no scope: it changes nothing."""
    if request.path.startswith("/v1"):
        found = request.app[TOKEN_BOOK_KEY].authenticate(request.headers.get("Authorization", ""))
        if isinstance(found, Refused):
            response = error_response(401, "unauthorized", found.message)
            response.headers.update(AUTHENTICATE)
            return response
        request[GRANT] = found
        request[ACTOR] = found.name
        resource = request.match_info.route.resource
        if request.match_info.http_exception is None and resource is not None:
            check_route(found, request.method, resource.canonical)
    return await handler(request)


# ---- long lists: read and encoded off the event loop ----------------------------------
# With workers = 1 the loop that runs the API also answers DNS, and 100,000 groups
# take over a second to encode: that must not be a second without answers. Lists are
# made on a thread, one json.dumps per item, so that the GIL changes hands between
# items instead of being held for one 25 MB call.


def json_list_body(key: str, items: Iterable[dict[str, Any]]) -> bytes:
    """`{"<key>": [items...]}` as UTF-8 JSON, encoded item by item."""
    encoded = b",".join(json.dumps(item).encode() for item in items)
    return b'{"' + key.encode() + b'":[' + encoded + b"]}"


def json_page_body(key: str, items: Iterable[dict[str, Any]], next_cursor: str | None) -> bytes:
    """`{"<key>": [items...], "next": cursor or null}`: one page of a list."""
    return json_list_body(key, items)[:-1] + b',"next":' + json.dumps(next_cursor).encode() + b"}"


async def json_list_response(make_body: Callable[[], bytes]) -> web.Response:
    return web.Response(body=await asyncio.to_thread(make_body), content_type="application/json")


# ---- the store runs its writes on its own thread; replies wait for them ------------


def store_of(request: web.Request) -> Store:
    """The app's store. Handlers hand its bound methods (`store_of(request).app`) to
    asyncio.to_thread and write(), never a method's name, so mypy checks each call."""
    return request.app[STORE_KEY]


async def committed(
    request: web.Request,
    method: Callable[Concatenate[Actor, P], Change],
    *args: P.args,
    **kwargs: P.kwargs,
) -> Change:
    """Run a store write (`method`, given the caller's grant: its name is the actor, its
    limits are checked in the write's transaction) and log the change it made."""
    change = await asyncio.wrap_future(
        store_of(request).submit(method, request[GRANT], *args, **kwargs)
    )
    log_change(change.event)
    return change


async def write(
    request: web.Request,
    method: Callable[Concatenate[Actor, P], Change],
    *args: P.args,
    **kwargs: P.kwargs,
) -> tuple[Change, bool]:
    """Run a store write (see committed) and wait until DNS serves it: the change, and
    whether every DNS worker served it in time (False: durable, not yet served)."""
    change = await committed(request, method, *args, **kwargs)
    event = change.event
    if event is None:
        return change, True  # nothing changed: nothing to serve
    metrics = request.app[METRICS_KEY]
    metrics.table_changes.inc()
    if event.action == "group_switched":
        metrics.switches.inc()
    served = request.app[SERVED_KEY]
    is_served = served is None or await served(event.seq)
    if not is_served:
        metrics.changes_not_served.inc()
        log.error("change_not_served_in_time", seq=event.seq)
    return change, is_served


def change_response(body: dict[str, Any] | None, status: int, served: bool) -> web.Response:
    """The reply to a write: as asked when DNS serves it, else 202 saying exactly that."""
    if served:
        return (
            web.Response(status=status) if body is None else web.json_response(body, status=status)
        )
    return web.json_response({**(body or {}), "served": False, "message": NOT_SERVED}, status=202)


async def group_json(request: web.Request, group: Group) -> dict[str, Any]:
    apps: dict[str, App] = {}
    if group.active_app is not None:
        apps[group.active_app] = await asyncio.to_thread(store_of(request).app, group.active_app)
    return answer_json(group, apps)


def changed_group_json(change: Change) -> dict[str, Any]:
    """The group a write changed, as it stood at that commit: the change carries its
    apps, so the reply needs no second read (and cannot show a later change's app)."""
    return answer_json(change.groups[0], change.apps)


def page_param(
    request: web.Request, query: dict[str, Any], position: Callable[[str], tuple[str, ...]]
) -> PageRequest | None:
    """The page a list request asks for (`q`, `limit`, `cursor`, checked in `query`; see
    fodns/listing.py), or None when it names none of them: then the whole list, as it
    was before pages."""
    if not {"q", "limit", "cursor"} & query.keys():
        return None
    cursor = query.get("cursor")
    return PageRequest(
        find=find_param(request),
        after=None if cursor is None else position(cursor),
        # A page is never the whole list by accident: a q that finds every group
        # would otherwise be the 25 MB list again, held whole.
        limit=query.get("limit", LIST_PAGE_MAX),
    )


def find_param(request: web.Request) -> str | None:
    """`q`, lower-cased; read from the raw query, because aiohttp turns bytes that are
    not UTF-8 into U+FFFD, and a search for what was not sent would find nothing. The
    schema (GROUPS_QUERY, APPS_QUERY) has checked aiohttp's reading already, NUL
    included; the length is checked again because the raw reading can be longer (one
    character for each byte of a cut-short UTF-8 sequence, where aiohttp has one U+FFFD)."""
    raw = request.rel_url.raw_query_string
    values = [
        value
        for name, value in urllib.parse.parse_qsl(
            raw, keep_blank_values=True, errors="surrogateescape"
        )
        if name == "q"
    ]
    if not values:
        return None
    text = values[0]
    if len(text) > FIND_MAX:
        raise Invalid("q", f"must be at most {FIND_MAX} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("q", "must be UTF-8 text") from None
    return text.lower()


# ---- zones and apps -------------------------------------------------------------------


async def list_zones(request: web.Request) -> web.Response:
    return web.json_response({"zones": await asyncio.to_thread(store_of(request).zone_summaries)})


async def app_json(request: web.Request, app: App) -> dict[str, Any]:
    status = await asyncio.to_thread(store_of(request).failover_status, app.name)
    return {**app.to_json(), "failover_status": status}


async def list_apps(request: web.Request) -> web.Response:
    store: Store = request.app[STORE_KEY]
    page = page_param(request, query_of(request, APPS_QUERY), app_position)
    if page is not None:
        asked = page

        def page_body() -> bytes:
            found = store.app_page(asked)
            return json_page_body(
                "apps",
                ({**app.to_json(), "failover_status": status} for app, status in found.apps),
                None if found.next is None else app_cursor(found.next),
            )

        return await json_list_response(page_body)

    def body() -> bytes:
        apps = store.apps_with_status()
        return json_list_body(
            "apps", ({**app.to_json(), "failover_status": status} for app, status in apps)
        )

    return await json_list_response(body)


async def post_app(request: web.Request) -> web.Response:
    body = await json_body(request, NEW_APP)
    change, served = await write(
        request,
        store_of(request).create_app,
        body["name"],
        body.get("load_balancer", ()),
        body.get("web_servers", ()),
        reason=body.get("reason"),
    )
    app = change.apps[body["name"]]
    return change_response(await app_json(request, app), 201, served)


async def get_app(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY, APP_PATH)
    app = await asyncio.to_thread(store_of(request).app, request.match_info["name"])
    return web.json_response(await app_json(request, app))


async def patch_app(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY, APP_PATH)
    body = await json_body(request, APP_CHANGE)
    name = request.match_info["name"]
    new_name = body.get("name")
    _, served = await write(
        request,
        store_of(request).update_app,
        name,
        new_name=new_name,
        load_balancer=body.get("load_balancer"),
        web_servers=body.get("web_servers"),
        reason=body.get("reason"),
    )
    app = await asyncio.to_thread(store_of(request).app, new_name or name)
    return change_response(await app_json(request, app), 200, served)


async def delete_app(request: web.Request) -> web.Response:
    # A DELETE's reason is a query parameter, as a DELETE carries no body.
    query = query_of(request, DELETE_QUERY, APP_PATH)
    _, served = await write(
        request,
        store_of(request).delete_app,
        request.match_info["name"],
        reason=query.get("reason"),
    )
    return change_response(None, 204, served)


async def get_app_status(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY, APP_PATH)
    status = await asyncio.to_thread(store_of(request).failover_status, request.match_info["name"])
    return web.json_response({"failover_status": status})


# ---- groups -------------------------------------------------------------------------------


async def list_groups(request: web.Request) -> web.Response:
    store: Store = request.app[STORE_KEY]
    query = query_of(request, GROUPS_QUERY)
    zone = query.get("zone")
    page = page_param(request, query, group_position)
    if page is not None:
        asked = page

        def page_body() -> bytes:
            found = store.group_page(asked, zone)
            return json_page_body(
                "groups",
                (answer_json(group, found.apps) for group in found.groups),
                None if found.next is None else group_cursor(found.next),
            )

        return await json_list_response(page_body)

    def body() -> bytes:
        return store.read_groups(
            lambda groups, apps: json_list_body(
                "groups", (answer_json(group, apps) for group in groups)
            ),
            zone,
        )

    return await json_list_response(body)


# A group's automatic failover settings, as NEW_GROUP and GROUP_CHANGE name them.
AUTO_SETTINGS = ("failover", "failback", "hold_down", "max_auto_switches")


async def post_group(request: web.Request) -> web.Response:
    body = whole_numbers(NEW_GROUP, await json_body(request, NEW_GROUP, optional=True))
    change, served = await write(
        request,
        store_of(request).create_group,
        zone=body.get("zone"),
        label=body.get("label"),
        primary=body.get("primary"),
        backup=body.get("backup"),
        ttl=body.get("ttl"),
        reason=body.get("reason"),
        # Those left out take the store's defaults.
        **{name: body[name] for name in AUTO_SETTINGS if name in body},
    )
    return change_response(changed_group_json(change), 201, served)


async def get_group(request: web.Request) -> web.Response:
    query = query_of(request, GROUP_QUERY, GROUP_PATH)
    group = await asyncio.to_thread(
        store_of(request).group, request.match_info["label"], query.get("zone")
    )
    return web.json_response(await group_json(request, group))


async def patch_group(request: web.Request) -> web.Response:
    query = query_of(request, GROUP_QUERY, GROUP_PATH)
    body = whole_numbers(GROUP_CHANGE, await json_body(request, GROUP_CHANGE))
    change, served = await write(
        request,
        store_of(request).update_group,
        request.match_info["label"],
        query.get("zone"),
        primary=body.get("primary", STORE_UNSET),
        backup=body.get("backup", STORE_UNSET),
        ttl=body.get("ttl"),
        reason=body.get("reason"),
        failover=body.get("failover"),
        failback=body.get("failback"),
        hold_down=body.get("hold_down"),
        max_auto_switches=body.get("max_auto_switches"),
    )
    return change_response(changed_group_json(change), 200, served)


async def post_switch(request: web.Request) -> web.Response:
    query = query_of(request, GROUP_QUERY, GROUP_PATH)
    body = whole_numbers(SWITCH, await json_body(request, SWITCH))
    change, served = await write(
        request,
        store_of(request).switch,
        request.match_info["label"],
        body["to"],
        query.get("zone"),
        reason=body.get("reason"),
        # Left out: until unpinned (null says the same, and is refused for a manual group).
        pin_for=body.get("pin_for", STORE_UNSET),
    )
    # Switching to the side already active changes nothing (but an auto group's pin),
    # and still names the group.
    return change_response(changed_group_json(change), 200, served)


async def delete_pin(request: web.Request) -> web.Response:
    query = query_of(request, DELETE_GROUP_QUERY, GROUP_PATH)
    change, served = await write(
        request,
        store_of(request).unpin,
        request.match_info["label"],
        query.get("zone"),
        reason=query.get("reason"),
    )
    # No pin: nothing written, and the group as it is (a DELETE that finds its
    # resource already gone has done its job, RFC 9110 §9.2.2).
    return change_response(changed_group_json(change), 200, served)


async def delete_group(request: web.Request) -> web.Response:
    query = query_of(request, DELETE_GROUP_QUERY, GROUP_PATH)
    _, served = await write(
        request,
        store_of(request).delete_group,
        request.match_info["label"],
        query.get("zone"),
        reason=query.get("reason"),
    )
    return change_response(None, 204, served)


# ---- checks and health ---------------------------------------------------------------


async def put_check(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY, APP_PATH)
    body = whole_numbers(CHECK_BODY, await json_body(request, CHECK_BODY))
    reason = body.pop("reason", None)
    _, served = await write(
        request, store_of(request).set_check, request.match_info["name"], body, reason
    )
    # What the store keeps: the same reading of the same body, defaults filled in.
    return change_response(CheckSpec.from_json(body).to_json(), 200, served)


async def get_check(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY, APP_PATH)
    name = request.match_info["name"]
    spec = await asyncio.to_thread(store_of(request).check, name)
    if spec is None:
        raise NotFound(f"app {name!r} has no check")
    return web.json_response(spec.to_json())


async def delete_check(request: web.Request) -> web.Response:
    query = query_of(request, DELETE_QUERY, APP_PATH)
    _, served = await write(
        request,
        store_of(request).set_check,
        request.match_info["name"],
        None,
        reason=query.get("reason"),
    )
    return change_response(None, 204, served)


def health_view(request: web.Request) -> HealthView:
    checker = request.app[HEALTH_VIEW_KEY]
    if checker is None:
        raise NotFound(NOT_CHECKING)
    return checker


async def get_health(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY)
    checker = health_view(request)
    last_known = await asyncio.to_thread(store_of(request).health_last)
    return web.json_response(checker.health_json(last_known))


async def post_report(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY, PROBE_PATH)
    body = await json_body(request, REPORT, max_body=REPORT_MAX_BODY)
    reply = await health_view(request).report(
        request.match_info["name"], float(body["interval"]), body["apps"]
    )
    return web.json_response(reply)


async def list_events(request: web.Request) -> web.Response:
    query = query_of(request, EVENTS_QUERY)
    page = await asyncio.to_thread(
        store_of(request).event_page,
        group=query.get("group"),
        app=query.get("app"),
        limit=query.get("limit", EVENTS_PAGE_DEFAULT),
        before_seq=query.get("before"),
        after_seq=query.get("after"),
    )
    return web.json_response(
        {"events": [event.to_json() for event in page.events], "last_seq": page.last_seq}
    )


async def route53_plan(request: web.Request) -> web.Response:
    return await _mirror_request(request, "plan")


async def route53_sync(request: web.Request) -> web.Response:
    return await _mirror_request(request, "sync")


async def _mirror_request(request: web.Request, kind: str) -> web.Response:
    mirror = request.app[MIRROR_KEY]
    if mirror is None:
        raise NotFound("the Route53 mirror is not enabled ([route53] enabled = true)")
    return web.json_response({"zones": await mirror(kind)})


# ---- tokens -----------------------------------------------------------------------------


async def get_own_token(request: web.Request) -> web.Response:
    """What the presenting token may do (any valid token may ask): for the dashboard to
    show only that."""
    query_of(request, NO_QUERY)
    grant: Grant = request[GRANT]
    return web.json_response(grant.to_json())


async def list_tokens(request: web.Request) -> web.Response:
    query = query_of(request, TOKENS_QUERY)
    tokens = await asyncio.to_thread(store_of(request).tokens, query.get("revoked") == "true")
    return web.json_response({"tokens": [token.to_json() for token in tokens]})


async def post_token(request: web.Request) -> web.Response:
    body = whole_numbers(NEW_TOKEN, await json_body(request, NEW_TOKEN))
    # Made here and shown once, in this reply: the store, the log and the event get only
    # its hash or nothing (see fodns/tokens.py).
    secret = new_secret()
    change = await committed(
        request,
        store_of(request).create_token,
        body["name"],
        body["scope"],
        secret_hash(secret),
        groups=body.get("groups"),
        apps=body.get("apps"),
        expires_in=body.get("expires_in"),
        reason=body.get("reason"),
    )
    await asyncio.to_thread(request.app[TOKEN_BOOK_KEY].reload)  # usable from this reply on
    assert change.event is not None and change.event.after is not None
    return web.json_response({**change.event.after, "token": secret}, status=201)


async def get_token(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY, TOKEN_PATH)
    token = await asyncio.to_thread(store_of(request).token, request.match_info["name"])
    return web.json_response(token.to_json())


async def delete_token(request: web.Request) -> web.Response:
    """Revoke: refused from before this reply is sent (the book is read again first).
    Revoked already: 200, nothing recorded (RFC 9110 §9.2.2)."""
    query = query_of(request, DELETE_QUERY, TOKEN_PATH)
    name = request.match_info["name"]
    await committed(request, store_of(request).revoke_token, name, reason=query.get("reason"))
    await asyncio.to_thread(request.app[TOKEN_BOOK_KEY].reload)
    token = await asyncio.to_thread(store_of(request).token, name)
    return web.json_response(token.to_json())


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


# ---- health and metrics -----------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    health = request.app[HEALTH_KEY]()
    status = 200 if health.get("ready") else 503
    return web.json_response(health, status=status)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# ---- the dashboard (admin/): static files, no build step --------------------------


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(DASHBOARD / "index.html")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The dashboard loads only its own files and talks only to this API; no framing.
    The token lives in the page's sessionStorage, so script injection is the threat."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/v1/"):
        # Groups, apps and events are the live state: no cache may keep a copy.
        response.headers.setdefault("Cache-Control", "no-store")
    elif request.path == "/" or request.path.startswith("/admin/"):
        # The page is several modules: after an upgrade a browser must not run an old
        # one beside a new one, so each is revalidated (a 304 by its ETag) every load.
        response.headers.setdefault("Cache-Control", "no-cache")


async def not_found(request: web.Request) -> web.Response:
    raise NotFound(f"no such endpoint: {request.method} {request.path}")


def create_app(
    registry: CollectorRegistry,
    health: HealthCheck,
    store: Store | None = None,
    tokens: dict[str, str] | None = None,
    served: Served | None = None,
    mirror: MirrorRequests | None = None,
    allowed_hosts: frozenset[str] = frozenset(),
    checker: HealthView | None = None,
    webhooks: Deliveries | None = None,
    acme_resolver: Resolver = None,
) -> web.Application:
    """The admin app; `tokens` maps each bootstrap admin token to its name (the events'
    actor; named tokens are read from the store, see fodns/tokenbook.py),
    `served` waits until DNS serves a change (None: no DNS to wait for), `mirror`
    answers /v1/route53/* (None: the mirror is not enabled), `allowed_hosts` are
    names besides IP addresses and localhost it answers for, `checker` shows health
    at /v1/health and takes probes' reports (None: health checks do not run here),
    `webhooks` delivers them and sends their tests (None: delivery is off),
    `acme_resolver` is where the ACME registrations' CNAME check looks (None: the
    system's resolver)."""
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[count_requests, json_errors, known_host, bearer_token, http_methods],
    )
    app[METRICS_KEY] = ApiMetrics(registry)
    app[REGISTRY_KEY] = registry
    app[HEALTH_KEY] = health
    if store is not None:
        app[STORE_KEY] = store
    book = TokenBook(tokens or {}, None if store is None else store.token_hashes)
    book.reload()
    app[TOKEN_BOOK_KEY] = book
    app[SERVED_KEY] = served
    app[MIRROR_KEY] = mirror
    app[HEALTH_VIEW_KEY] = checker
    app[DELIVERIES_KEY] = webhooks
    app[ALLOWED_HOSTS_KEY] = frozenset(name.lower().rstrip(".") for name in allowed_hosts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.on_response_prepare.append(security_headers)
    if store is not None:
        app.cleanup_ctx.append(store_heartbeat)
        add_v1_routes(app, acme_resolver)
        if (DASHBOARD / "index.html").is_file():
            app.router.add_get("/", dashboard)
            app.router.add_static("/admin/", DASHBOARD, append_version=False)
        else:  # a broken install: the API still works, so keep serving it, but say so
            log.warning("dashboard_missing", path=str(DASHBOARD))
    return app


async def store_heartbeat(app: web.Application) -> AsyncIterator[None]:
    """While the app runs, prove now and then that the database takes writes (a full
    disk or a read-only mount shows in /healthz before anyone needs a switch)."""
    store: Store = app[STORE_KEY]

    async def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a failure is in store.write_health
                await asyncio.to_thread(store.heartbeat)
            await asyncio.sleep(STORE_HEARTBEAT_INTERVAL)

    task = asyncio.get_running_loop().create_task(beat())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_v1_routes(app: web.Application, acme_resolver: Resolver = None) -> None:
    """Every /v1 route; each needs the scope fodns/scopes.py ROUTE_SCOPES gives it."""
    router = app.router
    router.add_get("/v1/openapi.json", get_openapi)
    router.add_get("/v1/token", get_own_token)
    router.add_get("/v1/tokens", list_tokens)
    router.add_post("/v1/tokens", post_token)
    router.add_get("/v1/tokens/{name}", get_token)
    router.add_delete("/v1/tokens/{name}", delete_token)
    router.add_get("/v1/zones", list_zones)
    router.add_get("/v1/apps", list_apps)
    router.add_post("/v1/apps", post_app)
    router.add_get("/v1/apps/{name}", get_app)
    router.add_patch("/v1/apps/{name}", patch_app)
    router.add_delete("/v1/apps/{name}", delete_app)
    router.add_get("/v1/apps/{name}/status", get_app_status)
    router.add_put("/v1/apps/{name}/check", put_check)
    router.add_get("/v1/apps/{name}/check", get_check)
    router.add_delete("/v1/apps/{name}/check", delete_check)
    router.add_get("/v1/groups", list_groups)
    router.add_post("/v1/groups", post_group)
    router.add_get("/v1/groups/{label}", get_group)
    router.add_patch("/v1/groups/{label}", patch_group)
    router.add_delete("/v1/groups/{label}", delete_group)
    router.add_post("/v1/groups/{label}/switch", post_switch)
    router.add_delete("/v1/groups/{label}/pin", delete_pin)
    router.add_get("/v1/events", list_events)
    router.add_get("/v1/health", get_health)
    router.add_post("/v1/probes/{name}/reports", post_report)
    router.add_get("/v1/route53/plan", route53_plan)
    router.add_post("/v1/route53/sync", route53_sync)
    add_webhook_routes(app, app[STORE_KEY])
    add_acme_routes(app, app[STORE_KEY], acme_resolver, app[SERVED_KEY])
