"""The admin HTTP API (aiohttp): apps, groups, switches and events, health and metrics.

Every /v1 call needs `Authorization: Bearer <token>`; errors are JSON
`{"error": {"code", "message", "field"?}}` with the status of the FodnsError
behind them. A write returns once the store has committed it durably and the
DNS table serves it (the table is updated on this event loop before replying).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from fodns.errors import Conflict, FodnsError, Invalid, NotFound
from fodns.groups import answer_json, follow
from fodns.logs import get_logger
from fodns.metrics import ApiMetrics
from fodns.model import App, Group
from fodns.notify import Notifier
from fodns.openapi import openapi_document
from fodns.route53 import MirrorError, Route53Mirror
from fodns.store import UNSET as STORE_UNSET
from fodns.store import Store
from fodns.table import AnswerTable
from fodns.zone import wire_key

log = get_logger()

HealthCheck = Callable[[], dict[str, Any]]
REGISTRY_KEY: web.AppKey[CollectorRegistry] = web.AppKey("registry")
HEALTH_KEY: web.AppKey[HealthCheck] = web.AppKey("health")
STORE_KEY: web.AppKey[Any] = web.AppKey("store")
# The table this process serves DNS from, if any: a function, as SIGHUP replaces it.
CurrentTable = Callable[[], AnswerTable | None]
TABLE_KEY: web.AppKey[CurrentTable] = web.AppKey("table")
TOKENS_KEY: web.AppKey[dict[str, str]] = web.AppKey("tokens")
Served = Callable[[int], Awaitable[bool]]
SERVED_KEY: web.AppKey[Served | None] = web.AppKey("served")
METRICS_KEY: web.AppKey[ApiMetrics] = web.AppKey("metrics")
NOTIFIER_KEY: web.AppKey[Notifier | None] = web.AppKey("notifier")
MIRROR_KEY: web.AppKey[Route53Mirror | None] = web.AppKey("route53_mirror")
# Shipped inside the package (see pyproject.toml), so a `pip install .` serves it too.
DASHBOARD = Path(str(files("fodns") / "admin"))
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
MIRROR_TIMEOUT = 120.0  # a plan lists every record set; a sync may send many batches
ACTOR = "actor"
MAX_BODY = 64 * 1024  # far above any real request; bigger bodies get 413
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---- cross-cutting: errors and tokens ---------------------------------------------------


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except FodnsError as exc:
        return error_response(exc.status, exc.code, str(exc), exc.field)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", f"request bodies are limited to {MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """fodns_api_requests_total by route template (bounded), method and status."""
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request.app[METRICS_KEY].requests.labels(route, request.method, str(response.status)).inc()
    return response


@web.middleware
async def bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /v1 call needs a known token; the token's name is the actor in events."""
    if request.path.startswith("/v1"):
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        actor = None
        if scheme.lower() == "bearer":
            for token, name in request.app[TOKENS_KEY].items():
                if hmac.compare_digest(presented.encode(), token.encode()):
                    actor = name
        if actor is None:
            return error_response(
                401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required"
            )
        request[ACTOR] = actor
    return await handler(request)


async def json_body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """The request's JSON object; unknown fields are errors, so typos cannot pass silently."""
    try:
        body = await request.json(loads=json.loads)
    except json.JSONDecodeError as exc:
        raise Invalid("body", f"not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object")
    for field in sorted(set(body) - allowed):
        raise Invalid(field, f"unknown field (allowed: {', '.join(sorted(allowed))})")
    return body


def optional_str(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise Invalid(field, "must be a string")
    return value


# ---- long lists: read and encoded off the event loop ----------------------------------
# With workers = 1 the loop that runs the API also answers DNS, and 100,000 groups
# take over a second to encode: that must not be a second without answers. Lists are
# made on a thread, one json.dumps per item, so that the GIL changes hands between
# items instead of being held for one 25 MB call.


def json_list_body(key: str, items: Iterable[dict[str, Any]]) -> bytes:
    """`{"<key>": [items...]}` as UTF-8 JSON, encoded item by item."""
    encoded = b",".join(json.dumps(item).encode() for item in items)
    return b'{"' + key.encode() + b'":[' + encoded + b"]}"


async def json_list_response(make_body: Callable[[], bytes]) -> web.Response:
    return web.Response(body=await asyncio.to_thread(make_body), content_type="application/json")


# ---- the store runs its writes on its own thread; replies wait for them ------------


async def in_store(request: web.Request, method: str, *args: Any, **kwargs: Any) -> Any:
    store = request.app[STORE_KEY]
    return await asyncio.to_thread(getattr(store, method), *args, **kwargs)


async def write(request: web.Request, method: str, *args: Any, **kwargs: Any) -> Any:
    """Run a store write for the caller and put its effect on the wire before replying."""
    change = await in_store(request, method, request[ACTOR], *args, **kwargs)
    event = change.event
    if event is not None:
        # The change itself, as a fact with its fields: who, what, before and after.
        log.info(
            event.action,
            seq=event.seq,
            actor=event.actor,
            zone=event.zone,
            group=event.group,
            app=event.app,
            before=event.before,
            after=event.after,
            reason=event.reason,
        )
    metrics = request.app[METRICS_KEY]
    if event is not None:
        metrics.table_changes.inc()
        if event.action == "group_switched":
            metrics.switches.inc()
    table = request.app[TABLE_KEY]()
    if table is not None:
        follow(table, change)  # this process answers DNS: serve it before replying
    served = request.app[SERVED_KEY]
    if served is not None and change.event is not None and not await served(change.event.seq):
        log.error("change_not_served_in_time", seq=change.event.seq)
    notifier = request.app[NOTIFIER_KEY]
    if notifier is not None:
        for zone in change.serials:
            notifier.changed(zone)  # RFC 1996: the secondaries fetch the new serial
    mirror = request.app[MIRROR_KEY]
    if mirror is not None and change.event is not None:
        mirror.changed()
    return change


async def group_reply(request: web.Request, group: Group, status: int = 200) -> web.Response:
    apps: dict[str, App] = {}
    if group.active_app is not None:
        apps[group.active_app] = await in_store(request, "app", group.active_app)
    return web.json_response(answer_json(group, apps), status=status)


def zone_param(request: web.Request) -> str | None:
    return request.query.get("zone")


def seq_param(request: web.Request, name: str) -> int | None:
    """An event seq given in the query as `name`, or None when it is not given."""
    text = request.query.get(name)
    if text is not None and not text.isdigit():
        raise Invalid(name, "must be an event seq")
    return None if text is None else int(text)


# ---- zones and apps -------------------------------------------------------------------


async def list_zones(request: web.Request) -> web.Response:
    table = request.app[TABLE_KEY]()
    counts: dict[str, int] = await in_store(request, "group_counts")
    zones = []
    for zone in table.zones.values() if table is not None else ():
        name = zone.origin.to_text(omit_final_dot=True)
        zones.append(
            {
                "name": name,
                "serial": zone.serial,
                "groups": counts.get(name, 0),
                "names": len(zone.names),
                "group_ttl": request.app[STORE_KEY].group_ttl(name),
            }
        )
    return web.json_response({"zones": sorted(zones, key=lambda zone: zone["name"])})


async def app_json(request: web.Request, app: App) -> dict[str, Any]:
    status = await in_store(request, "failover_status", app.name)
    return {**app.to_json(), "failover_status": status}


async def list_apps(request: web.Request) -> web.Response:
    store: Store = request.app[STORE_KEY]

    def body() -> bytes:
        apps = store.apps_with_status()
        return json_list_body(
            "apps", ({**app.to_json(), "failover_status": status} for app, status in apps)
        )

    return await json_list_response(body)


async def post_app(request: web.Request) -> web.Response:
    body = await json_body(request, {"name", "load_balancer", "web_servers", "reason"})
    if "name" not in body:
        raise Invalid("name", "is required")
    change = await write(
        request,
        "create_app",
        body["name"],
        body.get("load_balancer") or (),
        body.get("web_servers") or (),
        reason=optional_str(body, "reason"),
    )
    app = change.apps[body["name"]]
    return web.json_response(await app_json(request, app), status=201)


async def get_app(request: web.Request) -> web.Response:
    app = await in_store(request, "app", request.match_info["name"])
    return web.json_response(await app_json(request, app))


async def patch_app(request: web.Request) -> web.Response:
    body = await json_body(request, {"name", "load_balancer", "web_servers", "reason"})
    name = request.match_info["name"]
    new_name = optional_str(body, "name")
    await write(
        request,
        "update_app",
        name,
        new_name=new_name,
        load_balancer=body.get("load_balancer"),
        web_servers=body.get("web_servers"),
        reason=optional_str(body, "reason"),
    )
    app = await in_store(request, "app", new_name or name)
    return web.json_response(await app_json(request, app))


async def delete_app(request: web.Request) -> web.Response:
    await write(request, "delete_app", request.match_info["name"])
    return web.Response(status=204)


async def get_app_status(request: web.Request) -> web.Response:
    status = await in_store(request, "failover_status", request.match_info["name"])
    return web.json_response({"failover_status": status})


# ---- groups -------------------------------------------------------------------------------


async def list_groups(request: web.Request) -> web.Response:
    store: Store = request.app[STORE_KEY]
    zone = zone_param(request)

    def body() -> bytes:
        return store.read_groups(
            lambda groups, apps: json_list_body(
                "groups", (answer_json(group, apps) for group in groups)
            ),
            zone,
        )

    return await json_list_response(body)


async def post_group(request: web.Request) -> web.Response:
    body = await json_body(request, {"zone", "label", "primary", "backup", "ttl", "reason"})
    zone, label = optional_str(body, "zone"), optional_str(body, "label")
    table = request.app[TABLE_KEY]()
    if label is not None and table is not None:
        refuse_static_name(table, label, zone)
    change = await write(
        request,
        "create_group",
        zone=zone,
        label=label,
        primary=optional_str(body, "primary"),
        backup=optional_str(body, "backup"),
        ttl=body.get("ttl"),
        reason=optional_str(body, "reason"),
    )
    return await group_reply(request, change.groups[0], status=201)


def refuse_static_name(table: AnswerTable, label: str, zone: str | None) -> None:
    """A group may not take a name the zone file already uses (its records would vanish)."""
    for data in table.zones.values():
        name = data.origin.to_text(omit_final_dot=True)
        if zone is not None and zone.rstrip(".").lower() != name:
            continue
        try:
            key = wire_key(dns.name.from_text(label, data.origin))
        except dns.exception.DNSException:
            return  # the store rejects the label itself, naming the field
        # Only the file's own names: a group's name is the store's to refuse, saying so.
        if key in data.file_names:
            raise Conflict(
                f"{label}.{name} is a name in the zone file; choose another label", field="label"
            )


async def get_group(request: web.Request) -> web.Response:
    group = await in_store(request, "group", request.match_info["label"], zone_param(request))
    return await group_reply(request, group)


async def patch_group(request: web.Request) -> web.Response:
    body = await json_body(request, {"primary", "backup", "ttl", "reason"})
    sides = {side: body[side] for side in ("primary", "backup") if side in body}
    for side, value in sides.items():
        if value is not None and not isinstance(value, str):
            raise Invalid(side, "must be an app name or null")
    change = await write(
        request,
        "update_group",
        request.match_info["label"],
        zone_param(request),
        primary=sides.get("primary", STORE_UNSET),
        backup=sides.get("backup", STORE_UNSET),
        ttl=body.get("ttl"),
        reason=optional_str(body, "reason"),
    )
    return await group_reply(request, change.groups[0])


async def post_switch(request: web.Request) -> web.Response:
    body = await json_body(request, {"to", "reason"})
    if "to" not in body:
        raise Invalid("to", 'is required: "primary" or "backup"')
    change = await write(
        request,
        "switch",
        request.match_info["label"],
        body["to"],
        zone_param(request),
        reason=optional_str(body, "reason"),
    )
    group = (
        change.groups[0]
        if change.groups
        else await in_store(request, "group", request.match_info["label"], zone_param(request))
    )
    return await group_reply(request, group)


async def delete_group(request: web.Request) -> web.Response:
    await write(request, "delete_group", request.match_info["label"], zone_param(request))
    return web.Response(status=204)


async def list_events(request: web.Request) -> web.Response:
    limit_text = request.query.get("limit", "100")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise Invalid("limit", "must be a whole number from 1 to 1000")
    events = await in_store(
        request,
        "events",
        group=request.query.get("group"),
        app=request.query.get("app"),
        limit=int(limit_text),
        before_seq=seq_param(request, "before"),
        after_seq=seq_param(request, "after"),
    )
    return web.json_response({"events": [event.to_json() for event in events]})


async def route53_plan(request: web.Request) -> web.Response:
    return await _mirror_request(request, "plan")


async def route53_sync(request: web.Request) -> web.Response:
    return await _mirror_request(request, "sync")


async def _mirror_request(request: web.Request, kind: str) -> web.Response:
    mirror = request.app[MIRROR_KEY]
    if mirror is None:
        raise NotFound("the Route53 mirror is not enabled ([route53] enabled = true)")
    try:
        plans = await asyncio.wait_for(asyncio.wrap_future(mirror.request(kind)), MIRROR_TIMEOUT)
    except TimeoutError:
        return error_response(
            504, "route53_timeout", f"Route53 did not answer in {MIRROR_TIMEOUT:.0f} s"
        )
    except MirrorError as error:
        return error_response(502, "route53_error", f"Route53: {error.kind}: {error}")
    return web.json_response({"zones": [plan.to_json() for plan in plans]})


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
    store: Any = None,
    table: CurrentTable | None = None,
    tokens: dict[str, str] | None = None,
    served: Served | None = None,
    notifier: Notifier | None = None,
    mirror: Route53Mirror | None = None,
) -> web.Application:
    """The admin app; `tokens` maps each accepted token to its name (the events' actor)."""
    app = web.Application(
        client_max_size=MAX_BODY, middlewares=[count_requests, json_errors, bearer_token]
    )
    app[METRICS_KEY] = ApiMetrics(registry)
    app[REGISTRY_KEY] = registry
    app[HEALTH_KEY] = health
    app[STORE_KEY] = store
    app[TABLE_KEY] = table or (lambda: None)
    app[TOKENS_KEY] = tokens or {}
    app[SERVED_KEY] = served
    app[NOTIFIER_KEY] = notifier
    app[MIRROR_KEY] = mirror
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.on_response_prepare.append(security_headers)
    if store is not None:
        add_v1_routes(app)
        if (DASHBOARD / "index.html").is_file():
            app.router.add_get("/", dashboard)
            app.router.add_static("/admin/", DASHBOARD, append_version=False)
        else:  # a broken install: the API still works, so keep serving it, but say so
            log.warning("dashboard_missing", path=str(DASHBOARD))
    return app


def add_v1_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/v1/openapi.json", get_openapi)
    router.add_get("/v1/zones", list_zones)
    router.add_get("/v1/apps", list_apps)
    router.add_post("/v1/apps", post_app)
    router.add_get("/v1/apps/{name}", get_app)
    router.add_patch("/v1/apps/{name}", patch_app)
    router.add_delete("/v1/apps/{name}", delete_app)
    router.add_get("/v1/apps/{name}/status", get_app_status)
    router.add_get("/v1/groups", list_groups)
    router.add_post("/v1/groups", post_group)
    router.add_get("/v1/groups/{label}", get_group)
    router.add_patch("/v1/groups/{label}", patch_group)
    router.add_delete("/v1/groups/{label}", delete_group)
    router.add_post("/v1/groups/{label}/switch", post_switch)
    router.add_get("/v1/events", list_events)
    router.add_get("/v1/route53/plan", route53_plan)
    router.add_post("/v1/route53/sync", route53_sync)
