"""The three webhooks VIZOCHOK's servers call: cart operations, cart, products."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from cartsvc import cart, products
from cartsvc.errors import Rejection
from cartsvc.http import signing
from cartsvc.http.context import METRICS, SETTINGS, STORAGE
from cartsvc.http.observe import hashed, json_answer, note
from cartsvc.settings import Limits, Settings
from cartsvc.storage.carts import CartChange

IDEMPOTENCY_HEADER = "Idempotency-Key"


# One decoder for every request: json.loads with options builds a new one a call.
# NaN and Infinity are not JSON, but some senders write them (Python's json does):
# read as Decimals, they fail every number check, so a NaN quantity is answered
# `invalid_quantity`, as the contract lists it, rather than `invalid_json`.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)


def parse_json(body: bytes) -> Any:
    """The JSON document of a body, numbers as exact Decimals; None if invalid."""
    try:
        # As json.loads does for bytes: UTF-8, -16 or -32, told by the first bytes.
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        return _DECODER.decode(text)
    except (ValueError, RecursionError, InvalidOperation):
        # A number such as 1e99999999999999999999 is past any Decimal's exponent.
        return None


async def read_body(request: web.Request) -> bytes:
    """The raw body, within the size limit and the body timeout."""
    encodings = request.headers.getall("Content-Encoding", [])
    if any(e.strip().lower() not in ("", "identity") for e in encodings):
        # aiohttp would inflate the body before anyone saw it, and the signature
        # is over the bytes as they were sent.
        raise Rejection("unsupported_content_encoding", status=415)

    timeout_s = request.app[SETTINGS].limits.body_timeout_ms / 1000
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejection("payload_too_large", status=413) from None
    except TimeoutError:
        # aiohttp's server sets no deadline on a body, so a client trickling one
        # would hold the connection and this handler for as long as it liked.
        # aiohttp then discards what still comes for its lingering time (10 s)
        # and closes the connection.
        raise Rejection("request_timeout", status=408) from None


def _loggable(value: Any) -> str:
    """A sender's value as log text: short, and encodable even when it holds a
    lone surrogate (`\ud800`), which no log line or metric label could write."""
    return str(value)[:32].encode("utf-8", "backslashreplace").decode("utf-8")


def _store_hint(document: Any) -> str | None:
    if not isinstance(document, dict):
        return None

    return cart.id_text(document.get("store_id"))


def authenticate(
    request: web.Request, settings: Settings, store_id: str | None, body: bytes
) -> str:
    """401 unless the delivery is fresh and signed with a secret of its store.

    The secret is chosen by the request's store, so one store's secret never
    opens another store's carts; a request without a usable store id is checked
    against the default secrets. Returns the timestamp as the check read it.
    """
    timestamp, given = signing.signing_headers(request.headers)
    signing.check_timestamp(timestamp, settings.limits.replay_window_s)
    secrets = settings.store(store_id).secrets if store_id else settings.secrets
    signing.verify(given, timestamp, body, secrets)
    return timestamp


def delivery_identity(
    request: web.Request, body: bytes, timestamp: str
) -> tuple[str, str]:
    """The delivery's id and the fingerprint of its body.

    A sender's Idempotency-Key names the delivery across re-signed retries;
    without one, the signed bytes do: the body, and the timestamp as the
    signature check read it, so padding around it makes no other delivery.
    """
    fingerprint = hashlib.sha256(body).hexdigest()
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key:
        named = b"key:" + key.encode("utf-8", "replace")
    else:
        named = b"signed:" + timestamp.encode("ascii") + b"." + body

    return hashlib.sha256(named).hexdigest(), fingerprint


def dedup_ttl_s(timestamp: str, limits: Limits) -> int:
    """How long the delivery's record must live: the dedup window, or longer.

    A timestamp may lie up to the replay window ahead of now, and its signature
    stays good until the window has passed it: the record must outlive that.
    """
    valid_for_s = int(timestamp) + limits.replay_window_s - int(time.time()) + 1
    return max(limits.dedup_ttl_s, valid_for_s)


async def cart_operation(request: web.Request) -> web.Response:
    """POST /api/vizochok/cart: add, remove, update_quantity or clear a line."""
    settings = request.app[SETTINGS]
    body = await read_body(request)
    document = parse_json(body)
    timestamp = authenticate(request, settings, _store_hint(document), body)
    if not isinstance(document, dict):
        raise Rejection("invalid_json", status=400)

    note(request, action=_loggable(document.get("action", "")))
    wanted = cart.parse_cart_request(document, settings.limits)
    note(request, store=wanted.store_id, session=hashed(wanted.session_id))
    delivery_id, fingerprint = delivery_identity(request, body, timestamp)
    limits = settings.limits
    change = CartChange(
        store_id=wanted.store_id,
        session_id=wanted.session_id,
        action=wanted.action,
        sku=wanted.sku,
        quantity_milli=wanted.quantity_milli,
        catalog_mode=settings.store(wanted.store_id).catalog_mode,
        line_max_milli=int(limits.line_max_quantity * 1000),
        cart_max_lines=limits.cart_max_lines,
        cart_ttl_s=limits.cart_ttl_s,
        delivery_id=delivery_id,
        fingerprint=fingerprint,
        dedup_ttl_s=dedup_ttl_s(timestamp, limits),
        events_max=limits.events_max,
        open_name=wanted.open_name,
        open_price=wanted.open_price,
    )
    result = await request.app[STORAGE].change_cart(change)

    if result.status == "replayed":
        request.app[METRICS].dedup_hits.inc()

    status, answer = cart.answer(result)
    note(
        request,
        outcome="ok" if answer["ok"] else "rejected",
        reason=answer.get("reason", ""),
        delivery=result.status,
    )
    return json_answer(status, answer)


async def cart_items(request: web.Request) -> web.Response:
    """GET /api/vizochok/cart/items: the cart as a conversation starts."""
    settings = request.app[SETTINGS]
    store_id = request.query.get("store_id", "")
    session_id = request.query.get("session_id", "")
    authenticate(request, settings, store_id or None, b"")
    if not store_id or not session_id:
        raise Rejection("missing_params", status=400)

    limit = settings.limits.id_max_chars
    store_id = cart.identifier(store_id, limit, status=400)
    session_id = cart.identifier(session_id, limit, status=400)
    note(request, store=store_id, session=hashed(session_id))
    lines = await request.app[STORAGE].read_cart(store_id, session_id)
    return json_answer(200, cart.cart_view(lines))


async def check_products(request: web.Request) -> web.Response:
    """POST /api/vizochok/check-products: prices and availability of skus."""
    settings = request.app[SETTINGS]
    body = await read_body(request)
    document = parse_json(body)
    authenticate(request, settings, _store_hint(document), body)
    if not isinstance(document, dict):
        raise Rejection("invalid_json", status=400)

    store_id, skus = products.parse_products_request(document, settings.limits)
    note(request, store=store_id, skus=len(skus))
    found = await request.app[STORAGE].read_products(store_id, skus)
    return json_answer(200, products.products_view(found))
