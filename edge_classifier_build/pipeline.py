"""One build, stage by stage: data, training, pruning and QAT, conversion and its checks, evaluation, packaging."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_classifier.errors import ModelError
from edge_classifier.model.preprocess import Preprocessing

from .build_options import BuildOptions
from .openset import calibrate_model
from .outcome import BuildSummary, Evaluations, Fits, Outcome
from .prepare import Prepared, calibration_pixels, prepare, stage
from .techniques import Techniques, check_techniques

if TYPE_CHECKING:
    from .evaluate import Accuracy
    from .fitting import FitResult
    from .foldcheck import FoldReport
    from .photo_eval import PhotoEvaluation
    from .trainstage import TeacherPlan, Trained

logger = logging.getLogger(__name__)


def train_stage(
    options: BuildOptions, techniques: Techniques, prepared: Prepared, spec: Preprocessing, verbose: int
) -> tuple[Trained, Trained | None]:
    """Stage 3: the trained float model (cached, plain or distilled) and the teacher (or None)."""
    from . import trainstage

    data_key = {"data": prepared.data.description, "train_images": len(prepared.train_labels)}
    num_classes = len(prepared.data.labels)
    teacher: Trained | None = None
    plan: TeacherPlan | None = None
    extra: dict[str, Any] = dict(data_key)
    if techniques.distill is not None:
        plan = trainstage.TeacherPlan(options.teacher, techniques.teacher, techniques.distill)
        source = f"{options.teacher}" if options.teacher else "trained in this run"
        if plan.options is not None:
            source = f"alpha={plan.options.alpha} at {plan.options.resolution}px, {source}"
        print(f"      distilling: teacher {source}; alpha={plan.distill.alpha}, T={plan.distill.temperature}")
        teacher = trainstage.teacher_model(
            plan, data_key, num_classes, prepared.train_frames, prepared.train_labels, spec, verbose
        )
        teacher_id = asdict(plan.options) if plan.options else str(options.teacher)
        extra["distill"] = {**asdict(techniques.distill), "teacher": teacher_id}
    trained = trainstage.cached_or_trained(
        options.keras_cache,
        trainstage.describe(techniques.train, extra),
        lambda: trainstage.student_or_plain(
            techniques.train, teacher, plan, num_classes, prepared.train_pixels, prepared.train_labels, spec, verbose
        ),
    )
    return trained, teacher


def optimize_stage(
    techniques: Techniques, model: Any, prepared: Prepared, spec: Preprocessing, verbose: int
) -> tuple[Any, Any, Fits]:
    """Pruning and QAT fine-tuning: (float model to fold-check, model to convert, their fits)."""
    pruned: FitResult | None = None
    if techniques.prune is not None:
        from . import prune

        print(f"      pruning to {techniques.prune.sparsity:.0%} sparsity over {techniques.prune.epochs} epochs")
        model, pruned = prune.prune(
            model, prepared.train_pixels, prepared.train_labels, spec, techniques.train, techniques.prune, verbose
        )
    to_convert = model
    quantized: FitResult | None = None
    if techniques.qat is not None:
        from . import qat

        print(f"      quantization-aware training for {techniques.qat.epochs} epochs")
        to_convert, quantized = qat.quantization_aware_training(
            model, prepared.train_pixels, prepared.train_labels, spec, techniques.train, techniques.qat,
            keep_sparsity=techniques.prune is not None, verbose=verbose,
        )  # fmt: skip
    return model, to_convert, Fits(prune=pruned, qat=quantized)


def conversion_text(quantization: str, calibration: int) -> str:
    return {
        "int8": f"converting to full int8 ({calibration} calibration images)",
        "qat": f"converting the quantization-aware model to full int8 ({calibration} calibration images)",
        "dynamic": "converting with dynamic-range quantization (int8 weights, float activations)",
        "float32": "converting to float32 (no quantization)",
    }[quantization]


@dataclass(frozen=True)
class Converted:
    """The written .tflite and what the checks of its graph found."""

    tflite_path: Path
    ops: dict[str, int]
    fold: FoldReport | None
    calibration_images: int


def convert_stage(
    options: BuildOptions, prepared: Prepared, spec: Preprocessing, float_model: Any, to_convert: Any
) -> Converted:
    """Stage 4: convert, check the graph before writing it, write it (and the float twin), check the folding."""
    from . import convert, foldcheck, package

    stage(4, conversion_text(options.quantization, options.calibration_images))
    size = (options.resolution, options.resolution)
    calibration = calibration_pixels(prepared, options.calibration_images, size, spec)
    if options.embedding_output:
        to_convert = convert.with_embedding_output(to_convert)
    tflite_bytes = convert.convert(to_convert, options.quantization, calibration, spec)
    if options.embedding_output:
        tflite_bytes = convert.scores_output_first(tflite_bytes)
    with tempfile.TemporaryDirectory() as scratch:
        # Checked before it is written: a failed build must not replace a good model in --output-dir.
        candidate = Path(scratch) / "candidate.tflite"
        candidate.write_bytes(tflite_bytes)
        if options.full_int8:
            ops = convert.check_full_int8(candidate, float_model)
        else:
            ops = foldcheck.batch_norm_ops(candidate).op_counts
        if options.embedding_output:
            check_embedding_output(candidate)
        tflite_path, _ = package.write_model(options.output_dir, options.name, tflite_bytes, prepared.data.labels)
        # The fold check reads the twin's only output: with an embedding output, the twin is converted on its own.
        own_twin = options.quantization == "float32" and not options.embedding_output
        twin = tflite_path if own_twin else Path(scratch) / "float32.tflite"
        if twin != tflite_path:
            twin.write_bytes(convert.convert_float(float_model))
        if options.float_twin:
            options.float_twin.parent.mkdir(parents=True, exist_ok=True)
            options.float_twin.write_bytes(twin.read_bytes())
        fold = None
        if options.fold_check_images > 0:
            fold = foldcheck.fold_report(float_model, twin, prepared.test_pixels[: options.fold_check_images], spec)
    return Converted(tflite_path, ops, fold, len(calibration))


def check_embedding_output(tflite_path: Path) -> None:
    """ConversionError unless the signature names the scores and a 2-D embedding output (model_outputs)."""
    from .convert import ConversionError
    from .model_outputs import outputs_of

    try:
        outputs = outputs_of(tflite_path)
    except ModelError as exc:
        raise ConversionError(f"--embedding-output: {exc}") from None
    embedding = None if outputs is None else outputs.embedding
    if embedding is None or embedding.shape is None or len(embedding.shape) != 2:
        raise ConversionError("--embedding-output: the converted model has no [1, dims] embedding output")
    print(f"      embedding output: {embedding.shape[-1]} dims, tensor {embedding.tensor!r} at {embedding.position}")


def build(options: BuildOptions) -> BuildSummary:
    """Run every stage; returns the summary the command line prints."""
    # TensorFlow is imported here, after argument checks, so that bad arguments fail fast.
    techniques = check_techniques(options)
    spec = Preprocessing(color_order="RGB", crop="center", interpolation="area")
    prepared = prepare(options, spec, (options.resolution, options.resolution))

    import tensorflow as tf
    import tf_keras

    from . import evaluate, package, record, train

    tf.get_logger().setLevel("ERROR")
    if not options.nondeterministic:
        # Same data, seed, machine and library versions -> the same weights, bit for bit (oneDNN's
        # default kernels otherwise sum in a varying order and every rerun drifts).
        tf.config.experimental.enable_op_determinism()
        # Determinism refuses unseeded random ops; a cached model skips build_model, which seeds.
        tf_keras.utils.set_random_seed(options.seed)
    verbose = 0 if options.quiet else 2
    network = techniques.train
    name = record.display_name(network.architecture)
    cached = options.keras_cache is not None and options.keras_cache.is_file()
    verb = f"loading the trained {name} from {options.keras_cache}:" if cached else f"training {name}"
    stage(3, f"{verb} alpha={network.alpha} at {network.resolution}px for {network.epochs} epochs")
    transplant = None
    if train.is_tflite_weights(options.weights) and options.transplant_check_images:
        from .transplant import check_on_photos

        transplant = check_on_photos(
            Path(options.weights), prepared.train_frames, prepared.train_labels, options.transplant_check_images, spec
        )
    trained, teacher = train_stage(options, techniques, prepared, spec, verbose)
    test_ds = train.make_dataset(prepared.test_pixels, prepared.test_labels, spec, 256, training=False, seed=0)
    labels = prepared.data.labels

    def keras_accuracy(model: Any) -> Accuracy:
        return evaluate.evaluate_keras(model, test_ds, prepared.test_labels, labels)

    # Pruning wraps the trained layers themselves: the base accuracy must be taken before it.
    base = keras_accuracy(trained.model)
    float_model, to_convert, fits = optimize_stage(techniques, trained.model, prepared, spec, verbose)
    converted = convert_stage(options, prepared, spec, float_model, to_convert)

    stage(5, f"evaluating float and {options.kind} on {len(prepared.test_labels)} test images")
    keras_float = base if float_model is trained.model else keras_accuracy(float_model)
    keras_qat = None if to_convert is float_model else keras_accuracy(to_convert)
    tflite = evaluate.evaluate_tflite(converted.tflite_path, prepared.test_pixels, prepared.test_labels, labels, spec)
    photos: PhotoEvaluation | None = None
    if options.eval_dir is not None:
        from .photo_eval import evaluate_model

        photos = evaluate_model(converted.tflite_path, labels, spec, options.eval_dir)
    teacher_accuracy = None
    if teacher is not None:
        teacher_accuracy = record.evaluate_teacher(
            teacher.model, prepared.test_frames, prepared.test_labels, labels, spec
        )
    evals = Evaluations(base, keras_float, keras_qat, tflite, photos, teacher_accuracy)

    stage(6, f"writing {options.name}.tflite, .labels.txt, .json and self-test images to {options.output_dir}")
    selftest = package.write_selftest(
        options.output_dir, options.name, prepared.test_frames, prepared.test_labels, labels, converted.tflite_path,
        spec, options.selftest_per_class,
    )  # fmt: skip
    rejection = calibrate_model(converted.tflite_path, labels, spec, prepared.test_frames, prepared.test_labels)
    outcome = Outcome(
        labels=labels,
        test_set=prepared.data.description,
        train_images=len(prepared.train_labels),
        trained=trained,
        teacher=teacher,
        fits=fits,
        evals=evals,
        tflite_path=converted.tflite_path,
        ops=converted.ops,
        fold=converted.fold,
        calibration_images=converted.calibration_images,
        transplant=transplant,
        rejection=rejection,
    )
    manifest_path = record.write_manifest(options, techniques, outcome, spec, selftest)
    if options.record:
        from . import measure

        device = measure.measure(converted.tflite_path, prepared.test_pixels[0], spec, options.latency_runs)
        record.write_json(options.record, record.build_record(options, techniques, outcome, device, manifest_path))
    return BuildSummary(
        manifest=manifest_path,
        kind=options.kind,
        float_accuracy=keras_float.accuracy,
        tflite_accuracy=tflite.accuracy,
        size_bytes=converted.tflite_path.stat().st_size,
        latency_p50=tflite.latency_ms.p50 if tflite.latency_ms else None,
        selftest_images=len(selftest),
    )
