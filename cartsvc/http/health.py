"""Health, readiness, metrics and the OpenAPI document, for operators and tools."""

from __future__ import annotations

import os
from functools import cache
from importlib import resources

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from cartsvc.errors import StorageUnavailable
from cartsvc.http.context import METRICS, STORAGE
from cartsvc.http.observe import json_answer

# prometheus-client's setting for multiprocess mode, read when it is imported.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


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
    """Prometheus text: this process's metrics, or every worker's, summed.

    Under `serve --workers N` a scrape reaches whichever worker the kernel picks;
    each worker keeps its counts in files of a directory the supervisor shares
    (prometheus-client's multiprocess mode), and any of them can sum them all.
    """
    registry = request.app[METRICS].registry
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]

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
