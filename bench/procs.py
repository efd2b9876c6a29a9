"""The processes a benchmark run needs: redis-server, the two servers, pinning."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

# The server under test gets core 0 to itself; redis-server, wrk and this driver
# share the other, so the service and the floor run on exactly the same cores.
SERVER_CPUS = {0}
SUPPORT_CPUS = {1}


def cpus(wanted: set[int]) -> set[int]:
    """The wanted cores where the machine has them, else every core it has."""
    available = os.sched_getaffinity(0)
    return (wanted & available) or available


def pin(pid: int, wanted: set[int]) -> None:
    os.sched_setaffinity(pid, cpus(wanted))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} at start")

        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)

    raise RuntimeError(f"nothing listened on port {port} within {timeout_s} s")


def peak_rss_kib(pid: int) -> int:
    """The most resident memory the process has held (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

    return 0


def process_tree(pid: int) -> list[int]:
    """A process and its descendants that are alive."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except FileNotFoundError:
            continue
        found.append(current)
        pending += [int(child) for child in children.split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its descendants."""
    total_ticks = 0
    for current in process_tree(pid):
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except FileNotFoundError:
            continue
        # utime and stime, the 14th and 15th fields: 12th and 13th after ")".
        fields = stat.rpartition(")")[2].split()
        total_ticks += int(fields[11]) + int(fields[12])
    return total_ticks / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Redis:
    """A throwaway redis-server on a free loopback port, pinned to the support core."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make bench`")

        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cartsvc-bench-redis-")
        self.process = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        pin(self.process.pid, SUPPORT_CPUS)
        wait_for_port(self.port, self.process, 10)
        self.client = redis.Redis(port=self.port, decode_responses=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.client.close()
        stop(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """An HTTP server under test, started as a subprocess, pinned to given cores."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
        cores: set[int],
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_path
        self.log = log_path.open("wb")
        argv = [arg.replace("{port}", str(self.port)) for arg in command]
        self.process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        # Pinned at once, before it starts any worker, which inherits it.
        pin(self.process.pid, cores)
        try:
            wait_for_port(self.port, self.process, 20)
        except RuntimeError:
            self.close()
            sys.stderr.write(log_path.read_text(errors="replace")[-2000:])
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        """Peak resident memory, summed over the process and its workers."""
        return sum(peak_rss_kib(pid) for pid in process_tree(self.pid)) / 1024

    def close(self) -> None:
        stop(self.process)
        self.log.close()
