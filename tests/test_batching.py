"""Concurrent script calls share pipelines, yet each keeps its own reply and error."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis

from cartsvc.errors import StorageUnavailable
from cartsvc.storage.batching import ScriptBatcher, batches_well
from cartsvc.storage.carts import CartChange, Storage
from tests.servers import free_port


def add(
    session_id: str, delivery_id: str, sku: str = "salt-01", **extra: Any
) -> CartChange:
    fields: dict[str, Any] = {
        "store_id": "store-1",
        "session_id": session_id,
        "action": "add",
        "sku": sku,
        "quantity_milli": 1000,
        "catalog_mode": "open",
        "line_max_milli": 999_000,
        "cart_max_lines": 100,
        "cart_ttl_s": 600,
        "delivery_id": delivery_id,
        "fingerprint": "f",
        "dedup_ttl_s": 600,
        "events_max": 0,
    }
    return CartChange(**{**fields, **extra})


@pytest.fixture
async def storage(real_redis: aioredis.Redis) -> Storage:
    storage = Storage(real_redis, "cartsvc", timeout_ms=2000)
    await storage.load_scripts()
    assert storage.batcher is not None
    return storage


def test_batches_on_a_real_server_only() -> None:
    assert batches_well(aioredis.Redis())
    assert not batches_well(fakeredis.FakeAsyncRedis())


async def test_concurrent_calls_share_a_pipeline_and_all_apply(
    storage: Storage, real_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert storage.batcher is not None
    sizes: list[int] = []
    send = storage.batcher._pipeline

    async def counted(batch: list[Any]) -> list[Any]:
        sizes.append(len(batch))
        return await send(batch)

    monkeypatch.setattr(storage.batcher, "_pipeline", counted)
    results = await asyncio.gather(
        *(storage.change_cart(add("u", f"d{n}")) for n in range(30))
    )

    assert [r.status for r in results] == ["applied"] * 30
    assert sizes == [30]
    assert await real_redis.hget("cartsvc:{store-1}:cart:u", "salt-01") == "30"


async def test_each_call_gets_its_own_reply(storage: Storage) -> None:
    await storage.change_cart(add("u", "seen"))

    replayed, conflict, fresh = await asyncio.gather(
        storage.change_cart(add("u", "seen")),
        storage.change_cart(add("u", "seen", fingerprint="other body")),
        storage.change_cart(add("u", "new")),
    )

    assert (replayed.status, conflict.status, fresh.status) == (
        "replayed",
        "conflict",
        "applied",
    )


async def test_an_error_fails_only_its_own_call(
    storage: Storage, real_redis: aioredis.Redis
) -> None:
    # A cart key of the wrong type makes the script fail for that session alone.
    await real_redis.set("cartsvc:{store-1}:cart:broken", "not a hash")

    results = await asyncio.gather(
        storage.change_cart(add("fine-1", "a")),
        storage.change_cart(add("broken", "b")),
        storage.change_cart(add("fine-2", "c")),
        return_exceptions=True,
    )

    assert [type(r).__name__ for r in results] == [
        "ChangeResult",
        "StorageUnavailable",
        "ChangeResult",
    ]


async def test_scripts_lost_by_redis_are_loaded_again(
    storage: Storage, real_redis: aioredis.Redis
) -> None:
    await real_redis.script_flush()

    results = await asyncio.gather(
        *(storage.change_cart(add("u", f"d{n}")) for n in range(5))
    )

    assert [r.status for r in results] == ["applied"] * 5
    assert await real_redis.hget("cartsvc:{store-1}:cart:u", "salt-01") == "5"


async def test_a_caller_that_gave_up_leaves_the_others_their_replies(
    storage: Storage,
) -> None:
    calls = [
        asyncio.ensure_future(storage.change_cart(add("u", f"d{n}"))) for n in range(3)
    ]
    await asyncio.sleep(0)
    calls[1].cancel()

    done = await asyncio.gather(*calls, return_exceptions=True)

    assert isinstance(done[1], asyncio.CancelledError)
    assert [done[0].status, done[2].status] == ["applied", "applied"]  # type: ignore[union-attr]


async def test_an_unreachable_redis_fails_every_call_of_the_batch() -> None:
    client = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)
    storage = Storage(client, "cartsvc", timeout_ms=2000)
    try:
        results = await asyncio.gather(
            *(storage.change_cart(add("u", f"d{n}")) for n in range(3)),
            return_exceptions=True,
        )
    finally:
        await client.aclose()

    assert all(isinstance(r, StorageUnavailable) for r in results)


async def test_the_batcher_runs_any_registered_script(
    real_redis: aioredis.Redis,
) -> None:
    script = real_redis.register_script("return {KEYS[1], ARGV[1]}")
    batcher = ScriptBatcher(real_redis, timeout_s=2)

    replies = await asyncio.gather(
        batcher.run(script, ["k1"], ["a"]), batcher.run(script, ["k2"], ["b"])
    )

    assert replies == [["k1", "a"], ["k2", "b"]]
