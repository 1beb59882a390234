"""The schemathesis command line that checks a running fodns against its own OpenAPI
document: shared by tests/test_contract.py and benchmarks/contract.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.process import FodnsProcess

# Every phase: the document's examples, the coverage phase (edges of each schema),
# fuzzing, and the stateful phase (chains of calls linked by the document's inferred
# links: create an app, read it, use it in a group, switch it, delete it).
PHASES = "examples,coverage,fuzzing,stateful"
# Every check, and what the document says in words but not in JSON Schema, per operation.
SETTINGS = Path(__file__).with_name("schemathesis.toml")


def contract_run(
    server: FodnsProcess,
    token: str,
    seed: int,
    max_examples: int,
    max_time: int | None,
    report: Path,
) -> list[str]:
    """`st run` against `server`'s /v1/openapi.json with every check (SETTINGS) and phase, a fixed
    seed and at most `max_examples` cases per operation; with `max_time`, fuzzing and the
    stateful phase repeat until that many seconds are spent (a run of fixed length
    whose cases depend on the machine's speed). Its JUnit report goes under `report`."""
    st = Path(sys.executable).parent / "st"
    return [
        str(st),
        "--config-file",
        str(SETTINGS),
        "run",
        f"http://127.0.0.1:{server.api_port}/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--phases",
        PHASES,
        "--seed",
        str(seed),
        "--max-examples",
        str(max_examples),
        # One worker: the run is reproducible from its seed, and fodns's own two DNS
        # workers are what the test is about, not schemathesis's concurrency.
        *(["--max-time", str(max_time)] if max_time else []),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        "--output-truncate",
        "true",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]


def routed_methods(directory: Path) -> dict[str, frozenset[str]]:
    """Every path template the admin app routes, with the methods its router has for
    it (HEAD beside each GET included), read from the router of the app `fodns serve`
    builds: create_app with a store, on a fresh database in `directory`."""
    from prometheus_client import CollectorRegistry

    from fodns.api import create_app
    from fodns.store import Store, ZoneDefaults

    routes: dict[str, set[str]] = {}
    with Store(directory / "routes.db", {"fo.example.net": ZoneDefaults(serial=1)}) as store:
        app = create_app(CollectorRegistry(), dict, store=store)
        for resource in app.router.resources():
            methods = routes.setdefault(resource.canonical, set())
            methods.update(route.method for route in resource)
    return {path: frozenset(methods) for path, methods in routes.items()}


def concrete(template: str) -> str:
    """A path the template matches, naming no app, group, webhook or registration that exists."""
    path = template.replace("{name}", "nobody").replace("{label}", "000-000-000")
    path = path.replace("{id}", "wh_0000000000000000")
    path = path.replace("{subdomain}", "00000000-0000-4000-8000-000000000000")
    return "/admin/app.js" if path == "/admin" else path
