"""Named tokens with scopes, over real HTTP to a real `fodns serve` on a real database.

Every /v1 route against every kind of token (read, switch, write, admin, none,
expired, revoked), generated from the router and the OpenAPI document so a new route
cannot be left out; the name limits of groups and apps; expiry; revocation seen at
once in both worker modes; secrets nowhere but in the reply that made them (the
database file and its WAL are read byte by byte); events naming the token; the CLI.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fodns.openapi import openapi_document
from fodns.scopes import ROUTE_SCOPES, Scope, route_scope
from tests.support import (
    Api,
    FodnsProcess,
    api_request,
    http_exchange,
    run_cli,
    serving,
    start_with_config,
    wait_for,
)
from tests.support.contract import routed_methods

TOKEN = "tokens-test-admin-7d3e"
StartFodns = Callable[..., FodnsProcess]
KINDS = ("none", "expired", "revoked", "read", "switch", "write", "admin")
# A route's path parameter, in a path that names nothing that exists.
PARAMETER = re.compile(r"\{(\w+)\}")


class Fodns:
    """The module's server, its database folder, and a named token of each kind."""

    def __init__(self, server: FodnsProcess, folder: Path) -> None:
        self.server = server
        self.folder = folder
        self.admin = Api(server, TOKEN)
        self.secrets: dict[str, str] = {}

    def token(self, name: str, scope: str, **fields: Any) -> str:
        """A new named token's secret (made by the bootstrap admin token)."""
        body = {"name": name, "scope": scope, **fields}
        made = self.admin.ok("POST", "/v1/tokens", body, 201)
        self.secrets[name] = made["token"]
        return str(made["token"])

    def as_(self, secret: str) -> Api:
        return Api(self.server, secret)

    def last_seq(self) -> int:
        return int(self.admin.ok("GET", "/v1/events?limit=1")["last_seq"])


@pytest.fixture(scope="module")
def fodns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fodns]:
    folder = tmp_path_factory.mktemp("tokens")
    with serving(start_with_config(folder, TOKEN)) as server:
        running = Fodns(server, folder)
        # The expired one first: its second passes while the others are made.
        expired = running.token("kind-expired", "admin", expires_in=1)
        for scope in ("read", "switch", "write", "admin"):
            running.token(f"kind-{scope}", scope)
        running.token("kind-revoked", "admin")
        running.admin.ok("DELETE", "/v1/tokens/kind-revoked")
        assert wait_for(lambda: running.as_(expired).call("GET", "/v1/token")[0] == 401, 5)
        yield running


def concrete(template: str) -> str:
    """A path the route template matches that names nothing (a label where one is asked)."""
    return PARAMETER.sub(lambda m: "000-000-000" if m[1] == "label" else "nobody", template)


def v1_routes(directory: Path) -> list[tuple[str, str]]:
    """Every (method, path template) the router of `fodns serve`'s app has under /v1."""
    return sorted(
        (method, path)
        for path, methods in routed_methods(directory).items()
        if path.startswith("/v1/")
        for method in methods
    )


# ---- the route table: every route has its scope, and it is the spec's ---------------------


def test_every_v1_route_has_an_entry_in_the_scope_table(tmp_path: Path) -> None:
    """A route added without a scope fails here (the middleware would ask admin for it:
    safe, but not what anyone meant). The webhooks' entries are written ahead of their
    routes, which a branch of their own adds (SPEC-14)."""
    routed = {("GET" if m == "HEAD" else m, path) for m, path in v1_routes(tmp_path)}
    missing = sorted(routed - ROUTE_SCOPES.keys())
    assert missing == [], f"/v1 routes without a scope in fodns/scopes.py: {missing}"
    unrouted = {key for key in ROUTE_SCOPES.keys() - routed if not key[1].startswith("/v1/webh")}
    assert unrouted == set(), f"scopes of routes that do not exist: {sorted(unrouted)}"


def test_the_scope_table_is_the_one_the_spec_gives() -> None:
    """In the spec's own words: every GET is read but tokens' and webhooks' (admin) and
    GET /v1/token (any valid token); three operations switch; the rest writes."""
    switch = {
        ("POST", "/v1/groups/{label}/switch"),
        ("DELETE", "/v1/groups/{label}/pin"),
        ("POST", "/v1/probes/{name}/reports"),
    }
    for (method, path), scope in ROUTE_SCOPES.items():
        if path == "/v1/token":
            expected: Scope | None = None
        elif path.startswith(("/v1/tokens", "/v1/webhooks")):
            expected = Scope.ADMIN
        elif method == "GET":
            expected = Scope.READ
        elif (method, path) in switch:
            expected = Scope.SWITCH
        else:
            expected = Scope.WRITE
        assert scope == expected, (method, path, scope)
    assert route_scope("HEAD", "/v1/groups") == Scope.READ
    assert route_scope("GET", "/v1/not-in-the-table") == Scope.ADMIN  # refused, not let by


def test_the_document_gives_each_operations_scope_and_a_403_where_one_can_happen() -> None:
    """Every token can read: a 403 is documented exactly where more than read is needed."""
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            needed = route_scope(method.upper(), path)
            assert operation["x-scope"] == ("any" if needed is None else needed.word), path
            can_refuse = needed is not None and needed > Scope.READ
            assert ("403" in operation["responses"]) == can_refuse, (method, path)


# ---- every token against every route ---------------------------------------------------


def expected_status(kind: str, method: str, path: str) -> int | None:
    """401 or 403 as the kind of token and the route's scope say; None: neither (the
    route's own answer, which must then be one the document gives it)."""
    if kind in ("none", "expired", "revoked"):
        return 401
    needed = route_scope(method, path)
    return None if needed is None or Scope.named(kind) >= needed else 403


def test_every_token_kind_against_every_route(fodns: Fodns, tmp_path: Path) -> None:
    document = openapi_document()
    secrets = {kind: fodns.secrets.get(f"kind-{kind}", "") for kind in KINDS}
    routes = v1_routes(tmp_path)
    assert len(routes) >= 30, routes
    seen: dict[int, int] = {}
    for method, template in routes:
        path = concrete(template)
        body = b"{}" if method in ("POST", "PUT", "PATCH") else b""
        documented = document["paths"].get(template, {}).get(method.lower(), {})
        for kind in KINDS:
            status, headers, raw = http_exchange(
                fodns.server, method, path, secrets[kind], body=body
            )
            seen[status] = seen.get(status, 0) + 1
            where = f"{kind} token: {method} {template} answered {status} {raw[:200]!r}"
            expected = expected_status(kind, method, template)
            if expected == 401:
                assert status == 401, where
                assert headers["www-authenticate"].startswith("Bearer"), where
            elif expected == 403:
                assert status == 403, where
                if method != "HEAD":
                    error = json.loads(raw)["error"]
                    needed = route_scope(method, template)
                    assert needed is not None
                    assert (error["code"], error["scope"]) == ("forbidden", needed.word), where
                    assert needed.word in error["message"] and kind in error["message"], where
            else:
                assert status not in (401, 403), where
                if documented:  # every route but the document itself
                    assert str(status) in documented["responses"], where
    # The walk met every outcome: refusals of both kinds, and answers past them.
    assert {401, 403, 200, 201, 404} <= seen.keys(), seen


def test_a_403_names_the_scope_the_token_lacks(fodns: Fodns) -> None:
    read = fodns.as_(fodns.secrets["kind-read"])
    status, reply = read.call("POST", "/v1/groups/000-000-000/switch", {"to": "backup"})
    assert status == 403
    assert reply == {
        "error": {
            "code": "forbidden",
            "message": "the token 'kind-read' has the read scope; this needs switch",
            "scope": "switch",
        }
    }
    switch = fodns.as_(fodns.secrets["kind-switch"])
    assert switch.call("POST", "/v1/apps", {"name": "never"})[1]["error"]["scope"] == "write"
    write = fodns.as_(fodns.secrets["kind-write"])
    assert write.call("GET", "/v1/tokens")[1]["error"]["scope"] == "admin"
    assert fodns.admin.call("GET", "/v1/apps/never")[0] == 404  # nothing was made


# ---- what a token is, and what the API shows of it ----------------------------------------


def test_get_token_shows_what_the_presenting_token_may_do(fodns: Fodns) -> None:
    assert fodns.admin.ok("GET", "/v1/token") == {
        "name": "admin",
        "scope": "admin",
        "groups": None,
        "apps": None,
        "expires_at": None,
        "bootstrap": True,
    }
    secret = fodns.token("status-page", "read", reason="the public status page")
    assert fodns.as_(secret).ok("GET", "/v1/token") == {
        "name": "status-page",
        "scope": "read",
        "groups": None,
        "apps": None,
        "expires_at": None,
        "bootstrap": False,
    }
    shown = fodns.admin.ok("GET", "/v1/tokens/status-page")
    assert shown["created_by"] == "admin" and shown["state"] == "active"
    assert "token" not in shown and "hash" not in shown


def test_admin_tokens_cannot_be_limited(fodns: Fodns) -> None:
    for limit in ("groups", "apps"):
        body = {"name": f"admin-{limit}", "scope": "admin", limit: ["shop-*"]}
        status, reply = fodns.admin.call("POST", "/v1/tokens", body)
        assert status == 400 and reply["error"]["field"] == limit, reply
        assert "cannot be limited" in reply["error"]["message"]
    assert fodns.admin.call("GET", "/v1/tokens/admin-groups")[0] == 404


def test_names_are_never_reused_and_some_are_reserved(fodns: Fodns) -> None:
    fodns.token("once", "read")
    fodns.admin.ok("DELETE", "/v1/tokens/once?reason=leaked")
    status, reply = fodns.admin.call("POST", "/v1/tokens", {"name": "once", "scope": "read"})
    assert status == 409 and reply["error"]["field"] == "name", reply
    for name in ("admin", "health", "fodns", "acme"):
        status, reply = fodns.admin.call("POST", "/v1/tokens", {"name": name, "scope": "read"})
        assert status == 400 and "reserved" in reply["error"]["message"], reply
    listed = [token["name"] for token in fodns.admin.ok("GET", "/v1/tokens")["tokens"]]
    assert "once" not in listed and "kind-read" in listed
    revoked = fodns.admin.ok("GET", "/v1/tokens?revoked=true")["tokens"]
    once = next(token for token in revoked if token["name"] == "once")
    assert (once["state"], once["revoked_by"]) == ("revoked", "admin")
    # A token revoked already: nothing more is recorded.
    seq = fodns.last_seq()
    assert fodns.admin.ok("DELETE", "/v1/tokens/once")["state"] == "revoked"
    assert fodns.last_seq() == seq


def test_an_expired_token_is_refused_saying_when(fodns: Fodns) -> None:
    status, reply = fodns.as_(fodns.secrets["kind-expired"]).call("GET", "/v1/zones")
    assert status == 401
    assert re.fullmatch(r"the token 'kind-expired' expired at \S+Z", reply["error"]["message"])
    shown = fodns.admin.ok("GET", "/v1/tokens/kind-expired")
    assert shown["state"] == "expired" and shown["revoked_at"] is None


@pytest.mark.parametrize("workers", [1, 2], ids=["workers1", "workers2"])
def test_a_revoked_token_is_refused_before_the_revocation_is_answered(
    fodns: Fodns, fodns_factory: StartFodns, workers: int
) -> None:
    server = fodns.server if workers == 1 else fodns_factory(TOKEN, workers=2)
    admin = Api(server, TOKEN)
    name = f"revoked-at-once-{workers}"
    secret = admin.ok("POST", "/v1/tokens", {"name": name, "scope": "write"}, 201)["token"]
    holder = Api(server, secret)
    holder.ok("POST", "/v1/apps", {"name": f"before-{workers}"}, 201)
    revoked = admin.ok("DELETE", f"/v1/tokens/{name}?reason=laptop+stolen")
    assert (revoked["state"], revoked["revoked_by"]) == ("revoked", "admin")
    # The very next request, with no wait: refused, and nothing it asks is done.
    status, reply = holder.call("POST", "/v1/apps", {"name": f"after-{workers}"})
    assert status == 401 and "was revoked at" in reply["error"]["message"], reply
    assert admin.call("GET", f"/v1/apps/after-{workers}")[0] == 404
    event = admin.ok("GET", "/v1/events?limit=1")["events"][0]
    assert (event["action"], event["actor"], event["reason"]) == (
        "token_revoked",
        "admin",
        "laptop stolen",
    )


# ---- limits: what a token may change ---------------------------------------------------


@pytest.fixture(scope="module")
def shop(fodns: Fodns) -> Fodns:
    """Apps and groups of a shop and a bank: shop-1 is all shop, shop-mixed has a bank
    app as its backup, bank-1 is the bank's but has a shop app as its backup."""
    for app in ("shop-eu", "shop-us", "bank-eu"):
        fodns.admin.ok("POST", "/v1/apps", {"name": app, "web_servers": ["192.0.2.1"]}, 201)
    for label, primary, backup in [
        ("shop-1", "shop-eu", "shop-us"),
        ("shop-mixed", "shop-eu", "bank-eu"),
        ("bank-1", "bank-eu", "shop-us"),
    ]:
        body = {"label": label, "primary": primary, "backup": backup}
        fodns.admin.ok("POST", "/v1/groups", body, 201)
    return fodns


def refused(api: Api, method: str, path: str, body: Any, limit: str) -> str:
    """Asserts a 403 naming `limit`; its message."""
    status, reply = api.call(method, path, body)
    assert status == 403, (method, path, status, reply)
    assert reply["error"]["scope"] == limit, (method, path, reply)
    return str(reply["error"]["message"])


def test_a_group_limited_token_switches_only_its_groups(shop: Fodns) -> None:
    deploy = shop.as_(shop.token("deploy-shop", "switch", groups=["shop-*"]))
    seq = shop.last_seq()
    refused(deploy, "POST", "/v1/groups/bank-1/switch", {"to": "backup"}, "groups")
    refused(deploy, "DELETE", "/v1/groups/bank-1/pin", None, "groups")
    assert shop.last_seq() == seq, "a refused change wrote nothing"
    assert deploy.ok("GET", "/v1/groups/bank-1")["active"] == "primary"  # reads are global
    assert deploy.ok("POST", "/v1/groups/shop-1/switch", {"to": "backup"})["active"] == "backup"
    event = shop.admin.ok("GET", "/v1/events?group=shop-1&limit=1")["events"][0]
    assert (event["action"], event["actor"]) == ("group_switched", "deploy-shop")


def test_an_app_limited_token_needs_every_app_on_both_sides(shop: Fodns) -> None:
    shop_apps = shop.as_(shop.token("shop-apps", "switch", apps=["SHOP-*"]))
    assert shop.admin.ok("GET", "/v1/tokens/shop-apps")["apps"] == ["shop-*"]
    message = refused(shop_apps, "POST", "/v1/groups/shop-mixed/switch", {"to": "primary"}, "apps")
    assert "bank-eu" in message
    refused(shop_apps, "POST", "/v1/groups/bank-1/switch", {"to": "backup"}, "apps")
    assert shop_apps.ok("POST", "/v1/groups/shop-1/switch", {"to": "primary"})["active"] == (
        "primary"
    )


def test_a_limited_writer_changes_only_what_falls_within_its_limits(shop: Fodns) -> None:
    writer = shop.as_(shop.token("shop-writer", "write", groups=["shop-*"], apps=["shop-*"]))
    seq = shop.last_seq()
    # Groups: a generated label could never match; the apps on both sides, before and after.
    message = refused(writer, "POST", "/v1/groups", {"primary": "shop-eu"}, "groups")
    assert "give a label" in message
    refused(writer, "POST", "/v1/groups", {"label": "bank-2"}, "groups")
    refused(writer, "POST", "/v1/groups", {"label": "shop-3", "primary": "bank-eu"}, "apps")
    refused(writer, "PATCH", "/v1/groups/shop-1", {"backup": "bank-eu"}, "apps")
    refused(writer, "PATCH", "/v1/groups/shop-mixed", {"ttl": 60}, "apps")
    refused(writer, "DELETE", "/v1/groups/bank-1", None, "groups")
    # Apps: the name, both names of a rename, and the groups whose answers it moves.
    refused(writer, "POST", "/v1/apps", {"name": "bank-new"}, "apps")
    refused(writer, "PATCH", "/v1/apps/bank-eu", {"name": "shop-bank"}, "apps")
    refused(writer, "PATCH", "/v1/apps/shop-eu", {"name": "bank-shop"}, "apps")
    refused(writer, "PATCH", "/v1/apps/shop-us", {"web_servers": ["192.0.2.9"]}, "groups")
    refused(writer, "PUT", "/v1/apps/shop-us/check", {"type": "tcp", "port": 443}, "groups")
    refused(writer, "DELETE", "/v1/apps/shop-us/check", None, "groups")
    # What cannot be bounded to names is refused to any limited token.
    report = {"interval": 10, "apps": []}
    message = refused(writer, "POST", "/v1/probes/eu/reports", report, "groups")
    assert "probe" in message
    refused(writer, "POST", "/v1/route53/sync", None, "groups")
    assert shop.last_seq() == seq, "a refused change wrote nothing"
    # Within the limits, it writes (and its events name it).
    writer.ok("POST", "/v1/apps", {"name": "shop-new"}, 201)
    writer.ok("PATCH", "/v1/apps/shop-new", {"name": "shop-newer"})
    body = {"label": "shop-2", "primary": "shop-eu", "backup": "shop-newer"}
    writer.ok("POST", "/v1/groups", body, 201)
    writer.ok("PATCH", "/v1/groups/shop-2", {"backup": None})
    writer.ok("PATCH", "/v1/groups/shop-2", {"primary": None})
    writer.ok("DELETE", "/v1/groups/shop-2", None, 204)
    actors = {event["actor"] for event in shop.admin.ok("GET", f"/v1/events?after={seq}")["events"]}
    assert actors == {"shop-writer"}


# ---- secrets: only a hash is kept ---------------------------------------------------------


def test_only_the_hash_of_a_secret_is_kept_anywhere(fodns: Fodns) -> None:
    secret = fodns.token("hashed", "switch", groups=["shop-*"], expires_in=3600)
    assert re.fullmatch(r"fodns_[A-Za-z0-9_-]{43}", secret), secret
    fodns.as_(secret).ok("GET", "/v1/token")
    digest = hashlib.sha256(secret.encode()).hexdigest()
    database = fodns.folder / "fodns.db"
    files = sorted(fodns.folder.glob("fodns.db*"))
    assert database in files and database.with_name("fodns.db-wal") in files
    for path in files:
        raw = path.read_bytes()
        assert secret.encode() not in raw and secret[6:].encode() not in raw, path
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        (kept,) = db.execute("SELECT hash FROM tokens WHERE name = 'hashed'").fetchone()
    assert kept == digest
    everything = json.dumps(fodns.admin.ok("GET", "/v1/events?limit=1000"))
    assert secret not in everything and digest not in everything
    assert not [line for line in fodns.server.stderr_lines if secret[6:] in line]
    created = fodns.admin.ok("GET", "/v1/events?limit=1")["events"][0]
    assert (created["action"], created["actor"]) == ("token_created", "admin")
    assert created["after"]["name"] == "hashed" and "token" not in created["after"]
    assert (created["zone"], created["group"], created["app"]) == (None, None, None)


def test_a_named_admin_token_makes_tokens_in_its_own_name(fodns: Fodns) -> None:
    ops = fodns.as_(fodns.token("ops-admin", "admin"))
    made = ops.ok("POST", "/v1/tokens", {"name": "made-by-ops", "scope": "read"}, 201)
    assert made["created_by"] == "ops-admin"
    revoked = ops.ok("DELETE", "/v1/tokens/made-by-ops")
    assert revoked["revoked_by"] == "ops-admin"
    actions = [
        (event["action"], event["actor"])
        for event in fodns.admin.ok("GET", "/v1/events?limit=2")["events"]
    ]
    assert actions == [("token_revoked", "ops-admin"), ("token_created", "ops-admin")]


# ---- the CLI -------------------------------------------------------------------------------


def test_the_cli_creates_lists_shows_and_revokes_tokens(fodns: Fodns) -> None:
    server = fodns.server
    done = run_cli(
        server, TOKEN, "token", "create", "ci", "--scope", "switch", "--groups", "shop-*",
        "--groups", "web-?", "--expires", "2h", "--reason", "the CI pipeline",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "shown only this once" in done.stderr
    made = json.loads(done.stdout)
    assert (made["scope"], made["groups"], made["apps"]) == ("switch", ["shop-*", "web-?"], None)
    assert made["token"].startswith("fodns_")
    whoami = json.loads(run_cli(server, made["token"], "token", "whoami").stdout)
    assert (whoami["name"], whoami["bootstrap"]) == ("ci", False)
    listed = json.loads(run_cli(server, TOKEN, "token", "list").stdout)
    assert "ci" in [token["name"] for token in listed]
    assert json.loads(run_cli(server, TOKEN, "token", "show", "ci").stdout)["state"] == "active"
    revoked = run_cli(server, TOKEN, "token", "revoke", "ci", "--reason", "rotated")
    assert json.loads(revoked.stdout)["state"] == "revoked", revoked.stderr
    refused = run_cli(server, made["token"], "group", "list")
    assert refused.returncode == 1
    assert "(401) (the token 'ci' was revoked at" in refused.stderr, refused.stderr
    assert made["token"] not in refused.stderr
    forbidden = run_cli(server, fodns.secrets["kind-read"], "token", "list")
    assert forbidden.returncode == 1 and "needs admin (403)" in forbidden.stderr
    bad = run_cli(server, TOKEN, "token", "create", "x", "--scope", "read", "--expires", "3w")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    with_all = json.loads(run_cli(server, TOKEN, "token", "list", "--revoked").stdout)
    assert "ci" in [token["name"] for token in with_all]


def test_tokens_survive_a_restart(fodns_factory: StartFodns, tmp_path: Path) -> None:
    """The map of hashes is read from the database at start: a token made before a
    restart works after it, and one revoked before it stays refused."""
    first = fodns_factory(TOKEN, directory=tmp_path)
    admin = Api(first, TOKEN)
    kept = admin.ok("POST", "/v1/tokens", {"name": "kept", "scope": "read"}, 201)["token"]
    gone = admin.ok("POST", "/v1/tokens", {"name": "gone", "scope": "read"}, 201)["token"]
    admin.ok("DELETE", "/v1/tokens/gone")
    assert first.stop() == 0
    again = fodns_factory(TOKEN, directory=tmp_path)
    assert api_request(again, "GET", "/v1/zones", token=kept)[0] == 200
    assert api_request(again, "GET", "/v1/zones", token=gone)[0] == 401
