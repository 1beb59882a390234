"""The OpenAPI 3.1 document of the admin API, served at /v1/openapi.json."""

from __future__ import annotations

from typing import Any

from fodns import __version__, checks, schemas, webhookmodel
from fodns.schemas import parameters
from fodns.scopes import LIMITS, SCOPE_WORDS, Scope, route_scope


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# Every error the API sends, by status: its name under components/responses and what
# it means. Each has the Error body (fodns/api.py error_response).
ERROR_RESPONSES = {
    "400": ("Invalid", "Bad input; error.field names it. Nothing changed."),
    "401": (
        "Unauthorized",
        "No bearer token, an unknown one, or one expired or revoked (the message says "
        "which; WWW-Authenticate says Bearer); nothing changed",
    ),
    "403": (
        "Forbidden",
        "The token is valid but may not do this (code forbidden): error.scope names what "
        "it lacks, a scope (switch, write, admin) or a limit (groups, apps: the group or "
        "app is outside its name patterns); nothing changed",
    ),
    "404": (
        "NotFound",
        "No such app, group, zone, check, webhook or ACME registration; or the feature is "
        "not running here (the Route53 mirror, health checks, ACME)",
    ),
    "409": (
        "Conflict",
        "The change breaks a rule of groups; or there are as many webhooks as fodns "
        "keeps; or a webhook test where delivery is off ([webhooks] enabled = false). "
        "Nothing changed",
    ),
    "413": (
        "TooLarge",
        "The body is over 64 KiB, a probe's report over 8 MiB (code too_large); nothing changed",
    ),
    "421": (
        "UnknownHost",
        "The Host header is neither an IP address, localhost nor a name of [api] "
        "allowed_hosts (code unknown_host, field Host): a guard against DNS rebinding",
    ),
    "500": ("Internal", "A bug (code internal), logged with its traceback as api_request_failed"),
    "502": ("Route53Failed", "Route53 failed the plan or sync (code route53_error)"),
    "503": (
        "StoreUnavailable",
        "The database did not take the change (locked, full, read-only; code "
        "store_unavailable): nothing changed, try again",
    ),
    "504": (
        "Route53Timeout",
        "Route53 did not answer within [route53] request_timeout (code route53_timeout); "
        "the mirror finishes the work in the background",
    ),
}
# Sent by any call: a token, a Host and a bug are checked or met before any handler.
EVERY_CALL = ("401", "421", "500")
# A write: validated, committed on the store's writer (503 when the database refuses),
# then served by every DNS worker (202 when one does not in time), with a JSON body
# (413 past the size limit) for all but DELETE.
WRITE = ("400", "503")
WITH_BODY = ("413",)
# The statuses each operation can answer besides its success and EVERY_CALL, as the
# code behind it raises them (fodns/api.py handlers, fodns/store.py, fodns/route53.py).
ERROR_STATUSES: dict[tuple[str, str], tuple[str, ...]] = {
    ("/v1/zones", "get"): (),
    ("/v1/apps", "get"): ("400",),
    ("/v1/apps", "post"): (*WRITE, *WITH_BODY, "409"),
    ("/v1/apps/{name}", "get"): ("400", "404"),
    ("/v1/apps/{name}", "patch"): (*WRITE, *WITH_BODY, "404", "409"),
    ("/v1/apps/{name}", "delete"): (*WRITE, "404", "409"),
    ("/v1/apps/{name}/status", "get"): ("400", "404"),
    # 400 also for the two rules between fields that only the server checks.
    ("/v1/apps/{name}/check", "put"): (*WRITE, *WITH_BODY, "404"),
    # 404: no such app, or it has no check.
    ("/v1/apps/{name}/check", "get"): ("400", "404"),
    ("/v1/apps/{name}/check", "delete"): (*WRITE, "404"),
    ("/v1/groups", "get"): ("400",),
    ("/v1/groups", "post"): (*WRITE, *WITH_BODY, "404", "409"),
    # 400: a label that exists in several zones, asked without ?zone=.
    ("/v1/groups/{label}", "get"): ("400", "404"),
    # 409: the same app on both sides.
    ("/v1/groups/{label}", "patch"): (*WRITE, *WITH_BODY, "404", "409"),
    ("/v1/groups/{label}", "delete"): (*WRITE, "404", "409"),
    # 409: a side with no app; pin_for for a manual group.
    ("/v1/groups/{label}/switch", "post"): (*WRITE, *WITH_BODY, "404", "409"),
    ("/v1/groups/{label}/pin", "delete"): (*WRITE, "404"),
    ("/v1/events", "get"): ("400",),
    # 404: health checks do not run here.
    ("/v1/health", "get"): ("404",),
    # 503: the report moved an app's health, and the database did not take its event.
    ("/v1/probes/{name}/reports", "post"): ("400", "404", *WITH_BODY, "503"),
    # 404: the mirror is not enabled.
    ("/v1/route53/plan", "get"): ("404", "502", "504"),
    ("/v1/route53/sync", "post"): ("404", "502", "504"),
    ("/v1/token", "get"): (),
    ("/v1/tokens", "get"): ("400",),
    # 409: the name is, or was, another token's.
    ("/v1/tokens", "post"): (*WRITE, *WITH_BODY, "409"),
    ("/v1/tokens/{name}", "get"): ("400", "404"),
    ("/v1/tokens/{name}", "delete"): (*WRITE, "404"),
    ("/v1/webhooks", "get"): (),
    # 409: already as many webhooks as fodns keeps (webhookmodel.WEBHOOKS_MAX).
    ("/v1/webhooks", "post"): (*WRITE, *WITH_BODY, "409"),
    # 400: an id that is not of a webhook's form.
    ("/v1/webhooks/{id}", "get"): ("400", "404"),
    ("/v1/webhooks/{id}", "patch"): (*WRITE, *WITH_BODY, "404"),
    ("/v1/webhooks/{id}", "delete"): (*WRITE, "404"),
    ("/v1/webhooks/{id}/deliveries", "get"): ("400", "404"),
    # 409: delivery is off here ([webhooks] enabled = false).
    ("/v1/webhooks/{id}/test", "post"): ("400", "404", "409"),
    ("/v1/acme/registrations", "get"): ("400",),
    # 404: no such group, or ACME is off here.
    ("/v1/acme/registrations", "post"): (*WRITE, *WITH_BODY, "404"),
    ("/v1/acme/registrations/{subdomain}", "get"): ("400", "404"),
    ("/v1/acme/registrations/{subdomain}", "delete"): (*WRITE, "404"),
}
# A write that does not wait for DNS to serve what it wrote, so never a 202: a probe's
# report (health's events are served like every other, but the probe waits for none),
# a token's creation or revocation and a webhook's changes (DNS answers nothing of them).
NOT_WAITING = frozenset(
    {
        ("/v1/probes/{name}/reports", "post"),
        ("/v1/tokens", "post"),
        ("/v1/tokens/{name}", "delete"),
        ("/v1/webhooks", "post"),
        ("/v1/webhooks/{id}", "patch"),
        ("/v1/webhooks/{id}", "delete"),
        # A registration has no records until its first update: nothing to serve.
        ("/v1/acme/registrations", "post"),
    }
)
NOT_SERVED: dict[str, Any] = {
    "type": "object",
    "required": ["served", "message"],
    "properties": {
        "served": {"const": False},
        "message": {
            "type": "string",
            "description": "The change is durable; the DNS workers serve it as they catch up.",
        },
    },
}
NOT_SERVED_DESCRIPTION = (
    "The change is committed and durable, but not every DNS worker served it within 2 s "
    "(see /healthz): the body it would have had, plus served: false and a message"
)
# A web head as the API shows it (normalised: a hostname ends in a dot); what a
# request may send is schemas.WEB_HEAD.
WEB_HEAD = {
    "type": "array",
    "items": {"type": "string"},
    "description": "One hostname (answered as a CNAME) or one or more IPv4/IPv6 addresses "
    "(answered as A/AAAA). Empty: none.",
}
# What every path does beyond its operations (fodns/api.py http_methods).
METHODS = (
    "HTTP methods as RFC 9110 has them on every path: each GET is also answered to HEAD, "
    "without the body (§9.3.2); OPTIONS answers 204 with Allow, after the token check "
    "under /v1 (§9.3.7); a method a path does not have is a 405 with the Error body and "
    "Allow listing exactly the methods it has (§15.5.6). Tokens: every operation needs a "
    "bearer token whose scope includes the operation's x-scope (read < switch < write < "
    "admin; any: every valid token), else a 403 whose error.scope names it; a token's "
    "name limits (groups, apps) bound what it changes, not what it reads."
)
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


WEBHOOK_PARAM = parameters(schemas.WEBHOOK_PATH, "path")
NAME_PARAM = parameters(schemas.APP_PATH, "path")
LABEL_PARAM = parameters(schemas.GROUP_PATH, "path")
TOKEN_PARAM = parameters(schemas.TOKEN_PATH, "path")
PROBE_PARAM = parameters(schemas.PROBE_PATH, "path")
MODE = {"enum": ["manual", "auto"]}
HEALTH_STATE = {"enum": ["up", "down", "unknown"]}
TIME = {"type": "string", "format": "date-time"}
MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}

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
        "required": ["name", "load_balancer", "web_servers", "down", "failover_status"],
        "properties": {
            "name": {"type": "string"},
            "load_balancer": WEB_HEAD,
            "web_servers": WEB_HEAD,
            "down": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Addresses of the web head that health checks found down, "
                "left out of the answer while another is up (only for a check with "
                "answers_follow_health).",
            },
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
    "Pin": {
        "type": "object",
        "required": ["side", "reason", "actor", "at", "until"],
        "properties": {
            "side": {"enum": ["primary", "backup"]},
            "reason": {"type": ["string", "null"]},
            "actor": {"type": "string", "description": "The token's name that pinned it."},
            "at": TIME,
            "until": {
                **MAYBE_TIME,
                "description": "When health takes the group back (at + pin_for); null: "
                "when someone unpins it.",
            },
        },
    },
    "Group": {
        "type": "object",
        "required": [
            "label",
            "fqdn",
            "zone",
            "primary",
            "backup",
            "active",
            "ttl",
            "failover",
            "failback",
            "hold_down",
            "max_auto_switches",
            "pin",
            "last_auto_switch",
            "answer",
        ],
        "properties": {
            "label": {"type": "string", "examples": ["414-262-781"]},
            "fqdn": {"type": "string", "examples": ["414-262-781.fo.example.net"]},
            "zone": {"type": "string"},
            "primary": {"type": ["string", "null"]},
            "backup": {"type": ["string", "null"]},
            "active": {"enum": ["primary", "backup"]},
            "ttl": {"type": "integer"},
            "failover": {**MODE, "description": schemas.FAILOVER["description"]},
            "failback": {**MODE, "description": schemas.FAILBACK["description"]},
            "hold_down": {"type": "integer", "description": schemas.HOLD_DOWN["description"]},
            "max_auto_switches": {
                "type": "integer",
                "description": schemas.MAX_AUTO_SWITCHES["description"],
            },
            "pin": {
                "anyOf": [_ref("Pin"), {"type": "null"}],
                "description": "A person's word on where an auto group stays: health does "
                "not move it meanwhile. null: not pinned.",
            },
            "last_auto_switch": {
                "type": ["object", "null"],
                "properties": {
                    "at": TIME,
                    "from": {"enum": ["primary", "backup"]},
                    "to": {"enum": ["primary", "backup"]},
                    "reason": {"type": "string"},
                },
                "description": "The last switch health made; null: none.",
            },
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
    # An app's check as stored and shown: every field, defaults filled in (a tcp check
    # has no HTTP fields).
    "Check": {
        "type": "object",
        "required": [name for name in schemas.CHECK_FIELDS if name not in checks.HTTP_ONLY],
        "additionalProperties": False,
        "properties": schemas.CHECK_FIELDS,
        "description": "Every field, defaults filled in; a tcp check has none of the HTTP "
        f"fields ({', '.join(checks.HTTP_ONLY)}).",
    },
    "CheckBody": schemas.CHECK_BODY,
    "Report": schemas.REPORT,
    "ReportReply": {
        "type": "object",
        "required": ["probe", "accepted", "unknown_apps"],
        "properties": {
            "probe": {"type": "string"},
            "accepted": {
                "type": "integer",
                "minimum": 0,
                "description": "The apps of the report that fodns checks.",
            },
            "unknown_apps": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The apps of the report that fodns does not check (the "
                "probe's list is older than fodns's).",
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["started_at", "probes", "apps", "groups"],
        "properties": {
            "started_at": {
                **TIME,
                "description": "When the checker started: every state was unknown then.",
            },
            "probes": {
                "type": "array",
                "description": "fodns's own probe (local) first, then each remote probe "
                "that reported since the start.",
                "items": {
                    "type": "object",
                    "required": ["name", "live", "interval", "last_report_at"],
                    "properties": {
                        "name": {"type": "string"},
                        "live": {
                            "type": "boolean",
                            "description": "Whether its views count: it reported within "
                            "three of its intervals.",
                        },
                        "interval": {"type": ["number", "null"]},
                        "last_report_at": MAYBE_TIME,
                    },
                },
            },
            "apps": {
                "type": "array",
                "description": "Each app with a check, by name.",
                "items": {
                    "type": "object",
                    "required": [
                        "app",
                        "state",
                        "since",
                        "check",
                        "web_head",
                        "down",
                        "addresses",
                        "last_known",
                    ],
                    "properties": {
                        "app": {"type": "string"},
                        "state": {
                            **HEALTH_STATE,
                            "description": "As the groups see it: by quorum of the live probes.",
                        },
                        "since": MAYBE_TIME,
                        "check": _ref("Check"),
                        "web_head": {
                            **WEB_HEAD,
                            "description": "What the check probes: the app's web head.",
                        },
                        "down": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "The addresses its answer leaves out.",
                        },
                        "addresses": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["address", "hostname", "probes"],
                                "properties": {
                                    "address": {"type": "string"},
                                    "hostname": {
                                        "type": ["string", "null"],
                                        "description": "The web head's hostname it was "
                                        "resolved from, if any.",
                                    },
                                    "probes": {
                                        "type": "object",
                                        "description": "Each probe's view of the address, "
                                        "by the probe's name.",
                                        "additionalProperties": {
                                            "type": "object",
                                            "required": ["state"],
                                            "properties": {
                                                "state": HEALTH_STATE,
                                                "since": MAYBE_TIME,
                                                "last_check_at": MAYBE_TIME,
                                                "last_result": {"type": ["object", "null"]},
                                                "evidence": {"type": "object"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                        "last_known": {
                            "type": "array",
                            "description": "The last state each probe wrote for each "
                            "address, kept across restarts (shown while the states are "
                            "unknown after a start).",
                            "items": {
                                "type": "object",
                                "required": ["address", "probe", "state", "since", "evidence"],
                                "properties": {
                                    "address": {"type": "string"},
                                    "probe": {"type": "string"},
                                    "state": HEALTH_STATE,
                                    "since": TIME,
                                    "evidence": {"type": "object"},
                                },
                            },
                        },
                    },
                },
            },
            "groups": {
                "type": "array",
                "description": "Each auto group and what health decided for it.",
                "items": {
                    "type": "object",
                    "required": [
                        "fqdn",
                        "zone",
                        "label",
                        "active",
                        "failover",
                        "failback",
                        "state",
                        "reason",
                        "held_until",
                    ],
                    "properties": {
                        "fqdn": {"type": "string"},
                        "zone": {"type": "string"},
                        "label": {"type": "string"},
                        "active": {"enum": ["primary", "backup"]},
                        "failover": MODE,
                        "failback": MODE,
                        "state": {
                            "enum": [
                                "manual",
                                "pinned",
                                "ok",
                                "waiting",
                                "switch",
                                "held",
                                "both_down",
                                "no_target",
                                "unknown",
                            ],
                            "description": "manual: people switch it; pinned: a person's "
                            "pin holds it; ok: where it should be; waiting: a failback "
                            "waits for hold_down; switch: moving now; held: "
                            "max_auto_switches reached; both_down: both sides down, it "
                            "stays; no_target: the other side is not up; unknown: not "
                            "decided yet.",
                        },
                        "reason": {"type": ["string", "null"]},
                        "held_until": MAYBE_TIME,
                    },
                },
            },
        },
    },
    "NewToken": schemas.NEW_TOKEN,
    "Token": {
        "type": "object",
        "required": [
            "name",
            "scope",
            "groups",
            "apps",
            "created_at",
            "created_by",
            "expires_at",
            "revoked_at",
            "revoked_by",
            "state",
        ],
        "properties": {
            "name": {"type": "string", "examples": ["deploy-shop"]},
            "scope": {"enum": list(SCOPE_WORDS)},
            "groups": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "description": "The patterns of the groups it may change (lower-cased); null: any.",
            },
            "apps": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "description": "The patterns of the apps it may change; null: any.",
            },
            "created_at": TIME,
            "created_by": {"type": "string", "description": "The token's name that made it."},
            "expires_at": {**MAYBE_TIME, "description": "null: until revoked."},
            "revoked_at": MAYBE_TIME,
            "revoked_by": {"type": ["string", "null"]},
            "state": {"enum": ["active", "expired", "revoked"]},
        },
        "description": "A named token; never its secret, which only its creation's reply holds.",
    },
    "Grant": {
        "type": "object",
        "required": ["name", "scope", "groups", "apps", "expires_at", "bootstrap"],
        "properties": {
            "name": {"type": "string"},
            "scope": {"enum": list(SCOPE_WORDS)},
            "groups": {"type": ["array", "null"], "items": {"type": "string"}},
            "apps": {"type": ["array", "null"], "items": {"type": "string"}},
            "expires_at": MAYBE_TIME,
            "bootstrap": {
                "type": "boolean",
                "description": "The admin token of the config, FODNS_ADMIN_TOKEN or the "
                "admin-token file (named admin, not in GET /v1/tokens).",
            },
        },
    },
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
    "Webhook": {
        "type": "object",
        "required": [
            "id",
            "url",
            "events",
            "groups",
            "apps",
            "active",
            "state",
            "failed_seq",
            "failed_at",
            "description",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": {"type": "string", "examples": ["wh_4f1c2a9e0b7d3e15"]},
            "url": {"type": "string"},
            "events": {
                "type": ["array", "null"],
                "items": {"enum": list(webhookmodel.KINDS)},
                "description": "The kinds it gets; null: every kind.",
            },
            "groups": {"type": ["array", "null"], "items": {"type": "string"}},
            "apps": {"type": ["array", "null"], "items": {"type": "string"}},
            "active": {"type": "boolean"},
            "state": {
                "enum": ["active", "paused", "failed"],
                "description": "active: delivering; paused: set inactive; failed: it gave "
                "up on event failed_seq after [webhooks] give_up_after and stopped "
                "(PATCH active true resumes it at that event).",
            },
            "failed_seq": {"type": ["integer", "null"]},
            "failed_at": MAYBE_TIME,
            "description": {"type": ["string", "null"]},
            "created_at": TIME,
            "updated_at": TIME,
        },
    },
    "NewWebhook": schemas.NEW_WEBHOOK,
    "WebhookChange": schemas.WEBHOOK_CHANGE,
    "Delivery": {
        "type": "object",
        "required": ["seq", "kind", "attempt", "at", "status", "error", "latency_ms", "result"],
        "properties": {
            "seq": {"type": ["integer", "null"], "description": "The event; null: a test."},
            "kind": {"enum": [*webhookmodel.KINDS, webhookmodel.TEST_KIND]},
            "attempt": {
                "type": "integer",
                "minimum": 1,
                "description": "The attempt at this event: 1, then 2 for the first retry...",
            },
            "at": {**TIME, "description": "When the attempt began."},
            "status": {
                "type": ["integer", "null"],
                "description": "The receiver's HTTP status; null: no answer.",
            },
            "error": {
                "type": ["string", "null"],
                "description": "Why it failed (a status other than 2xx, a redirect, a "
                "timeout, a refused connection); null: delivered.",
            },
            "latency_ms": {"type": "number", "minimum": 0},
            "result": {
                "enum": ["delivered", "retrying", "failed", "test"],
                "description": "delivered; retrying (failed, tried again later); failed "
                "(the last, given up: the webhook stopped); test (POST .../test: error "
                "null when it was delivered).",
            },
        },
    },
    "AcmeRegistration": {
        "type": "object",
        "required": [
            "subdomain",
            "username",
            "fulldomain",
            "allowfrom",
            "group",
            "group_zone",
            "names",
            "cnames",
            "created_at",
            "created_by",
            "updated_at",
        ],
        "properties": {
            "subdomain": {"type": "string", "examples": ["7b0c4d1e-5c3a-4f2b-9d8e-1a2b3c4d5e6f"]},
            "username": {
                "type": "string",
                "description": "acme-dns's X-Api-User (its X-Api-Key, the password, only "
                "the registration's reply holds).",
            },
            "fulldomain": {
                "type": "string",
                "description": "The name whose TXT records the registration sets: "
                "<subdomain>.<[acme] label>.<[acme] zone>, the customers' CNAME target.",
                "examples": ["7b0c4d1e-5c3a-4f2b-9d8e-1a2b3c4d5e6f.acme.fo.example.net"],
            },
            "allowfrom": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The networks updates may come from; empty: anywhere.",
            },
            "group": {
                "type": ["string", "null"],
                "description": "The group's label; null: made through the acme-dns API.",
            },
            "group_zone": {"type": ["string", "null"]},
            "names": {"type": "array", "items": {"type": "string"}},
            "cnames": {
                "type": "array",
                "description": "The records the customer adds, once: each CNAME and its target.",
                "items": {
                    "type": "object",
                    "required": ["name", "target"],
                    "properties": {
                        "name": {"type": "string", "examples": ["_acme-challenge.www.shop.com"]},
                        "target": {"type": "string"},
                    },
                },
            },
            "created_at": TIME,
            "created_by": {
                "type": "string",
                "description": "The token's name that made it (acme: an open registration).",
            },
            "updated_at": {
                **MAYBE_TIME,
                "description": "When an ACME client last set a TXT value; null: never.",
            },
        },
    },
    "NewAcmeRegistration": schemas.NEW_ACME_REGISTRATION,
    "CnameCheck": {
        "type": "object",
        "required": ["name", "target", "found", "state", "ok", "detail"],
        "properties": {
            "name": {"type": "string", "description": "The record the customer adds."},
            "target": {"type": "string", "description": "Where it must point."},
            "found": {
                "type": ["string", "null"],
                "description": "Where it points, as [acme] resolver (or the system's) sees "
                "it; null: no CNAME found.",
            },
            "state": {
                "enum": ["ok", "wrong", "missing", "unknown"],
                "description": "ok: it points at target; wrong: elsewhere; missing: no CNAME "
                "(or no such name); unknown: the lookup failed or timed out.",
            },
            "ok": {"type": "boolean"},
            "detail": {"type": "string", "description": "The same, for people."},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {
                        "type": "string",
                        "description": "The request field the error is about, when it is about one"
                        " (a bad value, an unknown app named by it, a label or name taken).",
                    },
                    "scope": {
                        "enum": [*SCOPE_WORDS, *LIMITS],
                        "description": "A 403's: what the token lacks, a scope or a limit "
                        "(groups, apps) the group or app falls outside of.",
                    },
                },
            }
        },
    },
}


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An operation with its success responses; _with_errors adds the rest."""
    return {"summary": summary, "responses": responses, **extra}


def _error_ref(status: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}


def _with_errors(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation's responses, complete: its success, the 202 of a write not yet
    served, and exactly the errors ERROR_STATUSES and EVERY_CALL give it, in order, with
    a 403 where the scope table asks more than read (every token can read)."""
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            statuses = ERROR_STATUSES[(path, method)]
            needed = route_scope(method.upper(), path)
            operation["x-scope"] = "any" if needed is None else needed.word
            if needed is not None and needed > Scope.READ and "403" not in statuses:
                statuses = (*statuses, "403")
            responses = operation["responses"]
            # A write: it may be durable before it is served.
            if "503" in statuses and (path, method) not in NOT_WAITING:
                responses["202"] = _not_served(responses)
            for status in (*statuses, *EVERY_CALL):
                responses[status] = _error_ref(status)
            operation["responses"] = dict(sorted(responses.items()))
    return paths


def _not_served(responses: dict[str, Any]) -> dict[str, Any]:
    """The 202 of a write whose success is `responses`' 2xx: that body, if any, plus
    served: false and the message."""
    (success,) = [value for status, value in responses.items() if status.startswith("2")]
    content = success.get("content")
    schema = NOT_SERVED
    if content is not None:
        schema = {"allOf": [content["application/json"]["schema"], NOT_SERVED]}
    return _json(schema, NOT_SERVED_DESCRIPTION)


def _error_responses() -> dict[str, Any]:
    responses = {name: _json(_ref("Error"), text) for name, text in ERROR_RESPONSES.values()}
    # RFC 9110 §11.6.1: a 401 says how to authenticate.
    responses["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {
            "description": "The scheme to use: Bearer",
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer"},
        }
    }
    return responses


def openapi_document() -> dict[str, Any]:
    group = _json(_ref("Group"), "The group, with the records it answers with now")
    app = _json(_ref("App"), "The app")
    check = _json(_ref("Check"), "The app's check, every field (defaults filled in)")
    token = _ref("Token")
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "fodns admin API", "version": __version__, "description": METHODS},
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "responses": _error_responses(),
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
            "/v1/apps/{name}/check": {
                "parameters": NAME_PARAM,
                "put": _operation(
                    "Set the app's health check, the whole of it: a field left out takes "
                    "its default (404: no such app)",
                    {"200": check},
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("CheckBody")}},
                    },
                ),
                "get": _operation(
                    "Read the app's health check (404: none, or no such app)", {"200": check}
                ),
                "delete": _operation(
                    "Remove the app's health check: the addresses it left out are answered "
                    "again (no check: 204, nothing recorded)",
                    {"204": {"description": "Removed"}},
                    parameters=parameters(schemas.DELETE_QUERY, "query"),
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
                    "and nothing recorded, but for an auto group, which a person's switch "
                    "always pins (pin_for for a manual group: 409 naming pin_for)",
                    {"200": group},
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Switch")}},
                    },
                ),
            },
            "/v1/groups/{label}/pin": {
                "parameters": LABEL_PARAM,
                "delete": _operation(
                    "Unpin an auto group: health may switch it again (no pin: 200, nothing "
                    "recorded)",
                    {"200": group},
                    # The group's zone and the unpin's reason.
                    parameters=parameters(schemas.DELETE_GROUP_QUERY, "query"),
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
            "/v1/health": {
                "get": _operation(
                    "Health checks now: the probes, each checked app's state and its "
                    "addresses' as each probe sees them, and each auto group's decision "
                    "(404 when health checks do not run here)",
                    {"200": _json(_ref("Health"), "Health as the checker sees it now")},
                ),
            },
            "/v1/probes/{name}/reports": {
                "parameters": PROBE_PARAM,
                "post": _operation(
                    "A remote probe's report of what it found (as `fodns probe` sends "
                    "it); the probe counts for quorum while it keeps reporting (404 when "
                    "health checks do not run here)",
                    {"200": _json(_ref("ReportReply"), "What fodns took")},
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Report")}},
                    },
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
            "/v1/token": {
                "get": _operation(
                    "What the presenting token may do: its name, scope, limits and expiry "
                    "(any valid token)",
                    {"200": _json(_ref("Grant"), "The token's grant")},
                ),
            },
            "/v1/tokens": {
                "get": _operation(
                    "Named tokens by name, never their secrets (admin); revoked ones with "
                    "?revoked=true",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["tokens"],
                                "properties": {"tokens": {"type": "array", "items": token}},
                            },
                            "The tokens",
                        )
                    },
                    parameters=parameters(schemas.TOKENS_QUERY, "query"),
                ),
                "post": _operation(
                    "Create a named token (admin): the reply holds its secret, shown this "
                    "once (409: a name used before, even by a revoked token)",
                    {
                        "201": _json(
                            {
                                "allOf": [
                                    token,
                                    {
                                        "type": "object",
                                        "required": ["token"],
                                        "properties": {
                                            "token": {
                                                "type": "string",
                                                "pattern": "^fodns_",
                                                "description": "The secret, as "
                                                "`Authorization: Bearer <token>`.",
                                            }
                                        },
                                    },
                                ]
                            },
                            "The token, and its secret",
                        )
                    },
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewToken")}},
                    },
                ),
            },
            "/v1/tokens/{name}": {
                "parameters": TOKEN_PARAM,
                "get": _operation(
                    "Read a named token (admin), a revoked one too: revoking keeps it",
                    {"200": _json(token, "The token")},
                ),
                "delete": _operation(
                    "Revoke a named token (admin): refused from before this reply on; its "
                    "name stays taken (revoked already: 200, nothing recorded)",
                    {"200": _json(token, "The token, revoked")},
                    parameters=parameters(schemas.DELETE_QUERY, "query"),
                ),
            },
            **_webhook_paths(),
            **_acme_paths(),
        },
    }
    _with_errors(document["paths"])
    return document


def _webhook_paths() -> dict[str, Any]:
    webhook = _json(_ref("Webhook"), "The webhook (never its secret)")
    with_secret = _json(
        {
            "allOf": [
                _ref("Webhook"),
                {
                    "type": "object",
                    "required": ["secret"],
                    "properties": {"secret": {"type": "string"}},
                },
            ]
        },
        "The webhook and its secret: the only reply that shows it",
    )
    changed = _json(
        {
            "allOf": [
                _ref("Webhook"),
                {"type": "object", "properties": {"secret": {"type": "string"}}},
            ]
        },
        "The webhook, with its new secret when the request set one",
    )
    deliveries = {
        "type": "object",
        "required": ["deliveries"],
        "properties": {"deliveries": {"type": "array", "items": _ref("Delivery")}},
    }
    return {
        "/v1/webhooks": {
            "get": _operation(
                "List webhooks, oldest first",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["webhooks"],
                            "properties": {"webhooks": {"type": "array", "items": _ref("Webhook")}},
                        },
                        "The webhooks",
                    )
                },
            ),
            "post": _operation(
                "Create a webhook: it gets the events committed after it, signed with its "
                "secret (409: already as many as fodns keeps)",
                {"201": with_secret},
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewWebhook")}},
                },
            ),
        },
        "/v1/webhooks/{id}": {
            "parameters": WEBHOOK_PARAM,
            "get": _operation("Read a webhook", {"200": webhook}),
            "patch": _operation(
                "Change a webhook; active true resumes it (a failed one at the event it "
                "gave up on), false pauses it",
                {"200": changed},
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("WebhookChange")}},
                },
            ),
            "delete": _operation(
                "Delete a webhook and its recent attempts", {"204": {"description": "Deleted"}}
            ),
        },
        "/v1/webhooks/{id}/deliveries": {
            "parameters": WEBHOOK_PARAM,
            "get": _operation(
                "The webhook's recent attempts (the newest 200), newest first",
                {"200": _json(deliveries, "The attempts")},
            ),
        },
        "/v1/webhooks/{id}/test": {
            "parameters": WEBHOOK_PARAM,
            "post": _operation(
                "Send the webhook a test event now, beside its deliveries and whatever its "
                "state (409 where [webhooks] enabled = false: nothing is sent)",
                {"200": _json(_ref("Delivery"), "The attempt (result test)")},
            ),
        },
    }


def _acme_paths() -> dict[str, Any]:
    registration = _ref("AcmeRegistration")
    with_password = {
        "allOf": [
            registration,
            {
                "type": "object",
                "required": ["password"],
                "properties": {
                    "password": {
                        "type": "string",
                        "description": "acme-dns's X-Api-Key, shown this once: fodns keeps "
                        "only its SHA-256.",
                    }
                },
            },
        ]
    }
    checked = {
        "allOf": [
            registration,
            {
                "type": "object",
                "required": ["txt", "cname_check"],
                "properties": {
                    "txt": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "The TXT values served now, oldest first (two at most).",
                    },
                    "cname_check": {
                        "type": "array",
                        "items": _ref("CnameCheck"),
                        "description": "For each record the customer adds, what it points at "
                        "now (never required: a registration works once its CNAME is there).",
                    },
                },
            },
        ]
    }
    subdomain = parameters(schemas.ACME_PATH, "path")
    return {
        "/v1/acme/registrations": {
            "get": _operation(
                "ACME registrations, oldest first (never a password)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["registrations"],
                            "properties": {
                                "registrations": {"type": "array", "items": registration}
                            },
                        },
                        "The registrations",
                    )
                },
                parameters=parameters(schemas.ACME_QUERY, "query"),
            ),
            "post": _operation(
                "Register a group's names for ACME DNS-01: the acme-dns credentials (the "
                "password shown this once) and the CNAMEs the customer adds (404: no such "
                "group, or ACME is off here)",
                {"201": _json(with_password, "The registration, its password and cnames")},
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewAcmeRegistration")}},
                },
            ),
        },
        "/v1/acme/registrations/{subdomain}": {
            "parameters": subdomain,
            "get": _operation(
                "Read a registration, with its TXT values and the check of the customer's "
                "CNAMEs through [acme] resolver",
                {"200": _json(checked, "The registration and its CNAME check")},
            ),
            "delete": _operation(
                "Delete a registration: its credentials stop working, its records go",
                {"204": {"description": "Deleted"}},
                parameters=parameters(schemas.DELETE_QUERY, "query"),
            ),
        },
    }
