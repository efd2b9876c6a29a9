"""`python -m bench`: cartsvc and the floor handler side by side, one table."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import load, setup
from bench.procs import SERVER_CPUS, Redis, Server, pin
from bench.report import Row, Sample, print_table

SECRET = "bench-secret-" + os.urandom(8).hex()
PYTHON = sys.executable


@dataclass
class Targets:
    service: Server
    floor: Server


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=int, default=7, help="seconds per run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="cartsvc processes")
    parser.add_argument(
        "--mix", action="append", choices=list(load.MIXES), help="only these mixes"
    )
    parser.add_argument("--no-clients", action="store_true", help="skip the clients")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the service on cart adds, write here"
    )
    return parser.parse_args()


def start_targets(redis_url: str, workers: int, logs: Path) -> Targets:
    service = Server(
        "cartsvc",
        [PYTHON, "-m", "cartsvc", "serve", "--port", "{port}", "--workers", str(workers)],
        {
            "CARTSVC_REDIS_URL": redis_url,
            "CARTSVC_WEBHOOK_SECRET": SECRET,
            "CARTSVC_CONFIG": "",
        },
        logs / "cartsvc.log",
    )
    floor = Server(
        "floor",
        [PYTHON, "-m", "bench.floor", "--port", "{port}", "--redis-url", redis_url,
         "--secret", SECRET],
        {},
        logs / "floor.log",
    )  # fmt: skip
    return Targets(service, floor)


def measure(
    redis: Redis, target: Server, pool: Path, tag: str, args: argparse.Namespace
) -> Sample:
    """One wrk run against one target: its result, round trips and CPU a request."""
    redis.client.config_resetstat()
    cpu_s = target.cpu_seconds()
    result = load.run_wrk(target.port, pool, tag, args.duration, args.connections)
    cpu_s = target.cpu_seconds() - cpu_s
    trips = setup.round_trips(redis.client.info("commandstats"), SCRIPTED)
    if result.socket_errors or result.non_2xx:
        print(
            f"  warning: {target.name} {tag}: {result.socket_errors} socket errors, "
            f"{result.non_2xx} non-2xx answers",
            flush=True,
        )
    requests = max(result.requests, 1)
    return Sample(result, trips / requests, cpu_s / requests * 1e6)


SCRIPTED = setup.scripted_commands()


def run_mix(
    name: str, redis: Redis, targets: Targets, work: Path, args: argparse.Namespace
) -> list[Row]:
    """A, B, A, B on the same cores: the service, the floor, twice each."""
    pool = work / f"{name.replace(' ', '-')}.pool"
    load.write_pool(load.MIXES[name](), SECRET, pool)
    runs: dict[str, list[Sample]] = {"cartsvc": [], "floor": []}
    nonce = os.urandom(3).hex()
    for round_ in (1, 2):
        for target in (targets.service, targets.floor):
            tag = f"{nonce}-{target.name}-{round_}"
            runs[target.name].append(measure(redis, target, pool, tag, args))
            print(f"  {name:15} {target.name:8} run {round_}: "
                  f"{runs[target.name][-1].result.rate:8.0f} req/s", flush=True)  # fmt: skip
    return [Row.of(name, server, measured) for server, measured in runs.items()]


def ceiling(work: Path, args: argparse.Namespace) -> load.Result:
    """wrk with the same script against a server that does nothing."""
    trivial = Server(
        "trivial", [PYTHON, "-m", "bench.trivial", "--port", "{port}"], {},
        work / "trivial.log",
    )  # fmt: skip
    try:
        pool = work / "ceiling.pool"
        load.write_pool(load.adds(), SECRET, pool)
        return load.run_wrk(trivial.port, pool, "ceiling", 3, args.connections)
    finally:
        trivial.close()


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    load.wrk_binary()
    pin(os.getpid(), {1})
    with tempfile.TemporaryDirectory(prefix="cartsvc-bench-") as tmp:
        work = Path(tmp)
        redis = Redis()
        try:
            setup.fill(redis.url)
            targets = start_targets(redis.url, args.workers, work)
            try:
                rows = run_all(redis, targets, work, args)
                rss = {"cartsvc": targets.service.peak_rss_mib(),
                       "floor": targets.floor.peak_rss_mib()}  # fmt: skip
            finally:
                targets.service.close()
                targets.floor.close()

            top = ceiling(work, args)
            print_table(rows, rss, top, args)
            print(f"redis memory: a cart of 5 lines "
                  f"{setup.cart_memory_bytes(redis.client)} bytes (cart + lines keys); "
                  f"a delivery record {setup.delivery_record_bytes(redis.client)} bytes "
                  f"for the dedup window")  # fmt: skip
            if not args.no_clients:
                clients(redis.url)
        finally:
            redis.close()

    print(f"benchmark took {time.monotonic() - started:.0f} s")
    return 0


def run_all(
    redis: Redis, targets: Targets, work: Path, args: argparse.Namespace
) -> list[Row]:
    # A short warm-up opens each server's Redis connections, so the runs count
    # only hot-path commands and no connection set-up.
    pool = work / "warm.pool"
    load.write_pool(load.adds(), SECRET, pool)
    for target in (targets.service, targets.floor):
        load.run_wrk(target.port, pool, f"warm-{target.name}", 1, args.connections)

    if args.profile:
        profile(targets.service, redis, work, args)

    rows = []
    for name in args.mix or list(load.MIXES):
        rows += run_mix(name, redis, targets, work, args)
    return rows


def profile(service: Server, redis: Redis, work: Path, args: argparse.Namespace) -> None:
    from bench.profile import record

    pool = work / "profile.pool"
    load.write_pool(load.adds(), SECRET, pool)
    record(service.pid, args.profile, lambda: load.run_wrk(
        service.port, pool, "profile", args.duration, args.connections))


def clients(redis_url: str) -> None:
    """The Redis client comparison, in a process of its own on the server core."""
    command = [PYTHON, "-m", "bench.clients", "--redis-url", redis_url]
    process = subprocess.Popen(command)
    pin(process.pid, SERVER_CPUS)
    process.wait(timeout=120)


if __name__ == "__main__":
    raise SystemExit(main())
