"""The report's PNG plots (matplotlib, Agg): accuracy against latency and size, Pareto front, confusion matrix."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from .selection import pareto_front

logger = logging.getLogger(__name__)

GROUP_COLORS = {"architecture": "tab:blue", "quantization": "tab:orange", "training": "tab:red",
                "pruning": "tab:green", "distillation": "tab:purple"}  # fmt: skip
QUANT_MARKERS = {"int8": "o", "qat": "D", "float32": "s", "dynamic": "^"}


def tradeoff_plot(
    records: list[dict[str, Any]],
    cost: Callable[[dict[str, Any]], float],
    xlabel: str,
    title: str,
    chosen: dict[str, Any] | None,
    path: Path,
    log_x: bool = False,
) -> Path:
    """Accuracy against COST, one point per variant, the Pareto front as a step line, the chosen model ringed.

    Points carry their row number in RECORDS (the report's table) rather than a name: variants of one graph
    sit within a few hundredths of a millisecond of each other, and their names would overprint.
    """
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for number, record in enumerate(records, start=1):
        ax.scatter(
            cost(record), record["accuracy"], s=46,
            color=GROUP_COLORS.get(record.get("group", ""), "tab:gray"),
            marker=QUANT_MARKERS.get(record["quantization"], "o"), zorder=3,
        )  # fmt: skip
        ax.annotate(str(number), (cost(record), record["accuracy"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")  # fmt: skip
    front = pareto_front(records, cost)
    if front:
        ax.step([cost(r) for r in front], [r["accuracy"] for r in front], where="post", color="black",
                linewidth=1.2, linestyle="--", label="Pareto front", zorder=2)  # fmt: skip
    if chosen is not None:
        ax.scatter(cost(chosen), chosen["accuracy"], s=220, facecolors="none", edgecolors="red", linewidths=1.8,
                   label=f"chosen: {chosen['variant']}", zorder=4)  # fmt: skip
    for group, color in GROUP_COLORS.items():
        ax.scatter([], [], color=color, label=group)
    for quantization, marker in QUANT_MARKERS.items():
        ax.scatter([], [], color="gray", marker=marker, label=quantization)
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Fashion-MNIST test accuracy (%) through ai-edge-litert")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion_plot(record: dict[str, Any], path: Path) -> Path:
    """The chosen variant's confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    matrix = np.asarray(record["confusion_matrix"])
    labels = list(record["per_class_accuracy"])
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{record['variant']}: {record['accuracy']:.2f}% on {record['test_images']} test images")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
