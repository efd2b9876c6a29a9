"""Exact decimals and their thousandths."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cartsvc.quantity import canonical, from_milli, json_number, parse_decimal, to_milli


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1, Decimal(1), id="int"),
        pytest.param(Decimal("0.1"), Decimal("0.1"), id="decimal"),
        pytest.param(True, None, id="bool"),
        pytest.param("1", None, id="string"),
        pytest.param(1.5, None, id="binary-float"),
        pytest.param(Decimal("NaN"), None, id="nan"),
        pytest.param(Decimal("Infinity"), None, id="inf"),
        pytest.param(None, None, id="none"),
    ],
)
def test_parse_decimal_takes_only_finite_json_numbers(
    value: object, expected: object
) -> None:
    assert parse_decimal(value) == expected


@pytest.mark.parametrize(
    ("text", "milli"),
    [("1", 1000), ("1.0", 1000), ("0.1", 100), ("0.001", 1), ("12.345", 12345),
     ("0.0001", None), ("1e400", 10**403), ("-0", 0)],
)  # fmt: skip
def test_to_milli_is_exact_or_none(text: str, milli: int | None) -> None:
    assert to_milli(Decimal(text)) == milli


def test_point_one_plus_point_two_is_point_three() -> None:
    total = to_milli(Decimal("0.1")) + to_milli(Decimal("0.2"))  # type: ignore[operator]
    assert canonical(from_milli(total)) == "0.3"


@pytest.mark.parametrize(
    ("value", "text"),
    [("1.000", "1"), ("45.90", "45.9"), ("1E+1", "10"), ("0.300", "0.3"), ("0", "0")],
)
def test_canonical_text_is_plain_and_short(value: str, text: str) -> None:
    assert canonical(Decimal(value)) == text


def test_json_number_keeps_whole_numbers_whole() -> None:
    assert (json_number(Decimal("2.0")), json_number(Decimal("0.3"))) == (2, 0.3)
    assert isinstance(json_number(Decimal("2.0")), int)
