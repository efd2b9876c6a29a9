"""Redis stopped: an answer of 503 in time; Redis back: service resumes unaided."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from cartsvc.app import create_app
from cartsvc.catalog import product_from_row
from tests.conftest import Webhooks, make_settings, start_redis
from tests.servers import RedisServer

ADD = {"action": "add", "store_id": "store-1", "session_id": "u", "sku": "salt-01"}


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.close()


async def test_redis_down_answers_503_fast_and_recovers(
    aiohttp_client: Any, own_redis: RedisServer
) -> None:
    settings = make_settings()
    settings = replace(settings, redis=replace(settings.redis, url=own_redis.url))
    hooks = Webhooks(await aiohttp_client(create_app(settings)))
    salt = product_from_row({"sku": "salt-01", "name": "Сіль", "price": "12.30"})
    with own_redis.client() as direct:
        direct.hset("cartsvc:{store-1}:product:salt-01", mapping=salt.fields())
    await hooks.ok(**ADD)

    own_redis.stop()
    started = time.monotonic()
    answer = await hooks.cart(ADD)
    took_s = time.monotonic() - started

    assert answer == (503, {"ok": False, "reason": "temporarily_unavailable"})
    assert took_s < 2.0
    status, _ = await hooks.items("store-1", "u")
    assert status == 503
    async with hooks.client.get("/readyz") as response:
        assert response.status == 503

    # The restarted server is empty and has no scripts cached: NOSCRIPT is
    # handled by reloading, and the pool replaces its dead connections.
    own_redis.start()
    with own_redis.client() as direct:
        direct.hset("cartsvc:{store-1}:product:salt-01", mapping=salt.fields())

    assert await hooks.cart(ADD) == (200, {"ok": True})
    assert await hooks.items("store-1", "u") == (
        200,
        {"items": [{"sku": "salt-01", "name": "Сіль", "price": 12.3, "quantity": 1,
                    "unit": "pcs"}], "total": 12.3},
    )  # fmt: skip
