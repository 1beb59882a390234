"""The OpenAPI 3.1 document of the admin API, served at /v1/openapi.json."""

from __future__ import annotations

from typing import Any

from fodns import __version__, schemas
from fodns.schemas import parameters


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": {"$ref": "#/components/responses/Invalid"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "404": {"$ref": "#/components/responses/NotFound"},
    "409": {"$ref": "#/components/responses/Conflict"},
}
# A web head as the API shows it (normalised: a hostname ends in a dot); what a
# request may send is schemas.WEB_HEAD.
WEB_HEAD = {
    "type": "array",
    "items": {"type": "string"},
    "description": "One hostname (answered as a CNAME) or one or more IPv4/IPv6 addresses "
    "(answered as A/AAAA). Empty: none.",
}
PAGE_NOTE = " Without q, limit or cursor the reply is the whole list and has no `next`."


def _list_reply(key: str, item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key],
        "properties": {
            key: {"type": "array", "items": _ref(item)},
            "next": {
                "type": ["string", "null"],
                "description": "Present when q, limit or cursor was given: the cursor of "
                "the next page, or null when this page is the last.",
            },
        },
    }


NAME_PARAM = parameters(schemas.APP_PATH, "path")
LABEL_PARAM = parameters(schemas.GROUP_PATH, "path")

SCHEMAS: dict[str, Any] = {
    "Zone": {
        "type": "object",
        "required": ["name", "serial", "groups", "names", "group_ttl"],
        "properties": {
            "name": {"type": "string", "examples": ["fo.example.net"]},
            "serial": {"type": "integer", "description": "The SOA serial served now."},
            "groups": {"type": "integer", "description": "Failover groups in the zone."},
            "names": {"type": "integer", "description": "Names that exist in the zone."},
            "group_ttl": {
                "type": "integer",
                "description": "The TTL a new group gets when it names none.",
            },
        },
    },
    "App": {
        "type": "object",
        "required": ["name", "load_balancer", "web_servers", "failover_status"],
        "properties": {
            "name": {"type": "string"},
            "load_balancer": WEB_HEAD,
            "web_servers": WEB_HEAD,
            "failover_status": {"enum": ["online", "offline", "none"]},
        },
    },
    # The request bodies: the very dicts the API validates requests with.
    "NewApp": schemas.NEW_APP,
    "AppChange": schemas.APP_CHANGE,
    "Record": {
        "type": "object",
        "required": ["type", "data"],
        "properties": {"type": {"enum": ["A", "AAAA", "CNAME"]}, "data": {"type": "string"}},
    },
    "Group": {
        "type": "object",
        "required": ["label", "fqdn", "zone", "primary", "backup", "active", "ttl", "answer"],
        "properties": {
            "label": {"type": "string", "examples": ["414-262-781"]},
            "fqdn": {"type": "string", "examples": ["414-262-781.fo.example.net"]},
            "zone": {"type": "string"},
            "primary": {"type": ["string", "null"]},
            "backup": {"type": ["string", "null"]},
            "active": {"enum": ["primary", "backup"]},
            "ttl": {"type": "integer"},
            "answer": {
                "type": "array",
                "items": _ref("Record"),
                "description": "The records served for the group now.",
            },
        },
    },
    "NewGroup": schemas.NEW_GROUP,
    "GroupChange": schemas.GROUP_CHANGE,
    "Switch": schemas.SWITCH,
    "Event": {
        "type": "object",
        "required": [
            "seq",
            "at",
            "actor",
            "action",
            "zone",
            "group",
            "app",
            "before",
            "after",
            "reason",
            "touched",
        ],
        "properties": {
            "seq": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "zone": {"type": ["string", "null"]},
            "group": {"type": ["string", "null"]},
            "app": {"type": ["string", "null"]},
            "before": {"type": ["object", "null"]},
            "after": {"type": ["object", "null"]},
            "reason": {"type": ["string", "null"]},
            "touched": {
                "type": "object",
                "description": "What the change touched, written with the event when it was"
                " committed: the groups whose answer or sides it may have changed, the apps"
                " whose web head or failover status it may have changed (under every name each"
                " had: a rename names both), and those groups' zones. For an app event, the"
                " groups that used the app at that moment. A client following the log with"
                " `after=` reads back exactly these instead of everything.",
                "required": ["groups", "apps", "zones"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["zone", "label", "fqdn"],
                            "properties": {
                                "zone": {"type": "string"},
                                "label": {"type": "string"},
                                "fqdn": {"type": "string"},
                            },
                        },
                    },
                    "apps": {"type": "array", "items": {"type": "string"}},
                    "zones": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {
                        "type": "string",
                        "description": "The request field the error is about, when it is about one"
                        " (a bad value, an unknown app named by it, a label or name taken).",
                    },
                },
            }
        },
    },
}


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, **ERRORS}, **extra}


def openapi_document() -> dict[str, Any]:
    group = _json(_ref("Group"), "The group, with the records it answers with now")
    app = _json(_ref("App"), "The app")
    return {
        "openapi": "3.1.0",
        "info": {"title": "fodns admin API", "version": __version__},
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "responses": {
                name: _json(_ref("Error"), text)
                for name, text in [
                    ("Invalid", "Bad input; error.field names it"),
                    ("Unauthorized", "Missing or wrong bearer token; nothing changed"),
                    ("NotFound", "No such app, group or zone"),
                    ("Conflict", "The change breaks a rule of groups"),
                ]
            },
        },
        "paths": {
            "/v1/zones": {
                "get": _operation(
                    "Zones by name, with SOA serial, counts and the default group TTL",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["zones"],
                                "properties": {"zones": {"type": "array", "items": _ref("Zone")}},
                            },
                            "The zones",
                        )
                    },
                )
            },
            "/v1/apps": {
                "get": _operation(
                    "List apps by name, or a page of them",
                    {"200": _json(_list_reply("apps", "App"), "The apps." + PAGE_NOTE)},
                    parameters=parameters(schemas.APPS_QUERY, "query"),
                ),
                "post": _operation(
                    "Create an app",
                    {"201": app},
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewApp")}},
                    },
                ),
            },
            "/v1/apps/{name}": {
                "parameters": NAME_PARAM,
                "get": _operation("Read an app", {"200": app}),
                "patch": _operation(
                    "Change an app's web head, or rename it",
                    {"200": app},
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("AppChange")}},
                    },
                ),
                "delete": _operation(
                    "Delete an app (409 while a group references it)",
                    {"204": {"description": "Deleted"}},
                    parameters=parameters(schemas.DELETE_QUERY, "query"),
                ),
            },
            "/v1/apps/{name}/status": {
                "parameters": NAME_PARAM,
                "get": _operation(
                    "The app's failover status",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "failover_status": {"enum": ["online", "offline", "none"]}
                                },
                            },
                            "online: active side of a group; offline: in groups, active in none; "
                            "none: in no group",
                        )
                    },
                ),
            },
            "/v1/groups": {
                "get": _operation(
                    "List groups by zone and label, or a page of them",
                    {"200": _json(_list_reply("groups", "Group"), "The groups." + PAGE_NOTE)},
                    parameters=parameters(schemas.GROUPS_QUERY, "query"),
                ),
                "post": _operation(
                    "Create a group",
                    {"201": group},
                    requestBody={
                        "required": False,
                        "content": {"application/json": {"schema": _ref("NewGroup")}},
                    },
                ),
            },
            "/v1/groups/{label}": {
                "parameters": LABEL_PARAM + parameters(schemas.GROUP_QUERY, "query"),
                "get": _operation("Read a group", {"200": group}),
                "patch": _operation(
                    "Set primary, backup or TTL",
                    {"200": group},
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("GroupChange")}},
                    },
                ),
                "delete": _operation(
                    "Delete a group (409 while it points at apps); its label is never reused",
                    {"204": {"description": "Deleted"}},
                    # The path's zone and the delete's reason.
                    parameters=parameters(schemas.DELETE_GROUP_QUERY, "query"),
                ),
            },
            "/v1/groups/{label}/switch": {
                "parameters": LABEL_PARAM + parameters(schemas.GROUP_QUERY, "query"),
                "post": _operation(
                    "Switch traffic: 200 once durable and served; to the active side, 200 "
                    "and nothing recorded",
                    {"200": group},
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Switch")}},
                    },
                ),
            },
            "/v1/events": {
                "get": _operation(
                    "The event log, newest first",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["events", "last_seq"],
                                "properties": {
                                    "events": {"type": "array", "items": _ref("Event")},
                                    "last_seq": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "description": "The seq of the newest event of the "
                                        "whole log, whatever the filters (0 when the log is "
                                        "empty), read together with the page: ask "
                                        "`?after=SEQ&limit=1` to learn whether anything is "
                                        "new without reading the newest event. Below a seq "
                                        "already read: the log went backwards (a database "
                                        "restored from a backup); read everything again.",
                                    },
                                },
                            },
                            "Events",
                        )
                    },
                    parameters=parameters(schemas.EVENTS_QUERY, "query"),
                ),
            },
            "/v1/route53/plan": {
                "get": _operation(
                    "The Route53 mirror's differences, per zone; changes nothing "
                    "(404 when [route53] is not enabled, 502 when Route53 fails, "
                    "504 after [route53] request_timeout)",
                    {
                        "200": _json(
                            {"type": "object"},
                            "Per zone: add, change, remove, unchanged, and what is left "
                            "alone: skipped (too big for Route53, or refused by it) and "
                            "conflicts (records fodns did not write are in the way)",
                        )
                    },
                ),
            },
            "/v1/route53/sync": {
                "post": _operation(
                    "Compare every record set fodns wrote in Route53 now and fix the "
                    "differences; records fodns did not write are never changed",
                    {"200": _json({"type": "object"}, "Per zone: what was applied")},
                ),
            },
        },
    }
