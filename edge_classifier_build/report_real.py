"""The report's real-photo section: MobileNetV2 transferred from ImageNet to garment photos, from records alone."""

from __future__ import annotations

from typing import Any

from .rebuild import rebuild_command
from .report_real_confusion import confusion_lines
from .report_real_rows import distilled, epochs_text, rows, transplanted, weights_text
from .report_sections import kb, lat, p50
from .selection import Rule, choose

RESULTS_NAME = "real-photos.jsonl"  # beside the sweep's results file; one --record JSON per line
RULE = Rule(max_size=4_000_000)  # the study's rule with room for MobileNetV2 1.0 (about 2.7 MB in int8)
GOAL_ACCURACY = 92.0  # validation top-1 of the int8 model
FROZEN_FLOOR = 88.3  # a linear probe on frozen ImageNet features reached this: fine-tuning has to beat it
GOAL_MAX_DROP = 0.5  # points lost by int8 against the float model
REFERENCE = "a100-r224"  # the pretrained file's own network: the latency bar
CURVE_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SOURCE = "Coral's `tf2_mobilenet_v2_1.0_224_ptq.tflite` (ImageNet, Apache-2.0)"


def joined_counts(records: list[dict[str, Any]], key: str) -> str:
    return " / ".join(f"{n:,}" for n in sorted({int(r[key]) for r in records}))


def intro(table: list[dict[str, Any]]) -> list[str]:
    return [
        "The default model is now trained on real garment photos: clothing-dataset-small (CC0), 10 classes, "
        f"{joined_counts(table, 'train_images')} training images (the 3,068 photos, plus 300 synthetic scenes with "
        f"no garment in the rows marked -oe) and {joined_counts(table, 'test_images')} validation "
        f"photos. Its backbone starts from {SOURCE}: its weights are transplanted into Keras layer by layer "
        "(the int8 convolution and depthwise kernels dequantized; the bias the converter folded each batch norm "
        "into becomes that batch norm's beta). A linear probe is trained on the pooled features first, then the "
        "whole network is fine-tuned with its batch norms frozen under camera-like augmentation (random resized "
        "crop, flip, rotation, colour jitter, blur), and the result is converted by full-int8 post-training "
        "quantization. Accuracy is the int8 .tflite's on the validation photos through the daemon's own "
        "preprocessing, one photo at a time. The recipes and the choice below were made on these validation "
        "photos, so they are not an independent test: new photos will likely score somewhat lower.",
        "",
    ]


def transplant_lines(table: list[dict[str, Any]]) -> list[str]:
    """One sentence per distinct check (the rows normally share one: same file, same photos)."""
    checks: dict[tuple[int, ...], list[str]] = {}
    for r in table:
        c = r.get("transplant_check")
        if c:
            # Checks made before the decided-images rule count every image as decided.
            key = (c["agreed"], c["images"], c.get("decided_agreed", c["agreed"]), c.get("decided", c["images"]),
                   c["resolution"], c["classes"])  # fmt: skip
            checks.setdefault(key, []).append(r["variant"])
    if not checks:
        return ["No row records a transplant check.", ""]
    lines = []
    for (agreed, images, decided_agreed, decided, resolution, classes), names in checks.items():
        lines.append(
            f"Transplant check ({', '.join(names)}): the Keras float rebuild and the TFLite pick the same ImageNet "
            f"class ({classes:,} classes, {resolution} px) for {agreed} of {images} training photos spread over the "
            f"garment classes, and for {decided_agreed} of the {decided} where the TFLite's top-1 leads its "
            f"runner-up by at least 0.02 ({100.0 * decided_agreed / max(decided, 1):.1f}%; the build requires 95%). "
            "The rest are near-ties among ImageNet's classes (garments are not among them) that the file's own "
            "int8 rounding decides."
        )
    return [*lines, ""]


def table_lines(table: list[dict[str, Any]], chosen: dict[str, Any] | None) -> list[str]:
    lines = [
        "| # | Variant | Network | Weights | Epochs | int8 % | float % | Δ | Size kB | gzip kB "
        "| 1 thread p50/p95 ms | 2 threads p50 ms | Training s |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, r in enumerate(table, start=1):
        name = f"**{r['variant']}**" if chosen is not None and r["variant"] == chosen["variant"] else r["variant"]
        lines.append(
            f"| {number} | {name} | MobileNetV2 α{r['alpha']:g}, {r['resolution']} px | {weights_text(r, table)} "
            f"| {epochs_text(r)} | {r['accuracy']:.2f} | {r['float_accuracy']:.2f} | {r['accuracy_delta']:+.2f} "
            f"| {kb(r['size_bytes'])} | {kb(r['size_gzip_bytes'])} | {lat(r)} | {p50(r, '2t'):.3f} "
            f"| {r['train_seconds']:.0f} |"
        )
    first = table[0]
    machine = first.get("machine", {})
    return [
        *lines,
        "",
        f"Δ: int8 minus float Keras accuracy. Latency: single-image invoke with XNNPACK, over "
        f"{first['latency_ms']['1t']['runs']} runs after a warm-up, on {machine.get('cpu', 'this machine')} "
        f"({machine.get('cpus', '?')} cores), the machine that trained them.",
        "",
    ]


def targets(chosen: dict[str, Any], table: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(target, the chosen row's figure, met) for each target of the real-photo model."""
    reference = next((r for r in table if r["variant"] == REFERENCE), None)
    if reference is None:
        speed = ("not measured: no a100-r224 row", False)
    elif reference["variant"] == chosen["variant"]:
        speed = (f"{p50(chosen):.3f} ms: it is that network", True)
    else:
        speed = (f"{p50(chosen):.3f} ms against {p50(reference):.3f} ms", p50(chosen) <= p50(reference))
    return [
        (f"top-1 ≥ {GOAL_ACCURACY:g}% (frozen-feature floor {FROZEN_FLOOR:g}%)", f"{chosen['accuracy']:.2f}%",
         chosen["accuracy"] >= GOAL_ACCURACY),
        (f"int8 drop ≤ {GOAL_MAX_DROP:g} points", f"{chosen['accuracy_delta']:+.2f}",
         chosen["accuracy_delta"] >= -GOAL_MAX_DROP),
        ("size ≤ 4 MB", f"{chosen['size_bytes']:,} bytes", chosen["size_bytes"] <= RULE.max_size),
        ("1 thread p50 no worse than MobileNetV2 1.0 at 224 px (a100-r224)", *speed),
    ]  # fmt: skip


def choice_lines(table: list[dict[str, Any]], chosen: dict[str, Any] | None) -> list[str]:
    lines = [
        "### The real-photo default",
        "",
        f"Rule (the study's, with a 4 MB budget): among the full-int8 rows whose .tflite is at most "
        f"{RULE.max_size:,} bytes, find the best validation accuracy; the default is the fastest of those within "
        f"{RULE.max_gap:g} points of it (1 thread p50; p50s within {RULE.latency_tie:.0%} are a tie, won by the "
        "higher accuracy, then the smaller file).",
        "",
    ]
    if chosen is None:
        return [*lines, f"No full-int8 row is at most {RULE.max_size:,} bytes: the rule picks nothing.", ""]
    lines += [
        f"It picks **{chosen['variant']}**: {chosen['accuracy']:.2f}% int8, {chosen['size_bytes']:,} bytes, "
        f"{p50(chosen):.3f} ms p50 with 1 thread. Built by `{rebuild_command(chosen)}`.",
        "",
    ]
    photos = chosen.get("photos")
    if photos:
        lines += [
            f"Through `edge-classifier classify`'s path on the committed copies in `{photos['dir']}` "
            f"({photos['images']} photos, square-cropped): {photos['accuracy']:.2f}%.",
            "",
        ]
    lines += ["| Target | Figure | Met |", "|---|---|---|"]
    lines += [f"| {goal} | {figure} | {'yes' if met else '**no**'} |" for goal, figure, met in targets(chosen, table)]
    return [*lines, ""]


def open_set_lines(chosen: dict[str, Any]) -> list[str]:
    rejection = chosen.get("rejection")
    lines = ["### Open set", ""]
    if not rejection:
        return [*lines, f"{chosen['variant']} records no rejection threshold.", ""]
    threshold = rejection["min_score"]
    fallback = "" if rejection["met"] else " No threshold met both targets: this is the fallback."
    lines += [
        f"The daemon publishes a frame whose best score is below `min_score` as `unknown`. {chosen['variant']}'s "
        f"build chose min_score **{threshold:g}** by its rule: {rejection['rule']}.{fallback}",
        "",
        "| min_score | Kept % of validation | Accuracy of the kept % |",
        "|---:|---:|---:|",
    ]
    for point in rejection["curve"]:
        if point["threshold"] in CURVE_THRESHOLDS or point["threshold"] == threshold:
            mark = " (chosen)" if point["threshold"] == threshold else ""
            lines.append(f"| {point['threshold']:g}{mark} | {point['coverage']:.1f} | {point['accuracy']:.1f} |")
    scenes = rejection["empty_scenes"]
    if scenes:
        top = max(scenes, key=lambda s: s["score"])
        below = sum(s["score"] < threshold for s in scenes)
        lines += [
            "",
            f"Synthetic scenes with no garment (walls, an empty counter, noise, dark, overexposed): the highest "
            f"best score is {top['score']:.2f} ({top['scene']}, as {top['label']}); {below} of {len(scenes)} are "
            f"below {threshold:g} and become `unknown`.",
        ]
    return [*lines, ""]


def training_lines(table: list[dict[str, Any]]) -> list[str]:
    """Each row's training time is in the table; a teacher trained within a student's build is added here."""
    teachers = sum(float(r.get("teacher_seconds") or 0) for r in table)
    total = sum(float(r["train_seconds"]) for r in table) + teachers
    extra = f", including {teachers:.0f} s of teachers trained within a student's build" if teachers else ""
    return [
        "### Training time",
        "",
        f"Training s in the table is each row's own (probe, fine-tuning or distillation; a teacher loaded from a "
        f"file is charged to its own row): {total:,.0f} s ({total / 3600:.1f} h) for all {len(table)} rows{extra}.",
        "",
    ]


def student_lines(table: list[dict[str, Any]]) -> list[str]:
    """What the distilled students reached against the transplanted networks and the frozen-feature floor."""
    students = [r for r in table if distilled(r) and not transplanted(r)]
    if not students:
        return []
    lines = []
    for r in students:
        text = (
            f"The distilled student {r['variant']} (MobileNetV2 α{r['alpha']:g} at {r['resolution']} px, no pretrained "
            f"weights) reaches {r['accuracy']:.2f}%, far below the {FROZEN_FLOOR}% that frozen ImageNet features give "
            "with a linear head: a few thousand photos cannot teach a network its features from scratch, and the "
            "teacher's soft labels on the same photos do not supply them. A smaller real-photo model needs "
            "pretrained weights of its own width (the only pretrained file here is α1.0); until then the "
            "transplanted α1.0 at a smaller input is the way to trade accuracy for speed."
        )
        lines += [text, ""]
    return lines


def real_photos_section(records: list[dict[str, Any]]) -> list[str]:
    """The `## Real photos` section (Markdown lines) from the real-photo builds' records."""
    lines = ["## Real photos", ""]
    table = rows(records)
    if not table:
        return [*lines, f"No real-photo build is recorded in {RESULTS_NAME} yet.", ""]
    chosen = choose(table, RULE)
    lines += [*intro(table), *transplant_lines(table), *table_lines(table, chosen), *student_lines(table)]
    lines += choice_lines(table, chosen)
    if chosen is not None:
        lines += [*confusion_lines(chosen), *open_set_lines(chosen)]
    return [*lines, *training_lines(table)]
