"""Fixtures of the reliability tests, and the figures they print at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.reliability.figures import FIGURES
from tests.reliability.service import (
    CART_MAX_LINES,
    CATALOG,
    OPEN_STORE,
    STRICT_STORE,
    ErrorLog,
    ThreadedService,
    reliability_settings,
)
from tests.servers import RedisServer


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES.model_steps or FIGURES.faults or FIGURES.inputs_fuzzed:
        terminalreporter.section("reliability figures")
        for line in FIGURES.lines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def threaded_service(redis_server: RedisServer) -> Iterator[ThreadedService]:
    """The service on the suite's redis-server, served from a thread."""
    settings = reliability_settings(redis_server.url, cart_max_lines=CART_MAX_LINES)
    with ThreadedService(settings) as service:
        yield service


@pytest.fixture(scope="module")
def redis_admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A synchronous client on the suite's redis-server, to look behind the service."""
    with redis_server.client() as client:
        yield client


@pytest.fixture
def loaded(
    threaded_service: ThreadedService, redis_admin: redis.Redis
) -> Iterator[None]:
    """A clean Redis with the reliability catalog in both stores, and no error
    logged by the service while the test runs."""
    redis_admin.flushall()
    for store_id in (STRICT_STORE, OPEN_STORE):
        threaded_service.load_catalog(store_id, CATALOG)

    with ErrorLog().attached() as errors:
        yield
    assert errors.messages() == []
