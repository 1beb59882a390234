"""The `fodns` client commands against a real served: what an operator types in a shell."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import dns.message
import dns.rcode
import pytest

from fodns.cli import build_parser
from fodns.openapi import openapi_document
from tests.support import FodnsProcess, api_request, expect_status

TOKEN = "cli-test-token-2f9b"
TOKEN_HINTS = ("FODNS_ADMIN_TOKEN", "--token", "var/admin-token", "/var/lib/fodns/admin-token")


@pytest.fixture
def served(fodns_factory: Callable[..., FodnsProcess]) -> FodnsProcess:
    """fodns serving the example zone, stopped (and checked to stop cleanly) afterwards."""
    return fodns_factory(TOKEN)


def run_fodns(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fodns", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def fodns(served: FodnsProcess, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    return run_fodns(
        *args,
        env={"FODNS_API": f"http://127.0.0.1:{served.api_port}", "FODNS_ADMIN_TOKEN": token},
    )


def ok(served: FodnsProcess, *args: str) -> Any:
    """Run a command that must succeed; its JSON output (None when it printed nothing)."""
    done = fodns(served, *args)
    assert done.returncode == 0, f"fodns {' '.join(args)}: {done.stderr}"
    assert done.stderr == "", done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def refused(done: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The error of a command that failed as it should: one message, no traceback."""
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith("fodns: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# ---- an operator's day ---------------------------------------------------------------------


def test_an_operator_session(served: FodnsProcess) -> None:
    ok(served, "app", "create", "eu", "--web-server", "192.0.2.10")
    ok(served, "app", "create", "us", "--load-balancer", "lb.us.example.com")
    created = ok(served, "group", "create", "--primary", "eu", "--backup", "us", "--label", "shop")
    assert created["fqdn"] == "shop.fo.example.net"

    assert fodns(served, "status", "eu").stdout.strip() == "FAILOVER_STATUS=online"
    assert fodns(served, "status", "us").stdout.strip() == "FAILOVER_STATUS=offline"
    switched = ok(served, "group", "switch", "shop", "backup", "--reason", "drill")
    assert switched["active"] == "backup"
    reply = served.udp(dns.message.make_query("shop.fo.example.net", "CNAME"))
    assert reply.answer[0][0].target.to_text() == "lb.us.example.com."
    assert fodns(served, "status", "us").stdout.strip() == "FAILOVER_STATUS=online"

    events = ok(served, "events", "--group", "shop")
    assert events[0]["action"] == "group_switched" and events[0]["reason"] == "drill"
    listed = ok(served, "group", "list")
    assert [g["label"] for g in listed] == ["shop"]


def test_clearing_both_sides_lets_a_group_be_deleted(served: FodnsProcess) -> None:
    ok(served, "app", "create", "shop-eu", "--web-server", "192.0.2.10")
    ok(served, "app", "create", "shop-us", "--web-server", "198.51.100.7")
    ok(served, "group", "create", "--label", "shop", "--primary", "shop-eu", "--backup", "shop-us")

    message = refused(fodns(served, "group", "delete", "shop"))
    assert "primary shop-eu, backup shop-us" in message and "(409)" in message

    # A side and its clearing together make no sense: argparse says so (usage, exit 2).
    both = fodns(served, "group", "update", "shop", "--backup", "shop-eu", "--no-backup")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr

    group = ok(served, "group", "update", "shop", "--no-backup", "--reason", "us retired")
    assert (group["primary"], group["backup"]) == ("shop-eu", None)
    message = refused(fodns(served, "group", "delete", "shop"))
    assert "primary shop-eu" in message and "None" not in message and "backup" not in message

    group = ok(served, "group", "update", "shop", "--no-primary", "--zone", "fo.example.net")
    assert (group["primary"], group["backup"]) == (None, None)
    assert ok(served, "group", "delete", "shop", "--reason", "shop closed") is None
    assert refused(fodns(served, "group", "show", "shop")).endswith("(404)\n")
    reply = served.udp(dns.message.make_query("shop.fo.example.net", "A"))
    assert reply.rcode() == dns.rcode.NXDOMAIN

    events = ok(served, "events", "--group", "shop", "--limit", "3")
    assert [(e["action"], e["reason"]) for e in events] == [
        ("group_deleted", "shop closed"),
        ("group_updated", None),
        ("group_updated", "us retired"),
    ]
    # The apps are free now; an app's delete records its reason too.
    assert ok(served, "app", "delete", "shop-us", "--reason", "moved to eu") is None
    assert ok(served, "events", "--app", "shop-us", "--limit", "1")[0]["reason"] == "moved to eu"


def test_an_app_web_head_is_set_cleared_and_renamed(served: FodnsProcess) -> None:
    app = ok(
        served,
        "app",
        "create",
        "eu",
        "--web-server",
        "192.0.2.10",
        "--web-server",
        "192.0.2.11",
        "--load-balancer",
        "lb.eu.example.com",
        "--reason",
        "new stack",
    )
    assert app["web_servers"] == ["192.0.2.10", "192.0.2.11"]
    ok(served, "group", "create", "--label", "shop", "--primary", "eu")
    reply = served.udp(dns.message.make_query("shop.fo.example.net", "A"))
    assert reply.answer[0][0].target.to_text() == "lb.eu.example.com."

    app = ok(served, "app", "update", "eu", "--no-load-balancer", "--reason", "lb gone")
    assert (app["load_balancer"], app["web_servers"]) == ([], ["192.0.2.10", "192.0.2.11"])
    reply = served.udp(dns.message.make_query("shop.fo.example.net", "A"))
    assert {r.to_text() for r in reply.answer[0]} == {"192.0.2.10", "192.0.2.11"}

    app = ok(served, "app", "update", "eu", "--no-web-servers", "--rename", "eu-old")
    assert (app["name"], app["web_servers"]) == ("eu-old", [])
    assert ok(served, "group", "show", "shop")["primary"] == "eu-old"
    assert ok(served, "events", "--app", "eu-old", "--limit", "2")[1]["reason"] == "lb gone"
    both = fodns(
        served, "app", "update", "eu-old", "--web-server", "192.0.2.12", "--no-web-servers"
    )
    assert both.returncode == 2


def test_zones_and_events_paging(served: FodnsProcess) -> None:
    zones = ok(served, "zones")
    assert [(z["name"], z["group_ttl"]) for z in zones] == [("fo.example.net", 30)]
    for label in ("a", "b", "c", "d"):
        ok(served, "group", "create", "--label", label, "--ttl", "60")
    newest = ok(served, "events", "--limit", "4")
    seqs = [event["seq"] for event in newest]
    assert [event["group"] for event in newest] == ["d", "c", "b", "a"]
    older = ok(served, "events", "--before", str(seqs[1]), "--limit", "2")
    assert [event["seq"] for event in older] == seqs[2:4]
    missed = ok(served, "events", "--after", str(seqs[2]))
    assert [event["seq"] for event in missed] == seqs[0:2]
    assert ok(served, "group", "list", "--zone", "fo.example.net")[0]["ttl"] == 60
    assert ok(served, "zones")[0]["groups"] == 4


def test_a_long_list_piped_into_head_ends_quietly(served: FodnsProcess) -> None:
    """`fodns app list | head`: head stops reading long before the end (far more than
    a pipe holds), and fodns stops without a word, not with a traceback."""
    addresses = [f"2001:db8::{number:x}" for number in range(1, 33)]
    for number in range(200):
        body = {"name": f"app-{number}", "web_servers": addresses}
        assert api_request(served, "POST", "/v1/apps", body, TOKEN)[0] == 201
    assert len(fodns(served, "app", "list").stdout) > 150_000
    piped = subprocess.run(
        ["sh", "-c", f"{sys.executable} -m fodns app list | head -c 10"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"FODNS_API": f"http://127.0.0.1:{served.api_port}", "FODNS_ADMIN_TOKEN": TOKEN},
    )
    assert (piped.stdout, piped.stderr) == ("[\n  {\n    ", "")


# ---- fodns status: exit codes for shells and cron -----------------------------------------


def test_status_exit_codes_say_online_offline_none_or_error(
    served: FodnsProcess, closed_port: int
) -> None:
    ok(served, "app", "create", "eu", "--web-server", "192.0.2.10")
    ok(served, "app", "create", "us", "--web-server", "198.51.100.7")
    ok(served, "app", "create", "spare", "--web-server", "203.0.113.9")
    ok(served, "group", "create", "--label", "shop", "--primary", "eu", "--backup", "us")

    for app, status, code in [("eu", "online", 0), ("us", "offline", 1), ("spare", "none", 2)]:
        done = fodns(served, "status", app)
        assert (done.returncode, done.stdout, done.stderr) == (
            code,
            f"FAILOVER_STATUS={status}\n",
            "",
        )

    # Errors are 3, never a status a job could take for "run": nothing on stdout.
    unknown = fodns(served, "status", "nope")
    assert "no app named 'nope'" in refused(unknown, 3) and unknown.stdout == ""
    unreachable = run_fodns(
        "status",
        "eu",
        env={"FODNS_API": f"http://127.0.0.1:{closed_port}", "FODNS_ADMIN_TOKEN": TOKEN},
    )
    assert "cannot reach the admin API" in refused(unreachable, 3) and unreachable.stdout == ""
    assert "not accepted" in refused(fodns(served, "status", "eu", token="wrong-token-xyz"), 3)
    assert refused(run_fodns("status", "eu", env={}), 3)
    usage = fodns(served, "status")  # no APP: a usage error, which for status is an error too
    assert usage.returncode == 3 and "usage:" in usage.stderr

    # The shell idiom the README gives for cron: the job runs only where the app is live.
    script = "fodns status eu >/dev/null && echo ran-eu; fodns status us >/dev/null && echo ran-us"
    shell = subprocess.run(
        ["sh", "-c", script.replace("fodns", f"{sys.executable} -m fodns")],
        capture_output=True,
        text=True,
        timeout=30,
        env={"FODNS_API": f"http://127.0.0.1:{served.api_port}", "FODNS_ADMIN_TOKEN": TOKEN},
    )
    assert shell.stdout == "ran-eu\n"


# ---- errors: what went wrong and where to look ---------------------------------------------


def test_a_missing_token_is_said_before_calling_with_where_to_find_one(
    served: FodnsProcess,
) -> None:
    done = run_fodns("group", "list", env={"FODNS_API": f"http://127.0.0.1:{served.api_port}"})
    message = refused(done)
    assert message.startswith("fodns: error: no admin token")
    for hint in TOKEN_HINTS:
        assert hint in message, hint
    assert "credential admin-token" in message
    _, metrics = served.http_get("/metrics")
    assert 'route="/v1/groups"' not in metrics, "nothing was sent"
    # An empty FODNS_ADMIN_TOKEN (a shell left it empty) is no token either.
    assert refused(fodns(served, "group", "list", token="")).startswith(
        "fodns: error: no admin token"
    )


def test_a_wrong_token_is_said_to_be_not_accepted_with_the_same_hints(
    served: FodnsProcess,
) -> None:
    message = refused(fodns(served, "group", "list", token="wrong-token-xyz"))
    assert "not accepted" in message and "(401)" in message
    assert "FODNS_ADMIN_TOKEN" in message.splitlines()[0]  # where the wrong one came from
    for hint in TOKEN_HINTS:
        assert hint in message, hint
    given = fodns(served, "group", "list", "--token", "wrong-token-xyz")
    assert "--token" in refused(given).splitlines()[0]
    assert "wrong-token-xyz" not in message, "a token is never printed"
    # One that cannot be a token at all (a newline would be a header injection).
    malformed = refused(fodns(served, "group", "list", token="wrong token\nX-Evil: 1"))
    assert "is not a token" in malformed and "X-Evil" not in malformed


def test_an_unreachable_api_says_so_and_how_to_choose_the_address(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    done = run_fodns("app", "list", env={"FODNS_API": url, "FODNS_ADMIN_TOKEN": TOKEN})
    message = refused(done)
    assert message.startswith(f"fodns: error: cannot reach the admin API at {url}: ")
    assert "refused" in message.lower()
    assert "fodns serve" in message and "FODNS_API" in message and "--api" in message
    assert "HTTP 0" not in message
    not_a_url = run_fodns(
        "app", "list", "--api", "127.0.0.1:8053", env={"FODNS_ADMIN_TOKEN": TOKEN}
    )
    assert "http://" in refused(not_a_url)


def test_api_errors_name_their_field(served: FodnsProcess) -> None:
    message = refused(fodns(served, "app", "create", "typo", "--web-server", "192.0.2.300"))
    assert message == (
        "fodns: error: web_servers: '192.0.2.300' is not a valid IP address"
        " (nor a hostname) (400)\n"
    )
    assert fodns(served, "app", "show", "typo").returncode == 1  # nothing was created
    message = refused(fodns(served, "group", "create", "--label", "www"))
    assert message.startswith("fodns: error: label: www.fo.example.net is a name in the zone file")
    assert message.endswith("(409)\n")
    message = refused(fodns(served, "group", "create", "--ttl", "3"))
    assert message.startswith("fodns: error: ttl: ") and "(400)" in message
    message = refused(fodns(served, "route53", "plan"))
    assert message.endswith("the Route53 mirror is not enabled ([route53] enabled = true) (404)\n")


def test_a_change_durable_but_not_yet_served_prints_it_and_warns(
    fodns_factory: Callable[..., FodnsProcess],
) -> None:
    running = fodns_factory(TOKEN, workers=2)
    ok(running, "app", "create", "eu", "--web-server", "192.0.2.10")
    ok(running, "app", "create", "us", "--web-server", "198.51.100.7")
    ok(running, "group", "create", "--label", "shop", "--primary", "eu", "--backup", "us")
    health = expect_status("GET", "/healthz", *api_request(running, "GET", "/healthz"), 200)
    stalled = health["dns_workers"][1]["pid"]
    os.kill(stalled, signal.SIGSTOP)  # our own child: alive, but it serves nothing new
    try:
        done = fodns(running, "group", "switch", "shop", "backup")
    finally:
        os.kill(stalled, signal.SIGCONT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["active"] == "backup"
    assert done.stderr.startswith("fodns: warning: the change is committed and durable")


# ---- every API field has a CLI spelling ----------------------------------------------------


def leaf_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command of the tree, ("group", "create") and so on, with its parser."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
    for action in subcommands:
        for name, child in action.choices.items():
            yield from leaf_parsers(child, (*path, name))


# Commands that run for a long time rather than make one API call: fodns itself, and a
# remote probe, which makes the operations it is named with (and no person does).
PROGRAMS: dict[tuple[str, ...], set[tuple[str, str]]] = {
    ("serve",): set(),
    ("probe",): {("POST", "/v1/probes/{name}/reports")},
}


def test_every_api_field_has_a_cli_spelling() -> None:
    """Each operation of the OpenAPI document is a command, and each of its path
    parameters, query parameters and request body fields fills from one of that
    command's arguments: a new API field without a CLI spelling fails here. (A probe's
    report is made by `fodns probe`, a program, not typed by a person.)"""
    document = openapi_document()
    schemas = document["components"]["schemas"]
    commands: dict[tuple[str, str], tuple[tuple[str, ...], argparse.ArgumentParser, Any]] = {}
    for path, parser in leaf_parsers(build_parser()):
        endpoint = parser.get_default("endpoint")
        if path not in PROGRAMS:
            assert endpoint is not None, f"fodns {' '.join(path)} calls no API endpoint"
            commands[(endpoint.method, endpoint.path)] = (path, parser, endpoint)
    made_by_programs = set().union(*PROGRAMS.values())

    operations = set()
    for api_path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or (method.upper(), api_path) in made_by_programs:
                continue
            operations.add((method.upper(), api_path))
            assert (method.upper(), api_path) in commands, f"no command for {method} {api_path}"
            command, parser, endpoint = commands[(method.upper(), api_path)]
            where = f"fodns {' '.join(command)} ({method.upper()} {api_path})"
            dests = {action.dest for action in parser._actions}
            parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
            query = {p["name"] for p in parameters if p["in"] == "query"}
            in_path = {p["name"] for p in parameters if p["in"] == "path"}
            body: set[str] = set()
            if "requestBody" in operation:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                body = set(schemas[schema["$ref"].rsplit("/", 1)[1]]["properties"])
            assert set(endpoint.query) == query, where
            assert set(endpoint.body or {}) == body, where
            for field, dest in [*endpoint.query.items(), *(endpoint.body or {}).items()]:
                assert dest in dests, f"{where}: {field} fills from {dest}, not an argument"
            for name in in_path:
                assert name in dests, f"{where}: no argument for the path's {{{name}}}"
    assert set(commands) == operations, "commands calling endpoints the API does not document"


# ---- help: every command and option says what it is ----------------------------------------


def test_every_command_and_option_has_help() -> None:
    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        if not parser.description:
            missing.append(f"{path}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, child in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name}: no help in the list of commands")
                    walk(child, f"{path} {name}")
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "fodns")
    assert missing == []


def help_of(path: tuple[str, ...]) -> str:
    """What `fodns PATH... --help` prints, from the CLI's own parser; it must exit 0 and
    write nothing to stderr."""
    printed, complained = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(printed),
        contextlib.redirect_stderr(complained),
        pytest.raises(SystemExit) as exited,
    ):
        build_parser().parse_args([*path, "--help"])
    assert exited.value.code == 0 and complained.getvalue() == "", (path, complained.getvalue())
    return printed.getvalue()


def test_help_of_every_command_runs_and_defines_the_words() -> None:
    commands = [path for path, _ in leaf_parsers(build_parser())]
    groups = sorted({path[:1] for path in commands if len(path) > 1})
    # The installed command prints help; every command's help then comes from the same
    # parser in this process (a Python start per command cost 15 s of the suite).
    done = run_fodns("--help", env={})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    # (Compared word for word: the width it wraps at depends on COLUMNS.)
    assert done.stdout.split() == help_of(()).split(), "the command and its parser disagree"
    texts = {}
    for path in [(), *groups, *commands]:
        shown = help_of(path)
        assert shown.startswith(f"usage: fodns {' '.join(path)}".rstrip()), shown
        texts[path] = " ".join(shown.split())
    for path in [("status",), ("app",)]:
        text = texts[path]
        assert "online: the live side of at least one group" in text, path
        assert "offline: in a group, but live in none" in text, path
        assert "none: in no group" in text, path
    assert "exit status: 0 online, 1 offline, 2 none, 3 error" in texts[("status",)].lower()
    assert "repeat" in texts[("app", "create")]
    assert "5 to 86400" in texts[("group", "create")]
    assert "recorded in the event log" in texts[("group", "switch")]
    for option in ("--before", "--after", "--group", "--app", "--limit"):
        assert option in texts[("events",)]
    assert "--no-primary" in texts[("group", "update")]
    assert "--no-web-servers" in texts[("app", "update")]
