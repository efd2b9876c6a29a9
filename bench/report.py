"""The benchmark's table: one row per mix and server, the floor's beside it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from statistics import mean

from bench.load import Result


@dataclass(frozen=True)
class Sample:
    """One wrk run: its result, Redis commands a request, server CPU µs a request."""

    result: Result
    round_trips: float
    cpu_us: float


@dataclass(frozen=True)
class Row:
    mix: str
    server: str
    rate: float
    p50_ms: float
    p99_ms: float
    round_trips: float
    cpu_us: float
    spread: float

    @classmethod
    def of(cls, mix: str, server: str, runs: list[Sample]) -> Row:
        """The mean of a server's runs of a mix; spread is max/min rate - 1."""
        rates = [run.result.rate for run in runs]
        return cls(
            mix=mix,
            server=server,
            rate=mean(rates),
            p50_ms=mean(run.result.p50_ms for run in runs),
            p99_ms=mean(run.result.p99_ms for run in runs),
            round_trips=mean(run.round_trips for run in runs),
            cpu_us=mean(run.cpu_us for run in runs),
            spread=max(rates) / min(rates) - 1,
        )


@dataclass(frozen=True)
class Memory:
    """Redis memory (MEMORY USAGE) of a five-line cart, and of a delivery record."""

    cart_bytes: int
    delivery_bytes: int


def print_table(
    rows: list[Row],
    rss_mib: dict[str, float],
    memory: Memory,
    ceiling: Result,
    args: argparse.Namespace,
) -> None:
    floor = {row.mix: row for row in rows if row.server == "floor"}
    print()
    print(
        f"wrk -t1 -c{args.connections}, {args.duration} s a run, A B A B; cartsvc "
        f"workers={args.workers}; means of two runs"
    )
    print(
        "| mix | server | req/s | p50 ms | p99 ms | vs floor (req/s, p99) "
        "| server CPU µs/req | Redis cmds/req | peak RSS MiB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        base = floor[row.mix]
        versus = (
            f"{row.rate / base.rate:.2f}, {row.p99_ms / base.p99_ms:.2f}"
            if row.server != "floor"
            else "1.00, 1.00"
        )
        print(
            f"| {row.mix} | {row.server} | {row.rate:,.0f} (±{row.spread:.0%}) "
            f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | {versus} | {row.cpu_us:.0f} "
            f"| {row.round_trips:.2f} | {rss_mib[row.server]:.0f} |"
        )
    print(
        f"load generator ceiling (same script, trivial server): {ceiling.rate:,.0f} "
        f"req/s, p99 {ceiling.p99_ms:.2f} ms"
    )
    print(
        f"Redis memory: a cart of 5 lines {memory.cart_bytes} bytes (its cart and "
        f"lines keys); each change also keeps a {memory.delivery_bytes}-byte "
        "delivery record for the dedup window (600 s)"
    )
