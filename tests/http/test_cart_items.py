"""GET /api/vizochok/cart/items and ids that must each keep their own cart."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Webhooks


def add(
    session_id: str, sku: str, quantity: Any = 1, store_id: str = "store-1"
) -> dict[str, Any]:
    return {"action": "add", "store_id": store_id, "session_id": session_id, "sku": sku,
            "quantity": quantity}  # fmt: skip


async def test_lines_come_in_first_added_order_with_exact_total(
    hooks: Webhooks,
) -> None:
    await hooks.ok(**add("u", "salt-01", 3))
    await hooks.ok(**add("u", "eggs-10", 2))
    await hooks.ok(**add("u", "apples-kg", 0.7))
    await hooks.ok(**add("u", "salt-01", 1))

    status, cart = await hooks.items("store-1", "u")

    assert status == 200
    assert [
        (i["sku"], i["quantity"], i["price"], i["unit"]) for i in cart["items"]
    ] == [
        ("salt-01", 4, 12.3, "pcs"),
        ("eggs-10", 2, 59.9, "pcs"),
        ("apples-kg", 0.7, 38.0, "kg"),
    ]
    # 4 x 12.30 + 2 x 59.90 (promo) + 0.7 x 38.00
    assert cart["total"] == 195.6


async def test_a_line_removed_and_added_again_goes_last(hooks: Webhooks) -> None:
    await hooks.ok(**add("u", "salt-01"))
    await hooks.ok(**add("u", "bread-01"))
    await hooks.ok(action="remove", store_id="store-1", session_id="u", sku="salt-01")
    await hooks.ok(**add("u", "salt-01"))

    _, cart = await hooks.items("store-1", "u")

    assert [i["sku"] for i in cart["items"]] == ["bread-01", "salt-01"]


async def test_price_follows_the_catalog_after_the_add(
    hooks: Webhooks, redis_client: Any
) -> None:
    await hooks.ok(**add("u", "milk-001", 2))
    await redis_client.hset("cartsvc:{store-1}:product:milk-001", "price", "50.05")

    _, cart = await hooks.items("store-1", "u")

    assert (cart["items"][0]["price"], cart["total"]) == (50.05, 100.1)


async def test_unknown_cart_is_empty(hooks: Webhooks) -> None:
    assert await hooks.items("store-1", "nobody") == (200, {"items": [], "total": 0})


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"store_id": "store-1"}, id="no-session"),
        pytest.param({"session_id": "u"}, id="no-store"),
        pytest.param({"store_id": "", "session_id": "u"}, id="empty-store"),
    ],
)
async def test_missing_parameters_are_400(
    hooks: Webhooks, params: dict[str, str]
) -> None:
    from cartsvc.http.signing import signed_headers
    from tests.conftest import SECRET

    async with hooks.client.get(
        "/api/vizochok/cart/items", params=params, headers=signed_headers(SECRET, b"")
    ) as response:
        assert (response.status, await response.json()) == (
            400,
            {"ok": False, "reason": "missing_params"},
        )


HOSTILE_IDS = [
    "a:b",
    "a}b{c",
    "x%3Ay",
    "x:y",
    "Покупець",
    "s" * 128,
    "tab\there",
    "a b",
    "line\nbreak",
    "{store-1}",
    "cart:user-123",
]


async def test_hostile_session_ids_each_keep_their_own_cart(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    for number, session_id in enumerate(HOSTILE_IDS, start=1):
        await real_hooks.ok(**add(session_id, "salt-01", number))

    for number, session_id in enumerate(HOSTILE_IDS, start=1):
        _, cart = await real_hooks.items("store-1", session_id)
        assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [
            ("salt-01", number)
        ]

    carts = [key async for key in real_redis.scan_iter("cartsvc:{store-1}:cart:*")]
    assert len(carts) == len(HOSTILE_IDS)
    assert "cartsvc:{store-1}:cart:x%253Ay" in carts
    assert "cartsvc:{store-1}:cart:x%3Ay" in carts


async def test_hostile_store_ids_never_reach_another_stores_keys(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    stores = ["open-store", "open-store}", "open-store:cart", "{open-store}", "Магазин"]
    for number, store_id in enumerate(stores, start=1):
        body = add("u", "pie", number, store_id=store_id)
        status, answer = await real_hooks.cart(body)
        expected = {"ok": True} if store_id == "open-store" else {
            "ok": False, "reason": "product_not_found"}  # fmt: skip
        assert (status, answer) == (200, expected)

    keys = sorted([key async for key in real_redis.scan_iter("cartsvc:*:cart:*")])
    assert keys == ["cartsvc:{open-store}:cart:u"]


async def test_hostile_skus_each_keep_their_own_line(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    skus = ["a:b", "a}b{c", "x%3Ay", "x:y", "Хліб-1", "s" * 128]
    for number, sku in enumerate(skus, start=1):
        body = {**add("u", sku, number, store_id="open-store"), "name": f"n{number}",
                "price": number}  # fmt: skip
        await real_hooks.ok(**body)

    _, cart = await real_hooks.items("open-store", "u")

    assert [(i["sku"], i["quantity"], i["name"]) for i in cart["items"]] == [
        (sku, number, f"n{number}") for number, sku in enumerate(skus, start=1)
    ]
    assert len(await real_redis.hgetall("cartsvc:{open-store}:cart:u")) == len(skus)


async def test_an_id_of_129_characters_is_refused(real_hooks: Webhooks) -> None:
    assert await real_hooks.cart(add("s" * 129, "salt-01")) == (
        200,
        {"ok": False, "reason": "invalid_id"},
    )
