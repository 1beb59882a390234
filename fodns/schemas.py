"""The admin API's request bodies and parameters as JSON Schema 2020-12: the one definition.

/v1/openapi.json publishes these dicts as they are (JSON Schema is OpenAPI 3.1's own
schema language), and the API validates every request against the same dicts with
`jsonschema` before it reaches the store: a constraint written here is enforced and
documented at once, and one that is not written here is neither. The model's checks
(fodns/model.py, fodns/rows.py) still run in the store, as the last line for callers
that are not the API; they accept everything these schemas accept, and where they
have words for a refusal (a scoped address, a mix of hostname and addresses) the
400 uses them. What a schema cannot know (a label already taken, an app that does
not exist) is the store's: 404 or 409.

Patterns are written so that a JSON Schema validator in any language reads them as
Python does: no lookarounds, no `\\d`, `\\w` or `\\s` (their Unicode reading differs
between engines), and a closing `$` that means the end of the text, never "before
a final newline" (see `_end_anchored`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema import ValidationError as SchemaError
from jsonschema.validators import extend

from fodns import acme, checks, webhookmodel
from fodns.checks import CheckSpec
from fodns.errors import Invalid
from fodns.listing import CURSOR_MAX, FIND_MAX
from fodns.model import (
    APP_NAME,
    DEFAULT_HOLD_DOWN,
    DEFAULT_MAX_AUTO_SWITCHES,
    EVENTS_PAGE_DEFAULT,
    EVENTS_PAGE_MAX,
    GROUP_LABEL,
    GROUP_TTL_MAX,
    GROUP_TTL_MIN,
    HOLD_DOWN_MAX,
    HOSTNAME,
    HOSTNAME_MAX,
    LIST_PAGE_MAX,
    MAX_AUTO_SWITCHES_MAX,
    MODES,
    PIN_FOR_MAX,
    WEB_HEAD_MAX,
    check_app_name,
    check_group_label,
    check_mode,
    check_side,
    check_ttl,
    check_web_head,
    check_whole,
)
from fodns.patterns import PATTERN_MAX_LENGTH, PATTERNS_MAX, check_patterns
from fodns.rows import TEXT_MAX, check_text
from fodns.scopes import SCOPE_WORDS
from fodns.tokens import EXPIRES_IN_MAX, RESERVED_NAMES, TOKEN_NAME, check_token_name

Schema = dict[str, Any]

# ---- the fields ------------------------------------------------------------------

# What str.strip() removes (str.isspace), spelled out: `\s` means another set in
# ECMA-262 regular expressions, which is what other validators use.
_SPACE = r"\t-\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
REASON: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": TEXT_MAX,
    # Something besides spaces, and no NUL (SQLite, the logs and every reader of the
    # event log would choke on one).
    "pattern": rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$",
    "description": f"Why: recorded with the change in the event log. 1 to {TEXT_MAX} "
    "characters, not only spaces, no NUL. Leave it out for none.",
    "examples": ["moving traffic to us-east for the eu-west maintenance"],
}
APP_NAME_FIELD: Schema = {
    "type": "string",
    "pattern": APP_NAME.pattern,
    "description": "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit.",
    "examples": ["shop-eu"],
}
SIDE_APP: Schema = {
    "type": ["string", "null"],
    "pattern": APP_NAME.pattern,
    "description": "An existing app's name (404 naming this field if there is none); "
    "null: no app on this side.",
    "examples": ["shop-eu"],
}
GROUP_LABEL_FIELD: Schema = {
    "type": "string",
    "pattern": GROUP_LABEL.pattern,
    "description": "One DNS label: 1-63 letters, digits or '-', not starting or ending "
    "with '-'; stored lower-case.",
    "examples": ["414-262-781"],
}
TTL: Schema = {
    "type": "integer",
    "minimum": GROUP_TTL_MIN,
    "maximum": GROUP_TTL_MAX,
    "description": "Seconds; traffic moves within it after a switch.",
    "examples": [30],
}
ZONE_FIELD: Schema = {
    "type": "string",
    "maxLength": HOSTNAME_MAX + 1,  # the longest name and its final dot
    "description": "A zone fodns serves (404 otherwise), with or without the final dot.",
    "examples": ["fo.example.net"],
}
# A web head value: an IPv4 or IPv6 address (not scoped: the ipv6 format refuses a
# %zone), neither unspecified nor multicast, or a hostname (model.HOSTNAME).
_NOT_SERVABLE = r"^(0\.0\.0\.0|22[4-9]\..*|23[0-9]\..*|[0:.]+|[fF][fF][0-9a-fA-F]{2}:.*)$"
ADDRESS: Schema = {
    "type": "string",
    "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
    "not": {"pattern": _NOT_SERVABLE},
}
HOST: Schema = {"type": "string", "maxLength": HOSTNAME_MAX, "pattern": HOSTNAME.pattern}
WEB_HEAD: Schema = {
    "type": "array",
    "maxItems": WEB_HEAD_MAX,
    "uniqueItems": True,
    "anyOf": [{"items": ADDRESS}, {"maxItems": 1, "items": HOST}],
    "description": f"One hostname (answered as a CNAME) or up to {WEB_HEAD_MAX} IPv4/IPv6 "
    "addresses (answered as A/AAAA; not scoped, unspecified or multicast). A hostname has "
    "two labels or more and its last one starts with a letter (192.0.2.300 is a mistyped "
    "address). Empty: none.",
    "examples": [["192.0.2.10", "2001:db8::10"], ["lb.shop.example.com"]],
}

# A group's automatic failover settings (fodns/model.py says why each default).
FAILOVER: Schema = {
    "enum": list(MODES),
    "description": "Who switches the group: manual, only people; auto, health too (when "
    "the live side is down and the other up, never to a side down or unknown). Default: "
    "manual.",
    "examples": ["auto"],
}
FAILBACK: Schema = {
    "enum": list(MODES),
    "description": "Whether health takes an auto group back to its primary once the "
    "primary has been up for hold_down seconds (auto), or leaves that to people "
    "(manual). Default: manual.",
    "examples": ["auto"],
}
HOLD_DOWN: Schema = {
    "type": "integer",
    "minimum": 0,
    "maximum": HOLD_DOWN_MAX,
    "description": "Seconds the primary must have been up before an automatic failback. "
    f"Default: {DEFAULT_HOLD_DOWN}.",
    "examples": [DEFAULT_HOLD_DOWN],
}
MAX_AUTO_SWITCHES: Schema = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_AUTO_SWITCHES_MAX,
    "description": "Automatic switches the group makes in any hour at most; past them it "
    f"is held where it is until a person looks. Default: {DEFAULT_MAX_AUTO_SWITCHES}.",
    "examples": [DEFAULT_MAX_AUTO_SWITCHES],
}
PIN_FOR: Schema = {
    "type": ["integer", "null"],
    "minimum": 1,
    "maximum": PIN_FOR_MAX,
    "description": "An auto group switched by a person is pinned there: health does not "
    "move it while the pin lasts. Seconds the pin lasts; null or left out: until it is "
    "unpinned (DELETE /v1/groups/{label}/pin). A manual group has nothing to pin against: "
    "giving pin_for for one is a 409 naming pin_for.",
    "examples": [3600],
}

# ---- the request bodies -------------------------------------------------------------

NEW_APP: Schema = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": APP_NAME_FIELD,
        "load_balancer": WEB_HEAD,
        "web_servers": WEB_HEAD,
        "reason": REASON,
    },
    "description": "An app may have no web head yet (both lists empty or left out): a "
    "group whose active side it is answers NODATA until it gets one, as a group with no "
    "app on that side does.",
    "examples": [{"name": "shop-eu", "web_servers": ["192.0.2.10", "192.0.2.11"]}],
}
APP_CHANGE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {**APP_NAME_FIELD, "description": "A new name: the app is renamed."},
        "load_balancer": WEB_HEAD,
        "web_servers": WEB_HEAD,
        "reason": REASON,
    },
    "description": "A field left out stays as it is; an empty list clears it.",
    "examples": [{"load_balancer": ["lb.shop.example.com"], "reason": "new load balancer"}],
}
NEW_GROUP: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "zone": {**ZONE_FIELD, "description": "Needed when fodns serves several zones."},
        "label": {**GROUP_LABEL_FIELD, "description": "Default: a new NNN-NNN-NNN label."},
        "primary": SIDE_APP,
        "backup": SIDE_APP,
        "ttl": {**TTL, "description": "Default: the zone's group_ttl."},
        "failover": FAILOVER,
        "failback": FAILBACK,
        "hold_down": HOLD_DOWN,
        "max_auto_switches": MAX_AUTO_SWITCHES,
        "reason": REASON,
    },
    "examples": [
        {"primary": "shop-eu", "backup": "shop-us", "ttl": 30},
        {"primary": "shop-eu", "backup": "shop-us", "failover": "auto", "failback": "auto"},
    ],
}
GROUP_CHANGE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "primary": SIDE_APP,
        "backup": SIDE_APP,
        "ttl": TTL,
        "failover": FAILOVER,
        "failback": FAILBACK,
        "hold_down": HOLD_DOWN,
        "max_auto_switches": MAX_AUTO_SWITCHES,
        "reason": REASON,
    },
    "description": "A field left out stays as it is; null clears a side. Making a group "
    "manual ends its pin.",
    "examples": [
        {"backup": "shop-us", "reason": "us-east is ready"},
        {"failover": "auto", "hold_down": 600, "reason": "checks are in place"},
    ],
}
SWITCH: Schema = {
    "type": "object",
    "required": ["to"],
    "additionalProperties": False,
    "properties": {
        "to": {"enum": ["primary", "backup"], "description": "The side to make active."},
        "pin_for": PIN_FOR,
        "reason": REASON,
    },
    "description": "A person's switch of an auto group pins it on that side (the pin "
    "names the actor, the reason, when and until when), even to the side already active; "
    "a switch of a manual group pins nothing.",
    "examples": [
        {"to": "backup", "reason": "eu-west maintenance"},
        {"to": "backup", "pin_for": 7200, "reason": "eu-west maintenance, two hours"},
    ],
}

# An app's check: each field once, as the stored check shows it (every field, its
# default filled in) and as a request may give it (any of them). CheckSpec.from_json
# (fodns/checks.py) takes everything these accept: it is the store's last line.
_SECONDS = "Seconds, a number (0.5 is half a second)."
CHECK_FIELDS: dict[str, Schema] = {
    "type": {
        "enum": list(checks.CHECK_TYPES),
        "default": "http",
        "description": "http and https send a request to each address of the web head "
        "and expect a status in status_min..status_max; tcp only connects.",
    },
    "port": {
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "description": "Default: 80 for http, 443 for https; a tcp check must give it.",
        "examples": [8080],
    },
    "method": {
        "enum": list(checks.HTTP_METHODS),
        "default": "GET",
        "description": "http and https only.",
    },
    "path": {
        "type": "string",
        "maxLength": checks.PATH_MAX,
        "pattern": checks.PATH.pattern,
        "default": "/",
        "description": "'/' then visible ASCII (RFC 3986 characters, %-escapes included); "
        "http and https only.",
        "examples": ["/healthz"],
    },
    "host": {
        "type": ["string", "null"],
        "maxLength": checks.HOST_MAX,
        "pattern": checks.HOST.pattern,
        "default": None,
        "description": "The Host header and TLS server name (stored lower-case, without a "
        "final dot); null: the address, or the web head's hostname. http and https only.",
        "examples": ["shop.example.com"],
    },
    "status_min": {
        "type": "integer",
        "minimum": 100,
        "maximum": 599,
        "default": checks.DEFAULT_STATUS[0],
        "description": "The lowest status that passes. http and https only.",
    },
    "status_max": {
        "type": "integer",
        "minimum": 100,
        "maximum": 599,
        "default": checks.DEFAULT_STATUS[1],
        "description": "The highest status that passes, at least status_min (else a 400 "
        "naming status_max). http and https only.",
    },
    "body_contains": {
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": checks.BODY_MATCH_MAX,
        "pattern": r"^[^\x00]*$",
        "default": None,
        "description": "Text the response body must hold within its first "
        f"{checks.BODY_READ_BYTES} bytes; null: any body. http and https with GET only.",
        "examples": ["ok"],
    },
    "tls_verify": {
        "type": "boolean",
        "default": True,
        "description": "Whether an https check verifies the server's certificate.",
    },
    "interval": {
        "type": "number",
        "minimum": checks.INTERVAL_MIN,
        "maximum": checks.INTERVAL_MAX,
        "default": checks.DEFAULT_INTERVAL,
        "description": f"Seconds between checks of each address. {_SECONDS}",
        "examples": [10],
    },
    "timeout": {
        "type": "number",
        "minimum": checks.TIMEOUT_MIN,
        "maximum": checks.INTERVAL_MAX,
        "description": f"Seconds a check may take, at most the interval (else a 400 naming "
        f"timeout). {_SECONDS} Default: {checks.DEFAULT_TIMEOUT:g}, or the interval when "
        "that is shorter.",
        "examples": [2.5],
    },
    "fall": {
        "type": "integer",
        "minimum": 1,
        "maximum": checks.THRESHOLD_MAX,
        "default": checks.DEFAULT_FALL,
        "description": "Failed checks in a row that take an address down.",
    },
    "rise": {
        "type": "integer",
        "minimum": 1,
        "maximum": checks.THRESHOLD_MAX,
        "default": checks.DEFAULT_RISE,
        "description": "Passed checks in a row that bring an address up.",
    },
    "min_healthy": {
        "type": "integer",
        "minimum": 1,
        "maximum": checks.MIN_HEALTHY_MAX,
        "default": checks.DEFAULT_MIN_HEALTHY,
        "description": "Addresses that must be up for the app to be up.",
    },
    "quorum": {
        "type": "integer",
        "minimum": 1,
        "maximum": checks.QUORUM_MAX,
        "default": checks.DEFAULT_QUORUM,
        "description": "Probes (fodns is one, remote probes the others) that must see the "
        "app down (or up) for groups to act on it.",
    },
    "answers_follow_health": {
        "type": "boolean",
        "default": False,
        "description": "Leave the addresses that are down out of the app's answer while one "
        "is up (with none up, all are answered).",
    },
}
CHECK_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {**CHECK_FIELDS, "reason": REASON},
    "allOf": [
        {
            "if": {"required": ["type"], "properties": {"type": {"const": "tcp"}}},
            "then": {"required": ["port"], "properties": dict.fromkeys(checks.HTTP_ONLY, False)},
        },
        {
            "if": {"required": ["method"], "properties": {"method": {"const": "HEAD"}}},
            "then": {"properties": {"body_contains": {"type": "null"}}},
        },
    ],
    "description": "The whole check: a field left out takes its default (the reply shows "
    "every field). A tcp check needs a port and takes none of the HTTP fields (method, "
    "path, host, body_contains, status_min, status_max); a HEAD check looks at no body. "
    "Two rules JSON Schema cannot say, as they compare two fields, are the server's: "
    "timeout at most interval, status_max at least status_min (each a 400 naming the "
    "field).",
    "examples": [
        {"path": "/healthz", "interval": 10, "fall": 3, "rise": 2},
        {"type": "tcp", "port": 5432, "reason": "the database port answers"},
        {
            "type": "https",
            "path": "/status",
            "host": "shop.example.com",
            "body_contains": "ok",
            "answers_follow_health": True,
        },
    ],
}

# A remote probe's report: per app, the state of each address as its own rise and
# fall found it, with the evidence (probing.CheckResult as JSON, say).
EVIDENCE: Schema = {
    "type": "object",
    "maxProperties": 10,
    "propertyNames": {"maxLength": 100},
    "additionalProperties": {
        "type": ["string", "number", "boolean", "null"],
        "maxLength": 1000,
    },
    "description": "What decided the state, free-form: up to 10 fields of text (up to 1000 "
    "characters), numbers, true/false or null.",
    "examples": [{"ok": False, "latency_ms": 5000.2, "status": None, "error": "timed out"}],
}
REPORT: Schema = {
    "type": "object",
    "required": ["interval", "apps"],
    "additionalProperties": False,
    "properties": {
        "interval": {
            "type": "number",
            "minimum": checks.INTERVAL_MIN,
            "maximum": checks.INTERVAL_MAX,
            "description": "Seconds until this probe's next report: it counts as live "
            "until three of them have passed without one.",
            "examples": [10],
        },
        "apps": {
            "type": "array",
            "maxItems": checks.REPORT_APPS_MAX,
            "items": {
                "type": "object",
                "required": ["app", "addresses"],
                "additionalProperties": False,
                "properties": {
                    "app": APP_NAME_FIELD,
                    "addresses": {
                        "type": "array",
                        "maxItems": WEB_HEAD_MAX,
                        "items": {
                            "type": "object",
                            "required": ["address", "state"],
                            "additionalProperties": False,
                            "properties": {
                                "address": {
                                    "type": "string",
                                    "maxLength": HOSTNAME_MAX + 1,
                                    "description": "An address of the app's web head (its "
                                    "hostname, for one that did not resolve); others are "
                                    "ignored.",
                                    "examples": ["192.0.2.10"],
                                },
                                "state": {"enum": ["up", "down", "unknown"]},
                                "evidence": EVIDENCE,
                            },
                        },
                    },
                },
            },
            "description": "Apps fodns does not check are named back in unknown_apps.",
        },
    },
    "examples": [
        {
            "interval": 10,
            "apps": [
                {
                    "app": "shop-eu",
                    "addresses": [
                        {"address": "192.0.2.10", "state": "up"},
                        {
                            "address": "192.0.2.11",
                            "state": "down",
                            "evidence": {"ok": False, "error": "connection refused"},
                        },
                    ],
                }
            ],
        }
    ],
}

# A named token: its scope and limits (fodns/scopes.py), and how long it lasts.
TOKEN_NAME_FIELD: Schema = {
    "type": "string",
    "pattern": TOKEN_NAME.pattern,
    "not": {"enum": sorted(RESERVED_NAMES)},
    "description": "1-63 lower-case letters, digits, '.', '_' or '-', starting with a "
    f"letter or digit; not {', '.join(sorted(RESERVED_NAMES))}. The actor of the token's "
    "changes in the event log; never reused, even after the token is revoked (409).",
    "examples": ["deploy-shop"],
}


# One name pattern (fodns/patterns.py), for a token's limits and a webhook's filters.
NAME_PATTERN: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": PATTERN_MAX_LENGTH,
    "pattern": r"^[A-Za-z0-9*?\[\]!._-]+$",
}


def _limit(what: str, example: str) -> Schema:
    return {
        "type": ["array", "null"],
        "minItems": 1,
        "maxItems": PATTERNS_MAX,
        "items": NAME_PATTERN,
        "description": f"Name patterns (shell-style: * ? [...], matched against the whole "
        f"lower-case name) of the {what} the token may change; null or left out: any. "
        "What it reads is not limited.",
        "examples": [[example]],
    }


NEW_TOKEN: Schema = {
    "type": "object",
    "required": ["name", "scope"],
    "additionalProperties": False,
    "properties": {
        "name": TOKEN_NAME_FIELD,
        "scope": {
            "enum": list(SCOPE_WORDS),
            "description": "read: every GET but tokens and webhooks. switch: also switch "
            "and unpin groups, and report as a probe. write: also create, change and "
            "delete apps, groups and checks, and sync Route53. admin: also tokens and "
            "webhooks. Each includes those before it.",
        },
        "groups": _limit("groups (by label)", "shop-*"),
        "apps": _limit("apps", "shop-*"),
        "expires_in": {
            "type": "integer",
            "minimum": 1,
            "maximum": EXPIRES_IN_MAX,
            "description": "Seconds until the token stops working (401); left out: until "
            "it is revoked.",
            "examples": [30 * 86400],
        },
        "reason": REASON,
    },
    # An admin token could make itself a token without limits: it has none.
    "allOf": [
        {
            "if": {"required": ["scope"], "properties": {"scope": {"const": "admin"}}},
            "then": {"properties": {"groups": {"type": "null"}, "apps": {"type": "null"}}},
        }
    ],
    "description": "The reply holds the secret (`token`), shown this once: fodns keeps "
    "only its SHA-256.",
    "examples": [
        {"name": "deploy-shop", "scope": "switch", "groups": ["shop-*"], "expires_in": 2592000},
        {"name": "status-page", "scope": "read", "reason": "the public status page"},
    ],
}


# ---- webhooks (fodns/webhookmodel.py says what each field is) ------------------------

WEBHOOK_URL: Schema = {
    "type": "string",
    "maxLength": webhookmodel.URL_MAX,
    "pattern": webhookmodel.URL.pattern,
    "description": "Where events are POSTed: an http:// or https:// URL of at most "
    f"{webhookmodel.URL_MAX} characters, without user:password@ or #fragment (an IPv6 "
    "address in brackets). Any host fodns can reach: the token that sets it is an admin's.",
    "examples": ["https://hooks.example.com/fodns"],
}
WEBHOOK_KINDS: Schema = {
    "type": ["array", "null"],
    "minItems": 1,
    "uniqueItems": True,
    "items": {"enum": list(webhookmodel.KINDS)},
    "description": "The kinds of event to send: switch (a person switched a group), "
    "auto_switch (health did), health (an app's health moved), group (a group created, "
    "changed, deleted, pinned or unpinned), app (an app or its check created, changed or "
    "deleted), route53 (the Route53 mirror failing for a zone, and recovering), admin "
    "(tokens and webhooks). null or left out: every kind, those of later versions too.",
    "examples": [["switch", "auto_switch"]],
}


def _name_filter(names: str) -> Schema:
    return {
        "type": ["array", "null"],
        "minItems": 1,
        "maxItems": PATTERNS_MAX,
        "items": NAME_PATTERN,
        "description": f"Only the events that name one of these {names} (shell-style "
        "patterns, case-blind: shop-* matches shop-eu, never myshop). An event naming no "
        f"such {names[:-1]} does not pass. null or left out: no filter.",
        "examples": [["shop-*"]],
    }


WEBHOOK_FIELDS: dict[str, Schema] = {
    "url": WEBHOOK_URL,
    "events": WEBHOOK_KINDS,
    "groups": {
        **_name_filter("groups"),
        "description": "Only the events of groups whose label matches one of these "
        "shell-style patterns (case-blind: shop-* matches shop-eu, never myshop): a group's "
        "own events, and an app's events that changed such a group's answer. An event "
        "naming no group never passes. null or left out: no filter.",
    },
    "apps": {
        **_name_filter("apps"),
        "description": "Only the events of apps whose name matches one of these "
        "shell-style patterns (case-blind): an app's own events (under any name it had), "
        "and a group's events whose primary or backup, before or after, is such an app. An "
        "event naming no app never passes. null or left out: no filter.",
    },
    "secret": {
        "type": "string",
        "minLength": webhookmodel.SECRET_MIN,
        "maxLength": webhookmodel.SECRET_MAX,
        "pattern": r"^[!-~]+$",
        "description": "The key of the Fodns-Signature HMAC: "
        f"{webhookmodel.SECRET_MIN}-{webhookmodel.SECRET_MAX} printable ASCII characters, "
        "no spaces. Left out when created: fodns makes one (whsec_ and 43 characters). "
        "Shown only in the reply that sets it.",
        "examples": ["whsec_c2VjcmV0LWZvci10aGUtZXhhbXBsZS1vbmx5"],
    },
    "active": {
        "type": "boolean",
        "description": "false pauses the webhook (its cursor stays: resumed, it delivers "
        "what it missed, in order); true resumes it, and a failed webhook resumes at the "
        "event it gave up on. Default when created: true.",
    },
    "description": {
        "type": ["string", "null"],
        "maxLength": webhookmodel.DESCRIPTION_MAX,
        "pattern": r"^[^\x00]*$",
        "description": "What it is for, for people. null or empty: none.",
        "examples": ["#ops chat"],
    },
}
NEW_WEBHOOK: Schema = {
    "type": "object",
    "required": ["url"],
    "additionalProperties": False,
    "properties": WEBHOOK_FIELDS,
    "examples": [
        {"url": "https://hooks.example.com/fodns", "events": ["switch", "auto_switch"]},
        {"url": "https://ci.example.com/hooks/dns", "groups": ["shop-*"], "description": "CI"},
    ],
}
WEBHOOK_CHANGE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": WEBHOOK_FIELDS,
    "description": "A field left out stays as it is; null for events, groups or apps: "
    "every kind, no filter.",
    "examples": [{"active": True}, {"events": ["switch"], "groups": None}],
}

# ---- ACME registrations (fodns/acme.py says what each field is) ------------------------

ACME_NAMES: Schema = {
    "type": "array",
    "minItems": 1,
    "maxItems": acme.NAMES_MAX,
    "items": {
        "type": "string",
        "maxLength": acme.NAME_MAX_LENGTH,
        "pattern": acme.CUSTOMER_NAME.pattern,
    },
    "description": "The customer's names the certificates are for (www.shop.com; a "
    "wildcard's *.shop.com needs the CNAME of shop.com), each given once: one "
    "_acme-challenge CNAME per name is the record the customer adds.",
    "examples": [["www.shop.com", "shop.com"]],
}
ACME_ALLOWFROM: Schema = {
    "type": "array",
    "maxItems": acme.ALLOWFROM_MAX,
    "items": {"type": "string", "maxLength": 64, "pattern": acme.NETWORK.pattern},
    "description": "The networks the acme-dns updates may come from (an address alone is "
    "its /32 or /128), checked against the TCP peer; empty or left out: anywhere.",
    "examples": [["192.0.2.0/24", "2001:db8:5::/48"]],
}
NEW_ACME_REGISTRATION: Schema = {
    "type": "object",
    "required": ["group", "names"],
    "additionalProperties": False,
    "properties": {
        "group": {
            **GROUP_LABEL_FIELD,
            "description": "The failover group the certificates are for (404 naming group "
            "if there is none): a token limited to some groups may register only for them.",
        },
        "names": ACME_NAMES,
        "allowfrom": ACME_ALLOWFROM,
        "reason": REASON,
    },
    "description": "The reply holds the acme-dns credentials (username, password, "
    "fulldomain, subdomain, allowfrom), the password shown this once (fodns keeps only its "
    "SHA-256), and `cnames`, the exact records the customer adds.",
    "examples": [
        {"group": "shop", "names": ["www.shop.com"]},
        {"group": "shop", "names": ["shop.com", "*.shop.com"], "allowfrom": ["192.0.2.0/24"]},
    ],
}

# ---- the parameters: each operation's query as one object schema ---------------------
# Query values arrive as text; `query_values` turns those an integer schema asks for
# into integers first (ASCII digits only: "²".isdigit() is true).

EVENT_SEQ: Schema = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
PAGE_QUERY: Schema = {
    "q": {
        "type": "string",
        "maxLength": FIND_MAX,
        "pattern": r"^[^\x00]*$",
        "examples": ["shop"],
    },
    "limit": {
        "type": "integer",
        "minimum": 1,
        "maximum": LIST_PAGE_MAX,
        "description": "At most this many items; the reply's `next` asks for the rest. "
        f"With q or cursor but no limit, {LIST_PAGE_MAX}.",
        "examples": [100],
    },
    "cursor": {
        "type": "string",
        "minLength": 1,
        "maxLength": CURSOR_MAX,
        "pattern": r"^[^\x00]*$",
        "description": "Where the page starts: after this name in the list's order (groups "
        "by zone and label, apps by name, case-blind). The previous page's `next` is its "
        "last item's name (a group's label.zone, an app's name); any other name is a "
        "position too. Items created or deleted meanwhile move no other: none is listed "
        "twice, none that stayed is skipped.",
        "examples": ["414-262-781.fo.example.net"],
    },
}


def _query(properties: Mapping[str, Schema]) -> Schema:
    """A query as one object schema: other parameters are ignored, as HTTP has it."""
    return {"type": "object", "properties": dict(properties)}


def _finding(finds: str) -> Schema:
    """`q` of a list, saying what it matches there (see fodns/listing.py)."""
    return {
        **PAGE_QUERY["q"],
        "description": f"Only the items whose {finds} holds this text, case-blind "
        "(a substring: 192.0.2 finds 192.0.2.10).",
    }


APPS_QUERY = _query(
    {
        **PAGE_QUERY,
        "q": _finding(
            "name, or an address or hostname in its web head (the load balancer if it has "
            "one, else the web servers)"
        ),
    }
)
GROUPS_QUERY = _query(
    {
        "zone": {**ZONE_FIELD, "description": "Only the groups of this zone."},
        **PAGE_QUERY,
        "q": _finding(
            "label or full name, primary or backup app's name, or an address or hostname "
            "in the web head of either app"
        ),
    }
)
GROUP_QUERY = _query(
    {"zone": {**ZONE_FIELD, "description": "The group's zone, when the label is in several."}}
)
DELETE_QUERY = _query({"reason": REASON})
DELETE_GROUP_QUERY = _query({**GROUP_QUERY["properties"], **DELETE_QUERY["properties"]})
EVENTS_QUERY = _query(
    {
        "group": {
            "type": "string",
            "description": "Only the events of groups with this label.",
            "examples": ["414-262-781"],
        },
        "app": {
            "type": "string",
            "description": "Only the events of this app, across renames.",
            "examples": ["shop-eu"],
        },
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": EVENTS_PAGE_MAX,
            "default": EVENTS_PAGE_DEFAULT,
            "examples": [1],
        },
        "before": {
            **EVENT_SEQ,
            "description": "Only events with a smaller seq (paging).",
            "examples": [1200],
        },
        "after": {
            **EVENT_SEQ,
            "description": "Only events with a greater seq: what a client that has read up "
            "to this seq missed (still newest first).",
            "examples": [1187],
        },
    }
)
TOKENS_QUERY = _query(
    {
        "revoked": {
            "enum": ["true", "false"],
            "default": "false",
            "description": "true: revoked tokens too (they keep their names for ever).",
        }
    }
)
# Path parameters: what a route's {name} or {label} may be. A well-formed one that
# names nothing is a 404.
APP_PATH: Schema = _query({"name": APP_NAME_FIELD})
TOKEN_PATH: Schema = _query(
    {
        "name": {
            "type": "string",
            "pattern": TOKEN_NAME.pattern,
            "description": "The token's name.",
            "examples": ["deploy-shop"],
        }
    }
)
GROUP_PATH: Schema = _query({"label": GROUP_LABEL_FIELD})
PROBE_PATH: Schema = _query(
    {
        "name": {
            **APP_NAME_FIELD,
            "not": {"const": checks.LOCAL_PROBE},
            "description": "The probe's name, as app names are written; "
            f"{checks.LOCAL_PROBE!r} is fodns's own.",
            "examples": ["probe-us-east"],
        }
    }
)

ACME_PATH: Schema = _query(
    {
        "subdomain": {
            "type": "string",
            "pattern": "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
            "[0-9A-Fa-f]{12}$",
            "description": "The registration's subdomain: a UUID.",
            "examples": ["7b0c4d1e-5c3a-4f2b-9d8e-1a2b3c4d5e6f"],
        }
    }
)
ACME_QUERY = _query(
    {"group": {**GROUP_LABEL_FIELD, "description": "Only the registrations of this group."}}
)
WEBHOOK_PATH: Schema = _query(
    {
        "id": {
            "type": "string",
            "pattern": webhookmodel.WEBHOOK_ID.pattern,
            "description": "The webhook's id: wh_ and 16 hex digits.",
            "examples": ["wh_4f1c2a9e0b7d3e15"],
        }
    }
)

# ---- validation -------------------------------------------------------------------


def _end_anchored(validator: Any, pattern: str, instance: Any, schema: Schema) -> Any:
    """`pattern` as JSON Schema means it (ECMA-262): the closing `$` is the end of the
    text; Python's `$` also matches before a final newline, which would let "shop\\n"
    through where every other validator refuses it."""
    if isinstance(instance, str) and not _compiled(pattern).search(instance):
        yield SchemaError(f"{instance!r} does not match {pattern!r}")


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


# (types-jsonschema leaves `extend` untyped.)
_Validator = extend(Draft202012Validator, {"pattern": _end_anchored})  # type: ignore[no-untyped-call]


# By the schema's identity (dicts are not hashable), each kept with its schema so
# that an id is never reused for another one.
_VALIDATORS: dict[int, tuple[Schema, Any]] = {}


def validator(schema: Schema) -> Any:
    """The validator of `schema`, made once for each of this module's schemas."""
    kept = _VALIDATORS.get(id(schema))
    if kept is None or kept[0] is not schema:
        kept = _VALIDATORS[id(schema)] = (
            schema,
            _Validator(schema, format_checker=FormatChecker()),
        )
    return kept[1]


# The model's own check of a field, run on a value the schema refused: where it
# refuses too, its message (which says what is wrong in the product's words) is the
# 400's; else the schema's.
_WORDED: dict[str, Callable[[Any, str], object]] = {
    "name": check_app_name,
    "label": check_group_label,
    "ttl": check_ttl,
    "to": check_side,
    "load_balancer": check_web_head,
    "web_servers": check_web_head,
    "reason": lambda value, field: check_text(value, field, required=True),
    "failover": check_mode,
    "failback": check_mode,
    "hold_down": lambda value, field: check_whole(value, field, 0, HOLD_DOWN_MAX),
    "max_auto_switches": lambda value, field: check_whole(value, field, 1, MAX_AUTO_SWITCHES_MAX),
    "pin_for": lambda value, field: value is None or check_whole(value, field, 1, PIN_FOR_MAX),
    "expires_in": lambda value, field: check_whole(value, field, 1, EXPIRES_IN_MAX),
    "url": webhookmodel.check_url,
    "secret": webhookmodel.check_secret,
    "description": webhookmodel.check_description,
    "events": lambda value, field: (
        isinstance(value, list) and webhookmodel.check_kinds(value, field)
    ),
    "groups": lambda value, field: isinstance(value, list) and check_patterns(field, value),
    "group": check_group_label,
    "names": acme.check_names,
    "allowfrom": acme.check_allowfrom,
    "apps": lambda value, field: isinstance(value, list) and check_patterns(field, value),
}


# Lists whose own check words a refusal of any item better than the schema can ("'x' is
# not a host name such as www.shop.com" rather than "[2]: is not of the form ...").
_WORDED_WHOLE_LIST = frozenset({"names", "allowfrom"})


def _check_words(body: dict[str, Any]) -> None:
    """A check body's refusal in CheckSpec's words: it knows which field a rule between
    fields is about (a tcp check without a port, a HEAD check with body_contains)."""
    CheckSpec.from_json({name: value for name, value in body.items() if name != "reason"})


def _probe_words(path: dict[str, Any]) -> None:
    if path.get("name") == checks.LOCAL_PROBE:
        raise Invalid("name", f"{checks.LOCAL_PROBE!r} is fodns's own probe")


def _token_words(body: dict[str, Any]) -> None:
    """A new token's refusal in the store's words: a name (whose field, "name", is an
    app's elsewhere), and an admin token given limits."""
    if "name" in body:
        check_token_name(body["name"])
    if body.get("scope") == "admin":
        for limit in ("groups", "apps"):
            if body.get(limit) is not None:
                raise Invalid(
                    limit, "an admin token cannot be limited: it could make tokens without limits"
                )


# The same, for a whole object the schema refused (a body, a path), by its schema.
_WORDED_WHOLE: tuple[tuple[Schema, Callable[[dict[str, Any]], object]], ...] = (
    (CHECK_BODY, _check_words),
    (PROBE_PATH, _probe_words),
    (NEW_TOKEN, _token_words),
)
_MESSAGES = {
    "limit": "must be a whole number from {minimum} to {maximum}",
    "before": "must be an event seq",
    "after": "must be an event seq",
    "primary": "must be an app name or null",
    "backup": "must be an app name or null",
}


def check(schema: Schema, instance: Any, what: str = "body") -> None:
    """Refuse `instance` unless `schema` accepts it: Invalid naming the field (`what`
    when the whole of it is wrong), unknown fields first, then missing ones."""
    errors = list(validator(schema).iter_errors(instance))
    if not errors:
        return
    error = min(errors, key=_rank)
    if not error.path and error.validator == "additionalProperties":
        allowed = ", ".join(sorted(schema["properties"]))
        unknown = sorted(set(instance) - set(schema["properties"]))[0]
        raise Invalid(unknown[:100], f"unknown field (allowed: {allowed})")
    if isinstance(instance, dict):
        for whole, worded_whole in _WORDED_WHOLE:
            if whole is schema:
                worded_whole(instance)  # raises its own Invalid where it refuses too
    if not error.path:
        if error.validator == "required":
            # The schema's own list, or a condition's (a tcp check requires a port).
            missing = next(name for name in error.validator_value if name not in instance)
            raise Invalid(missing, "is required")
        raise Invalid(what, "must be a JSON object")
    field = str(error.path[0])
    value = instance[field]
    worded = _WORDED.get(field)
    if worded is not None and (len(error.path) == 1 or field in _WORDED_WHOLE_LIST):
        worded(value, field)  # raises its own Invalid where it refuses too
    message = _MESSAGES.get(field)
    if message is not None:
        raise Invalid(field, message.format(**schema["properties"][field]))
    if len(error.path) > 1:  # inside the field: say where ("[2].addresses[0].state")
        inside = list(error.path)[1:]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in inside)
        raise Invalid(field, f"{where.removeprefix('.')}: {_plain(error)}")
    raise Invalid(field, _plain(error))


def _rank(error: SchemaError) -> tuple[int, str]:
    order = {"additionalProperties": 0, "required": 1, "type": 2}
    return (order.get(str(error.validator), 3) if not error.path else 4, str(list(error.path)))


def _plain(error: SchemaError) -> str:
    """jsonschema's message without the value it quotes (which may be huge)."""
    if error.validator in ("pattern", "anyOf", "not", "format"):
        return "is not of the form the API document gives"
    if error.validator is None:  # a `false` schema: the field may not be given here
        return "is not allowed here (see the API document)"
    return str(error.message) if len(error.message) <= 200 else str(error.message)[:197] + "..."


def whole_numbers(schema: Schema, body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` (which `schema` accepted) with each value of a field it types as an
    integer made a Python int: JSON Schema's integers include 30.0, the model's checks
    take only ints."""
    typed = dict(body)
    for name, value in body.items():
        kinds = schema["properties"].get(name, {}).get("type", [])
        if isinstance(value, float) and "integer" in ([kinds] if isinstance(kinds, str) else kinds):
            typed[name] = int(value)
    return typed


def query_values(query: Mapping[str, str], schema: Schema) -> dict[str, Any]:
    """A request's query (first value of each name) as `schema` types it: integers
    where it asks for an integer and the text is ASCII digits, else the text."""
    values: dict[str, Any] = {}
    for name, spec in schema["properties"].items():
        text = query.get(name)
        if text is None:
            continue
        numeric = spec.get("type") == "integer" and _DIGITS.match(text)
        values[name] = int(text) if numeric else text
    return values


_DIGITS = re.compile(r"^[0-9]{1,19}\Z")


def check_query(query: Mapping[str, str], schema: Schema) -> dict[str, Any]:
    """The query `schema` accepts, typed; Invalid naming the parameter otherwise."""
    values = query_values(query, schema)
    check(schema, values, "query")
    return values


# ---- for the document ----------------------------------------------------------------


def parameters(schema: Schema, where: str) -> list[dict[str, Any]]:
    """An OpenAPI parameter list from a query (or path) schema: each parameter's schema
    is the very dict the API validates it with."""
    listed = []
    for name, spec in schema["properties"].items():
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path",  # a path's parameters are always there
            "schema": spec,
        }
        if "description" in spec:
            parameter["description"] = spec["description"]
        listed.append(parameter)
    return listed
