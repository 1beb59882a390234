"""The client commands' arguments and help, each naming the admin API call it makes.

Every client command carries an `Endpoint` (argparse default `endpoint`): the
method and path it calls and, for each query parameter and JSON body field of
that call, the argument that fills it. fodns/client.py builds requests from
these maps alone, and tests/test_cli_client.py compares them with the OpenAPI
document, so an API field without a CLI spelling cannot go unnoticed.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fodns import checks, webhookmodel
from fodns.config import DEFAULT_API_LISTEN
from fodns.model import (
    DEFAULT_GROUP_TTL,
    DEFAULT_HOLD_DOWN,
    DEFAULT_MAX_AUTO_SWITCHES,
    EVENTS_PAGE_MAX,
    GROUP_TTL_MAX,
    GROUP_TTL_MIN,
    HOLD_DOWN_MAX,
    LIST_PAGE_MAX,
    MAX_AUTO_SWITCHES_MAX,
    MODES,
    PIN_FOR_MAX,
)
from fodns.scopes import SCOPE_WORDS
from fodns.tokens import EXPIRES_IN_MAX

DEFAULT_API = f"http://{DEFAULT_API_LISTEN}"
TIMEOUT = 10.0
EVENTS_LIMIT = 20
# A list command's page: API query parameter -> argparse dest.
PAGE_QUERY = {"q": "find", "limit": "limit", "cursor": "cursor"}
PAGE_ALL = LIST_PAGE_MAX  # --all without --limit reads pages of the most the API gives

# fodns status: its exit status is the failover status, so that `fodns status APP && job`
# runs a job only where the app is live; any error is 3, never a status.
STATUS_EXIT = {"online": 0, "offline": 1, "none": 2}
STATUS_ERROR = 3

# --pin-for's word for a pin without an end (sent as null: until someone unpins it).
PIN_FOREVER = "forever"

# The words, as DESIGN.md defines them (online is "the active side", said as "live").
FAILOVER_STATUS_WORDS = """\
failover status:
  online:  the live side of at least one group
  offline: in a group, but live in none
  none:    in no group"""


class Formatter(argparse.HelpFormatter):
    """Fills each paragraph of a description or epilog to the terminal's width, but
    keeps a paragraph with indented lines (a list, an example) as it is written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith(" ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(
                    textwrap.fill(
                        " ".join(lines), width, initial_indent=indent, subsequent_indent=indent
                    )
                )
        return "\n\n".join(paragraphs)


class Null:
    """What --no-primary and the like store: the field is sent as JSON null
    (None already means "not given, leave it as it is")."""

    def __repr__(self) -> str:
        return "NULL"


NULL = Null()


@dataclass(frozen=True)
class Endpoint:
    """The admin API call a command makes. `{name}`s in `path` are the command's
    arguments of that name; `query` and `body` map each API field to the argparse
    dest that fills it when given; `listed` is the key of the list a reply wraps."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, str] | None = None  # None: the call takes no body
    listed: str | None = None


def seconds(text: str) -> float:
    """--timeout's value: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def pin_seconds(text: str) -> int | Null:
    """--pin-for's value: whole seconds, or `forever` (null)."""
    if text == PIN_FOREVER:
        return NULL
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a number of seconds nor {PIN_FOREVER!r}"
        )
    return int(text)


# --expires: a number and a unit (or seconds alone), as people say how long.
EXPIRY_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def expiry_seconds(text: str) -> int:
    """--expires's value: 30d, 12h, 90m, 3600s or 3600 (seconds), as whole seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in EXPIRY_UNITS else (text, "s")
    if not number.isascii() or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h, 90m or 3600s")
    seconds = int(number) * EXPIRY_UNITS[unit]
    if not 1 <= seconds <= EXPIRES_IN_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not between 1 second and {EXPIRES_IN_MAX // 86400} days"
        )
    return seconds


def add_client_commands(commands: Any) -> None:
    """The client commands, added to the `fodns` parser's subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    connection = common.add_argument_group("admin API")
    connection.add_argument(
        "--api",
        metavar="URL",
        help=f"the admin API's address (default: $FODNS_API, else {DEFAULT_API})",
    )
    connection.add_argument(
        "--token",
        help="the token: the admin token or one made with fodns token create (default: "
        "$FODNS_ADMIN_TOKEN); fodns serve keeps a generated admin token in admin-token "
        "beside its database, e.g. var/admin-token",
    )
    connection.add_argument(
        "--timeout",
        type=seconds,
        default=TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the API (default: {TIMEOUT:g})",
    )
    _add_group_commands(commands, common)
    _add_app_commands(commands, common)
    _add_check_commands(commands, common)
    _add_health_command(commands, common)
    _add_zones_command(commands, common)
    _add_status_command(commands, common)
    _add_events_command(commands, common)
    _add_route53_commands(commands, common)
    _add_token_commands(commands, common)
    _add_webhook_commands(commands, common)
    _add_acme_commands(commands, common)


def _command(
    commands: Any, name: str, common: argparse.ArgumentParser, summary: str, details: str = ""
) -> argparse.ArgumentParser:
    """A command with `summary` in its parent's list and summary + details in its --help."""
    return commands.add_parser(  # type: ignore[no-any-return]
        name,
        parents=[common],
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.{' ' + details if details else ''}",
        formatter_class=Formatter,
    )


def _reason(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reason",
        metavar="TEXT",
        help="why: recorded in the event log with the change (see fodns events)",
    )


def _group_zone(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--zone",
        help="the group's zone, needed only when the label exists in several zones",
    )


def _label(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("label", metavar="LABEL", help="the group's label, e.g. 414-262-781")


# A group's automatic failover settings: API field -> argparse dest.
AUTO_SETTINGS = {f: f for f in ("failover", "failback", "hold_down", "max_auto_switches")}


def _auto_settings(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--failover, --failback, --hold-down and --max-auto-switches (`defaults`: say
    what a new group gets when they are left out)."""

    def default(value: object) -> str:
        return f" (default: {value})" if defaults else ""

    modes = list(MODES)
    parser.add_argument(
        "--failover",
        choices=modes,
        help="who switches it: manual, only people; auto, health checks too, when the live "
        f"side is down and the other up{default('manual')}",
    )
    parser.add_argument(
        "--failback",
        choices=modes,
        help="auto: health takes an auto group back to its primary once the primary has "
        f"been up for --hold-down seconds; manual: people do{default('manual')}",
    )
    parser.add_argument(
        "--hold-down",
        type=int,
        metavar="SECONDS",
        help=f"how long the primary must be up before an automatic failback, 0 to "
        f"{HOLD_DOWN_MAX}{default(DEFAULT_HOLD_DOWN)}",
    )
    parser.add_argument(
        "--max-auto-switches",
        type=int,
        metavar="N",
        help=f"automatic switches in any hour at most, 1 to {MAX_AUTO_SWITCHES_MAX}; past "
        f"them the group is held until a person looks{default(DEFAULT_MAX_AUTO_SWITCHES)}",
    )


def _add_group_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    ttl_help = (
        f"TTL of the group's answers in seconds, {GROUP_TTL_MIN} to {GROUP_TTL_MAX}; "
        "traffic moves within it after a switch"
    )
    group = commands.add_parser(
        "group",
        help="failover groups: create, list, show, update, switch, unpin, delete",
        description="A failover group is a name in a zone, LABEL.ZONE (point customer "
        "domains at it with a CNAME), that answers with the web head of its live side: "
        "the primary app or the backup app. Switching moves traffic within the group's "
        "TTL. A manual group is switched by people only; an auto group by health checks "
        "too (fodns check), except while a person's switch pins it. Output is JSON: "
        "each group's failover settings and pin are in it.",
        formatter_class=Formatter,
    ).add_subparsers(dest="action", required=True, title="commands", metavar="COMMAND")

    create = _command(
        group,
        "create",
        common,
        "create a group, its primary side live",
        "Without --label it gets a generated NNN-NNN-NNN label. A label is never reused, "
        "even after its group is deleted.",
    )
    create.add_argument(
        "--zone",
        help="the zone to create it in (default: the zone served, when fodns serves only one)",
    )
    create.add_argument("--label", help="its label (default: a generated one like 414-262-781)")
    create.add_argument("--primary", metavar="APP", help="the primary app (default: none)")
    create.add_argument("--backup", metavar="APP", help="the backup app (default: none)")
    create.add_argument(
        "--ttl",
        type=int,
        metavar="SECONDS",
        help=f"{ttl_help} (default: the zone's group_ttl, {DEFAULT_GROUP_TTL} unless configured)",
    )
    _auto_settings(create, defaults=True)
    _reason(create)
    create.set_defaults(
        endpoint=Endpoint(
            "POST",
            "/v1/groups",
            body={
                **{f: f for f in ("zone", "label", "primary", "backup", "ttl", "reason")},
                **AUTO_SETTINGS,
            },
        )
    )

    listing = _command(
        group,
        "list",
        common,
        "list groups, with the records each answers now",
        "--find TEXT lists the groups whose label or full name, primary or backup app, "
        "or an address or hostname in the web head of either app holds TEXT (case-blind). "
        "--limit N lists N groups and prints the next page's --cursor on stderr; --all "
        "follows the pages to the end.",
    )
    listing.add_argument("--zone", help="only the groups of this zone")
    _page_options(listing, "groups")
    listing.set_defaults(
        endpoint=Endpoint(
            "GET", "/v1/groups", query={"zone": "zone", **PAGE_QUERY}, listed="groups"
        )
    )

    show = _command(
        group,
        "show",
        common,
        "show a group",
        "Output is JSON: its sides, which one is live, its TTL, its failover settings "
        "and pin, and the records it answers with now.",
    )
    _label(show)
    _group_zone(show)
    show.set_defaults(endpoint=Endpoint("GET", "/v1/groups/{label}", query={"zone": "zone"}))

    update = _command(
        group,
        "update",
        common,
        "set or clear a group's primary or backup, or change its TTL or failover settings",
        "What is not given stays as it is. Clearing the live side leaves the group "
        "answering nothing (NODATA) until it gets an app or is switched. A group can be "
        "deleted once both sides are clear: --no-primary --no-backup. Making a group "
        "manual ends its pin.",
    )
    _label(update)
    _group_zone(update)
    for side in ("primary", "backup"):
        either = update.add_mutually_exclusive_group()
        either.add_argument(f"--{side}", metavar="APP", help=f"make APP the {side}")
        either.add_argument(
            f"--no-{side}",
            dest=side,
            action="store_const",
            const=NULL,
            help=f"clear the {side} side (no app)",
        )
    update.add_argument("--ttl", type=int, metavar="SECONDS", help=ttl_help)
    _auto_settings(update, defaults=False)
    _reason(update)
    update.set_defaults(
        endpoint=Endpoint(
            "PATCH",
            "/v1/groups/{label}",
            query={"zone": "zone"},
            body={**{f: f for f in ("primary", "backup", "ttl", "reason")}, **AUTO_SETTINGS},
        )
    )

    switch = _command(
        group,
        "switch",
        common,
        "switch traffic: make the primary or the backup side live",
        "fodns answers with that side's web head at once; resolvers follow within the "
        "group's TTL. It returns once the change is durable and served. Switching to the "
        "side already live changes nothing; switching to a side with no app is refused. "
        "Switching an auto group pins it on that side, even the side already live: health "
        "checks leave it there until the pin ends (--pin-for) or fodns group unpin.",
    )
    _label(switch)
    switch.add_argument("to", choices=["primary", "backup"], help="the side to make live")
    _group_zone(switch)
    switch.add_argument(
        "--pin-for",
        type=pin_seconds,
        metavar="SECONDS",
        help=f"an auto group only: how long the pin lasts, 1 to {PIN_FOR_MAX} seconds; "
        f"{PIN_FOREVER!r}, like leaving it out, pins it until fodns group unpin",
    )
    _reason(switch)
    switch.set_defaults(
        endpoint=Endpoint(
            "POST",
            "/v1/groups/{label}/switch",
            query={"zone": "zone"},
            body={"to": "to", "pin_for": "pin_for", "reason": "reason"},
        )
    )

    unpin = _command(
        group,
        "unpin",
        common,
        "hand an auto group back to health checks",
        "Ends the pin a person's switch set: health may switch the group again. A group "
        "without a pin stays as it is (nothing is recorded).",
    )
    _label(unpin)
    _group_zone(unpin)
    _reason(unpin)
    unpin.set_defaults(
        endpoint=Endpoint(
            "DELETE", "/v1/groups/{label}/pin", query={"zone": "zone", "reason": "reason"}
        )
    )

    delete = _command(
        group,
        "delete",
        common,
        "delete a group that points at no app",
        "Clear its sides first (fodns group update LABEL --no-primary --no-backup). "
        "Its label stays taken forever: it is never reused.",
    )
    _label(delete)
    _group_zone(delete)
    _reason(delete)
    delete.set_defaults(
        endpoint=Endpoint(
            "DELETE", "/v1/groups/{label}", query={"zone": "zone", "reason": "reason"}
        )
    )


def _page_options(parser: argparse.ArgumentParser, listed: str) -> None:
    """--find, --limit, --cursor and --all of a list command (see PAGE_QUERY)."""
    parser.add_argument(
        "--find", "--q", metavar="TEXT", help=f"only the {listed} that TEXT is found in"
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help=f"at most N {listed}, 1 to {LIST_PAGE_MAX} (a page)"
    )
    parser.add_argument(
        "--cursor", metavar="CURSOR", help="the page after the one that printed this cursor"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"every page, as one list (pages of --limit {listed}, default {PAGE_ALL})",
    )


def _web_head_options(parser: argparse.ArgumentParser, clearable: bool) -> None:
    """--load-balancer and --web-server (both repeatable), and with `clearable`
    their --no-... twins that send an empty list."""
    options = [
        (
            "load-balancer",
            "load_balancer",
            "the load balancer: one hostname (answered as a CNAME) or an IP address; "
            "repeat it for several addresses",
        ),
        (
            "web-server",
            "web_servers",
            "a web server's IP address, or one hostname; repeat it for each server "
            "(--web-server 192.0.2.10 --web-server 192.0.2.11)",
        ),
    ]
    for flag, dest, text in options:
        target = parser.add_mutually_exclusive_group() if clearable else parser
        target.add_argument(
            f"--{flag}",
            dest=dest,
            action="append",
            metavar="ADDRESS_OR_HOST",
            help=text + ("; replaces the whole list" if clearable else ""),
        )
        if clearable:
            target.add_argument(
                f"--no-{dest.replace('_', '-')}",
                dest=dest,
                action="store_const",
                const=[],
                help=f"remove the {dest.replace('_', ' ')}",
            )


def _add_app_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    app = commands.add_parser(
        "app",
        help="apps and their web heads: create, list, show, update, delete",
        description="An app is an application instance (a deployment) with a web head: "
        "its load balancer if it has one, otherwise its web servers. A group answers "
        "with the web head of its live app. Output is JSON, with each app's failover "
        f"status.\n\n{FAILOVER_STATUS_WORDS}",
        formatter_class=Formatter,
    ).add_subparsers(dest="action", required=True, title="commands", metavar="COMMAND")
    name_help = "the app's name: letters, digits, '.', '_' or '-', e.g. shop-eu"

    create = _command(
        app,
        "create",
        common,
        "create an app with its web head",
        "Give a load balancer, web servers, both or neither: groups answer with the load "
        "balancer when there is one, else with the web servers.",
    )
    create.add_argument("name", metavar="NAME", help=name_help)
    _web_head_options(create, clearable=False)
    _reason(create)
    create.set_defaults(
        endpoint=Endpoint(
            "POST",
            "/v1/apps",
            body={f: f for f in ("name", "load_balancer", "web_servers", "reason")},
        )
    )

    listing = _command(
        app,
        "list",
        common,
        "list apps with their failover status",
        "--find TEXT lists the apps whose name, or an address or hostname in whose web "
        "head, holds TEXT (case-blind). --limit N lists N apps and prints the next page's "
        "--cursor on stderr; --all follows the pages to the end.",
    )
    _page_options(listing, "apps")
    listing.set_defaults(
        endpoint=Endpoint("GET", "/v1/apps", query=dict(PAGE_QUERY), listed="apps")
    )

    show = _command(app, "show", common, "show an app, its web head and failover status")
    show.add_argument("name", metavar="NAME", help="the app's name")
    show.set_defaults(endpoint=Endpoint("GET", "/v1/apps/{name}"))

    update = _command(
        app,
        "update",
        common,
        "change an app's web head, or rename it",
        "What is not given stays as it is. Every group that follows the app answers "
        "with the new web head at once.",
    )
    update.add_argument("name", metavar="NAME", help="the app's name (now)")
    update.add_argument("--rename", metavar="NEW_NAME", help="give the app a new name")
    _web_head_options(update, clearable=True)
    _reason(update)
    update.set_defaults(
        endpoint=Endpoint(
            "PATCH",
            "/v1/apps/{name}",
            body={
                "name": "rename",
                "load_balancer": "load_balancer",
                "web_servers": "web_servers",
                "reason": "reason",
            },
        )
    )

    delete = _command(
        app,
        "delete",
        common,
        "delete an app that no group uses",
        "Take it out of its groups first (fodns group update LABEL --no-primary, or --no-backup).",
    )
    delete.add_argument("name", metavar="NAME", help="the app's name")
    _reason(delete)
    delete.set_defaults(endpoint=Endpoint("DELETE", "/v1/apps/{name}", query={"reason": "reason"}))


# fodns check set's options: each check field's flag and its argparse settings.
# --check-timeout, as --timeout is how long the command waits for the API.
_CHECK_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "type": (
        "--type",
        {
            "choices": list(checks.CHECK_TYPES),
            "help": "http or https (a request; the status decides) or tcp (a connect) "
            "(default: http)",
        },
    ),
    "port": (
        "--port",
        {
            "type": int,
            "metavar": "PORT",
            "help": "the port (default: 80 for http, 443 for https; a tcp check needs it)",
        },
    ),
    "method": (
        "--method",
        {"choices": list(checks.HTTP_METHODS), "help": "the HTTP method (default: GET)"},
    ),
    "path": (
        "--path",
        {"metavar": "PATH", "help": "the HTTP path: '/' then visible ASCII (default: /)"},
    ),
    "host": (
        "--host",
        {
            "metavar": "NAME",
            "help": "the Host header and TLS server name (default: the address, or the web "
            "head's hostname)",
        },
    ),
    "status_min": (
        "--status-min",
        {"type": int, "metavar": "STATUS", "help": "the lowest status that passes (default: 200)"},
    ),
    "status_max": (
        "--status-max",
        {"type": int, "metavar": "STATUS", "help": "the highest status that passes (default: 399)"},
    ),
    "body_contains": (
        "--body-contains",
        {
            "metavar": "TEXT",
            "help": f"text the body must hold in its first {checks.BODY_READ_BYTES} bytes "
            "(GET only)",
        },
    ),
    "tls_verify": (
        "--tls-verify",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "whether https checks verify the certificate (default: they do)",
        },
    ),
    "interval": (
        "--interval",
        {
            "type": float,
            "metavar": "SECONDS",
            "help": f"seconds between checks, {checks.INTERVAL_MIN:g} to "
            f"{checks.INTERVAL_MAX:g} (default: {checks.DEFAULT_INTERVAL:g})",
        },
    ),
    "timeout": (
        "--check-timeout",
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "seconds a check may take, at most the interval (default: "
            f"{checks.DEFAULT_TIMEOUT:g}, or the interval when shorter)",
        },
    ),
    "fall": (
        "--fall",
        {
            "type": int,
            "metavar": "N",
            "help": "failed checks in a row that take an address down (default: "
            f"{checks.DEFAULT_FALL})",
        },
    ),
    "rise": (
        "--rise",
        {
            "type": int,
            "metavar": "N",
            "help": "passed checks in a row that bring an address up (default: "
            f"{checks.DEFAULT_RISE})",
        },
    ),
    "min_healthy": (
        "--min-healthy",
        {
            "type": int,
            "metavar": "N",
            "help": "addresses that must be up for the app to be up (default: "
            f"{checks.DEFAULT_MIN_HEALTHY})",
        },
    ),
    "quorum": (
        "--quorum",
        {
            "type": int,
            "metavar": "N",
            "help": "probes (fodns and remote ones) that must agree before groups act on "
            f"the app (default: {checks.DEFAULT_QUORUM})",
        },
    ),
    "answers_follow_health": (
        "--answers-follow-health",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "leave the addresses that are down out of the app's answer while one "
            "is up (default: no)",
        },
    ),
}


def _add_check_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    check = commands.add_parser(
        "check",
        help="an app's health check: set, show, delete",
        description="A check probes each address of an app's web head (HTTP, HTTPS or a "
        "TCP connect) every interval; fall failures in a row take an address down, rise "
        "successes bring it up. Auto groups switch on what checks find (fodns group "
        "create --failover auto). Output is JSON, every field of the check shown.",
        formatter_class=Formatter,
    ).add_subparsers(dest="action", required=True, title="commands", metavar="COMMAND")
    name_help = "the app's name"

    set_check = _command(
        check,
        "set",
        common,
        "set an app's check, the whole of it",
        "An option left out takes its default, not the value it had: give every option "
        "you want. A tcp check needs --port and takes none of the HTTP options.",
    )
    set_check.add_argument("name", metavar="APP", help=name_help)
    fields = {}
    for api_field, (flag, settings) in _CHECK_OPTIONS.items():
        dest = flag.removeprefix("--").replace("-", "_")
        set_check.add_argument(flag, dest=dest, **settings)
        fields[api_field] = dest
    _reason(set_check)
    set_check.set_defaults(
        endpoint=Endpoint(
            "PUT",
            "/v1/apps/{name}/check",
            body={**fields, "reason": "reason"},
        )
    )

    show = _command(check, "show", common, "show an app's check, every field")
    show.add_argument("name", metavar="APP", help=name_help)
    show.set_defaults(endpoint=Endpoint("GET", "/v1/apps/{name}/check"))

    delete = _command(
        check,
        "delete",
        common,
        "remove an app's check",
        "The addresses it left out of the app's answer are answered again; its groups "
        "are no longer switched by health.",
    )
    delete.add_argument("name", metavar="APP", help=name_help)
    _reason(delete)
    delete.set_defaults(
        endpoint=Endpoint("DELETE", "/v1/apps/{name}/check", query={"reason": "reason"})
    )


def _add_health_command(commands: Any, common: argparse.ArgumentParser) -> None:
    health = _command(
        commands,
        "health",
        common,
        "show health checks now",
        "The probes, each checked app's state and its addresses' (as each probe sees "
        "them), and what health decided for each auto group. A table, or JSON with --json.",
    )
    health.add_argument("--json", action="store_true", help="the whole of it, as JSON")
    health.set_defaults(endpoint=Endpoint("GET", "/v1/health"))


def _add_zones_command(commands: Any, common: argparse.ArgumentParser) -> None:
    zones = _command(
        commands,
        "zones",
        common,
        "list the zones served",
        "Output is JSON: each zone's SOA serial, its counts of groups and names, and "
        "group_ttl, the TTL a new group gets when it names none.",
    )
    zones.set_defaults(endpoint=Endpoint("GET", "/v1/zones", listed="zones"))


def _add_status_command(commands: Any, common: argparse.ArgumentParser) -> None:
    codes = ", ".join(f"{code} {status}" for status, code in STATUS_EXIT.items())
    status = _command(
        commands,
        "status",
        common,
        "print FAILOVER_STATUS=online|offline|none for an app",
        f"For shells and cron jobs that must run only where the app is live.\n\n"
        f"{FAILOVER_STATUS_WORDS}\n\n"
        f"exit status: {codes}, {STATUS_ERROR} error (the API unreachable, no such app, "
        "the token missing or not accepted; nothing is printed on stdout then).\n\n"
        "example (crontab):\n"
        "  */5 * * * * fodns status shop-eu >/dev/null && run-the-job",
    )
    status.add_argument("name", metavar="APP", help="the app's name")
    status.set_defaults(endpoint=Endpoint("GET", "/v1/apps/{name}/status"))


def _add_events_command(commands: Any, common: argparse.ArgumentParser) -> None:
    events = _command(
        commands,
        "events",
        common,
        "show the event log, newest first",
        "Every change is an event: its seq, when, who (the token's name), what, before "
        "and after, and the reason given. Output is JSON.",
    )
    events.add_argument("--group", metavar="LABEL", help="only the events of this group")
    events.add_argument("--app", metavar="NAME", help="only the events of this app")
    events.add_argument(
        "--limit",
        type=int,
        default=EVENTS_LIMIT,
        metavar="N",
        help=f"at most N events, 1 to {EVENTS_PAGE_MAX} (default: {EVENTS_LIMIT})",
    )
    events.add_argument(
        "--before",
        type=int,
        metavar="SEQ",
        help="only events older than seq SEQ: to page back, the last seq shown",
    )
    events.add_argument(
        "--after",
        type=int,
        metavar="SEQ",
        help="only events newer than seq SEQ: what happened since you read it",
    )
    events.set_defaults(
        endpoint=Endpoint(
            "GET",
            "/v1/events",
            query={f: f for f in ("group", "app", "limit", "before", "after")},
            listed="events",
        )
    )


def _add_route53_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    route53 = commands.add_parser(
        "route53",
        help="the Route53 mirror: plan, sync",
        description="The Route53 mirror ([route53] enabled = true) copies every zone's "
        "records to its Route53 hosted zone.",
        formatter_class=Formatter,
    ).add_subparsers(dest="action", required=True, title="commands", metavar="COMMAND")
    plan = _command(
        route53,
        "plan",
        common,
        "show what a sync would change in Route53",
        "Changes nothing. Per zone: + added, ~ changed, - removed.",
    )
    plan.add_argument("--json", action="store_true", help="the plan as JSON")
    plan.set_defaults(endpoint=Endpoint("GET", "/v1/route53/plan", listed="zones"))
    sync = _command(
        route53,
        "sync",
        common,
        "compare every record set now and fix Route53",
        "Record sets fodns did not write are never changed.",
    )
    sync.add_argument("--json", action="store_true", help="what was applied, as JSON")
    sync.set_defaults(endpoint=Endpoint("POST", "/v1/route53/sync", listed="zones"))


SCOPES_HELP = """\
scopes (each includes those above it):
  read    every GET but tokens and webhooks: groups, apps, events, health...
  switch  switch and unpin groups; report as a probe
  write   create, change and delete apps, groups and checks; Route53 sync
  admin   tokens and webhooks"""


def _add_token_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    token = commands.add_parser(
        "token",
        help="named tokens with scopes: create, list, show, revoke, whoami",
        description="A named token may do what its scope allows, optionally only to the "
        "groups and apps whose names match its patterns (shop-*); it is named in the event "
        "log for every change it makes. fodns keeps only a hash of its secret, shown once "
        "when it is made. Managing tokens needs the admin scope. Output is JSON."
        f"\n\n{SCOPES_HELP}",
        formatter_class=Formatter,
    ).add_subparsers(dest="action", required=True, title="commands", metavar="COMMAND")

    create = _command(
        token,
        "create",
        common,
        "make a named token and print its secret, the only time it is shown",
        "The secret is the `token` field of the output: give it to its user as "
        "FODNS_ADMIN_TOKEN, or as `Authorization: Bearer <token>`. Limits restrict what "
        "the token changes, not what it reads; an admin token cannot have them."
        f"\n\n{SCOPES_HELP}\n\n"
        "example (a deploy pipeline that may switch the shop groups only, for 30 days):\n"
        "  fodns token create deploy-shop --scope switch --groups 'shop-*' --expires 30d",
    )
    create.add_argument(
        "name",
        metavar="NAME",
        help="its name, named in the event log: lower-case letters, digits, '.', '_' or '-'; "
        "never reused, even after it is revoked",
    )
    create.add_argument(
        "--scope", required=True, choices=list(SCOPE_WORDS), help="what it may do (above)"
    )
    create.add_argument(
        "--groups",
        action="append",
        metavar="PATTERN",
        help="it may change only the groups whose label matches PATTERN (shell-style: * ? "
        "[...]); repeat it for several (default: any group)",
    )
    create.add_argument(
        "--apps",
        action="append",
        metavar="PATTERN",
        help="it may change only groups whose apps, and apps whose names, match PATTERN; "
        "repeat it for several (default: any app)",
    )
    create.add_argument(
        "--expires",
        type=expiry_seconds,
        metavar="DURATION",
        help="it stops working after DURATION: 30d, 12h, 90m or 3600s (default: never, "
        "until revoked)",
    )
    _reason(create)
    create.set_defaults(
        endpoint=Endpoint(
            "POST",
            "/v1/tokens",
            body={
                "name": "name",
                "scope": "scope",
                "groups": "groups",
                "apps": "apps",
                "expires_in": "expires",
                "reason": "reason",
            },
        )
    )

    listing = _command(
        token,
        "list",
        common,
        "list the named tokens, never their secrets",
        "Each with its scope, limits, expiry, state (active, expired or revoked), who made "
        "it and when.",
    )
    listing.add_argument(
        "--revoked",
        action="store_const",
        const="true",
        help="list the revoked tokens too",
    )
    listing.set_defaults(
        endpoint=Endpoint("GET", "/v1/tokens", query={"revoked": "revoked"}, listed="tokens")
    )

    show = _command(token, "show", common, "show a named token, never its secret")
    show.add_argument("name", metavar="NAME", help="the token's name")
    show.set_defaults(endpoint=Endpoint("GET", "/v1/tokens/{name}"))

    revoke = _command(
        token,
        "revoke",
        common,
        "revoke a named token: it stops working at once",
        "Every request with it is refused (401) from before this command returns. Its name "
        "stays taken.",
    )
    revoke.add_argument("name", metavar="NAME", help="the token's name")
    _reason(revoke)
    revoke.set_defaults(
        endpoint=Endpoint("DELETE", "/v1/tokens/{name}", query={"reason": "reason"})
    )

    whoami = _command(
        token,
        "whoami",
        common,
        "show what the token in use may do",
        "Its name, scope, limits and expiry (bootstrap: true for the admin token of the "
        "config, FODNS_ADMIN_TOKEN or the admin-token file). Any valid token may ask.",
    )
    whoami.set_defaults(endpoint=Endpoint("GET", "/v1/token"))


# A webhook's fields: API field -> argparse dest.
WEBHOOK_FIELDS = {
    f: f for f in ("url", "events", "groups", "apps", "secret", "active", "description")
}


def _webhook_options(parser: argparse.ArgumentParser, change: bool) -> None:
    """The options of `webhook create` and `webhook update` (`change`: each can also be
    set back to every kind, no filter, no description)."""
    kinds = list(webhookmodel.KINDS)
    filters = [
        ("events", "KIND", "a kind of event to send: repeat it for several"),
        ("groups", "PATTERN", "send only the events of groups whose label matches"),
        ("apps", "PATTERN", "send only the events of apps whose name matches"),
    ]
    for dest, metavar, text in filters:
        target = parser.add_mutually_exclusive_group() if change else parser
        extra: dict[str, Any] = {"choices": kinds} if dest == "events" else {}
        target.add_argument(
            f"--{dest}",
            dest=dest,
            action="append",
            metavar=metavar,
            help=f"{text} ({', '.join(kinds)})"
            if dest == "events"
            else f"{text} (shell-style, e.g. 'shop-*'; repeatable)",
            **extra,
        )
        if change:
            target.add_argument(
                f"--all-{dest}",
                dest=dest,
                action="store_const",
                const=NULL,
                help="every kind of event" if dest == "events" else f"no filter on {dest}",
            )
    parser.add_argument(
        "--secret",
        metavar="SECRET",
        help=f"the signing secret, {webhookmodel.SECRET_MIN}-{webhookmodel.SECRET_MAX} "
        "printable characters"
        + ("" if change else " (default: fodns makes one, shown once in the output)"),
    )
    parser.add_argument("--description", metavar="TEXT", help="what it is for, for people")
    parser.add_argument(
        "--active",
        action=argparse.BooleanOptionalAction,
        help="--no-active pauses it (its events wait); --active resumes it, a failed "
        "webhook at the event it gave up on" + ("" if change else " (default: active)"),
    )


def _add_webhook_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    webhook = commands.add_parser(
        "webhook",
        help="webhooks: create, list, show, update, delete, deliveries, test",
        description="A webhook gets each change fodns records (switches, health, groups "
        "and apps, the Route53 mirror, tokens and webhooks) as a signed JSON POST, in "
        "order, at least once, retried for up to a day. Output is JSON.",
        formatter_class=Formatter,
    ).add_subparsers(dest="action", required=True, title="commands", metavar="COMMAND")
    id_help = "the webhook's id, e.g. wh_4f1c2a9e0b7d3e15"

    create = _command(
        webhook,
        "create",
        common,
        "create a webhook",
        "It gets every change made after it is created (none before). The output shows "
        "its secret, this once: keep it where the receiver checks signatures.",
    )
    create.add_argument("url", metavar="URL", help="where to POST: an http:// or https:// URL")
    _webhook_options(create, change=False)
    create.set_defaults(endpoint=Endpoint("POST", "/v1/webhooks", body=WEBHOOK_FIELDS))

    listing = _command(webhook, "list", common, "list webhooks, with their state")
    listing.set_defaults(endpoint=Endpoint("GET", "/v1/webhooks", listed="webhooks"))

    show = _command(webhook, "show", common, "show a webhook (never its secret)")
    show.add_argument("id", metavar="ID", help=id_help)
    show.set_defaults(endpoint=Endpoint("GET", "/v1/webhooks/{id}"))

    update = _command(
        webhook,
        "update",
        common,
        "change a webhook, pause or resume it",
        "What is not given stays as it is. A failed webhook (it gave up on an event after "
        "retrying for [webhooks] give_up_after) resumes with --active at that very event.",
    )
    update.add_argument("id", metavar="ID", help=id_help)
    update.add_argument("--url", metavar="URL", help="a new URL to POST to")
    _webhook_options(update, change=True)
    update.set_defaults(endpoint=Endpoint("PATCH", "/v1/webhooks/{id}", body=WEBHOOK_FIELDS))

    delete = _command(webhook, "delete", common, "delete a webhook and its recent attempts")
    delete.add_argument("id", metavar="ID", help=id_help)
    delete.set_defaults(endpoint=Endpoint("DELETE", "/v1/webhooks/{id}"))

    deliveries = _command(
        webhook,
        "deliveries",
        common,
        "show a webhook's recent attempts, newest first",
        "Each attempt's event seq, kind, attempt number, time, HTTP status, error, latency "
        "and result: delivered, retrying, failed or test.",
    )
    deliveries.add_argument("id", metavar="ID", help=id_help)
    deliveries.set_defaults(
        endpoint=Endpoint("GET", "/v1/webhooks/{id}/deliveries", listed="deliveries")
    )

    test = _command(
        webhook,
        "test",
        common,
        "send a webhook a test event now",
        "Signed like every delivery, kind test, seq null; whatever the webhook's state. "
        "Prints the attempt: error null when the receiver answered 2xx.",
    )
    test.add_argument("id", metavar="ID", help=id_help)
    test.set_defaults(endpoint=Endpoint("POST", "/v1/webhooks/{id}/test"))


def _add_acme_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    acme = commands.add_parser(
        "acme",
        help="certificates on both sides by ACME DNS-01: register, list, show, delete",
        description="fodns answers ACME DNS-01 challenges through its acme-dns API ([acme] "
        "listen): the customer adds one _acme-challenge CNAME per name, once, and the "
        "primary and the backup side each obtain and renew their own certificate with an "
        "acme-dns client (lego, cert-manager, Caddy, certbot hooks), whichever side is "
        "live. Registrations made here are tied to a failover group.",
        formatter_class=Formatter,
    ).add_subparsers(dest="action", required=True, title="commands", metavar="COMMAND")
    subdomain_help = "the registration's subdomain (a UUID), as fodns acme list shows it"

    register = _command(
        acme,
        "register",
        common,
        "register a group's names for ACME DNS-01",
        "Prints the acme-dns credentials on stdout as lego's acme-dns storage file holds "
        "them (ACME_DNS_STORAGE_PATH; the same file on the primary and on the backup), and "
        "on stderr the CNAME record(s) the customer adds, once. The password is shown only "
        "this once: fodns keeps only its hash.\n\n"
        "example:\n"
        "  fodns acme register --group shop --name www.shop.com > acme-dns.json",
    )
    register.add_argument("--group", required=True, metavar="LABEL", help="the group's label")
    register.add_argument(
        "--name",
        dest="names",
        action="append",
        required=True,
        metavar="NAME",
        help="a name the certificates are for (www.shop.com, *.shop.com); repeat it for several",
    )
    register.add_argument(
        "--allowfrom",
        action="append",
        metavar="CIDR",
        help="a network updates may come from (192.0.2.0/24; an address alone is one "
        "host); repeat it for several (default: anywhere)",
    )
    _reason(register)
    register.add_argument(
        "--json",
        action="store_true",
        help="print the API's reply as it is (credentials, cnames) instead",
    )
    register.set_defaults(
        endpoint=Endpoint(
            "POST",
            "/v1/acme/registrations",
            body={"group": "group", "names": "names", "allowfrom": "allowfrom", "reason": "reason"},
        )
    )

    listing = _command(
        acme,
        "list",
        common,
        "list ACME registrations, never their passwords",
        "Each with its group, names, the CNAMEs the customer adds and when a TXT value "
        "was last set.",
    )
    listing.add_argument("--group", metavar="LABEL", help="only the registrations of this group")
    listing.set_defaults(
        endpoint=Endpoint(
            "GET", "/v1/acme/registrations", query={"group": "group"}, listed="registrations"
        )
    )

    show = _command(
        acme,
        "show",
        common,
        "show a registration and check the customer's CNAMEs",
        "cname_check says, for each record the customer adds, what it points at now as "
        "[acme] resolver (or the system's) sees it: ok, wrong, missing or unknown. Never "
        "required: a registration works as soon as its CNAME is in place.",
    )
    show.add_argument("subdomain", metavar="SUBDOMAIN", help=subdomain_help)
    show.set_defaults(endpoint=Endpoint("GET", "/v1/acme/registrations/{subdomain}"))

    delete = _command(
        acme,
        "delete",
        common,
        "delete a registration",
        "Its credentials stop working at once and its TXT records are removed; the "
        "customer's CNAME then points at nothing.",
    )
    delete.add_argument("subdomain", metavar="SUBDOMAIN", help=subdomain_help)
    _reason(delete)
    delete.set_defaults(
        endpoint=Endpoint(
            "DELETE", "/v1/acme/registrations/{subdomain}", query={"reason": "reason"}
        )
    )
