"""The catalog: products, their validation, and loading them from CSV or JSON.

A file is checked whole before anything is written, so a bad row leaves the
store's catalog as it was; the write itself is one atomic script.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from cartsvc.errors import CatalogError
from cartsvc.quantity import canonical, parse_decimal, parse_decimal_text, to_milli

REQUIRED_COLUMNS = ("sku", "name", "price")
OPTIONAL_COLUMNS = (
    "stock",
    "unit",
    "step",
    "max_per_customer",
    "promo_price",
    "promo_label",
    "active",
)
_TRUE = ("1", "true", "yes", "y")
_FALSE = ("0", "false", "no", "n")
SKU_MAX_CHARS = 128
NAME_MAX_CHARS = 300
# Quantities reach the Lua scripts as thousandths in doubles, exact below 2**53
# (about 9e15 thousandths); a billion units leaves room for any sum of lines.
QUANTITY_MAX = Decimal(10) ** 9
# Totals are summed in exact cents within Decimal's 28 digits.
PRICE_MAX = Decimal(10) ** 12


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    price: Decimal
    stock: Decimal | None = None
    unit: str = "pcs"
    step: Decimal = Decimal(1)
    max_per_customer: Decimal | None = None
    promo_price: Decimal | None = None
    promo_label: str = ""
    active: bool = True

    def fields(self) -> dict[str, str]:
        """The product hash as stored in Redis; absent optional fields are left out."""
        stored = {
            "name": self.name,
            "price": canonical(self.price),
            "unit": self.unit,
            "step": canonical(self.step),
            "active": "1" if self.active else "0",
        }
        if self.stock is not None:
            stored["stock"] = canonical(self.stock)

        if self.max_per_customer is not None:
            stored["max_per_customer"] = canonical(self.max_per_customer)

        if self.promo_price is not None:
            stored["promo_price"] = canonical(self.promo_price)

        if self.promo_label:
            stored["promo_label"] = self.promo_label

        return stored


def _text(value: Any) -> str:
    if value is None:
        return ""

    if isinstance(value, bool):
        return "true" if value else "false"

    text = str(value).strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A JSON `\ud800` escape: Redis could hold it, no answer could send it.
        raise ValueError(f"{text!r} is not valid Unicode text") from None

    return text


def _number(
    raw: Any, column: str, *, quantity: bool, clamp: bool = False
) -> Decimal | None:
    text = _text(raw)
    if not text:
        return None

    value = parse_decimal(raw) if not isinstance(raw, str) else parse_decimal_text(text)
    if value is None or value < 0:
        raise ValueError(f"{column} must be a number of 0 or more, not {text!r}")

    if quantity and to_milli(value) is None:
        raise ValueError(f"{column} may have at most 3 decimal places, not {text!r}")

    most = QUANTITY_MAX if quantity else PRICE_MAX
    if value > most and clamp:
        # Stock and limits are ceilings: above the largest line they change no
        # answer, and a store that writes 1e30 for "plenty" should not be refused.
        return most

    if value > most:
        raise ValueError(f"{column} may be at most {most:,.0f}, not {text!r}")

    return value


def _active(raw: Any) -> bool:
    text = _text(raw).lower()
    if not text or text in _TRUE:
        return True

    if text in _FALSE:
        return False

    raise ValueError(f"active must be true or false, not {text!r}")


def product_from_row(row: Mapping[str, Any]) -> Product:
    """A checked product from one row; ValueError says what is wrong with it."""
    unknown = set(row) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS)
    if unknown:
        raise ValueError(f"unknown columns {sorted(str(c) for c in unknown)}")

    sku, name = _text(row.get("sku")), _text(row.get("name"))
    if not sku:
        raise ValueError("sku is empty")

    if len(sku) > SKU_MAX_CHARS:
        raise ValueError(f"sku is longer than {SKU_MAX_CHARS} characters")

    if not name:
        raise ValueError("name is empty")

    price = _number(row.get("price"), "price", quantity=False)
    if price is None:
        raise ValueError("price is empty")

    step = _number(row.get("step"), "step", quantity=True)
    step = Decimal(1) if step is None else step
    if step <= 0:
        raise ValueError("step must be above 0")

    limit = _number(
        row.get("max_per_customer"), "max_per_customer", quantity=True, clamp=True
    )
    if limit is not None and limit <= 0:
        raise ValueError("max_per_customer must be above 0 (leave it empty for none)")

    if limit is not None and limit < step:
        # Nobody could ever add one step of it, yet it would show as in stock.
        raise ValueError(
            f"max_per_customer ({canonical(limit)}) is less than one step "
            f"({canonical(step)})"
        )

    return Product(
        sku=sku,
        name=name[:NAME_MAX_CHARS],
        price=price,
        stock=_number(row.get("stock"), "stock", quantity=True, clamp=True),
        unit=_text(row.get("unit")) or "pcs",
        step=step,
        max_per_customer=limit,
        promo_price=_number(row.get("promo_price"), "promo_price", quantity=False),
        promo_label=_text(row.get("promo_label")),
        active=_active(row.get("active")),
    )


def _checked(rows: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Product]:
    products: dict[str, Product] = {}
    for where, row in rows:
        try:
            product = product_from_row(row)
        except ValueError as error:
            raise CatalogError(str(error), where) from None

        if product.sku in products:
            raise CatalogError(f"sku {product.sku!r} appears twice", where)

        products[product.sku] = product

    return list(products.values())


def parse_csv(text: str) -> list[Product]:
    """Products of a CSV with a header row; errors name the file's line number."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise CatalogError(f"header lacks the columns {missing}", "line 1")

    def rows() -> Iterable[tuple[str, Mapping[str, Any]]]:
        for row in reader:
            where = f"line {reader.line_num}"
            if None in row:
                raise CatalogError("more fields than the header names", where)
            yield where, row

    try:
        return _checked(rows())
    except csv.Error as error:
        raise CatalogError(
            f"not valid CSV: {error}", f"line {reader.line_num}"
        ) from None


def parse_json(text: str) -> list[Product]:
    """Products of a JSON list of objects; errors name the item (from 1)."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError as error:
        raise CatalogError(f"not valid JSON: {error}") from None

    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise CatalogError("a JSON catalog is a list of product objects")

    return _checked((f"item {number}", item) for number, item in enumerate(data, 1))


def parse_file(path: str | Path) -> list[Product]:
    """Products of a `.json` file, or of a CSV file otherwise."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogError(f"cannot read {file}: {error}") from error

    if file.suffix.lower() == ".json":
        return parse_json(text)

    return parse_csv(text)
