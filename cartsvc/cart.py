"""The cart rules: what a webhook body asks for, and what its answer says.

Checks that need only the request run here, in the order of the contract's reason
table; the checks that need the cart or the catalog run inside `cart_change.lua`,
in the same order, so the first failing rule always names the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cartsvc.errors import Rejection
from cartsvc.quantity import (
    canonical,
    json_number,
    parse_decimal,
    parse_decimal_text,
    to_cents,
    to_milli,
)
from cartsvc.settings import Limits
from cartsvc.storage.carts import ChangeResult, StoredLine

ACTIONS = ("add", "remove", "update_quantity", "clear")
_SKU_ACTIONS = ("add", "remove", "update_quantity")
OPEN_NAME_MAX_CHARS = 300
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# An open-mode price above this is ignored, so that a cart's total in exact
# cents stays within Decimal's 28 digits (a 500 on the cart GET otherwise).
OPEN_PRICE_MAX = Decimal(10) ** 12


@dataclass(frozen=True, slots=True)
class CartRequest:
    """A cart operation that passed every check the request alone allows."""

    action: str
    store_id: str
    session_id: str
    sku: str
    quantity_milli: int | None
    open_name: str
    open_price: str


def _present(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    return value is not None and value != ""


def id_text(value: Any) -> str | None:
    """An id as text, or None: ids arrive as strings, a whole number is taken as one.

    The signature check picks the store's secret by this same text, so that the
    store a request is checked for is the store whose carts it reaches.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)

    return value if isinstance(value, str) else None


def identifier(value: Any, limit: int, status: int = 200) -> str:
    """An id as text within its length limit, else `invalid_id`."""
    text = id_text(value)
    if text is None or len(text) > limit:
        raise Rejection("invalid_id", status=status)

    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate from a `\ud800` escape: no key could ever hold it.
        raise Rejection("invalid_id", status=status) from None

    return text


def _quantity(body: dict[str, Any], action: str, limits: Limits) -> int | None:
    raw = body.get("quantity")
    if action in ("remove", "clear"):
        return None

    if raw is None:
        return 1000 if action == "add" else None

    quantity = parse_decimal(raw)
    if quantity is None:
        raise Rejection("invalid_quantity")

    too_small = quantity <= 0 if action == "add" else quantity < 0
    if too_small or quantity > limits.line_max_quantity:
        raise Rejection("invalid_quantity")

    milli = to_milli(quantity)
    if milli is None:
        raise Rejection("invalid_quantity")

    return milli


def _open_price(value: Any) -> str:
    price = parse_decimal(value)
    if price is None or price < 0 or price > OPEN_PRICE_MAX:
        return ""

    return canonical(price)


def _open_name(value: Any) -> str:
    if not isinstance(value, str):
        return ""

    # Tabs separate the fields of a line's metadata in Redis. A lone surrogate
    # (a `\ud800` escape in the JSON) has no UTF-8 form, so no Redis argument
    # could carry it: it is shown as U+FFFD instead of failing the request.
    name = _LONE_SURROGATE.sub("\ufffd", value.replace("\t", " "))
    return name[:OPEN_NAME_MAX_CHARS]


def parse_cart_request(body: dict[str, Any], limits: Limits) -> CartRequest:
    """The operation a webhook body asks for, or the Rejection that answers it."""
    action = body.get("action")
    if not all(_present(body, name) for name in ("action", "store_id", "session_id")):
        raise Rejection("missing_params")

    if action == "update_quantity" and body.get("quantity") is None:
        raise Rejection("missing_params")

    if action in _SKU_ACTIONS and not _present(body, "sku"):
        raise Rejection("missing_sku")

    if action not in ACTIONS:
        raise Rejection("unknown_action")

    store_id = identifier(body["store_id"], limits.id_max_chars)
    session_id = identifier(body["session_id"], limits.id_max_chars)
    sku = identifier(body["sku"], limits.id_max_chars) if action != "clear" else ""
    return CartRequest(
        action=action,
        store_id=store_id,
        session_id=session_id,
        sku=sku,
        quantity_milli=_quantity(body, action, limits),
        open_name=_open_name(body.get("name")),
        open_price=_open_price(body.get("price")),
    )


def answer(result: ChangeResult) -> tuple[int, dict[str, Any]]:
    """HTTP status and body for what the script decided."""
    if result.status == "conflict":
        return 409, {"ok": False, "reason": "idempotency_conflict"}

    if not result.reason:
        return 200, {"ok": True}

    body: dict[str, Any] = {"ok": False, "reason": result.reason}
    if result.available:
        body["available"] = json_number(Decimal(result.available))

    return 200, body


def _line_price(line: StoredLine) -> tuple[str, Decimal, str]:
    """Name, current price and unit of a line: the catalog's, else the line's own."""
    if line.price:
        price = parse_decimal_text(line.promo_price or line.price) or Decimal(0)
        return line.name, price, line.unit or "pcs"

    _, _, rest = line.meta.partition("\t")
    open_price, _, open_name = rest.partition("\t")
    open_value = parse_decimal_text(open_price) if open_price else None
    return open_name or line.sku, open_value or Decimal(0), "pcs"


def _sequence(line: StoredLine) -> int:
    head = line.meta.partition("\t")[0]
    return int(head) if head.isdigit() else 0


def cart_view(lines: list[StoredLine]) -> dict[str, Any]:
    """The cart GET answer: lines in first-added order and the exact total."""
    if not lines:
        return {"items": [], "total": 0}

    items = []
    total = Decimal(0)
    for line in sorted(lines, key=_sequence):
        name, price, unit = _line_price(line)
        quantity = parse_decimal_text(line.quantity) or Decimal(0)
        total += price * quantity
        items.append(
            {
                "sku": line.sku,
                "name": name,
                "price": float(price),
                "quantity": json_number(quantity),
                "unit": unit,
            }
        )

    return {"items": items, "total": to_cents(total)}
