"""The products webhook's rules: which skus are asked for, and what is said of them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cartsvc.cart import identifier
from cartsvc.errors import Rejection
from cartsvc.quantity import parse_decimal_text
from cartsvc.settings import Limits
from cartsvc.storage.carts import StoredProduct


def parse_products_request(
    body: dict[str, Any], limits: Limits
) -> tuple[str, list[str]]:
    """The store and the distinct skus asked for, or a 400 Rejection."""
    store_id, skus = body.get("store_id"), body.get("skus")
    if store_id in (None, "") or skus is None:
        raise Rejection("missing_params", status=400)

    store_id = identifier(store_id, limits.id_max_chars, status=400)
    if not isinstance(skus, list):
        raise Rejection("invalid_skus", status=400)

    if len(skus) > limits.products_max_skus:
        raise Rejection("too_many_skus", status=400, limit=limits.products_max_skus)

    distinct: dict[str, None] = {}
    for sku in skus:
        if sku == "" or isinstance(sku, bool) or not isinstance(sku, (str, int)):
            raise Rejection("invalid_skus", status=400)

        # No catalog sku is longer than the id limit, so such a sku is simply
        # unknown, and unknown skus are left out of the answer.
        text = str(sku)
        if len(text) <= limits.id_max_chars and _encodable(text):
            distinct[text] = None

    return store_id, list(distinct)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False

    return True


def _in_stock(product: StoredProduct) -> bool:
    if product.active == "0":
        return False

    # In stock means a shopper could add one step of it now.
    stock = parse_decimal_text(product.stock) if product.stock else None
    step = parse_decimal_text(product.step) if product.step else None
    return stock is None or stock >= (step or 1)


def products_view(found: list[StoredProduct | None]) -> dict[str, Any]:
    """The answer: one entry per product the catalog knows, in the order asked."""
    answer = []
    for product in found:
        if product is None:
            continue

        entry: dict[str, Any] = {
            "sku": product.sku,
            "price": float(Decimal(product.price)),
            "in_stock": _in_stock(product),
        }
        if product.promo_price:
            entry["promo_price"] = float(Decimal(product.promo_price))

        if product.promo_label:
            entry["promo_label"] = product.promo_label

        answer.append(entry)

    return {"products": answer}
