"""The application factory: routes, shared objects, start-up and clean-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from cartsvc import catalog
from cartsvc.errors import StorageUnavailable
from cartsvc.http import health, webhooks
from cartsvc.http.context import METRICS, SETTINGS, STORAGE
from cartsvc.http.observe import Metrics, build_middleware
from cartsvc.settings import Settings
from cartsvc.storage.carts import Storage
from cartsvc.storage.connection import connect

log = logging.getLogger(__name__)

CART_PATH = "/api/vizochok/cart"
CART_ITEMS_PATH = "/api/vizochok/cart/items"
PRODUCTS_PATH = "/api/vizochok/check-products"


async def load_catalogs(storage: Storage, catalogs: Sequence[tuple[str, Path]]) -> None:
    for store_id, path in catalogs:
        products = catalog.parse_file(path)
        written = await storage.write_products(
            store_id, [(p.sku, p.fields()) for p in products]
        )
        log.info("catalog loaded store=%s products=%d file=%s", store_id, written, path)


def _storage_context(
    settings: Settings,
    client: Any,
    catalogs: Sequence[tuple[str, Path]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def storage_context(app: web.Application) -> AsyncIterator[None]:
        storage = Storage(
            client if client is not None else connect(settings.redis),
            settings.redis.key_prefix,
            settings.redis.timeout_ms,
        )
        app[STORAGE] = storage
        try:
            await storage.load_scripts()
        except StorageUnavailable as error:
            # Start anyway: /readyz says not ready, and requests answer 503
            # until Redis is back, with no restart needed.
            log.warning("redis not ready at start: %s", error)

        await load_catalogs(storage, catalogs)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A SIGTERM that came while redis-py was connecting can be swallowed
            # there; raised again here, it stops the start instead of being lost.
            await storage.close()
            raise asyncio.CancelledError

        yield
        await storage.close()
        log.info("redis connections closed")

    return storage_context


def create_app(
    settings: Settings,
    client: Any = None,
    catalogs: Sequence[tuple[str, Path]] = (),
) -> web.Application:
    """The cartsvc application; `client` replaces the configured Redis (tests)."""
    metrics = Metrics()
    app = web.Application(
        client_max_size=settings.limits.body_max_bytes,
        middlewares=[build_middleware(metrics)],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app.cleanup_ctx.append(_storage_context(settings, client, catalogs))
    app.router.add_post(CART_PATH, webhooks.cart_operation)
    app.router.add_get(CART_ITEMS_PATH, webhooks.cart_items)
    app.router.add_post(PRODUCTS_PATH, webhooks.check_products)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/openapi.yaml", health.openapi)
    return app
