"""Regressions for the defects the model, fuzz and fault tests found in cartsvc.

Each was a 500, a silent wrong answer or a 503 without an outage; the tests here
pin each fix at the unit where it lives, beside the end-to-end tests that found it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cartsvc import settings as settings_module
from cartsvc.cart import parse_cart_request
from cartsvc.http.webhooks import parse_json
from cartsvc.quantity import to_milli
from cartsvc.settings import Limits
from cartsvc.storage.carts import Storage


@pytest.mark.parametrize(
    ("text", "milli"),
    [
        pytest.param("1.000000000000000000000000000001", None, id="31-digits"),
        pytest.param("1E-2000000", None, id="below-the-default-exponent-range"),
        pytest.param("0.0001", None, id="four-places"),
        pytest.param("2.5", 2500, id="two-and-a-half"),
        pytest.param("1.000", 1000, id="trailing-zeros"),
        pytest.param("1E+2", 100_000, id="exponent-form"),
        pytest.param("-0.0", 0, id="minus-zero"),
    ],
)
def test_quantities_count_in_exact_thousandths(text: str, milli: int | None) -> None:
    assert to_milli(Decimal(text)) == milli


@pytest.mark.parametrize(
    "body",
    [b'{"quantity": 1e99999999999999999999}', b"[1E-99999999999999999999]"],
)
def test_a_number_past_any_decimal_exponent_is_not_json_we_take(body: bytes) -> None:
    assert parse_json(body) is None


def test_a_lone_surrogate_in_an_open_name_becomes_a_replacement_character() -> None:
    body = {"action": "add", "store_id": "s", "session_id": "u", "sku": "pie",
            "name": "bad \ud800 name\tend"}  # fmt: skip

    request = parse_cart_request(body, Limits())

    assert request.open_name == "bad \ufffd name end"
    assert request.open_name.encode("utf-8")


def test_the_body_timeout_comes_from_the_environment() -> None:
    loaded = settings_module.load(env={"CARTSVC_BODY_TIMEOUT_MS": "750"})

    assert loaded.limits.body_timeout_ms == 750
    assert Limits().body_timeout_ms == 3000


async def test_a_script_flushed_again_right_after_its_reload_still_runs(
    redis_client: Any,
) -> None:
    storage = Storage(redis_client, "cartsvc", timeout_ms=1000)
    await storage.write_products("s", [("milk", {"name": "Milk", "price": "1"})])
    reload = redis_client.script_load

    async def reload_then_lose(script: str) -> str:
        # Another client's SCRIPT FLUSH lands between the reload and the run.
        sha: str = await reload(script)
        await redis_client.script_flush()
        return sha

    redis_client.script_load = reload_then_lose
    await redis_client.script_flush()

    [product] = await storage.read_products("s", ["milk"])

    assert product is not None and product.price == "1"
