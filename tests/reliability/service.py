"""The real service for the reliability tests, and what they send it.

Hypothesis drives its state machines and fuzzers synchronously, so for those the
service runs in a thread of its own, on a loopback port, and is called over real
HTTP. The fault tests are asynchronous and use `Sender` on an aiohttp client.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from cartsvc import catalog
from cartsvc.app import CART_ITEMS_PATH, CART_PATH, PRODUCTS_PATH, create_app
from cartsvc.http.context import STORAGE
from cartsvc.http.signing import signed_headers
from cartsvc.settings import Settings, StoreSettings
from cartsvc.storage.carts import Storage
from tests.conftest import SECRET

T = TypeVar("T")
OPEN_STORE = "open-store"
STRICT_STORE = "store-1"
# Small, so that random sequences reach `cart_full`.
CART_MAX_LINES = 2
# Products as catalog rows: stock, steps, limits, promotions, inactive and sold out.
CATALOG: dict[str, dict[str, str]] = {
    "milk": {"name": "Молоко", "price": "45.90", "stock": "120"},
    "eggs": {
        "name": "Яйця",
        "price": "64.50",
        "stock": "25",
        "max_per_customer": "3",
        "promo_price": "59.90",
    },
    "apples": {"name": "Яблука", "price": "38", "stock": "50.5", "unit": "kg",
               "step": "0.1"},
    "nuts": {"name": "Горіхи", "price": "120.10", "stock": "10", "unit": "kg",
             "step": "0.25", "max_per_customer": "2.5"},
    "caviar": {"name": "Ікра", "price": "399", "stock": "0"},
    "coffee": {"name": "Кава", "price": "189", "active": "false"},
    "salt": {"name": "Сіль", "price": "12.30"},
    "few": {"name": "Few", "price": "10", "stock": "5"},
}  # fmt: skip
# Long enough for a request whose body is a megabyte, short enough that a hung
# service fails the test rather than the suite's 120 s timeout.
HTTP_TIMEOUT_S = 15.0


def reliability_settings(redis_url: str, **limits: Any) -> Settings:
    """One strict store (the default) and one open store, on the given Redis."""
    base = Settings(
        secrets=(SECRET,),
        stores={OPEN_STORE: StoreSettings(catalog_mode="open")},
    )
    return replace(
        base,
        limits=replace(base.limits, **limits),
        redis=replace(base.redis, url=redis_url),
    )


def with_redis(settings: Settings, **redis_settings: Any) -> Settings:
    return replace(settings, redis=replace(settings.redis, **redis_settings))


def render(value: Any) -> str:
    """JSON text in which a Decimal is written as the number it holds, digit for
    digit, as a sender would write `1.0`, `0.30` or `1E+400`."""
    if isinstance(value, Decimal):
        return str(value)

    if isinstance(value, dict):
        members = (f"{render(str(k))}:{render(v)}" for k, v in value.items())
        return "{" + ",".join(members) + "}"

    if isinstance(value, list):
        return "[" + ",".join(render(item) for item in value) + "]"

    # ensure_ascii keeps a lone surrogate as the `\ud800` escape a sender may send.
    return json.dumps(value, ensure_ascii=True)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class ErrorLog(logging.Handler):
    """Every error the service logs, above all a traceback, kept for a test."""

    LOGGERS = ("cartsvc", "aiohttp")

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]

    @contextmanager
    def attached(self) -> Iterator[ErrorLog]:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        try:
            yield self
        finally:
            for name in self.LOGGERS:
                logging.getLogger(name).removeHandler(self)


class ThreadedService:
    """The cartsvc application served from a thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app: web.Application | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="cartsvc", daemon=True)

    def __enter__(self) -> ThreadedService:
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._failure is not None:
            raise RuntimeError("the service did not start") from self._failure

        if not self._ready.is_set():
            raise RuntimeError("the service did not start within 30 s")

        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:
            self._failure = error
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.app = create_app(self.settings)
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.Server)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    @property
    def storage(self) -> Storage:
        assert self.app is not None
        return self.app[STORAGE]

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the service's own loop, e.g. a catalog load."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=HTTP_TIMEOUT_S)

    def load_catalog(self, store_id: str, rows: dict[str, dict[str, str]]) -> None:
        """Write products as `cartsvc catalog load` does, from checked rows."""
        products = [
            catalog.product_from_row({"sku": sku, **row}) for sku, row in rows.items()
        ]
        written = self.run(
            self.storage.write_products(
                store_id, [(p.sku, p.fields()) for p in products]
            )
        )
        assert written == len(rows)

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        # A connection per request: a refused request may close it, and one
        # request's leftovers must never become the next one's answer.
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S
        )
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def post(
        self,
        path: str,
        raw: bytes,
        key: str | None = None,
        timestamp: str | None = None,
        secret: str = SECRET,
    ) -> Reply:
        """A signed delivery of `raw`; `timestamp` fixes the signed time."""
        now = float(timestamp) if timestamp is not None else None
        headers = {
            **signed_headers(secret, raw, now),
            "Content-Type": "application/json",
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.request("POST", path, raw, headers)

    def cart(self, raw: bytes, key: str | None, timestamp: str | None = None) -> Reply:
        return self.post(CART_PATH, raw, key, timestamp)

    def items(self, store_id: str, session_id: str) -> Reply:
        query = urlencode({"store_id": store_id, "session_id": session_id})
        headers = signed_headers(SECRET, b"")
        return self.request("GET", f"{CART_ITEMS_PATH}?{query}", headers=headers)


def snapshot(client: redis.Redis, skip: str | None = None) -> dict[str, Any]:
    """Every key and its whole value, to tell whether a request wrote anything;
    keys containing `skip` are left out."""
    state: dict[str, Any] = {}
    for key in client.scan_iter(count=1000):
        if skip is not None and skip in key:
            continue

        kind = client.type(key)
        if kind == "hash":
            state[key] = client.hgetall(key)
        elif kind == "string":
            state[key] = client.get(key)
        elif kind == "stream":
            state[key] = client.xrange(key)
        else:
            state[key] = (kind, client.dump(key))

    return state


@dataclass
class Outcome:
    status: int
    body: Any
    took_s: float
    # time.monotonic() when the answer was in.
    at_s: float


class Sender:
    """Signed deliveries through an aiohttp client, each one timed."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def cart(self, body: dict[str, Any], key: str | None = None) -> Outcome:
        """One cart delivery; a fresh Idempotency-Key unless `key` names one."""
        raw = orjson.dumps(body)
        headers = {
            **signed_headers(SECRET, raw),
            "Content-Type": "application/json",
            "Idempotency-Key": key or uuid.uuid4().hex,
        }
        return await self._timed("POST", CART_PATH, data=raw, headers=headers)

    async def products(self, store_id: str, skus: list[str]) -> Outcome:
        raw = orjson.dumps({"store_id": store_id, "skus": skus})
        headers = {**signed_headers(SECRET, raw), "Content-Type": "application/json"}
        return await self._timed("POST", PRODUCTS_PATH, data=raw, headers=headers)

    async def items(self, store_id: str, session_id: str) -> Outcome:
        params = {"store_id": store_id, "session_id": session_id}
        headers = signed_headers(SECRET, b"")
        return await self._timed("GET", CART_ITEMS_PATH, params=params, headers=headers)

    async def _timed(self, method: str, path: str, **kwargs: Any) -> Outcome:
        started = time.monotonic()
        async with self.client.request(method, path, **kwargs) as response:
            answer = await response.json()
            done = time.monotonic()
            return Outcome(response.status, answer, done - started, done)
