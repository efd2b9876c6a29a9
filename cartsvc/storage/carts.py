"""Cart and catalog storage: every call is one Lua script, one round trip."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from cartsvc.errors import StorageUnavailable
from cartsvc.storage.batching import ScriptBatcher, batches_well
from cartsvc.storage.keys import StoreKeys
from cartsvc.storage.scripts import Scripts

log = logging.getLogger(__name__)

# Everything the Redis client raises when Redis is away, slow or busy. A cluster
# whose slots are not all served (a node lost, a slot unassigned) raises
# RedisClusterException, which is no RedisError; it is an outage all the same,
# so the sender gets a 503 and its retry, never a 500.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)


@dataclass(frozen=True, slots=True)
class CartChange:
    """One cart operation as the script takes it; quantities in thousandths."""

    store_id: str
    session_id: str
    action: str
    sku: str
    quantity_milli: int | None
    catalog_mode: str
    line_max_milli: int
    cart_max_lines: int
    cart_ttl_s: int
    delivery_id: str
    fingerprint: str
    dedup_ttl_s: int
    events_max: int
    open_name: str = ""
    open_price: str = ""


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What the script decided: `applied`, `replayed` or `conflict`, and why."""

    status: str
    reason: str
    available: str


@dataclass(frozen=True, slots=True)
class StoredLine:
    sku: str
    quantity: str
    meta: str
    name: str
    price: str
    promo_price: str
    unit: str


@dataclass(frozen=True, slots=True)
class StoredProduct:
    sku: str
    price: str
    promo_price: str
    promo_label: str
    stock: str
    step: str
    active: str


class Storage:
    """cartsvc's view of Redis: scripts registered once, errors wrapped."""

    def __init__(self, client: Any, prefix: str, timeout_ms: int) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout_s = timeout_ms / 1000
        self.scripts = Scripts.register(client)
        self.batcher = (
            ScriptBatcher(client, self.timeout_s) if batches_well(client) else None
        )
        self.clustered = isinstance(client, RedisCluster)

    def keys(self, store_id: str) -> StoreKeys:
        return StoreKeys(self.prefix, store_id)

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        # The deadline covers waiting for a pooled connection, the round trip and
        # a NOSCRIPT reload, so a slow Redis is answered well inside 5 s.
        try:
            async with asyncio.timeout(self.timeout_s):
                try:
                    if self.batcher is not None:
                        return await self.batcher.run(script, keys, args)
                    return await script(keys=keys, args=args)
                except NoScriptError:
                    # The cache was flushed again between reloading the script
                    # and running it by its SHA (SCRIPT FLUSH, a restart). EVAL
                    # carries the source, so no flush can come in between.
                    source = script.script
                    return await self.client.eval(source, len(keys), *keys, *args)
        except TimeoutError as error:
            raise StorageUnavailable(
                "redis did not answer in time", timed_out=True
            ) from error
        except REDIS_ERRORS as error:
            raise StorageUnavailable(f"redis failed: {type(error).__name__}") from error

    async def change_cart(self, change: CartChange) -> ChangeResult:
        keys = self.keys(change.store_id)
        key_list = [
            keys.cart(change.session_id),
            keys.lines(change.session_id),
            keys.delivery(change.delivery_id),
            keys.events(),
        ]
        if change.action != "clear":
            key_list.append(keys.product(change.sku))

        quantity = "" if change.quantity_milli is None else str(change.quantity_milli)
        args = [
            change.action,
            change.session_id,
            change.sku,
            quantity,
            change.catalog_mode,
            change.line_max_milli,
            change.cart_max_lines,
            change.cart_ttl_s,
            change.fingerprint,
            change.dedup_ttl_s,
            change.events_max,
            change.open_name,
            change.open_price,
        ]
        status, reason, available = await self._run(
            self.scripts.cart_change, key_list, args
        )
        return ChangeResult(status, reason, available)

    async def read_cart(self, store_id: str, session_id: str) -> list[StoredLine]:
        keys = self.keys(store_id)
        flat = await self._run(
            self.scripts.cart_read,
            [keys.cart(session_id), keys.lines(session_id)],
            [keys.product_prefix()],
        )
        lines = [StoredLine(*flat[i : i + 7]) for i in range(0, len(flat), 7)]
        if self.clustered:
            await self._check_absent_products(store_id, lines)

        return lines

    async def _check_absent_products(
        self, store_id: str, lines: list[StoredLine]
    ) -> None:
        """StorageUnavailable if a product the cart read found absent exists.

        cart_read builds its product keys itself, so Redis Cluster cannot route
        them: while the store's slot moves, a product not moved yet reads as
        absent on the node that already holds the cart, and its line would show
        a price of 0. A catalog line (one without an open-mode price) missing its
        product is read again through declared keys, which the cluster routes.
        A product truly gone costs this second round trip; that is rare.
        """
        absent = [
            line.sku for line in lines if not line.price and "\t" not in line.meta
        ]
        if not absent:
            return

        found = await self.read_products(store_id, absent)
        if any(product is not None for product in found):
            raise StorageUnavailable("a cart was read while its slot was moving")

    async def read_products(
        self, store_id: str, skus: list[str]
    ) -> list[StoredProduct | None]:
        """Each sku's product in the order asked, None where the catalog has none."""
        if not skus:
            return []

        keys = self.keys(store_id)
        flat = await self._run(
            self.scripts.products_read, [keys.product(sku) for sku in skus], []
        )
        products: list[StoredProduct | None] = []
        for index, sku in enumerate(skus):
            fields = flat[index * 6 : index * 6 + 6]
            products.append(StoredProduct(sku, *fields) if fields[0] else None)

        return products

    async def write_products(
        self, store_id: str, products: list[tuple[str, dict[str, str]]]
    ) -> int:
        """Replace the given products (sku, fields) of a store in one atomic step."""
        if not products:
            return 0

        keys = self.keys(store_id)
        args: list[str | int] = []
        for _, fields in products:
            args.append(len(fields))
            for name, value in fields.items():
                args.extend((name, value))

        key_list = [keys.product(sku) for sku, _ in products]
        return int(await self._run(self.scripts.catalog_load, key_list, args))

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.client.ping()
        except (TimeoutError, *REDIS_ERRORS) as error:
            raise StorageUnavailable(
                f"redis ping failed: {type(error).__name__}"
            ) from error

    async def load_scripts(self) -> None:
        """Load every script now, so the first requests need no NOSCRIPT detour."""
        try:
            async with asyncio.timeout(self.timeout_s * 5):
                for script in self.scripts.all():
                    await self.client.script_load(script.script)
        except (TimeoutError, *REDIS_ERRORS) as error:
            raise StorageUnavailable(
                f"loading scripts failed: {type(error).__name__}"
            ) from error

    async def close(self) -> None:
        close = getattr(self.client, "aclose", None) or self.client.close
        await close()
