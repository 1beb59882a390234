"""The command-line client of the admin API: runs `fodns group|app|check|token|webhook|acme ...`.

It speaks the same HTTP API as curl would (stdlib urllib, no extra dependency),
reading the API address and token from flags or FODNS_API / FODNS_ADMIN_TOKEN.
Each command's request is built from its Endpoint (fodns/commands.py). Output
is JSON for machines, except `fodns status APP`, which prints the shell-friendly
`FAILOVER_STATUS=online` and exits 0 online, 1 offline, 2 none, 3 on an error, and
the tables of `fodns route53 plan|sync` and `fodns health` (JSON with --json), and
`fodns acme register`, whose stdout is lego's acme-dns storage file and whose stderr
names the CNAMEs the customer adds (the API's reply with --json).
Errors are one `fodns: error: ...` line (plus hints) on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fodns.commands import DEFAULT_API, NULL, PAGE_ALL, STATUS_ERROR, STATUS_EXIT, Endpoint
from fodns.errors import FodnsError
from fodns.tokens import B64TOKEN

FAILED = 1
PATH_PARAMETER = re.compile(r"\{(\w+)\}")
TOKEN_HINTS = """\
  fodns serve generates a token on first start, unless one is configured, and keeps it
  in admin-token beside its database: var/admin-token with `make run`,
  /var/lib/fodns/admin-token under systemd (readable by root only). For example:
    export FODNS_ADMIN_TOKEN="$(cat var/admin-token)"
  A configured token is in [api] token of its config, in the file of the systemd
  credential admin-token (LoadCredential=admin-token:/etc/fodns/admin-token), or in
  FODNS_ADMIN_TOKEN where fodns serve runs. A named token (fodns token create) is
  given the same way."""
SECRET_ONCE = 'the token\'s secret ("token") is shown only this once: fodns keeps only its hash'
PASSWORD_ONCE = "the password is shown only this once: fodns keeps only its hash"
ADDRESS_HINT = "(is `fodns serve` running? FODNS_API / --api choose the address)"
NOT_THE_API_HINT = "(is that the fodns admin API? FODNS_API / --api choose the address)"


class ClientError(FodnsError):
    """Why a command failed, as the operator should read it (already worded)."""


class Connection:
    """Where the admin API is and the token to show it; `token_source` says where the
    token came from, for the message when it is not accepted."""

    def __init__(self, args: argparse.Namespace) -> None:
        given = args.api or os.environ.get("FODNS_API") or DEFAULT_API
        self.api = given.rstrip("/")
        self.timeout: float = args.timeout
        if not _is_http_url(self.api):
            raise ClientError(
                f"the admin API's address must be an http:// URL like {DEFAULT_API}, "
                f"not {given!r} (FODNS_API / --api)"
            )
        # A FODNS_ADMIN_TOKEN set but empty (as shells often leave it) is no token.
        if args.token:
            self.token, self.token_source = args.token, "--token"
        else:
            self.token = os.environ.get("FODNS_ADMIN_TOKEN", "")
            self.token_source = "FODNS_ADMIN_TOKEN"
        if not self.token:
            raise ClientError(
                "no admin token: set FODNS_ADMIN_TOKEN or pass --token\n" + TOKEN_HINTS
            )
        if not B64TOKEN.fullmatch(self.token):
            # It could never be accepted, and a newline in it would be refused by
            # http.client as a header injection: say so instead (never showing it).
            raise ClientError(
                f"the admin token from {self.token_source} is not a token: it may only hold "
                "letters, digits and -._~+/ (RFC 6750), with = at the end\n" + TOKEN_HINTS
            )

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One API call: (HTTP status, decoded JSON reply or None), or ClientError."""
        request = urllib.request.Request(
            self.api + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, self._decode(response.read(), response.status)
        except urllib.error.HTTPError as error:
            raise self._refused(error.code, error.reason, _read_error_body(error)) from None
        except urllib.error.URLError as error:
            raise self._unreachable(error.reason) from None
        except (OSError, http.client.HTTPException) as error:
            # A timeout or a reset while reading; a server that does not speak HTTP.
            raise self._unreachable(error) from None

    def _unreachable(self, reason: object) -> ClientError:
        if isinstance(reason, http.client.HTTPException):
            reason = f"the answer is not HTTP ({type(reason).__name__})"
        elif isinstance(reason, OSError) and reason.strerror:
            reason = reason.strerror
        elif isinstance(reason, TimeoutError):
            reason = f"no answer in {self.timeout:g} s (--timeout)"
        return ClientError(f"cannot reach the admin API at {self.api}: {reason} {ADDRESS_HINT}")

    def _decode(self, raw: bytes, status: int) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ClientError(
                f"the answer from {self.api} ({status}) is not JSON {NOT_THE_API_HINT}"
            ) from None

    def _refused(self, status: int, reason: str, raw: bytes) -> ClientError:
        """The API's error reply, worded: `field: message (status)`."""
        if status == 401:
            # The API says when a known token expired or was revoked ("the token 'x' ...").
            said = _error_message(raw) or ""
            why = f" ({said})" if said.startswith("the token ") else ""
            return ClientError(
                f"the token from {self.token_source} was not accepted by the admin API "
                f"at {self.api} (401){why}: give a valid one with FODNS_ADMIN_TOKEN or "
                "--token\n" + TOKEN_HINTS
            )
        try:
            error = json.loads(raw)["error"]
            message, field = str(error["message"]), error.get("field")
        except (ValueError, TypeError, KeyError, AttributeError):
            # Not fodns's JSON error: a proxy in between, or another server.
            return ClientError(f"{self.api} answered {status} {reason} {NOT_THE_API_HINT}")
        if field and not message.startswith(f"{field}: "):
            message = f"{field}: {message}"
        return ClientError(f"{message} ({status})")


def _error_message(raw: bytes) -> str | None:
    """The message of fodns's JSON error, or None for another body."""
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, TypeError, KeyError):
        return None


def _is_http_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # "http://[::1", a port above 65535
        return False


def _read_error_body(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read()
    except (OSError, http.client.HTTPException):
        return b""  # the reason is then said from the status line alone


def request_of(endpoint: Endpoint, args: argparse.Namespace) -> tuple[str, Any]:
    """The path (with its query) and the JSON body `args` ask the endpoint for."""
    path = PATH_PARAMETER.sub(
        lambda match: urllib.parse.quote(getattr(args, match[1]), safe=""), endpoint.path
    )
    query = {field: getattr(args, dest) for field, dest in endpoint.query.items()}
    given = {field: value for field, value in query.items() if value is not None}
    if given:
        path += "?" + urllib.parse.urlencode(given)
    if endpoint.body is None:
        return path, None
    body = {}
    for field, dest in endpoint.body.items():
        value = getattr(args, dest)
        if value is not None:
            body[field] = None if value is NULL else value
    return path, body


def run_client(args: argparse.Namespace) -> int:
    """Run a client command: its output on stdout, errors on stderr; the exit status."""
    endpoint: Endpoint = args.endpoint
    is_status = args.command == "status"
    try:
        connection = Connection(args)
        status, reply = _call(connection, endpoint, args)
        output, warning = _output(args, endpoint, status, reply, connection.api)
    except ClientError as error:
        print(f"fodns: error: {error}", file=sys.stderr)
        return STATUS_ERROR if is_status else FAILED
    if args.command == "acme" and args.action == "register" and not args.json:
        # What the operator passes on to the customer: not stdout, which is the file.
        print(cname_lines(reply["cnames"]), file=sys.stderr)
    if warning is not None:
        print(f"fodns: warning: {warning}", file=sys.stderr)
    if isinstance(reply, dict) and isinstance(reply.get("next"), str):
        print(f"fodns: next page: --cursor {reply['next']}", file=sys.stderr)
    try:
        if output is not None:
            print(output)
        sys.stdout.flush()
    except BrokenPipeError:
        # `fodns app list | head`: the reader had what it wanted. Point stdout at
        # /dev/null so that the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return STATUS_EXIT[reply["failover_status"]] if is_status else 0


def _call(connection: Connection, endpoint: Endpoint, args: argparse.Namespace) -> tuple[int, Any]:
    """The command's API call; with --all, every page of the list (following each
    page's `next`), joined into one reply."""
    if not getattr(args, "all", False) or endpoint.listed is None:
        return connection.call(endpoint.method, *request_of(endpoint, args))
    paging = argparse.Namespace(**{**vars(args), "limit": args.limit or PAGE_ALL})
    listed: list[Any] = []
    while True:
        status, reply = connection.call(endpoint.method, *request_of(endpoint, paging))
        try:
            listed += reply[endpoint.listed]
            cursor = reply["next"]
        except (KeyError, TypeError):
            raise ClientError(
                f"unexpected answer from {connection.api} {NOT_THE_API_HINT}"
            ) from None
        if cursor is None:
            return status, {endpoint.listed: listed}
        paging.cursor = cursor


def _output(
    args: argparse.Namespace, endpoint: Endpoint, status: int, reply: Any, api: str
) -> tuple[str | None, str | None]:
    """What a command prints for the API's `reply`: (stdout or None, a warning or None)."""
    try:
        # 202: durable, but not every DNS worker served it in time (api.change_response).
        # It happened, so the result is printed and the exit status is 0.
        warning = str(reply["message"]) if status == 202 else None
        if args.command == "token" and args.action == "create":
            warning = SECRET_ONCE
        if args.command == "acme" and args.action == "register":
            shown = reply if args.json else lego_storage(reply)
            cname_lines(reply["cnames"])  # raises here, not later, for a reply not fodns's
            return json.dumps(shown, indent=2), PASSWORD_ONCE
        if args.command == "status":
            if reply["failover_status"] not in STATUS_EXIT:
                raise KeyError(reply["failover_status"])
            return f"FAILOVER_STATUS={reply['failover_status']}", None
        if args.command == "route53" and not args.json:
            return describe_plans(reply["zones"], applied=args.action == "sync"), warning
        if args.command == "health" and not args.json:
            return describe_health(reply), warning
        if endpoint.listed is not None:
            return json.dumps(reply[endpoint.listed], indent=2), warning
    except (KeyError, TypeError, AttributeError):
        # JSON, but not the shape the fodns API answers with: another server at that address.
        raise ClientError(f"unexpected answer from {api} {NOT_THE_API_HINT}") from None
    return (None if reply is None else json.dumps(reply, indent=2)), warning


def lego_storage(registration: dict[str, Any]) -> dict[str, Any]:
    """A registration's credentials as lego's acme-dns provider keeps them in its storage
    file (ACME_DNS_STORAGE_PATH): one entry per name lego asks for, a wildcard's under
    the name below its `*.`, all with the one account."""
    account = {
        key: registration[key] for key in ("fulldomain", "subdomain", "username", "password")
    }
    domains = dict.fromkeys(name.removeprefix("*.") for name in registration["names"])
    return {domain: account for domain in domains}


def cname_lines(cnames: list[dict[str, str]]) -> str:
    """The records the customer adds, as zone-file lines under a line that says so."""
    records = "".join(f"\n{record['name']}. CNAME {record['target']}." for record in cnames)
    return f"fodns: the customer adds, once, in the zone of each name:{records}"


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


def describe_health(health: dict[str, Any]) -> str:
    """/v1/health as a person reads it: the probes, each checked app with each address
    as each probe sees it, and each auto group's decision."""

    def table(rows: list[list[str]]) -> list[str]:
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        return [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]

    def seen(views: dict[str, Any]) -> str:
        return ", ".join(f"{probe} {view['state']}" for probe, view in views.items())

    lines = [f"checking since {health['started_at']}"]
    probes = [
        f"{probe['name']} ({'live' if probe['live'] else 'silent'}"
        + (f", last report {probe['last_report_at']}" if probe["last_report_at"] else "")
        + ")"
        for probe in health["probes"]
    ]
    lines.append(f"probes: {', '.join(probes)}")
    rows = [["APP", "STATE", "SINCE", "ADDRESS", "PROBES"]]
    for app in health["apps"]:
        first = [app["app"], app["state"], app["since"] or "-"]
        addresses = app["addresses"] or [{"address": "-", "probes": {}}]
        for number, address in enumerate(addresses):
            left_out = " (left out)" if address["address"] in app["down"] else ""
            rows.append(
                [
                    *(first if number == 0 else ["", "", ""]),
                    address["address"] + left_out,
                    seen(address["probes"]) or "-",
                ]
            )
    lines += ["", *(table(rows) if len(rows) > 1 else ["no app has a check"])]
    rows = [["GROUP", "ACTIVE", "FAILOVER", "FAILBACK", "STATE", "REASON"]]
    for group in health["groups"]:
        state = group["state"]
        if group["held_until"]:
            state += f" until {group['held_until']}"
        rows.append(
            [
                group["fqdn"],
                group["active"],
                group["failover"],
                group["failback"],
                state,
                group["reason"] or "",
            ]
        )
    lines += ["", *(table(rows) if len(rows) > 1 else ["no group fails over automatically"])]
    return "\n".join(lines)
