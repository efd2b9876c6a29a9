"""The service as a process: SIGTERM lets the request in flight finish, then exits."""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from cartsvc.catalog import product_from_row
from cartsvc.http.observe import hashed
from cartsvc.http.signing import signed_headers
from cartsvc.settings import RedisSettings
from cartsvc.storage.carts import Storage
from cartsvc.storage.connection import connect
from tests.conftest import SECRET, start_redis
from tests.servers import RedisServer
from tests.service import ServiceProcess

PRODUCTS = "/api/vizochok/check-products"
RAW_SESSION = "sigterm-shopper-Kx9"
PAUSE_MS = 1500


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, free to be paused."""
    server = start_redis()
    yield server
    server.close()


def signed_request(url: str, body: bytes | None = None) -> tuple[int, Any]:
    """One delivery signed with the suite's secret; POST when it has a body."""
    headers = signed_headers(SECRET, body or b"")
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=15) as reply:
        return reply.status, orjson.loads(reply.read())


def refuses_connections(port: int, within_s: float) -> bool:
    """Whether the port stops accepting connections within the given time."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.02)

    return False


def test_sigterm_answers_the_request_in_flight_then_exits_zero(
    own_redis: RedisServer,
) -> None:
    # The Redis timeout stays above the pause, so the held call succeeds late.
    service = ServiceProcess(
        own_redis.url, "--log-format", "json", CARTSVC_REDIS_TIMEOUT_MS="4000"
    )
    milk = product_from_row({"sku": "milk-001", "name": "Milk", "price": "45.90"})
    with own_redis.client() as direct:
        direct.hset("cartsvc:{store-1}:product:milk-001", mapping=milk.fields())
    body = orjson.dumps({"skus": ["milk-001"], "store_id": "store-1"})
    query = urlencode({"store_id": "store-1", "session_id": RAW_SESSION})

    try:
        service.start()
        signed_request(f"{service.url}/api/vizochok/cart/items?{query}")
        with own_redis.client() as control:
            control.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
        paused_at = time.monotonic()
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_flight: Future[tuple[int, Any]] = pool.submit(
                signed_request, service.url + PRODUCTS, body
            )
            time.sleep(0.3)
            assert not in_flight.done()

            assert service.process is not None
            service.process.send_signal(signal.SIGTERM)
            stopped_accepting = refuses_connections(service.port, within_s=1.0)
            still_in_flight = not in_flight.done()
            answer = in_flight.result(timeout=10)
        exit_code = service.process.wait(timeout=10)
        took_s = time.monotonic() - paused_at
        log = service.log()
    finally:
        service.close()

    assert (stopped_accepting, still_in_flight) == (True, True)
    assert answer == (
        200,
        {"products": [{"sku": "milk-001", "price": 45.9, "in_stock": True}]},
    )
    assert exit_code == 0
    assert PAUSE_MS / 1000 - 0.1 < took_s < 8
    entries = [orjson.loads(line) for line in log.splitlines()]
    messages = [entry["message"] for entry in entries]
    answered = next(i for i, e in enumerate(entries) if e.get("route") == PRODUCTS)
    assert entries[answered]["status"] == 200
    assert float(entries[answered]["ms"]) >= PAUSE_MS - 400
    closed = messages.index("redis connections closed")
    assert answered < closed < messages.index("stopped")
    assert SECRET not in log
    assert RAW_SESSION not in log
    assert hashed(RAW_SESSION) in log


async def test_closing_storage_disconnects_its_pooled_connections(
    redis_server: RedisServer,
) -> None:
    storage = Storage(connect(RedisSettings(url=redis_server.url)), "cartsvc", 1000)
    await storage.ping()
    connection_id = str(await storage.client.client_id())

    await storage.close()

    deadline = time.monotonic() + 2
    with redis_server.client() as probe:
        while connection_id in {c["id"] for c in probe.client_list()}:
            assert time.monotonic() < deadline, "the pooled connection is still open"
            time.sleep(0.02)
