"""Retries and duplicates: a delivery is applied once and answered the same."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from cartsvc.http.signing import signed_headers
from tests.conftest import SECRET, Webhooks

S = {"store_id": "store-1", "session_id": "user-123"}
CART_KEY = "cartsvc:{store-1}:cart:user-123"


async def send_exact(
    hooks: Webhooks, raw: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with hooks.client.post(
        "/api/vizochok/cart", data=raw, headers=headers
    ) as reply:
        return reply.status, await reply.json()


async def test_same_signed_bytes_twice_apply_once(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    raw = orjson.dumps({"action": "add", **S, "sku": "salt-01", "quantity": 2})
    headers = signed_headers(SECRET, raw)

    first = await send_exact(real_hooks, raw, headers)
    second = await send_exact(real_hooks, raw, headers)

    assert first == second == (200, {"ok": True})
    assert await real_redis.hget(CART_KEY, "salt-01") == "2"


async def test_a_repeated_rejection_repeats_the_first_answer(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    body = {"action": "add", **S, "sku": "few-01", "quantity": 6}
    first = await real_hooks.cart(body, delivery="key-1")
    await real_redis.hset("cartsvc:{store-1}:product:few-01", "stock", "100")

    second = await real_hooks.cart(body, delivery="key-1")

    assert (
        first
        == second
        == (
            200,
            {"ok": False, "reason": "quantity_exceeded", "available": 5},
        )
    )
    assert await real_redis.hlen(CART_KEY) == 0


async def test_idempotency_key_survives_a_resigned_retry(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    body = {"action": "add", **S, "sku": "salt-01"}

    await real_hooks.cart(body, delivery="retry-1", now=time.time() - 1)
    await real_hooks.cart(body, delivery="retry-1", now=time.time())

    assert await real_redis.hget(CART_KEY, "salt-01") == "1"


async def test_twenty_copies_at_once_apply_once_with_one_answer(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    raw = orjson.dumps({"action": "add", **S, "sku": "few-01", "quantity": 4})
    headers = signed_headers(SECRET, raw)

    answers = await asyncio.gather(
        *(send_exact(real_hooks, raw, headers) for _ in range(20))
    )

    assert answers == [(200, {"ok": True})] * 20
    assert await real_redis.hget(CART_KEY, "few-01") == "4"


async def test_idempotency_key_with_another_body_is_a_conflict(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    await real_hooks.cart({"action": "add", **S, "sku": "salt-01"}, delivery="k-9")

    answer = await real_hooks.cart(
        {"action": "add", **S, "sku": "milk-001"}, delivery="k-9"
    )

    assert answer == (409, {"ok": False, "reason": "idempotency_conflict"})
    assert await real_redis.hgetall(CART_KEY) == {"salt-01": "1"}


async def test_delivery_record_expires_after_the_dedup_window(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    await real_hooks.cart({"action": "add", **S, "sku": "salt-01"}, delivery="k-ttl")

    keys = [key async for key in real_redis.scan_iter("cartsvc:{store-1}:delivery:*")]
    assert len(keys) == 1
    assert 595 < await real_redis.ttl(keys[0]) <= 600


async def test_a_record_outlives_a_timestamp_from_the_future(
    aiohttp_client: Any, real_redis: Any
) -> None:
    from cartsvc.app import create_app
    from tests.conftest import load_products, make_settings

    settings = make_settings(dedup_ttl_s=301, replay_window_s=300)
    client = await aiohttp_client(create_app(settings, client=real_redis))
    await load_products(client, "store-1")
    hooks = Webhooks(client)
    raw = orjson.dumps({"action": "add", **S, "sku": "salt-01"})
    # Signed 290 s ahead, these bytes stay acceptable for 590 s from now: their
    # record must last that long, not the 301 s of the dedup window.
    headers = signed_headers(SECRET, raw, time.time() + 290)

    assert await send_exact(hooks, raw, headers) == (200, {"ok": True})

    keys = [key async for key in real_redis.scan_iter("cartsvc:{store-1}:delivery:*")]
    assert 585 < await real_redis.ttl(keys[0]) <= 591
    assert await send_exact(hooks, raw, headers) == (200, {"ok": True})
    assert await real_redis.hget(CART_KEY, "salt-01") == "1"


async def test_a_failed_attempt_leaves_no_record_so_the_retry_applies(
    aiohttp_client: Any, redis_server: Any, real_redis: Any
) -> None:
    from dataclasses import replace

    from cartsvc.app import create_app
    from tests.conftest import load_products, make_settings
    from tests.servers import free_port

    settings = make_settings()
    dead = replace(
        settings,
        redis=replace(settings.redis, url=f"redis://127.0.0.1:{free_port()}/0"),
    )
    down = Webhooks(await aiohttp_client(create_app(dead)))
    up = Webhooks(await aiohttp_client(create_app(settings, client=real_redis)))
    await load_products(up.client, "store-1")
    body = {"action": "add", **S, "sku": "salt-01"}

    assert await down.cart(body, delivery="k-503") == (
        503,
        {"ok": False, "reason": "temporarily_unavailable"},
    )
    assert await up.cart(body, delivery="k-503") == (200, {"ok": True})
    assert await real_redis.hget(CART_KEY, "salt-01") == "1"


async def test_padding_around_the_timestamp_does_not_make_another_delivery(
    real_hooks: Webhooks, real_redis: Any
) -> None:
    raw = orjson.dumps({"action": "add", **S, "sku": "salt-01"})
    headers = signed_headers(SECRET, raw)
    server = real_hooks.client.server
    answers = []
    for padding in ("", " ", "\u00a0", "\u00a0\u00a0"):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        head = (
            f"POST /api/vizochok/cart HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
            f"X-VIZOCHOK-Timestamp: {headers['X-VIZOCHOK-Timestamp']}{padding}\r\n"
            f"X-VIZOCHOK-Signature: {headers['X-VIZOCHOK-Signature']}\r\n\r\n"
        )
        writer.write(head.encode() + raw)
        answers.append((await reader.read()).split(b"\r\n", 1)[0])
        writer.close()

    assert answers == [b"HTTP/1.1 200 OK"] * 4
    assert await real_redis.hget(CART_KEY, "salt-01") == "1"
