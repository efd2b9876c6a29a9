"""`python -m bench`: cartsvc and the floor handler side by side, one table.

Starts a redis-server, `cartsvc serve` and the floor handler (bench/floor.py),
fills Redis with a catalog and carts, then drives each mix with wrk: cartsvc,
floor, cartsvc, floor, on the same cores. A run takes about 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import load, setup
from bench.procs import SERVER_CPUS, SUPPORT_CPUS, Redis, Server, pin
from bench.report import Memory, Row, Sample, print_table

SECRET = "bench-secret-" + os.urandom(8).hex()
PYTHON = sys.executable
SCRIPTED = setup.scripted_commands()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=int, default=6, help="seconds a run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--workers", type=int, default=1, help="cartsvc processes (above 1: all cores)"
    )
    parser.add_argument(
        "--mix", action="append", choices=list(load.MIXES), help="only these mixes"
    )
    parser.add_argument(
        "--no-clients", action="store_true", help="skip the Redis client comparison"
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy cartsvc during cart adds; raw stacks here"
    )
    return parser.parse_args()


def start_service(redis_url: str, workers: int, logs: Path) -> Server:
    command = [PYTHON, "-m", "cartsvc", "serve", "--port", "{port}",
               "--workers", str(workers)]  # fmt: skip
    env = {
        "CARTSVC_REDIS_URL": redis_url,
        "CARTSVC_WEBHOOK_SECRET": SECRET,
        "CARTSVC_CONFIG": "",
    }
    # Several workers cannot share one core; they get the machine, as deployed.
    cores = SERVER_CPUS if workers == 1 else SERVER_CPUS | SUPPORT_CPUS
    return Server("cartsvc", command, env, logs / "cartsvc.log", cores)


def start_floor(redis_url: str, logs: Path) -> Server:
    command = [PYTHON, "-m", "bench.floor", "--port", "{port}",
               "--redis-url", redis_url, "--secret", SECRET]  # fmt: skip
    return Server("floor", command, {}, logs / "floor.log", SERVER_CPUS)


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


def run_mix(
    name: str, redis: Redis, targets: list[Server], work: Path, args: argparse.Namespace
) -> list[Row]:
    """A, B, A, B on the same cores: the service, the floor, twice each."""
    pool = work / f"{name.replace(' ', '-')}.pool"
    load.write_pool(load.MIXES[name](), SECRET, pool)
    runs: dict[str, list[Sample]] = {target.name: [] for target in targets}
    nonce = os.urandom(3).hex()
    for round_ in (1, 2):
        for target in targets:
            sample = measure(
                redis, target, pool, f"{nonce}-{target.name}-{round_}", args
            )
            runs[target.name].append(sample)
            print(
                f"  {name:15} {target.name:8} run {round_}: "
                f"{sample.result.rate:8,.0f} req/s",
                flush=True,
            )

    return [Row.of(name, server, samples) for server, samples in runs.items()]


def warm_up(targets: list[Server], work: Path, args: argparse.Namespace) -> None:
    # Each server opens its Redis connections now, so the measured runs count
    # only hot-path commands and pay no connection set-up.
    pool = work / "warm.pool"
    load.write_pool(load.adds(), SECRET, pool)
    for target in targets:
        load.run_wrk(target.port, pool, f"warm-{target.name}", 1, args.connections)


def ceiling(work: Path, args: argparse.Namespace) -> load.Result:
    """wrk with the same script against a server that does nothing."""
    command = [PYTHON, "-m", "bench.trivial", "--port", "{port}"]
    trivial = Server("trivial", command, {}, work / "trivial.log", SERVER_CPUS)
    try:
        pool = work / "ceiling.pool"
        load.write_pool(load.adds(), SECRET, pool)
        return load.run_wrk(trivial.port, pool, "ceiling", 3, args.connections)
    finally:
        trivial.close()


def profile(service: Server, work: Path, args: argparse.Namespace) -> None:
    from bench.profile import record

    pool = work / "profile.pool"
    load.write_pool(load.adds(), SECRET, pool)
    record(
        service.pid,
        args.profile,
        lambda: load.run_wrk(
            service.port, pool, "profile", args.duration, args.connections
        ),
    )


def compare_clients(redis_url: str) -> None:
    """The Redis client comparison, in a process of its own on the server core."""
    process = subprocess.Popen(
        [PYTHON, "-m", "bench.clients", "--redis-url", redis_url]
    )
    pin(process.pid, SERVER_CPUS)
    process.wait(timeout=120)


def run(redis: Redis, work: Path, args: argparse.Namespace) -> None:
    setup.fill(redis.url)
    targets = [
        start_service(redis.url, args.workers, work),
        start_floor(redis.url, work),
    ]
    try:
        warm_up(targets, work, args)
        if args.profile:
            profile(targets[0], work, args)

        rows = []
        for name in args.mix or list(load.MIXES):
            rows += run_mix(name, redis, targets, work, args)
        rss = {target.name: target.peak_rss_mib() for target in targets}
    finally:
        for target in targets:
            target.close()

    memory = Memory(
        cart_bytes=setup.cart_memory_bytes(redis.client),
        delivery_bytes=setup.delivery_record_bytes(redis.client),
    )
    print_table(rows, rss, memory, ceiling(work, args), args)


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    load.wrk_binary()
    pin(os.getpid(), SUPPORT_CPUS)
    with tempfile.TemporaryDirectory(prefix="cartsvc-bench-") as tmp:
        redis = Redis()
        try:
            run(redis, Path(tmp), args)
            if not args.no_clients:
                compare_clients(redis.url)
        finally:
            redis.close()

    print(f"\nbenchmark took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
