"""Fixtures: a real redis-server started by the suite, the app, signed deliveries."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import fakeredis
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from cartsvc import catalog
from cartsvc.app import create_app
from cartsvc.http.signing import signed_headers
from cartsvc.settings import RedisSettings, Settings, StoreSettings
from cartsvc.storage.connection import connect
from tests.cluster import LocalCluster
from tests.servers import RedisServer

SECRET = "test-secret"
STORE_SECRET = "store-2-secret"
IN_CI = bool(os.environ.get("CI"))

SAMPLE_PRODUCTS = [
    {"sku": "milk-001", "name": "Молоко Lactel 2.5%", "price": "45.90", "stock": "120"},
    {"sku": "bread-01", "name": "Хліб", "price": "32.00", "stock": "40"},
    {
        "sku": "eggs-10",
        "name": "Яйця",
        "price": "64.50",
        "stock": "25",
        "max_per_customer": "3",
        "promo_price": "59.90",
        "promo_label": "-7%",
    },
    {
        "sku": "apples-kg",
        "name": "Яблука",
        "price": "38.00",
        "stock": "50.5",
        "unit": "kg",
        "step": "0.1",
    },
    {"sku": "caviar-01", "name": "Ікра", "price": "399", "stock": "0"},
    {"sku": "coffee-01", "name": "Кава", "price": "189", "active": "false"},
    {"sku": "salt-01", "name": "Сіль", "price": "12.30"},
    {"sku": "few-01", "name": "Few", "price": "10", "stock": "5"},
]

_skipped: list[str] = []
UNIQUE = "unique"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI a skipped test (above all a real-Redis one) is a failure, not a pass.
    if IN_CI and _skipped:
        print(f"\nCI: {len(_skipped)} test(s) skipped, which fails the run:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def start_redis(*args: str) -> RedisServer:
    try:
        return RedisServer(*args).start()
    except FileNotFoundError:
        if IN_CI:
            pytest.fail("redis-server is not installed; CI must install it")
        pytest.skip("redis-server is not installed")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.close()


def start_cluster() -> LocalCluster:
    try:
        return LocalCluster().start()
    except FileNotFoundError:
        if IN_CI:
            pytest.fail("redis-server or redis-cli is missing; CI must install them")
        pytest.skip("redis-server or redis-cli is not installed")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A Redis Cluster of three masters, started once for the suite."""
    cluster = start_cluster()
    yield cluster
    cluster.close()


def make_settings(**limits: Any) -> Settings:
    base = Settings(
        secrets=(SECRET,),
        stores={
            "store-2": StoreSettings(secrets=(STORE_SECRET,), catalog_mode="strict"),
            "open-store": StoreSettings(catalog_mode="open"),
        },
    )
    return replace(base, limits=replace(base.limits, **limits)) if limits else base


@pytest.fixture(params=["real", "embedded", "cluster"])
async def redis_client(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[Any]:
    """A client on the suite's redis-server or Redis Cluster (flushed), or embedded."""
    if request.param == "embedded":
        client = fakeredis.FakeAsyncRedis(decode_responses=True)
    elif request.param == "cluster":
        # Started on first use only; the client is the one the service builds.
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        client = connect(RedisSettings(url=cluster.url, cluster=True))
    else:
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        await client.flushall()

    yield client
    await client.aclose()


@pytest.fixture
async def real_redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client on the suite's real redis-server only, flushed."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


class Webhooks:
    """Signed deliveries to a test client, as VIZOCHOK's servers send them."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def post(
        self,
        path: str,
        body: dict[str, Any] | bytes,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
        now: float | None = None,
        delivery: str | None = UNIQUE,
    ) -> tuple[int, Any]:
        """Send one signed delivery.

        Each call is its own delivery by default (a fresh Idempotency-Key), as with
        a sender that numbers its deliveries; `delivery=None` sends no key, so the
        signed bytes identify it, and any other text is sent as the key.
        """
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {**signed_headers(secret, raw, now), "Content-Type": "application/json"}
        if delivery == UNIQUE:
            sent["Idempotency-Key"] = uuid.uuid4().hex
        elif delivery is not None:
            sent["Idempotency-Key"] = delivery
        sent.update(headers or {})
        async with self.client.post(path, data=raw, headers=sent) as response:
            return response.status, await response.json()

    async def cart(
        self, body: dict[str, Any] | bytes, **kwargs: Any
    ) -> tuple[int, Any]:
        return await self.post("/api/vizochok/cart", body, **kwargs)

    async def ok(self, **body: Any) -> None:
        status, answer = await self.cart(body)
        assert (status, answer) == (200, {"ok": True})

    async def items(
        self, store_id: str, session_id: str, secret: str = SECRET
    ) -> tuple[int, Any]:
        params = {"store_id": store_id, "session_id": session_id}
        async with self.client.get(
            "/api/vizochok/cart/items",
            params=params,
            headers=signed_headers(secret, b""),
        ) as response:
            return response.status, await response.json()

    async def products(self, body: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
        return await self.post("/api/vizochok/check-products", body, **kwargs)


async def load_products(app_client: TestClient[Any, Any], store_id: str) -> None:
    from cartsvc.http.context import STORAGE

    products = [catalog.product_from_row(row) for row in SAMPLE_PRODUCTS]
    storage = app_client.app[STORAGE]
    await storage.write_products(store_id, [(p.sku, p.fields()) for p in products])


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def hooks(aiohttp_client: Any, redis_client: Any, settings: Settings) -> Webhooks:
    """Webhooks on an app over real and embedded Redis, sample catalog loaded."""
    client = await aiohttp_client(create_app(settings, client=redis_client))
    for store_id in ("store-1", "store-2", "open-store"):
        await load_products(client, store_id)
    return Webhooks(client)


@pytest.fixture
async def real_hooks(
    aiohttp_client: Any, real_redis: Any, settings: Settings
) -> Webhooks:
    """Webhooks on an app over the real redis-server only."""
    client = await aiohttp_client(create_app(settings, client=real_redis))
    for store_id in ("store-1", "store-2", "open-store"):
        await load_products(client, store_id)
    return Webhooks(client)
