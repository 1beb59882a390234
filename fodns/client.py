"""The command-line client of the admin API: `fodns group|app|status|events ...`.

It speaks the same HTTP API as curl would (stdlib urllib, no extra dependency),
reading the API address and token from flags or FODNS_API / FODNS_ADMIN_TOKEN.
Output is JSON for machines, except `fodns status APP`, which prints the
shell-friendly `FAILOVER_STATUS=online`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_API = "http://127.0.0.1:8053"


class ApiError(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
        super().__init__(f"HTTP {status}: {message or payload}")
        self.status = status


def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        args.api.rstrip("/") + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {args.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            details = json.loads(raw)
        except json.JSONDecodeError:
            details = raw.decode(errors="replace")
        raise ApiError(error.code, details) from None
    except urllib.error.URLError as error:
        raise ApiError(0, f"cannot reach {args.api}: {error.reason}") from None
    return json.loads(payload) if payload else None


def add_client_commands(commands: Any) -> None:
    """The client sub-commands, added to the `fodns` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        default=os.environ.get("FODNS_API", DEFAULT_API),
        help="admin API address (FODNS_API)",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("FODNS_ADMIN_TOKEN", ""),
        help="admin token (FODNS_ADMIN_TOKEN)",
    )
    common.add_argument("--timeout", type=float, default=10.0)

    group = commands.add_parser("group", help="failover groups").add_subparsers(
        dest="action", required=True
    )
    create = group.add_parser("create", parents=[common], help="create a group")
    for flag in ("--zone", "--label", "--primary", "--backup", "--reason"):
        create.add_argument(flag)
    create.add_argument("--ttl", type=int)
    group.add_parser("list", parents=[common], help="list groups").add_argument("--zone")
    for action in ("show", "delete"):
        group.add_parser(action, parents=[common]).add_argument("label")
    update = group.add_parser("update", parents=[common], help="set primary, backup or ttl")
    update.add_argument("label")
    for flag in ("--primary", "--backup", "--reason"):
        update.add_argument(flag)
    update.add_argument("--ttl", type=int)
    switch = group.add_parser("switch", parents=[common], help="switch traffic")
    switch.add_argument("label")
    switch.add_argument("to", choices=["primary", "backup"])
    switch.add_argument("--reason")

    app = commands.add_parser("app", help="apps").add_subparsers(dest="action", required=True)
    for action in ("create", "update"):
        parser = app.add_parser(action, parents=[common])
        parser.add_argument("name")
        parser.add_argument("--load-balancer", action="append", metavar="ADDRESS_OR_HOST")
        parser.add_argument("--web-server", action="append", metavar="ADDRESS_OR_HOST")
        if action == "update":
            parser.add_argument("--rename", metavar="NEW_NAME")
    app.add_parser("list", parents=[common])
    for action in ("show", "delete"):
        app.add_parser(action, parents=[common]).add_argument("name")

    status = commands.add_parser(
        "status", parents=[common], help="print FAILOVER_STATUS=online|offline|none for an app"
    )
    status.add_argument("app")
    events = commands.add_parser("events", parents=[common], help="the event log, newest first")
    events.add_argument("--group")
    events.add_argument("--app")
    events.add_argument("--limit", type=int, default=20)

    route53 = commands.add_parser("route53", help="the Route53 mirror").add_subparsers(
        dest="action", required=True
    )
    route53.add_parser(
        "plan", parents=[common], help="what a sync would change in Route53 (changes nothing)"
    ).add_argument("--json", action="store_true", help="the plan as JSON")
    route53.add_parser(
        "sync", parents=[common], help="compare every record now and fix Route53"
    ).add_argument("--json", action="store_true", help="what was applied, as JSON")


def _given(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def run_client(args: argparse.Namespace) -> int:
    try:
        result = _dispatch(args)
    except ApiError as error:
        print(f"fodns: error: {error}", file=sys.stderr)
        return 1
    if isinstance(result, str):
        print(result)
    elif result is not None:
        print(json.dumps(result, indent=2))
    return 0


def _dispatch(args: argparse.Namespace) -> Any:
    quote = urllib.parse.quote
    if args.command == "status":
        reply = call(args, "GET", f"/v1/apps/{quote(args.app)}/status")
        return f"FAILOVER_STATUS={reply['failover_status']}"
    if args.command == "events":
        query = urllib.parse.urlencode(_given(group=args.group, app=args.app, limit=args.limit))
        return call(args, "GET", f"/v1/events?{query}")["events"]
    if args.command == "group":
        return _group(args, quote)
    if args.command == "route53":
        method = "GET" if args.action == "plan" else "POST"
        plans = call(args, method, f"/v1/route53/{args.action}")["zones"]
        return plans if args.json else describe_plans(plans, applied=args.action == "sync")
    return _app(args, quote)


def describe_plans(plans: list[dict[str, Any]], applied: bool) -> str:
    """A plan as people read diffs: + added, ~ changed, - removed, per zone."""

    def rrset(record: dict[str, Any]) -> str:
        return f"{record['name']} {record['ttl']} {record['type']} {' '.join(record['values'])}"

    lines = []
    for plan in plans:
        lines.append(f"zone {plan['zone']} (hosted zone {plan['hosted_zone_id']}):")
        lines += [f"  + {rrset(r)}" for r in plan["add"]]
        for change in plan["change"]:
            lines.append(f"  ~ {rrset(change['before'])}")
            lines.append(f"    -> {rrset(change['after'])}")
        lines += [f"  - {rrset(r)}" for r in plan["remove"]]
        lines += [
            f"  ! {r['name']} {r['type']}: not sent, {r['reason']} ({r['values']} values)"
            for r in plan.get("skipped", [])
        ]
        lines += [
            f"  ! {r['name']} {r['type']}: left alone, in the way: {', '.join(r['held_by'])}"
            " record sets fodns did not write"
            for r in plan.get("conflicts", [])
        ]
        counts = (len(plan["add"]), len(plan["change"]), len(plan["remove"]))
        verb = "applied" if applied else "to apply"
        summary = f"{counts[0]} to add, {counts[1]} to change, {counts[2]} to remove ({verb})"
        if counts == (0, 0, 0):
            summary = "in sync"
        lines.append(f"  {summary}; {plan['unchanged']} record sets already equal")
    return "\n".join(lines)


def _group(args: argparse.Namespace, quote: Any) -> Any:
    if args.action == "create":
        return call(
            args,
            "POST",
            "/v1/groups",
            _given(
                zone=args.zone,
                label=args.label,
                primary=args.primary,
                backup=args.backup,
                ttl=args.ttl,
                reason=args.reason,
            ),
        )
    if args.action == "list":
        suffix = f"?zone={quote(args.zone)}" if args.zone else ""
        return call(args, "GET", f"/v1/groups{suffix}")["groups"]
    path = f"/v1/groups/{quote(args.label)}"
    if args.action == "show":
        return call(args, "GET", path)
    if args.action == "update":
        return call(
            args,
            "PATCH",
            path,
            _given(primary=args.primary, backup=args.backup, ttl=args.ttl, reason=args.reason),
        )
    if args.action == "switch":
        return call(args, "POST", f"{path}/switch", _given(to=args.to, reason=args.reason))
    return call(args, "DELETE", path)


def _app(args: argparse.Namespace, quote: Any) -> Any:
    if args.action == "create":
        return call(
            args,
            "POST",
            "/v1/apps",
            _given(name=args.name, load_balancer=args.load_balancer, web_servers=args.web_server),
        )
    if args.action == "list":
        return call(args, "GET", "/v1/apps")["apps"]
    path = f"/v1/apps/{quote(args.name)}"
    if args.action == "show":
        return call(args, "GET", path)
    if args.action == "update":
        return call(
            args,
            "PATCH",
            path,
            _given(name=args.rename, load_balancer=args.load_balancer, web_servers=args.web_server),
        )
    return call(args, "DELETE", path)
