"""Redis clients: a real server, a Redis Cluster, or the embedded in-memory one."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from cartsvc.settings import RedisSettings, redact_url

log = logging.getLogger(__name__)


def _retry() -> Retry:
    # One immediate retry on a broken connection, so a pooled connection that died
    # with a Redis restart costs no request; replaying a script is safe because the
    # delivery record turns a second run into a replay. Timeouts are not retried:
    # the budget is the sender's 5 s, and the caller's deadline covers them.
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


class QueueingCluster(RedisCluster):
    """A cluster client whose callers queue for a connection, as on one server.

    redis-py's cluster client raises MaxConnectionsError the moment a node's
    connections are all busy, so a burst above the pool size would answer 503
    where a single server's BlockingConnectionPool waits. A command holds at most
    one connection of a node, so capping the commands in flight at the pool size
    makes the cluster wait the same way, within the caller's deadline.
    """

    def __init__(self, *, max_connections: int = 100, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self._in_flight = asyncio.Semaphore(max_connections)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._in_flight:
            return await super().execute_command(*args, **kwargs)


def connect(settings: RedisSettings) -> Any:
    """A redis.asyncio client for the configured storage."""
    timeout_s = settings.timeout_ms / 1000
    connect_timeout_s = settings.connect_timeout_ms / 1000
    if settings.embedded:
        return _embedded()

    if settings.cluster:
        log.info("storage=redis-cluster seed=%s", redact_url(settings.url))
        return QueueingCluster.from_url(
            settings.url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=connect_timeout_s,
            max_connections=settings.max_connections,
            retry=_retry(),
        )

    log.info("storage=redis url=%s", redact_url(settings.url))
    pool = BlockingConnectionPool.from_url(
        settings.url,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=connect_timeout_s,
        max_connections=settings.max_connections,
        # Past the pool size, a request waits for a connection at most this long,
        # then is answered 503 rather than hanging.
        timeout=timeout_s,
        retry=_retry(),
    )
    # from_pool hands the pool to the client, so closing the client at shutdown
    # disconnects every pooled connection; Redis(connection_pool=...) would not.
    return Redis.from_pool(pool)


def _embedded() -> Any:
    # Imported here: only the embedded mode needs fakeredis and its Lua runtime.
    import fakeredis

    return fakeredis.FakeAsyncRedis(decode_responses=True)
