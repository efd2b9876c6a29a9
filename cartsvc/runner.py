"""Running the service: one process, or several sharing one port."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import cast

from aiohttp import web

from cartsvc import logs
from cartsvc.app import create_app
from cartsvc.errors import CartsvcError, ConfigError
from cartsvc.http.health import MULTIPROCESS_DIR
from cartsvc.settings import Settings

log = logging.getLogger(__name__)

# In-flight requests get this long to finish after SIGTERM, well past the
# sender's 5 s timeout, before connections are closed.
SHUTDOWN_TIMEOUT_S = 10.0

# Allocations between young-generation collections. Python's default of 700 runs
# one every couple of requests; this many keeps their count, and so their share
# of a request's time, small, while each still takes well under a millisecond.
GC_YOUNG_THRESHOLD = 7000


def _use_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def _tune_gc(app: web.Application) -> None:
    # Everything loaded so far (modules, settings, the app) lives as long as the
    # process: frozen, the collector never scans it again, so the rare full
    # collection takes a fraction of the time and stops adding to p99 latency.
    gc.collect()
    gc.freeze()
    _, *older = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *older)


def _has_hiredis() -> bool:
    # redis-py parses replies with hiredis whenever it is importable.
    from redis.utils import HIREDIS_AVAILABLE

    return bool(HIREDIS_AVAILABLE)


# How often a worker checks that its supervisor is still alive.
PARENT_CHECK_S = 1.0


def _stop_when_orphaned(
    parent_pid: int,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A worker stops itself, as on SIGTERM, once its supervisor is gone.

    A supervisor killed with SIGKILL cannot stop its workers; left alone they
    would go on serving the port with no one to stop them.
    """

    async def watch() -> None:
        while os.getppid() == parent_pid:
            await asyncio.sleep(PARENT_CHECK_S)
        log.error("supervisor pid=%d is gone; stopping", parent_pid)
        # The supervisor can no longer remove the workers' metrics directory.
        shutil.rmtree(os.environ.get(MULTIPROCESS_DIR, ""), ignore_errors=True)
        os.kill(os.getpid(), signal.SIGTERM)

    async def context(app: web.Application) -> AsyncIterator[None]:
        watcher = asyncio.create_task(watch())
        yield
        watcher.cancel()

    return context


def _serve_one(
    settings: Settings,
    catalogs: Sequence[tuple[str, Path]],
    reuse_port: bool,
    parent_pid: int | None = None,
) -> None:
    logs.configure(settings.log_format)
    fast = _use_uvloop()
    log.info(
        "listening host=%s port=%d uvloop=%s hiredis=%s",
        settings.host,
        settings.port,
        fast,
        _has_hiredis(),
    )
    app = create_app(settings, catalogs=catalogs)
    app.on_startup.append(_tune_gc)
    if parent_pid is not None:
        app.cleanup_ctx.append(_stop_when_orphaned(parent_pid))
    web.run_app(
        app,
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

    _supervise(settings, catalogs, workers)


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on.

    The workers share their port with SO_REUSEPORT, which would as gladly share
    it with a second `serve --workers` started by mistake, with other settings:
    a plain bind, as a single process makes, fails instead.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            pass
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def _supervise(
    settings: Settings, catalogs: Sequence[tuple[str, Path]], workers: int
) -> None:
    """Run the workers until a signal, or until one of them exits on its own."""
    _check_port_free(settings.host, settings.port)
    # Set before the workers start, so prometheus-client imports in multiprocess
    # mode there; this process never counts anything itself.
    metrics_dir = tempfile.mkdtemp(prefix="cartsvc-metrics-")
    os.environ[MULTIPROCESS_DIR] = metrics_dir
    try:
        _run_workers(settings, catalogs, workers)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(
    settings: Settings, catalogs: Sequence[tuple[str, Path]], workers: int
) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_serve_one,
            args=(settings, catalogs, True, os.getpid()),
            name=f"worker-{n}",
        )
        for n in range(workers)
    ]
    stopping = False

    def stop_all(signum: int | None = None, frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.pid is not None and process.is_alive():
                process.terminate()

    # Installed before the first worker starts, so a signal that arrives while
    # they start still reaches every worker instead of orphaning them.
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    for process in processes:
        process.start()
    log.info("workers started count=%d pids=%s", workers, [p.pid for p in processes])

    # A worker that exits alone, whatever its exit code, leaves the port served
    # by fewer processes than asked for: stop the rest too, and fail, so that a
    # supervisor (systemd's Restart=on-failure, say) starts the service again.
    sentinels = {process.sentinel: process for process in processes}
    lost: list[int | None] = []
    kill_at: float | None = None
    while sentinels:
        if stopping and kill_at is None:
            kill_at = time.monotonic() + SHUTDOWN_TIMEOUT_S + 5
        if kill_at is not None and time.monotonic() > kill_at:
            # A worker that let a SIGTERM pass (one arriving mid-start can be
            # lost) would otherwise keep the group, and its port, forever.
            for process in sentinels.values():
                log.error("worker pid=%s did not stop; killing it", process.pid)
                process.kill()
        for ready in multiprocessing.connection.wait(list(sentinels), timeout=1.0):
            process = sentinels.pop(cast(int, ready))
            process.join()
            if not stopping:
                log.error(
                    "worker exited pid=%s exitcode=%s; stopping the others",
                    process.pid,
                    process.exitcode,
                )
                lost.append(process.exitcode)
                stop_all()

    failed = [p.exitcode for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    if lost or failed:
        raise CartsvcError(f"a worker exited on its own (exit codes {lost or failed})")
