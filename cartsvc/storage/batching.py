"""Concurrent script calls sent together: one pipeline per event-loop turn.

A request's EVALSHA costs the service far more CPU in the client (a pooled
connection checked out and back, one write and one read system call, the reply
parsed) than Redis takes to run the script. Calls made in the same turn of the
event loop are therefore written as one pipeline on one connection and their
replies read back together, which divides that cost by the batch size. Each call
is still its own EVALSHA, atomic on its own, with its own reply or error: a
pipeline is no transaction, and nothing about a call's outcome depends on its
neighbours.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hiredis import pack_command
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

log = logging.getLogger(__name__)

# A pipeline this long already spreads the client's fixed cost thinly; a longer
# one would only make one failed connection fail more calls at once.
MAX_BATCH = 64

_Call = tuple[Any, list[Any], list[Any], "asyncio.Future[Any]"]


class ScriptBatcher:
    """Runs registered scripts (redis-py `AsyncScript`s) in shared pipelines."""

    def __init__(self, client: Any, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self._pending: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def run(self, script: Any, keys: list[Any], args: list[Any]) -> asyncio.Future[Any]:
        """The script's reply, or its error, once the batch it joined is back."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((script, keys, args, future))
        if len(self._pending) == 1:
            # Sent once the loop has run every handler that is ready now, so
            # the calls those handlers make join this batch.
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            task = asyncio.ensure_future(self._send(pending[start : start + MAX_BATCH]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        # Each caller waits under its own deadline; this one, a timer a batch,
        # makes sure a batch whose callers all gave up does not hold its pooled
        # connection for longer than they would have waited.
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._send_within_deadline(batch)
        except asyncio.CancelledError:
            for *_, future in batch:
                future.cancel()
            raise
        except Exception as error:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error)

    async def _send_within_deadline(self, batch: list[_Call]) -> None:
        replies = await self._pipeline(batch)
        missing = [call for call, reply in zip(batch, replies, strict=True)
                   if isinstance(reply, NoScriptError)]  # fmt: skip
        if missing:
            # A restarted or flushed Redis lost its script cache: load the
            # scripts again, once each, and run just those calls again.
            log.info("redis lacks the scripts (new, restarted, flushed); loading them")
            for script in {id(call[0]): call[0] for call in missing}.values():
                await self.client.script_load(script.script)
            for call, reply in zip(missing, await self._pipeline(missing), strict=True):
                _settle(call[3], reply)

        for call, reply in zip(batch, replies, strict=True):
            _settle(call[3], reply)

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        """Each call's reply in order, an error reply as its exception.

        The commands are packed by hiredis in C: redis-py's asyncio client packs
        every argument in Python, which was half the client's cost of a call.
        The rest is redis-py's own: its pool, connection, parser and retry.
        """
        packed = b"".join(
            pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
            for script, keys, args, _ in batch
        )
        pool = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            return list(
                await connection.retry.call_with_retry(
                    lambda: _exchange(connection, packed, len(batch)),
                    lambda _: connection.disconnect(),
                )
            )
        finally:
            await pool.release(connection)


async def _exchange(connection: Any, packed: bytes, count: int) -> list[Any]:
    try:
        await connection.send_packed_command(packed)
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(await connection.read_response())
            except ResponseError as error:
                replies.append(error)
        return replies
    except BaseException:
        # Replies may be left unread: the connection must not serve anyone else.
        await connection.disconnect()
        raise


def batches_well(client: Any) -> bool:
    """Whether batching pays on this client: a real server, not a cluster.

    The embedded Redis has no round trip to save. A cluster client would split
    each pipeline by node and slot; its calls keep their own round trips.
    """
    return isinstance(client, Redis) and not type(client).__module__.startswith(
        "fakeredis"
    )


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    # A caller that gave up (its deadline passed) no longer waits for the reply.
    if future.done():
        return

    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)
