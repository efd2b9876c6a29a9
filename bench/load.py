"""Request pools for each mix, pre-signed, and wrk to replay them."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.procs import SUPPORT_CPUS, cpus
from cartsvc.http.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

STORE = "bench"
SKUS = [f"sku-{n:02d}" for n in range(50)]
LINES_PER_CART = 5
CART_PATH = "/api/vizochok/cart"
ITEMS_PATH = "/api/vizochok/cart/items"
PRODUCTS_PATH = "/api/vizochok/check-products"
REPLAY_SCRIPT = Path(__file__).with_name("replay.lua")

# Each cart holds five of the catalog's skus; a pool cycles over many carts so
# that no line nears the line maximum (999) in the few hundred thousand adds a
# whole benchmark sends.
POOL_CARTS = 2000


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""


def cart_skus(cart: int) -> list[str]:
    return [
        SKUS[(cart * LINES_PER_CART + j) % len(SKUS)] for j in range(LINES_PER_CART)
    ]


def _cart_body(action: str, session: str, sku: str = "", quantity: int = 0) -> bytes:
    body: dict[str, object] = {
        "action": action,
        "store_id": STORE,
        "session_id": session,
    }
    if sku:
        body["sku"] = sku
    if quantity:
        body["quantity"] = quantity
    return orjson.dumps(body)


def adds() -> list[Request]:
    """Adds of one item, round-robin over the lines of many five-line carts."""
    return [
        Request("POST", CART_PATH, _cart_body("add", f"add-{cart}", sku, 1))
        for sku_index in range(LINES_PER_CART)
        for cart in range(POOL_CARTS)
        for sku in [cart_skus(cart)[sku_index]]
    ]


def mixed() -> list[Request]:
    """Adds, quantity updates, removes and clears, as a conversation makes them."""
    chooser = random.Random(7)
    pool = []
    for _ in range(POOL_CARTS * LINES_PER_CART):
        cart = chooser.randrange(POOL_CARTS // 2)
        session, sku = f"mix-{cart}", chooser.choice(cart_skus(cart))
        roll = chooser.random()
        if roll < 0.55:
            body = _cart_body("add", session, sku, chooser.randint(1, 2))
        elif roll < 0.8:
            body = _cart_body("update_quantity", session, sku, chooser.randint(1, 5))
        elif roll < 0.95:
            body = _cart_body("remove", session, sku)
        else:
            body = _cart_body("clear", session)
        pool.append(Request("POST", CART_PATH, body))
    return pool


def gets() -> list[Request]:
    """The cart GET of carts that hold five lines each (see `fill_carts`)."""
    return [
        Request("GET", f"{ITEMS_PATH}?store_id={STORE}&session_id=get-{cart}")
        for cart in range(POOL_CARTS)
    ]


def products() -> list[Request]:
    """Prices of five skus, one of them unknown to the catalog."""
    chooser = random.Random(11)
    return [
        Request(
            "POST",
            PRODUCTS_PATH,
            orjson.dumps(
                {"skus": [*chooser.sample(SKUS, 4), "no-such-sku"], "store_id": STORE}
            ),
        )
        for _ in range(POOL_CARTS)
    ]


MIXES = {
    "cart adds": adds,
    "mixed cart ops": mixed,
    "cart GET": gets,
    "products": products,
}


def write_pool(requests: list[Request], secret: str, path: Path) -> None:
    """Sign every request now and write the pool file replay.lua reads."""
    timestamp = str(int(time.time()))
    records = []
    for request in requests:
        head = (
            f"{request.method} {request.path} HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            f"{TIMESTAMP_HEADER}: {timestamp}\r\n"
            f"{SIGNATURE_HEADER}: {signature(secret, timestamp, request.body)}\r\n"
        )
        if request.body:
            head += (
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(request.body)}\r\n"
            )
        head += "Idempotency-Key: "
        records.append(head.encode() + b"\1" + b"\r\n\r\n" + request.body + b"\0")
    path.write_bytes(b"".join(records))


@dataclass(frozen=True)
class Result:
    requests: int
    rate: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int


def wrk_binary() -> str:
    """wrk from Debian's packages, installed here when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found

    print("installing wrk (apt-get install -y wrk)", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get did not install it")
    return found


def run_wrk(
    port: int, pool: Path, tag: str, duration_s: float, connections: int
) -> Result:
    """One wrk run on the support core; only ever against 127.0.0.1."""
    core = ",".join(str(c) for c in sorted(cpus(SUPPORT_CPUS)))
    command = [
        "taskset", "-c", core, wrk_binary(),
        "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s",
        "-s", str(REPLAY_SCRIPT), f"http://127.0.0.1:{port}", "--", str(pool), tag,
    ]  # fmt: skip
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 30, check=True
    )
    line = next(
        (x for x in finished.stdout.splitlines() if x.startswith("BENCH ")), None
    )
    if line is None:
        raise RuntimeError(
            f"wrk printed no result:\n{finished.stdout}{finished.stderr}"
        )

    stats = json.loads(line[len("BENCH ") :])
    return Result(
        requests=stats["requests"],
        rate=stats["requests"] / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        socket_errors=stats["socket_errors"],
        non_2xx=stats["non_2xx"],
    )
