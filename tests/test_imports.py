"""The import graph of fodns/: changes flow one way, and each layer imports only below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fodns"


def fodns_imports(module: str) -> set[str]:
    """The fodns modules `module` imports (by their name inside the package)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "fodns":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("fodns."):
                found.add(node.module.removeprefix("fodns.").split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.removeprefix("fodns.").split(".")[0]
                for alias in node.names
                if alias.name.startswith("fodns.")
            )
    return found


def modules() -> list[str]:
    return sorted(path.stem for path in PACKAGE.glob("*.py"))


def test_nothing_below_the_api_imports_it() -> None:
    importers = {module for module in modules() if "api" in fodns_imports(module)}
    assert importers == {"service"}


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("feed", {"model"}),
        ("wake", set()),
        ("records", {"logs", "model"}),
        ("model", {"errors"}),
        ("consumers", {"acmezone", "feed", "groups", "logs", "table"}),
        # ACME challenges in the table: the model's records, rendered as any name's.
        ("acmezone", {"model", "table", "zone"}),
        # The rules of ACME registrations are pure: no I/O, no store, no web.
        ("acme", {"errors", "model", "tokens"}),
        (
            "groups",
            {"logs", "lookup", "model", "querystats", "records", "table", "wire", "zone"},
        ),
        ("notify", {"config", "logs", "tsig"}),
        (
            "route53",
            {"config", "errors", "feed", "logs", "mirrorstate", "model", "records", "store"},
        ),
        ("mirrorstate", {"rows"}),
        (
            "workers",
            {
                "config",
                "consumers",
                "errors",
                "feed",
                "logs",
                "query",
                "server",
                "transfer",
                "tsig",
                "wake",
            },
        ),
        (
            "api",
            {
                "acmeapi",
                "apirequest",
                "checks",
                "errors",
                "feed",
                "health",
                "listing",
                "logs",
                "metrics",
                "model",
                "openapi",
                "records",
                "schemas",
                "scopes",
                "store",
                "tokenbook",
                "tokens",
                "webhookapi",
            },
        ),
        # The rules of scopes are pure: a table and checks, nothing that does I/O.
        ("scopes", {"errors", "patterns"}),
        ("tokenbook", {"rows", "scopes", "tokenrows", "tokens"}),
        (
            "webhookapi",
            {
                "apirequest",
                "errors",
                "logs",
                "patterns",
                "schemas",
                "store",
                "webhookmodel",
                "webhookstate",
            },
        ),
        ("webhookmodel", {"__version__", "errors", "model", "patterns"}),
        (
            "acmeapi",
            {"acme", "apirequest", "cnamecheck", "config", "logs", "schemas", "store"},
        ),
        # The acme-dns API: the store and the admin API's token book, nothing of the API.
        (
            "acmedns",
            {
                "acme",
                "apirequest",
                "config",
                "errors",
                "logs",
                "model",
                "scopes",
                "store",
                "tokenbook",
            },
        ),
    ],
)
def test_each_module_on_the_change_path_imports_only_what_it_names(
    module: str, allowed: set[str]
) -> None:
    assert fodns_imports(module) <= allowed


def test_the_store_knows_no_consumer_of_its_changes() -> None:
    consumers = {
        "api",
        "consumers",
        "groups",
        "table",
        "server",
        "workers",
        "service",
        "route53",
        "mirrorstate",
        "notify",
    }
    assert fodns_imports("store") & consumers == set()


def test_the_api_imports_neither_the_table_nor_the_dns_processes() -> None:
    dns_side = {"consumers", "groups", "table", "zone", "query", "server", "workers", "transfer"}
    assert fodns_imports("api") & dns_side == set()


def test_the_api_imports_neither_the_notifier_nor_the_mirror() -> None:
    assert fodns_imports("api") & {"notify", "route53"} == set()


def test_the_api_imports_nothing_of_the_health_checker() -> None:
    """The checker runs beside the API and is handed to it (api.HealthView): the API
    neither runs checks nor decides switches."""
    assert fodns_imports("api") & {"checker", "probing", "verdicts"} == set()
    assert fodns_imports("schemas") & {"checker", "probing", "verdicts"} == set()


def test_only_the_wiring_of_a_process_imports_the_consumers() -> None:
    """The consumers of the feed are wired by `fodns serve` (service) and by each DNS
    worker (workers); nothing they consume from imports them."""
    importers = {module for module in modules() if "consumers" in fodns_imports(module)}
    assert importers == {"service", "workers"}


def test_the_store_holds_no_sql_of_the_route53_mirror() -> None:
    """The mirror's tables are read and written in mirrorstate.py through the store's
    hooks; the store names none of them."""
    source = (PACKAGE / "store.py").read_text()
    assert "route53_records" not in source and "route53_cursor" not in source
    assert "route53_written" not in source


def test_the_store_holds_no_sql_of_webhooks() -> None:
    """The webhooks' tables are read and written in webhookstate.py through the store's
    hooks; the store names none of them, and imports nothing of webhooks."""
    source = (PACKAGE / "store.py").read_text()
    for table in ("webhooks", "webhook_cursors", "webhook_deliveries"):
        assert f"FROM {table}" not in source and f"INTO {table}" not in source
        assert f"UPDATE {table}" not in source
    assert not {m for m in fodns_imports("store") if m.startswith("webhook")}


def test_only_the_wiring_of_the_api_process_runs_webhook_delivery() -> None:
    """The API is handed the deliverer (webhookapi.Deliveries) and imports nothing of it;
    delivery runs in the process `fodns serve` wires, never in a DNS worker."""
    importers = {module for module in modules() if "webhooks" in fodns_imports(module)}
    assert importers == {"service"}
