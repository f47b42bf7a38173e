"""The report's confusion matrix of the real-photo default, its most confused pairs and what they have in common."""

from __future__ import annotations

from typing import Any

TOP_PAIRS = 5
TOPS = ("Long sleeve", "Shirt", "T-shirt")


def short_label(label: str) -> str:
    """A column header narrow enough for ten columns: `Long sleeve` → `L-sleeve`."""
    words = label.split()
    return label if len(words) == 1 else "".join(w[0] for w in words[:-1]) + "-" + words[-1]


def confused_pairs(record: dict[str, Any], top: int = TOP_PAIRS) -> list[tuple[str, str, int, float]]:
    """(truth, predicted, photos, share of the truth class) for the largest off-diagonal counts, largest first."""
    labels = list(record["per_class_accuracy"])  # ordered as the confusion matrix's rows
    matrix = record["confusion_matrix"]
    pairs = [
        (labels[t], labels[p], count, count / sum(row))
        for t, row in enumerate(matrix) for p, count in enumerate(row) if t != p and count
    ]  # fmt: skip
    return sorted(pairs, key=lambda pair: (-pair[2], -pair[3]))[:top]


def confusion_lines(chosen: dict[str, Any]) -> list[str]:
    labels = list(chosen["per_class_accuracy"])
    lines = [
        f"### Confusion matrix of {chosen['variant']}",
        "",
        "Validation photos; rows: true class, columns: predicted, right answers in bold; last column: the class's "
        "accuracy.",
        "",
        "| Truth \\ predicted | " + " | ".join(short_label(label) for label in labels) + " | Accuracy % |",
        "|---|" + "---:|" * (len(labels) + 1),
    ]
    for t, (label, row) in enumerate(zip(labels, chosen["confusion_matrix"], strict=True)):
        cells = [f"**{n}**" if p == t else str(n) for p, n in enumerate(row)]
        lines.append(f"| {label} | {' | '.join(cells)} | {chosen['per_class_accuracy'][label]:.1f} |")
    lines += ["", "Most confused pairs:", ""]
    lines += [
        f"- {truth} → {predicted}: {count} photo{'s' * (count > 1)} ({share:.0%} of {truth})"
        for truth, predicted, count, share in confused_pairs(chosen)
    ] or ["- none: every validation photo is right"]
    return [*lines, "", *why_confused(chosen), ""]


def why_confused(chosen: dict[str, Any]) -> list[str]:
    """How many photos the three kinds of top exchange, and what the confusions have in common."""
    labels = list(chosen["per_class_accuracy"])
    matrix = chosen["confusion_matrix"]
    tops = [labels.index(t) for t in TOPS if t in labels]
    exchanged = sum(matrix[t][p] for t in tops for p in tops if t != p)
    photos = sum(sum(matrix[t]) for t in tops)
    return [
        f"Long sleeve, Shirt and T-shirt, the tops one would expect to be confused, exchange only {exchanged} of "
        f"their {photos} photos: they differ by sleeve length, collar and buttons, and the photos mostly show the "
        "whole garment. The confusions that remain are between garments whose difference a centred square crop "
        "can cut off or that share a silhouette: an open jacket (Outwear) laid flat is a long-sleeved top, shorts "
        "photographed from the hip down look like the top of trousers, and a long-sleeved dress cropped to its "
        "upper half is a long-sleeved top."
    ]
