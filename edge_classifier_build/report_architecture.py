"""The report's architecture sections: MobileNetV2 width against input resolution, and MobileNetV3-Small."""

from __future__ import annotations

from typing import Any

from .report_sections import is_plain, kb, p50


def grid_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain full-int8 MobileNetV2 builds of the sweep's base budget: one training recipe, so only shape differs."""
    plain = [
        r for r in records
        if r["architecture"] == "mobilenetv2" and is_plain(r) and r["quantization"] == "int8"
        and not r.get("random_erasing")
    ]  # fmt: skip
    if not plain:
        return []
    epochs = min(r["epochs"] for r in plain)
    return [r for r in plain if r["epochs"] == epochs]


def cell(record: dict[str, Any] | None) -> str:
    if record is None:
        return "not built"
    return f"{record['accuracy']:.2f}% · {p50(record):.3f} ms · {kb(record['size_bytes'])} kB"


def step_line(what: str, low: dict[str, Any], high: dict[str, Any]) -> str:
    return (
        f"- {what}: {high['accuracy'] - low['accuracy']:+.2f} points for ×{p50(high) / p50(low):.2f} latency "
        f"and ×{high['size_bytes'] / low['size_bytes']:.2f} size ({low['variant']} → {high['variant']})."
    )


def width_resolution_section(records: list[dict[str, Any]]) -> list[str]:
    """A grid of width against resolution, then what the widest and the largest input buy along each axis."""
    lines = ["## MobileNetV2 width and input resolution", ""]
    rows = grid_rows(records)
    if not rows:
        return [*lines, "No plain full-int8 MobileNetV2 variant in these results.", ""]
    by_shape = {(r["alpha"], r["resolution"]): r for r in rows}
    alphas = sorted({alpha for alpha, _ in by_shape})
    resolutions = sorted({resolution for _, resolution in by_shape})
    lines += [
        f"Plain full-int8 builds, {rows[0]['epochs']} epochs, same seed and data; each cell: int8 test accuracy · "
        "1 thread p50 · .tflite size. Width multiplies every layer's channels except the last 1,280; resolution "
        "is the side of the square the camera frame's center crop is resized to.",
        "",
        "| Width | " + " | ".join(f"{res} px" for res in resolutions) + " |",
        "|---|" + "---:|" * len(resolutions),
    ]
    for alpha in alphas:
        lines.append(f"| α{alpha:g} | " + " | ".join(cell(by_shape.get((alpha, res))) for res in resolutions) + " |")
    lines.append("")
    for res in resolutions:
        column = sorted((r for r in rows if r["resolution"] == res), key=lambda r: r["alpha"])
        if len(column) > 1:
            lines.append(step_line(f"Width α{column[0]['alpha']:g} → α{column[-1]['alpha']:g} at {res} px",
                                   column[0], column[-1]))  # fmt: skip
    for alpha in alphas:
        row = sorted((r for r in rows if r["alpha"] == alpha), key=lambda r: r["resolution"])
        if len(row) > 1:
            lines.append(step_line(f"Resolution {row[0]['resolution']} → {row[-1]['resolution']} px at α{alpha:g}",
                                   row[0], row[-1]))  # fmt: skip
    return [*lines, ""]


def mobilenetv3_section(records: list[dict[str, Any]], failed: list[dict[str, Any]]) -> list[str]:
    lines = ["## MobileNetV3-Small", ""]
    v3 = [r for r in records if r["architecture"] == "mobilenetv3small" and r["full_int8"]]
    for r in v3:
        ops = ", ".join(f"{op} {n}" for op, n in sorted(r["op_counts"].items()))
        lines.append(f"- {r['variant']} converted to full int8 (every tensor integer, int8 input and output): {ops}.")
    for r in (r for r in records if r["architecture"] == "mobilenetv3small" and "xnnpack_partitions" in r):
        lines.append(
            f"- {r['variant']}: XNNPACK runs the graph as {r['xnnpack_partitions']} partition(s); the ops between "
            f"them run on TFLite's own kernels ({p50(r):.3f} ms p50, 1 thread)."
        )
    for f in failed:
        if f["variant"].startswith("v3s"):
            lines.append(f"- {f['variant']} failed: {f['error']}")
    if len(lines) == 2:
        lines.append("No MobileNetV3-Small variant in these results.")
    return [*lines, ""]
