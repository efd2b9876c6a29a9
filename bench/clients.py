"""The Redis client on the hot path: the same cart EVALSHA through each candidate.

Each candidate runs cart adds from 50 concurrent tasks for a fixed time, on one
core, against the benchmark's redis-server on the other. Reported: calls/s and
the client's own CPU per call (process time / calls), which is what a request
pays for its Redis call in a service whose core is saturated.
Run: `python -m bench.clients --redis-url U`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from cartsvc.settings import RedisSettings
from cartsvc.storage.carts import CartChange, Storage
from cartsvc.storage.connection import connect
from cartsvc.storage.keys import StoreKeys
from cartsvc.storage.scripts import script_source

CONCURRENCY = 50
SECONDS = 2.0
STORE = "clients"
KEYS = StoreKeys("cartsvc", STORE)

Call = Callable[[int], Awaitable[Any]]


def _change(n: int, run: str) -> CartChange:
    return CartChange(
        store_id=STORE,
        session_id=f"s-{n % 1000}",
        action="add",
        sku=f"sku-{n % 7}",
        quantity_milli=1000,
        catalog_mode="open",
        line_max_milli=999_000_000,
        cart_max_lines=100,
        cart_ttl_s=3600,
        delivery_id=f"{run}-{n}",
        fingerprint="f",
        dedup_ttl_s=60,
        events_max=0,
    )


def _keys_args(n: int, run: str) -> tuple[list[str], list[Any]]:
    change = _change(n, run)
    keys = [
        KEYS.cart(change.session_id),
        KEYS.lines(change.session_id),
        KEYS.delivery(change.delivery_id),
        KEYS.events(),
        KEYS.product(change.sku),
    ]
    args = ["add", change.session_id, change.sku, "1000", "open", 999_000_000, 100,
            3600, "f", 60, 0, "", ""]  # fmt: skip
    return keys, args


async def drive(call: Call) -> tuple[float, float]:
    """Calls/s and client CPU µs per call, CONCURRENCY tasks for SECONDS."""
    counter = iter(range(10**9))
    stop_at = time.monotonic() + SECONDS
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            await call(next(counter))
            done += 1

    wall, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    return done / wall, cpu / done * 1e6


async def _storage(url: str, batched: bool) -> Storage:
    storage = Storage(connect(RedisSettings(url=url)), "cartsvc", 1000)
    if not batched:
        storage.batcher = None
    await storage.load_scripts()
    return storage


async def storage_before(url: str, run: str) -> tuple[Call, Callable[[], Any]]:
    """cartsvc's Storage.change_cart, one redis-py Script call per request."""
    storage = await _storage(url, batched=False)
    return (lambda n: storage.change_cart(_change(n, run))), storage.close


async def storage_batched(url: str, run: str) -> tuple[Call, Callable[[], Any]]:
    """cartsvc's Storage.change_cart now: calls of one loop turn in one pipeline."""
    storage = await _storage(url, batched=True)
    return (lambda n: storage.change_cart(_change(n, run))), storage.close


async def redis_py_evalsha(url: str, run: str) -> tuple[Call, Callable[[], Any]]:
    """redis.asyncio (hiredis) EVALSHA on its default pool: the floor's call."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    sha = await client.script_load(script_source("cart_change"))

    async def call(n: int) -> Any:
        keys, args = _keys_args(n, run)
        return await client.evalsha(sha, len(keys), *keys, *args)

    return call, client.aclose


async def coredis_evalsha(url: str, run: str) -> tuple[Call, Callable[[], Any]]:
    import coredis

    client: Any = coredis.Redis.from_url(url, decode_responses=True)
    await client.__aenter__()
    sha = await client.script_load(script_source("cart_change"))

    async def call(n: int) -> Any:
        keys, args = _keys_args(n, run)
        return await client.evalsha(sha, keys=keys, args=args)

    return call, lambda: client.__aexit__(None, None, None)


async def glide_script(url: str, run: str) -> tuple[Call, Callable[[], Any]]:
    from glide import GlideClient, GlideClientConfiguration, NodeAddress, Script

    port = int(url.rsplit(":", 1)[1].split("/")[0])
    config = GlideClientConfiguration([NodeAddress("127.0.0.1", port)])
    client = await GlideClient.create(config)
    script = Script(script_source("cart_change"))

    async def call(n: int) -> Any:
        keys, args = _keys_args(n, run)
        return await client.invoke_script(
            script, keys=keys, args=[str(a) for a in args]
        )

    return call, client.close


Factory = Callable[[str, str], Awaitable[tuple[Call, Callable[[], Any]]]]
CANDIDATES: dict[str, Factory] = {
    "redis-py evalsha (the floor's call)": redis_py_evalsha,
    "coredis 6 evalsha": coredis_evalsha,
    "valkey-glide 2 invoke_script": glide_script,
    "cartsvc Storage, a redis-py Script call each (before)": storage_before,
    "cartsvc Storage, batched into redis-py pipelines (now)": storage_batched,
}


async def compare(url: str) -> list[tuple[str, float, float]]:
    rows = []
    for index, (name, make) in enumerate(CANDIDATES.items()):
        try:
            call, close = await make(url, f"c{index}-{time.time_ns()}")
        except ImportError as error:
            print(f"  {name}: not installed ({error.name})")
            continue

        await drive(call)  # warm: connections opened, scripts cached
        rate, cpu_us = await drive(call)
        await close()
        rows.append((name, rate, cpu_us))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clients")
    parser.add_argument("--redis-url", required=True)
    url = parser.parse_args().redis_url
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass

    rows = asyncio.run(compare(url))
    print(f"\nRedis clients, cart add EVALSHA, {CONCURRENCY} concurrent, one core")
    print("| client | calls/s | client CPU µs/call |")
    print("|---|---:|---:|")
    for name, rate, cpu_us in rows:
        print(f"| {name} | {rate:,.0f} | {cpu_us:.0f} |")


if __name__ == "__main__":
    main()
