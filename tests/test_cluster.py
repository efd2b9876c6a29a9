"""Redis Cluster: one slot per store, errors as 503, a store's slot moved in traffic.

The cart webhook tests run on the suite's cluster too, through the `cluster`
variant of the redis_client fixture; the tests here add what only a cluster has.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    MaxConnectionsError,
    MovedError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from cartsvc import settings as settings_module
from cartsvc.app import create_app
from cartsvc.settings import RedisSettings, Settings
from cartsvc.storage.connection import connect
from cartsvc.storage.keys import escape_id
from tests.cluster import LocalCluster
from tests.conftest import Webhooks, load_products, make_settings, start_cluster

UNAVAILABLE = (503, {"ok": False, "reason": "temporarily_unavailable"})
OK = (200, {"ok": True})
STORE_SLOT = key_slot(b"store-1")


def add(session_id: str, quantity: int = 1) -> dict[str, Any]:
    return {
        "action": "add",
        "store_id": "store-1",
        "session_id": session_id,
        "sku": "salt-01",
        "quantity": quantity,
    }


def cluster_settings(cluster: LocalCluster, **redis: Any) -> Settings:
    return replace(
        make_settings(), redis=RedisSettings(url=cluster.url, cluster=True, **redis)
    )


@pytest.fixture(scope="module")
def spare_cluster() -> Iterator[LocalCluster]:
    """A cluster of this module's own, for the tests that move or drop a slot."""
    cluster = start_cluster()
    yield cluster
    cluster.close()


async def cluster_hooks(aiohttp_client: Any, settings: Settings) -> Webhooks:
    """Webhooks on an app that builds its own cluster client from settings."""
    client = await aiohttp_client(create_app(settings))
    await load_products(client, "store-1")
    return Webhooks(client)


@pytest.mark.parametrize("source", ["environment", "toml"])
async def test_cluster_is_chosen_by_configuration(
    redis_cluster: LocalCluster, tmp_path: Path, source: str
) -> None:
    if source == "environment":
        env = {"CARTSVC_REDIS_URL": redis_cluster.url, "CARTSVC_REDIS_CLUSTER": "true"}
        loaded = settings_module.load(env=env)
    else:
        path = tmp_path / "cartsvc.toml"
        path.write_text(f'[redis]\nurl = "{redis_cluster.url}"\ncluster = true\n')
        loaded = settings_module.load(env={}, path=str(path))

    client = connect(loaded.redis)
    try:
        assert isinstance(client, RedisCluster)
        await client.initialize()
        # The URL is a seed: the client finds every master from it.
        assert len(client.get_primaries()) == 3
    finally:
        await client.aclose()


# Ids that a careless key scheme would split across slots: braces that would
# open a hash tag of their own, separators, Cyrillic, spaces, percent signs.
ODD_IDS = [
    pytest.param("store-1", "user-123", "cream-01", id="ordinary"),
    pytest.param("{brace}", "{session}", "{sku}", id="braces"),
    pytest.param("}{", "a}b{c", "}x{", id="reversed-braces"),
    pytest.param("a:b", "user:{1}", "sku:1", id="colons"),
    pytest.param("магазин", "сесія", "молоко", id="cyrillic"),
    pytest.param("with space", "a b", "c d", id="spaces"),
    pytest.param("100%", "%7B", "50%", id="percent"),
]  # fmt: skip


@pytest.mark.parametrize(("store_id", "session_id", "sku"), ODD_IDS)
async def test_no_script_call_touches_keys_of_two_slots(
    aiohttp_client: Any,
    redis_cluster: LocalCluster,
    store_id: str,
    session_id: str,
    sku: str,
) -> None:
    redis_cluster.flush()
    client = connect(RedisSettings(url=redis_cluster.url, cluster=True))
    calls: list[tuple[Any, ...]] = []
    execute = client.execute_command

    async def recording(*args: Any, **kwargs: Any) -> Any:
        if str(args[0]).upper() in ("EVAL", "EVALSHA"):
            calls.append(args)
        return await execute(*args, **kwargs)

    client.execute_command = recording
    settings = replace(make_settings(), catalog_mode="open")
    app_client = await aiohttp_client(create_app(settings, client=client))
    await load_products(app_client, store_id)
    hooks = Webhooks(app_client)

    ids = {"store_id": store_id, "session_id": session_id}
    for body in (
        {"action": "add", **ids, "sku": "salt-01", "quantity": 2},
        {"action": "add", **ids, "sku": sku, "name": "Odd", "price": 1},
        {"action": "update_quantity", **ids, "sku": sku, "quantity": 3},
        {"action": "remove", **ids, "sku": "salt-01"},
    ):
        assert await hooks.cart(body) == OK
    status, cart = await hooks.items(store_id, session_id)
    assert (status, [line["quantity"] for line in cart["items"]]) == (200, [3])
    status, _ = await hooks.products({"store_id": store_id, "skus": ["salt-01", sku]})
    assert status == 200
    assert await hooks.cart({"action": "clear", **ids}) == OK

    # Every key a script is given, and every key prefix it builds keys from
    # (cart_read's product keys), hashes to the store's own slot.
    store_slot = key_slot(escape_id(store_id).encode())
    assert calls
    for call in calls:
        key_count = int(call[2])
        keys = [str(k) for k in call[3 : 3 + key_count]]
        prefixes = [
            str(a) for a in call[3 + key_count :] if str(a).startswith("cartsvc:")
        ]
        slots = {key_slot(k.encode()) for k in keys}
        slots |= {key_slot(f"{p}any-sku".encode()) for p in prefixes}
        assert slots == {store_slot}, call


class FailingScript:
    """A registered script whose every run fails with one error."""

    def __init__(self, source: str, error: Exception) -> None:
        self.script = source
        self.error = error

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        raise self.error


class FailingCluster:
    """A client that loads scripts but fails every run, as a troubled cluster."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def register_script(self, source: str) -> FailingScript:
        return FailingScript(source, self.error)

    async def script_load(self, source: str) -> str:
        return "sha"

    async def aclose(self) -> None:
        return None


CLUSTER_ERRORS = [
    pytest.param(TryAgainError("TRYAGAIN Multiple keys request during rehashing"),
                 id="tryagain"),
    pytest.param(ClusterDownError("CLUSTERDOWN The cluster is down"), id="clusterdown"),
    pytest.param(MasterDownError("MASTERDOWN Link is down"), id="masterdown"),
    pytest.param(MovedError("10933 127.0.0.1:7001"), id="moved"),
    pytest.param(AskError("10933 127.0.0.1:7001"), id="ask"),
    pytest.param(ClusterError("TTL exhausted."), id="redirect-loop"),
    pytest.param(SlotNotCoveredError("slot 10933 not covered"), id="slot-not-covered"),
    pytest.param(RedisClusterException("All slots are not covered"), id="not-covered"),
    pytest.param(MaxConnectionsError("Too many connections"), id="max-connections"),
]  # fmt: skip


@pytest.mark.parametrize("error", CLUSTER_ERRORS)
async def test_cluster_errors_answer_503_never_500(
    aiohttp_client: Any, error: Exception
) -> None:
    app_client = await aiohttp_client(
        create_app(make_settings(), client=FailingCluster(error))
    )
    hooks = Webhooks(app_client)

    assert await hooks.cart(add("user-123")) == UNAVAILABLE
    assert await hooks.items("store-1", "user-123") == UNAVAILABLE


async def test_a_burst_above_the_pool_size_waits_for_a_connection(
    aiohttp_client: Any, redis_cluster: LocalCluster
) -> None:
    # redis-py's cluster client would fail the 5th concurrent call with four
    # connections; cartsvc's queues it instead, as its single-server pool does.
    redis_cluster.flush()
    hooks = await cluster_hooks(
        aiohttp_client, cluster_settings(redis_cluster, max_connections=4)
    )

    answers = await asyncio.gather(*(hooks.cart(add("burst")) for _ in range(200)))

    assert answers == [OK] * 200
    assert (await hooks.items("store-1", "burst"))[1]["items"][0]["quantity"] == 200


async def test_a_slot_stuck_mid_move_answers_503_and_the_retry_applies(
    aiohttp_client: Any, spare_cluster: LocalCluster
) -> None:
    spare_cluster.flush()
    hooks = await cluster_hooks(aiohttp_client, cluster_settings(spare_cluster))
    await hooks.ok(**add("user-123"))
    source = spare_cluster.owner(STORE_SLOT)
    target = next(node for node in spare_cluster.nodes if node is not source)

    # Half moved: the cart is still on the source, the new delivery record
    # could only be created on the target, so the script meets TRYAGAIN.
    spare_cluster.begin_migration(STORE_SLOT, source, target)
    try:
        started = time.monotonic()
        answer = await hooks.cart(add("user-123"), delivery="stuck-delivery")
        elapsed_s = time.monotonic() - started
    finally:
        spare_cluster.stabilize(STORE_SLOT)

    assert answer == UNAVAILABLE
    assert elapsed_s < 2.5, "answered well inside the sender's 5 s"
    assert await hooks.cart(add("user-123"), delivery="stuck-delivery") == OK
    _, cart = await hooks.items("store-1", "user-123")
    assert cart["items"][0]["quantity"] == 2


async def test_a_slot_no_master_serves_answers_503_until_it_is_back(
    aiohttp_client: Any, spare_cluster: LocalCluster
) -> None:
    spare_cluster.flush()
    hooks = await cluster_hooks(aiohttp_client, cluster_settings(spare_cluster))
    await hooks.ok(**add("user-123"))
    owner = spare_cluster.owner(STORE_SLOT)

    spare_cluster.unassign(STORE_SLOT)
    try:
        during_cart = await hooks.cart(add("user-123"), delivery="outage-delivery")
        during_items = await hooks.items("store-1", "user-123")
    finally:
        spare_cluster.add_slot(STORE_SLOT, owner)

    assert (during_cart, during_items) == (UNAVAILABLE, UNAVAILABLE)

    # The sender's retry, once the slot is served again, is applied.
    deadline = time.monotonic() + 5
    retry = add("user-123")
    while (answer := await hooks.cart(retry, delivery="outage-delivery")) != OK:
        assert answer == UNAVAILABLE
        assert time.monotonic() < deadline, "the slot did not come back"
        await asyncio.sleep(0.1)
    _, cart = await hooks.items("store-1", "user-123")
    assert cart["items"][0]["quantity"] == 2


async def test_a_cart_read_mid_move_answers_503_never_a_price_of_0(
    aiohttp_client: Any, spare_cluster: LocalCluster
) -> None:
    spare_cluster.flush()
    hooks = await cluster_hooks(aiohttp_client, cluster_settings(spare_cluster))
    await hooks.ok(**add("user-123", quantity=2))
    _, before = await hooks.items("store-1", "user-123")
    source = spare_cluster.owner(STORE_SLOT)
    target = next(node for node in spare_cluster.nodes if node is not source)

    # The cart has reached the target, its product not yet: on the target the
    # cart reads, the product reads as absent.
    spare_cluster.begin_migration(STORE_SLOT, source, target)
    with source.client() as probe:
        cart_keys = [
            "cartsvc:{store-1}:cart:user-123",
            "cartsvc:{store-1}:lines:user-123",
        ]
        probe.execute_command(
            "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *cart_keys
        )
    during = await hooks.items("store-1", "user-123")
    spare_cluster.migrate_keys(STORE_SLOT, source, target, pause_s=0)
    spare_cluster.assign(STORE_SLOT, target)

    assert during == UNAVAILABLE
    assert await hooks.items("store-1", "user-123") == (200, before)

    # A product truly gone still reads as before: the line at no price.
    storage_client = connect(RedisSettings(url=spare_cluster.url, cluster=True))
    try:
        await storage_client.delete("cartsvc:{store-1}:product:salt-01")
    finally:
        await storage_client.aclose()
    _, after = await hooks.items("store-1", "user-123")
    assert [(i["sku"], i["price"], i["quantity"]) for i in after["items"]] == [
        ("salt-01", 0.0, 2)
    ]


async def test_moving_a_stores_slot_in_traffic_loses_no_acknowledged_add(
    aiohttp_client: Any, spare_cluster: LocalCluster
) -> None:
    spare_cluster.flush()
    hooks = await cluster_hooks(aiohttp_client, cluster_settings(spare_cluster))
    source = spare_cluster.owner(STORE_SLOT)
    target = next(node for node in spare_cluster.nodes if node is not source)
    moving, moved = asyncio.Event(), asyncio.Event()
    first_answers: dict[str, tuple[str, tuple[int, Any]]] = {}
    overlapping = 0

    async def shopper(session_id: str) -> None:
        nonlocal overlapping
        after_move = 0
        while after_move < 5 and len(first_answers) < 2000:
            delivery = uuid.uuid4().hex
            began_before_move = not moved.is_set()
            answer = await hooks.cart(add(session_id), delivery=delivery)
            first_answers[delivery] = (session_id, answer)
            if began_before_move and moving.is_set():
                overlapping += 1
            if moved.is_set():
                after_move += 1

    async def reshard() -> int:
        while len(first_answers) < 40:
            await asyncio.sleep(0.01)
        moving.set()
        try:
            return await asyncio.to_thread(
                spare_cluster.move_slot, STORE_SLOT, target, 0.005
            )
        finally:
            moved.set()

    async def reader() -> None:
        while not moved.is_set():
            reads.append(await hooks.items("store-1", "shopper-0"))

    reads: list[tuple[int, Any]] = []
    sessions = [f"shopper-{n}" for n in range(8)]
    keys_moved, *_ = await asyncio.gather(reshard(), reader(), *map(shopper, sessions))

    # The slot and everything in it now live on the target.
    assert keys_moved > 40
    assert spare_cluster.owner(STORE_SLOT) is target
    assert spare_cluster.count_keys(source, STORE_SLOT) == 0
    assert overlapping > 0, "no request was in flight while the slot moved"

    # A cart read meanwhile shows the catalog's price, or answers 503.
    for status, cart in reads:
        assert status == 200 or (status, cart) == UNAVAILABLE
        assert all(i["price"] == 12.3 for i in cart.get("items", [])), cart

    # 503 at worst while it moved; then the sender's retry, with the same
    # delivery id, is applied or replayed, never applied twice.
    answers = {delivery: answer for delivery, (_, answer) in first_answers.items()}
    assert all(answer in (OK, UNAVAILABLE) for answer in answers.values())
    for delivery, (session_id, answer) in first_answers.items():
        if answer == UNAVAILABLE:
            retried = await hooks.cart(add(session_id), delivery=delivery)
            answers[delivery] = retried

    for session_id in sessions:
        acknowledged = sum(
            answers[delivery] == OK
            for delivery, (owner, _) in first_answers.items()
            if owner == session_id
        )
        _, cart = await hooks.items("store-1", session_id)
        assert cart["items"][0]["quantity"] == acknowledged
