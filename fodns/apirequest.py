"""What an admin API handler reads from its request: the caller, the JSON body and the
query, each checked against the schemas of fodns/schemas.py before a handler uses it.

Shared by the API's modules (fodns/api.py, and those it adds routes from), which import
it; it imports none of them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from fodns.errors import Invalid
from fodns.logs import get_logger
from fodns.model import Event
from fodns.schemas import Schema, check, check_query

# The request's key for the caller's token name (set by the API's token check): the
# actor of every event the request writes.
ACTOR = "actor"
# ...and for what that token may do (scopes.Grant): the caller the store's writes check
# a token's limits against.
GRANT = "grant"
MAX_BODY = 64 * 1024  # far above any real request; bigger bodies get 413
BODY_LIMIT = "body_limit"  # the request's own limit, when not MAX_BODY
NO_QUERY: Schema = {"type": "object", "properties": {}}
# A write's 202: durable, not yet served by every DNS process.
NOT_SERVED = (
    "the change is committed and durable, but not every DNS worker served it in time; "
    "they will serve it when they catch up (see /healthz)"
)
log = get_logger()


def log_change(event: Event | None) -> None:
    """Log a change a request made (None: it changed nothing), as one fact with its
    fields: who, what, before and after; every API module's writes log this way."""
    if event is None:
        return
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


async def json_body(
    request: web.Request, schema: Schema, *, optional: bool = False, max_body: int = MAX_BODY
) -> dict[str, Any]:
    """The request's JSON object as `schema` (fodns/schemas.py) accepts it: unknown
    fields are errors too, so typos cannot pass silently. No body at all is `{}` where
    the document makes the body `optional`. A body over `max_body` bytes is a 413."""
    if max_body == MAX_BODY:
        return _checked_json(await request.read(), schema, optional)
    request[BODY_LIMIT] = max_body
    raw = await request.clone(client_max_size=max_body).read()
    # With workers = 1 this loop answers DNS too: megabytes are decoded and checked on
    # a thread, which hands the GIL back every few milliseconds.
    return await asyncio.to_thread(_checked_json, raw, schema, optional)


def _checked_json(raw: bytes, schema: Schema, optional: bool) -> dict[str, Any]:
    if optional and not raw:
        raw = b"{}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("body", f"not UTF-8 (byte {exc.start})") from None
    try:
        body = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise Invalid("body", f"not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:
        # Integers past Python's digit limit; arrays nested thousands deep.
        raise Invalid("body", f"not usable JSON: {type(exc).__name__}") from None
    check(schema, body)
    return dict(body)


def _not_json(constant: str) -> None:
    # Python reads NaN and Infinity; JSON has no such numbers (RFC 8259 §6), and a NaN
    # would pass every minimum and maximum of a schema.
    raise Invalid("body", f"not valid JSON: {constant} is not a JSON number")


def query_of(request: web.Request, query: Schema, path: Schema | None = None) -> dict[str, Any]:
    """The request's query parameters as `query` types them (checked, like the path's
    {name} or {label} against `path`): Invalid naming the parameter otherwise."""
    if path is not None:
        check(path, dict(request.match_info), "path")
    return check_query(request.query, query)
