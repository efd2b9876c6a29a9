"""Scale-out servers for the tests: a local Redis Cluster, cartsvc instances, nginx.

Each runs as a child process on free loopback ports, in a temp dir of its own,
and is stopped and removed by whoever started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from tests.servers import RedisServer, free_port

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def _stop(process: subprocess.Popen[bytes] | None, signum: int) -> None:
    if process is None or process.poll() is not None:
        return

    process.send_signal(signum)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _get_status(url: str) -> int:
    """The HTTP status of a GET, or 0 when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


class LocalCluster:
    """A Redis Cluster of masters only, joined by `redis-cli --cluster create`.

    Every node is a RedisServer with cluster mode on, in its own temp dir, with
    its cluster bus on a free port of its own too (not port + 10000, which may
    be taken or past 65535).
    """

    def __init__(self, masters: int = 3) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise FileNotFoundError("redis-cli is not installed")

        self.cli = cli
        self.nodes = [
            RedisServer(
                "--cluster-enabled", "yes",
                "--cluster-port", str(free_port()),
                "--cluster-node-timeout", "5000",
            )
            for _ in range(masters)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        """The seed node's URL, as CARTSVC_REDIS_URL takes it."""
        return self.nodes[0].url

    def start(self) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self._wait_ok()
        except BaseException:
            self.close()
            raise

        return self

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        command = [
            self.cli, "--cluster", "create", *addresses,
            "--cluster-replicas", "0", "--cluster-yes",
        ]  # fmt: skip
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=60
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode("utf-8", "replace")
            raise RuntimeError(f"redis-cli --cluster create failed:\n{output}")

    def _wait_ok(self) -> None:
        # redis-cli returns once the slots are assigned; each node still has to
        # hear of every other before it serves its slots.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if all(
                self._info(node).get("cluster_state") == "ok" for node in self.nodes
            ):
                return
            time.sleep(0.05)

        raise RuntimeError("the local Redis Cluster did not reach cluster_state:ok")

    @staticmethod
    def _info(node: RedisServer) -> dict[str, str]:
        with node.client() as probe:
            text = str(probe.execute_command("CLUSTER", "INFO"))
        pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
        return {name: value.strip() for name, value in pairs}

    def flush(self) -> None:
        """Empty every master (FLUSHALL reaches one node only)."""
        for node in self.nodes:
            with node.client() as probe:
                probe.flushall()

    def node_id(self, node: RedisServer) -> str:
        with node.client() as probe:
            return str(probe.execute_command("CLUSTER", "MYID"))

    def _claims(self, viewer: RedisServer) -> dict[str, list[tuple[int, int]]]:
        """Slot ranges by node address ("myself" included), as one node sees them."""
        with viewer.client() as probe:
            text = str(probe.execute_command("CLUSTER", "NODES"))
        claims: dict[str, list[tuple[int, int]]] = {}
        for line in text.splitlines():
            fields = line.split()
            address = fields[1].split("@")[0]
            # Migration marks like [slot->-id] are not ownership: skip them.
            ranges = [f.partition("-") for f in fields[8:] if not f.startswith("[")]
            claims[address] = [(int(a), int(b or a)) for a, _, b in ranges]

        return claims

    def _owner_seen_by(self, viewer: RedisServer, slot: int) -> str | None:
        for address, ranges in self._claims(viewer).items():
            if any(first <= slot <= last for first, last in ranges):
                return address

        return None

    def owner(self, slot: int) -> RedisServer:
        """The master that serves a slot, as it says itself."""
        for node in self.nodes:
            if self._owner_seen_by(node, slot) == f"127.0.0.1:{node.port}":
                return node

        raise LookupError(f"no master serves slot {slot}")

    def wait_agreed(self, slot: int, owner: RedisServer) -> None:
        """Wait until every node knows the slot's owner and serves again.

        A slot claimed on one node reaches the others by gossip; a client
        started before then may find the slot map incomplete.
        """
        address = f"127.0.0.1:{owner.port}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if all(self._owner_seen_by(node, slot) == address for node in self.nodes):
                self._wait_ok()
                return
            time.sleep(0.05)

        raise RuntimeError(f"the nodes did not agree on the owner of slot {slot}")

    def count_keys(self, node: RedisServer, slot: int) -> int:
        with node.client() as probe:
            return int(probe.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))

    def begin_migration(
        self, slot: int, source: RedisServer, target: RedisServer
    ) -> None:
        """Open a slot's move: the target imports, the source migrates."""
        with target.client() as probe:
            probe.execute_command(
                "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source)
            )
        with source.client() as probe:
            probe.execute_command(
                "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target)
            )

    def migrate_keys(
        self, slot: int, source: RedisServer, target: RedisServer, pause_s: float
    ) -> int:
        """MIGRATE the slot's keys a few at a time; the number of keys moved."""
        moved = 0
        with source.client() as probe:
            while keys := probe.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 5):
                probe.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
                )
                moved += len(keys)
                # Between batches the slot is half moved, as in a reshard of a
                # large slot, so requests meet ASK and TRYAGAIN.
                time.sleep(pause_s)

        return moved

    def assign(self, slot: int, target: RedisServer) -> None:
        """Close a slot's move: every master learns the target owns it."""
        target_id = self.node_id(target)
        for node in [target, *(n for n in self.nodes if n is not target)]:
            with node.client() as probe:
                probe.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def move_slot(self, slot: int, target: RedisServer, pause_s: float = 0.0) -> int:
        """Reshard one slot to the target, as `redis-cli --cluster reshard` does."""
        source = self.owner(slot)
        self.begin_migration(slot, source, target)
        moved = self.migrate_keys(slot, source, target, pause_s)
        self.assign(slot, target)
        return moved

    def stabilize(self, slot: int) -> None:
        """Cancel an open move: the slot stays where it was."""
        for node in self.nodes:
            with node.client() as probe:
                probe.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")

    def unassign(self, slot: int) -> None:
        """Leave a slot served by no master, as when its only node is lost."""
        for node in self.nodes:
            with node.client() as probe:
                probe.execute_command("CLUSTER", "DELSLOTS", slot)

    def add_slot(self, slot: int, node: RedisServer) -> None:
        """Serve an unassigned slot from a node, once every node knows it."""
        with node.client() as probe:
            probe.execute_command("CLUSTER", "ADDSLOTS", slot)
        self.wait_agreed(slot, node)

    def close(self) -> None:
        for node in self.nodes:
            node.close()


class ServiceInstance:
    """`python -m cartsvc serve` as a child process on a free loopback port."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cartsvc-instance-"))
        self.log_path = self.dir / "service.log"
        # Only the settings given here: nothing leaks in from the shell running
        # the tests (a CARTSVC_CONFIG, say).
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith("CARTSVC_")
        }
        self.env = {**inherited, **env}
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceInstance:
        command = [
            sys.executable, "-m", "cartsvc", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self) -> None:
        """Wait until /readyz says Redis answers and the scripts are loaded."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"cartsvc exited at start:\n{_tail(self.log_path)}")
            if _get_status(f"{self.url}/readyz") == 200:
                return
            time.sleep(0.05)

        raise RuntimeError(f"cartsvc was not ready in time:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# The README's nginx config, run by the tests with their own ports. Its access
# log, on here, names the instance that answered each request.
NGINX_CONF = Path(__file__).parent.parent / "config" / "nginx.conf"
NGINX_UPSTREAMS = "        server 127.0.0.1:8081;\n        server 127.0.0.1:8082;\n"
NGINX_LISTEN = "listen 127.0.0.1:8080;"
NGINX_ACCESS_LOG = "access_log off;"


def nginx_conf(upstreams: Sequence[str], port: int) -> str:
    """config/nginx.conf with these upstreams, this port and an access log."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    servers = "".join(f"        server {address};\n" for address in upstreams)
    for old, new in (
        (NGINX_UPSTREAMS, servers),
        (NGINX_LISTEN, f"listen 127.0.0.1:{port};"),
        (NGINX_ACCESS_LOG, "log_format upstream '$upstream_addr $status';\n"
                           "    access_log access.log upstream;"),
    ):  # fmt: skip
        if text.count(old) != 1:
            raise ValueError(f"config/nginx.conf no longer holds {old!r} once")
        text = text.replace(old, new)

    return text


class Nginx:
    """nginx as a foreground child, its config in a temp dir, before upstreams."""

    def __init__(self, upstreams: Sequence[str]) -> None:
        # Debian installs nginx in /usr/sbin, which a user's PATH may lack.
        search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        binary = shutil.which("nginx", path=search)
        if binary is None:
            raise FileNotFoundError("nginx is not installed")

        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cartsvc-nginx-"))
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(nginx_conf(upstreams, self.port), encoding="utf-8")
        self.error_log = self.dir / "error.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        # The config logs errors to stderr; -e does too, from the first line on,
        # so nginx never reaches for /var/log/nginx.
        command = [
            self.binary, "-p", str(self.dir), "-c", str(self.conf), "-e", "stderr",
        ]  # fmt: skip
        self._stderr = self.error_log.open("wb")
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        try:
            self._wait_ready(self.process)
        except BaseException:
            self.close()
            raise

        return self

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{_tail(self.error_log)}")
            if _get_status(f"{self.url}/healthz") == 200:
                return
            time.sleep(0.05)

        raise RuntimeError(f"nginx did not answer:\n{_tail(self.error_log)}")

    def upstream_counts(self) -> dict[str, int]:
        """How many logged requests each instance answered."""
        counts: dict[str, int] = {}
        log = self.dir / "access.log"
        for line in log.read_text(encoding="utf-8").splitlines():
            address = line.split()[0]
            counts[address] = counts.get(address, 0) + 1

        return counts

    def close(self) -> None:
        # SIGQUIT: a graceful stop, workers finish and exit with the master.
        _stop(self.process, signal.SIGQUIT)
        self.process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        shutil.rmtree(self.dir, ignore_errors=True)
