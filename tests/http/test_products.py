"""POST /api/vizochok/check-products: prices and availability, on a real Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import SECRET, STORE_SECRET, Webhooks

PRODUCTS = "/api/vizochok/check-products"


async def test_known_skus_are_answered_in_the_order_asked(real_hooks: Webhooks) -> None:
    body = {"skus": ["bread-01", "milk-001"], "store_id": "store-1"}

    assert await real_hooks.products(body) == (
        200,
        {
            "products": [
                {"sku": "bread-01", "price": 32.0, "in_stock": True},
                {"sku": "milk-001", "price": 45.9, "in_stock": True},
            ]
        },
    )


async def test_unknown_skus_are_left_out(real_hooks: Webhooks) -> None:
    body = {"skus": ["nope-404", "salt-01", "gone-1"], "store_id": "store-1"}

    assert await real_hooks.products(body) == (
        200,
        {"products": [{"sku": "salt-01", "price": 12.3, "in_stock": True}]},
    )


async def test_a_store_without_the_skus_answers_an_empty_list(
    real_hooks: Webhooks,
) -> None:
    body = {"skus": ["milk-001"], "store_id": "store-without-catalog"}

    assert await real_hooks.products(body) == (200, {"products": []})


async def test_promo_price_and_label_come_with_the_regular_price(
    real_hooks: Webhooks,
) -> None:
    body = {"skus": ["eggs-10"], "store_id": "store-1"}

    assert await real_hooks.products(body) == (
        200,
        {
            "products": [
                {
                    "sku": "eggs-10",
                    "price": 64.5,
                    "in_stock": True,
                    "promo_price": 59.9,
                    "promo_label": "-7%",
                }
            ]
        },
    )


@pytest.mark.parametrize(
    ("sku", "in_stock"),
    [
        pytest.param("caviar-01", False, id="stock-zero"),
        pytest.param("coffee-01", False, id="inactive"),
        pytest.param("salt-01", True, id="stock-not-tracked"),
        pytest.param("apples-kg", True, id="fractional-stock"),
        pytest.param("few-01", True, id="low-stock"),
    ],
)
async def test_in_stock_follows_stock_and_active(
    real_hooks: Webhooks, sku: str, in_stock: bool
) -> None:
    status, answer = await real_hooks.products({"skus": [sku], "store_id": "store-1"})

    assert status == 200
    assert [(p["sku"], p["in_stock"]) for p in answer["products"]] == [(sku, in_stock)]


async def test_stock_change_in_redis_shows_at_once(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    await real_redis.hset("cartsvc:{store-1}:product:few-01", "stock", "0")

    _, answer = await real_hooks.products({"skus": ["few-01"], "store_id": "store-1"})

    assert answer["products"][0]["in_stock"] is False


async def test_a_repeated_sku_is_answered_once(real_hooks: Webhooks) -> None:
    body = {"skus": ["salt-01", "salt-01", 12345], "store_id": "store-1"}

    assert await real_hooks.products(body) == (
        200,
        {"products": [{"sku": "salt-01", "price": 12.3, "in_stock": True}]},
    )


async def test_hundred_skus_are_answered(real_hooks: Webhooks) -> None:
    skus = ["milk-001"] + [f"unknown-{n}" for n in range(99)]

    status, answer = await real_hooks.products({"skus": skus, "store_id": "store-1"})

    assert (status, [p["sku"] for p in answer["products"]]) == (200, ["milk-001"])


async def test_more_than_a_hundred_skus_is_too_many(real_hooks: Webhooks) -> None:
    skus = [f"sku-{n}" for n in range(101)]

    assert await real_hooks.products({"skus": skus, "store_id": "store-1"}) == (
        400,
        {"ok": False, "reason": "too_many_skus", "limit": 100},
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param({"skus": ["milk-001"]}, "missing_params", id="no-store"),
        pytest.param({"skus": ["milk-001"], "store_id": ""}, "missing_params",
                     id="empty-store"),
        pytest.param({"store_id": "store-1"}, "missing_params", id="no-skus"),
        pytest.param({"skus": None, "store_id": "store-1"}, "missing_params",
                     id="null-skus"),
        pytest.param({"skus": "milk-001", "store_id": "store-1"}, "invalid_skus",
                     id="skus-not-a-list"),
        pytest.param({"skus": ["milk-001", ""], "store_id": "store-1"}, "invalid_skus",
                     id="empty-sku"),
        pytest.param({"skus": [True], "store_id": "store-1"}, "invalid_skus",
                     id="boolean-sku"),
        pytest.param({"skus": [{"sku": "a"}], "store_id": "store-1"}, "invalid_skus",
                     id="object-sku"),
        pytest.param({"skus": ["milk-001"], "store_id": ["store-1"]}, "invalid_id",
                     id="store-not-text"),
    ],
)  # fmt: skip
async def test_a_malformed_request_is_400_with_its_reason(
    real_hooks: Webhooks, body: dict[str, Any], reason: str
) -> None:
    assert await real_hooks.products(body) == (400, {"ok": False, "reason": reason})


async def test_a_body_that_is_not_a_json_object_is_invalid_json(
    real_hooks: Webhooks,
) -> None:
    assert await real_hooks.post(PRODUCTS, b'["milk-001"]') == (
        400,
        {"ok": False, "reason": "invalid_json"},
    )


async def test_an_unsigned_request_is_refused(real_hooks: Webhooks) -> None:
    raw = b'{"skus": ["milk-001"], "store_id": "store-1"}'
    headers = {"Content-Type": "application/json"}

    async with real_hooks.client.post(PRODUCTS, data=raw, headers=headers) as response:
        assert response.status == 401
        assert await response.json() == {"ok": False, "reason": "missing_signature"}


@pytest.mark.parametrize(
    ("store_id", "secret", "status"),
    [
        pytest.param("store-1", "not-the-secret", 401, id="wrong-secret"),
        pytest.param("store-2", SECRET, 401, id="default-secret-on-own-secret-store"),
        pytest.param("store-2", STORE_SECRET, 200, id="store-own-secret"),
        pytest.param("store-1", STORE_SECRET, 401, id="another-stores-secret"),
    ],
)
async def test_the_secret_is_chosen_by_the_store(
    real_hooks: Webhooks, store_id: str, secret: str, status: int
) -> None:
    body = {"skus": ["milk-001"], "store_id": store_id}

    answer_status, answer = await real_hooks.products(body, secret=secret)

    assert answer_status == status
    if status == 401:
        assert answer == {"ok": False, "reason": "invalid_signature"}
    else:
        assert answer["products"][0]["sku"] == "milk-001"


async def test_an_old_timestamp_is_refused(real_hooks: Webhooks) -> None:
    body = {"skus": ["milk-001"], "store_id": "store-1"}

    assert await real_hooks.products(body, now=time.time() - 301) == (
        401,
        {"ok": False, "reason": "timestamp_expired"},
    )


async def test_a_sku_longer_than_any_catalog_sku_is_left_out(
    real_hooks: Webhooks,
) -> None:
    body = {"skus": ["s" * 129, "milk-001"], "store_id": "store-1"}

    status, answer = await real_hooks.products(body)

    assert status == 200
    assert [product["sku"] for product in answer["products"]] == ["milk-001"]


async def test_less_than_one_step_left_is_out_of_stock_everywhere(
    real_hooks: Webhooks,
) -> None:
    from tests.http.test_large_numbers import load_row

    by_weight = {"unit": "kg", "step": "0.5"}
    await load_row(real_hooks, {"sku": "cheese-kg", "name": "Cheese", "price": "300",
                                "stock": "0.3", **by_weight})  # fmt: skip
    await load_row(real_hooks, {"sku": "ham-kg", "name": "Ham", "price": "200",
                                "stock": "0.5", **by_weight})  # fmt: skip
    body = {"skus": ["cheese-kg", "ham-kg"], "store_id": "store-1"}
    add = {"action": "add", "store_id": "store-1", "session_id": "st", "quantity": 0.5}

    assert await real_hooks.products(body) == (
        200,
        {
            "products": [
                {"sku": "cheese-kg", "price": 300.0, "in_stock": False},
                {"sku": "ham-kg", "price": 200.0, "in_stock": True},
            ]
        },
    )
    assert await real_hooks.cart({**add, "sku": "cheese-kg"}) == (
        200,
        {"ok": False, "reason": "out_of_stock"},
    )
    assert await real_hooks.cart({**add, "sku": "ham-kg"}) == (200, {"ok": True})
