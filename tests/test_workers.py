"""`cartsvc serve --workers N`: N processes answering on one port, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cartsvc.http.signing import signed_headers
from tests.conftest import SECRET
from tests.servers import RedisServer, free_port

ROOT = Path(__file__).parent.parent
SAMPLE_CATALOG = ROOT / "config" / "catalog.sample.csv"


class Workers:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port

    def children(self) -> list[int]:
        """The worker processes (multiprocessing's resource tracker left out)."""
        pid = self.process.pid
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [
            int(child)
            for child in text.split()
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        ]

    def post_cart(self, body: dict[str, object]) -> dict[str, object]:
        raw = orjson.dumps(body)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/vizochok/cart",
            data=raw,
            headers={
                **signed_headers(SECRET, raw),
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            },
        )
        # A new connection each time, so the kernel spreads them over the workers.
        with urllib.request.urlopen(request, timeout=5) as reply:
            return dict(orjson.loads(reply.read()))


def _environment(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSVC_")}
    return {**env, "CARTSVC_REDIS_URL": redis_url, "CARTSVC_WEBHOOK_SECRET": SECRET}


def _wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "cartsvc serve --workers exited at start"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("cartsvc serve --workers did not answer within 30 s")


@pytest.fixture
def workers(redis_server: RedisServer) -> Iterator[Workers]:
    redis_server.client().flushall()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cartsvc", "serve", "--port", str(port),
         "--workers", "2", "--catalog", f"store-1={SAMPLE_CATALOG}"],
        env=_environment(redis_server.url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_healthy(port, process)
        yield Workers(process, port)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on a loopback TCP port (state 0A)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
            inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


def _sockets_held(workers: Workers) -> tuple[list[int], list[set[str]]]:
    """The workers, and the listening sockets of each, once both listen."""
    # /healthz answered once one worker listened; the other may still start.
    deadline = time.monotonic() + 20
    while True:
        children = workers.children()
        listening = _listening_inodes(workers.port)
        held = [_socket_inodes(child) & listening for child in children]
        if all(held) or time.monotonic() > deadline:
            return children, held
        time.sleep(0.1)


def test_each_worker_listens_on_the_port_with_a_socket_of_its_own(
    workers: Workers,
) -> None:
    children, held = _sockets_held(workers)

    assert len(children) == 2
    assert all(len(sockets) == 1 for sockets in held)
    assert held[0] != held[1]


def test_workers_share_one_redis_and_answer_every_request(
    workers: Workers, redis_server: RedisServer
) -> None:
    body = {
        "action": "add",
        "store_id": "store-1",
        "session_id": "w",
        "sku": "milk-001",
    }

    answers = [workers.post_cart(body) for _ in range(20)]

    assert answers == [{"ok": True}] * 20
    with redis_server.client() as client:
        assert client.hget("cartsvc:{store-1}:cart:w", "milk-001") == "20"


def test_sigterm_stops_every_worker(workers: Workers) -> None:
    children = workers.children()

    workers.process.send_signal(signal.SIGTERM)

    assert workers.process.wait(timeout=20) == 0
    assert not any(Path(f"/proc/{child}").exists() for child in children)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_worker_that_dies_stops_the_others_and_fails_the_command(
    workers: Workers, how: signal.Signals
) -> None:
    first, second = workers.children()

    # Stopped alone, even cleanly, a worker leaves the service short of one.
    os.kill(first, how)

    assert workers.process.wait(timeout=20) != 0
    assert not Path(f"/proc/{second}").exists()


def test_every_scrape_counts_the_requests_of_every_worker(workers: Workers) -> None:
    _sockets_held(workers)
    add = {"action": "add", "store_id": "store-1", "session_id": "m", "sku": "milk-001"}
    for _ in range(12):
        assert workers.post_cart(add) == {"ok": True}

    # Each request opens a connection, and the kernel spreads connections over
    # both workers' sockets: a worker's own counts would come out short.
    counted = [_cart_adds_counted(workers.port) for _ in range(8)]

    assert counted == [12.0] * 8


def _cart_adds_counted(port: int) -> float:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    wanted = ('route="/api/vizochok/cart"', 'action="add"', 'outcome="ok"')
    for line in text.splitlines():
        if line.startswith("cartsvc_requests_total{") and all(
            label in line for label in wanted
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_workers_stop_when_their_supervisor_is_killed(workers: Workers) -> None:
    children = workers.children()
    environ = Path(f"/proc/{children[0]}/environ").read_bytes().split(b"\0")
    (metrics_dir,) = [
        Path(line.split(b"=", 1)[1].decode())
        for line in environ
        if line.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
    ]

    workers.process.kill()
    workers.process.wait(timeout=10)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    assert not any(_alive(child) for child in children)
    assert metrics_dir.name.startswith("cartsvc-metrics-")
    assert not metrics_dir.exists()


def _alive(pid: int) -> bool:
    # An exited worker is reaped by init; until then it shows as a zombie.
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_second_group_of_workers_cannot_share_the_port(
    workers: Workers, redis_server: RedisServer
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cartsvc", "serve", "--port", str(workers.port),
         "--workers", "2"],
        env=_environment(redis_server.url), cwd=ROOT, capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip

    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{workers.port}" in done.stderr


def test_workers_need_a_real_redis() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSVC_")}
    done = subprocess.run(
        [sys.executable, "-m", "cartsvc", "serve", "--port", str(free_port()),
         "--workers", "2"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip

    assert done.returncode == 2
    assert "--workers above 1 needs CARTSVC_REDIS_URL" in done.stderr
