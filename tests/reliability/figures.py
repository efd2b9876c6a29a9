"""What the reliability tests did in this run, for the summary and RELIABILITY.md."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field


def size(variable: str, default: int) -> int:
    """A test's size: the default in CI, more when the environment asks for it."""
    raw = os.environ.get(variable, "")
    return int(raw) if raw.strip() else default


@dataclass
class Figures:
    model_examples: int = 0
    model_steps: int = 0
    model_requests: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    inputs_fuzzed: int = 0
    acknowledged_writes: int = 0
    acknowledged_writes_lost: int = 0
    slowest_answer_s: float = 0.0

    def fault(self, kind: str, times: int = 1) -> None:
        self.faults[kind] += times

    def answered_in(self, took_s: float) -> None:
        self.slowest_answer_s = max(self.slowest_answer_s, took_s)

    def lines(self) -> list[str]:
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items()))
        return [
            f"model: {self.model_examples} sequences, {self.model_steps} steps, "
            f"{self.model_requests} requests compared with the model",
            f"faults injected: {sum(self.faults.values())} ({faults or 'none'})",
            f"inputs fuzzed: {self.inputs_fuzzed}",
            f"acknowledged writes: {self.acknowledged_writes}, "
            f"lost: {self.acknowledged_writes_lost}",
            f"slowest answer under faults: {self.slowest_answer_s * 1000:.0f} ms",
        ]


FIGURES = Figures()
