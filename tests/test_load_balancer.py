"""Two `cartsvc serve` processes behind nginx, on one Redis, behave as one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from cartsvc.http.signing import signed_headers
from tests.cluster import Nginx, ServiceInstance
from tests.conftest import IN_CI, SECRET, start_redis
from tests.servers import RedisServer

CART_PATH = "/api/vizochok/cart"
OK = (200, {"ok": True})


@dataclass
class Deployment:
    redis: RedisServer
    instances: list[ServiceInstance]
    nginx: Nginx

    def quantity(self, session_id: str) -> str | None:
        with self.redis.client() as probe:
            value = probe.hget(f"cartsvc:{{store-1}}:cart:{session_id}", "salt-01")
        return None if value is None else str(value)


def start_nginx(upstreams: list[str]) -> Nginx:
    try:
        return Nginx(upstreams).start()
    except FileNotFoundError:
        if IN_CI:
            pytest.fail("nginx is not installed; `make system-packages` installs it")
        pytest.skip("nginx is not installed")


def load_catalog(env: dict[str, str], tmp_path: Path) -> None:
    """Load the store's catalog once, with the CLI, as the README says."""
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name,price\nsalt-01,Сіль,12.30\n", encoding="utf-8")
    command = [sys.executable, "-m", "cartsvc", "catalog", "load", "--store", "store-1"]
    done = subprocess.run(
        [*command, str(path)], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A redis-server, two instances sharing it, and nginx before them."""
    redis = start_redis()
    env = {"CARTSVC_REDIS_URL": redis.url, "CARTSVC_WEBHOOK_SECRET": SECRET}
    instances = [ServiceInstance(env) for _ in range(2)]
    nginx: Nginx | None = None
    try:
        load_catalog({**instances[0].env}, tmp_path_factory.mktemp("catalog"))
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_ready()
        nginx = start_nginx([f"127.0.0.1:{instance.port}" for instance in instances])
        yield Deployment(redis, instances, nginx)
    finally:
        if nginx is not None:
            nginx.close()
        for instance in instances:
            instance.close()
        redis.close()


async def deliver(
    http: aiohttp.ClientSession, base_url: str, raw: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with http.post(base_url + CART_PATH, data=raw, headers=headers) as response:
        return response.status, await response.json()


def signed(raw: bytes, delivery: str | None) -> dict[str, str]:
    headers = {**signed_headers(SECRET, raw), "Content-Type": "application/json"}
    if delivery is not None:
        headers["Idempotency-Key"] = delivery
    return headers


def add_body(session_id: str, quantity: int = 1) -> bytes:
    body = {
        "action": "add",
        "store_id": "store-1",
        "session_id": session_id,
        "sku": "salt-01",
        "quantity": quantity,
    }
    return orjson.dumps(body)


@pytest.mark.parametrize("delivery", ["delivery-7", None], ids=["key", "signed-bytes"])
async def test_a_duplicate_on_the_other_instance_is_applied_once(
    deployment: Deployment, delivery: str | None
) -> None:
    session_id = f"duplicate-{uuid.uuid4().hex}"
    raw = add_body(session_id, quantity=2)
    headers = signed(raw, delivery)
    first, second = (instance.url for instance in deployment.instances)

    async with aiohttp.ClientSession() as http:
        # The copies race, one on each instance, then a late copy arrives.
        racing = await asyncio.gather(
            deliver(http, first, raw, headers), deliver(http, second, raw, headers)
        )
        late = await deliver(http, second, raw, headers)

    assert [*racing, late] == [OK, OK, OK]
    assert deployment.quantity(session_id) == "2"


async def test_two_hundred_concurrent_adds_through_nginx_give_two_hundred(
    deployment: Deployment,
) -> None:
    session_id = f"crowd-{uuid.uuid4().hex}"
    raw = add_body(session_id)
    before = deployment.nginx.upstream_counts()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        answers = await asyncio.gather(
            *(
                deliver(http, deployment.nginx.url, raw, signed(raw, uuid.uuid4().hex))
                for _ in range(200)
            )
        )

    assert answers == [OK] * 200
    assert deployment.quantity(session_id) == "200"

    # nginx writes its log line just after the answer; both instances served.
    deadline = time.monotonic() + 5
    while True:
        after = deployment.nginx.upstream_counts()
        served = {name: after[name] - before.get(name, 0) for name in after}
        if sum(served.values()) >= 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    upstreams = {f"127.0.0.1:{instance.port}" for instance in deployment.instances}
    assert set(served) == upstreams
    assert all(count > 0 for count in served.values()), served
