"""Catalog files: checked whole, a bad row named by its line, then one atomic write."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cartsvc.catalog import parse_csv, parse_file, parse_json
from cartsvc.errors import CatalogError
from cartsvc.storage.carts import Storage

HEADER = (
    "sku,name,price,stock,unit,step,max_per_customer,promo_price,promo_label,active\n"
)


def test_sample_catalog_loads() -> None:
    products = parse_file(
        Path(__file__).parent.parent / "config" / "catalog.sample.csv"
    )

    by_sku = {p.sku: p for p in products}
    assert by_sku["milk-001"].price == Decimal("45.90")
    assert by_sku["apples-kg"].step == Decimal("0.1")
    assert by_sku["coffee-01"].stock is None
    assert by_sku["coffee-01"].active is False


def test_optional_columns_take_their_defaults() -> None:
    (product,) = parse_csv("sku,name,price\nbread-01,Хліб,32\n")

    assert product.fields() == {
        "name": "Хліб",
        "price": "32",
        "unit": "pcs",
        "step": "1",
        "active": "1",
    }


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param("x,X,abc,,,,,,,", "price must be a number", id="bad-price"),
        pytest.param(",X,1,,,,,,,", "sku is empty", id="no-sku"),
        pytest.param("x,,1,,,,,,,", "name is empty", id="no-name"),
        pytest.param("x,X,1,-1,,,,,,", "stock must be a number", id="negative-stock"),
        pytest.param(
            "x,X,1,,kg,0.0001,,,,", "at most 3 decimal places", id="fine-step"
        ),
        pytest.param("x,X,1,,,0,,,,", "step must be above 0", id="zero-step"),
        pytest.param(
            "x,X,1,,,,0,,,", "max_per_customer must be above 0", id="zero-limit"
        ),
        pytest.param(
            "x,X,1,,kg,0.5,0.25,,,",
            "max_per_customer (0.25) is less than one step (0.5)",
            id="limit-below-step",
        ),
        pytest.param(
            "x,X,1,,,,,,,maybe", "active must be true or false", id="bad-active"
        ),
        pytest.param("milk-001,X,1,,,,,,,", "appears twice", id="duplicate"),
        pytest.param("x,X,1e13,,,,,,,", "price may be at most", id="huge-price"),
        pytest.param("x,X,1,,,1e10,,,,", "step may be at most", id="huge-step"),
        pytest.param(
            "x,X,1,,,,,,,,extra", "more fields than the header", id="extra-field"
        ),
    ],
)
def test_a_bad_row_is_named_by_its_line(row: str, message: str) -> None:
    text = (
        HEADER
        + "milk-001,Milk,45.9,,,,,,,\n"
        + "bread-01,Bread,32,,,,,,,\n"
        + row
        + "\n"
    )

    with pytest.raises(CatalogError) as caught:
        parse_csv(text)

    assert str(caught.value).startswith("line 4: ")
    assert message in str(caught.value)


def test_stock_and_limit_above_the_largest_line_are_capped_not_refused() -> None:
    (product,) = parse_csv(HEADER + "sand-01,Sand,1,1e30,,,5e12,,,\n")

    assert (product.stock, product.max_per_customer) == (Decimal(10**9), Decimal(10**9))


def test_missing_required_column_names_the_header() -> None:
    with pytest.raises(
        CatalogError, match=r"line 1: header lacks the columns \['price'\]"
    ):
        parse_csv("sku,name\nx,X\n")


def test_unknown_column_is_refused() -> None:
    with pytest.raises(CatalogError, match="line 2: unknown columns"):
        parse_csv("sku,name,price,stok\nx,X,1,5\n")


def test_json_catalog_with_numbers_and_bad_item() -> None:
    products = parse_json('[{"sku": "a", "name": "A", "price": 0.1, "stock": 3}]')
    assert (products[0].price, products[0].stock) == (Decimal("0.1"), Decimal(3))

    with pytest.raises(CatalogError, match="item 2: price is empty"):
        parse_json('[{"sku": "a", "name": "A", "price": 1}, {"sku": "b", "name": "B"}]')

    with pytest.raises(CatalogError, match="list of product objects"):
        parse_json('{"sku": "a"}')


def test_a_lone_surrogate_in_a_json_catalog_is_named_by_its_item() -> None:
    text = '[{"sku": "a", "name": "A", "price": 1}, {"sku": "b", "name": "\\ud800"}]'

    with pytest.raises(CatalogError, match=r"item 2: .* is not valid Unicode text"):
        parse_json(text)


async def test_write_replaces_products_whole(real_redis: Any) -> None:
    storage = Storage(real_redis, "cartsvc", 5000)
    first = parse_csv(HEADER + "eggs,Eggs,64.5,25,,,3,59.9,-7%,\n")
    later = parse_csv(HEADER + "eggs,Eggs,64.5,20,,,,,,\n")

    await storage.write_products("store-1", [(p.sku, p.fields()) for p in first])
    await storage.write_products("store-1", [(p.sku, p.fields()) for p in later])

    assert await real_redis.hgetall("cartsvc:{store-1}:product:eggs") == {
        "name": "Eggs",
        "price": "64.5",
        "stock": "20",
        "unit": "pcs",
        "step": "1",
        "active": "1",
    }
