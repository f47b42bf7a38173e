"""`edge-classifier-report`: models/REPORT.md and its plots, regenerated from the sweep's results file alone."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from . import report_sections as sections
from .paths import MODELS_DIR
from .rebuild import rebuild_command
from .report_architecture import mobilenetv3_section, width_resolution_section
from .report_kshot import RESULTS_NAME as KSHOT
from .report_kshot import kshot_section
from .report_levers import levers_section
from .report_real import RESULTS_NAME as REAL_PHOTOS
from .report_real import real_photos_section
from .report_retrieval import RESULTS_NAME as RETRIEVAL
from .report_retrieval import retrieval_section
from .selection import Rule, choose, goal_status, latency_p50, pareto_front
from .sweep import DEFAULT_RESULTS, full_plan, mini_plan, read_results

logger = logging.getLogger(__name__)

GROUP_ORDER = ("quantization", "architecture", "training", "pruning", "distillation")


def latest(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The last successful line per variant, and the variants that only ever failed (last error kept).

    Only lines of the last line's plan count: a file holding a mini and a full sweep reports the last one.
    """
    ok: dict[str, dict[str, Any]] = {}
    errors: dict[str, dict[str, Any]] = {}
    plan = lines[-1].get("plan") if lines else None
    for line in lines:
        if line.get("plan") != plan:
            continue
        (errors if "error" in line else ok)[line["variant"]] = line
    failed = [line for name, line in errors.items() if name not in ok]
    records = sorted(ok.values(), key=lambda r: (GROUP_ORDER.index(r["group"]), sections.p50(r), r["variant"]))
    return records, failed


def parameters(record: dict[str, Any]) -> str:
    """The variant's settings in a few words."""
    parts = [f"{sections.network_text(record)}, {record['epochs']} ep"]
    if record.get("random_erasing"):
        parts.append(f"random erasing p {record['random_erasing']:g}")
    if "prune" in record:
        parts.append(f"prune {record['prune']['sparsity']:.0%} {record['prune']['epochs']} ep")
    if "qat" in record:
        parts.append(f"QAT {record['qat']['epochs']} ep, lr {record['qat']['learning_rate']:g}")
    if "distill" in record:
        parts.append(f"distill {sections.distill_text(record['distill'])}")
    return "; ".join(parts)


def results_table(records: list[dict[str, Any]], chosen: dict[str, Any] | None) -> list[str]:
    lines = [
        "| # | Variant | Techniques | Parameters | Accuracy % | Δ vs float | Size kB | gzip kB | 1 thread p50/p95 ms "
        "| 2 threads p50/p95 ms | 1 thread, no XNNPACK p50/p95 ms | Training s |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, r in enumerate(records, start=1):
        name = f"**{r['variant']}**" if chosen is not None and r["variant"] == chosen["variant"] else r["variant"]
        lines.append(
            f"| {number} | {name} | {', '.join(r['techniques'])} | {parameters(r)} | {r['accuracy']:.2f} "
            f"| {r['accuracy_delta']:+.2f} | {sections.kb(r['size_bytes'])} | {sections.kb(r['size_gzip_bytes'])} "
            f"| {sections.lat(r)} | {sections.lat(r, '2t')} | {sections.lat(r, '1t_no_xnnpack')} "
            f"| {r['train_seconds']:.0f} |"
        )
    return lines


def selection_lines(records: list[dict[str, Any]], chosen: dict[str, Any] | None, rule: Rule) -> list[str]:
    lines = ["## The default model", "", f"Rule: {rule.text()}.", ""]
    if chosen is None:
        return [*lines, f"No full-int8 variant is at most {rule.max_size:,} bytes: the rule picks nothing.", ""]
    status = goal_status(chosen)
    lines.append(
        f"The rule picks **{chosen['variant']}** ({parameters(chosen)}): {chosen['accuracy']:.2f}% int8 "
        f"({chosen['accuracy_delta']:+.2f} points against its float Keras model), {chosen['size_bytes']:,} bytes, "
        f"{latency_p50(chosen):.3f} ms p50 with 1 thread. To build it as the default model: "
        f"`{rebuild_command(chosen)}`."
    )
    lines.append("")
    wanted = "int8 ≥ 95.0%, ≤ 1 MB, int8 drop ≤ 0.3 points"
    met = [r["variant"] for r in records if r["full_int8"] and all(goal_status(r).values())]
    if met:
        lines.append(f"Goal ({wanted}) met by: {', '.join(met)}.")
    else:
        missing = [name for name, ok in status.items() if not ok]
        best = max((r for r in records if r["full_int8"] and r["size_bytes"] <= rule.max_size),
                   key=lambda r: r["accuracy"])  # fmt: skip
        lines.append(
            f"Goal ({wanted}) not met by any variant on this budget; the chosen model misses: "
            f"{', '.join(missing)}. Best full-int8 accuracy within 1 MB: {best['accuracy']:.2f}% ({best['variant']}). "
            "What was tried is every row of the table; where the curve flattens is in the last section."
        )
    return [*lines, ""]


def planned_but_missing(records: list[dict[str, Any]], failed: list[dict[str, Any]]) -> list[str]:
    """Variants of the records' plan (full or mini) that have neither a row nor a recorded failure yet."""
    plan = records[0].get("plan")
    if plan not in ("full", "mini"):
        return []
    _, variants = (full_plan if plan == "full" else mini_plan)(1, 1)
    measured = {r["variant"] for r in (*records, *failed)}
    return [v.name for v in variants if v.name not in measured]


def header(records: list[dict[str, Any]], failed: list[dict[str, Any]], results: Path, output: Path) -> list[str]:
    first = records[0]
    train_sets = sorted({str(r["train_images"]) for r in records})
    test_sets = sorted({str(r["test_images"]) for r in records})
    machine = first.get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in first.get("versions", {}).items())
    rel = os.path.relpath(results, output.parent)
    loads = [r["load_average_1m"] for r in records if "load_average_1m" in r]
    load_text = f"; 1-minute load average while measuring: {min(loads):.2f} to {max(loads):.2f}" if loads else ""
    banner = []
    if first.get("plan") == "mini":
        banner = [
            "> **These figures come from the mini plan** (a few thousand images, one epoch, 32 px): it proves that "
            "every command runs and measures nothing worth choosing by. The real figures come from "
            "`edge-classifier-sweep` (all of Fashion-MNIST) followed by `edge-classifier-report`.",
            "",
        ]
    missing = planned_but_missing(records, failed)
    if missing:
        banner = [
            f"> **Partial: {len(missing)} variant{'s' * (len(missing) > 1)} of the sweep's plan not measured yet** "
            f"({', '.join(missing)}). "
            "`edge-classifier-sweep` resumes where it stopped; the rule below chose among the measured rows only.",
            "",
        ]
    return [
        "# Model optimization report",
        "",
        *banner,
        f"Generated by `edge-classifier-report` from [{rel}]({rel}) (written by `edge-classifier-sweep`, "
        f"plan `{first.get('plan', '?')}`); do not edit by hand. {len(records)} variants, each built by "
        "`edge-classifier-build` on the same data and seed and measured through ai-edge-litert, the daemon's "
        "interpreter.",
        "",
        f"- Data: Fashion-MNIST, {' / '.join(train_sets)} training and {' / '.join(test_sets)} test images; "
        "accuracy is the .tflite's through the daemon's own preprocessing, one image at a time.",
        "- Δ vs float: the .tflite's accuracy minus the float Keras model's of the same training, taken before "
        "pruning or QAT (so a pruned row's Δ includes what pruning cost).",
        f"- Latency: single-image invoke, p50/p95 over {sections_runs(first)} runs after a warm-up, on "
        f"{machine.get('cpu', 'this machine')} ({machine.get('cpus', '?')} cores){load_text}; training time on the "
        "same machine.",
        f"- Versions: {versions}.",
        "",
    ]


def sections_runs(record: dict[str, Any]) -> int:
    return int(record["latency_ms"]["1t"]["runs"])


def render(results: Path, output: Path, plots_dir: Path, rule: Rule) -> Path:
    """Write OUTPUT and the PNGs under PLOTS_DIR from RESULTS; returns OUTPUT."""
    from . import plots

    records, failed = latest(read_results(results))
    if not records:
        raise SystemExit(f"error: {results} has no successful variant")
    chosen = choose(records, rule)

    def link(path: Path) -> str:
        return os.path.relpath(path, output.parent)

    latency_png = plots.tradeoff_plot(
        records, latency_p50, "single-image latency p50, 1 thread, XNNPACK (ms)", "Accuracy vs latency", chosen,
        plots_dir / "accuracy-latency.png", log_x=True,
    )  # fmt: skip
    size_png = plots.tradeoff_plot(
        records, lambda r: r["size_bytes"] / 1000, ".tflite size (kB)", "Accuracy vs size", chosen,
        plots_dir / "accuracy-size.png", log_x=True,
    )  # fmt: skip
    lines = [*header(records, failed, results, output), *selection_lines(records, chosen, rule), "## All variants", ""]
    lines += [*results_table(records, chosen), ""]
    lines += [
        "## Plots",
        "",
        "Each point is a variant, numbered as in the table above (colour: what it demonstrates; marker: "
        "quantization); the dashed line is the Pareto front over all variants; the red ring is the chosen model.",
        "",
        f"![accuracy vs latency]({link(latency_png)})",
        "",
        f"![accuracy vs size]({link(size_png)})",
        "",
    ]
    if chosen is not None:
        confusion_png = plots.confusion_plot(chosen, plots_dir / "confusion-chosen.png")
        lines += [f"Confusion matrix of {chosen['variant']}:", "", f"![confusion matrix]({link(confusion_png)})", ""]
    lines += sections.quantization_section(records)
    lines += sections.pruning_section(records)
    lines += sections.training_section(records)
    lines += sections.distillation_section(records)
    lines += width_resolution_section(records)
    lines += mobilenetv3_section(records, failed)
    lines += sections.folding_section(records)
    lines += sections.flattening_section(pareto_front([r for r in records if r["full_int8"]], latency_p50), records)
    lines += levers_section(records)
    if failed:
        lines += ["## Failed variants", ""]
        lines += [f"- {f['variant']}: {f['error']}" for f in failed]
        lines.append("")
    real_photos = results.parent / REAL_PHOTOS  # the real-photo builds' records, collected beside the sweep's
    if real_photos.is_file():
        lines += real_photos_section(read_results(real_photos))
    retrieval = results.parent / RETRIEVAL  # the visual-search measurement (edge_classifier_build.retrieval)
    if retrieval.is_file():
        lines += retrieval_section(json.loads(retrieval.read_text(encoding="utf-8")))
    kshot = results.parent / KSHOT  # the on-device learning measurement (edge_classifier_build.kshot)
    if kshot.is_file():
        lines += kshot_section(json.loads(kshot.read_text(encoding="utf-8")))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return output


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="edge-classifier-report", description=__doc__)
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the sweep's JSON-lines file")
    p.add_argument("--output", type=Path, default=MODELS_DIR / "REPORT.md")
    p.add_argument("--plots-dir", type=Path, help="where the PNGs go (default: beside the results file)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.results.is_file():
        print(f"error: {args.results} does not exist; run edge-classifier-sweep first", file=sys.stderr)
        return 2
    output = render(args.results, args.output, args.plots_dir or args.results.parent, Rule())
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
