"""POST /api/vizochok/cart: every action and reason, on real and embedded Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Webhooks, make_settings

S = {"store_id": "store-1", "session_id": "user-123"}


def add(sku: str, quantity: Any = None, **extra: Any) -> dict[str, Any]:
    body = {"action": "add", **S, "sku": sku, **extra}
    if quantity is not None:
        body["quantity"] = quantity
    return body


async def test_example_add_then_get_lists_the_line(hooks: Webhooks) -> None:
    body = {
        "action": "add",
        "store_id": "store-1",
        "session_id": "user-123",
        "sku": "milk-001",
        "name": "Молоко Lactel 2.5%",
        "quantity": 1,
        "price": 45.90,
    }
    assert await hooks.cart(body) == (200, {"ok": True})

    status, cart = await hooks.items("store-1", "user-123")
    assert status == 200
    assert cart == {
        "items": [
            {
                "sku": "milk-001",
                "name": "Молоко Lactel 2.5%",
                "price": 45.9,
                "quantity": 1,
                "unit": "pcs",
            }
        ],
        "total": 45.9,
    }


REJECTIONS = [
    pytest.param(
        {"store_id": "store-1", "session_id": "u"}, "missing_params", id="no-action"
    ),
    pytest.param(
        {"action": "add", "session_id": "u", "sku": "milk-001"},
        "missing_params",
        id="no-store",
    ),
    pytest.param(
        {"action": "add", "store_id": "store-1", "sku": "milk-001"},
        "missing_params",
        id="no-session",
    ),
    pytest.param(
        {"action": "add", "store_id": "store-1", "session_id": "", "sku": "x"},
        "missing_params",
        id="empty-session",
    ),
    pytest.param(
        {"action": "update_quantity", **S, "sku": "milk-001"},
        "missing_params",
        id="update-without-quantity",
    ),
    pytest.param(
        {"action": "update_quantity", **S},
        "missing_params",
        id="update-without-anything",
    ),
    pytest.param({"action": "add", **S}, "missing_sku", id="add-no-sku"),
    pytest.param(
        {"action": "remove", **S, "sku": ""}, "missing_sku", id="remove-empty-sku"
    ),
    pytest.param(
        {"action": "update_quantity", **S, "quantity": 1},
        "missing_sku",
        id="update-no-sku",
    ),
    pytest.param(
        {"action": "buy", **S, "sku": "milk-001"}, "unknown_action", id="unknown"
    ),
    pytest.param(
        {"action": "ADD", **S, "sku": "milk-001"}, "unknown_action", id="uppercase"
    ),
    pytest.param(add("milk-001", "1"), "invalid_quantity", id="string-quantity"),
    pytest.param(add("milk-001", True), "invalid_quantity", id="boolean-quantity"),
    pytest.param(add("milk-001", [1]), "invalid_quantity", id="list-quantity"),
    pytest.param(add("milk-001", 0), "invalid_quantity", id="add-zero"),
    pytest.param(add("milk-001", -1), "invalid_quantity", id="add-negative"),
    pytest.param(
        {"action": "update_quantity", **S, "sku": "milk-001", "quantity": -1},
        "invalid_quantity",
        id="update-negative",
    ),
    pytest.param(add("milk-001", 0.5), "invalid_quantity", id="not-a-multiple-of-step"),
    pytest.param(
        add("apples-kg", 0.15), "invalid_quantity", id="not-a-multiple-of-0.1"
    ),
    pytest.param(add("milk-001", 1000), "invalid_quantity", id="above-line-maximum"),
    pytest.param(
        add("milk-001", 0.0001), "invalid_quantity", id="finer-than-thousandths"
    ),
    pytest.param(add("nope-404"), "product_not_found", id="unknown-sku-strict"),
    pytest.param(add("caviar-01"), "out_of_stock", id="stock-zero"),
    pytest.param(add("coffee-01"), "out_of_stock", id="inactive"),
    pytest.param(
        {"action": "remove", **S, "sku": "milk-001"}, "not_in_cart", id="remove-absent"
    ),
    pytest.param(
        {"action": "update_quantity", **S, "sku": "milk-001", "quantity": 2},
        "not_in_cart",
        id="update-absent",
    ),
    pytest.param(
        {"action": "update_quantity", **S, "sku": "milk-001", "quantity": 0},
        "not_in_cart",
        id="update-absent-to-zero",
    ),
    pytest.param(
        {"action": "remove", **S, "sku": "nope-404"},
        "product_not_found",
        id="remove-unknown-strict",
    ),
    pytest.param(
        {"action": "update_quantity", **S, "sku": "nope-404", "quantity": 0},
        "product_not_found",
        id="update-unknown-to-zero-strict",
    ),
    pytest.param(
        {"action": "remove", "store_id": "open-store", "session_id": "u", "sku": "x"},
        "not_in_cart",
        id="remove-unknown-open",
    ),
    pytest.param(
        {**add("milk-001"), "store_id": "s" * 129}, "invalid_id", id="store-too-long"
    ),
    pytest.param(
        {**add("milk-001"), "session_id": ["u"]}, "invalid_id", id="session-not-text"
    ),
]


@pytest.mark.parametrize(("body", "reason"), REJECTIONS)
async def test_rejection_names_its_reason(
    hooks: Webhooks, body: dict[str, Any], reason: str
) -> None:
    assert await hooks.cart(body) == (200, {"ok": False, "reason": reason})

    _, cart = await hooks.items("store-1", "user-123")
    assert cart == {"items": [], "total": 0}


async def test_invalid_quantity_comes_before_product_not_found(hooks: Webhooks) -> None:
    assert await hooks.cart(add("nope-404", "2")) == (
        200,
        {"ok": False, "reason": "invalid_quantity"},
    )


async def test_quantity_exceeded_offers_what_stock_allows(hooks: Webhooks) -> None:
    await hooks.ok(**add("few-01", 3))

    status, answer = await hooks.cart(add("few-01", 3))

    assert (status, answer) == (
        200,
        {"ok": False, "reason": "quantity_exceeded", "available": 5},
    )


async def test_per_customer_limit_is_named_with_its_number(hooks: Webhooks) -> None:
    await hooks.ok(**add("eggs-10", 2))

    assert await hooks.cart(add("eggs-10", 2)) == (
        200,
        {"ok": False, "reason": "max_3_per_customer", "available": 3},
    )
    await hooks.ok(**add("eggs-10", 1))


async def test_resulting_quantity_above_line_maximum_is_exceeded(
    hooks: Webhooks,
) -> None:
    await hooks.ok(**add("salt-01", 999))

    assert await hooks.cart(add("salt-01", 1)) == (
        200,
        {"ok": False, "reason": "quantity_exceeded", "available": 999},
    )


async def test_add_accumulates_and_update_sets(hooks: Webhooks) -> None:
    await hooks.ok(**add("milk-001", 2))
    await hooks.ok(**add("milk-001"))
    _, cart = await hooks.items("store-1", "user-123")
    assert cart["items"][0]["quantity"] == 3

    await hooks.ok(action="update_quantity", **S, sku="milk-001", quantity=7)

    _, cart = await hooks.items("store-1", "user-123")
    assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [("milk-001", 7)]


async def test_update_to_zero_removes_the_line(hooks: Webhooks) -> None:
    await hooks.ok(**add("milk-001", 2))

    await hooks.ok(action="update_quantity", **S, sku="milk-001", quantity=0)

    assert await hooks.items("store-1", "user-123") == (200, {"items": [], "total": 0})


async def test_remove_deletes_only_that_line(hooks: Webhooks) -> None:
    await hooks.ok(**add("milk-001"))
    await hooks.ok(**add("bread-01"))

    await hooks.ok(action="remove", **S, sku="milk-001")

    _, cart = await hooks.items("store-1", "user-123")
    assert [i["sku"] for i in cart["items"]] == ["bread-01"]


async def test_clear_empties_the_cart_and_succeeds_when_empty(hooks: Webhooks) -> None:
    await hooks.ok(**add("milk-001"))
    await hooks.ok(**add("bread-01"))

    await hooks.ok(action="clear", **S)
    await hooks.ok(action="clear", **S)

    assert await hooks.items("store-1", "user-123") == (200, {"items": [], "total": 0})


async def test_lowering_is_allowed_when_stock_fell_below_the_line(
    hooks: Webhooks, redis_client: Any
) -> None:
    await hooks.ok(**add("few-01", 5))
    await redis_client.hset("cartsvc:{store-1}:product:few-01", "stock", "1")

    await hooks.ok(action="update_quantity", **S, sku="few-01", quantity=4)
    assert await hooks.cart(
        {"action": "update_quantity", **S, "sku": "few-01", "quantity": 5}
    ) == (200, {"ok": False, "reason": "quantity_exceeded", "available": 1})


async def test_lowering_and_removing_work_after_the_product_left_the_catalog(
    hooks: Webhooks, redis_client: Any
) -> None:
    await hooks.ok(**add("milk-001", 3))
    await redis_client.delete("cartsvc:{store-1}:product:milk-001")

    await hooks.ok(action="update_quantity", **S, sku="milk-001", quantity=1)
    assert await hooks.cart(add("milk-001")) == (
        200,
        {"ok": False, "reason": "product_not_found"},
    )
    await hooks.ok(action="remove", **S, sku="milk-001")


async def test_cart_full_refuses_a_new_line_but_not_more_of_one(
    aiohttp_client: Any, redis_client: Any
) -> None:
    from cartsvc.app import create_app
    from tests.conftest import load_products

    client = await aiohttp_client(
        create_app(make_settings(cart_max_lines=2), client=redis_client)
    )
    await load_products(client, "store-1")
    hooks = Webhooks(client)
    await hooks.ok(**add("milk-001"))
    await hooks.ok(**add("bread-01"))

    assert await hooks.cart(add("salt-01")) == (
        200,
        {"ok": False, "reason": "cart_full"},
    )
    await hooks.ok(**add("milk-001"))


async def test_stock_is_checked_not_reserved(hooks: Webhooks) -> None:
    await hooks.ok(**add("few-01", 5))
    await hooks.ok(**{**add("few-01", 5), "session_id": "another-shopper"})


async def test_decimal_quantities_add_up_exactly(
    hooks: Webhooks, redis_client: Any
) -> None:
    await hooks.ok(**add("apples-kg", 0.1))
    await hooks.ok(**add("apples-kg", 0.2))

    _, cart = await hooks.items("store-1", "user-123")
    assert cart["items"][0]["quantity"] == 0.3
    assert cart["total"] == 11.4
    assert (
        await redis_client.hget("cartsvc:{store-1}:cart:user-123", "apples-kg") == "0.3"
    )


@pytest.mark.parametrize("quantity", [1, 1.0, 1.000])
async def test_one_and_one_point_zero_are_the_same_quantity(
    hooks: Webhooks, redis_client: Any, quantity: float
) -> None:
    await hooks.ok(**add("milk-001", quantity))

    assert await redis_client.hget("cartsvc:{store-1}:cart:user-123", "milk-001") == "1"


async def test_open_mode_keeps_the_requests_name_and_price(hooks: Webhooks) -> None:
    body = {**add("local-pie", 2, name="Пиріг", price=55.5), "store_id": "open-store"}
    await hooks.ok(**body)

    _, cart = await hooks.items("open-store", "user-123")
    assert cart == {
        "items": [
            {
                "sku": "local-pie",
                "name": "Пиріг",
                "price": 55.5,
                "quantity": 2,
                "unit": "pcs",
            }
        ],
        "total": 111.0,
    }


async def test_catalog_name_and_price_win_over_the_request(hooks: Webhooks) -> None:
    await hooks.ok(**add("milk-001", 1, name="Cheap milk", price=0.01))

    _, cart = await hooks.items("store-1", "user-123")
    assert (cart["items"][0]["name"], cart["items"][0]["price"]) == (
        "Молоко Lactel 2.5%",
        45.9,
    )


async def test_numeric_sku_is_taken_as_text(hooks: Webhooks) -> None:
    body = {**add(12345, name="Numbered", price=1), "store_id": "open-store"}
    await hooks.ok(**body)

    _, cart = await hooks.items("open-store", "user-123")
    assert cart["items"][0]["sku"] == "12345"


async def test_cart_hash_is_readable_with_hgetall(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    await real_hooks.ok(**add("milk-001", 2))
    await real_hooks.ok(**add("apples-kg", 1.5))

    assert await real_redis.hgetall("cartsvc:{store-1}:cart:user-123") == {
        "milk-001": "2",
        "apples-kg": "1.5",
    }
    ttl = await real_redis.ttl("cartsvc:{store-1}:cart:user-123")
    assert 30 * 86400 - 5 < ttl <= 30 * 86400


async def test_two_hundred_concurrent_adds_give_exactly_two_hundred(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    body = add("salt-01")
    answers = await asyncio.gather(*(real_hooks.cart(body) for _ in range(200)))

    assert answers == [(200, {"ok": True})] * 200
    assert await real_redis.hget("cartsvc:{store-1}:cart:user-123", "salt-01") == "200"


async def test_cart_events_record_each_change(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    await real_hooks.ok(**add("milk-001", 2))
    await real_hooks.ok(action="clear", **S)

    events = await real_redis.xrange("cartsvc:{store-1}:events")
    assert [fields for _, fields in events] == [
        {"action": "add", "session": "user-123", "sku": "milk-001", "quantity": "2"},
        {"action": "clear", "session": "user-123", "sku": "", "quantity": ""},
    ]
