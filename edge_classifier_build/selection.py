"""Pareto fronts over the sweep's variants and the written rule that picks the default model.

Rule: among full-int8 variants of at most MAX_SIZE bytes, take the best accuracy; the default is
the fastest of those within MAX_GAP points of it (1 thread, XNNPACK, single-image p50). Latencies
within LATENCY_TIE of the fastest count as a tie, which goes to the more accurate variant, then to
the smaller file: two trainings of one graph differ in latency only by measurement noise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

MAX_SIZE = 1_000_000  # bytes: "1 MB"
MAX_GAP = 0.5  # accuracy points below the best full-int8 variant
LATENCY_TIE = 0.05  # relative: p50s this close are the same speed on a shared machine
GOAL_ACCURACY = 95.0
GOAL_MAX_DROP = 0.3  # points lost by quantization against the float model


@dataclass(frozen=True)
class Rule:
    """The selection rule's numbers, written out in the report."""

    max_size: int = MAX_SIZE
    max_gap: float = MAX_GAP
    latency_tie: float = LATENCY_TIE

    def text(self) -> str:
        return (
            f"among the full-int8 variants (int8 PTQ or QAT) whose .tflite is at most "
            f"{self.max_size:,} bytes, find the best test accuracy; the default is the fastest of those within "
            f"{self.max_gap} points of it (single-image p50, 1 thread, XNNPACK on); p50s within "
            f"{self.latency_tie:.0%} of the fastest are a tie, won by the higher accuracy, then the smaller file"
        )


def latency_p50(record: dict[str, Any], config: str = "1t") -> float:
    return float(record["latency_ms"][config]["p50"])


def pareto_front(records: list[dict[str, Any]], cost: Callable[[dict[str, Any]], float]) -> list[dict[str, Any]]:
    """The variants no other variant beats on both lower COST and higher accuracy, by increasing cost."""
    front: list[dict[str, Any]] = []
    best = float("-inf")
    for record in sorted(records, key=lambda r: (cost(r), -r["accuracy"])):
        if record["accuracy"] > best:
            front.append(record)
            best = record["accuracy"]
    return front


def choose(records: list[dict[str, Any]], rule: Rule) -> dict[str, Any] | None:
    """The variant the rule picks, or None when no full-int8 variant fits the size limit."""
    candidates = [r for r in records if r["full_int8"] and r["size_bytes"] <= rule.max_size]
    if not candidates:
        return None
    best = max(r["accuracy"] for r in candidates)
    close = [r for r in candidates if r["accuracy"] >= best - rule.max_gap]
    fastest = min(latency_p50(r) for r in close)
    tied = [r for r in close if latency_p50(r) <= fastest * (1 + rule.latency_tie)]
    return max(tied, key=lambda r: (r["accuracy"], -r["size_bytes"]))


def goal_status(record: dict[str, Any]) -> dict[str, bool]:
    """Which parts of the goal (int8 >= 95.0 %, <= 1 MB, drop <= 0.3 points) a variant meets."""
    return {
        "accuracy": record["accuracy"] >= GOAL_ACCURACY,
        "size": record["size_bytes"] <= MAX_SIZE,
        "drop": record["accuracy_delta"] >= -GOAL_MAX_DROP,
    }


def meets_goal(record: dict[str, Any]) -> bool:
    return record["full_int8"] and all(goal_status(record).values())
