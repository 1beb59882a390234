"""RFC 9110's methods on every resource of the admin API, over real HTTP to a real
`fodns serve`: a 405 lists exactly the methods the resource has in `Allow` (§15.5.6),
OPTIONS answers with `Allow` (§9.3.7), HEAD answers like GET without a body (§9.3.2).
The resources are read from the router of the app fodns builds, so a route added
later is covered without being listed here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import FodnsProcess, http_exchange
from tests.support.contract import concrete, routed_methods

TOKEN = "methods-test-token-5e2a"
StartFodns = Callable[..., FodnsProcess]
# Methods a resource may lack, RFC 9110's and others' (WebDAV, QUERY): a method fodns
# does not know is a 405 too. (Tokens that aiohttp's HTTP parser does not know at all,
# BREW say, it refuses with a 400 before any application sees the request; CONNECT's
# target is an authority, never one of these paths.)
TRIED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND", "QUERY", "PURGE")


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, frozenset[str]]:
    return routed_methods(tmp_path_factory.mktemp("routes"))


@pytest.fixture
def running(fodns_factory: StartFodns) -> FodnsProcess:
    return fodns_factory(TOKEN)


def allowed(headers: dict[str, str]) -> set[str]:
    return {method.strip() for method in headers["allow"].split(",")}


def test_a_method_a_resource_lacks_is_a_405_listing_exactly_its_methods(
    running: FodnsProcess, routes: dict[str, frozenset[str]]
) -> None:
    for template, methods in routes.items():
        expected = {*methods, "OPTIONS"}
        for method in TRIED:
            if method in methods:
                continue
            status, headers, body = http_exchange(
                running, method, concrete(template), TOKEN, body=b"{}"
            )
            assert status == 405, (method, template, status, body[:200])
            assert allowed(headers) == expected, (method, template, headers["allow"])
            if method == "HEAD":  # the 405 a GET would get, without its body
                assert body == b"", (template, body[:200])
                continue
            error = json.loads(body)["error"]
            assert error["code"] == "method_not_allowed", (method, template, error)
            assert method in error["message"], error


def test_options_answers_204_with_allow_on_every_resource(
    running: FodnsProcess, routes: dict[str, frozenset[str]]
) -> None:
    for template, methods in routes.items():
        path = concrete(template)
        status, headers, body = http_exchange(running, "OPTIONS", path, TOKEN)
        assert (status, body) == (204, b""), (template, status, body[:200])
        assert allowed(headers) == {*methods, "OPTIONS"}, (template, headers.get("allow"))
        # Under /v1, as every call there: without the token, a 401 that says how to
        # authenticate (RFC 9110 §11.6.1) and nothing about the resource.
        status, headers, body = http_exchange(running, "OPTIONS", path)
        if template.startswith("/v1/"):
            assert status == 401 and "allow" not in headers, (template, status)
            assert headers["www-authenticate"].startswith("Bearer"), headers
            assert json.loads(body)["error"]["code"] == "unauthorized"
        else:
            assert status == 204 and allowed(headers) == {*methods, "OPTIONS"}, template


def test_head_answers_like_get_without_a_body_on_every_get_route(
    running: FodnsProcess, routes: dict[str, frozenset[str]]
) -> None:
    gets = [template for template, methods in routes.items() if "GET" in methods]
    assert len(gets) >= 12 and all("HEAD" in routes[template] for template in gets)
    for template in gets:
        path = concrete(template)
        status, headers, body = http_exchange(running, "GET", path, TOKEN)
        head_status, head_headers, head_body = http_exchange(running, "HEAD", path, TOKEN)
        assert head_body == b"", (template, head_body[:200])
        assert head_status == status, (template, head_status, status)
        assert head_headers.get("content-type") == headers.get("content-type"), template
        # Counters and ages ("last_write_seconds_ago", a check's last result) move
        # between the two requests, so these lengths may differ by a digit or two.
        if template not in ("/metrics", "/healthz", "/v1/health"):
            assert head_headers.get("content-length") == str(len(body)), template
        else:
            assert int(head_headers["content-length"]) > 0, template


def test_the_401_says_how_to_authenticate(running: FodnsProcess) -> None:
    status, headers, body = http_exchange(running, "GET", "/v1/groups", "wrong-token-0000")
    assert status == 401 and headers["www-authenticate"] == 'Bearer realm="fodns"'
    assert json.loads(body)["error"]["code"] == "unauthorized"


def test_unknown_methods_are_counted_under_one_label(running: FodnsProcess) -> None:
    """fodns_api_requests_total's method label is bounded: each made-up method a client
    sends would otherwise be a series of its own, for ever."""
    for method in ("PROPFIND", "QUERY", "PURGE", "MKCOL"):
        assert http_exchange(running, method, "/v1/groups", TOKEN)[0] == 405
    _, _, metrics = http_exchange(running, "GET", "/metrics")
    counted = [
        line for line in metrics.decode().splitlines() if line.startswith("fodns_api_requests")
    ]
    assert not [line for line in counted if "PROPFIND" in line or "MKCOL" in line], counted
    assert any('method="other"' in line and 'status="405"' in line for line in counted), counted


def test_routes_are_read_from_the_real_router(routes: dict[str, frozenset[str]]) -> None:
    """The walk above is only as good as this list: it is the router's, not a copy."""
    assert routes["/v1/groups"] == {"GET", "HEAD", "POST"}
    assert routes["/v1/groups/{label}/switch"] == {"POST"}
    assert Path(concrete("/admin")).name == "app.js"
