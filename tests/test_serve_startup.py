"""What `cartsvc serve` says and does at start, as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.servers import RedisServer, free_port

ROOT = Path(__file__).parent.parent


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSVC_")}
    env.update(extra)
    return env


def test_refuses_to_start_on_real_redis_without_a_secret(
    redis_server: RedisServer,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cartsvc", "serve", "--port", str(free_port())],
        env=_environment(CARTSVC_REDIS_URL=redis_server.url),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "no webhook secret configured" in result.stderr


def test_embedded_start_warns_and_prints_a_generated_secret_once() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cartsvc", "serve", "--port", str(port),
         "--catalog", f"store-1={ROOT / 'config' / 'catalog.sample.csv'}"],
        env=_environment(),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as reply:
                    assert reply.status == 200
                    break
            except OSError:
                time.sleep(0.1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)

    assert process.returncode == 0
    assert "EMBEDDED IN-MEMORY REDIS" in stderr
    assert "catalog loaded store=store-1 products=6" in stderr
    secret_lines = [
        line for line in stderr.splitlines() if "CARTSVC_WEBHOOK_SECRET=" in line
    ]
    assert len(secret_lines) == 1
    secret = secret_lines[0].split("=", 1)[1]
    assert len(secret) >= 32
    assert stderr.count(secret) == 2  # the banner's two lines, never a log line


def test_a_taken_port_is_a_sentence_not_a_traceback() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cartsvc", "serve", "--port", str(port)],
            env=_environment(CARTSVC_WEBHOOK_SECRET="s"),
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "address already in use" in result.stderr
