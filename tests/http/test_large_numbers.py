"""Numbers far out of range in a delivery or a catalog are answered, never a 500."""

from __future__ import annotations

from typing import Any

from cartsvc.catalog import product_from_row
from cartsvc.http.context import STORAGE
from tests.conftest import Webhooks

S = {"store_id": "store-1", "session_id": "user-123"}
OPEN = {"action": "add", "store_id": "open-store", "session_id": "u"}


async def load_row(hooks: Webhooks, row: dict[str, str]) -> None:
    """One catalog row of store-1, checked and written as `catalog load` does."""
    product = product_from_row(row)
    storage = hooks.client.app[STORAGE]
    await storage.write_products("store-1", [(product.sku, product.fields())])


async def test_a_huge_price_in_a_strict_store_is_ignored(real_hooks: Webhooks) -> None:
    body = {"action": "add", **S, "sku": "milk-001", "price": 1e30}

    assert await real_hooks.cart(body) == (200, {"ok": True})


async def test_a_huge_open_mode_price_is_dropped_and_the_cart_still_reads(
    real_hooks: Webhooks,
) -> None:
    body = {**OPEN, "sku": "local-gold", "name": "Gold", "price": 1e24, "quantity": 999}

    assert await real_hooks.cart(body) == (200, {"ok": True})
    assert await real_hooks.items("open-store", "u") == (
        200,
        {
            "items": [
                {"sku": "local-gold", "name": "Gold", "price": 0.0, "quantity": 999,
                 "unit": "pcs"}
            ],
            "total": 0.0,
        },
    )  # fmt: skip


async def test_a_price_of_nan_or_infinity_is_dropped_like_any_bad_price(
    real_hooks: Webhooks,
) -> None:
    for n, price in enumerate((b"NaN", b"Infinity", b"-Infinity")):
        body = (
            b'{"action":"add","store_id":"open-store","session_id":"u","sku":"p%d",'
            b'"name":"Pie","price":%s}' % (n, price)
        )
        assert await real_hooks.cart(body) == (200, {"ok": True})

    status, cart = await real_hooks.items("open-store", "u")
    assert status == 200
    assert [(i["sku"], i["price"]) for i in cart["items"]] == [
        ("p0", 0),
        ("p1", 0),
        ("p2", 0),
    ]


async def test_an_open_mode_price_of_a_trillion_is_kept(real_hooks: Webhooks) -> None:
    body = {
        **OPEN,
        "sku": "local-yacht",
        "name": "Yacht",
        "price": 10**12,
        "quantity": 9,
    }

    await real_hooks.ok(**body)

    _, cart = await real_hooks.items("open-store", "u")
    assert (cart["items"][0]["price"], cart["total"]) == (1e12, 9e12)


async def test_a_catalog_row_with_a_huge_stock_loads_capped_and_in_stock(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    await load_row(real_hooks, {"sku": "sand-01", "name": "Sand", "price": "1",
                                "stock": "1e30"})  # fmt: skip

    stored = await real_redis.hget("cartsvc:{store-1}:product:sand-01", "stock")
    assert stored == "1000000000"
    assert await real_hooks.products({"skus": ["sand-01"], "store_id": "store-1"}) == (
        200,
        {"products": [{"sku": "sand-01", "price": 1.0, "in_stock": True}]},
    )


async def test_a_stock_of_minus_zero_is_a_stock_of_zero(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    await load_row(real_hooks, {"sku": "neg-0", "name": "Nothing left", "price": "-0",
                                "stock": "-0.0"})  # fmt: skip

    stored = await real_redis.hmget("cartsvc:{store-1}:product:neg-0", "price", "stock")
    assert stored == ["0", "0"]
    assert await real_hooks.cart({"action": "add", **S, "sku": "neg-0"}) == (
        200,
        {"ok": False, "reason": "out_of_stock"},
    )
    assert await real_hooks.products({"skus": ["neg-0"], "store_id": "store-1"}) == (
        200,
        {"products": [{"sku": "neg-0", "price": 0, "in_stock": False}]},
    )
