"""Health, readiness, metrics and the request log: what an operator sees."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cartsvc import logs
from cartsvc.app import create_app
from cartsvc.http.observe import hashed
from cartsvc.http.signing import signed_headers
from tests.conftest import SECRET, STORE_SECRET, Webhooks, make_settings
from tests.servers import free_port

CART = "/api/vizochok/cart"
ITEMS = "/api/vizochok/cart/items"
PRODUCTS = "/api/vizochok/check-products"
RAW_SESSION = "shopper-Zq7-session"
ADD_MILK = {"action": "add", "store_id": "store-1", "session_id": RAW_SESSION,
            "sku": "milk-001"}  # fmt: skip


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition, 0 when it is absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)

    return 0.0


async def scrape(hooks: Webhooks) -> str:
    async with hooks.client.get("/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        return await response.text()


def requests_total(text: str, route: str, action: str = "", outcome: str = "ok",
                   reason: str = "") -> float:  # fmt: skip
    labels = {"route": route, "action": action, "outcome": outcome, "reason": reason}
    return metric(text, "cartsvc_requests_total", **labels)


def dead_redis() -> aioredis.Redis:
    """A client of a port nobody listens on, failing at once rather than retrying."""
    return aioredis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))


async def test_healthz_answers_alive(real_hooks: Webhooks) -> None:
    async with real_hooks.client.get("/healthz") as response:
        assert (response.status, await response.json()) == (200, {"ok": True})


async def test_readyz_is_ready_with_redis_and_scripts(real_hooks: Webhooks) -> None:
    async with real_hooks.client.get("/readyz") as response:
        assert (response.status, await response.json()) == (
            200,
            {"ok": True, "checks": {"redis": "ok", "scripts": "ok"}},
        )


async def test_readyz_says_redis_is_unreachable(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(make_settings(), client=dead_redis()))

    async with client.get("/readyz") as response:
        assert (response.status, await response.json()) == (
            503,
            {"ok": False, "checks": {"redis": "unreachable", "scripts": "unknown"}},
        )
    async with client.get("/healthz") as response:
        assert response.status == 200


async def test_metrics_count_requests_by_route_action_outcome_and_reason(
    real_hooks: Webhooks,
) -> None:
    await real_hooks.ok(**ADD_MILK)
    await real_hooks.ok(**ADD_MILK)
    await real_hooks.cart({**ADD_MILK, "sku": "caviar-01"})
    await real_hooks.items("store-1", RAW_SESSION)
    await real_hooks.products({"skus": ["milk-001"], "store_id": "store-1"})
    await real_hooks.products({"skus": ["x"] * 101, "store_id": "store-1"})
    await real_hooks.cart(ADD_MILK, secret="not-the-secret")

    text = await scrape(real_hooks)

    assert requests_total(text, CART, "add") == 2
    assert requests_total(text, CART, "add", "rejected", "out_of_stock") == 1
    assert requests_total(text, CART, "", "rejected", "invalid_signature") == 1
    assert requests_total(text, ITEMS) == 1
    assert requests_total(text, PRODUCTS) == 1
    assert requests_total(text, PRODUCTS, "", "rejected", "too_many_skus") == 1
    duration = "cartsvc_request_duration_seconds_count"
    assert metric(text, duration, route=CART) == 4
    assert metric(text, duration, route=PRODUCTS) == 2
    assert metric(text, "cartsvc_dedup_hits_total") == 0
    assert metric(text, "cartsvc_redis_errors_total", kind="error") == 0


async def test_metrics_move_between_scrapes(real_hooks: Webhooks) -> None:
    before = await scrape(real_hooks)
    await real_hooks.ok(**ADD_MILK)

    after = await scrape(real_hooks)

    assert requests_total(before, CART, "add") == 0
    assert requests_total(after, CART, "add") == 1
    assert requests_total(after, "/metrics") == 1


async def test_repeated_deliveries_are_counted_as_dedup_hits(
    real_hooks: Webhooks,
) -> None:
    await real_hooks.ok(**{**ADD_MILK, "sku": "salt-01"})
    first = await real_hooks.cart({**ADD_MILK, "sku": "bread-01"}, delivery="d-1")
    second = await real_hooks.cart({**ADD_MILK, "sku": "bread-01"}, delivery="d-1")
    raw = orjson.dumps({**ADD_MILK, "sku": "eggs-10"})
    now = time.time()
    for _ in range(3):
        await real_hooks.cart(raw, delivery=None, now=now)

    text = await scrape(real_hooks)

    assert first == second == (200, {"ok": True})
    assert metric(text, "cartsvc_dedup_hits_total") == 3
    assert requests_total(text, CART, "add") == 6


async def test_redis_errors_are_counted_by_kind(aiohttp_client: Any) -> None:
    app = create_app(make_settings(), client=dead_redis())
    hooks = Webhooks(await aiohttp_client(app))

    answer = await hooks.cart(ADD_MILK)

    text = await scrape(hooks)
    assert answer == (503, {"ok": False, "reason": "temporarily_unavailable"})
    assert metric(text, "cartsvc_redis_errors_total", kind="error") == 1
    assert (
        requests_total(text, CART, "add", "unavailable", "temporarily_unavailable") == 1
    )


async def test_an_unknown_path_is_counted_without_its_path(
    real_hooks: Webhooks,
) -> None:
    async with real_hooks.client.get("/no/such/path") as response:
        missing = (response.status, await response.json())
    async with real_hooks.client.put(CART) as response:
        refused = (response.status, await response.json(), response.headers["Allow"])

    text = await scrape(real_hooks)

    assert missing == (404, {"ok": False, "reason": "not_found"})
    assert refused == (405, {"ok": False, "reason": "method_not_allowed"}, "POST")
    assert requests_total(text, "unmatched", "", "rejected", "not_found") == 1
    assert requests_total(text, "unmatched", "", "rejected", "method_not_allowed") == 1


@pytest.fixture(params=["text", "json"])
def service_log(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[Callable[[], list[str]]]:
    """The log lines exactly as `cartsvc serve` formats them, in either format."""
    root = logging.getLogger()
    access = logging.getLogger("aiohttp.access")
    saved = root.handlers[:], root.level, access.level
    logs.configure(request.param)
    written = io.StringIO()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(written)
    root.addHandler(caplog.handler)
    yield lambda: written.getvalue().splitlines()
    root.handlers[:], root.level = saved[0], saved[1]
    access.setLevel(saved[2])


def _fields(line: str) -> dict[str, Any]:
    if line.startswith("{"):
        return dict(orjson.loads(line))

    pairs = line.split(" request ", 1)[1].split(" ")
    return dict(pair.split("=", 1) for pair in pairs)


async def test_one_line_per_request_with_its_fields(
    real_hooks: Webhooks, service_log: Callable[[], list[str]]
) -> None:
    await real_hooks.ok(**ADD_MILK)
    await real_hooks.items("store-1", RAW_SESSION)

    lines = [line for line in service_log() if "request" in line]

    assert len(lines) == 2
    add, items = (_fields(line) for line in lines)
    assert {k: add[k] for k in ("method", "route", "action", "store", "session")} == {
        "method": "POST",
        "route": CART,
        "action": "add",
        "store": "store-1",
        "session": hashed(RAW_SESSION),
    }
    assert (str(add["status"]), add["outcome"], add["delivery"]) == (
        "200",
        "ok",
        "applied",
    )
    assert float(add["ms"]) > 0
    assert (items["route"], items["session"], str(items["status"])) == (
        ITEMS,
        hashed(RAW_SESSION),
        "200",
    )


async def test_no_log_line_holds_a_secret_a_signature_or_a_raw_session_id(
    real_hooks: Webhooks,
    service_log: Callable[[], list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    signatures: list[str] = []

    async def send(path: str, body: dict[str, Any] | bytes, secret: str = SECRET,
                   now: float | None = None) -> int:  # fmt: skip
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = signed_headers(secret, raw, now)
        signatures.append(headers["X-VIZOCHOK-Signature"].removeprefix("sha256="))
        async with real_hooks.client.post(path, data=raw, headers=headers) as reply:
            return reply.status

    async def read_cart(secret: str) -> int:
        headers = signed_headers(secret, b"")
        signatures.append(headers["X-VIZOCHOK-Signature"].removeprefix("sha256="))
        params = {"store_id": "store-1", "session_id": RAW_SESSION}
        async with real_hooks.client.get(
            ITEMS, params=params, headers=headers
        ) as reply:
            return reply.status

    statuses = [
        await send(CART, ADD_MILK),
        await send(CART, ADD_MILK),  # the same signed bytes: a replay
        await send(CART, {**ADD_MILK, "sku": "caviar-01"}),
        await send(CART, {**ADD_MILK, "quantity": "lots"}),
        await send(CART, ADD_MILK, secret="not-the-secret"),
        await send(CART, {**ADD_MILK, "store_id": "store-2"}, secret=STORE_SECRET),
        await send(CART, ADD_MILK, now=time.time() - 3600),
        await send(CART, b"{not json"),
        await read_cart(SECRET),
        await read_cart("not-the-secret"),
        await send(PRODUCTS, {"skus": ["milk-001"], "store_id": "store-1"}),
        await send(PRODUCTS, {"skus": ["x"] * 101, "store_id": "store-1"}),
    ]
    async with real_hooks.client.get(f"/nowhere?session_id={RAW_SESSION}") as reply:
        statuses.append(reply.status)

    lines = service_log()
    assert statuses == [200, 200, 200, 200, 401, 200, 401, 400, 200, 401, 200, 400, 404]
    assert len([line for line in lines if "request" in line]) == len(statuses)
    assert sum(hashed(RAW_SESSION) in line for line in lines) == 5
    forbidden = [SECRET, STORE_SECRET, "not-the-secret", RAW_SESSION, *signatures]
    for line in lines:
        assert not [word for word in forbidden if word in line], line
    for record in caplog.records:
        text = f"{record.getMessage()} {getattr(record, 'fields', '')}"
        assert not [word for word in forbidden if word in text], text


async def test_a_sender_cannot_start_a_log_line_of_its_own(
    real_hooks: Webhooks, service_log: Callable[[], list[str]]
) -> None:
    forged = "add\n06:00:00,000 INFO forged"
    status, answer = await real_hooks.cart({**ADD_MILK, "action": forged})

    lines = service_log()
    assert (status, answer) == (200, {"ok": False, "reason": "unknown_action"})
    assert len(lines) == 1
    assert "forged" in lines[0] and "add\\n06:00" in lines[0]


async def test_a_malformed_request_line_is_logged_without_its_text(
    real_hooks: Webhooks, service_log: Callable[[], list[str]]
) -> None:
    server = real_hooks.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    path = f"{ITEMS}?store_id=store-1&session_id={RAW_SESSION}\x01"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = await reader.read(100)
    writer.close()

    lines = service_log()
    assert answer.startswith(b"HTTP/1.0 400 Bad Request")
    assert [line for line in lines if "malformed HTTP request refused" in line]
    assert not [line for line in lines if RAW_SESSION in line or "Traceback" in line]


async def test_a_senders_action_text_neither_adds_series_nor_breaks_metrics(
    real_hooks: Webhooks, service_log: Callable[[], list[str]]
) -> None:
    for action in ("zz1", "zz2", "\ud800x"):
        # The standard library writes a lone surrogate as its `\ud800` escape.
        body = json.dumps({**ADD_MILK, "action": action}).encode()
        assert await real_hooks.cart(body) == (
            200,
            {"ok": False, "reason": "unknown_action"},
        )

    async with real_hooks.client.get("/metrics") as response:
        status, text = response.status, await response.text()

    assert status == 200
    assert requests_total(text, CART, "other", "rejected", "unknown_action") == 3
    assert "zz1" not in text and "zz2" not in text
    lines = service_log()
    assert len([line for line in lines if "request" in line]) == 4
    assert not [line for line in lines if "Logging error" in line]
