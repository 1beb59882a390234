"""The admin HTTP API (aiohttp): health and metrics now; groups and apps plug in here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
HealthCheck = Callable[[], dict[str, Any]]
HEALTH_KEY: web.AppKey[HealthCheck] = web.AppKey("health")


async def healthz(request: web.Request) -> web.Response:
    health = request.app[HEALTH_KEY]()
    status = 200 if health.get("ready") else 503
    return web.json_response(health, status=status)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    registry: CollectorRegistry, health: Callable[[], dict[str, Any]]
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[REGISTRY_KEY] = registry
    app[HEALTH_KEY] = health
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
