"""One build, stage by stage: data, pixels, training (plain, distilled or cached), pruning, QAT, conversion,
checks, evaluation and the packaged model (and, with --record, every measurement as JSON)."""

from __future__ import annotations

import argparse
import logging
import shlex
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.errors import InputError
from edge_classifier.model.preprocess import Preprocessing

from .data import Dataset, load_fashion_mnist, load_image_folder, load_image_split, rename_labels, subsample, to_pixels
from .negatives import with_negatives
from .openset import calibrate_model
from .options import FULL_INT8_MODES, distilling

logger = logging.getLogger(__name__)
STAGES = 6


def stage(number: int, text: str) -> None:
    print(f"[{number}/{STAGES}] {text}", flush=True)


@dataclass
class Prepared:
    """The build's data, as frames and as model-sized pixels."""

    data: Dataset
    train_frames: Any
    train_labels: npt.NDArray[np.int64]
    test_frames: Any
    test_labels: npt.NDArray[np.int64]
    train_pixels: npt.NDArray[np.uint8]
    test_pixels: npt.NDArray[np.uint8]


def prepare(args: argparse.Namespace, spec: Preprocessing, size: tuple[int, int]) -> Prepared:
    """Stages 1 and 2: load, subsample with the seed, and run every image through the daemon's preprocessing."""
    stage(1, "loading data")
    if args.image_dir and args.val_dir:
        data = load_image_split(args.image_dir, args.val_dir)
    elif args.image_dir:
        data = load_image_folder(args.image_dir, args.val_fraction, args.seed)
    else:
        data = load_fashion_mnist(args.data_dir)
    if args.label_names:
        data = rename_labels(data, args.label_names)
    train_frames, train_labels = subsample(data.train_bgr, data.train_labels, args.train_limit, args.seed)
    test_frames, test_labels = subsample(data.test_bgr, data.test_labels, args.test_limit, args.seed + 1)
    if args.negatives:
        train_frames, train_labels = with_negatives(train_frames, train_labels, args.negatives, args.seed)
    print(
        f"      {data.description}: {len(train_labels)} train, {len(test_labels)} test images, "
        f"{len(data.labels)} classes"
    )
    stage(
        2,
        f"preparing images like camera frames ({spec.crop} crop, {spec.interpolation} resize "
        f"to {size[0]}x{size[1]}, RGB)",
    )
    # Camera augmentation crops its views out of a slightly larger square (camera_augment.py).
    train_size = size
    if args.augmentation == "camera" and not args.no_augment:
        from .camera_augment import source_size

        train_size = (source_size(size[0]), source_size(size[1]))
    return Prepared(
        data, train_frames, train_labels, test_frames, test_labels,
        to_pixels(train_frames, spec, train_size), to_pixels(test_frames, spec, size),
    )  # fmt: skip


def calibration_pixels(prepared: Prepared, count: int, size: tuple[int, int], spec: Preprocessing) -> Any:
    """COUNT training images spread over the set, at the model's input size, for int8 calibration."""
    step = max(1, len(prepared.train_pixels) // count)
    if prepared.train_pixels.shape[1:3] == size:
        return prepared.train_pixels[::step][:count]
    frames = prepared.train_frames[::step][:count]
    return to_pixels(frames, spec, size)


def check_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Every option checked before data is loaded; returns the option objects of the techniques used."""
    from . import distill, prune, qat, train

    options = train.TrainOptions(
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
        random_erasing=args.random_erasing,
        bn_momentum=args.bn_momentum,
        architecture=args.architecture,
        augmentation=args.augmentation,
        head_epochs=args.head_epochs,
        negatives=args.negatives,
    )
    train.check_options(options)
    chosen: dict[str, Any] = {"train": options, "prune": None, "qat": None, "distill": None}
    if args.prune_sparsity is not None:
        chosen["prune"] = prune.PruneOptions(args.prune_sparsity, args.prune_epochs, args.prune_learning_rate)
        prune.check_prune_options(chosen["prune"])
    if args.quantization == "qat":
        chosen["qat"] = qat.QatOptions(args.qat_epochs, args.qat_learning_rate)
        qat.check_qat_options(chosen["qat"], args.architecture)
    if distilling(args):
        chosen["distill"] = distill.DistillOptions(args.distill_alpha, args.distill_temperature)
        distill.check_distill_options(chosen["distill"])
        if args.teacher_alpha is None and not args.teacher.is_file():
            raise InputError(f"--teacher {args.teacher} does not exist; add --teacher-alpha to train one there")
        if args.teacher_alpha is not None:
            from .trainstage import teacher_options_from

            teacher_options = teacher_options_from(
                options, args.teacher_architecture, args.teacher_alpha, args.teacher_resolution, args.teacher_epochs
            )
            train.check_options(teacher_options)
            chosen["teacher"] = teacher_options
    return chosen


def train_stage(
    args: argparse.Namespace, chosen: dict[str, Any], prepared: Prepared, spec: Preprocessing, verbose: int
) -> tuple[Any, Any]:
    """Stage 3: the trained float model (cached, plain or distilled) and the teacher (or None)."""
    from . import trainstage

    data_key = {"data": prepared.data.description, "train_images": len(prepared.train_labels)}
    num_classes = len(prepared.data.labels)
    teacher = plan = None
    extra: dict[str, Any] = dict(data_key)
    if chosen["distill"] is not None:
        plan = trainstage.TeacherPlan(args.teacher, chosen.get("teacher"), chosen["distill"])
        source = f"{args.teacher}" if args.teacher else "trained in this run"
        if plan.options is not None:
            source = f"alpha={plan.options.alpha} at {plan.options.resolution}px, {source}"
        print(f"      distilling: teacher {source}; alpha={plan.distill.alpha}, T={plan.distill.temperature}")
        teacher = trainstage.teacher_model(
            plan, data_key, num_classes, prepared.train_frames, prepared.train_labels, spec, verbose
        )
        teacher_id = asdict(plan.options) if plan.options else str(args.teacher)
        extra["distill"] = {**asdict(chosen["distill"]), "teacher": teacher_id}
    trained = trainstage.cached_or_trained(
        args.keras_cache,
        trainstage.describe(chosen["train"], extra),
        lambda: trainstage.student_or_plain(
            chosen["train"], teacher, plan, num_classes, prepared.train_pixels, prepared.train_labels, spec, verbose
        ),
    )
    return trained, teacher


def optimize_stage(
    chosen: dict[str, Any], model: Any, prepared: Prepared, spec: Preprocessing, verbose: int
) -> tuple[Any, Any, dict[str, Any]]:
    """Pruning and QAT fine-tuning: (float model to fold-check, model to convert, their fits)."""
    fits: dict[str, Any] = {}
    if chosen["prune"] is not None:
        from . import prune

        print(f"      pruning to {chosen['prune'].sparsity:.0%} sparsity over {chosen['prune'].epochs} epochs")
        model, fits["prune"] = prune.prune(
            model, prepared.train_pixels, prepared.train_labels, spec, chosen["train"], chosen["prune"], verbose
        )
    to_convert = model
    if chosen["qat"] is not None:
        from . import qat

        print(f"      quantization-aware training for {chosen['qat'].epochs} epochs")
        to_convert, fits["qat"] = qat.quantization_aware_training(
            model, prepared.train_pixels, prepared.train_labels, spec, chosen["train"], chosen["qat"],
            keep_sparsity=chosen["prune"] is not None, verbose=verbose,
        )  # fmt: skip
    return model, to_convert, fits


def conversion_text(quantization: str, calibration: int) -> str:
    return {
        "int8": f"converting to full int8 ({calibration} calibration images)",
        "qat": f"converting the quantization-aware model to full int8 ({calibration} calibration images)",
        "dynamic": "converting with dynamic-range quantization (int8 weights, float activations)",
        "float32": "converting to float32 (no quantization)",
    }[quantization]


def build(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Run every stage; returns the summary the command line prints."""
    # TensorFlow is imported here, after argument checks, so that bad arguments fail fast.
    chosen = check_arguments(args)
    spec = Preprocessing(color_order="RGB", crop="center", interpolation="area")
    prepared = prepare(args, spec, (args.resolution, args.resolution))

    import tensorflow as tf
    import tf_keras

    from . import convert, evaluate, foldcheck, package, record, train

    tf.get_logger().setLevel("ERROR")
    if not args.nondeterministic:
        # Same data, seed, machine and library versions -> the same weights, bit for bit (oneDNN's
        # default kernels otherwise sum in a varying order and every rerun drifts).
        tf.config.experimental.enable_op_determinism()
        # Determinism refuses unseeded random ops; a cached model skips build_model, which seeds.
        tf_keras.utils.set_random_seed(args.seed)
    verbose = 0 if args.quiet else 2
    options = chosen["train"]
    name = record.display_name(options.architecture)
    cached = args.keras_cache is not None and args.keras_cache.is_file()
    verb = f"loading the trained {name} from {args.keras_cache}:" if cached else f"training {name}"
    stage(3, f"{verb} alpha={options.alpha} at {options.resolution}px for {options.epochs} epochs")
    transplant_check = None
    if train.is_tflite_weights(args.weights) and args.transplant_check_images:
        from .transplant import check_on_photos

        transplant_check = check_on_photos(
            Path(args.weights), prepared.train_frames, prepared.train_labels, args.transplant_check_images, spec
        )
    trained, teacher = train_stage(args, chosen, prepared, spec, verbose)
    test_ds = train.make_dataset(prepared.test_pixels, prepared.test_labels, spec, 256, training=False, seed=0)
    labels = prepared.data.labels
    # Pruning wraps the trained layers themselves: the base accuracy must be taken before it.
    evals = {"base": evaluate.evaluate_keras(trained.model, test_ds, prepared.test_labels, labels)}
    float_model, to_convert, fits = optimize_stage(chosen, trained.model, prepared, spec, verbose)

    full_int8 = args.quantization in FULL_INT8_MODES
    stage(4, conversion_text(args.quantization, args.calibration_images))
    calibration = calibration_pixels(prepared, args.calibration_images, (args.resolution, args.resolution), spec)
    tflite_bytes = convert.convert(to_convert, args.quantization, calibration, spec)
    with tempfile.TemporaryDirectory() as scratch:
        # Checked before it is written: a failed build must not replace a good model in --output-dir.
        candidate = Path(scratch) / "candidate.tflite"
        candidate.write_bytes(tflite_bytes)
        if full_int8:
            ops = convert.check_full_int8(candidate, float_model)
        else:
            ops = foldcheck.batch_norm_ops(candidate)["op_counts"]
        tflite_path, _ = package.write_model(args.output_dir, args.name, tflite_bytes, prepared.data.labels)
        twin = tflite_path if args.quantization == "float32" else Path(scratch) / "float32.tflite"
        if twin != tflite_path:
            twin.write_bytes(convert.convert_float(float_model))
        if args.float_twin:
            args.float_twin.parent.mkdir(parents=True, exist_ok=True)
            args.float_twin.write_bytes(twin.read_bytes())
        fold = None
        if args.fold_check_images > 0:
            fold = foldcheck.fold_report(float_model, twin, prepared.test_pixels[: args.fold_check_images], spec)

    kind = "int8" if full_int8 else args.quantization
    stage(5, f"evaluating float and {kind} on {len(prepared.test_labels)} test images")
    evals["float"] = evals["base"]
    if float_model is not trained.model:
        evals["float"] = evaluate.evaluate_keras(float_model, test_ds, prepared.test_labels, labels)
    if to_convert is not float_model:
        evals["keras_qat"] = evaluate.evaluate_keras(to_convert, test_ds, prepared.test_labels, labels)
    evals["tflite"], _ = evaluate.evaluate_tflite(tflite_path, prepared.test_pixels, prepared.test_labels, labels, spec)
    if args.eval_dir is not None:
        from .photo_eval import evaluate_model

        evals["photos"] = evaluate_model(tflite_path, labels, spec, args.eval_dir)
    if teacher is not None:
        evals["teacher"] = record.evaluate_teacher(
            teacher.model, prepared.test_frames, prepared.test_labels, labels, spec
        )

    stage(6, f"writing {args.name}.tflite, .labels.txt, .json and self-test images to {args.output_dir}")
    selftest = package.write_selftest(
        args.output_dir, args.name, prepared.test_frames, prepared.test_labels, labels, tflite_path, spec,
        args.selftest_per_class,
    )  # fmt: skip
    command = "python models/build.py " + shlex.join(argv) if argv else "python models/build.py"
    build_info: dict[str, Any] = {
        "op_counts": ops,
        # Full int8 is checked for folding by check_full_int8 itself; other kinds only by the fold check.
        "batch_norm_folded": fold["folded"] if fold else (True if full_int8 else None),
        "deterministic": not args.nondeterministic,
    }
    if full_int8:
        build_info["calibration_images"] = len(calibration)
    sections = record.manifest_sections(
        args, chosen, prepared.data.description, len(prepared.train_labels), trained, fits, evals, kind
    )
    if transplant_check is not None:
        sections["training"]["transplant_check"] = transplant_check
    sections["rejection"] = calibrate_model(tflite_path, labels, spec, prepared.test_frames, prepared.test_labels)
    manifest_path = record.write_manifest(args, tflite_path, labels, spec, sections, build_info, selftest, command)
    if args.record:
        from . import measure

        measured = measure.measure(tflite_path, prepared.test_pixels[0], spec, args.latency_runs)
        document = record.build_record(
            args, chosen, len(prepared.train_labels), trained, teacher, fits, evals, measured, fold, ops, command
        )
        extras = {"transplant_check": transplant_check, "photos": evals.get("photos")}
        document.update({key: value for key, value in extras.items() if value is not None})
        document.update(rejection=sections["rejection"], tflite=str(tflite_path), manifest=str(manifest_path))
        record.write_json(args.record, document)
    return {
        "manifest": manifest_path,
        "kind": kind,
        "float_accuracy": evals["float"]["accuracy"],
        "tflite_accuracy": evals["tflite"]["accuracy"],
        "size": tflite_path.stat().st_size,
        "latency": evals["tflite"]["latency_ms"],
        "seconds": trained.seconds,
        "selftest": len(selftest),
    }
