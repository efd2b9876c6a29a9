"""The OpenAPI document: valid, complete, served, and kept by the real service."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode

from cartsvc.app import create_app
from cartsvc.http.signing import signed_headers
from tests.conftest import SECRET, Webhooks, make_settings
from tests.servers import RedisServer
from tests.service import SAMPLE_CATALOG, ServiceProcess

DOCUMENT = resources.files("cartsvc.http").joinpath("openapi.yaml").read_bytes()
SIGNED_PATHS = {"/api/vizochok/cart", "/api/vizochok/cart/items",
                "/api/vizochok/check-products"}  # fmt: skip


def test_the_document_is_valid_openapi_3() -> None:
    document = yaml.safe_load(DOCUMENT)

    validate(document)

    assert document["openapi"].startswith("3.")


def test_the_document_describes_every_route_and_nothing_else() -> None:
    app = create_app(make_settings())
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    paths = yaml.safe_load(DOCUMENT)["paths"]

    documented = {(method, path) for path, item in paths.items() for method in item}

    assert documented == served


def test_every_webhook_requires_both_signing_headers() -> None:
    document = yaml.safe_load(DOCUMENT)
    schemes = document["components"]["securitySchemes"]

    required = {
        path: [sorted(requirement) for requirement in item[method].get("security", [])]
        for path, item in document["paths"].items()
        for method in item
    }

    assert {schemes[name]["name"] for name in schemes} == {
        "X-VIZOCHOK-Timestamp",
        "X-VIZOCHOK-Signature",
    }
    assert {p for p, r in required.items() if r == [["signature", "timestamp"]]} == (
        SIGNED_PATHS
    )
    assert all(r == [] for p, r in required.items() if p not in SIGNED_PATHS)


async def test_the_service_serves_the_document(real_hooks: Webhooks) -> None:
    async with real_hooks.client.get("/openapi.yaml") as response:
        assert response.status == 200
        assert response.content_type == "application/yaml"
        assert await response.read() == DOCUMENT


class SignedDelivery(requests.auth.AuthBase):
    """Signs each request as VIZOCHOK's servers do, over the bytes actually sent.

    requests applies auth after the body is encoded, so the signature covers the
    exact bytes on the wire, whatever JSON encoding the generator chose.
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        request.headers.update(signed_headers(self.secret, raw))
        return request


@pytest.fixture(scope="module")
def openapi_service(redis_server: RedisServer) -> Iterator[ServiceProcess]:
    with redis_server.client() as direct:
        direct.flushall()
    service = ServiceProcess(
        redis_server.url, "--catalog", f"store-1={SAMPLE_CATALOG}"
    ).start()
    yield service
    service.close()


# The packaged document, the very bytes the service serves (see above). Positive
# data only: by contract a malformed cart operation is answered 200 with a reason,
# which negative-data checks would take for acceptance of bad input.
packaged_schema = schemathesis.openapi.from_dict(yaml.safe_load(DOCUMENT))
packaged_schema.config.generation.update(
    modes=[GenerationMode.POSITIVE], max_examples=25, database="none"
)
packaged_schema.auth.set_from_requests(SignedDelivery(SECRET))


@packaged_schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_of_the_real_service_conforms_and_none_is_5xx(
    case: Any, openapi_service: ServiceProcess
) -> None:
    case.call_and_validate(base_url=openapi_service.url)
