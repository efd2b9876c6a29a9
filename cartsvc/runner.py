"""Running the service: one process, or several sharing one port."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from aiohttp import web

from cartsvc import logs
from cartsvc.app import create_app
from cartsvc.errors import ConfigError
from cartsvc.settings import Settings

log = logging.getLogger(__name__)

# In-flight requests get this long to finish after SIGTERM, well past the
# sender's 5 s timeout, before connections are closed.
SHUTDOWN_TIMEOUT_S = 10.0


def _use_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _serve_one(
    settings: Settings, catalogs: Sequence[tuple[str, Path]], reuse_port: bool
) -> None:
    logs.configure(settings.log_format)
    fast = _use_uvloop()
    log.info(
        "listening host=%s port=%d uvloop=%s", settings.host, settings.port, fast
    )
    web.run_app(
        create_app(settings, catalogs=catalogs),
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port or None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log=None,
        print=None,
        handle_signals=True,
    )
    log.info("stopped")


def run(
    settings: Settings, catalogs: Sequence[tuple[str, Path]], workers: int = 1
) -> None:
    """Serve until SIGINT or SIGTERM; with workers > 1, one process each."""
    if workers < 1:
        raise ConfigError("--workers must be 1 or more")

    if workers == 1:
        _serve_one(settings, catalogs, reuse_port=False)
        return

    if settings.redis.embedded:
        raise ConfigError(
            "--workers above 1 needs CARTSVC_REDIS_URL: each process would get an "
            "embedded Redis of its own"
        )

    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_one, args=(settings, catalogs, True))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, frame: FrameType | None) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                process.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
