"""The report's lever table: every pair of full-int8 variants that differ in one setting, and what it bought."""

from __future__ import annotations

import itertools
from typing import Any

from .options import DISPLAY_NAMES
from .report_sections import distill_text, kb, p50, quantization_text

# Settings compared by their order (each value against the next measured one) ...
ORDERED = ("width", "resolution", "epochs", "random erasing", "pruning")
# ... and settings compared against their plain value.
AGAINST_PLAIN = {"quantization": "int8", "distillation": "none", "architecture": DISPLAY_NAMES["mobilenetv2"]}
# Levers that keep the graph: their latency steps are measurement noise, and the report says how large.
SAME_GRAPH = ("epochs", "random erasing", "pruning", "distillation")


def settings(record: dict[str, Any]) -> dict[str, Any]:
    """What a variant was built with, one value per lever; training data and seed complete the key."""
    distill = record.get("distill")
    return {
        "width": record["alpha"],
        "resolution": record["resolution"],
        "epochs": record["epochs"],
        "random erasing": record.get("random_erasing", 0.0),
        "pruning": record["prune"]["sparsity"] if "prune" in record else 0.0,
        "quantization": quantization_text(record),
        "distillation": distill_text(distill) if distill else "none",
        "architecture": DISPLAY_NAMES[record["architecture"]],
        "data": (record["train_images"], record["test_images"], record["seed"]),
    }  # fmt: skip


def value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def lever_pairs(records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(lever, before, after) for full-int8 variants equal in every other setting."""
    int8 = [(r, settings(r)) for r in records if r["full_int8"]]
    pairs = []
    for lever in (*ORDERED, *AGAINST_PLAIN):
        groups: dict[tuple[Any, ...], list[tuple[Any, dict[str, Any]]]] = {}
        for record, values in int8:
            rest = tuple((k, v) for k, v in values.items() if k != lever)
            groups.setdefault(rest, []).append((values[lever], record))
        for members in groups.values():
            if lever in ORDERED:
                members.sort(key=lambda m: m[0])
                pairs += [(lever, a[1], b[1]) for a, b in itertools.pairwise(members) if a[0] != b[0]]
            else:
                plain = [record for value, record in members if value == AGAINST_PLAIN[lever]]
                pairs += [(lever, plain[0], record) for value, record in members
                          if plain and value != AGAINST_PLAIN[lever]]  # fmt: skip
    return pairs


def levers_section(records: list[dict[str, Any]]) -> list[str]:
    lines = ["## What each lever bought", ""]
    pairs = lever_pairs(records)
    if not pairs:
        return [*lines, "No two full-int8 variants differ in one setting only.", ""]
    lines += [
        "Every pair of full-int8 variants that differ in one setting only (numbers: each value against the next "
        "one measured; the rest: against the plain build), with the step in int8 accuracy, 1 thread p50 and size.",
        "",
        "| Lever | From | To | Accuracy | p50 | Size | Variants |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for lever, before, after in pairs:
        old, new = (value_text(settings(r)[lever]) for r in (before, after))
        lines.append(
            f"| {lever} | {old} | {new} | {after['accuracy'] - before['accuracy']:+.2f} "
            f"| ×{p50(after) / p50(before):.2f} | {kb(before['size_bytes'])} → {kb(after['size_bytes'])} kB "
            f"| {before['variant']} → {after['variant']} |"
        )
    noise = [p50(after) / p50(before) for lever, before, after in pairs if lever in SAME_GRAPH]
    if noise:
        lines += [
            "",
            f"Epochs, random erasing, pruning and distillation leave the graph as it is, so their p50 steps "
            f"(×{min(noise):.2f} to ×{max(noise):.2f}) show how far this shared machine's timing moves between runs.",
        ]
    return [*lines, ""]
