"""One Redis round trip per webhook: each cart action, the GET, the products call.

Counted with MONITOR on the suite's real redis-server, which lists every command
a client sends, and the commands scripts run inside Redis apart (client `lua`).
Not timed: this is the shape of the hot path, not its speed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import Webhooks
from tests.servers import RedisServer

S = {"store_id": "store-1", "session_id": "user-rt"}
END = "round-trips-end"

Send = Callable[[Webhooks], Awaitable[tuple[int, Any]]]


def cart(action: str, **fields: Any) -> Send:
    return lambda hooks: hooks.cart({"action": action, **S, **fields})


def items() -> Send:
    return lambda hooks: hooks.items(S["store_id"], S["session_id"])


def products() -> Send:
    body = {"store_id": "store-1", "skus": ["milk-001", "eggs-10", "nope-404"]}
    return lambda hooks: hooks.products(body)


def replayed_add() -> Send:
    body = {"action": "add", **S, "sku": "bread-01"}

    async def send(hooks: Webhooks) -> tuple[int, Any]:
        await hooks.cart(body, delivery="rt-replay")
        return await hooks.cart(body, delivery="rt-replay")

    return send


async def top_level_commands(
    redis_server: RedisServer, send: Awaitable[Any]
) -> list[str]:
    """The commands clients sent while `send` ran, scripts' own calls left out."""
    monitor_client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    marker = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    seen: list[str] = []
    try:
        await marker.ping()  # connected now, so its handshake is not counted
        async with monitor_client.monitor() as monitor:
            await send
            # MONITOR lists commands in the order Redis ran them, so everything
            # the request caused comes before this marker.
            await marker.echo(END)
            while True:
                command = await monitor.next_command()
                if command["command"] == f"ECHO {END}":
                    break
                if command["client_type"] != "lua":
                    seen.append(command["command"].split(" ", 1)[0].upper())
    finally:
        await monitor_client.aclose()
        await marker.aclose()
    return seen


HOT_PATH = [
    pytest.param(cart("add", sku="milk-001"), id="add"),
    pytest.param(cart("add", sku="milk-001", quantity=2), id="add-to-a-line"),
    pytest.param(
        cart("update_quantity", sku="salt-01", quantity=3), id="update_quantity"
    ),
    pytest.param(cart("remove", sku="salt-01"), id="remove"),
    pytest.param(cart("clear"), id="clear"),
    pytest.param(cart("add", sku="caviar-01"), id="rejected-add"),
    pytest.param(cart("remove", sku="bread-01"), id="remove-not-in-cart"),
    pytest.param(items(), id="cart-get"),
    pytest.param(products(), id="check-products"),
]


@pytest.mark.parametrize("send", HOT_PATH)
async def test_each_webhook_costs_exactly_one_evalsha(
    real_hooks: Webhooks, redis_server: RedisServer, send: Send
) -> None:
    # The line exists and a first request has opened the app's connection, so
    # what is counted is the hot path alone, not set-up or a script load.
    await real_hooks.ok(action="add", **S, sku="salt-01", quantity=2)
    await items()(real_hooks)

    commands = await top_level_commands(redis_server, send(real_hooks))

    assert commands == ["EVALSHA"]


async def test_a_replayed_delivery_costs_one_evalsha_per_copy(
    real_hooks: Webhooks, redis_server: RedisServer
) -> None:
    await items()(real_hooks)

    commands = await top_level_commands(redis_server, replayed_add()(real_hooks))

    assert commands == ["EVALSHA", "EVALSHA"]
