"""`cartsvc send`: sign and send a webhook the way VIZOCHOK's servers do."""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from cartsvc.errors import ConfigError
from cartsvc.http.signing import signed_headers
from cartsvc.settings import Settings

PATHS = {
    "cart": "/api/vizochok/cart",
    "items": "/api/vizochok/cart/items",
    "products": "/api/vizochok/check-products",
}


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="service URL")
    parser.add_argument("--secret", help="secret to sign with (else from the settings)")
    parser.add_argument(
        "--idempotency-key",
        help="send this Idempotency-Key (a cart send gets a new one each time else)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds (default 5)"
    )


def add_send_parser(commands: Any) -> None:
    send = commands.add_parser(
        "send",
        help="sign and send a webhook to a running service",
        description="Sign a delivery with the webhook secret and print the answer.",
    )
    webhooks = send.add_subparsers(dest="webhook", required=True)
    for name, what in (("cart", "a cart operation"), ("products", "a products call")):
        parser = webhooks.add_parser(name, help=f"POST {PATHS[name]}: {what}")
        parser.add_argument("body", help="the JSON body; '-' reads standard input")
        _common_options(parser)

    items = webhooks.add_parser("items", help=f"GET {PATHS['items']}: a cart")
    items.add_argument("--store", required=True, help="store_id")
    items.add_argument("--session", required=True, help="session_id")
    _common_options(items)


def _secret(args: argparse.Namespace, settings: Settings, store_id: str | None) -> str:
    if args.secret:
        return str(args.secret)

    chosen = settings.store(store_id).secrets if store_id else settings.secrets
    if not chosen:
        raise ConfigError(
            "no secret to sign with: pass --secret or set CARTSVC_WEBHOOK_SECRET"
        )

    return chosen[0]


def _request(args: argparse.Namespace) -> tuple[str, str, bytes, str | None]:
    """Method, path with query, body and store id of the delivery to send."""
    if args.webhook == "items":
        query = urlencode({"store_id": args.store, "session_id": args.session})
        return "GET", f"{PATHS['items']}?{query}", b"", args.store

    text = sys.stdin.read() if args.body == "-" else args.body
    body = text.encode("utf-8")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None  # sent as it is: the service's answer will say why

    store_id = document.get("store_id") if isinstance(document, dict) else None
    if not isinstance(store_id, str):
        store_id = None

    return "POST", PATHS[args.webhook], body, store_id


async def send(args: argparse.Namespace, settings: Settings) -> int:
    """Send one signed delivery; print the status and the answer."""
    method, path, body, store_id = _request(args)
    headers = signed_headers(_secret(args, settings, store_id), body)
    if method == "POST":
        headers["Content-Type"] = "application/json"

    if args.idempotency_key:
        headers["Idempotency-Key"] = args.idempotency_key
    elif args.webhook == "cart":
        # Two sends of one body in the same second are signed alike, and the
        # service would take the second for a retry of the first.
        headers["Idempotency-Key"] = uuid.uuid4().hex

    timeout = aiohttp.ClientTimeout(total=args.timeout)
    url = args.url.rstrip("/") + path
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, data=body, headers=headers) as reply,
        ):
            status, text = reply.status, await reply.text()
    except (aiohttp.ClientError, TimeoutError) as error:
        print(f"cartsvc send: {method} {url} failed: {error!r}", file=sys.stderr)
        return 1

    print(f"HTTP {status}")
    print(text)
    return 0 if status < 400 else 1
