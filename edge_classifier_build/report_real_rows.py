"""How the report reads a real-photo build's record: its command's options, its variant name, weights and teacher."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from .report_sections import teacher_text as sweep_teacher_text


def options(record: dict[str, Any]) -> dict[str, str | None]:
    """The build command's options (a flag maps to None); an option given twice keeps its last value, as in argparse."""
    words = shlex.split(str(record.get("command", "")))
    values: dict[str, str | None] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            value = words[i + 1] if i + 1 < len(words) else None
            values[word] = None if value is None or value.startswith("--") else value
    return values


def transplanted(record: dict[str, Any]) -> bool:
    return str(options(record).get("--weights") or "").endswith(".tflite")


def distilled(record: dict[str, Any]) -> bool:
    opts = options(record)
    return "distill" in record or "--teacher" in opts or "--teacher-alpha" in opts


def variant_name(record: dict[str, Any]) -> str:
    """`a100-r224`, `a100-r224-oe`, `a035-r128-kd`: width ×100, input size, outlier exposure, and how it learned
    when not from transplanted weights."""
    name = f"a{round(record['alpha'] * 100):03d}-r{record['resolution']}"
    if options(record).get("--negatives") not in (None, "0"):
        name += "-oe"  # outlier exposure: trained with synthetic no-garment scenes
    if distilled(record):
        return f"{name}-kd"
    return name if options(record).get("--weights", "none") != "none" else f"{name}-scratch"


def rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant, the last record kept (a rebuild replaces its earlier line), widest and largest first."""
    named = {variant_name(r): {**r, "variant": variant_name(r)} for r in records if "error" not in r}
    return sorted(named.values(), key=lambda r: (distilled(r), -r["alpha"], -r["resolution"], r["variant"]))


def teacher_text(record: dict[str, Any], table: list[dict[str, Any]]) -> str:
    """The teacher: the row whose --keras-cache is the student's --teacher file, else that file's name."""
    opts = options(record)
    distill = record.get("distill") or {}
    alpha = distill.get("alpha", opts.get("--distill-alpha") or 0.5)
    temperature = distill.get("temperature", opts.get("--distill-temperature") or 4.0)
    teacher_file = opts.get("--teacher") or ""
    owner = next((r for r in table if teacher_file and Path(options(r).get("--keras-cache") or "").stem
                  == Path(teacher_file).stem), None)  # fmt: skip
    if owner is not None:
        teacher = f"the {owner['variant']} network"
    elif isinstance(distill.get("teacher"), dict):  # trained within this build: the record says which network
        teacher = sweep_teacher_text(distill)
    else:
        teacher = f"`{Path(teacher_file).name or 'a teacher'}`"
    return f"distilled from {teacher} (label weight alpha {float(alpha):g}, T {float(temperature):g})"


def weights_text(record: dict[str, Any], table: list[dict[str, Any]]) -> str:
    weights = options(record).get("--weights") or "none"
    source = {"none": "from scratch", "imagenet": "Keras ImageNet"}.get(weights, Path(weights).name)
    if transplanted(record):
        source = "transplanted ImageNet"
    return f"{source}, {teacher_text(record, table)}" if distilled(record) else source


def epochs_text(record: dict[str, Any]) -> str:
    head = int(options(record).get("--head-epochs") or 0)
    return f"{record['epochs']} + {head} head" if head else str(record["epochs"])
