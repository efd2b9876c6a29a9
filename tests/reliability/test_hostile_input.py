"""Hostile input on the raw request path: never a 5xx, never a write when refused.

Bodies of random bytes, deep nesting, numbers JSON allows but no cart expects,
duplicate keys, wrong types, megabyte strings, invalid UTF-8 and ids with control
characters go to all three webhooks, signed and not. Every answer must be a 4xx,
or a 200 with a known shape and reason; no error may be logged; a refused request
must leave Redis as it was (a 200 refusal may add its delivery record, the first
answer kept for the sender's retry). CARTSVC_FUZZ_EXAMPLES sets the number of
random inputs. A client that trickles its body is cut off with 408.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartsvc.app import CART_ITEMS_PATH, CART_PATH, PRODUCTS_PATH, create_app
from cartsvc.http.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from tests.conftest import SECRET
from tests.reliability.figures import FIGURES, size
from tests.reliability.service import (
    CATALOG,
    OPEN_STORE,
    STRICT_STORE,
    Reply,
    ThreadedService,
    reliability_settings,
    snapshot,
)
from tests.servers import RedisServer

FUZZ_EXAMPLES = size("CARTSVC_FUZZ_EXAMPLES", 1200)
DELIVERY = ":delivery:"

CART_REASONS = {
    "missing_params", "missing_sku", "unknown_action", "invalid_id",
    "invalid_quantity", "product_not_found", "out_of_stock", "quantity_exceeded",
    "not_in_cart", "cart_full",
}  # fmt: skip
PER_CUSTOMER = re.compile(r"max_\d+(\.\d+)?_per_customer")
ERROR_REASONS = {
    "invalid_json", "missing_signature", "invalid_signature", "timestamp_expired",
    "payload_too_large", "idempotency_conflict", "missing_params", "invalid_id",
    "invalid_skus", "too_many_skus",
}  # fmt: skip


class Literal(str):
    """JSON text to be written as it is: a number literal such as `1e400`."""


@dataclass(frozen=True)
class Members:
    """A JSON object as written: keys in order, a key possibly more than once."""

    pairs: tuple[tuple[str, Any], ...]


def encode(value: Any, ascii_only: bool = True) -> bytes:
    """The bytes of a JSON text; without `ascii_only`, a lone surrogate is written
    as the invalid UTF-8 a careless sender would produce."""
    return _text(value, ascii_only).encode("utf-8", "surrogatepass")


def _text(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Literal):
        return str(value)

    if isinstance(value, Members):
        pairs = (
            f"{_text(key, ascii_only)}:{_text(item, ascii_only)}"
            for key, item in value.pairs
        )
        return "{" + ",".join(pairs) + "}"

    if isinstance(value, list):
        return "[" + ",".join(_text(item, ascii_only) for item in value) + "]"

    return json.dumps(value, ensure_ascii=ascii_only)


def cart(**fields: Any) -> bytes:
    return encode(Members(tuple(fields.items())))


# Numbers JSON allows that no cart expects, written as the sender wrote them.
NUMBER_LITERALS = tuple(map(Literal, (
    "1e400", "-1e400", "-0", "-0.0", "0e0", "18446744073709551616",
    "-9223372036854775809", "1.0000000000000001", "1E-2000000", "0.001",
    "999.9995", "1" * 4301, "1.5", "3", "0", "1E+2", "1e99999999999999999999",
)))  # fmt: skip
TEXTS = (
    "", " ", "\x00", "a\x01\x1f\x7fb", "ж:{x}%", "\ud800", "\udfff\ud800", "k" * 129,
    "add", "update_quantity", "remove", "clear", STRICT_STORE, OPEN_STORE, "milk",
    "apples", "few", "\u202e", "%00", "{store-1}", "a:b", "x" * 5000,
)  # fmt: skip
# A request line longer than 8190 bytes is refused by aiohttp's parser before any
# handler; query values stay well below that.
QUERY_TEXTS = tuple(text for text in TEXTS if len(text) < 200)
FIELDS = (
    "action",
    "store_id",
    "session_id",
    "sku",
    "quantity",
    "name",
    "price",
    "skus",
)

SCALARS = st.one_of(
    st.sampled_from(NUMBER_LITERALS),
    st.sampled_from(TEXTS),
    st.text(max_size=12),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
KEYS = st.one_of(st.sampled_from(FIELDS), st.text(max_size=6))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(KEYS, inner), max_size=3).map(
            lambda pairs: Members(tuple(pairs))
        ),
    ),
    max_leaves=12,
)
# Objects with the webhooks' own field names, so that input gets past the JSON
# parser and into the cart rules; a name may come twice.
DOCUMENTS = st.lists(
    st.tuples(st.sampled_from(FIELDS), JSON_VALUES), min_size=1, max_size=9
).map(lambda pairs: Members(tuple(pairs)))

SPECIAL_BODIES = (
    b"",
    b"[" * 60_000,
    b'{"action":' + b"[" * 5000 + b"]" * 5000 + b"}",
    b"NaN",
    b'{"quantity": Infinity}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe\x00\x00",
    b'{"action":"add","store_id":"store-1","session_id":"\xc3\x28","sku":"milk"}',
    cart(action="add", store_id=STRICT_STORE, session_id="m", sku="milk",
         name="x" * 1_000_000),
    cart(action="add", store_id=OPEN_STORE, session_id="m", sku="pie",
         name="x" * 60_000, price=Literal("1e400")),
)  # fmt: skip


@st.composite
def tampered_documents(draw: st.DrawFn) -> Members:
    """A well-formed cart operation with one to three fields replaced by hostile
    values, or given twice: input that reaches the cart rules and Redis."""
    pairs = [
        (
            "action",
            draw(st.sampled_from(("add", "remove", "update_quantity", "clear"))),
        ),
        ("store_id", draw(st.sampled_from((STRICT_STORE, OPEN_STORE)))),
        ("session_id", "fuzz"),
        ("sku", draw(st.sampled_from((*CATALOG, "pie")))),
        ("quantity", Literal("1")),
    ]
    for _ in range(draw(st.integers(1, 3))):
        name, value = draw(st.sampled_from(FIELDS)), draw(JSON_VALUES)
        names = [existing for existing, _ in pairs]
        if name in names and draw(st.booleans()):
            pairs[names.index(name)] = (name, value)
        else:
            pairs.append((name, value))

    return Members(tuple(pairs))


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(
        ("tampered", "tampered", "document", "bytes", "special", "mutated")
    ))  # fmt: skip
    if kind == "bytes":
        return draw(st.binary(max_size=300))

    if kind == "special":
        return draw(st.sampled_from(SPECIAL_BODIES))

    document = draw(tampered_documents() if kind != "document" else DOCUMENTS)
    raw = encode(document, ascii_only=draw(st.booleans()))
    if kind == "mutated" and raw:
        # A flipped byte or a cut: what a broken proxy might pass on.
        at = draw(st.integers(0, len(raw) - 1))
        if draw(st.booleans()):
            return raw[:at]
        return raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]

    return raw


@dataclass(frozen=True)
class Attack:
    endpoint: str
    body: bytes
    query: str
    signing: str
    key: str | None


@st.composite
def attacks(draw: st.DrawFn) -> Attack:
    endpoint = draw(st.sampled_from(("cart", "cart", "cart", "products", "items")))
    query = ""
    body = b""
    if endpoint == "items":
        params = draw(st.lists(st.tuples(
            st.sampled_from(("store_id", "session_id", "x")),
            st.one_of(st.sampled_from(QUERY_TEXTS), st.text(max_size=12)),
        ), max_size=3))  # fmt: skip
        query = "&".join(
            f"{name}={quote(value.encode('utf-8', 'surrogatepass'))}"
            for name, value in params
        )
    else:
        body = draw(bodies())

    return Attack(
        endpoint=endpoint,
        body=body,
        query=query,
        signing=draw(st.sampled_from(("valid",) * 7 + ("none", "wrong", "stale"))),
        key=draw(
            st.one_of(
                st.uuids().map(lambda key: key.hex),
                st.sampled_from((None, "fuzz-key", "clé-\xe9", "k" * 1000)),
            )
        ),
    )


def send(service: ThreadedService, attack: Attack) -> Reply:
    signed = attack.body
    headers = {"Content-Type": "application/json"}
    if attack.signing == "valid":
        headers.update(signed_headers(SECRET, signed))
    elif attack.signing == "wrong":
        headers.update(signed_headers("not-the-secret", signed))
    elif attack.signing == "stale":
        headers.update(signed_headers(SECRET, signed, now=time.time() - 3600))

    if attack.key is not None:
        headers["Idempotency-Key"] = attack.key

    if attack.endpoint == "items":
        return service.request("GET", f"{CART_ITEMS_PATH}?{attack.query}", b"", headers)

    path = CART_PATH if attack.endpoint == "cart" else PRODUCTS_PATH
    return service.request("POST", path, attack.body, headers)


def check_answer(endpoint: str, reply: Reply) -> Any:
    """The answer is a 4xx with a known reason, or a 200 of the webhook's shape."""
    assert reply.status < 500, reply
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    answer = reply.json()
    if reply.status != 200:
        assert 400 <= reply.status < 500
        assert answer["ok"] is False and answer["reason"] in ERROR_REASONS, answer
        return answer

    if endpoint == "cart":
        if answer != {"ok": True}:
            assert answer["ok"] is False, answer
            reason = answer["reason"]
            assert reason in CART_REASONS or PER_CUSTOMER.fullmatch(reason), answer
            assert set(answer) <= {"ok", "reason", "available"}
    elif endpoint == "items":
        assert set(answer) == {"items", "total"} and isinstance(answer["items"], list)
    else:
        assert set(answer) == {"products"} and isinstance(answer["products"], list)

    return answer


def check_nothing_written(
    endpoint: str,
    reply: Reply,
    answer: Any,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    if reply.status != 200 or endpoint != "cart":
        assert after == before
    elif answer != {"ok": True}:
        # A decided refusal keeps its first answer for the sender's retry, and
        # nothing else.
        kept = {key: value for key, value in after.items() if DELIVERY not in key}
        assert kept == {k: v for k, v in before.items() if DELIVERY not in k}


@pytest.mark.timeout(120 + FUZZ_EXAMPLES // 10)
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    # The service and its Redis are shared by every example on purpose: each
    # example compares Redis before and after its own request.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    print_blob=True,
)
@given(attack=attacks())
def test_hostile_requests_get_a_4xx_or_a_reason_and_write_nothing(
    threaded_service: ThreadedService,
    redis_admin: redis.Redis,
    loaded: None,
    attack: Attack,
) -> None:
    before = snapshot(redis_admin)

    reply = send(threaded_service, attack)

    FIGURES.inputs_fuzzed += 1
    answer = check_answer(attack.endpoint, reply)
    check_nothing_written(attack.endpoint, reply, answer, before, snapshot(redis_admin))


S = {"store_id": STRICT_STORE, "session_id": "h"}
NAMED = [
    pytest.param(cart(action="add", **S, sku="milk", quantity=Literal("1e400")),
                 200, "invalid_quantity", id="quantity-1e400"),
    pytest.param(cart(action="add", **S, sku="milk", quantity=Literal("-0")),
                 200, "invalid_quantity", id="add-minus-zero"),
    pytest.param(cart(action="update_quantity", **S, sku="milk",
                      quantity=Literal("-0.0")),
                 200, "not_in_cart", id="update-minus-zero-absent-line"),
    pytest.param(cart(action="add", **S, sku="milk",
                      quantity=Literal("18446744073709551616")),
                 200, "invalid_quantity", id="quantity-2-to-the-64"),
    pytest.param(cart(action="add", **S, sku="milk",
                      quantity=Literal("1.0000000000000001")),
                 200, "invalid_quantity", id="quantity-finer-than-a-double"),
    pytest.param(cart(action="add", **S, sku="milk",
                      quantity=Literal("1.000000000000000000000000000001")),
                 200, "invalid_quantity", id="quantity-finer-than-28-digits"),
    pytest.param(cart(action="add", **S, sku="milk", quantity=Literal("1E-2000000")),
                 200, "invalid_quantity", id="quantity-below-decimal-exponents"),
    pytest.param(cart(action="add", **S, sku=Literal("18446744073709551616")),
                 200, "product_not_found", id="sku-2-to-the-64-taken-as-text"),
    pytest.param(encode(Members((("action", "add"), *S.items(), ("sku", "milk"),
                                 ("quantity", 1), ("quantity", "1")))),
                 200, "invalid_quantity", id="duplicate-key-last-wins"),
    pytest.param(cart(action=1, **S, sku="milk"), 200, "unknown_action",
                 id="action-number"),
    pytest.param(cart(action="add", store_id=True, session_id="h", sku="milk"),
                 200, "invalid_id", id="store-boolean"),
    pytest.param(cart(action="add", store_id=STRICT_STORE, session_id={}, sku="milk"),
                 200, "invalid_id", id="session-object"),
    pytest.param(cart(action="add", **S, sku="milk", quantity="1"),
                 200, "invalid_quantity", id="quantity-string"),
    pytest.param(cart(action="add", store_id=Literal("1e400"), session_id="h",
                      sku="milk"),
                 200, "invalid_id", id="store-number-1e400"),
    pytest.param(cart(action="add", store_id=STRICT_STORE, session_id="\ud800",
                      sku="milk"),
                 200, "invalid_id", id="session-lone-surrogate"),
    pytest.param(cart(action="add", **S, sku="k" * 129), 200, "invalid_id",
                 id="sku-too-long"),
    pytest.param(cart(action="add", **S, sku="milk",
                      quantity=Literal("1e99999999999999999999")),
                 400, "invalid_json", id="exponent-beyond-any-decimal"),
    pytest.param(SPECIAL_BODIES[8], 413, "payload_too_large", id="megabyte-string"),
    pytest.param(SPECIAL_BODIES[1], 400, "invalid_json", id="deep-nesting"),
    pytest.param(SPECIAL_BODIES[3], 400, "invalid_json", id="nan"),
    pytest.param(SPECIAL_BODIES[4], 200, "missing_params", id="infinity-alone"),
    pytest.param(cart(action="add", **S, sku="milk", quantity=Literal("NaN")),
                 200, "invalid_quantity", id="quantity-nan"),
    pytest.param(cart(action="add", **S, sku="milk", quantity=Literal("-Infinity")),
                 200, "invalid_quantity", id="quantity-minus-infinity"),
    pytest.param(SPECIAL_BODIES[7], 400, "invalid_json", id="invalid-utf-8"),
    pytest.param(encode(Members((("action", "add"), *S.items(), ("sku", "\ud800"))),
                        ascii_only=False),
                 200, "invalid_id", id="surrogate-as-raw-bytes"),
    pytest.param(b"", 400, "invalid_json", id="empty-body"),
    pytest.param(b'["add"]', 400, "invalid_json", id="array-body"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "reason"), NAMED)
def test_named_hostile_input_is_refused_with_its_reason(
    threaded_service: ThreadedService,
    redis_admin: redis.Redis,
    loaded: None,
    body: bytes,
    status: int,
    reason: str,
) -> None:
    before = snapshot(redis_admin)

    reply = threaded_service.cart(body, uuid.uuid4().hex)

    FIGURES.inputs_fuzzed += 1
    assert (reply.status, reply.json()) == (status, {"ok": False, "reason": reason})
    check_nothing_written("cart", reply, reply.json(), before, snapshot(redis_admin))


@pytest.mark.parametrize(
    "session_id", ["a\x00b", "a\nb", "a\x1bb", "a b", "a:b", "a%3Ab", "{a}", "ж"]
)
def test_session_ids_with_control_characters_get_carts_of_their_own(
    threaded_service: ThreadedService, loaded: None, session_id: str
) -> None:
    body = cart(action="add", store_id=STRICT_STORE, session_id=session_id, sku="milk")

    reply = threaded_service.cart(body, uuid.uuid4().hex)

    FIGURES.inputs_fuzzed += 1
    assert (reply.status, reply.json()) == (200, {"ok": True})
    [line] = threaded_service.items(STRICT_STORE, session_id).json()["items"]
    assert (line["sku"], line["quantity"]) == ("milk", 1)
    for neighbour in ("a", "b", "ab", "a%00b"):
        assert threaded_service.items(STRICT_STORE, neighbour).json()["items"] == []


def test_long_and_broken_names_are_kept_as_text_for_open_lines(
    threaded_service: ThreadedService, loaded: None
) -> None:
    for sku, name in (("pie", "x" * 60_000), ("tart", "bad \ud800 name")):
        body = cart(action="add", store_id=OPEN_STORE, session_id="n", sku=sku,
                    name=name, price=Literal("12.5"))  # fmt: skip
        reply = threaded_service.cart(body, uuid.uuid4().hex)
        assert (reply.status, reply.json()) == (200, {"ok": True})

    items = threaded_service.items(OPEN_STORE, "n").json()["items"]
    assert [(i["sku"], i["name"], i["price"]) for i in items] == [
        ("pie", "x" * 300, 12.5),
        ("tart", "bad \ufffd name", 12.5),
    ]


BODY_TIMEOUT_MS = 500
# aiohttp reads and discards what follows an unanswered body for this long
# (its `lingering_time`), then closes the connection.
LINGERING_S = 10.0
ANSWER_MARGIN_S = 0.5


async def test_a_body_trickled_slower_than_the_body_timeout_is_cut_off_with_408(
    aiohttp_server: Any, redis_server: RedisServer
) -> None:
    settings = reliability_settings(redis_server.url, body_timeout_ms=BODY_TIMEOUT_MS)
    server = await aiohttp_server(create_app(settings))
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = (
        f"POST {CART_PATH} HTTP/1.1\r\nHost: cartsvc\r\n"
        f"Content-Type: application/json\r\nContent-Length: 1000\r\n"
        f"{TIMESTAMP_HEADER}: {int(time.time())}\r\n"
        f"{SIGNATURE_HEADER}: sha256=00\r\n\r\n"
    )
    writer.write(head.encode() + b'{"action":')
    started = time.monotonic()

    async def trickle() -> None:
        # One byte every 50 ms: the body would take 50 s to arrive.
        try:
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            return

    trickling = asyncio.create_task(trickle())
    try:
        status_line, headers = await _read_head(reader)
        answered_s = time.monotonic() - started
        body = await reader.readexactly(int(headers["content-length"]))
        leftover = await asyncio.wait_for(
            _until_closed(reader), LINGERING_S + ANSWER_MARGIN_S * 4
        )
        closed_s = time.monotonic() - started
    finally:
        trickling.cancel()
        writer.close()

    FIGURES.inputs_fuzzed += 1
    assert status_line.startswith("HTTP/1.1 408")
    assert body == b'{"ok":false,"reason":"request_timeout"}'
    assert (
        BODY_TIMEOUT_MS / 1000 <= answered_s < BODY_TIMEOUT_MS / 1000 + ANSWER_MARGIN_S
    )
    assert leftover == b""
    assert closed_s < BODY_TIMEOUT_MS / 1000 + LINGERING_S + ANSWER_MARGIN_S * 4


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sends until it closes the connection; a reset is a close
    too (the server had unread bytes of ours when it closed)."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = raw.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines if line)
    return status_line, {name.lower(): value for name, value in headers.items()}
