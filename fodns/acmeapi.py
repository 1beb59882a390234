"""The ACME registrations' part of the admin API: /v1/acme/registrations and one below it.

A registration made here is tied to a failover group (the token's group limits apply)
and to the customer's names: the reply holds the acme-dns credentials, the password
shown this once, and `cnames`, the exact records the customer adds. Reading one checks
those CNAMEs through [acme] resolver (fodns/cnamecheck.py); deleting one stops its
credentials and removes its records. The bodies and parameters are fodns/schemas.py's;
the store's part is fodns/acmerows.py's; the acme-dns API itself is fodns/acmedns.py.

A registration changes nothing DNS answers until its first update, so POST does not
wait for DNS (no 202); a DELETE that removes records waits until every DNS process
serves it, as the admin API's writes do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fodns.acme import check_allowfrom, check_names, new_credentials
from fodns.apirequest import GRANT, NO_QUERY, NOT_SERVED, json_body, log_change, query_of
from fodns.cnamecheck import check_cnames
from fodns.config import ListenAddress
from fodns.logs import get_logger
from fodns.schemas import ACME_PATH, ACME_QUERY, DELETE_QUERY, NEW_ACME_REGISTRATION
from fodns.store import Store

log = get_logger()
Served = Callable[[int], Awaitable[bool]]
# Where the CNAME check looks ([acme] resolver); None: the system's resolver.
Resolver = ListenAddress | None


@dataclass(frozen=True)
class AcmeRoutes:
    """What the routes need: the store, the resolver of the CNAME check ([acme]
    resolver; None: the system's) and the wait until DNS serves a change."""

    store: Store
    resolver: Resolver = None
    served: Served | None = None


ROUTES_KEY: web.AppKey[AcmeRoutes] = web.AppKey("acme_routes")


def add_acme_routes(
    app: web.Application,
    store: Store,
    resolver: Resolver = None,
    served: Served | None = None,
) -> None:
    app[ROUTES_KEY] = AcmeRoutes(store, resolver, served)
    router = app.router
    router.add_get("/v1/acme/registrations", list_registrations)
    router.add_post("/v1/acme/registrations", post_registration)
    router.add_get("/v1/acme/registrations/{subdomain}", get_registration)
    router.add_delete("/v1/acme/registrations/{subdomain}", delete_registration)


def routes_of(request: web.Request) -> AcmeRoutes:
    return request.app[ROUTES_KEY]


async def list_registrations(request: web.Request) -> web.Response:
    query = query_of(request, ACME_QUERY)
    store = routes_of(request).store
    found = await asyncio.to_thread(store.acme_registrations, query.get("group"))
    return web.json_response({"registrations": [item.to_json() for item in found]})


async def post_registration(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY)
    body = await json_body(request, NEW_ACME_REGISTRATION)
    store = routes_of(request).store
    credentials = new_credentials()
    change = await asyncio.wrap_future(
        store.submit(
            store.acme_register,
            request[GRANT],
            credentials,
            allowfrom=check_allowfrom(body.get("allowfrom")),
            group=body["group"],
            names=check_names(body["names"]),
            reason=body.get("reason"),
        )
    )
    log_change(change.event)
    registration = await asyncio.to_thread(store.acme_registration, credentials.subdomain)
    return web.json_response(
        {**registration.to_json(), "password": credentials.password}, status=201
    )


async def get_registration(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY, ACME_PATH)
    routes = routes_of(request)
    subdomain = request.match_info["subdomain"].lower()
    registration = await asyncio.to_thread(routes.store.acme_registration, subdomain)
    values = await asyncio.to_thread(routes.store.acme_txt, subdomain)
    shown: dict[str, Any] = {
        **registration.to_json(),
        "txt": list(values),
        "cname_check": await check_cnames(registration, routes.resolver),
    }
    return web.json_response(shown)


async def delete_registration(request: web.Request) -> web.Response:
    query = query_of(request, DELETE_QUERY, ACME_PATH)
    routes = routes_of(request)
    store = routes.store
    change = await asyncio.wrap_future(
        store.submit(
            store.acme_delete,
            request[GRANT],
            request.match_info["subdomain"].lower(),
            reason=query.get("reason"),
        )
    )
    log_change(change.event)
    event = change.event
    served = routes.served
    if event is not None and change.serials and served is not None and not await served(event.seq):
        log.error("change_not_served_in_time", seq=event.seq)
        return web.json_response({"served": False, "message": NOT_SERVED}, status=202)
    return web.Response(status=204)
