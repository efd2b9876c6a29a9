"""The floor handler: a bare aiohttp app that verifies, parses and runs one EVALSHA.

It does what any handler of these webhooks must do and nothing more: checks the
HMAC and timestamp, parses the JSON with orjson, and runs cartsvc's own Lua script
for the route once through redis.asyncio (hiredis parser). No validation, escaping,
logging or metrics, so its throughput bounds what cartsvc can reach with the same
Redis client. Run: `python -m bench.floor --port P --redis-url U --secret S`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from cartsvc.storage.scripts import script_source

CLIENT = web.AppKey("client", aioredis.Redis)
SHAS = web.AppKey("shas", dict)
SECRET = web.AppKey("secret", bytes)
PREFIX = "cartsvc"
REPLAY_WINDOW_S = 300


def _verified(request: web.Request, body: bytes) -> bool:
    timestamp = request.headers.get("X-VIZOCHOK-Timestamp", "")
    given = request.headers.get("X-VIZOCHOK-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > REPLAY_WINDOW_S:
        return False

    message = timestamp.encode() + b"." + body
    digest = hmac.new(request.app[SECRET], message, hashlib.sha256).hexdigest()
    return hmac.compare_digest("sha256=" + digest, given)


def _answer(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(value), status=status, content_type="application/json"
    )


async def cart(request: web.Request) -> web.Response:
    body = await request.read()
    if not _verified(request, body):
        return _answer({"ok": False, "reason": "invalid_signature"}, 401)

    doc = orjson.loads(body)
    base = f"{PREFIX}:{{{doc['store_id']}}}"
    session, sku = doc["session_id"], doc.get("sku", "")
    quantity = doc.get("quantity", 1)
    keys = [
        f"{base}:cart:{session}",
        f"{base}:lines:{session}",
        f"{base}:delivery:{request.headers.get('Idempotency-Key', '')}",
        f"{base}:events",
        f"{base}:product:{sku}",
    ]
    args = [doc["action"], session, sku, quantity * 1000, "strict", 999000, 100,
            2592000, "-", 600, 10000, "", ""]  # fmt: skip
    _, reason, _ = await request.app[CLIENT].evalsha(
        request.app[SHAS]["cart_change"], len(keys), *keys, *args
    )
    return _answer({"ok": False, "reason": reason} if reason else {"ok": True})


async def cart_items(request: web.Request) -> web.Response:
    if not _verified(request, b""):
        return _answer({"ok": False, "reason": "invalid_signature"}, 401)

    store, session = request.query["store_id"], request.query["session_id"]
    base = f"{PREFIX}:{{{store}}}"
    flat = await request.app[CLIENT].evalsha(
        request.app[SHAS]["cart_read"],
        2,
        f"{base}:cart:{session}",
        f"{base}:lines:{session}",
        f"{base}:product:",
    )
    return _answer({"items": flat})


async def check_products(request: web.Request) -> web.Response:
    body = await request.read()
    if not _verified(request, body):
        return _answer({"ok": False, "reason": "invalid_signature"}, 401)

    doc = orjson.loads(body)
    base = f"{PREFIX}:{{{doc['store_id']}}}"
    keys = [f"{base}:product:{sku}" for sku in doc["skus"]]
    flat = await request.app[CLIENT].evalsha(
        request.app[SHAS]["products_read"], len(keys), *keys
    )
    return _answer({"products": flat})


def create_app(redis_url: str, secret: str) -> web.Application:
    app = web.Application()
    app[SECRET] = secret.encode()

    async def redis_context(app: web.Application) -> Any:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        app[CLIENT] = client
        app[SHAS] = {
            name: await client.script_load(script_source(name))
            for name in ("cart_change", "cart_read", "products_read")
        }
        yield
        await client.aclose()

    app.cleanup_ctx.append(redis_context)
    app.router.add_post("/api/vizochok/cart", cart)
    app.router.add_get("/api/vizochok/cart/items", cart_items)
    app.router.add_post("/api/vizochok/check-products", check_products)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass

    web.run_app(
        create_app(args.redis_url, args.secret),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
