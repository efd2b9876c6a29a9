"""Health, readiness, metrics and the OpenAPI document, for operators and tools."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cartsvc.errors import StorageUnavailable
from cartsvc.http.context import METRICS, STORAGE
from cartsvc.http.observe import json_answer


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers. Says nothing of Redis, by design."""
    return json_answer(200, {"ok": True})


async def readyz(request: web.Request) -> web.Response:
    """Ready: Redis answers and every script is in its cache."""
    storage = request.app[STORAGE]
    checks = {"redis": "ok", "scripts": "ok"}
    try:
        await storage.ping()
    except StorageUnavailable:
        checks = {"redis": "unreachable", "scripts": "unknown"}
    else:
        try:
            await storage.load_scripts()
        except StorageUnavailable:
            checks["scripts"] = "not loaded"

    ready = all(value == "ok" for value in checks.values())
    return json_answer(200 if ready else 503, {"ok": ready, "checks": checks})


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS].registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


@cache
def _openapi_document() -> bytes:
    return resources.files("cartsvc.http").joinpath("openapi.yaml").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3 document of every endpoint, as shipped in the package."""
    return web.Response(
        body=_openapi_document(), content_type="application/yaml", charset="utf-8"
    )
