"""Signature checks of every webhook, on the real redis-server."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from cartsvc.http.signing import signature, signed_headers
from tests.conftest import SECRET, STORE_SECRET, Webhooks

ADD = {"action": "add", "store_id": "store-1", "session_id": "u-1", "sku": "milk-001"}
CART = "/api/vizochok/cart"


async def raw_post(
    hooks: Webhooks, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with hooks.client.post(CART, data=body, headers=headers) as response:
        return response.status, await response.json()


async def cart_is_empty(hooks: Webhooks, store_id: str = "store-1") -> bool:
    _, cart = await hooks.items(
        store_id, "u-1", secret=SECRET if store_id != "store-2" else STORE_SECRET
    )
    return bool(cart == {"items": [], "total": 0})


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-headers"),
        pytest.param({"X-VIZOCHOK-Timestamp": "1"}, id="no-signature"),
        pytest.param({"X-VIZOCHOK-Signature": "sha256=00"}, id="no-timestamp"),
    ],
)
async def test_missing_headers_are_missing_signature(
    real_hooks: Webhooks, headers: dict[str, str]
) -> None:
    status, answer = await raw_post(real_hooks, orjson.dumps(ADD), headers)

    assert (status, answer) == (401, {"ok": False, "reason": "missing_signature"})
    assert await cart_is_empty(real_hooks)


async def test_wrong_secret_is_invalid_signature(real_hooks: Webhooks) -> None:
    assert await real_hooks.cart(ADD, secret="not-the-secret") == (
        401,
        {"ok": False, "reason": "invalid_signature"},
    )
    assert await cart_is_empty(real_hooks)


@pytest.mark.parametrize("offset_s", [301, -301])
async def test_timestamp_301_seconds_off_is_expired(
    real_hooks: Webhooks, offset_s: int
) -> None:
    status, answer = await real_hooks.cart(ADD, now=time.time() + offset_s)

    assert (status, answer) == (401, {"ok": False, "reason": "timestamp_expired"})
    assert await cart_is_empty(real_hooks)


async def test_timestamp_299_seconds_old_is_accepted(real_hooks: Webhooks) -> None:
    assert await real_hooks.cart(ADD, now=time.time() - 299) == (200, {"ok": True})


async def test_body_altered_after_signing_is_invalid(real_hooks: Webhooks) -> None:
    signed = orjson.dumps(ADD)
    timestamp = str(int(time.time()))
    altered = signed.replace(b"milk-001", b"bread-01")
    headers = {
        "X-VIZOCHOK-Timestamp": timestamp,
        "X-VIZOCHOK-Signature": signature(SECRET, timestamp, signed),
    }

    status, answer = await raw_post(real_hooks, altered, headers)

    assert (status, answer) == (401, {"ok": False, "reason": "invalid_signature"})
    assert await cart_is_empty(real_hooks)


async def test_signature_over_reserialized_json_is_invalid(
    real_hooks: Webhooks,
) -> None:
    sent = (
        b'{"action": "add",  "store_id": "store-1", '
        b'"session_id": "u-1", "sku": "milk-001"}'
    )
    reserialized = json.dumps(json.loads(sent), separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "X-VIZOCHOK-Timestamp": timestamp,
        "X-VIZOCHOK-Signature": signature(SECRET, timestamp, reserialized),
    }

    status, answer = await raw_post(real_hooks, sent, headers)

    assert (status, answer) == (401, {"ok": False, "reason": "invalid_signature"})


async def test_signature_over_the_raw_bytes_as_sent_is_valid(
    real_hooks: Webhooks,
) -> None:
    sent = (
        b'{ "action" : "add", "store_id":"store-1",'
        b'"session_id":"u-1","sku":"milk-001" }'
    )
    timestamp = str(int(time.time()))
    headers = {
        "X-VIZOCHOK-Timestamp": timestamp,
        "X-VIZOCHOK-Signature": signature(SECRET, timestamp, sent),
    }

    assert await raw_post(real_hooks, sent, headers) == (200, {"ok": True})


async def test_a_stores_own_secret_opens_only_that_store(real_hooks: Webhooks) -> None:
    own = {**ADD, "store_id": "store-2"}

    assert await real_hooks.cart(own, secret=STORE_SECRET) == (200, {"ok": True})
    assert (await real_hooks.cart(own, secret=SECRET))[0] == 401
    assert (await real_hooks.cart(ADD, secret=STORE_SECRET))[0] == 401


async def test_a_store_id_sent_as_a_number_is_checked_with_that_stores_secret(
    aiohttp_client: Any, real_redis: Any
) -> None:
    from dataclasses import replace

    from cartsvc.app import create_app
    from cartsvc.settings import StoreSettings
    from tests.conftest import make_settings

    base = make_settings()
    own = StoreSettings(secrets=("store-5-secret",), catalog_mode="open")
    settings = replace(base, stores={**base.stores, "5": own})
    hooks = Webhooks(await aiohttp_client(create_app(settings, client=real_redis)))
    numeric = {**ADD, "store_id": 5, "session_id": "victim"}

    assert await hooks.cart(numeric, secret=SECRET) == (
        401,
        {"ok": False, "reason": "invalid_signature"},
    )
    assert await real_redis.exists("cartsvc:{5}:cart:victim") == 0
    assert await hooks.cart(numeric, secret="store-5-secret") == (200, {"ok": True})
    assert await real_redis.hget("cartsvc:{5}:cart:victim", "milk-001") == "1"
    products = {"store_id": 5, "skus": ["milk-001"]}
    assert (await hooks.products(products, secret=SECRET))[0] == 401


async def test_any_of_several_secrets_is_valid_during_rotation(
    aiohttp_client: Any, real_redis: Any
) -> None:
    from cartsvc.app import create_app
    from tests.conftest import load_products, make_settings

    settings = make_settings().with_secrets(("new-secret", "old-secret"))
    client = await aiohttp_client(create_app(settings, client=real_redis))
    await load_products(client, "store-1")
    hooks = Webhooks(client)

    assert await hooks.cart(ADD, secret="new-secret") == (200, {"ok": True})
    assert await hooks.cart(ADD, secret="old-secret") == (200, {"ok": True})
    assert (await hooks.cart(ADD, secret=SECRET))[0] == 401


async def test_get_is_signed_over_an_empty_body(real_hooks: Webhooks) -> None:
    assert (await real_hooks.items("store-1", "u-1"))[0] == 200
    assert await real_hooks.items("store-1", "u-1", secret="wrong") == (
        401,
        {"ok": False, "reason": "invalid_signature"},
    )
    async with real_hooks.client.get(
        "/api/vizochok/cart/items", params={"store_id": "store-1", "session_id": "u-1"}
    ) as response:
        assert (response.status, await response.json()) == (
            401,
            {"ok": False, "reason": "missing_signature"},
        )


async def test_unsigned_garbage_is_refused_before_its_json_is_judged(
    real_hooks: Webhooks,
) -> None:
    assert await raw_post(real_hooks, b"not json", {}) == (
        401,
        {"ok": False, "reason": "missing_signature"},
    )
    assert await real_hooks.cart(b"not json") == (
        400,
        {"ok": False, "reason": "invalid_json"},
    )
    assert await real_hooks.cart(b"[1, 2]") == (
        400,
        {"ok": False, "reason": "invalid_json"},
    )
    assert await real_hooks.cart(b"NaN") == (
        400,
        {"ok": False, "reason": "invalid_json"},
    )


async def test_body_above_the_limit_is_payload_too_large(real_hooks: Webhooks) -> None:
    body = orjson.dumps({**ADD, "name": "x" * 70_000})

    assert await real_hooks.cart(body) == (
        413,
        {"ok": False, "reason": "payload_too_large"},
    )
    assert await cart_is_empty(real_hooks)


@pytest.mark.parametrize("timestamp", ["abc", "-5", "1.5", "9" * 5000, "١٢٣"])
async def test_a_malformed_timestamp_is_invalid_signature(
    real_hooks: Webhooks, timestamp: str
) -> None:
    raw = orjson.dumps(ADD)
    headers = {
        "X-VIZOCHOK-Timestamp": timestamp,
        "X-VIZOCHOK-Signature": signature(SECRET, "1", raw),
    }

    assert await raw_post(real_hooks, raw, headers) == (
        401,
        {"ok": False, "reason": "invalid_signature"},
    )


@pytest.mark.parametrize("path", [CART, "/api/vizochok/check-products"])
async def test_a_compressed_body_is_refused_unread(
    real_hooks: Webhooks, real_redis: Any, path: str
) -> None:
    sent = gzip.compress(orjson.dumps(ADD))
    headers = {**signed_headers(SECRET, sent), "Content-Encoding": "gzip"}

    async with real_hooks.client.post(path, data=sent, headers=headers) as response:
        answer = (response.status, await response.json())

    assert answer == (415, {"ok": False, "reason": "unsupported_content_encoding"})
    assert await real_redis.dbsize() == await _products_only(real_redis)


async def test_a_second_content_encoding_header_is_seen_too(
    real_hooks: Webhooks,
) -> None:
    sent = gzip.compress(orjson.dumps(ADD))
    headers = CIMultiDict(signed_headers(SECRET, orjson.dumps(ADD)))
    headers.add("Content-Encoding", "identity")
    headers.add("Content-Encoding", "gzip")

    async with real_hooks.client.post(CART, data=sent, headers=headers) as response:
        answer = (response.status, await response.json())

    assert answer == (415, {"ok": False, "reason": "unsupported_content_encoding"})


async def test_an_identity_content_encoding_is_a_plain_body(
    real_hooks: Webhooks,
) -> None:
    sent = orjson.dumps(ADD)
    headers = {**signed_headers(SECRET, sent), "Content-Encoding": "identity"}

    assert await raw_post(real_hooks, sent, headers) == (200, {"ok": True})


async def _products_only(client: Any) -> int:
    return len([key async for key in client.scan_iter("cartsvc:*:product:*")])
