"""The `cartsvc` command against a running service: send, cart show, catalog load."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import SECRET
from tests.servers import RedisServer, free_port
from tests.service import ROOT, SAMPLE_CATALOG, ServiceProcess, environment, run_cli

ADD_MILK = (
    '{"action":"add","store_id":"store-1","session_id":"user-123","sku":"milk-001",'
    '"name":"Молоко Lactel 2.5%","quantity":1,"price":45.90}'
)


@pytest.fixture(scope="module")
def service(redis_server: RedisServer) -> Iterator[ServiceProcess]:
    """A serving process over the suite's redis-server, sample catalog loaded."""
    with redis_server.client() as direct:
        direct.flushall()
    loaded = run_cli("catalog", "load", "--store", "store-1", str(SAMPLE_CATALOG),
                     env=environment(CARTSVC_REDIS_URL=redis_server.url))  # fmt: skip
    assert (loaded.returncode, loaded.stdout) == (
        0,
        "loaded 6 products into store store-1\n",
    )
    process = ServiceProcess(redis_server.url).start()
    yield process
    process.close()


@pytest.fixture
def sender_env(redis_server: RedisServer) -> dict[str, str]:
    return environment(
        CARTSVC_REDIS_URL=redis_server.url, CARTSVC_WEBHOOK_SECRET=SECRET
    )


def send(service: ServiceProcess, env: dict[str, str], *args: str) -> tuple[int, str]:
    result = run_cli("send", *args, "--url", service.url, env=env)
    return result.returncode, result.stdout


def readme_send_steps() -> list[tuple[list[str], str]]:
    """The README's `cartsvc send` commands, each with the output it shows."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Trying a deployment with `cartsvc send`", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    steps: list[tuple[list[str], str]] = []
    for line in block.splitlines():
        if line.startswith("cartsvc send "):
            steps.append((shlex.split(line)[2:], ""))
        elif line.startswith("# ") and steps:
            args, shown = steps[-1]
            steps[-1] = (args, shown + line[2:] + "\n")

    return steps


def test_the_readme_send_session_prints_what_the_readme_shows(
    service: ServiceProcess, sender_env: dict[str, str]
) -> None:
    steps = readme_send_steps()

    printed = [send(service, sender_env, *args)[1] for args, _ in steps]

    assert len(steps) == 5
    assert printed == [shown for _, shown in steps]


def test_send_cart_then_items_prints_the_documented_answers(
    service: ServiceProcess, sender_env: dict[str, str]
) -> None:
    assert send(service, sender_env, "cart", ADD_MILK) == (0, 'HTTP 200\n{"ok":true}\n')

    code, printed = send(
        service, sender_env, "items", "--store", "store-1", "--session", "user-123"
    )

    assert code == 0
    assert printed == (
        "HTTP 200\n"
        '{"items":[{"sku":"milk-001","name":"Молоко Lactel 2.5%","price":45.9,'
        '"quantity":1,"unit":"pcs"}],"total":45.9}\n'
    )


def test_send_products_prints_prices_and_availability(
    service: ServiceProcess, sender_env: dict[str, str]
) -> None:
    body = '{"skus":["milk-001","eggs-10","caviar-01","nope-404"],"store_id":"store-1"}'

    code, printed = send(service, sender_env, "products", body)

    assert code == 0
    assert printed == (
        "HTTP 200\n"
        '{"products":[{"sku":"milk-001","price":45.9,"in_stock":true},'
        '{"sku":"eggs-10","price":64.5,"in_stock":true,"promo_price":59.9,'
        '"promo_label":"-7% this week"},'
        '{"sku":"caviar-01","price":399.0,"in_stock":false}]}\n'
    )


def test_send_prints_a_rejection_and_succeeds(
    service: ServiceProcess, sender_env: dict[str, str]
) -> None:
    body = '{"action":"add","store_id":"store-1","session_id":"u-2","sku":"caviar-01"}'

    assert send(service, sender_env, "cart", body) == (
        0,
        'HTTP 200\n{"ok":false,"reason":"out_of_stock"}\n',
    )


def test_send_reads_the_body_from_standard_input(
    service: ServiceProcess, sender_env: dict[str, str]
) -> None:
    body = '{"action":"clear","store_id":"store-1","session_id":"u-3"}'

    result = run_cli(
        "send", "cart", "-", "--url", service.url, env=sender_env, stdin=body
    )

    assert (result.returncode, result.stdout) == (0, 'HTTP 200\n{"ok":true}\n')


def test_send_with_the_same_idempotency_key_repeats_the_first_answer(
    service: ServiceProcess, sender_env: dict[str, str], redis_server: RedisServer
) -> None:
    body = '{"action":"add","store_id":"store-1","session_id":"u-4","sku":"few-01"}'
    key = ("--idempotency-key", "delivery-77")

    first = send(service, sender_env, "cart", body.replace("few-01", "bread-01"), *key)
    second = send(service, sender_env, "cart", body.replace("few-01", "bread-01"), *key)
    conflict = send(
        service, sender_env, "cart", body.replace("few-01", "salt-01"), *key
    )

    assert first == second == (0, 'HTTP 200\n{"ok":true}\n')
    assert conflict == (1, 'HTTP 409\n{"ok":false,"reason":"idempotency_conflict"}\n')
    with redis_server.client() as direct:
        assert direct.hgetall("cartsvc:{store-1}:cart:u-4") == {"bread-01": "1"}


def test_each_send_of_the_same_body_is_a_new_delivery(
    service: ServiceProcess, sender_env: dict[str, str], redis_server: RedisServer
) -> None:
    body = '{"action":"add","store_id":"store-1","session_id":"u-9","sku":"bread-01"}'

    answers = [send(service, sender_env, "cart", body) for _ in range(3)]

    assert answers == [(0, 'HTTP 200\n{"ok":true}\n')] * 3
    with redis_server.client() as direct:
        assert direct.hgetall("cartsvc:{store-1}:cart:u-9") == {"bread-01": "3"}


def test_send_with_a_wrong_secret_prints_the_401_and_fails(
    service: ServiceProcess, sender_env: dict[str, str]
) -> None:
    code, printed = send(service, sender_env, "cart", ADD_MILK, "--secret", "wrong")

    assert (code, printed) == (
        1,
        'HTTP 401\n{"ok":false,"reason":"invalid_signature"}\n',
    )


def test_send_without_any_secret_says_how_to_give_one(
    service: ServiceProcess,
) -> None:
    result = run_cli("send", "cart", ADD_MILK, "--url", service.url, env=environment())

    assert result.returncode == 2
    assert "no secret to sign with" in result.stderr


def test_send_to_a_closed_port_fails_with_a_sentence(
    sender_env: dict[str, str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = run_cli("send", "cart", ADD_MILK, "--url", url, env=sender_env)

    assert result.returncode == 1
    assert f"cartsvc send: POST {url}/api/vizochok/cart failed" in result.stderr
    assert result.stdout == ""


def test_cart_show_prints_the_cart_with_its_key_names(
    service: ServiceProcess, sender_env: dict[str, str]
) -> None:
    body = (
        '{"action":"add","store_id":"store-1","session_id":"show:me","sku":"apples-kg",'
    )
    send(service, sender_env, "cart", body + '"quantity":1.5}')

    result = run_cli("cart", "show", "--store", "store-1", "--session", "show:me",
                     env=sender_env)  # fmt: skip

    assert result.returncode == 0
    assert orjson.loads(result.stdout) == {
        "items": [{"sku": "apples-kg", "name": "Яблука Голден", "price": 38.0,
                   "quantity": 1.5, "unit": "kg"}],
        "total": 57.0,
        "keys": {"cart": "cartsvc:{store-1}:cart:show%3Ame",
                 "lines": "cartsvc:{store-1}:lines:show%3Ame"},
    }  # fmt: skip


def test_cart_show_of_an_unknown_cart_is_empty(sender_env: dict[str, str]) -> None:
    result = run_cli("cart", "show", "--store", "store-1", "--session", "nobody",
                     env=sender_env)  # fmt: skip

    assert result.returncode == 0
    assert orjson.loads(result.stdout)["items"] == []


def test_catalog_load_of_json_writes_every_field(
    service: ServiceProcess, sender_env: dict[str, str], tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        '[{"sku": "tea-01", "name": "Чай", "price": 99.5, "stock": 3,'
        ' "promo_price": 89, "promo_label": "-10%"},'
        ' {"sku": "cup-01", "name": "Cup", "price": "20", "active": false}]',
        encoding="utf-8",
    )

    loaded = run_cli("catalog", "load", "--store", "json-store", str(catalog),
                     env=sender_env)  # fmt: skip
    code, printed = send(
        service, sender_env, "products",
        '{"skus":["tea-01","cup-01"],"store_id":"json-store"}',
    )  # fmt: skip

    assert (loaded.returncode, loaded.stdout) == (
        0,
        "loaded 2 products into store json-store\n",
    )
    assert (code, printed) == (
        0,
        'HTTP 200\n{"products":[{"sku":"tea-01","price":99.5,"in_stock":true,'
        '"promo_price":89.0,"promo_label":"-10%"},'
        '{"sku":"cup-01","price":20.0,"in_stock":false}]}\n',
    )


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        pytest.param(
            "bad-price.csv",
            "sku,name,price\nok-1,Fine,1.00\nok-2,Fine too,2\nbad-1,Broken,abc\n",
            "cartsvc: line 4: price must be a number of 0 or more, not 'abc'\n",
            id="csv-bad-price",
        ),
        pytest.param(
            "twice.csv",
            "sku,name,price\nok-1,Fine,1\nok-1,Again,2\n",
            "cartsvc: line 3: sku 'ok-1' appears twice\n",
            id="csv-sku-twice",
        ),
        pytest.param(
            "bad-step.json",
            '[{"sku": "ok-1", "name": "Fine", "price": 1},'
            ' {"sku": "bad-1", "name": "Broken", "price": 1, "step": 0}]',
            "cartsvc: item 2: step must be above 0\n",
            id="json-bad-step",
        ),
    ],
)
def test_catalog_load_with_a_bad_row_names_it_and_writes_nothing(
    sender_env: dict[str, str],
    redis_server: RedisServer,
    tmp_path: Path,
    name: str,
    text: str,
    error: str,
) -> None:
    catalog = tmp_path / name
    catalog.write_text(text, encoding="utf-8")

    result = run_cli("catalog", "load", "--store", "bad-store", str(catalog),
                     env=sender_env)  # fmt: skip

    assert (result.returncode, result.stdout, result.stderr) == (2, "", error)
    with redis_server.client() as direct:
        assert list(direct.scan_iter("cartsvc:{bad-store}:*")) == []


def test_catalog_load_without_a_redis_url_points_to_serve() -> None:
    result = run_cli("catalog", "load", "--store", "store-1", str(SAMPLE_CATALOG),
                     env=environment())  # fmt: skip

    assert result.returncode == 2
    assert "cartsvc serve --catalog STORE=FILE" in result.stderr
