"""Where the service's time goes: py-spy samples while wrk drives cart adds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Frames are `function (path:line)`; the package a frame belongs to is named by
# the first of these path parts found in it.
PACKAGES = ("cartsvc", "aiohttp", "redis", "prometheus_client", "logging", "asyncio",
            "json", "hmac", "hashlib", "multidict", "yarl", "uvloop")  # fmt: skip
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^:]*)(?::\d+)?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed: pip install -e '.[bench]'")
    return found


def record(pid: int, out: Path, drive: Callable[[], Any]) -> None:
    """Sample `pid` while `drive()` runs, then print a summary; raw stacks to `out`."""
    command = [py_spy(), "record", "--pid", str(pid), "--rate", "250",
               "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    sampler = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        drive()
    finally:
        sampler.send_signal(2)
        sampler.wait(timeout=30)

    summarize(out)


def _package(frame: str) -> str:
    match = _FRAME.match(frame)
    path = match["path"] if match else frame
    for package in PACKAGES:
        if f"/{package}/" in f"/{path}" or path.endswith(f"{package}.py"):
            return package
    return "other"


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["path"]
    for package in PACKAGES:
        at = path.find(f"/{package}/")
        if at >= 0:
            path = path[at + 1 :]
            break
    return f"{match['function']} ({Path(path).name if '/' not in path else path})"


def summarize(raw: Path, top: int = 22) -> None:
    """Print the share of samples by the leaf frame's package, and by function."""
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaves[_package(frames[-1])] += count
        for frame in set(frames):
            inclusive[_short(frame)] += count

    if not total:
        print("py-spy recorded no samples")
        return

    print(f"\nprofile: {total} samples; self time by package of the running frame")
    for package, count in leaves.most_common():
        print(f"  {count / total:6.1%}  {package}")
    print(f"inclusive time, top {top} functions")
    for function, count in inclusive.most_common(top):
        print(f"  {count / total:6.1%}  {function}")
