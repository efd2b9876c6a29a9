"""Key names and id escaping, and the Lua copy of the escaping rule."""

from __future__ import annotations

from typing import Any

import pytest

from cartsvc.storage.carts import Storage
from cartsvc.storage.keys import StoreKeys, escape_id

HOSTILE = [
    "a:b",
    "a}b{c",
    "x%3Ay",
    "x:y",
    "Хліб",
    "a b",
    "\x00\x01\x7f",
    "~._-",
    "é" * 64,
    "*?[",
    "%",
    "%25",
    "{",
    "}",
]


def test_ordinary_ids_stay_readable() -> None:
    keys = StoreKeys("cartsvc", "store-1")
    assert keys.cart("user-123") == "cartsvc:{store-1}:cart:user-123"
    assert keys.product("milk-001") == "cartsvc:{store-1}:product:milk-001"


def test_escaping_is_injective_and_leaves_no_separator() -> None:
    escaped = [escape_id(raw) for raw in HOSTILE]

    assert len(set(escaped)) == len(HOSTILE)
    for text in escaped:
        assert not set(text) & set(":{} \x00")
        assert text.isascii()


def test_percent_is_escaped_so_encoded_ids_never_meet_raw_ones() -> None:
    assert escape_id("x:y") == "x%3Ay"
    assert escape_id("x%3Ay") == "x%253Ay"


def test_a_store_id_cannot_close_the_hash_tag() -> None:
    key = StoreKeys("cartsvc", "s}x{y").cart("u")
    assert key == "cartsvc:{s%7Dx%7By}:cart:u"
    assert key.count("{") == 1 and key.count("}") == 1


@pytest.mark.parametrize("sku", HOSTILE)
async def test_lua_escaping_matches_python(redis_client: Any, sku: str) -> None:
    """cart_read.lua builds product keys itself; it must build the same ones."""
    storage = Storage(redis_client, "cartsvc", 5000)
    keys = storage.keys("store-1")
    await redis_client.hset(keys.product(sku), mapping={"name": "n", "price": "2"})
    await redis_client.hset(keys.cart("u"), sku, "3")

    lines = await storage.read_cart("store-1", "u")

    assert [(line.sku, line.price, line.name) for line in lines] == [(sku, "2", "n")]
