"""The report's per-technique sections, written only from measured sweep records (Markdown lines)."""

from __future__ import annotations

import logging
from itertools import takewhile
from pathlib import Path
from typing import Any

from .options import DISPLAY_NAMES
from .selection import GOAL_ACCURACY

logger = logging.getLogger(__name__)


def network_key(record: dict[str, Any]) -> tuple[Any, ...]:
    training = (record["epochs"], record.get("random_erasing", 0.0), record["train_images"])
    return (record["architecture"], record["alpha"], record["resolution"], *training)


def is_plain(record: dict[str, Any]) -> bool:
    """Trained on labels alone and not pruned."""
    return "distill" not in record and "prune" not in record


def network_text(record: dict[str, Any]) -> str:
    return f"{DISPLAY_NAMES[record['architecture']]} α{record['alpha']:g} {record['resolution']} px"


def teacher_text(distill: dict[str, Any]) -> str:
    """The teacher's network, or the file it was loaded from (the sweep's cache names say what it is)."""
    teacher = distill["teacher"]
    return network_text(teacher) if isinstance(teacher, dict) else Path(str(teacher)).name


def distill_text(distill: dict[str, Any]) -> str:
    """A distillation's loss weights and teacher in a few words."""
    return f"α{distill['alpha']:g} T{distill['temperature']:g} from {teacher_text(distill)}"


def lat(record: dict[str, Any], config: str = "1t") -> str:
    entry = record["latency_ms"][config]
    return f"{entry['p50']:.3f} / {entry['p95']:.3f}"


def p50(record: dict[str, Any], config: str = "1t") -> float:
    return float(record["latency_ms"][config]["p50"])


def kb(size: int) -> str:
    return f"{size / 1000:,.0f}"


def change(new: float, old: float) -> str:
    return f"{100.0 * (new - old) / old:+.0f}%" if old else "n/a"


def counterpart(record: dict[str, Any], records: list[dict[str, Any]], quantization: str) -> dict[str, Any] | None:
    """The plain variant of the same network (same training) with QUANTIZATION (and QAT recipe), if the sweep has it."""
    for other in records:
        if (
            network_key(other) == network_key(record) and is_plain(other) and other["quantization"] == quantization
            and other.get("qat") == record.get("qat")
        ):  # fmt: skip
            return other
    return None


def quantization_section(records: list[dict[str, Any]]) -> list[str]:
    lines = ["## Quantization", ""]
    networks: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in records:
        if is_plain(record):
            networks.setdefault(network_key(record), []).append(record)
    compared = {key: rows for key, rows in networks.items() if len(rows) > 1}
    if not compared:
        return [*lines, "No network was converted more than one way in these results.", ""]
    for rows in compared.values():
        first = rows[0]
        lines += [
            f"{network_text(first)}, one training ({first['epochs']} ep, float Keras accuracy "
            f"{first['base_float_accuracy']:.2f}%), converted each way:",
            "",
            "| Quantization | Accuracy % | Δ vs float Keras | Size kB | gzip kB | 1 thread p50/p95 ms "
            "| 2 threads p50/p95 ms | 1 thread, no XNNPACK p50/p95 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sorted(rows, key=lambda r: r["size_bytes"]):
            lines.append(
                f"| {quantization_text(r)} | {r['accuracy']:.2f} | {r['accuracy_delta']:+.2f} | {kb(r['size_bytes'])} "
                f"| {kb(r['size_gzip_bytes'])} | {lat(r)} | {lat(r, '2t')} | {lat(r, '1t_no_xnnpack')} |"
            )
        lines.append("")
    return lines


def quantization_text(record: dict[str, Any]) -> str:
    """The quantization of a row, with the QAT fine-tune's learning rate (two QAT rows differ only there)."""
    qat = record.get("qat")
    if record["quantization"] == "qat" and qat:
        return f"qat (lr {qat['learning_rate']:g}, {qat['epochs']} ep)"
    return str(record["quantization"])


def pruning_section(records: list[dict[str, Any]]) -> list[str]:
    lines = ["## Pruning", ""]
    pruned = [r for r in records if "prune" in r and "distill" not in r]
    if not pruned:
        return [*lines, "No pruned variant in these results.", ""]
    lines += [
        "Magnitude pruning of the Conv2D and Dense kernels (depthwise kernels stay dense), fine-tuned on a "
        "polynomial schedule, wrappers stripped before conversion. Each row is compared with the unpruned model "
        "of the same training and quantization. Zeros are counted in the .tflite's own weight tensors.",
        "",
        "| Variant | Target | Zeros in conv / dense kernels | Accuracy % (unpruned) | Size kB (unpruned) "
        "| gzip kB (unpruned) | 1 thread p50 ms (unpruned) | 1 thread, no XNNPACK p50 ms (unpruned) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for r in pruned:
        base = counterpart(r, records, r["quantization"])
        sparsity = r["weight_sparsity"]
        zeros = f"{sparsity.get('conv', 0):.0%} / {sparsity.get('dense', 0):.0%}"
        if base is None:
            lines.append(f"| {r['variant']} | {r['prune']['sparsity']:.0%} | {zeros} | {r['accuracy']:.2f} "
                         f"| {kb(r['size_bytes'])} | {kb(r['size_gzip_bytes'])} | {p50(r):.3f} "
                         f"| {p50(r, '1t_no_xnnpack'):.3f} |")  # fmt: skip
            continue
        lines.append(
            f"| {r['variant']} | {r['prune']['sparsity']:.0%} | {zeros} | {r['accuracy']:.2f} ({base['accuracy']:.2f}) "
            f"| {kb(r['size_bytes'])} ({kb(base['size_bytes'])}) "
            f"| {kb(r['size_gzip_bytes'])} ({kb(base['size_gzip_bytes'])}) "
            f"| {p50(r):.3f} ({p50(base):.3f}) | {p50(r, '1t_no_xnnpack'):.3f} ({p50(base, '1t_no_xnnpack'):.3f}) |"
        )
        notes.append(
            f"- {r['variant']}: accuracy {r['accuracy'] - base['accuracy']:+.2f} points, raw size "
            f"{change(r['size_bytes'], base['size_bytes'])}, "
            f"gzip {change(r['size_gzip_bytes'], base['size_gzip_bytes'])}, "
            f"latency {change(p50(r), p50(base))} with XNNPACK and "
            f"{change(p50(r, '1t_no_xnnpack'), p50(base, '1t_no_xnnpack'))} without (1 thread p50)."
        )
    return [*lines, "", *notes, ""]


def distillation_section(records: list[dict[str, Any]]) -> list[str]:
    lines = ["## Knowledge distillation", ""]
    students = [r for r in records if "distill" in r]
    if not students:
        return [*lines, "No distilled variant in these results.", ""]
    lines += [
        "Student loss `alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T)`; the baseline is "
        "the same network trained on labels alone with the same epochs, seed and data.",
        "",
        "| Student | alpha | T | Teacher (float accuracy %) | Student accuracy % | Baseline accuracy % | Difference "
        "| Training s (student + teacher) |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in students:
        base = counterpart(r, records, r["quantization"])
        baseline = f"{base['accuracy']:.2f}" if base else "not in results"
        diff = f"{r['accuracy'] - base['accuracy']:+.2f}" if base else "n/a"
        lines.append(
            f"| {r['variant']} | {r['distill']['alpha']:g} | {r['distill']['temperature']:g} "
            f"| {teacher_text(r['distill'])} ({r.get('teacher_accuracy', float('nan')):.2f}) | {r['accuracy']:.2f} "
            f"| {baseline} "
            f"| {diff} | {r['train_seconds']:.0f} + {teacher_cost(r, records)} |"
        )
    return [*lines, ""]


def option_value(record: dict[str, Any], option: str) -> str | None:
    """The value OPTION has in the variant's build command, if it is there."""
    words = str(record.get("command", "")).split()
    return words[words.index(option) + 1] if option in words[:-1] else None


def teacher_cost(student: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """Seconds the teacher took: in this run, or as the network of the variant whose --keras-cache is its file."""
    teacher_file = option_value(student, "--teacher")
    stem = Path(teacher_file).stem if teacher_file else None
    owner = next((r for r in records if stem and Path(option_value(r, "--keras-cache") or "").stem == stem), None)
    if owner is not None and owner is not student:
        return f"0 (loaded: the network of {owner['variant']}, {owner['base_train_seconds']:.0f} s)"
    if student.get("teacher_seconds"):
        return f"{student['teacher_seconds']:.0f}"
    return "0 (loaded from a file)"


def training_section(records: list[dict[str, Any]]) -> list[str]:
    """The same network, plain full int8, trained longer or with more augmentation: what each buys."""
    lines = ["## Training budget and augmentation", ""]
    plain = [r for r in records if is_plain(r) and r["quantization"] == "int8"]
    longer = [r for r in plain if r["group"] == "training"]
    if not longer:
        return [*lines, "No training-budget variant in these results.", ""]
    lines += [
        "Plain full-int8 builds of one network; each row against the row above it.",
        "",
        "| Variant | Epochs | Random erasing | Float % | int8 % | Step | Training s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    same = [r for r in plain if network_key(r)[:3] == network_key(longer[0])[:3]]
    same.sort(key=lambda r: (r["epochs"], r.get("random_erasing", 0.0)))
    previous = None
    for r in same:
        step = f"{r['accuracy'] - previous['accuracy']:+.2f}" if previous else ""
        lines.append(
            f"| {r['variant']} | {r['epochs']} | {r.get('random_erasing', 0.0):g} | {r['float_accuracy']:.2f} "
            f"| {r['accuracy']:.2f} | {step} | {r['train_seconds']:.0f} |"
        )
        previous = r
    return [*lines, ""]


def folding_section(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Batch-norm folding",
        "",
        "Unfolded batch norm would leave a MUL and an ADD with a per-channel constant after each convolution. "
        "For each variant: the Keras model's BatchNormalization layers, what of them is left in its float32 "
        ".tflite, and the largest difference between that .tflite's softmax outputs and the Keras model's "
        "(which still computes batch norm as layers) on the first test images.",
        "",
        "| Variant | Keras BN layers | BN ops left | Per-channel MUL/ADD | Max abs diff | Images | Same top-1 "
        "| Folded |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        fold = r.get("batch_norm")
        if not fold:
            continue
        out = fold["outputs"]
        lines.append(
            f"| {r['variant']} | {fold['keras_batch_norm_layers']} | {len(fold['batch_norm_ops'])} "
            f"| {len(fold['per_channel_affine_ops'])} | {out['max_abs_diff']:.1e} | {out['images']} "
            f"| {out['same_top1']:.0%} | {'yes' if fold['folded'] else 'NO'} |"
        )
    tolerance = records[0]["batch_norm"]["outputs"]["tolerance"]
    return [
        *lines,
        "",
        f"Tolerance: max abs diff ≤ {tolerance:g}. A full-int8 build also fails unless its int8 graph passes the "
        "same per-channel check and holds exactly as many ADD ops as the Keras model has Add layers "
        "(`convert.check_full_int8`), so every int8 row above is folded in the int8 graph too.",
        "",
    ]


def flattening_section(front: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[str]:
    """Steps along the full-int8 latency Pareto front: what each step of latency buys in accuracy."""
    lines = ["## Where the curve flattens", ""]
    if len(front) < 2:
        return [*lines, "Fewer than two full-int8 variants on the Pareto front.", ""]
    lines += [
        "The full-int8 Pareto front (1 thread p50), cheapest first, with what each step buys:",
        "",
        "| Variant | Accuracy % | 1 thread p50 ms | Size kB | Step: accuracy | Step: latency |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    previous = None
    for r in front:
        step_acc = f"{r['accuracy'] - previous['accuracy']:+.2f}" if previous else ""
        step_lat = f"×{p50(r) / p50(previous):.2f}" if previous and p50(previous) else ""
        lines.append(f"| {r['variant']} | {r['accuracy']:.2f} | {p50(r):.3f} | {kb(r['size_bytes'])} "
                     f"| {step_acc} | {step_lat} |")  # fmt: skip
        previous = r
    return [*lines, "", *front_summary(front, records)]


def front_summary(front: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[str]:
    """Where the front's top came from, what the slower networks reached, and the distance to the goal."""
    top = front[-1]
    same = list(takewhile(lambda r: network_text(r) == network_text(top), reversed(front)))[::-1]
    lines = []
    if len(same) > 1:
        lines.append(f"- The top {len(same)} points are one network, {network_text(top)}, trained {len(same)} ways "
                     f"({', '.join(r['variant'] for r in same)}): {same[0]['accuracy']:.2f} → {top['accuracy']:.2f}% "
                     f"for ×{p50(top) / p50(same[0]):.2f} latency. At the top, accuracy came from training, "
                     "not from a bigger network.")  # fmt: skip
    slower: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["full_int8"] and network_text(r) != network_text(top) and p50(r) > p50(top):
            best = slower.get(network_text(r))
            slower[network_text(r)] = r if best is None or r["accuracy"] > best["accuracy"] else best
    if slower:
        named = [f"{name} {r['accuracy']:.2f}% ({r['epochs']} ep)" for name, r in sorted(slower.items())]
        fewer = all(r["epochs"] < top["epochs"] for r in slower.values())
        budget = f", all with fewer epochs than the top's {top['epochs']}: how they do on that budget is not measured"
        lines.append(f"- Slower networks, each at its best variant: {'; '.join(named)}{budget if fewer else ''}.")
    if top["accuracy"] < GOAL_ACCURACY:
        short = GOAL_ACCURACY - top["accuracy"]
        lines.append(f"- The most accurate full-int8 variant, {top['variant']}, is {short:.2f} points short "
                     f"of the goal's {GOAL_ACCURACY:g}%.")  # fmt: skip
    return [*lines, ""] if lines else []
