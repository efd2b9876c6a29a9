"""The real `cartsvc` process for the tests: serving on a free port, or one command."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import SECRET
from tests.servers import free_port

ROOT = Path(__file__).parent.parent
SAMPLE_CATALOG = ROOT / "config" / "catalog.sample.csv"


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without any CARTSVC_ setting, plus the given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSVC_")}
    env.update(settings)
    return env


def run_cli(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one `cartsvc` command to its end and capture what it printed."""
    return subprocess.run(
        [sys.executable, "-m", "cartsvc", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


class ServiceProcess:
    """`python -m cartsvc serve` on a free loopback port, over a given Redis."""

    def __init__(self, redis_url: str, *serve_args: str, **settings: str) -> None:
        self.port = free_port()
        self.env = environment(
            CARTSVC_REDIS_URL=redis_url, CARTSVC_WEBHOOK_SECRET=SECRET, **settings
        )
        self.serve_args = serve_args
        handle, name = tempfile.mkstemp(prefix="cartsvc-serve-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        """Start serving and return once /readyz says ready."""
        command = [sys.executable, "-m", "cartsvc", "serve", "--port", str(self.port),
                   *self.serve_args]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=self.env, cwd=ROOT, stdout=log, stderr=log
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cartsvc serve exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)

        raise RuntimeError(f"cartsvc serve was not ready in 20 s:\n{self.log()}")

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        """Stop the process however it stands, and forget its log."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log_path.unlink(missing_ok=True)
