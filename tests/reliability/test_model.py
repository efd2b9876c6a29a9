"""The real service against the reference model, over random sequences of steps.

A Hypothesis state machine sends the four actions (valid and not), repeated and
conflicting deliveries, catalog reloads and removals, and cart reads, through
HTTP to the service on real Redis; every answer, every cart as `HGETALL` shows
it, every cart as the GET webhook shows it and the event stream must be what
`model.CartModel` says. CARTSVC_MODEL_EXAMPLES sets the number of sequences.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from cartsvc.storage.keys import StoreKeys
from tests.reliability.figures import FIGURES, size
from tests.reliability.model import CartModel, Product
from tests.reliability.service import (
    CART_MAX_LINES,
    CATALOG,
    OPEN_STORE,
    STRICT_STORE,
    ThreadedService,
    render,
)

EXAMPLES = size("CARTSVC_MODEL_EXAMPLES", 50)
STEPS_PER_EXAMPLE = 80
PREFIX = "cartsvc"

STORES = (STRICT_STORE, OPEN_STORE)
# A session id that needs escaping, and one sent as a number (taken as text).
SESSIONS: tuple[Any, ...] = ("u1", "u2", "ж:{x}% \x01", 5)
# Most steps go to one cart, so that carts fill up to the line limit.
BUSY_SESSIONS = ("u1", "u1", "u1", *SESSIONS)
# Skus no catalog holds at first: a store in open mode takes them as they come.
SKUS: tuple[Any, ...] = (*CATALOG, "pie", 12345)

# Quantities most products take, and numbers at and past every edge.
QUANTITIES: tuple[Any, ...] = (
    1, 2, 3, 1, 2, 5, *map(Decimal, ("1.0", "0.5", "0.1", "0.2", "0.3", "0.25", "2.5")),
)  # fmt: skip
EDGE_QUANTITIES: tuple[Any, ...] = (
    0, -1, 998, 999, 1000, 10**20,
    *map(Decimal, (
        "0.001", "0.0001", "1E+1", "1E+400", "-0.0", "998.999", "1.50", "2.50",
        "1.000000000000000000000000000001", "1E-2000000",
    )),
    "1", True, [1], {"n": 1},
)  # fmt: skip


def one_in(times: int) -> st.SearchStrategy[bool]:
    """True about once in `times` draws. (Hypothesis favours small integers, so
    the rare case is the largest one, not 0.)"""
    return st.integers(0, times - 1).map(lambda n: n == times - 1)


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """Usual values most of the time, odd ones (wrong type, empty, too long) else."""
    return one_in(12).flatmap(lambda rare: odd if rare else usual)


ACTION = mostly(
    st.sampled_from(("add", "add", "add", "add", "update_quantity", "update_quantity",
                     "remove", "clear")),
    st.sampled_from(("buy", "ADD", "", None, 7, ["add"])),
)  # fmt: skip
STORE_ID = mostly(st.sampled_from(STORES), st.sampled_from(("", None, "s" * 129, 0)))
SESSION_ID = mostly(
    st.sampled_from(BUSY_SESSIONS),
    st.sampled_from(("", None, "s" * 129, True, "\ud800")),
)
SKU = mostly(
    st.sampled_from(SKUS), st.sampled_from(("", None, "k" * 129, Decimal("1.5")))
)
QUANTITY = one_in(4).flatmap(
    lambda edge: st.sampled_from(EDGE_QUANTITIES if edge else QUANTITIES)
)
NAME = st.sampled_from(("Пиріг", "with\ttab", "x" * 301, 5, "bad \ud800 name"))
PRICE = st.sampled_from((Decimal("55.5"), 0, -1, "12", True, Decimal("0.30")))


@st.composite
def cart_bodies(draw: st.DrawFn) -> Any:
    """A cart webhook body: mostly well formed, now and then not."""
    if draw(one_in(60)):
        return []

    fields = {
        "action": ACTION,
        "store_id": STORE_ID,
        "session_id": SESSION_ID,
        "sku": SKU,
        "quantity": QUANTITY,
        "name": NAME,
        "price": PRICE,
    }
    body: dict[str, Any] = {}
    for name, values in fields.items():
        # Quantity, name and price are often absent; the ids rarely.
        absent = one_in(4 if name in ("quantity", "name", "price") else 60)
        if not draw(absent):
            body[name] = draw(values)

    return body


@st.composite
def catalog_rows(draw: st.DrawFn) -> dict[str, str]:
    """A product row as a catalog file has it, valid for `cartsvc catalog load`."""
    choices = {
        "name": ("Молоко", "Salt", "Яйця «С1»"),
        "price": ("0", "12.30", "45.90", "399"),
        "stock": ("", "0", "1", "2.5", "5", "50.5", "998"),
        "unit": ("", "kg", "pcs"),
        "step": ("", "0.1", "0.25", "0.5", "1"),
        "max_per_customer": ("", "1", "3", "2.5"),
        "promo_price": ("", "0", "29.99"),
        "active": ("", "true", "false"),
    }
    return {name: draw(st.sampled_from(values)) for name, values in choices.items()}


@dataclass(frozen=True)
class Delivery:
    key: str | None
    timestamp: str
    document: Any
    raw: bytes


class CartMachine(RuleBasedStateMachine):
    """The service and the model, sent the same steps, must agree on everything."""

    service: ThreadedService
    redis: redis.Redis

    deliveries = Bundle("deliveries")

    def __init__(self) -> None:
        super().__init__()
        self.redis.flushall()
        self.model = CartModel(
            open_stores=frozenset({OPEN_STORE}), cart_max_lines=CART_MAX_LINES
        )
        # Deliveries without an Idempotency-Key are named by their signed bytes;
        # a few fixed timestamps make identical ones collide, as they would.
        self.base_s = int(time.time())
        for store_id in STORES:
            for sku, row in CATALOG.items():
                self._load(store_id, sku, row)
        FIGURES.model_examples += 1

    def _load(self, store_id: str, sku: str, row: dict[str, str]) -> None:
        self.service.load_catalog(store_id, {sku: row})
        self.model.load_product(store_id, sku, Product.from_row(row))

    def _step(self) -> None:
        FIGURES.model_steps += 1

    def _send(self, delivery: Delivery) -> None:
        reply = self.service.cart(delivery.raw, delivery.key, delivery.timestamp)
        FIGURES.model_requests += 1
        delivery_id = CartModel.delivery_id(
            delivery.key, delivery.timestamp, delivery.raw
        )
        expected = self.model.deliver(delivery.document, delivery.raw, delivery_id)
        assert (reply.status, reply.json()) == (expected.status, expected.body), (
            f"body {delivery.raw!r} key {delivery.key!r}"
        )
        self._check_touched(delivery.document)

    def _check_touched(self, document: Any) -> None:
        """The cart a request named, as the GET webhook shows it, and its events."""
        if not isinstance(document, dict):
            return

        store_id, session_id = document.get("store_id"), document.get("session_id")
        if store_id in STORES and session_id in SESSIONS:
            self._compare_view(store_id, str(session_id))
            self._compare_events(store_id)

    def _compare_view(self, store_id: str, session_id: str) -> None:
        reply = self.service.items(store_id, session_id)
        FIGURES.model_requests += 1
        expected = self.model.view(store_id, session_id)
        assert (reply.status, reply.json()) == (200, expected), (store_id, session_id)

    def _compare_events(self, store_id: str) -> None:
        key = StoreKeys(PREFIX, store_id).events()
        expected = self.model.events.get(store_id, [])
        assert self.redis.xlen(key) == len(expected)
        if expected:
            [(_, last)] = self.redis.xrevrange(key, count=1)
            assert last == expected[-1]

    def _deliver(self, body: Any, key: str | None, offset_s: int = 0) -> Delivery:
        self._step()
        delivery = Delivery(
            key=key,
            timestamp=str(self.base_s + offset_s),
            document=body,
            raw=render(body).encode(),
        )
        self._send(delivery)
        return delivery

    @rule(target=deliveries, body=cart_bodies(), key=st.uuids())
    def deliver(self, body: Any, key: uuid.UUID) -> Delivery:
        """A new delivery with its own Idempotency-Key, as the sender numbers them."""
        return self._deliver(body, key.hex)

    @rule(target=deliveries, body=cart_bodies(), offset_s=st.integers(0, 1))
    def deliver_without_key(self, body: Any, offset_s: int) -> Delivery:
        """A delivery named by its signed bytes: the same body signed in the same
        second is the same delivery."""
        return self._deliver(body, None, offset_s)

    @rule(delivery=deliveries)
    def redeliver(self, delivery: Delivery) -> None:
        """The sender's retry: the same bytes; re-signed now when it has a key."""
        self._step()
        if delivery.key is not None:
            delivery = Delivery(
                delivery.key, str(int(time.time())), delivery.document, delivery.raw
            )
        self._send(delivery)

    @rule(delivery=deliveries, body=cart_bodies())
    def reuse_delivery_id(self, delivery: Delivery, body: Any) -> None:
        """Another body under a delivery's key (or its timestamp, without a key)."""
        self._step()
        self._send(
            Delivery(delivery.key, delivery.timestamp, body, render(body).encode())
        )

    @rule(store_id=st.sampled_from(STORES), sku=st.sampled_from((*CATALOG, "pie")),
          row=st.none() | catalog_rows())  # fmt: skip
    def change_catalog(
        self, store_id: str, sku: str, row: dict[str, str] | None
    ) -> None:
        """A catalog load replaces a product whole (stock, step, limit, price), or
        the product leaves the catalog while carts still hold it."""
        self._step()
        if row is not None:
            self._load(store_id, sku, row)
        else:
            self.redis.delete(StoreKeys(PREFIX, store_id).product(sku))
            self.model.drop_product(store_id, sku)

    @rule(store_id=st.sampled_from(STORES), session_id=st.sampled_from(SESSIONS))
    def read_cart(self, store_id: str, session_id: Any) -> None:
        """The cart at a conversation's start, any cart, touched or not."""
        self._step()
        self._compare_view(store_id, str(session_id))

    @invariant()
    def every_cart_is_as_the_model_says(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        carts = [(store, str(session)) for store in STORES for session in SESSIONS]
        for store_id, session_id in carts:
            pipe.hgetall(StoreKeys(PREFIX, store_id).cart(session_id))

        stored = dict(zip(carts, pipe.execute(), strict=True))
        expected = {cart: self.model.cart_lines(*cart) for cart in carts}
        assert stored == expected


# Generous: a failure's shrinking reruns many sequences; CI runs take ~15 s.
@pytest.mark.timeout(120 + 2 * EXAMPLES)
def test_service_agrees_with_the_model(
    threaded_service: ThreadedService, redis_admin: redis.Redis
) -> None:
    CartMachine.service = threaded_service
    CartMachine.redis = redis_admin
    steps_before = FIGURES.model_steps

    run_state_machine_as_test(
        CartMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS_PER_EXAMPLE,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            print_blob=True,
        ),
    )

    # The machine really ran: on average well over half its steps per sequence.
    assert FIGURES.model_steps - steps_before >= EXAMPLES * STEPS_PER_EXAMPLE // 2
