"""`edge-classifier-sweep`: build every variant of a plan on the same data and seed, one JSON line per variant.

Each variant is one `edge-classifier-build` run in a subprocess (a fresh TensorFlow each time), with
`--record` for its measurements. Variants that share a trained float model share a
`--keras-cache` file, so float32, dynamic-range, int8, QAT and pruned variants of one network are
trained once. The results file is appended to after every variant; a variant already in it is
skipped, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paths import MODELS_DIR

logger = logging.getLogger(__name__)

# The build's module rather than its console script: the subprocess runs in this interpreter, installed or not.
BUILD_MODULE = "edge_classifier_build.cli"
DEFAULT_RESULTS = MODELS_DIR / "report" / "results.jsonl"
DEFAULT_WORK = MODELS_DIR / "work" / "sweep"


@dataclass(frozen=True)
class Variant:
    """One build of the sweep: its name, what it demonstrates, its build options and shared files."""

    name: str
    group: str  # quantization, architecture, training, pruning or distillation
    args: tuple[str, ...]
    cache: str  # stem of the --keras-cache file (variants with the same training share it)
    teacher: str | None = None  # stem of the teacher's cache file


def network(arch: str, alpha: float, resolution: int) -> tuple[str, tuple[str, ...]]:
    """Short name and build options of one backbone configuration."""
    short = "v2" if arch == "mobilenetv2" else "v3s"
    name = f"{short}-a{round(alpha * 100):03d}-r{resolution}"
    return name, ("--architecture", arch, "--alpha", str(alpha), "--resolution", str(resolution))


def quantized(base: str, args: tuple[str, ...], group: str, quantization: str, cache: str | None = None) -> Variant:
    return Variant(f"{base}-{quantization}", group, (*args, "--quantization", quantization), cache or base)


def pruned(base: str, args: tuple[str, ...], sparsity: float, quantization: str, epochs: int) -> Variant:
    extra = ("--prune-sparsity", str(sparsity), "--prune-epochs", str(epochs), "--quantization", quantization)
    return Variant(f"{base}-prune{round(sparsity * 100)}-{quantization}", "pruning", (*args, *extra), base)


def distilled(
    base: str, args: tuple[str, ...], teacher: str, teacher_alpha: float, alpha: float, temperature: float
) -> Variant:
    extra = (
        "--teacher-alpha", str(teacher_alpha), "--distill-alpha", str(alpha), "--distill-temperature", str(temperature),
    )  # fmt: skip
    name = f"{base}-distill-a{round(alpha * 10):02d}-t{temperature:g}-int8"
    return Variant(name, "distillation", (*args, *extra), name, teacher=teacher)


def full_plan(qat_epochs: int, prune_epochs: int) -> tuple[tuple[str, ...], list[Variant]]:
    """Every technique on all of Fashion-MNIST (60,000 training, 10,000 test images)."""
    common = ("--latency-runs", "200", "--fold-check-images", "100", "--qat-epochs", str(qat_epochs))
    ref, ref_args = network("mobilenetv2", 0.35, 96)  # the current default build
    variants = [quantized(ref, ref_args, "quantization", q) for q in ("int8", "float32", "dynamic", "qat")]
    # QAT fine-tunes a converged model: the same recipe at a tenth of the learning rate.
    low_lr = ("--quantization", "qat", "--qat-learning-rate", "2e-05")
    variants.append(Variant(f"{ref}-qat-lr2e-05", "quantization", (*ref_args, *low_lr), ref))
    # The training budget: the same network trained 60 epochs instead of 15 (the default model's build),
    # then the same 60 epochs with random erasing added to the augmentation.
    long_run = (*ref_args, "--epochs", "60", "--quantization", "int8")
    variants.append(Variant(f"{ref}-e60-int8", "training", long_run, f"{ref}-e60"))
    erasing = (*ref_args, "--epochs", "60", "--random-erasing", "0.5", "--quantization", "int8")
    variants.append(Variant(f"{ref}-e60-re50-int8", "training", erasing, f"{ref}-e60-re50"))
    for arch, alpha, resolution in (
        ("mobilenetv2", 0.35, 32), ("mobilenetv2", 0.35, 48), ("mobilenetv2", 0.35, 64),
        ("mobilenetv2", 0.5, 64), ("mobilenetv2", 0.75, 64), ("mobilenetv2", 1.0, 64), ("mobilenetv2", 0.5, 96),
        ("mobilenetv3small", 0.75, 64), ("mobilenetv3small", 1.0, 64), ("mobilenetv3small", 0.75, 96),
    ):  # fmt: skip
        name, args = network(arch, alpha, resolution)
        variants.append(quantized(name, args, "architecture", "int8"))
    v3, v3_args = network("mobilenetv3small", 0.75, 64)
    variants.append(quantized(v3, v3_args, "quantization", "float32"))
    variants.append(quantized(v3, v3_args, "quantization", "qat"))  # expected to fail: tfmot and hard-swish
    variants += [
        pruned(ref, ref_args, 0.5, "int8", prune_epochs),
        pruned(ref, ref_args, 0.75, "int8", prune_epochs),
        pruned(ref, ref_args, 0.5, "float32", prune_epochs),
        pruned(ref, ref_args, 0.5, "qat", prune_epochs),
    ]
    student, student_args = network("mobilenetv2", 0.35, 64)
    teacher, _ = network("mobilenetv2", 1.0, 64)
    variants += [
        distilled(student, student_args, teacher, 1.0, 0.5, 4.0),
        distilled(student, student_args, teacher, 1.0, 0.2, 2.0),
    ]
    # A cheaper teacher: the 60-epoch 96 px network above, loaded from its cache (same width, more
    # resolution and training), teaching the 64 px student.
    soft = ("--distill-alpha", "0.5", "--distill-temperature", "4.0")
    name = f"{student}-distill-e60-a05-t4-int8"
    variants.append(Variant(name, "distillation", (*student_args, *soft), name, teacher=f"{ref}-e60"))
    return common, variants


def mini_plan(qat_epochs: int, prune_epochs: int) -> tuple[tuple[str, ...], list[Variant]]:
    """A few techniques on a few thousand images at 32 px for one epoch: proves the commands, measures nothing."""
    common = (
        "--train-limit", "2000", "--test-limit", "500", "--bn-momentum", "0.9", "--latency-runs", "20",
        "--fold-check-images", "20", "--calibration-images", "100", "--qat-epochs", str(qat_epochs),
    )  # fmt: skip
    base, args = network("mobilenetv2", 0.35, 32)
    teacher, _ = network("mobilenetv2", 0.5, 32)
    return common, [
        quantized(base, args, "quantization", "int8"),
        quantized(base, args, "quantization", "float32"),
        quantized(base, args, "quantization", "qat"),
        pruned(base, args, 0.5, "int8", prune_epochs),
        distilled(base, args, teacher, 0.5, 0.5, 4.0),
    ]


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every line of a results file (none if it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def done_names(path: Path, plan: str) -> set[str]:
    """Variants of PLAN that RESULTS already holds a successful line for."""
    return {r["variant"] for r in read_results(path) if "error" not in r and r.get("plan") == plan}


def command(
    variant: Variant, common: tuple[str, ...], epochs: int, work: Path, python: str = sys.executable
) -> list[str]:
    """The build command of one variant (run from the repository root)."""
    cmd = [
        python, "-m", BUILD_MODULE, "--quiet", *common, "--epochs", str(epochs), *variant.args,
        "--name", variant.name, "--output-dir", str(work / "variants" / variant.name),
        "--record", str(work / "records" / f"{variant.name}.json"),
        "--keras-cache", str(work / "cache" / f"{variant.cache}.keras"),
    ]  # fmt: skip
    if variant.teacher:
        cmd += ["--teacher", str(work / "cache" / f"{variant.teacher}.keras")]
    return cmd


def run_variant(variant: Variant, cmd: list[str], work: Path, plan: str, timeout: float) -> dict[str, Any]:
    """Build one variant; its record plus sweep fields, or an error line naming why it failed."""
    log_path = work / "logs" / f"{variant.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        try:
            result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
            returncode = result.returncode
        except subprocess.TimeoutExpired:
            returncode = -1
    head = {"variant": variant.name, "group": variant.group, "plan": plan}
    wall = round(time.monotonic() - started, 1)
    record_path = work / "records" / f"{variant.name}.json"
    if returncode != 0 or not record_path.is_file():
        lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        reason = "timed out" if returncode == -1 else (lines[-1] if lines else f"exit code {returncode}")
        return {**head, "error": reason, "log": str(log_path), "wall_seconds": wall}
    return {**head, **json.loads(record_path.read_text(encoding="utf-8")), "wall_seconds": wall}


def sweep(
    variants: list[Variant],
    common: tuple[str, ...],
    epochs: int,
    plan: str,
    results: Path,
    work: Path,
    timeout: float,
) -> list[dict[str, Any]]:
    """Run the variants not yet in RESULTS, appending one line after each."""
    done = done_names(results, plan)
    results.parent.mkdir(parents=True, exist_ok=True)
    appended = []
    for number, variant in enumerate(variants, 1):
        if variant.name in done:
            print(f"[{number}/{len(variants)}] {variant.name}: already in {results}, skipped", flush=True)
            continue
        print(f"[{number}/{len(variants)}] {variant.name} ({variant.group})", flush=True)
        (work / "records" / f"{variant.name}.json").unlink(missing_ok=True)
        line = run_variant(variant, command(variant, common, epochs, work), work, plan, timeout)
        with results.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        appended.append(line)
        if "error" in line:
            print(f"      failed: {line['error']} (log: {line['log']})", flush=True)
        else:
            print(f"      {line['accuracy']:.2f}%, {line['size_bytes'] / 1000:.0f} kB, "
                  f"p50 {line['latency_ms']['1t']['p50']} ms, {line['wall_seconds']:.0f} s", flush=True)  # fmt: skip
    return appended


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="edge-classifier-sweep", description=__doc__.splitlines()[0])
    p.add_argument("--plan", choices=("full", "mini"), default="full", help="full: all data; mini: the CI check")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON-lines file appended to")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK, help="models, caches, records and logs")
    p.add_argument("--epochs", type=int, help="training epochs of every network (full: 15, mini: 1)")
    p.add_argument("--qat-epochs", type=int, help="QAT fine-tuning epochs (full: 2, mini: 1)")
    p.add_argument("--prune-epochs", type=int, help="pruning fine-tuning epochs (full: 2, mini: 1)")
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants, in this order")
    p.add_argument("--list", action="store_true", help="print the variants and their commands, run nothing")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds one variant may take")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    full = args.plan == "full"
    epochs = args.epochs or (15 if full else 1)
    make_plan = full_plan if full else mini_plan
    common, variants = make_plan(args.qat_epochs or (2 if full else 1), args.prune_epochs or (2 if full else 1))
    if args.only:
        unknown = set(args.only) - {v.name for v in variants}
        if unknown:
            print(f"error: no variant named {', '.join(sorted(unknown))} in the {args.plan} plan", file=sys.stderr)
            return 2
        by_name = {v.name: v for v in variants}
        variants = [by_name[name] for name in dict.fromkeys(args.only)]
    if args.list:
        for variant in variants:
            print(f"{variant.name} ({variant.group}): {' '.join(command(variant, common, epochs, args.work_dir))}")
        return 0
    started = time.monotonic()
    lines = sweep(variants, common, epochs, args.plan, args.results, args.work_dir, args.timeout)
    failed = [line["variant"] for line in lines if "error" in line]
    print(f"done in {time.monotonic() - started:.0f}s: {len(lines)} variants run, {len(failed)} failed "
          f"({', '.join(failed) or 'none'}) -> {args.results}; render with: edge-classifier-report "
          f"--results {args.results}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
