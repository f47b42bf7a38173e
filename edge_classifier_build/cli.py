"""`edge-classifier-build`: train a MobileNet, convert it (full int8 by default), evaluate and package it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from edge_classifier.errors import EdgeClassifierError

from . import pipeline
from .build_options import PROGRAM, BuildOptions
from .data import FASHION_DIR
from .options import ARCHITECTURES, add_optimization_arguments
from .paths import MODELS_DIR

logger = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> BuildOptions:
    """The checked options; argparse exits with a usage error (status 2) on a bad one."""
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__)
    src = p.add_argument_group("data")
    src.add_argument("--image-dir", type=Path, help="train on DIR/<label>/*.jpg|png instead of Fashion-MNIST")
    src.add_argument("--data-dir", type=Path, default=FASHION_DIR, help="folder with the four Fashion-MNIST .gz files")
    src.add_argument("--val-fraction", type=float, default=0.2, help="validation share per class (--image-dir)")
    src.add_argument(
        "--val-dir", type=Path, help="validate on DIR/<label>/* (same class folders as --image-dir) instead of a split"
    )
    src.add_argument(
        "--label-names",
        help="comma-separated labels for the model, one per class folder in sorted order (default: the folder names)",
    )
    src.add_argument("--train-limit", type=int, help="use at most N training images (smoke builds)")
    src.add_argument("--test-limit", type=int, help="evaluate on at most N test images (smoke builds)")
    m = p.add_argument_group("model")
    m.add_argument("--architecture", choices=ARCHITECTURES, default="mobilenetv2", help="backbone")
    m.add_argument("--alpha", type=float, default=0.35, help="width multiplier")
    m.add_argument("--resolution", type=int, default=96, help="square input size in pixels (>= 32)")
    m.add_argument(
        "--weights",
        default="none",
        help="none (from scratch), imagenet, a Keras weights file, or a MobileNetV2 1.0 .tflite to transplant",
    )
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=15)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--learning-rate", type=float, default=2e-3)
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--dropout", type=float, default=0.2)
    t.add_argument("--no-augment", action="store_true", help="no augmentation at all")
    t.add_argument(
        "--augmentation",
        choices=("shift", "camera"),
        default="shift",
        help="shift: random flips and shifts (Fashion-MNIST); camera: random resized crop, flip, rotation, "
        "colour jitter and blur (real photos)",
    )
    t.add_argument(
        "--negatives",
        type=int,
        default=0,
        help="add N synthetic scenes with no garment, trained towards the uniform distribution (outlier exposure)",
    )
    t.add_argument(
        "--head-epochs", type=int, default=0, help="with --weights: epochs of a linear probe before fine-tuning"
    )
    t.add_argument(
        "--random-erasing",
        type=float,
        default=0.0,
        metavar="P",
        help="erase a random rectangle of each training image with probability P (default 0: off)",
    )
    t.add_argument("--bn-momentum", type=float, help="batch-norm moving-average momentum (short runs: 0.9)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument(
        "--nondeterministic",
        action="store_true",
        help="let TensorFlow use non-deterministic kernels: a rerun then gives slightly different weights",
    )
    add_optimization_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--name", default="fashion-mobilenetv2")
    o.add_argument("--model-version", default="1.0.0")
    o.add_argument("--output-dir", type=Path, default=MODELS_DIR)
    o.add_argument("--calibration-images", type=int, default=500, help="representative images for int8 calibration")
    o.add_argument("--selftest-per-class", type=int, default=1)
    o.add_argument("--float-twin", type=Path, help="also write the float32 .tflite here (for benchmarks)")
    o.add_argument("--quiet", action="store_true", help="no Keras progress bars")
    o.add_argument("--keras-cache", type=Path, help="reuse the trained float Keras model in FILE, or save it there")
    o.add_argument("--record", type=Path, help="also write every measurement of this build to FILE (JSON)")
    o.add_argument("--latency-runs", type=int, default=200, help="single-image invokes per latency configuration")
    o.add_argument("--fold-check-images", type=int, default=100, help="test images for the batch-norm folding check")
    o.add_argument(
        "--eval-dir",
        type=Path,
        help="also evaluate the model, as `edge-classifier classify` runs it, on DIR/<class folder>/* "
        "(class folders in sorted order = labels) and record it in the manifest",
    )
    o.add_argument(
        "--transplant-check-images",
        type=int,
        default=200,
        help="with --weights FILE.tflite: training images on which the Keras rebuild must agree with the file",
    )
    o.add_argument(
        "--embedding-output",
        action="store_true",
        help="also give the pooled feature vector (the global average pooling that feeds the head) as a second "
        "output of the same model, named in the manifest's `outputs` (the daemon L2-normalises it)",
    )
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "calibration_images", "selftest_per_class", "latency_runs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("train_limit", "test_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.transplant_check_images < 0:
        p.error(f"--transplant-check-images must be 0 (no check) or more, got {args.transplant_check_images}")
    if args.eval_dir is not None and not args.eval_dir.is_dir():
        p.error(f"--eval-dir {args.eval_dir} is not a folder")
    if args.fold_check_images < 0:
        p.error(f"--fold-check-images must be 0 (no check) or more, got {args.fold_check_images}")
    if args.val_dir is not None and args.image_dir is None:
        p.error("--val-dir goes with --image-dir")
    if not 0.0 < args.val_fraction < 1.0:
        p.error(f"--val-fraction must be between 0 and 1 (exclusive), got {args.val_fraction}")
    unwritable = unwritable_output(args)
    if unwritable:
        p.error(unwritable)
    return BuildOptions.from_namespace(args, argv)


def unwritable_output(args: argparse.Namespace) -> str | None:
    """Why an output path cannot be written, found before training rather than after it."""
    folders = [("--output-dir", args.output_dir)]
    for option in ("float_twin", "keras_cache", "record"):
        path = getattr(args, option)
        if path is not None:
            folders.append((f"--{option.replace('_', '-')}", path.parent))
    for option, folder in folders:
        existing = next((f for f in (folder, *folder.parents) if f.exists()), None)
        if existing is None or not existing.is_dir():
            return f"{option}: {existing or folder} is not a folder"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{option}: cannot write in {existing}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.monotonic()
    try:
        summary = pipeline.build(options)
    except EdgeClassifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        # convert imports TensorFlow: only looked up once something has failed.
        from .convert import ConversionError

        if isinstance(exc, ConversionError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    print(f"done in {time.monotonic() - started:.0f}s: {summary.text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
