"""The webhooks' part of the admin API: /v1/webhooks and what hangs below it.

Create, list, read, change and delete webhooks (each change one transaction with its
event in the log, never the secret), list a webhook's recent attempts, and send it a
test. The bodies and parameters are fodns/schemas.py's; the store's part is
fodns/webhookstate.py's; delivery (fodns/webhooks.py) runs beside the API and is handed
to it (`Deliveries`), None where `[webhooks] enabled = false`.

A webhook's write does not wait for DNS to serve it (no 202): DNS answers nothing of
webhooks. Once it is committed the deliverer reads the webhooks again before the reply,
so a pause, a resume or a new URL holds from the reply on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol

from aiohttp import web

from fodns.apirequest import ACTOR, NO_QUERY, json_body, log_change, query_of
from fodns.errors import Conflict
from fodns.logs import get_logger
from fodns.patterns import check_patterns
from fodns.schemas import NEW_WEBHOOK, WEBHOOK_CHANGE, WEBHOOK_PATH
from fodns.store import Change, Store
from fodns.webhookmodel import (
    Delivery,
    Webhook,
    check_description,
    check_kinds,
    check_secret,
    check_url,
    new_id,
    new_secret,
)
from fodns.webhookstate import UNSET, WebhookState

log = get_logger()
P = ParamSpec("P")
DELIVERY_OFF = "webhook delivery is off here ([webhooks] enabled = false): nothing is sent"


class Deliveries(Protocol):
    """What the API asks of the deliverer (fodns/webhooks.py WebhookDeliverer)."""

    async def reconcile(self) -> None:
        """Read the webhooks again: a change holds from now on."""
        ...

    async def test(self, webhook_id: str) -> Delivery:
        """Send the test event now; the attempt."""
        ...

    async def save(self) -> None:
        """Write the attempts and cursors held in memory."""
        ...


DELIVERIES_KEY: web.AppKey[Deliveries | None] = web.AppKey("webhook_deliveries")
STATE_KEY: web.AppKey[WebhookState] = web.AppKey("webhook_state")
STORE_KEY: web.AppKey[Store] = web.AppKey("webhook_store")


def add_webhook_routes(app: web.Application, store: Store) -> None:
    """The /v1/webhooks routes, on the store's webhooks; app[DELIVERIES_KEY] is the
    deliverer (None: delivery is off)."""
    app[STORE_KEY] = store
    app[STATE_KEY] = WebhookState(store)
    router = app.router
    router.add_get("/v1/webhooks", list_webhooks)
    router.add_post("/v1/webhooks", post_webhook)
    router.add_get("/v1/webhooks/{id}", get_webhook)
    router.add_patch("/v1/webhooks/{id}", patch_webhook)
    router.add_delete("/v1/webhooks/{id}", delete_webhook)
    router.add_get("/v1/webhooks/{id}/deliveries", list_deliveries)
    router.add_post("/v1/webhooks/{id}/test", post_test)


async def changed(
    request: web.Request,
    method: Callable[Concatenate[str, P], Change],
    *args: P.args,
    **kwargs: P.kwargs,
) -> Change:
    """Run a webhook write (a WebhookState method, given the caller as its actor) on the
    store's writer; log its event; have the deliverer read the webhooks again."""
    store = request.app[STORE_KEY]
    change = await asyncio.wrap_future(store.submit(method, request[ACTOR], *args, **kwargs))
    log_change(change.event)
    deliveries = request.app[DELIVERIES_KEY]
    if deliveries is not None:
        try:
            await deliveries.reconcile()
        except Exception:  # committed all the same: the deliverer reads them again soon
            log.exception("webhooks_not_read")
    return change


def state_of(request: web.Request) -> WebhookState:
    return request.app[STATE_KEY]


def webhook_id(request: web.Request) -> str:
    query_of(request, NO_QUERY, WEBHOOK_PATH)
    return request.match_info["id"]


def reply_of(change: Change, secret: str | None = None) -> dict[str, Any]:
    """The webhook as the change left it (its event's `after`), with the secret when the
    request set one: the only replies that ever hold it."""
    assert change.event is not None and change.event.after is not None
    shown = {key: value for key, value in change.event.after.items() if key != "secret_changed"}
    return shown if secret is None else {**shown, "secret": secret}


async def list_webhooks(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY)
    webhooks = await asyncio.to_thread(state_of(request).webhooks)
    return web.json_response({"webhooks": [webhook.to_json() for webhook in webhooks]})


async def post_webhook(request: web.Request) -> web.Response:
    query_of(request, NO_QUERY)
    body = await json_body(request, NEW_WEBHOOK)
    secret = check_secret(body["secret"]) if "secret" in body else new_secret()
    webhook = Webhook(
        id=new_id(),
        url=check_url(body["url"]),
        events=check_kinds(body.get("events")),
        groups=check_patterns("groups", body.get("groups")),
        apps=check_patterns("apps", body.get("apps")),
        active=bool(body.get("active", True)),
        description=check_description(body.get("description")),
    )
    change = await changed(request, state_of(request).create, webhook, secret)
    return web.json_response(reply_of(change, secret), status=201)


async def get_webhook(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(state_of(request).webhook, webhook_id(request))
    return web.json_response(found.to_json())


async def patch_webhook(request: web.Request) -> web.Response:
    hook = webhook_id(request)
    body = await json_body(request, WEBHOOK_CHANGE)
    fields: dict[str, Any] = {}
    if "url" in body:
        fields["url"] = check_url(body["url"])
    if "events" in body:
        fields["events"] = check_kinds(body["events"])
    for name in ("groups", "apps"):
        if name in body:
            fields[name] = check_patterns(name, body[name])
    if "secret" in body:
        fields["secret"] = check_secret(body["secret"])
    if "active" in body:
        fields["active"] = bool(body["active"])
    if "description" in body:
        fields["description"] = check_description(body["description"])
    state = state_of(request)
    change = await changed(request, state.update, hook, **{**_unset(), **fields})
    secret = fields.get("secret")
    if change.event is None:  # nothing changed: the webhook as it is
        found = await asyncio.to_thread(state.webhook, hook)
        shown = found.to_json()
        return web.json_response(shown if secret is None else {**shown, "secret": secret})
    return web.json_response(reply_of(change, secret))


def _unset() -> dict[str, Any]:
    names = ("url", "events", "groups", "apps", "secret", "active", "description")
    return dict.fromkeys(names, UNSET)


async def delete_webhook(request: web.Request) -> web.Response:
    hook = webhook_id(request)
    await changed(request, state_of(request).delete, hook)
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    hook = webhook_id(request)
    deliveries = request.app[DELIVERIES_KEY]
    if deliveries is not None:
        await deliveries.save()  # so that the list holds every attempt made until now
    listed = await asyncio.to_thread(state_of(request).deliveries, hook)
    return web.json_response({"deliveries": [delivery.to_json() for delivery in listed]})


async def post_test(request: web.Request) -> web.Response:
    hook = webhook_id(request)
    deliveries = request.app[DELIVERIES_KEY]
    if deliveries is None:
        # The webhook is there (404 if not); this server's setting is what refuses.
        await asyncio.to_thread(state_of(request).webhook, hook)
        raise Conflict(DELIVERY_OFF)
    return web.json_response((await deliveries.test(hook)).to_json())
