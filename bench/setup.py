"""The data a benchmark needs in Redis, and what it reads back from Redis."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import redis
import redis.asyncio as aioredis

from bench.load import POOL_CARTS, SKUS, STORE, cart_skus
from cartsvc import catalog
from cartsvc.storage.carts import CartChange, Storage
from cartsvc.storage.keys import StoreKeys
from cartsvc.storage.scripts import SCRIPT_NAMES, script_source

PREFIX = "cartsvc"
KEYS = StoreKeys(PREFIX, STORE)


def products() -> list[catalog.Product]:
    """Fifty products; half track a stock too large to run out, some on promotion."""
    rows = []
    for n, sku in enumerate(SKUS):
        row = {"sku": sku, "name": f"Product {n}", "price": f"{10 + n}.50"}
        if n % 2:
            row["stock"] = "1000000"
        if n % 5 == 0:
            row |= {"promo_price": f"{9 + n}.90", "promo_label": "-5%"}
        rows.append(catalog.product_from_row(row))
    return rows


def _add(session: str, sku: str) -> CartChange:
    return CartChange(
        store_id=STORE,
        session_id=session,
        action="add",
        sku=sku,
        quantity_milli=1000,
        catalog_mode="strict",
        line_max_milli=999_000,
        cart_max_lines=100,
        cart_ttl_s=30 * 24 * 3600,
        delivery_id=f"fill-{session}-{sku}",
        fingerprint="fill",
        dedup_ttl_s=600,
        events_max=10_000,
    )


async def _fill(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    storage = Storage(client, PREFIX, timeout_ms=10_000)
    try:
        await storage.load_scripts()
        await storage.write_products(STORE, [(p.sku, p.fields()) for p in products()])
        for start in range(0, POOL_CARTS, 20):
            changes = [
                _add(f"get-{cart}", sku)
                for cart in range(start, start + 20)
                for sku in cart_skus(cart)
            ]
            await asyncio.gather(*(storage.change_cart(c) for c in changes))
    finally:
        await client.aclose()


def fill(redis_url: str) -> None:
    """Load the catalog, and five lines into each cart the GET mix reads."""
    asyncio.run(_fill(redis_url))


def cart_memory_bytes(client: redis.Redis, session: str = "get-0") -> int:
    """MEMORY USAGE summed over a five-line cart's keys: its lines and their order.

    The delivery records (one per change, gone after the dedup window) and the
    store's event stream are not the cart's; they are reported apart.
    """
    return sum(
        int(client.memory_usage(key, samples=0) or 0)
        for key in (KEYS.cart(session), KEYS.lines(session))
    )


def delivery_record_bytes(client: redis.Redis) -> int:
    """MEMORY USAGE of one delivery record, as the fill step left them."""
    key = KEYS.delivery(f"fill-get-0-{cart_skus(0)[0]}")
    return int(client.memory_usage(key, samples=0) or 0)


def scripted_commands() -> set[str]:
    """The commands cartsvc's scripts call inside Redis, which are no round trips."""
    found: set[str] = set()
    for name in SCRIPT_NAMES:
        calls = re.findall(r"redis\.call\('(\w+)'", script_source(name))
        found |= {call.lower() for call in calls}
    return found


def round_trips(commandstats: dict[str, Any], scripted: set[str]) -> int:
    """Commands clients sent, leaving out those scripts ran and the bench's own."""
    own = {"info", "config", "memory"}
    return sum(
        int(stats["calls"])
        for name, stats in commandstats.items()
        if name.removeprefix("cmdstat_").split("|")[0] not in scripted | own
    )
