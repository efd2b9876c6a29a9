"""Faults injected into a real Redis while the service serves: nothing acknowledged
is lost, nothing is applied twice, and no request waits past the Redis timeout.

Each test starts a redis-server of its own (never the suite's shared one), so it
may kill, pause, stall or flush it. The service runs in-process on a real port
with a short Redis timeout. CARTSVC_FAULT_LOAD_S sets the length of the load
under which Redis is killed and restarted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from cartsvc import catalog
from cartsvc.app import create_app
from cartsvc.http.context import STORAGE
from cartsvc.storage.keys import StoreKeys
from tests.conftest import start_redis
from tests.reliability.figures import FIGURES, size
from tests.reliability.service import (
    CATALOG,
    STRICT_STORE,
    Outcome,
    Sender,
    reliability_settings,
    with_redis,
)
from tests.servers import RedisServer

TIMEOUT_MS = 400
TIMEOUT_S = TIMEOUT_MS / 1000
# The service answers within its Redis timeout; HTTP, and an event loop shared by
# the service and up to 200 client tasks on a 2-core machine, get this on top.
ANSWER_MARGIN_S = 0.5
LOAD_S = size("CARTSVC_FAULT_LOAD_S", 10)
LOAD_CLIENTS = 50
OUTAGE_S = 1.0
SKU = "salt"  # stock not tracked, so every add of it succeeds
OK = {"ok": True}
UNAVAILABLE = {"ok": False, "reason": "temporarily_unavailable"}
# Holds Redis for ARGV[1] ms, as a slow script or a long command would.
BUSY_LUA = """
local started = redis.call('TIME')
local until_us = started[1] * 1000000 + started[2] + tonumber(ARGV[1]) * 1000
repeat
    local now = redis.call('TIME')
until now[1] * 1000000 + now[2] >= until_us
return 1
"""

StartRedis = Callable[..., RedisServer]


@pytest.fixture
def own_redis() -> Iterator[StartRedis]:
    """Start redis-servers for one test; each is stopped and removed after it."""
    servers: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        servers.append(start_redis(*args))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def admin_of() -> AsyncIterator[Callable[[RedisServer], aioredis.Redis]]:
    """Clients that inject faults, closed after the test."""
    clients: list[aioredis.Redis] = []

    def connect(server: RedisServer) -> aioredis.Redis:
        clients.append(aioredis.Redis.from_url(server.url, decode_responses=True))
        return clients[-1]

    yield connect
    for client in clients:
        await client.aclose()


async def start_service(
    aiohttp_client: Any, server: RedisServer, **redis_settings: Any
) -> TestClient[Any, Any]:
    """The service on `server`, with a short Redis timeout and the catalog loaded."""
    settings = with_redis(
        reliability_settings(server.url, line_max_quantity=Decimal(10**6)),
        timeout_ms=TIMEOUT_MS,
        **redis_settings,
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    products = [catalog.product_from_row({"sku": s, **r}) for s, r in CATALOG.items()]
    await client.app[STORAGE].write_products(
        STRICT_STORE, [(p.sku, p.fields()) for p in products]
    )
    return client


def add(session_id: str, sku: str = SKU) -> dict[str, Any]:
    return {"action": "add", "store_id": STRICT_STORE, "session_id": session_id,
            "sku": sku}  # fmt: skip


def cart_key(session_id: str) -> str:
    return StoreKeys("cartsvc", STRICT_STORE).cart(session_id)


def kill(server: RedisServer) -> None:
    """SIGKILL: no shutdown and no last write; only what was fsynced survives."""
    assert server.process is not None
    server.process.kill()
    server.process.wait(timeout=10)
    server.process = None


def check_in_time(outcomes: list[Outcome]) -> None:
    slowest = max(outcome.took_s for outcome in outcomes)
    FIGURES.answered_in(slowest)
    assert slowest < TIMEOUT_S + ANSWER_MARGIN_S


@dataclass
class Ledger:
    """Every delivery sent under load, and the answers it got."""

    sent: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    acknowledged: set[str] = field(default_factory=set)
    outcomes: list[Outcome] = field(default_factory=list)

    async def deliver(self, sender: Sender, session_id: str) -> None:
        """One delivery, and the sender's one retry if it got a 5xx."""
        key = uuid.uuid4().hex
        self.sent[session_id].append(key)
        for attempt in range(2):
            outcome = await sender.cart(add(session_id), key)
            self.outcomes.append(outcome)
            if outcome.status == 200:
                self.acknowledged.add(key)
                return

            if attempt == 0:
                # The sender waits 1 s; a shorter wait keeps the load up.
                await asyncio.sleep(0.2)

    def acknowledged_in(self, session_id: str) -> int:
        return sum(key in self.acknowledged for key in self.sent[session_id])


@pytest.mark.timeout(120 + 2 * LOAD_S)
async def test_redis_killed_and_restarted_under_load_loses_no_acknowledged_write(
    aiohttp_client: Any, own_redis: StartRedis, admin_of: Any
) -> None:
    server = own_redis("--appendonly", "yes", "--appendfsync", "always")
    sender = Sender(await start_service(aiohttp_client, server))
    ledger = Ledger()
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + LOAD_S
    restarted_at: list[float] = []

    async def shopper(n: int) -> None:
        while loop.time() < stop_at:
            await ledger.deliver(sender, f"load-{n}")

    async def faults() -> None:
        # An outage every 3.5 s from the 3rd second, each ended 2.5 s before
        # the load stops, so the service is seen to recover after the last.
        kill_at = 3.0
        while kill_at + OUTAGE_S + 2.5 <= LOAD_S:
            await asyncio.sleep(max(0.0, stop_at - LOAD_S + kill_at - loop.time()))
            kill(server)
            FIGURES.fault("redis killed and restarted")
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(server.start)
            restarted_at.append(time.monotonic())
            kill_at += 3.5

    await asyncio.gather(faults(), *(shopper(n) for n in range(LOAD_CLIENTS)))

    answers = Counter(
        (o.status, o.body == OK, o.body == UNAVAILABLE) for o in ledger.outcomes
    )
    assert set(answers) <= {(200, True, False), (503, False, True)}, answers
    assert answers[(503, False, True)] > 0, "the outage was never seen"
    assert any(o.status == 200 and o.at_s > restarted_at[-1] for o in ledger.outcomes)
    check_in_time(ledger.outcomes)

    admin = admin_of(server)
    stored = {s: await admin.hget(cart_key(s), SKU) for s in ledger.sent}
    lost = sum(max(0, ledger.acknowledged_in(s) - int(stored[s] or 0)) for s in stored)
    FIGURES.acknowledged_writes += len(ledger.acknowledged)
    FIGURES.acknowledged_writes_lost += lost
    assert lost == 0

    # A patient sender retries each delivery never acknowledged until it is; then
    # every delivery is in its cart exactly once, none twice. (After a longer load
    # Redis may still be reading its append-only file back: 503 until it has.)
    for session_id, keys in ledger.sent.items():
        for key in keys:
            if key not in ledger.acknowledged:
                outcome = await patiently(sender, add(session_id), key)
                assert (outcome.status, outcome.body) == (200, OK)

    for session_id, keys in ledger.sent.items():
        assert await admin.hget(cart_key(session_id), SKU) == str(len(keys))


async def patiently(sender: Sender, body: dict[str, Any], key: str) -> Outcome:
    """The delivery sent until it is answered other than 503, for up to 20 s."""
    deadline = time.monotonic() + 20
    while True:
        outcome = await sender.cart(body, key)
        if outcome.status != 503 or time.monotonic() > deadline:
            return outcome
        await asyncio.sleep(0.2)


PAUSE_MS = 1200


async def test_paused_redis_gets_503_in_time_and_the_retry_is_applied_once(
    aiohttp_client: Any, own_redis: StartRedis, admin_of: Any
) -> None:
    server = own_redis()
    sender = Sender(await start_service(aiohttp_client, server))
    admin = admin_of(server)
    assert (await sender.cart(add("warm-up"))).body == OK
    key = uuid.uuid4().hex

    await admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
    paused_at = time.monotonic()
    first = await sender.cart(add("paused"), key)
    FIGURES.fault("client pause")

    assert (first.status, first.body) == (503, UNAVAILABLE)
    check_in_time([first])

    await asyncio.sleep(PAUSE_MS / 1000 - (time.monotonic() - paused_at) + 0.2)
    # The first attempt never answered; whether its script ran late or not at
    # all, the retry and every later copy leave exactly one unit in the cart.
    for _ in range(2):
        retry = await sender.cart(add("paused"), key)
        assert (retry.status, retry.body) == (200, OK)
        assert await admin.hget(cart_key("paused"), SKU) == "1"


STALL_MS = 1000


async def test_a_first_attempt_that_ran_late_is_not_applied_again_by_the_retry(
    aiohttp_client: Any, own_redis: StartRedis, admin_of: Any
) -> None:
    server = own_redis()
    sender = Sender(await start_service(aiohttp_client, server))
    admin, staller = admin_of(server), admin_of(server)
    assert (await sender.cart(add("warm-up"))).body == OK
    key = uuid.uuid4().hex

    stall = asyncio.create_task(staller.eval(BUSY_LUA, 0, STALL_MS))
    await asyncio.sleep(0.05)
    first = await sender.cart(add("stalled"), key)
    FIGURES.fault("redis stalled by a slow script")

    assert (first.status, first.body) == (503, UNAVAILABLE)
    check_in_time([first])

    await stall
    # Redis reads the first attempt's script from the socket the service gave
    # up on, and runs it, late: the change and its delivery record are made.
    assert await eventually(admin, cart_key("stalled"), "1")

    for _ in range(2):
        retry = await sender.cart(add("stalled"), key)
        assert (retry.status, retry.body) == (200, OK)
        assert await admin.hget(cart_key("stalled"), SKU) == "1"


async def eventually(admin: aioredis.Redis, key: str, quantity: str) -> bool:
    for _ in range(50):
        if await admin.hget(key, SKU) == quantity:
            return True
        await asyncio.sleep(0.02)
    return False


FLUSH_TRAFFIC_S = 3.0
FLUSH_CLIENTS = 20
FLUSH_EVERY_S = 0.01


async def test_script_flush_while_traffic_runs_fails_no_request(
    aiohttp_client: Any, own_redis: StartRedis, admin_of: Any
) -> None:
    server = own_redis()
    sender = Sender(await start_service(aiohttp_client, server))
    admin = admin_of(server)
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + FLUSH_TRAFFIC_S
    outcomes: list[Outcome] = []

    async def shopper(n: int) -> None:
        session_id, added = f"flush-{n}", 0
        while loop.time() < stop_at:
            outcome = await sender.cart(add(session_id))
            assert (outcome.status, outcome.body) == (200, OK)
            added += 1
            cart = await sender.items(STRICT_STORE, session_id)
            assert cart.status == 200
            assert [(i["sku"], i["quantity"]) for i in cart.body["items"]] == [
                (SKU, added)
            ]
            products = await sender.products(STRICT_STORE, [SKU, "nope"])
            assert (products.status, len(products.body["products"])) == (200, 1)
            outcomes.extend((outcome, cart, products))

    async def flusher() -> int:
        flushes = 0
        while loop.time() < stop_at:
            await admin.script_flush()
            flushes += 1
            await asyncio.sleep(FLUSH_EVERY_S)
        return flushes

    # A task group: the first failed request stops the others at once.
    async with asyncio.TaskGroup() as group:
        flushing = group.create_task(flusher())
        for n in range(FLUSH_CLIENTS):
            group.create_task(shopper(n))
    flushes = flushing.result()

    FIGURES.fault("script flush", flushes)
    assert flushes > FLUSH_TRAFFIC_S / FLUSH_EVERY_S / 4
    assert len(outcomes) > 300
    check_in_time(outcomes)


POOL_SIZE = 4


async def test_more_requests_than_pool_connections_queue_or_get_503_never_hang(
    aiohttp_client: Any, own_redis: StartRedis, admin_of: Any
) -> None:
    server = own_redis()
    sender = Sender(
        await start_service(aiohttp_client, server, max_connections=POOL_SIZE)
    )
    admin = admin_of(server)

    burst = await asyncio.gather(*(sender.cart(add(f"b{n % 10}")) for n in range(200)))
    assert [(o.status, o.body) for o in burst] == [(200, OK)] * 200
    check_in_time(burst)

    await admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
    paused_at = time.monotonic()
    stuck = await asyncio.gather(*(sender.cart(add(f"p{n % 10}")) for n in range(100)))
    FIGURES.fault("connection pool exhausted")
    assert [(o.status, o.body) for o in stuck] == [(503, UNAVAILABLE)] * 100
    check_in_time(stuck)

    await asyncio.sleep(PAUSE_MS / 1000 - (time.monotonic() - paused_at) + 0.2)
    after = await asyncio.gather(*(sender.cart(add(f"a{n % 10}")) for n in range(100)))
    assert [(o.status, o.body) for o in after] == [(200, OK)] * 100

    # No connection was leaked by the requests that gave up: the service holds
    # at most its pool (the admin client is the one more).
    assert len(await admin.client_list()) <= POOL_SIZE + 1
