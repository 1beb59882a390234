"""The dashboard (admin/) end to end: a real fodns and a real headless Chromium.

Everything a person does is done through the page (typing, clicking, the
confirmation dialog), and its effect is checked where it matters: on the wire,
with dnspython. Screenshots of every view at desktop and phone width are saved
to test-artifacts/dashboard/ for people to look at.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import sqlite3
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Route,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.support import (
    EXAMPLE_ZONE,
    REPOSITORY,
    TEST_ZONES,
    Api,
    Fleet,
    FodnsProcess,
    Receiver,
    answer_data,
    ask_every_worker,
    free_port,
    serving,
    start_fodns,
    start_with_config,
    write_config,
)
from tests.support.acme import Account, AcmeClient, acme_table

TOKEN = "dashboard-token-5c1e"
ARTIFACTS = REPOSITORY / "test-artifacts" / "dashboard"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
NARROWEST: ViewportSize = {"width": 360, "height": 740}
REJECTED = "That token was not accepted"
# The page's poll, `&after=` the seq it has read (matched without it too, so that a poll
# reading the newest event fails on what it reads, not on being missed); never a page of
# the Events view (`?limit=100`).
POLL = r"^/v1/events\?limit=1(&after=\d+)?$"
# Chromium cannot hide a headless tab; the page sees the same as when its tab goes to the back.
HIDE_TAB = """() => {
  Object.defineProperty(document, "hidden", { value: true, configurable: true });
  Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW_TAB = """() => {
  delete document.hidden;
  delete document.visibilityState;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


# ---- servers, a browser, and a page that reports what went wrong in it --------------------


@pytest.fixture(scope="module")
def dashboard_server(fleet: Fleet) -> FodnsProcess:
    """The shared fodns with one worker, where most tests run."""
    return fleet.get(1)


@pytest.fixture
def server_in_mode(shared_server: FodnsProcess) -> FodnsProcess:
    """The shared fodns with `workers` DNS workers: the tests that take this run with
    one and with two, the mode the example config ships."""
    return shared_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "chromium is not installed, and the dashboard tests need a real browser: "
            "run `make deps-debian` (or `apt-get install chromium`), or simply `make test`"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        yield launched
        launched.close()


# Every fetch() the page makes, in order, recorded in the page itself: a poll is a fetch
# made synchronously when its timer fires, so the list says what the page has done by
# the time an evaluate() that reads it runs (network events reach the test on their own
# schedule). Installed before the page's scripts run.
RECORD_FETCHES = """() => {
  performance.setResourceTimingBufferSize(100000); // every reply's size (see replies_since)
  window.fetchedUrls = [];
  window.fetchesPending = 0;
  const fetchOriginal = window.fetch;
  window.fetch = function (resource, init) {
    window.fetchedUrls.push(String(resource));
    window.fetchesPending += 1;
    const settled = () => { window.fetchesPending -= 1; };
    const answer = fetchOriginal.call(this, resource, init);
    answer.then(settled, settled);
    return answer;
  };
}"""


class Dashboard:
    """A browser tab on the dashboard, collecting script errors and CSP violations."""

    def __init__(self, context: BrowserContext, server: FodnsProcess, name: str) -> None:
        self.context = context
        self.server = server
        self.api = Api(server, TOKEN)
        self.name = name  # "desktop" or "phone": the screenshots' prefix
        context.add_init_script(f"({RECORD_FETCHES})()")
        self.page: Page = context.new_page()
        self.problems: list[str] = []
        self.expected_problems: list[str] = []  # parts of problems a test causes on purpose
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        self.page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium logs every 4xx fetch ("Failed to load resource"); the tests cause those
        # on purpose. Anything else, CSP violations included, is a defect.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console: {message.text}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.api_port}/"

    def open(self) -> Page:
        self.page.goto(self.url)
        expect(self.page.get_by_label("Token", exact=True)).to_be_visible()
        return self.page

    def sign_in(self, token: str = TOKEN) -> Page:
        if not self.page.get_by_label("Token", exact=True).is_visible():
            self.open()
        self.page.get_by_label("Token", exact=True).fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        if token == TOKEN:
            expect(self.page.get_by_role("heading", name="Groups", exact=True)).to_be_visible()
        return self.page

    def view(self, name: str) -> Page:
        self.page.get_by_role("navigation", name="Views").get_by_role("link", name=name).click()
        expect(self.page.get_by_role("heading", name=name, exact=True)).to_be_visible()
        return self.page

    def group_row(self, fqdn: str) -> Locator:
        return self.page.locator(f'tr[data-group="{fqdn}"]')

    def app_row(self, name: str) -> Locator:
        return self.page.locator(f'tr[data-app="{name}"]')

    def screenshot(self, what: str, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{what}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def no_sideways_scroll(self) -> None:
        # Against the device's width, not window.innerWidth: a mobile browser zooms out
        # to show content wider than the device, and innerWidth grows with it (489 px on
        # a 390 px phone), so comparing with it could never fail.
        viewport = self.page.viewport_size
        assert viewport is not None
        scroll, inner = self.page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        width = viewport["width"]
        assert scroll <= width and inner <= width, (
            f"the page is wider than the screen: {scroll}px of content, "
            f"{inner}px of layout, on a {width}px screen"
        )

    def fetched(self) -> list[str]:
        """Every URL the page has fetched so far, in order."""
        return list(self.page.evaluate("window.fetchedUrls"))

    def found_on_server(self, kind: str, word: str) -> None:
        """Until the page has asked the server for the `kind` list with `q=word` (a list
        longer than a page is searched there) and no fetch is waiting for an answer."""
        self.page.wait_for_function(
            """([path]) => window.fetchesPending === 0
                && window.fetchedUrls.some((url) => url.startsWith(path))""",
            arg=[f"/v1/{kind}?limit=100&q={urllib.parse.quote(word.lower(), safe='')}"],
            timeout=30_000,
        )

    def polls(self) -> int:
        """How many times the page has polled so far."""
        return sum(bool(re.search(POLL, url)) for url in self.fetched())

    def wait_for_polls(self, count: int) -> None:
        """Until the page has started `count` more polls. Polls run one after another
        (the next is scheduled when the last one and what it fetched are done), so after
        two more, the page has finished one whole poll that began after this call."""
        self.page.wait_for_function(
            """([n, poll]) => window.fetchedUrls.filter((url) => new RegExp(poll).test(url))
                .length >= n""",
            arg=[self.polls() + count, POLL],
            timeout=30_000,
        )

    def hide_when_answered(self) -> None:
        """Hide the tab once no fetch of the page is waiting for the server (checked and
        hidden in one turn of the page's event loop): a change the test makes next
        cannot reach the page through a poll that was already on its way."""
        self.page.evaluate(
            f"""async () => {{
              while (window.fetchesPending > 0) await new Promise((done) => setTimeout(done, 10));
              ({HIDE_TAB})();
            }}"""
        )

    def when_answered(self) -> float:
        """Once no fetch of the page is waiting for the server, the time on the page's
        clock (`performance.now()`): replies_since() of it holds the fetches begun later."""
        return float(
            self.page.evaluate(
                """async () => {
                  const tick = () => new Promise((done) => setTimeout(done, 10));
                  while (window.fetchesPending > 0) await tick();
                  return performance.now();
                }"""
            )
        )

    def replies_since(self, moment: float) -> list[tuple[str, int]]:
        """The path and query of every fetch begun after `moment` and answered whole by
        now, with the size of its body in bytes (the browser's resource timing)."""
        replies = self.page.evaluate(
            """(moment) => performance.getEntriesByType("resource")
                .filter((entry) => entry.initiatorType === "fetch" && entry.startTime > moment)
                .map((entry) => {
                  const url = new URL(entry.name);
                  return [url.pathname + url.search, entry.decodedBodySize];
                })""",
            moment,
        )
        return [(str(path), int(size)) for path, size in replies]

    def idle_longer_than_a_poll(self) -> None:
        """Wait, on the page's own clock, its poll interval and a bit: a poll timer set
        before this call has fired by the end (timers fire in order of expiry), so a
        poll it makes is in fetched() however slow the machine is."""
        self.page.evaluate(
            """async () => {
              const { POLL_MS } = await import("/admin/state.js");
              await new Promise((done) => setTimeout(done, POLL_MS + 500));
            }"""
        )


OpenTab = Callable[..., Dashboard]
StartFodns = Callable[..., FodnsProcess]  # conftest's fodns_factory


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[OpenTab]:
    """Open a dashboard tab on a server (in a browser context of its own); each is
    closed afterwards, and must have logged no script error or CSP violation (but the
    problems the test says it expects, in `tab.expected_problems`)."""
    tabs: list[Dashboard] = []

    def open_(
        server: FodnsProcess,
        viewport: ViewportSize = DESKTOP,
        name: str = "desktop",
        **context_options: Any,
    ) -> Dashboard:
        context = browser.new_context(viewport=viewport, **context_options)
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        tab = Dashboard(context, server, name)
        tabs.append(tab)
        return tab

    yield open_
    problems = []
    for tab in tabs:
        tab.context.close()
        problems += [p for p in tab.problems if not any(e in p for e in tab.expected_problems)]
    assert not problems, "\n".join(problems)


@pytest.fixture
def dashboard(open_tab: OpenTab, dashboard_server: FodnsProcess) -> Dashboard:
    """A desktop tab on the shared one-worker fodns."""
    return open_tab(dashboard_server)


def seed(api: Api, label: str, primary: dict[str, Any], backup: dict[str, Any]) -> str:
    """Two apps and a group between them, made through the API; the group's name."""
    api.ok("POST", "/v1/apps", primary, 201)
    api.ok("POST", "/v1/apps", backup, 201)
    body = {"label": label, "primary": primary["name"], "backup": backup["name"]}
    return str(api.ok("POST", "/v1/groups", body, 201)["fqdn"])


def served(server: FodnsProcess, fqdn: str) -> set[str]:
    """The A records the DNS server answers for `fqdn` now, asked from fresh sockets so
    that every worker answers some of them; every worker must give the same answer."""
    replies = ask_every_worker(server, dns.message.make_query(fqdn, "A"))
    answers = {frozenset(answer_data(reply)) for reply in replies}
    assert len(answers) == 1, f"the workers disagree on {fqdn}: {answers}"
    return set(answers.pop())


# ---- the tests ------------------------------------------------------------------------------


def test_the_token_is_asked_once_and_a_wrong_one_is_refused(dashboard: Dashboard) -> None:
    page = dashboard.open()
    token_field = page.get_by_label("Token", exact=True)
    expect(token_field).to_have_attribute("type", "password")
    dashboard.screenshot("token")

    dashboard.sign_in("not-the-token")
    expect(page.get_by_role("alert")).to_contain_text(REJECTED)
    expect(token_field).to_be_visible()
    expect(page.get_by_role("heading", name="Groups", exact=True)).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0, "a refused token is not kept"
    dashboard.screenshot("token-refused")

    dashboard.sign_in()
    assert TOKEN not in page.url
    assert page.evaluate("Object.values(sessionStorage)") == [TOKEN]
    page.reload()  # asked once: the tab keeps it
    expect(page.get_by_role("heading", name="Groups", exact=True)).to_be_visible()

    page.get_by_role("button", name="Forget token").click()
    expect(token_field).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_create_two_apps_and_a_group_then_switch_it(
    open_tab: OpenTab, server_in_mode: FodnsProcess
) -> None:
    """The README walk-through with clicks, checked with real DNS queries that reach
    every worker (with two, the API process must have handed each switch to both)."""
    server = server_in_mode
    dashboard = open_tab(server)
    page = dashboard.sign_in()
    dashboard.view("Apps")
    for name, field, value in [
        ("shop-eu", "Web servers", "192.0.2.10, 192.0.2.11"),
        ("shop-us", "Load balancer", "198.51.100.7"),
    ]:
        page.get_by_role("button", name="New app").click()
        dialog = page.locator("#app-dialog")
        dialog.get_by_label("Name").fill(name)
        dialog.get_by_label(field).fill(value)
        dialog.get_by_role("button", name="Create app").click()
        expect(dialog).to_be_hidden()
        expect(dashboard.app_row(name)).to_contain_text("none")  # failover status: in no group

    dashboard.view("Groups")
    page.get_by_role("button", name="New group").click()
    dialog = page.locator("#group-dialog")
    dialog.get_by_label("Label").fill("shop")
    dialog.get_by_label("Primary app").select_option("shop-eu")
    dialog.get_by_label("Backup app").select_option("shop-us")
    ttl = dialog.get_by_label("TTL in seconds")
    expect(ttl).to_have_attribute("placeholder", "30")  # GET /v1/zones: the zone's group_ttl
    expect(ttl).to_have_accessible_description(re.compile(r"Empty: the zone's default \(30 s\)\.$"))
    dialog.get_by_role("button", name="Create group").click()
    expect(dialog).to_be_hidden()

    row = dashboard.group_row("shop.fo.example.net")
    primary = row.get_by_role("radio", name="Primary shop-eu")
    backup = row.get_by_role("radio", name="Backup shop-us")
    expect(primary).to_be_checked()
    expect(row.locator("label.side.live")).to_contain_text("shop-eu")
    expect(row.locator("label.side.live")).to_contain_text("live")  # not color alone
    expect(row).to_contain_text("30 s")
    assert served(server, "shop.fo.example.net") == {"192.0.2.10", "192.0.2.11"}

    row.get_by_role("button", name="Copy shop.fo.example.net").click()
    expect(row.get_by_role("button", name="Copy shop.fo.example.net")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "shop.fo.example.net"

    # Choosing the other side asks first; Cancel puts the radio back and changes nothing.
    backup.check()
    switch = page.get_by_role("dialog", name="Switch shop.fo.example.net to its backup?")
    expect(switch).to_be_visible()
    expect(switch).to_contain_text(
        "shop.fo.example.net will answer with 198.51.100.7 (shop-us, backup) "
        "instead of 192.0.2.10, 192.0.2.11 (shop-eu, primary)."
    )
    expect(switch).to_contain_text("up to 30 seconds (the group's TTL)")
    dashboard.screenshot("switch-dialog", full_page=False)
    switch.get_by_role("button", name="Cancel").click()
    expect(switch).to_be_hidden()
    expect(primary).to_be_checked()
    expect(backup).not_to_be_checked()
    assert served(server, "shop.fo.example.net") == {"192.0.2.10", "192.0.2.11"}

    backup.check()
    switch.get_by_label("Reason").fill("eu maintenance")
    switch.get_by_role("button", name="Switch traffic now").click()
    expect(switch).to_be_hidden()
    expect(backup).to_be_checked()
    expect(row.locator("label.side.live")).to_contain_text("shop-us")
    expect(row).to_contain_text("198.51.100.7")
    assert served(server, "shop.fo.example.net") == {"198.51.100.7"}
    dashboard.screenshot("groups")

    dashboard.view("Apps")
    expect(dashboard.app_row("shop-us")).to_contain_text("online")
    expect(dashboard.app_row("shop-eu")).to_contain_text("offline")
    dashboard.screenshot("apps")

    dashboard.view("Events")
    newest = page.locator("#events-list tbody tr").first
    expect(newest).to_contain_text("Switched shop.fo.example.net to backup (shop-us)")
    expect(newest).to_contain_text("admin")
    expect(newest).to_contain_text("eu maintenance")
    dashboard.screenshot("events")


def test_the_rules_of_groups_show_where_they_apply(dashboard: Dashboard) -> None:
    api = dashboard.api
    fqdn = seed(
        api,
        "blog",
        {"name": "blog-a", "web_servers": ["192.0.2.50"]},
        {"name": "blog-b", "web_servers": ["192.0.2.51"]},
    )
    api.ok("POST", "/v1/apps", {"name": "blog-c", "web_servers": ["192.0.2.52"]}, 201)
    page = dashboard.sign_in()

    # Deleting is disabled while the rules forbid it, with the reason in words.
    delete_group = dashboard.group_row(fqdn).get_by_role("button", name=f"Delete {fqdn}")
    expect(delete_group).to_be_disabled()
    expect(delete_group).to_have_attribute(
        "title", "Points at apps: clear both sides with Edit before deleting."
    )
    expect(dashboard.group_row(fqdn)).to_contain_text("Points at apps")
    dashboard.view("Apps")
    delete_app = dashboard.app_row("blog-a").get_by_role("button", name="Delete blog-a")
    expect(delete_app).to_be_disabled()
    reason = "In use by blog.fo.example.net: take it out of that group first."
    expect(delete_app).to_have_attribute("title", reason)
    expect(dashboard.app_row("blog-a").get_by_text(reason)).to_be_visible()
    expect(delete_app).to_have_accessible_description(reason)

    # Names that differ only in punctuation get controls of their own (ids are built from
    # names: "pair.a" and "pair-a" must not share one).
    seed(
        api,
        "pair-one",
        {"name": "pair.a", "web_servers": ["192.0.2.54"]},
        {"name": "pair_b", "web_servers": ["192.0.2.55"]},
    )
    seed(
        api,
        "pair-two",
        {"name": "pair-a", "web_servers": ["192.0.2.56"]},
        {"name": "pair-b", "web_servers": ["192.0.2.57"]},
    )
    page.reload()
    for app, group in [("pair.a", "pair-one"), ("pair-a", "pair-two")]:
        expect(
            dashboard.app_row(app).get_by_role("button", name=f"Delete {app}")
        ).to_have_accessible_description(
            f"In use by {group}.fo.example.net: take it out of that group first."
        )
    assert (
        page.evaluate(
            "[...document.querySelectorAll('[id]')].map((e) => e.id)"
            ".filter((id, i, ids) => ids.indexOf(id) !== i)"
        )
        == []
    ), "element ids are unique"

    # A 409 from the server: the app was free when the dialog opened, not when it was sent.
    dashboard.app_row("blog-c").get_by_role("button", name="Delete blog-c").click()
    confirm = page.get_by_role("dialog", name="Delete app blog-c?")
    api.ok("PATCH", "/v1/groups/blog", {"backup": "blog-c"})
    confirm.get_by_role("button", name="Delete app").click()
    expect(confirm.get_by_role("alert")).to_contain_text("is in group(s) blog.fo.example.net")
    confirm.get_by_role("button", name="Cancel").click()

    # 409 for a taken label: shown by the label field, not somewhere else.
    dashboard.view("Groups")
    page.get_by_role("button", name="New group").click()
    form = page.get_by_role("dialog", name="New group")
    label = form.get_by_label("Label")
    label.fill("blog")
    form.get_by_role("button", name="Create group").click()
    expect(label).to_have_attribute("aria-invalid", "true")
    taken = "Label 'blog' is taken by a group in zone fo.example.net"
    expect(form.locator("#group-label-error")).to_have_text(taken)
    expect(label).to_have_accessible_description(
        re.compile(r"^Leave empty for a generated one like 414-262-781 ?\. .* " + re.escape(taken))
    )
    dashboard.screenshot("group-form-error", full_page=False)

    # A name from the zone file is refused beside the label too, saying why.
    label.fill("www")
    form.get_by_role("button", name="Create group").click()
    expect(form.locator("#group-label-error")).to_have_text(
        "www.fo.example.net is a name in the zone file; choose another label"
    )

    # A 400 names its field too; the label's error goes once the label is fixed.
    label.fill("blog-2")
    form.get_by_label("TTL in seconds").fill("3")
    form.get_by_role("button", name="Create group").click()
    expect(form.get_by_label("TTL in seconds")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("#group-ttl-error")).to_contain_text("between 5 and 86400 seconds")
    expect(label).not_to_have_attribute("aria-invalid", "true")
    expect(form.locator("#group-label-error")).to_be_hidden()
    form.get_by_role("button", name="Cancel").click()

    # An app that went away while the form was open: said beside the select that chose it.
    # The form opened before the page has read the apps (just after a reload) offers
    # them once they arrive: the list of apps is held back until the form is open.
    api.ok("POST", "/v1/apps", {"name": "blog-gone", "web_servers": ["192.0.2.53"]}, 201)
    held: list[Route] = []
    page.route(re.compile(r"/v1/apps\?"), lambda route: held.append(route))
    page.reload()
    page.get_by_role("button", name="New group").click()
    expect(form.get_by_label("Primary app").locator("option")).to_have_text(["— no app —"])
    assert len(held) == 1
    held[0].continue_()
    page.unroute(re.compile(r"/v1/apps\?"))
    form.get_by_label("Primary app").select_option("blog-gone")
    api.ok("DELETE", "/v1/apps/blog-gone", status=204)
    form.get_by_role("button", name="Create group").click()
    expect(form.get_by_label("Primary app")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("#group-primary-error")).to_have_text("No app named 'blog-gone'")
    expect(form.locator("#group-label-error")).to_be_hidden()
    form.get_by_role("button", name="Cancel").click()

    # The same for an app name that is taken.
    dashboard.view("Apps")
    page.get_by_role("button", name="New app").click()
    app_form = page.get_by_role("dialog", name="New app")
    app_form.get_by_label("Name").fill("blog-a")
    app_form.get_by_role("button", name="Create app").click()
    expect(app_form.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(app_form.locator("#app-name-error")).to_contain_text("already exists")

    # A mistyped address (a top-level label is never all digits, RFC 1123 §2.1) is not
    # taken for a hostname: the API's 400 names web_servers, shown beside that field.
    app_form.get_by_label("Name").fill("blog-typo")
    web_servers = app_form.get_by_label("Web servers")
    web_servers.fill("192.0.2.300")
    app_form.get_by_role("button", name="Create app").click()
    expect(web_servers).to_have_attribute("aria-invalid", "true")
    expect(app_form.locator("#app-web-servers-error")).to_have_text(
        "'192.0.2.300' is not a valid IP address (nor a hostname)"
    )
    expect(web_servers).to_have_accessible_description(re.compile(r"not a valid IP address"))
    expect(app_form.get_by_label("Name")).not_to_have_attribute("aria-invalid", "true")
    assert api.call("GET", "/v1/apps/blog-typo")[0] == 404
    app_form.get_by_role("button", name="Cancel").click()


def test_changes_made_elsewhere_appear_without_a_reload(dashboard: Dashboard) -> None:
    api = dashboard.api
    fqdn = seed(
        api,
        "web",
        {"name": "web-a", "web_servers": ["192.0.2.60"]},
        {"name": "web-b", "load_balancer": ["lb.b.example.com"]},
    )
    page = dashboard.sign_in()
    row = dashboard.group_row(fqdn)
    expect(row.get_by_role("radio", name="Primary web-a")).to_be_checked()
    page.evaluate("window.stillTheSamePage = true")

    api.ok("POST", "/v1/groups/web/switch", {"to": "backup", "reason": "from the CLI"})
    expect(row.get_by_role("radio", name="Backup web-b")).to_be_checked(timeout=6000)
    expect(row.locator("label.side.live")).to_contain_text("web-b")
    expect(row).to_contain_text("lb.b.example.com")
    api.ok("POST", "/v1/apps", {"name": "web-c", "web_servers": ["192.0.2.61"]}, 201)
    dashboard.view("Apps")
    expect(dashboard.app_row("web-c")).to_be_visible(timeout=6000)

    # A hidden tab stops asking; shown again, it catches up at once.
    dashboard.view("Groups")
    dashboard.hide_when_answered()
    polls_when_hidden = dashboard.polls()
    api.ok("POST", "/v1/groups/web/switch", {"to": "primary"})
    dashboard.idle_longer_than_a_poll()  # a poll timer left running would have fired
    assert dashboard.polls() == polls_when_hidden, "a hidden tab keeps polling"
    expect(row.get_by_role("radio", name="Backup web-b")).to_be_checked()
    page.evaluate(SHOW_TAB)
    # At once: the poll is made while the tab is being shown, not a poll interval later.
    assert dashboard.polls() == polls_when_hidden + 1, "a tab shown again waits to catch up"
    expect(row.get_by_role("radio", name="Primary web-a")).to_be_checked()
    assert page.evaluate("window.stillTheSamePage") is True, "the page was reloaded"


def test_changes_elsewhere_are_followed_without_reading_every_group_again(
    open_tab: OpenTab, server_in_mode: FodnsProcess
) -> None:
    """Each change fetches the groups and apps it touched, not the lists (25 MB with
    100,000 groups), and the page ends up as a reload would show it; DNS from every
    worker follows the same changes."""
    server = server_in_mode
    dashboard = open_tab(server)
    api = dashboard.api
    fqdn = seed(
        api,
        "follow",
        {"name": "follow-a", "web_servers": ["192.0.2.100"]},
        {"name": "follow-b", "web_servers": ["192.0.2.101"]},
    )
    api.ok("POST", "/v1/apps", {"name": "follow-c", "web_servers": ["192.0.2.102"]}, 201)
    page = dashboard.sign_in()
    row = dashboard.group_row(fqdn)
    expect(row).to_be_visible()  # the sign-in's reads of the whole lists are behind us
    signed_in = len(dashboard.fetched())

    api.ok("POST", "/v1/groups/follow/switch", {"to": "backup"})
    expect(row.get_by_role("radio", name="Backup follow-b")).to_be_checked(timeout=10_000)
    api.ok("PATCH", "/v1/apps/follow-b", {"web_servers": ["192.0.2.109"]})
    expect(row).to_contain_text("192.0.2.109", timeout=10_000)  # the group answers the new head
    assert served(server, fqdn) == {"192.0.2.109"}
    api.ok("PATCH", "/v1/apps/follow-b", {"name": "follow-b2"})
    expect(row.get_by_role("radio", name="Backup follow-b2")).to_be_checked(timeout=10_000)
    api.ok("POST", "/v1/groups", {"label": "follow-new", "primary": "follow-c"}, 201)
    new_row = dashboard.group_row("follow-new.fo.example.net")
    expect(new_row).to_contain_text("192.0.2.102", timeout=10_000)
    assert served(server, "follow-new.fo.example.net") == {"192.0.2.102"}
    api.ok("POST", "/v1/groups", {"label": "follow-gone"}, 201)
    gone = dashboard.group_row("follow-gone.fo.example.net")
    expect(gone).to_be_visible(timeout=10_000)  # drawn first, so its removal is seen
    api.ok("DELETE", "/v1/groups/follow-gone", status=204)
    expect(gone).to_have_count(0, timeout=10_000)
    # And through the page itself: a switch here reads back only what it changed.
    expect(new_row.get_by_role("radio", name="Backup no app")).to_be_disabled()
    row.get_by_role("radio", name="Primary follow-a").check()
    page.get_by_role("button", name="Switch traffic now").click()
    expect(page.get_by_role("dialog")).to_be_hidden()  # the API has answered
    expect(row.get_by_role("radio", name="Primary follow-a")).to_be_checked()
    assert served(server, fqdn) == {"192.0.2.100"}
    dashboard.wait_for_polls(2)  # a whole poll after the switch: its event is followed too
    lists = [url for url in dashboard.fetched()[signed_in:] if WHOLE_LIST.search(url)]
    assert lists == [], f"the page read whole lists to follow single changes: {lists}"

    caught_up = [page.locator(f"#{list_id}").inner_text() for list_id in LISTS]
    dashboard.view("Events")
    events_caught_up = page.locator("#events-list tbody tr").all_inner_texts()
    page.reload()
    # Retrying expectations: after the reload the lists are drawn when their reads finish.
    expect(page.locator("#events-list tbody tr")).to_have_text(
        events_caught_up, use_inner_text=True
    )
    dashboard.view("Groups")
    for list_id, text in zip(LISTS, caught_up, strict=True):
        expect(page.locator(f"#{list_id}")).to_have_text(text, use_inner_text=True)


LISTS = ("groups-list", "apps-list")
WHOLE_LIST = re.compile(r"/v1/(groups|apps)(\?|$)")


def test_what_another_client_changed_is_read_back_as_its_event_says(
    dashboard: Dashboard,
) -> None:
    """The page reads back exactly the groups and apps each missed event says it
    touched (`touched`): a switch made by another client, then an app renamed there,
    which every group using the app shows under its new name."""
    api = dashboard.api
    fqdn = seed(
        api,
        "told",
        {"name": "told-a", "web_servers": ["192.0.2.140"]},
        {"name": "told-b", "web_servers": ["192.0.2.141"]},
    )
    also = api.ok("POST", "/v1/groups", {"label": "told-too", "primary": "told-b"}, 201)["fqdn"]
    dashboard.sign_in()
    row, other = dashboard.group_row(fqdn), dashboard.group_row(also)
    expect(row.get_by_role("radio", name="Primary told-a")).to_be_checked()
    dashboard.wait_for_polls(2)  # the sign-in and a whole poll are behind us
    before_switch = len(dashboard.fetched())

    api.ok("POST", "/v1/groups/told/switch", {"to": "backup", "reason": "another client"})
    expect(row.get_by_role("radio", name="Backup told-b")).to_be_checked(timeout=10_000)
    read_back = [url for url in dashboard.fetched()[before_switch:] if READ_BACK.search(url)]
    assert sorted(read_back) == [
        "/v1/apps/told-a",
        "/v1/apps/told-b",
        "/v1/groups/told?zone=fo.example.net",
    ]
    before_rename = len(dashboard.fetched())

    api.ok("PATCH", "/v1/apps/told-b", {"name": "told-b2"})
    expect(row.get_by_role("radio", name="Backup told-b2")).to_be_checked(timeout=10_000)
    expect(other.get_by_role("radio", name="Primary told-b2")).to_be_checked()
    read_back = [url for url in dashboard.fetched()[before_rename:] if READ_BACK.search(url)]
    assert sorted(read_back) == [
        "/v1/apps/told-b",  # gone under its old name: its row goes
        "/v1/apps/told-b2",
        "/v1/groups/told-too?zone=fo.example.net",
        "/v1/groups/told?zone=fo.example.net",
    ]
    dashboard.view("Apps")
    expect(dashboard.app_row("told-b2")).to_be_visible()
    expect(dashboard.app_row("told-b")).to_have_count(0)


# A group or an app read back by itself (not a list, not the poll of /v1/events).
READ_BACK = re.compile(r"/v1/(groups|apps)/[^/?]+(\?zone=[^&]+)?$")


def test_an_idle_page_never_reads_again_an_event_it_has(
    open_tab: OpenTab, fodns_factory: StartFodns
) -> None:
    """An app's event names every group using the app (8.5 MB with 100,000 groups).
    Once the page has caught up with it, its polls read only the events after the seq
    it has, none while nothing changes: not the newest event again and again, every
    2 s in every open tab, while it is the newest."""
    dashboard = open_tab(fodns_factory(TOKEN))
    api = dashboard.api
    api.ok("POST", "/v1/apps", {"name": "wide", "web_servers": ["192.0.2.150"]}, 201)
    for number in range(WIDE_GROUPS):
        api.ok("POST", "/v1/groups", {"label": f"wide-{number:03}", "primary": "wide"}, 201)
    dashboard.sign_in()
    first = dashboard.group_row("wide-000.fo.example.net")
    expect(first).to_contain_text("192.0.2.150")

    api.ok("PATCH", "/v1/apps/wide", {"web_servers": ["192.0.2.151"]})
    (wide_event,) = api.ok("GET", "/v1/events?limit=1")["events"]
    assert len(wide_event["touched"]["groups"]) == WIDE_GROUPS
    wide_bytes = len(json.dumps(wide_event))
    expect(first).to_contain_text("192.0.2.151", timeout=10_000)  # caught up with it
    caught_up = dashboard.when_answered()
    dashboard.wait_for_polls(3)  # two whole polls at least: polls run one after another

    read = [
        (path, size) for path, size in dashboard.replies_since(caught_up) if EVENTS.search(path)
    ]
    assert sum(bool(re.search(POLL, path)) for path, _ in read) >= 2, read
    assert all(size < IDLE_REPLY_BYTES for _, size in read), (
        f"an idle page read {read} of /v1/events; the newest event alone is {wide_bytes} bytes"
    )


WIDE_GROUPS = 300


def test_a_log_restored_from_a_backup_is_read_again(
    open_tab: OpenTab, fodns_factory: StartFodns, tmp_path: Path
) -> None:
    """fodns comes back on a database restored from a backup (docs/backup.md): the log's
    newest seq is below the one the page has read, and nothing is after it, so the page
    reads everything again (without a reload: the token stays) and follows the restored
    log from there."""
    folder = tmp_path / "fodns"
    first = fodns_factory(TOKEN, directory=folder)
    dashboard = open_tab(first)
    dashboard.expected_problems.append("ERR_CONNECTION_REFUSED")  # while fodns is down
    api = dashboard.api
    fqdn = seed(
        api,
        "kept",
        {"name": "kept-a", "web_servers": ["192.0.2.160"]},
        {"name": "kept-b", "web_servers": ["192.0.2.161"]},
    )
    backup = tmp_path / "backup.db"
    with (
        contextlib.closing(sqlite3.connect(folder / "fodns.db")) as live,
        contextlib.closing(sqlite3.connect(backup)) as copy,
    ):
        live.backup(copy)  # what `sqlite3 fodns.db ".backup FILE"` does
    page = dashboard.sign_in()
    page.evaluate("window.stillTheSamePage = true")
    row = dashboard.group_row(fqdn)
    forgotten = dashboard.group_row("forgotten.fo.example.net")
    api.ok("POST", "/v1/groups/kept/switch", {"to": "backup"})
    api.ok("POST", "/v1/groups", {"label": "forgotten", "primary": "kept-a"}, 201)
    expect(forgotten).to_be_visible(timeout=10_000)
    expect(row.get_by_role("radio", name="Backup kept-b")).to_be_checked()

    assert first.stop() == 0, "fodns did not shut down cleanly on SIGTERM"
    for path in folder.glob("fodns.db*"):  # the -wal beside it would bring the changes back
        path.unlink()
    shutil.copyfile(backup, folder / "fodns.db")
    again = start_fodns(
        "--config",
        str(folder / "fodns.toml"),
        "--api-listen",
        f"127.0.0.1:{first.api_port}",
        env={"FODNS_ADMIN_TOKEN": TOKEN},
    )
    try:
        expect(forgotten).to_have_count(0, timeout=10_000)
        expect(row.get_by_role("radio", name="Primary kept-a")).to_be_checked()
        expect(page.locator("#page-error")).to_be_hidden()
        assert page.evaluate("window.stillTheSamePage") is True, "the page was reloaded"
        Api(again, TOKEN).ok("POST", "/v1/groups/kept/switch", {"to": "backup"})
        expect(row.get_by_role("radio", name="Backup kept-b")).to_be_checked(timeout=10_000)
        dashboard.view("Events")
        expect(page.locator("#events-list tbody tr")).to_have_count(4)  # 3 restored, 1 new
    finally:
        assert again.stop() == 0, "fodns did not shut down cleanly on SIGTERM"


EVENTS = re.compile(r"^/v1/events\?")
IDLE_REPLY_BYTES = 200  # {"events": [], "last_seq": 302}: what is new when nothing is


def test_the_first_load_reads_one_page_and_finds_the_rest_on_the_server(
    open_tab: OpenTab, fodns_factory: StartFodns
) -> None:
    """With more groups and apps than a page, signing in reads one page of each (with
    100,000 groups the whole list was 25 MB); "Show more" reads the next page, the
    find box asks the server, and a change elsewhere is followed on what is shown."""
    dashboard = open_tab(fodns_factory(TOKEN))
    api = dashboard.api
    for number in range(120):
        api.ok("POST", "/v1/apps", {"name": f"app-{number:03d}", "web_servers": ["192.0.2.1"]}, 201)
    for number in range(230):
        body = {"label": f"page-{number:03d}", "primary": f"app-{number % 120:03d}"}
        api.ok("POST", "/v1/groups", body, 201)
    page = dashboard.sign_in()
    rows = page.locator("tr[data-group]")
    expect(rows).to_have_count(100)
    expect(page.locator("#count-groups")).to_have_text("230")
    page.wait_for_load_state("networkidle")
    lists = [url for url in dashboard.fetched() if WHOLE_LIST.search(url)]
    assert sorted(lists) == ["/v1/apps?limit=100", "/v1/groups?limit=100"]

    more = page.get_by_role("button", name="Show 100 more groups")
    more.click()
    expect(rows).to_have_count(200)
    expect(rows.nth(199)).to_have_attribute("data-group", "page-199.fo.example.net")
    assert [url for url in dashboard.fetched() if "cursor=" in url][-1].startswith(
        "/v1/groups?limit=100&cursor="
    )
    page.get_by_role("button", name="Show 30 more groups").click()
    expect(rows).to_have_count(230)
    expect(page.get_by_role("button", name=re.compile(r"more groups"))).to_be_hidden()

    find = page.get_by_role("searchbox", name="Find groups")
    find.fill("page-22")  # page-220 to page-229: not among the first page
    dashboard.found_on_server("groups", "page-22")
    expect(rows).to_have_count(10)
    expect(page.locator("#groups-shown")).to_have_text("10 of 230 groups match.")
    find.fill("app-119")  # by the app: page-119 (there is no page-239)
    dashboard.found_on_server("groups", "app-119")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-group", "page-119.fo.example.net")

    # A change elsewhere to a group shown is followed; the list is not read again.
    shown_from = len(dashboard.fetched())
    api.ok("PATCH", "/v1/groups/page-119", {"backup": "app-000"})
    api.ok("POST", "/v1/groups/page-119/switch", {"to": "backup"})
    expect(rows.first.get_by_role("radio", name="Backup app-000")).to_be_checked(timeout=10_000)
    assert [url for url in dashboard.fetched()[shown_from:] if WHOLE_LIST.search(url)] == []

    find.fill("")
    expect(rows).to_have_count(100)
    dashboard.view("Apps")
    expect(page.locator("tr[data-app]")).to_have_count(100)
    expect(page.locator("#count-apps")).to_have_text("100+")
    page.get_by_role("searchbox", name="Find apps").fill("app-11")
    dashboard.found_on_server("apps", "app-11")
    expect(page.locator("tr[data-app]")).to_have_count(10)
    # The switch dialog says what the other side answers even when its app was never read.
    dashboard.view("Groups")
    find.fill("page-110")
    dashboard.found_on_server("groups", "page-110")
    expect(rows).to_have_count(1)
    api.ok("PATCH", "/v1/apps/app-110", {"web_servers": ["192.0.2.110"]})
    api.ok("PATCH", "/v1/groups/page-110", {"backup": "app-050"})  # not among the apps read
    expect(rows.first.get_by_role("radio", name="Backup app-050")).to_be_enabled(timeout=10_000)
    rows.first.get_by_role("radio", name="Backup app-050").check()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("will answer with 192.0.2.1")
    dialog.get_by_role("button", name="Cancel").click()


def test_edit_and_delete_apps_and_groups(dashboard: Dashboard) -> None:
    server, api = dashboard.server, dashboard.api
    fqdn = seed(
        api,
        "edit",
        {"name": "edit-a", "web_servers": ["192.0.2.70"]},
        {"name": "edit-b", "web_servers": ["192.0.2.71"]},
    )
    page = dashboard.sign_in()
    row = dashboard.group_row(fqdn)

    # A new web head for the live app: the group answers it at once.
    dashboard.view("Apps")
    dashboard.app_row("edit-a").get_by_role("button", name="Edit edit-a").click()
    form = page.get_by_role("dialog", name="Edit edit-a")
    expect(form.get_by_label("Web servers")).to_have_value("192.0.2.70")
    form.get_by_label("Web servers").fill("192.0.2.72 192.0.2.73")
    form.get_by_role("button", name="Save changes").click()
    expect(form).to_be_hidden()
    expect(dashboard.app_row("edit-a")).to_contain_text("192.0.2.72, 192.0.2.73")
    assert served(server, fqdn) == {"192.0.2.72", "192.0.2.73"}
    dashboard.app_row("edit-b").get_by_role("button", name="Edit edit-b").click()
    form = page.get_by_role("dialog", name="Edit edit-b")
    form.get_by_label("Name").fill("edit-b2")
    form.get_by_role("button", name="Save changes").click()
    expect(dashboard.app_row("edit-b2")).to_be_visible()

    # Clear both sides: the group answers nothing and may be deleted.
    dashboard.view("Groups")
    expect(row.get_by_role("radio", name="Backup edit-b2")).to_be_visible()
    row.get_by_role("button", name=f"Edit {fqdn}").click()
    form = page.get_by_role("dialog", name=f"Edit {fqdn}")
    expect(form.get_by_label("Label")).to_be_hidden()  # a label never changes
    form.get_by_label("Primary app").select_option("")
    form.get_by_label("Backup app").select_option("")
    expect(form.get_by_label("TTL in seconds")).to_have_accessible_description(
        re.compile(r"Empty: unchanged\.$")
    )
    form.get_by_label("TTL in seconds").fill("60")
    form.get_by_role("button", name="Save changes").click()
    expect(form).to_be_hidden()
    expect(row).to_contain_text("60 s")
    expect(row).to_contain_text("nothing (NODATA)")
    expect(row.get_by_role("radio", name="Primary no app")).to_be_disabled()
    assert served(server, fqdn) == set()

    row.get_by_role("button", name=f"Delete {fqdn}").click()
    confirm = page.get_by_role("dialog", name=f"Delete group {fqdn}?")
    expect(confirm).to_contain_text("Its label stays taken forever")
    confirm.get_by_role("button", name="Delete group").click()
    expect(row).to_have_count(0)
    reply = server.udp(dns.message.make_query(fqdn, "A"))
    assert reply.rcode() == dns.rcode.NXDOMAIN

    dashboard.view("Apps")
    dashboard.app_row("edit-a").get_by_role("button", name="Delete edit-a").click()
    page.get_by_role("dialog", name="Delete app edit-a?").get_by_role(
        "button", name="Delete app"
    ).click()
    expect(dashboard.app_row("edit-a")).to_have_count(0)
    assert api.call("GET", "/v1/apps/edit-a")[0] == 404


def test_many_groups_are_found_by_words_and_drawn_a_hundred_at_a_time(
    open_tab: OpenTab, fodns_factory: StartFodns
) -> None:
    # A fodns of the test's own: 130 groups would crowd the other tests' views.
    dashboard = open_tab(fodns_factory(TOKEN))
    api = dashboard.api
    for number in range(130):
        api.ok("POST", "/v1/groups", {"label": f"bulk-{number:03d}"}, 201)
    fqdn = seed(
        api,
        "findme",
        {"name": "needle-app", "web_servers": ["192.0.2.90"]},
        {"name": "haystack-app", "web_servers": ["192.0.2.91"]},
    )
    total = len(api.ok("GET", "/v1/groups")["groups"])
    page = dashboard.sign_in()
    rows = page.locator("tr[data-group]")
    more = page.get_by_role("button", name=re.compile(r"^Show \d+ more groups$"))
    expect(rows).to_have_count(100)
    expect(page.locator("#groups-shown")).to_have_text("Showing the first 100.")
    expect(more).to_have_text(f"Show {min(100, total - 100)} more groups")
    more.click()
    expect(rows).to_have_count(min(200, total))

    find = page.get_by_role("searchbox", name="Find groups")
    find.fill("bulk-12")  # bulk-120 to bulk-129, not bulk-012
    expect(rows).to_have_count(10)
    expect(page.locator("#groups-shown")).to_have_text(f"10 of {total:,} groups match.")
    expect(more).to_be_hidden()
    for words, expected in [("needle", fqdn), ("192.0.2.90", fqdn), ("FINDME haystack", fqdn)]:
        find.fill(words)  # by app, by the address answered now, every word, any case
        # More than a page of groups: the server finds the longest word, the page the rest.
        dashboard.found_on_server("groups", max(words.split(), key=len))
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-group", expected)
    find.fill("no-such-thing")
    expect(page.locator("#groups-list")).to_contain_text("No group matches “no-such-thing”.")
    dashboard.screenshot("groups-find", full_page=False)

    # A switch made elsewhere shows in the filtered list too.
    find.fill("findme")
    api.ok("POST", "/v1/groups/findme/switch", {"to": "backup"})
    expect(rows.first.get_by_role("radio", name="Backup haystack-app")).to_be_checked(timeout=6000)

    dashboard.view("Apps")
    page.get_by_role("searchbox", name="Find apps").fill("findme.fo")  # by the group using it
    expect(page.locator("tr[data-app]")).to_have_count(2)


def test_history_shows_the_events_of_one_group_or_app(dashboard: Dashboard) -> None:
    api = dashboard.api
    fqdn = seed(
        api,
        "story",
        {"name": "story-a", "web_servers": ["192.0.2.95"]},
        {"name": "story-b", "web_servers": ["192.0.2.96"]},
    )
    api.ok("POST", "/v1/groups/story/switch", {"to": "backup", "reason": "drill"})
    api.ok("POST", "/v1/apps", {"name": "story-other", "web_servers": ["192.0.2.97"]}, 201)
    page = dashboard.sign_in()
    page.get_by_role("searchbox", name="Find groups").fill("story")
    dashboard.group_row(fqdn).get_by_role("link", name=f"History of {fqdn}").click()
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    expect(page.locator("#events-filter")).to_have_text(
        f"Only the events of {fqdn}. Show all events", use_inner_text=True
    )
    events = page.locator("#events-list tbody tr")
    expect(events).to_have_count(2)  # created, switched
    expect(events.first).to_contain_text(f"Switched {fqdn} to backup (story-b)")
    expect(events.first).to_contain_text("drill")
    dashboard.screenshot("events-of-a-group")

    # Idle, the filtered view does not keep reloading everything: it polls, and a whole
    # poll (begun and finished) reads no group.
    idle_from = len(dashboard.fetched())
    dashboard.wait_for_polls(2)
    lists = [url for url in dashboard.fetched()[idle_from:] if "/v1/groups" in url]
    assert lists == [], "a filtered Events view refreshes while nothing changes"
    # A change elsewhere still arrives.
    api.ok("POST", "/v1/groups/story/switch", {"to": "primary", "reason": "back"})
    expect(events).to_have_count(3, timeout=10_000)
    expect(events.first).to_contain_text("back")

    page.reload()  # the filter is in the address, so a reload or a shared link keeps it
    expect(events).to_have_count(3)
    page.get_by_role("link", name="Show all events").click()
    expect(page.locator("#events-filter")).to_be_hidden()
    expect(page.locator("#events-list")).to_contain_text("Created app story-other")

    dashboard.view("Apps")
    page.get_by_role("searchbox", name="Find apps").fill("story")
    dashboard.app_row("story-a").get_by_role("link", name="History of story-a").click()
    expect(page.locator("#events-subject")).to_have_text("story-a")
    expect(events.first).to_contain_text("Switched story.fo.example.net to primary")
    expect(page.locator("#events-list")).not_to_contain_text("story-other")


def test_two_zones_same_label_each_group_its_own(
    open_tab: OpenTab, fodns_factory: StartFodns
) -> None:
    """A label may exist in two zones: the page keeps them apart (radios, switches,
    history), and the group form offers the zones with each one's default TTL."""
    # The second zone's table comes after the first, with a group TTL of its own.
    second_zone = (
        f'[[zones]]\nname = "test.example"\nfile = "{TEST_ZONES / "test.example.zone"}"\n'
        "group_ttl = 60\n"
    )
    server = fodns_factory(TOKEN, extra=second_zone)
    dashboard = open_tab(server)
    api = dashboard.api
    api.ok("POST", "/v1/apps", {"name": "two-a", "web_servers": ["192.0.2.110"]}, 201)
    api.ok("POST", "/v1/apps", {"name": "two-b", "web_servers": ["192.0.2.111"]}, 201)
    for zone in ("fo.example.net", "test.example"):
        body = {"zone": zone, "label": "shop", "primary": "two-a", "backup": "two-b"}
        api.ok("POST", "/v1/groups", body, 201)
    page = dashboard.sign_in()
    net = dashboard.group_row("shop.fo.example.net")
    test = dashboard.group_row("shop.test.example")
    test.get_by_role("radio", name="Backup two-b").check()
    page.get_by_role("button", name="Switch traffic now").click()
    expect(page.get_by_role("dialog")).to_be_hidden()  # the API has answered
    expect(test.locator("label.side.live")).to_contain_text("two-b")
    expect(net.get_by_role("radio", name="Primary two-a")).to_be_checked()
    assert served(server, "shop.test.example") == {"192.0.2.111"}
    assert served(server, "shop.fo.example.net") == {"192.0.2.110"}

    test.get_by_role("link", name="History of shop.test.example").click()
    expect(page.locator("#events-list tbody tr")).to_have_count(2)
    expect(page.locator("#events-list")).not_to_contain_text("shop.fo.example.net")

    dashboard.view("Groups")
    page.get_by_role("button", name="New group").click()
    form = page.get_by_role("dialog", name="New group")
    ttl = form.get_by_label("TTL in seconds")
    expect(ttl).to_have_attribute("placeholder", "30")
    form.get_by_label("Zone").select_option("test.example")
    expect(form.locator("#group-label-suffix")).to_have_text(".test.example")
    expect(ttl).to_have_attribute("placeholder", "60")
    expect(ttl).to_have_accessible_description(re.compile(r"default \(60 s\)\.$"))
    form.get_by_label("Label").fill("multi")
    form.get_by_label("Primary app").select_option("two-a")
    form.get_by_role("button", name="Create group").click()
    expect(dashboard.group_row("multi.test.example")).to_contain_text("60 s")
    assert served(server, "multi.test.example") == {"192.0.2.110"}


def test_switching_by_keyboard_alone(dashboard: Dashboard) -> None:
    server, api = dashboard.server, dashboard.api
    fqdn = seed(
        api,
        "keys",
        {"name": "keys-a", "web_servers": ["192.0.2.120"]},
        {"name": "keys-b", "web_servers": ["192.0.2.121"]},
    )
    page = dashboard.sign_in()
    page.get_by_role("searchbox", name="Find groups").fill("keys")
    primary = dashboard.group_row(fqdn).get_by_role("radio", name="Primary keys-a")
    primary.focus()
    page.keyboard.press("ArrowDown")  # to the backup radio: the confirmation opens
    dialog = page.get_by_role("dialog", name=f"Switch {fqdn} to its backup?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(primary).to_be_checked()
    expect(primary).to_be_focused()
    assert served(server, fqdn) == {"192.0.2.120"}

    page.keyboard.press("ArrowDown")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")  # Cancel -> Switch traffic now
    expect(dialog.get_by_role("button", name="Switch traffic now")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    backup = dashboard.group_row(fqdn).get_by_role("radio", name="Backup keys-b")
    expect(backup).to_be_focused()
    expect(dashboard.group_row(fqdn).locator("label.side.live")).to_contain_text("keys-b")
    assert served(server, fqdn) == {"192.0.2.121"}


class Website(http.server.ThreadingHTTPServer):
    """A web server on one loopback address answering 200 to everything: an app's web
    head, which the test stops (its socket closed: connection refused)."""

    daemon_threads = True

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    def __init__(self, host: str, port: int) -> None:
        super().__init__((host, port), self.Handler)
        self.port = int(self.server_address[1])
        self.stopped = False
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.shutdown()
            self.server_close()


@pytest.fixture
def websites() -> Iterator[tuple[Website, Website]]:
    """Web servers on 127.0.0.2 and 127.0.0.3, on the one port the OS picked for the
    first (a check names one port for all of an app's addresses); stopped afterwards."""
    first = Website("127.0.0.2", 0)
    try:
        second = Website("127.0.0.3", first.port)
    except OSError:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_health_checks_and_automatic_failover_are_shown_and_driven(
    open_tab: OpenTab, fodns_factory: StartFodns, websites: tuple[Website, Website]
) -> None:
    """An app's check set through its form (an error beside the field the API names), a
    group made automatic through its form; the primary's web server stopped: the Groups
    view shows health's switch with its reason, the Apps view the address down. A person's
    switch pins the group for the time chosen; Unpin hands it back to health, which
    switches it again. Checks every second, down after 2 failures: a verdict in ~2 s."""
    primary_site, _backup = websites
    port = primary_site.port
    # A fodns of the test's own: its health events would reach the other tests' pages.
    server = fodns_factory(TOKEN)
    dashboard = open_tab(server)
    api = dashboard.api
    # 127.0.0.4 serves nothing: down from the start, and left out of the answer.
    fqdn = seed(
        api,
        "healthy",
        {"name": "healthy-a", "web_servers": ["127.0.0.2", "127.0.0.4"]},
        {"name": "healthy-b", "web_servers": ["127.0.0.3"]},
    )
    quick = {"port": port, "interval": 1, "timeout": 0.5, "fall": 2, "rise": 1}
    api.ok("PUT", "/v1/apps/healthy-b/check", quick)
    page = dashboard.sign_in()

    dashboard.view("Apps")
    app_a = dashboard.app_row("healthy-a")
    expect(app_a.locator('td[data-label="Health"]')).to_have_text("No check")
    app_a.get_by_role("button", name="Health check of healthy-a").click()
    form = page.get_by_role("dialog", name="Health check of healthy-a")
    form.get_by_label("Port").fill(str(port))
    form.get_by_label("Every (seconds)").fill("1")
    form.get_by_label("Timeout (seconds)").fill("5")  # longer than the interval: refused
    form.get_by_label("Down after").fill("2")
    form.get_by_label("Up after").fill("1")
    form.get_by_label("Answers follow health").check()
    assert unnamed_controls(page) == [], "unnamed controls in the Health check dialog"
    dashboard.screenshot("check-form", full_page=False)
    form.get_by_role("button", name="Add check").click()
    timeout = form.get_by_label("Timeout (seconds)")
    expect(timeout).to_have_attribute("aria-invalid", "true")
    expect(form.locator("#check-timeout-error")).to_contain_text("at most the interval")
    timeout.fill("0.5")
    form.get_by_role("button", name="Add check").click()
    expect(form).to_be_hidden()
    assert api.ok("GET", "/v1/apps/healthy-a/check")["answers_follow_health"] is True
    # Up, with 127.0.0.4 down and left out of what the group answers.
    expect(app_a.locator(".health-state")).to_contain_text("up", timeout=10_000)
    dead = app_a.locator('li[data-address="127.0.0.4"]')
    expect(dead).to_contain_text("left out of the answer", timeout=10_000)
    expect(dead).to_contain_text("connection refused")
    assert served(server, fqdn) == {"127.0.0.2"}

    dashboard.view("Groups")
    row = dashboard.group_row(fqdn)
    expect(row).to_contain_text("Manual failover")
    row.get_by_role("button", name=f"Edit {fqdn}").click()
    form = page.get_by_role("dialog", name=f"Edit {fqdn}")
    expect(form.get_by_label("Failback")).to_be_hidden()  # for an automatic group only
    form.get_by_label("Failover").select_option("auto")
    form.get_by_label("Failback").select_option("manual")
    form.get_by_label("Automatic switches an hour").fill("3")
    form.get_by_role("button", name="Save changes").click()
    expect(form).to_be_hidden()
    expect(row).to_contain_text("Automatic failover, manual failback")
    assert api.ok("GET", "/v1/groups/healthy")["max_auto_switches"] == 3
    decision = row.locator(".decision")
    expect(decision).to_contain_text("OK", timeout=10_000)
    expect(decision).to_contain_text("primary healthy-a is up: staying on primary")

    primary_site.stop()
    expect(row.get_by_role("radio", name="Backup healthy-b")).to_be_checked(timeout=10_000)
    last = row.locator(".last-switch")
    expect(last).to_contain_text("Last automatic switch")
    expect(last).to_contain_text("primary → backup")
    expect(last).to_contain_text("primary healthy-a is down (127.0.0.2: connection refused")
    assert served(server, fqdn) == {"127.0.0.3"}
    first_switch = api.ok("GET", "/v1/groups/healthy")["last_auto_switch"]
    dashboard.screenshot("groups-health")
    dashboard.view("Apps")
    expect(app_a.locator(".health-state")).to_contain_text("down")
    address = app_a.locator('li[data-address="127.0.0.2"]')
    expect(address.locator(".badge.health-down")).to_be_visible()
    expect(address).to_contain_text("connection refused")
    # With none up, every address is answered (fail open): none is marked left out.
    expect(app_a).to_contain_text("Every address is down: all are answered.")
    expect(app_a.locator(".left-out")).to_have_count(0)
    dashboard.screenshot("apps-health")

    # A person's switch of an automatic group pins it, for as long as they choose.
    dashboard.view("Groups")
    row.get_by_role("radio", name="Primary healthy-a").check()
    switch = page.get_by_role("dialog", name=f"Switch {fqdn} to its primary?")
    expect(switch).to_contain_text("switching pins it to its primary")
    switch.get_by_label("Keep it there").select_option(label="for 1 hour")
    switch.get_by_label("Reason").fill("testing the primary")
    switch.get_by_role("button", name="Switch traffic now").click()
    expect(switch).to_be_hidden()
    pin = row.locator(".pin")
    expect(pin).to_contain_text(re.compile(r"Pinned to primary by admin, until \d\d:\d\d"))
    expect(pin).to_contain_text("“testing the primary”")
    pinned = api.ok("GET", "/v1/groups/healthy")["pin"]
    assert (
        datetime.fromisoformat(pinned["until"]) - datetime.fromisoformat(pinned["at"])
    ).total_seconds() == 3600
    assert served(server, fqdn) == {"127.0.0.2", "127.0.0.4"}  # a person's choice stands
    dashboard.screenshot("groups-pinned")

    # Unpinned, the group is health's again: its primary is down, so back to the backup.
    row.get_by_role("button", name=f"Unpin {fqdn}").click()
    unpin = page.get_by_role("dialog", name=f"Unpin {fqdn}?")
    expect(unpin).to_contain_text("primary healthy-a down, backup healthy-b up")
    assert unnamed_controls(page) == [], "unnamed controls in the Unpin dialog"
    unpin.get_by_role("button", name="Unpin", exact=True).click()
    expect(unpin).to_be_hidden()
    expect(pin).to_have_count(0)
    expect(row.get_by_role("radio", name="Backup healthy-b")).to_be_checked(timeout=10_000)
    assert api.ok("GET", "/v1/groups/healthy")["last_auto_switch"]["at"] > first_switch["at"]

    # Removing a check: the app shows none.
    dashboard.view("Apps")
    app_b = dashboard.app_row("healthy-b")
    app_b.get_by_role("button", name="Health check of healthy-b").click()
    form = page.get_by_role("dialog", name="Health check of healthy-b")
    expect(form.get_by_label("Every (seconds)")).to_have_value("1")
    form.get_by_role("button", name="Remove check").click()
    expect(form).to_be_hidden()
    expect(app_b.locator('td[data-label="Health"]')).to_have_text("No check")

    # The Events view says what health did, and why.
    dashboard.view("Events")
    switched = page.locator("#events-list tbody tr").filter(has_text=f"Switched {fqdn} to backup")
    expect(switched.first).to_contain_text("health")
    expect(switched.first).to_contain_text("connection refused")
    expect(page.locator("#events-list")).to_contain_text("Health of healthy-a: up → down")
    expect(page.locator("#events-list")).to_contain_text(f"Unpinned group {fqdn}")
    expect(page.locator("#events-list")).to_contain_text(re.compile(r"pinned until \d\d:\d\d"))
    dashboard.screenshot("events-health")

    # What health shows fits a phone too.
    page.set_viewport_size(PHONE)
    for view, shown in [("Groups", last), ("Apps", app_a.locator(".health-state"))]:
        dashboard.view(view)
        expect(shown).to_be_visible()
        dashboard.no_sideways_scroll()
        dashboard.screenshot(f"{view.lower()}-health-phone")
    page.set_viewport_size(DESKTOP)

    # Where health checks do not run, /v1/health is a 404: the page shows no health.
    page.route(
        re.compile(r"/v1/health$"),
        lambda route: route.fulfill(
            status=404,
            content_type="application/json",
            body=json.dumps({"error": {"code": "not_found", "message": "not checking"}}),
        ),
    )
    page.reload()
    expect(app_a).to_be_visible()
    expect(page.locator("#apps-list th", has_text="Health")).to_have_count(0)
    expect(app_a.get_by_role("button", name="Health check of healthy-a")).to_have_count(0)
    dashboard.view("Groups")
    expect(row).to_contain_text("Automatic failover, manual failback")  # the group's own
    expect(row.locator(".decision")).to_have_count(0)


def test_a_restart_of_fodns_is_said_and_then_followed(
    open_tab: OpenTab, fodns_factory: StartFodns, tmp_path: Path
) -> None:
    """fodns goes away (a restart, a deploy) while the page is open: the page says the
    API does not answer, keeps the token, and carries on once fodns is back."""
    first = fodns_factory(TOKEN, directory=tmp_path / "fodns")
    dashboard = open_tab(first)
    # Chromium logs the refused connections while fodns is down; nothing else may fail.
    dashboard.expected_problems.append("ERR_CONNECTION_REFUSED")
    page = dashboard.sign_in()  # a new fodns: nothing yet, the page invites to begin
    expect(page.get_by_role("button", name="Create the first group")).to_be_visible()
    expect(page.get_by_role("searchbox", name="Find groups")).to_be_hidden()
    dashboard.screenshot("groups-empty", full_page=False)
    fqdn = seed(
        dashboard.api,
        "restart",
        {"name": "restart-a", "web_servers": ["192.0.2.130"]},
        {"name": "restart-b", "web_servers": ["192.0.2.131"]},
    )
    expect(dashboard.group_row(fqdn)).to_be_visible(timeout=10_000)  # followed from empty
    dashboard.view("Apps")
    expect(page.locator("tr[data-app]")).to_have_count(2)
    dashboard.view("Groups")
    assert first.stop() == 0, "fodns did not shut down cleanly on SIGTERM"
    alert = page.locator("#page-error")
    expect(alert).to_contain_text("The admin API did not answer", timeout=10_000)
    expect(alert).to_contain_text("may be out of date; it asks again every 2 seconds.")
    dashboard.screenshot("api-down", full_page=False)
    # The same database and API address, as a restart under systemd would have.
    again = start_fodns(
        "--config",
        str(tmp_path / "fodns" / "fodns.toml"),
        "--api-listen",
        f"127.0.0.1:{first.api_port}",
        env={"FODNS_ADMIN_TOKEN": TOKEN},
    )
    try:
        Api(again, TOKEN).ok("POST", "/v1/groups/restart/switch", {"to": "backup"})
        row = dashboard.group_row(fqdn)
        expect(row.locator("label.side.live")).to_contain_text("restart-b", timeout=10_000)
        expect(alert).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 1, "the token was kept"
    finally:
        assert again.stop() == 0, "fodns did not shut down cleanly on SIGTERM"


def test_the_page_is_revalidated_and_the_api_never_cached(dashboard_server: FodnsProcess) -> None:
    """The dashboard is several modules: a browser must not run a stale one beside a
    new one after an upgrade. The API's answers are live state."""
    base = f"http://127.0.0.1:{dashboard_server.api_port}"
    for path in ("/", "/admin/app.js", "/admin/sync.js", "/admin/app.css"):
        with urllib.request.urlopen(base + path, timeout=10) as response:
            assert response.headers["Cache-Control"] == "no-cache", path
            etag = response.headers["ETag"]
            assert etag, f"{path} has no ETag to revalidate with"
        request = urllib.request.Request(base + path, headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as not_modified:
            urllib.request.urlopen(request, timeout=10)
        assert not_modified.value.code == 304, path  # revalidation costs no body
    request = urllib.request.Request(
        base + "/v1/zones", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Cache-Control"] == "no-store"


# `import { a, b } from "./x.js";` (or a bare `import "./x.js";`) in a dashboard module.
MODULE_IMPORT = re.compile(r'^import\s+(?:[^;]*?\bfrom\s+)?"\./([\w-]+\.js)";', re.MULTILINE)


def test_the_modules_import_each_other_in_one_direction() -> None:
    """The dashboard's modules form a line, not a circle: each can be read knowing only
    those below it, and none can touch a name of a module still being evaluated (which
    throws, in an order that depends on where the browser entered the circle). app.js
    is the top: index.html loads it, it reaches every module, nothing imports it."""
    imports = {
        path.name: set(MODULE_IMPORT.findall(path.read_text(encoding="utf-8")))
        for path in (REPOSITORY / "admin").glob("*.js")
    }
    for module, names in imports.items():
        assert names <= imports.keys(), f"{module} imports a file that is not in admin/"
        assert "app.js" not in names, f"{module} imports app.js"
    reached: set[str] = set()
    todo = ["app.js"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += imports[module]
    assert reached == imports.keys(), f"app.js never loads {sorted(imports.keys() - reached)}"
    placed: set[str] = set()
    while placed != imports.keys():
        ready = {module for module in imports.keys() - placed if imports[module] <= placed}
        assert ready, f"import circle among {sorted(imports.keys() - placed)}"
        placed |= ready


# Roles a person operates; each needs a name a screen reader can say.
CONTROL_ROLES = {"button", "textbox", "combobox", "radio", "checkbox", "link", "spinbutton"}


def unnamed_controls(page: Page) -> list[str]:
    """Controls in Chromium's own accessibility tree (what assistive technology gets) that
    have no accessible name, described by role and the DOM node they come from."""
    session = page.context.new_cdp_session(page)
    try:
        nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        session.detach()
    unnamed = []
    for node in nodes:
        role = node.get("role", {}).get("value")
        if node.get("ignored") or role not in CONTROL_ROLES:
            continue
        if not str(node.get("name", {}).get("value", "")).strip():
            unnamed.append(f"{role} (backend node {node.get('backendDOMNodeId')})")
    return unnamed


def test_every_control_has_an_accessible_name(dashboard: Dashboard) -> None:
    api = dashboard.api
    fqdn = seed(
        api,
        "a11y",
        {"name": "a11y-a", "web_servers": ["192.0.2.80"]},
        {"name": "a11y-b", "web_servers": ["192.0.2.81"]},
    )
    page = dashboard.open()
    checked: dict[str, int] = {}

    def check(where: str) -> None:
        assert unnamed_controls(page) == [], f"unnamed controls in {where}"
        checked[where] = page.locator("button:visible, input:visible, select:visible").count()

    check("sign-in")
    dashboard.sign_in()
    # Each view's heading shows before its list is drawn; a check made in between would
    # pass without seeing the rows' controls.
    drawn = {
        "Groups": dashboard.group_row(fqdn),
        "Apps": dashboard.app_row("a11y-b"),
        "Events": page.locator("#events-list tbody tr").first,
    }
    for view, row in drawn.items():
        dashboard.view(view)
        expect(row).to_be_visible()
        check(view)
    dashboard.view("Groups")
    dashboard.group_row(fqdn).get_by_role("radio", name="Backup a11y-b").check()
    check("switch dialog")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    for opener, dialog in [
        (page.get_by_role("button", name="New group"), "New group"),
        (dashboard.group_row(fqdn).get_by_role("button", name=f"Edit {fqdn}"), f"Edit {fqdn}"),
    ]:
        opener.click()
        expect(page.get_by_role("dialog", name=dialog)).to_be_visible()
        check(dialog)
        page.keyboard.press("Escape")
    dashboard.view("Apps")
    page.get_by_role("button", name="New app").click()
    check("New app")
    page.keyboard.press("Escape")
    # The check saw the controls it is about: radios, selects, fields and buttons.
    assert checked["Groups"] >= 6 and checked["New group"] >= 6, checked


def test_a_phone_sees_every_view_without_sideways_scrolling(
    open_tab: OpenTab, dashboard_server: FodnsProcess
) -> None:
    fqdn = seed(
        Api(dashboard_server, TOKEN),
        "phone-checkout-with-a-rather-long-label",
        {"name": "checkout-eu-west", "web_servers": ["2001:db8:1234:5678:9abc:def0:1234:5678"]},
        {"name": "checkout-us-east", "load_balancer": ["checkout-lb.us-east-1.elb.example.com"]},
    )
    phone = open_tab(
        dashboard_server,
        viewport=PHONE,
        name="phone",
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    phone.open()
    phone.no_sideways_scroll()
    phone.screenshot("token")
    page = phone.sign_in()
    # A view's heading shows before its rows are drawn, and a page without its rows
    # fits any width: each check waits for the long rows of this test first.
    long_rows = {
        "Groups": phone.group_row(fqdn),
        "Apps": phone.app_row("checkout-us-east"),
        "Events": page.locator("#events-list tbody tr").filter(has_text=fqdn),
    }
    for view, row in long_rows.items():
        phone.view(view)
        expect(row).to_be_visible()
        phone.no_sideways_scroll()
        phone.screenshot(view.lower())

    phone.view("Groups")
    phone.group_row(fqdn).get_by_role("radio", name="Backup checkout-us-east").check()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Switch traffic now")).to_be_visible()
    phone.no_sideways_scroll()
    phone.screenshot("switch-dialog", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="New group").click()
    phone.screenshot("group-form", full_page=False)
    page.keyboard.press("Escape")

    page.set_viewport_size(NARROWEST)
    for view, row in long_rows.items():
        phone.view(view)
        expect(row).to_be_visible()
        phone.no_sideways_scroll()


# ---- named tokens: the page offers only what its token may do -----------------------------


@pytest.fixture(scope="module")
def tokens_server(fleet: Fleet) -> FodnsProcess:
    """A fodns of its own for the token tests (their groups, tokens and events stay out
    of the lists the other tests read), started like the fleet's."""
    folder = fleet.directory / "tokens"
    folder.mkdir()
    running = start_with_config(folder, TOKEN)
    fleet.running[-1] = running  # stopped, and checked, with the fleet
    return running


def named_token(api: Api, name: str, scope: str, **fields: Any) -> str:
    body = {"name": name, "scope": scope, **fields}
    return str(api.ok("POST", "/v1/tokens", body, 201)["token"])


def sign_in_as(dashboard: Dashboard, secret: str) -> Page:
    page = dashboard.sign_in(secret)
    expect(page.get_by_role("heading", name="Groups", exact=True)).to_be_visible()
    return page


def test_a_token_sees_only_the_controls_it_may_use(
    open_tab: OpenTab, tokens_server: FodnsProcess
) -> None:
    api = Api(tokens_server, TOKEN)
    mine = seed(
        api,
        "perm-shop",
        {"name": "perm-a", "web_servers": ["192.0.2.170"]},
        {"name": "perm-b", "web_servers": ["192.0.2.171"]},
    )
    other = str(
        api.ok("POST", "/v1/groups", {"label": "perm-bank", "primary": "perm-a"}, 201)["fqdn"]
    )
    dashboard = open_tab(tokens_server)
    # A status page's token: everything shown, nothing to press but History and Copy.
    page = sign_in_as(dashboard, named_token(api, "perm-reader", "read"))
    row = dashboard.group_row(mine)
    expect(row.get_by_role("radio", name="Primary perm-a")).to_be_checked()
    expect(row.get_by_role("radio", name="Backup perm-b")).to_be_disabled()
    expect(row.locator("label.side").last).to_have_attribute(
        "title", f"The token perm-reader may not switch {mine}"
    )
    expect(row.get_by_role("button", name=f"Edit {mine}")).to_have_count(0)
    expect(row.get_by_role("button", name=f"Delete {mine}")).to_have_count(0)
    expect(row.get_by_role("link", name=f"History of {mine}")).to_be_visible()
    expect(page.get_by_role("button", name="New group")).to_be_hidden()
    expect(page.get_by_role("link", name="Tokens")).to_be_hidden()
    expect(page.get_by_role("link", name="Webhooks")).to_be_hidden()
    dashboard.view("Apps")
    expect(page.get_by_role("button", name="New app")).to_be_hidden()
    expect(dashboard.app_row("perm-a").get_by_role("button")).to_have_count(0)
    dashboard.screenshot("read-token")
    page.goto(dashboard.url + "#tokens")  # asked for by address: not for this token
    expect(page.get_by_role("heading", name="Groups", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Tokens", exact=True)).to_be_hidden()

    # A deploy pipeline's token: switches its own groups only, edits nothing.
    page.get_by_role("button", name="Forget token").click()
    secret = named_token(api, "perm-deploy", "switch", groups=["perm-s[a-h]op*"])
    sign_in_as(dashboard, secret)
    expect(row.get_by_role("radio", name="Backup perm-b")).to_be_enabled()
    expect(dashboard.group_row(other).get_by_role("radio", name="Primary perm-a")).to_be_disabled()
    expect(row.get_by_role("button", name=f"Edit {mine}")).to_have_count(0)
    row.get_by_role("radio", name="Backup perm-b").check()
    page.get_by_role("button", name="Switch traffic now").click()
    expect(row.locator("label.side.live")).to_contain_text("perm-b")
    event = api.ok("GET", "/v1/events?limit=1")["events"][0]
    assert (event["action"], event["actor"]) == ("group_switched", "perm-deploy")

    # A writer limited to some apps: edits only the groups and apps within them.
    page.get_by_role("button", name="Forget token").click()
    sign_in_as(dashboard, named_token(api, "perm-writer", "write", apps=["perm-a"]))
    expect(page.get_by_role("button", name="New group")).to_be_visible()
    expect(row.get_by_role("button", name=f"Edit {mine}")).to_have_count(0)  # perm-b too
    expect(dashboard.group_row(other).get_by_role("button", name=f"Edit {other}")).to_be_visible()
    dashboard.view("Apps")
    expect(dashboard.app_row("perm-a").get_by_role("button", name="Edit perm-a")).to_be_visible()
    expect(dashboard.app_row("perm-b").get_by_role("button", name="Edit perm-b")).to_have_count(0)


def test_the_tokens_view_makes_a_token_shows_its_secret_once_and_revokes_it(
    open_tab: OpenTab, tokens_server: FodnsProcess
) -> None:
    dashboard = open_tab(tokens_server)
    page = dashboard.sign_in()
    dashboard.view("Tokens")
    page.get_by_role("button", name="New token").click()
    dialog = page.get_by_role("dialog", name="New token")
    dialog.get_by_label("Scope").select_option("admin")
    expect(dialog.get_by_label("Only groups named")).to_be_hidden()  # an admin has no limits
    dialog.get_by_label("Scope").select_option("switch")
    name = dialog.get_by_label("Name", exact=True)
    name.fill("Bad Name")
    dialog.get_by_role("button", name="Make token").click()
    expect(name).to_have_attribute("aria-invalid", "true")
    name.fill("deploy-tok")
    dialog.get_by_label("Only groups named").fill("tok-* web-?")
    dialog.get_by_label("Expires").select_option("2592000")
    assert unnamed_controls(page) == [], "unnamed controls in the token form"
    dialog.get_by_role("button", name="Make token").click()

    shown = page.get_by_role("dialog", name="The secret of deploy-tok")
    expect(shown).to_contain_text("shown only this once")
    secret = shown.get_by_label("Secret").input_value()
    assert re.fullmatch(r"fodns_[A-Za-z0-9_-]{43}", secret), secret
    shown.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    dashboard.screenshot("token-secret", full_page=False)
    shown.get_by_role("button", name="Done").click()
    expect(shown).to_be_hidden()
    assert secret not in page.content(), "the secret stays on the page"
    assert Api(tokens_server, secret).ok("GET", "/v1/token")["groups"] == ["tok-*", "web-?"]

    row = page.locator('tr[data-token="deploy-tok"]')
    expect(row).to_contain_text("Switch")
    expect(row).to_contain_text("groups tok-*, web-?")
    expect(row).to_contain_text("by admin")
    expect(row).to_contain_text("active")
    assert unnamed_controls(page) == [], "unnamed controls in the Tokens view"
    dashboard.screenshot("tokens")

    row.get_by_role("button", name="Revoke deploy-tok").click()
    revoke = page.get_by_role("dialog", name="Revoke deploy-tok?")
    expect(revoke).to_contain_text("refused from now on")
    revoke.get_by_label("Reason").fill("rotated")
    revoke.get_by_role("button", name="Revoke token").click()
    expect(row).to_have_count(0)  # revoked tokens are listed only when asked for
    assert api_status(tokens_server, secret) == 401
    page.get_by_label("Show revoked tokens").check()
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button")).to_have_count(0)
    page.set_viewport_size(PHONE)
    dashboard.no_sideways_scroll()


def api_status(server: FodnsProcess, secret: str) -> int:
    return Api(server, secret).call("GET", "/v1/zones")[0]


def test_an_open_page_signs_out_when_its_token_is_revoked_or_expires(
    open_tab: OpenTab, tokens_server: FodnsProcess
) -> None:
    api = Api(tokens_server, TOKEN)
    dashboard = open_tab(tokens_server)
    page = sign_in_as(dashboard, named_token(api, "open-page", "write"))
    api.ok("DELETE", "/v1/tokens/open-page")
    # The next poll (every 2 s) is refused: the page says why and asks for a token.
    alert = page.locator("#sign-in-error")
    expect(alert).to_contain_text("revoked or has expired", timeout=6000)
    expect(page.get_by_label("Token", exact=True)).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0, "a refused token is forgotten"
    dashboard.screenshot("token-revoked", full_page=False)

    sign_in_as(dashboard, named_token(api, "short-lived", "read", expires_in=2))
    expect(alert).to_contain_text("revoked or has expired", timeout=8000)
    assert api_status(tokens_server, TOKEN) == 200


def test_webhooks_are_created_tested_paused_and_deleted(dashboard: Dashboard) -> None:
    """The Webhooks view against a real receiver: a bad URL said beside its field, the
    secret shown once (and signing what the receiver gets), a test's result, the
    deliveries, pause and resume, delete."""
    api = dashboard.api
    with Receiver() as receiver:
        url = receiver.url
        page = dashboard.sign_in()
        dashboard.view("Webhooks")
        expect(page.get_by_role("button", name="Create the first webhook")).to_be_visible()
        page.get_by_role("button", name="New webhook").click()
        dialog = page.get_by_role("dialog", name="New webhook")
        dialog.get_by_label("URL").fill("ftp://hooks.example.com/")
        dialog.get_by_role("button", name="Create webhook").click()
        expect(dialog.get_by_label("URL")).to_have_attribute("aria-invalid", "true")
        expect(dialog.locator("#webhook-url-error")).to_contain_text("http://")
        dialog.get_by_label("URL").fill(url)
        dialog.get_by_label("Switches by people").check()
        dialog.get_by_label("Only groups").fill("dash-*")
        assert unnamed_controls(page) == [], "unnamed controls in the webhook form"
        dialog.get_by_role("button", name="Create webhook").click()

        shown = page.get_by_role("dialog", name="Webhook created")
        expect(shown).to_be_visible()
        secret = shown.locator("#webhook-secret").inner_text()
        assert secret.startswith("whsec_")
        assert unnamed_controls(page) == [], "unnamed controls in the secret dialog"
        dashboard.screenshot("webhook-secret", full_page=False)
        shown.get_by_role("button", name="Done").click()
        expect(page.locator("#webhook-secret")).to_have_text("")  # gone once closed
        assert secret not in page.content()

        row = page.locator("#webhooks-list tr[data-webhook]")
        expect(row).to_have_count(1)
        for text in (url, "Switches by people", "Groups: dash-*", "Active"):
            expect(row).to_contain_text(text)
        # A switch made elsewhere reaches the receiver, signed with the secret shown.
        seed(
            api,
            "dash-hook",
            {"name": "dash-hook-eu", "web_servers": ["192.0.2.60"]},
            {"name": "dash-hook-us", "web_servers": ["192.0.2.61"]},
        )
        api.ok("POST", "/v1/groups/dash-hook/switch", {"to": "backup"})
        assert receiver.wait_for(lambda got: len(got) == 1)
        (switched,) = receiver.requests()
        timestamp, _, digest = switched.headers["Fodns-Signature"].partition(",v1=")
        signed = f"{timestamp.removeprefix('t=')}.".encode() + switched.body
        assert hmac.compare_digest(
            digest, hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        )

        row.get_by_role("button", name=f"Send test to {url}").click()
        expect(row).to_contain_text("Test delivered: HTTP 200")
        assert receiver.wait_for(lambda got: len(got) == 2)
        row.get_by_role("button", name=f"Deliveries to {url}").click()
        deliveries = page.get_by_role("dialog", name=f"Deliveries to {url}")
        expect(deliveries.locator("tbody tr")).to_have_count(2)
        expect(deliveries.locator("tbody tr").first).to_contain_text("test")
        expect(deliveries.locator("tbody tr").last).to_contain_text("delivered")
        assert unnamed_controls(page) == [], "unnamed controls in the deliveries"
        dashboard.screenshot("webhook-deliveries", full_page=False)
        deliveries.get_by_role("button", name="Close").click()

        row.get_by_role("button", name=f"Pause {url}").click()
        expect(row).to_contain_text("Paused")
        (hook,) = api.ok("GET", "/v1/webhooks")["webhooks"]
        assert hook["state"] == "paused"
        row.get_by_role("button", name=f"Resume {url}").click()
        expect(row).to_contain_text("Active")
        assert unnamed_controls(page) == [], "unnamed controls in the Webhooks view"
        dashboard.screenshot("webhooks")

        row.get_by_role("button", name=f"Delete {url}").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete webhook").click()
        expect(page.get_by_role("button", name="Create the first webhook")).to_be_visible()
        assert api.ok("GET", "/v1/webhooks") == {"webhooks": []}
        dashboard.view("Events")
        expect(page.locator("#events-list")).to_contain_text(f"Deleted the webhook to {url}")


@pytest.fixture
def acme_server(tmp_path: Path) -> Iterator[FodnsProcess]:
    """fodns with ACME on, its CNAME check asking fodns's own DNS port (the customer's
    names here are in the zone fodns serves, so each answer is fodns's own)."""
    port = free_port()
    config = write_config(
        tmp_path,
        [("fo.example.net", EXAMPLE_ZONE)],
        extra=acme_table(resolver=f"127.0.0.1:{port}"),
    )
    running = start_fodns(
        "--config",
        str(config),
        "--dns-listen",
        f"127.0.0.1:{port}",
        env={"FODNS_ADMIN_TOKEN": TOKEN},
    )
    with serving(running) as server:
        yield server


def test_a_groups_certificates_are_registered_checked_and_deleted(
    open_tab: OpenTab, acme_server: FodnsProcess
) -> None:
    """A group's Certificates (ACME) dialog: a bad name said beside its field, the
    credentials shown once as lego's storage file (and working), the CNAME the customer
    adds and its check, deleting; a read token sees the registrations and registers none."""
    api = Api(acme_server, TOKEN)
    fqdn = seed(
        api,
        "dash-tls",
        {"name": "dash-tls-eu", "web_servers": ["192.0.2.90"]},
        {"name": "dash-tls-us", "web_servers": ["192.0.2.91"]},
    )
    dashboard = open_tab(acme_server)
    page = dashboard.sign_in()
    dashboard.group_row(fqdn).get_by_role("button", name=f"Certificates of {fqdn}").click()
    dialog = page.get_by_role("dialog", name=f"Certificates (ACME) for {fqdn}")
    expect(dialog).to_contain_text("No registration yet")
    dialog.get_by_label("Names").fill("not-a-name")
    dialog.get_by_role("button", name="Register").click()
    expect(dialog.get_by_label("Names")).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#certificates-names-error")).to_contain_text("not a host name")

    name = "www.fo.example.net"
    dialog.get_by_label("Names").fill(f"{name} *.{name}")
    dialog.get_by_role("button", name="Register").click()
    storage = dialog.locator("#certificates-storage")
    expect(storage).to_contain_text('"password"')
    account = json.loads(storage.inner_text())[name]
    (registration,) = api.ok("GET", "/v1/acme/registrations?group=dash-tls")["registrations"]
    assert account["subdomain"] == registration["subdomain"]
    line = f"_acme-challenge.{name}. CNAME {registration['fulldomain']}."
    expect(dialog.locator(".cnames")).to_contain_text(line)
    assert unnamed_controls(page) == [], "unnamed controls in the Certificates dialog"
    dashboard.screenshot("certificates", full_page=False)
    # What the dialog showed is what an ACME client needs.
    acme = AcmeClient(acme_server)
    credentials = Account(**account, allowfrom=[])
    assert acme.update(credentials, "D" * 43) == (200, {"txt": "D" * 43})

    dialog.get_by_role("button", name=f"Check the CNAMEs of {name}, *.{name}").click()
    expect(dialog.locator(".badge.check-missing")).to_have_text("not added yet")
    dialog.get_by_role("button", name="Close").click()
    expect(page.locator("#certificates-storage")).to_have_text("")  # gone once closed
    assert account["password"] not in page.content()

    page.once("dialog", lambda confirm: confirm.accept())
    dashboard.group_row(fqdn).get_by_role("button", name=f"Certificates of {fqdn}").click()
    expect(dialog).to_contain_text("last value set")
    dialog.get_by_role("button", name=f"Delete the registration of {name}, *.{name}").click()
    expect(dialog).to_contain_text("No registration yet")
    assert api.ok("GET", "/v1/acme/registrations") == {"registrations": []}
    assert acme.update(credentials, "E" * 43)[0] == 401
    dialog.get_by_role("button", name="Close").click()
    dashboard.view("Events")
    expect(page.locator("#events-list")).to_contain_text(f"Deleted the ACME registration of {name}")

    # A read token sees a group's registrations, and is offered nothing to change.
    api.ok("POST", "/v1/acme/registrations", {"group": "dash-tls", "names": [name]}, 201)
    dashboard.view("Groups")
    page.get_by_role("button", name="Forget token").click()
    sign_in_as(dashboard, named_token(api, "dash-tls-reader", "read"))
    dashboard.group_row(fqdn).get_by_role("button", name=f"Certificates of {fqdn}").click()
    expect(dialog.locator(".cnames")).to_contain_text(f"_acme-challenge.{name}.")
    expect(dialog.get_by_role("button", name="Register")).to_be_hidden()
    expect(dialog.get_by_role("button", name=f"Delete the registration of {name}")).to_have_count(0)
