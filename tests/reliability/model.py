"""A reference model of the cart rules of SPEC 1.2 to 1.4, in plain Python.

It is written from the contract and the README's reason table, not from the code:
no Redis, no Lua, no thousandths. Quantities are exact fractions, the reasons are
tried in the table's order, and a delivery is remembered with the bytes it first
came with. `test_model.py` sends the same deliveries to the real service and
compares every answer and every cart with what this model says.

Where the contract leaves an order open, the model follows the README as built:
request checks (through `invalid_quantity` for the request's own number) come
before the delivery record, so a repeat of a refused request is refused again
the same way, and catalog checks come after it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

ACTIONS = ("add", "remove", "update_quantity", "clear")
SKU_ACTIONS = ("add", "remove", "update_quantity")
ID_MAX_CHARS = 128
OPEN_NAME_MAX_CHARS = 300
OPEN_PRICE_MAX = Decimal(10) ** 12
_FALSE = ("0", "false", "no", "n")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Refusal(Exception):
    """A request the rules turn down before any cart is looked at."""

    def __init__(self, reason: str, status: int = 200) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Answer:
    """An HTTP status and its JSON body, as the sender reads them."""

    status: int
    body: dict[str, Any]


OK = Answer(200, {"ok": True})


@dataclass(frozen=True)
class Product:
    name: str
    price: Decimal
    stock: Decimal | None = None
    unit: str = "pcs"
    step: Decimal = Decimal(1)
    max_per_customer: Decimal | None = None
    promo_price: Decimal | None = None
    active: bool = True

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> Product:
        """A product from a checked catalog row of text, as in a CSV file."""

        def number(column: str) -> Decimal | None:
            text = row.get(column, "")
            return Decimal(text) if text else None

        return cls(
            name=row["name"],
            price=Decimal(row["price"]),
            stock=number("stock"),
            unit=row.get("unit") or "pcs",
            step=number("step") or Decimal(1),
            max_per_customer=number("max_per_customer"),
            promo_price=number("promo_price"),
            active=row.get("active", "").lower() not in _FALSE,
        )


@dataclass
class Line:
    quantity: Fraction
    # None when the catalog knew the product as the line began; otherwise the
    # request's own name and price, shown while the catalog does not know it.
    open_name: str | None = None
    open_price: Decimal | None = None


@dataclass(frozen=True)
class CartRequest:
    action: str
    store_id: str
    session_id: str
    sku: str
    quantity: Fraction | None
    open_name: str
    open_price: Decimal | None


def _absent(value: Any) -> bool:
    return value is None or value == ""


def _text_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)

    if not isinstance(value, str) or len(value) > ID_MAX_CHARS:
        raise Refusal("invalid_id")

    if _LONE_SURROGATE.search(value):
        raise Refusal("invalid_id")

    return value


def _number(value: Any) -> Decimal | None:
    """The exact value of a JSON number; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None

    number = Decimal(value)
    return number if number.is_finite() else None


def _whole_thousandths(value: Decimal) -> bool:
    """Whether a number has at most three decimal places, judged from its digits
    (arithmetic on 1E-2000000 would round, or build a two-million-digit number)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    significant = "".join(map(str, digits)).rstrip("0")
    trailing_zeros = len(digits) - len(significant)
    return not significant or exponent + trailing_zeros >= -3


def _open_name(value: Any) -> str:
    if not isinstance(value, str):
        return ""

    text = _LONE_SURROGATE.sub("\ufffd", value.replace("\t", " "))
    return text[:OPEN_NAME_MAX_CHARS]


def _open_price(value: Any) -> Decimal | None:
    price = _number(value)
    if price is None or price < 0 or price > OPEN_PRICE_MAX:
        return None

    return price


def _exact(value: Decimal | None) -> Fraction | None:
    return None if value is None else Fraction(value)


def _decimal(value: Fraction) -> Decimal:
    # Exact: every quantity and price here is a terminating decimal.
    return Decimal(value.numerator) / Decimal(value.denominator)


def plain(value: Fraction) -> str:
    """A quantity as the contract writes it: `3`, `2.5`, never `2.500` or `1E+2`."""
    if value.denominator == 1:
        return str(value.numerator)

    return format(_decimal(value).normalize(), "f")


def json_number(value: Fraction | Decimal) -> int | float:
    exact = value if isinstance(value, Fraction) else Fraction(value)
    if exact.denominator == 1:
        return exact.numerator

    return float(_decimal(exact))


class CartModel:
    """Carts, catalogs and delivery records of every store, as the contract states."""

    def __init__(
        self,
        open_stores: frozenset[str],
        line_max: Decimal = Decimal(999),
        cart_max_lines: int = 100,
    ) -> None:
        self.open_stores = open_stores
        self.line_max = Fraction(line_max)
        self.cart_max_lines = cart_max_lines
        self.catalogs: dict[str, dict[str, Product]] = {}
        self.carts: dict[tuple[str, str], dict[str, Line]] = {}
        self.deliveries: dict[tuple[str, str], tuple[bytes, Answer]] = {}
        self.events: dict[str, list[dict[str, str]]] = {}

    def load_product(self, store_id: str, sku: str, product: Product) -> None:
        self.catalogs.setdefault(store_id, {})[sku] = product

    def drop_product(self, store_id: str, sku: str) -> None:
        self.catalogs.get(store_id, {}).pop(sku, None)

    @staticmethod
    def delivery_id(key: str | None, timestamp: str, raw: bytes) -> str:
        """A delivery is named by its Idempotency-Key, else by its signed bytes."""
        if key:
            return "key:" + key

        return f"signed:{timestamp}:{raw.hex()}"

    def deliver(self, document: Any, raw: bytes, delivery_id: str) -> Answer:
        """The answer to one POST of `raw` (whose JSON is `document`)."""
        if not isinstance(document, dict):
            return Answer(400, {"ok": False, "reason": "invalid_json"})

        try:
            request = self.checked(document)
        except Refusal as refusal:
            return Answer(refusal.status, {"ok": False, "reason": refusal.reason})

        # Delivery records are kept per store, beside the store's carts.
        seen = self.deliveries.get((request.store_id, delivery_id))
        if seen is not None:
            first_raw, first_answer = seen
            if first_raw != raw:
                return Answer(409, {"ok": False, "reason": "idempotency_conflict"})
            return first_answer

        answer = self.decide(request)
        self.deliveries[(request.store_id, delivery_id)] = (raw, answer)
        return answer

    def checked(self, body: dict[str, Any]) -> CartRequest:
        """The request's own checks, first failing reason wins."""
        action = body.get("action")
        if any(
            _absent(body.get(name)) for name in ("action", "store_id", "session_id")
        ):
            raise Refusal("missing_params")

        if action == "update_quantity" and body.get("quantity") is None:
            raise Refusal("missing_params")

        if action in SKU_ACTIONS and _absent(body.get("sku")):
            raise Refusal("missing_sku")

        if action not in ACTIONS:
            raise Refusal("unknown_action")

        store_id = _text_id(body["store_id"])
        session_id = _text_id(body["session_id"])
        sku = _text_id(body["sku"]) if action != "clear" else ""
        return CartRequest(
            action=str(action),
            store_id=store_id,
            session_id=session_id,
            sku=sku,
            quantity=self._quantity(str(action), body.get("quantity")),
            open_name=_open_name(body.get("name")),
            open_price=_open_price(body.get("price")),
        )

    def _quantity(self, action: str, raw: Any) -> Fraction | None:
        if action in ("remove", "clear"):
            return None

        if raw is None:
            return Fraction(1)

        quantity = _number(raw)
        if quantity is None:
            raise Refusal("invalid_quantity")

        too_small = quantity <= 0 if action == "add" else quantity < 0
        if too_small or quantity > self.line_max or not _whole_thousandths(quantity):
            raise Refusal("invalid_quantity")

        return Fraction(quantity)

    def decide(self, request: CartRequest) -> Answer:
        """The catalog and cart checks, then the change itself."""
        key = (request.store_id, request.session_id)
        if request.action == "clear":
            self.carts.pop(key, None)
            self._event(request, "")
            return OK

        cart = self.carts.get(key, {})
        line = cart.get(request.sku)
        current = line.quantity if line else Fraction(0)
        product = self.catalogs.get(request.store_id, {}).get(request.sku)
        target = self._target(request, current)
        step = Fraction(product.step) if product else Fraction(1)
        if request.action != "remove":
            assert request.quantity is not None
            if request.quantity % step != 0:
                return _refused("invalid_quantity")

        # Stock and limits guard growth only: lowering is always allowed.
        if target > current:
            refused = self._growth_refusal(request.store_id, product, target, step)
            if refused is not None:
                return refused

        strict = request.store_id not in self.open_stores
        if line is None and product is None and strict:
            return _refused("product_not_found")

        if line is None and request.action != "add":
            return _refused("not_in_cart")

        if line is None and len(cart) >= self.cart_max_lines:
            return _refused("cart_full")

        self._apply(request, cart, line, product, target)
        self._event(request, plain(target))
        return OK

    @staticmethod
    def _target(request: CartRequest, current: Fraction) -> Fraction:
        if request.action == "remove":
            return Fraction(0)

        assert request.quantity is not None
        if request.action == "add":
            return current + request.quantity

        return request.quantity

    def _growth_refusal(
        self, store_id: str, product: Product | None, target: Fraction, step: Fraction
    ) -> Answer | None:
        if product is None and store_id not in self.open_stores:
            return _refused("product_not_found")

        if product is not None and (
            not product.active or (product.stock is not None and product.stock < step)
        ):
            return _refused("out_of_stock")

        stock = _exact(product.stock) if product else None
        limit = _exact(product.max_per_customer) if product else None
        # The most the line may hold, on the product's step: offered instead.
        most = min(
            bound for bound in (self.line_max, stock, limit) if bound is not None
        )
        most -= most % step
        if stock is not None and target > stock:
            return _refused("quantity_exceeded", most)

        if limit is not None and target > limit:
            return _refused(f"max_{plain(limit)}_per_customer", most)

        if target > self.line_max:
            return _refused("quantity_exceeded", most)

        return None

    def _apply(
        self,
        request: CartRequest,
        cart: dict[str, Line],
        line: Line | None,
        product: Product | None,
        target: Fraction,
    ) -> None:
        if target == 0:
            cart.pop(request.sku, None)
        elif line is not None:
            line.quantity = target
        elif product is None:
            cart[request.sku] = Line(target, request.open_name, request.open_price)
        else:
            cart[request.sku] = Line(target)

        key = (request.store_id, request.session_id)
        if cart:
            self.carts[key] = cart
        else:
            self.carts.pop(key, None)

    def _event(self, request: CartRequest, quantity: str) -> None:
        self.events.setdefault(request.store_id, []).append(
            {
                "action": request.action,
                "session": request.session_id,
                "sku": request.sku,
                "quantity": quantity,
            }
        )

    def cart_lines(self, store_id: str, session_id: str) -> dict[str, str]:
        """The cart as `HGETALL` shows it: sku -> quantity as plain decimal text."""
        cart = self.carts.get((store_id, session_id), {})
        return {sku: plain(line.quantity) for sku, line in cart.items()}

    def view(self, store_id: str, session_id: str) -> dict[str, Any]:
        """The cart GET answer: lines in first-added order, total in exact cents."""
        cart = self.carts.get((store_id, session_id), {})
        if not cart:
            return {"items": [], "total": 0}

        items = []
        total = Decimal(0)
        for sku, line in cart.items():
            name, price, unit = self._shown(store_id, sku, line)
            total += price * _decimal(line.quantity)
            items.append(
                {
                    "sku": sku,
                    "name": name,
                    "price": float(price),
                    "quantity": json_number(line.quantity),
                    "unit": unit,
                }
            )

        cents = total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return {"items": items, "total": float(cents)}

    def _shown(self, store_id: str, sku: str, line: Line) -> tuple[str, Decimal, str]:
        """Name, price and unit of a line: the catalog's now, else the line's own."""
        product = self.catalogs.get(store_id, {}).get(sku)
        if product is not None:
            price = (
                product.promo_price
                if product.promo_price is not None
                else product.price
            )
            return product.name, price, product.unit

        if line.open_name is None:
            # The product left the catalog after the line began: nothing to show.
            return sku, Decimal(0), "pcs"

        return line.open_name or sku, line.open_price or Decimal(0), "pcs"


def _refused(reason: str, available: Fraction | None = None) -> Answer:
    body: dict[str, Any] = {"ok": False, "reason": reason}
    if available is not None:
        body["available"] = json_number(available)

    return Answer(200, body)
