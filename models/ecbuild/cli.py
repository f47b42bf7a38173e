"""`python models/build.py`: train a MobileNetV2, convert it to full int8, evaluate and package it."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_classifier.errors import EdgeClassifierError, InputError

from .data import FASHION_DIR, load_fashion_mnist, load_image_folder, subsample, to_pixels

logger = logging.getLogger("ecbuild")
STAGES = 6


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="build.py", description=__doc__)
    src = p.add_argument_group("data")
    src.add_argument("--image-dir", type=Path, help="train on DIR/<label>/*.jpg|png instead of Fashion-MNIST")
    src.add_argument("--data-dir", type=Path, default=FASHION_DIR, help="folder with the four Fashion-MNIST .gz files")
    src.add_argument("--val-fraction", type=float, default=0.2, help="validation share per class (--image-dir)")
    src.add_argument("--train-limit", type=int, help="use at most N training images (smoke builds)")
    src.add_argument("--test-limit", type=int, help="evaluate on at most N test images (smoke builds)")
    m = p.add_argument_group("model")
    m.add_argument("--alpha", type=float, default=0.35, help="MobileNetV2 width multiplier")
    m.add_argument("--resolution", type=int, default=96, help="square input size in pixels (>= 32)")
    m.add_argument("--weights", default="none", help="none (from scratch), imagenet, or a weights file")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=15)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--learning-rate", type=float, default=2e-3)
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--dropout", type=float, default=0.2)
    t.add_argument("--no-augment", action="store_true", help="no random flips and shifts")
    t.add_argument("--bn-momentum", type=float, help="batch-norm moving-average momentum (short runs: 0.9)")
    t.add_argument("--seed", type=int, default=1)
    o = p.add_argument_group("output")
    o.add_argument("--name", default="fashion-mobilenetv2")
    o.add_argument("--model-version", default="1.0.0")
    o.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent.parent)
    o.add_argument("--calibration-images", type=int, default=500, help="representative images for int8 calibration")
    o.add_argument("--selftest-per-class", type=int, default=1)
    o.add_argument("--float-twin", type=Path, help="also write the float32 .tflite here (for benchmarks)")
    o.add_argument("--quiet", action="store_true", help="no Keras progress bars")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "calibration_images", "selftest_per_class"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def stage(number: int, text: str) -> None:
    print(f"[{number}/{STAGES}] {text}", flush=True)


def build(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    # TensorFlow is imported here, after argument checks, so that bad arguments fail fast.
    from edge_classifier.preprocess import Preprocessing

    from .train import TrainOptions, check_options

    options = TrainOptions(
        alpha=args.alpha,
        resolution=args.resolution,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        label_smoothing=args.label_smoothing,
        dropout=args.dropout,
        weights=args.weights,
        seed=args.seed,
        augment=not args.no_augment,
        bn_momentum=args.bn_momentum,
    )
    check_options(options)
    spec = Preprocessing(color_order="RGB", crop="center", interpolation="area")
    size = (args.resolution, args.resolution)

    stage(1, "loading data")
    if args.image_dir:
        data = load_image_folder(args.image_dir, args.val_fraction, args.seed)
    else:
        data = load_fashion_mnist(args.data_dir)
    train_frames, train_labels = subsample(data.train_bgr, data.train_labels, args.train_limit, args.seed)
    test_frames, test_labels = subsample(data.test_bgr, data.test_labels, args.test_limit, args.seed + 1)
    print(
        f"      {data.description}: {len(train_labels)} train, {len(test_labels)} test images, "
        f"{len(data.labels)} classes"
    )

    stage(
        2,
        f"preparing images like camera frames ({spec.crop} crop, {spec.interpolation} resize "
        f"to {size[0]}x{size[1]}, RGB)",
    )
    train_pixels = to_pixels(train_frames, spec, size)
    test_pixels = to_pixels(test_frames, spec, size)

    import tensorflow as tf

    from . import convert, evaluate, package, train

    tf.get_logger().setLevel("ERROR")
    stage(3, f"training MobileNetV2 alpha={options.alpha} at {options.resolution}px for {options.epochs} epochs")
    model = train.build_model(options, len(data.labels), spec.channels)
    fit = train.train(model, train_pixels, train_labels, spec, options, verbose=0 if args.quiet else 2)

    stage(4, f"converting to full int8 ({args.calibration_images} calibration images)")
    calibration = train_pixels[:: max(1, len(train_pixels) // args.calibration_images)][: args.calibration_images]
    tflite_bytes = convert.convert_int8(model, calibration, spec)
    tflite_path, _ = package.write_model(args.output_dir, args.name, tflite_bytes, data.labels)
    ops = convert.check_full_int8(tflite_path, model)
    if args.float_twin:
        args.float_twin.parent.mkdir(parents=True, exist_ok=True)
        args.float_twin.write_bytes(convert.convert_float(model))

    stage(5, f"evaluating float and int8 on {len(test_labels)} test images")
    test_ds = train.make_dataset(test_pixels, test_labels, spec, 256, training=False, seed=0)
    float_eval = evaluate.evaluate_keras(model, test_ds, test_labels, data.labels)
    int8_eval, _ = evaluate.evaluate_tflite(tflite_path, test_pixels, test_labels, data.labels, spec)

    stage(6, f"writing {args.name}.tflite, .labels.txt, .json and self-test images to {args.output_dir}")
    from edge_classifier.interpreter import io_specs, load_interpreter

    input_spec, output_spec = io_specs(load_interpreter(tflite_path))
    io = {
        key: {
            "shape": list(s.shape),
            "dtype": s.quant.dtype.name,
            "scale": s.quant.scale,
            "zero_point": s.quant.zero_point,
        }
        for key, s in (("input", input_spec), ("output", output_spec))
    }
    selftest = package.write_selftest(
        args.output_dir, args.name, test_frames, test_labels, data.labels, tflite_path, spec, args.selftest_per_class
    )
    sections = {
        "metrics": {
            "float_accuracy": float_eval["accuracy"],
            "int8_accuracy": int8_eval["accuracy"],
            "float": float_eval,
            "int8": int8_eval,
            "test_set": data.description,
        },
        "training": {
            "architecture": "MobileNetV2",
            "keras": "tf_keras",
            **{k: v for k, v in vars(options).items()},
            "train_images": len(train_labels),
            "seconds": round(fit["seconds"], 1),
            "final_train_accuracy": round(100 * fit["history"]["accuracy"][-1], 2),
        },
    }
    command = "python models/build.py " + shlex.join(argv) if argv else "python models/build.py"
    manifest_path = package.write_manifest(
        args.output_dir, args.name, args.model_version, tflite_path, data.labels, io, spec, sections,
        {"op_counts": ops, "calibration_images": len(calibration), "batch_norm_folded": True}, selftest, command,
    )  # fmt: skip
    return {
        "manifest": manifest_path,
        "float_accuracy": float_eval["accuracy"],
        "int8_accuracy": int8_eval["accuracy"],
        "size": tflite_path.stat().st_size,
        "latency": int8_eval["latency_ms"],
        "seconds": fit["seconds"],
        "selftest": len(selftest),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.monotonic()
    try:
        summary = build(args, argv)
    except EdgeClassifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        from .convert import ConversionError

        if isinstance(exc, ConversionError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    print(
        f"done in {time.monotonic() - started:.0f}s: float {summary['float_accuracy']:.2f}%, "
        f"int8 {summary['int8_accuracy']:.2f}% "
        f"({summary['int8_accuracy'] - summary['float_accuracy']:+.2f} points), "
        f"{summary['size'] / 1024:.0f} KiB, int8 latency p50 {summary['latency']['p50']} ms, "
        f"{summary['selftest']} self-test images -> {summary['manifest']}"
    )
    return 0


__all__ = ["InputError", "main", "tempfile"]
