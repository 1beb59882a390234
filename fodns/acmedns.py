"""The acme-dns API on its own listener ([acme] listen): POST /register, POST /update and
GET /health, as joohoi/acme-dns speaks them, so that lego, cert-manager, Caddy and
certbot's hooks work with fodns unchanged.

It runs in the admin API's process (in both worker modes), beside the admin API but not
part of it: the admin token is never needed for an update, only a registration's own
credentials, and an update can set one name's TXT records and nothing else.

- `POST /register`: with `registration = "token"` (the default) only with `Authorization:
  Bearer <a token of the admin API with the write scope>` (the same tokens, the same
  book, so a revocation holds here at once), as a registration creates a name in the
  operator's zone; with `"open"`, anyone, at most `open_registrations_per_hour` from one
  client (fodns/acme.py). 201 with acme-dns's reply; the password is shown this once.
- `POST /update` with `X-Api-User` and `X-Api-Key`: 401 `{"error": "forbidden"}` for
  an unknown user, a wrong key, a peer outside the registration's allowfrom and another
  registration's subdomain, all alike (the reply says nothing of which); 400 for a
  body that is not JSON (`malformed_json`), a subdomain that is not text
  (`bad_subdomain`) or a value that is not 43 characters of base64url (`bad_txt`).
  The reply comes once every DNS process serves the value (or after the same 2 s the
  admin API waits): an ACME client that asks the CA to validate as soon as it is
  answered finds the record on every worker, and NOTIFY is on its way to secondaries.
- `GET /health`: 200.

Errors of its own (a body too large, a path or method it does not have, the database
refusing a write) use the same `{"error": "..."}` form.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fodns.acme import (
    RegistrationLimiter,
    allowed_from,
    canonical_uuid,
    check_allowfrom,
    new_credentials,
    password_hash,
    password_matches,
    valid_password,
    valid_txt,
)
from fodns.apirequest import log_change
from fodns.config import AcmeConfig
from fodns.errors import FodnsError, Forbidden, Invalid, NotFound, StoreUnavailable
from fodns.logs import get_logger
from fodns.model import ACME_ACTOR
from fodns.scopes import Actor, Scope
from fodns.store import Store
from fodns.tokenbook import Refused, TokenBook

log = get_logger()
# Far above any request of the protocol (a register with 32 networks is under 2 KiB).
MAX_BODY = 16 * 1024
# Compared against when the user is unknown, so that an unknown user costs what a
# wrong key does (a hash and a comparison).
_NOBODY = password_hash("x" * 40)
Served = Callable[[int], Awaitable[bool]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class AcmeDns:
    """What the listener's handlers use: the store, [acme], the admin API's token book,
    the wait until DNS serves a change and the seq every DNS process serves now."""

    store: Store
    config: AcmeConfig
    tokens: TokenBook
    served: Served | None
    frontier: Callable[[], int | None]
    limiter: RegistrationLimiter


ACME_KEY: web.AppKey[AcmeDns] = web.AppKey("acme_dns")


def create_acme_app(
    store: Store,
    config: AcmeConfig,
    tokens: TokenBook,
    served: Served | None = None,
    frontier: Callable[[], int | None] = lambda: None,
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[acme_errors])
    app[ACME_KEY] = AcmeDns(
        store,
        config,
        tokens,
        served,
        frontier,
        RegistrationLimiter(config.open_registrations_per_hour),
    )
    app.router.add_post("/register", register)
    app.router.add_post("/update", update)
    app.router.add_get("/health", health)
    return app


def error(status: int, code: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, **extra}, status=status)


@web.middleware
async def acme_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every reply is JSON in acme-dns's form, whatever went wrong (a bug is a logged 500)."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return error(413, "too_large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason.lower().replace(" ", "_"))
    except StoreUnavailable:
        return error(503, "db_error")
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("acme_request_failed", method=request.method, path=request.path)
        return error(500, "internal")


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The body as a JSON object ({} for none); None when it is not one."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


# ---- POST /register ---------------------------------------------------------------------


async def register(request: web.Request) -> web.Response:
    acme = request.app[ACME_KEY]
    actor: Actor
    if acme.config.registration == "token":
        found = acme.tokens.authenticate(request.headers.get("Authorization", ""))
        if isinstance(found, Refused):
            response = error(401, "forbidden", message=_token_needed(found.message))
            response.headers["WWW-Authenticate"] = 'Bearer realm="fodns acme"'
            return response
        if not found.allows(Scope.WRITE):
            return error(
                403,
                "forbidden",
                message=f"the token {found.name!r} has the {found.scope.word} scope; "
                "registering needs write",
            )
        actor = found
    else:
        wait = acme.limiter.take(request.remote)
        if wait is not None:
            log.warning("acme_registration_limited", peer=request.remote)
            response = error(429, "too_many_registrations")
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        actor = ACME_ACTOR
    body = await json_object(request)
    if body is None:
        return error(400, "malformed_json")
    try:
        allowfrom = check_allowfrom(body.get("allowfrom"))
    except Invalid:
        return error(400, "invalid_allowfrom_cidr")
    credentials = new_credentials()
    try:
        change = await asyncio.wrap_future(
            acme.store.submit(acme.store.acme_register, actor, credentials, allowfrom=allowfrom)
        )
    except Forbidden as refused:
        return error(403, "forbidden", message=str(refused))
    log_change(change.event)
    registration = await asyncio.to_thread(acme.store.acme_registration, credentials.subdomain)
    return web.json_response(registration.acme_dns_json(credentials.password), status=201)


def _token_needed(why: str) -> str:
    return (
        f"{why}: registering here needs a token of the admin API with the write scope "
        '([acme] registration = "token"); or use fodns acme register'
    )


# ---- POST /update -----------------------------------------------------------------------


async def update(request: web.Request) -> web.Response:
    acme = request.app[ACME_KEY]
    user = canonical_uuid(request.headers.get("X-Api-User"))
    key = request.headers.get("X-Api-Key", "")
    found = None
    if user is not None and valid_password(key):
        found = await asyncio.to_thread(acme.store.acme_credentials, user)
    if found is None:
        password_matches(key, _NOBODY)  # the same work as a wrong key
        return _refused(request, "unknown user", user)
    registration, stored_hash = found
    if not password_matches(key, stored_hash):
        return _refused(request, "wrong key", user)
    if not allowed_from(registration.allowfrom, request.remote):
        return _refused(request, "peer outside allowfrom", user)
    body = await json_object(request)
    if body is None:
        return error(400, "malformed_json")
    subdomain = body.get("subdomain")
    if not isinstance(subdomain, str):
        return error(400, "bad_subdomain")
    if canonical_uuid(subdomain) != registration.subdomain:
        return _refused(request, "another registration's subdomain", user)
    txt = body.get("txt")
    if not valid_txt(txt):
        return error(400, "bad_txt")
    assert isinstance(txt, str)
    try:
        change = await asyncio.wrap_future(
            acme.store.submit(
                acme.store.acme_set_txt,
                registration.subdomain,
                txt,
                served_upto=acme.frontier(),
            )
        )
    except NotFound:  # deleted since it was read: its credentials no longer work
        return _refused(request, "unknown user", user)
    except FodnsError as failed:
        log.error("acme_update_failed", subdomain=registration.subdomain, error=str(failed))
        raise
    event = change.event
    if event is not None:
        log_change(event)
        if acme.served is not None and not await acme.served(event.seq):
            # Durable and on its way: acme-dns has no "accepted" reply, and the ACME
            # server asks again if it does not find the value at once.
            log.error("change_not_served_in_time", seq=event.seq)
    return web.json_response({"txt": txt})


def _refused(request: web.Request, why: str, user: str | None) -> web.Response:
    """acme-dns's one refusal, whatever the reason (logged here, never the key)."""
    log.warning("acme_update_refused", reason=why, user=user, peer=request.remote)
    return error(401, "forbidden")
