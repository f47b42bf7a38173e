"""Finding and loading the configured model: default, bundled name or path; sha256 and self-test; the start-up
fallback; its min_score."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from edge_classifier.config.settings import DEFAULT_MIN_SCORE, ModelConfig, ResultConfig
from edge_classifier.errors import ModelError
from edge_classifier.model.classifier import Classifier, run_selftest
from edge_classifier.model.identity import ModelInfo
from edge_classifier.model.manifest import read_labels, sha256_file
from edge_classifier.model.preprocess import Preprocessing
from edge_classifier.model.runner import LiteRTRunner

logger = logging.getLogger(__name__)

# Real garment photos (clothing-dataset-small); `fashion-mobilenetv2` is the bundled Fashion-MNIST model.
DEFAULT_MODEL = "clothing-mobilenetv2.json"


def default_model_dirs() -> list[Path]:
    """Where the default model is looked for: a source checkout's models/, then the installer's place."""
    checkout = Path(__file__).resolve().parents[2]
    dirs = [checkout / "models"] if (checkout / "pyproject.toml").is_file() else []
    return [*dirs, Path("/var/lib/edge-classifier/models")]


def default_manifest() -> Path:
    for folder in default_model_dirs():
        if (folder / DEFAULT_MODEL).is_file():
            return folder / DEFAULT_MODEL
    places = ", ".join(str(d) for d in default_model_dirs())
    raise ModelError(f"model.manifest: not set, and the default model {DEFAULT_MODEL} is in none of: {places}")


def resolve_manifest(configured: Path | None) -> Path:
    """The manifest to load: the default model, a path, or a bundled model's bare name (`fashion-mobilenetv2`)."""
    if configured is None:
        return default_manifest()
    if configured.parent != Path(".") and not configured.exists():
        raise ModelError(f"model.manifest: {str(configured)!r} does not exist")
    if configured.is_file() or configured.parent != Path("."):
        return configured
    name = configured.name if configured.suffix == ".json" else f"{configured.name}.json"
    for folder in default_model_dirs():
        if (folder / name).is_file():
            return folder / name
    places = ", ".join(str(d) for d in default_model_dirs())
    raise ModelError(f"model.manifest: {str(configured)!r} is neither a file nor a bundled model in: {places}")


_KEYED = re.compile(r"^model\.[a-z_.]+:")  # a message that already names its key (model.labels: ...)


def with_key(key: str, error: ModelError) -> ModelError:
    """The error's message led by the dotted config key, as every configuration error is."""
    message = str(error)
    return error if _KEYED.match(message) else ModelError(f"{key}: {message}")


def open_classifier(config: ModelConfig) -> tuple[Classifier, ModelInfo]:
    """Load the configured model; with a manifest, check its sha256 and run its self-test.

    This is where model errors get their config key: the loading code below it is shared with the build.
    """
    key = "model.path" if config.path is not None else "model.manifest"
    try:
        return _open_file(config) if config.path is not None else _open_manifest(config)
    except ModelError as exc:
        raise with_key(key, exc) from None


def _not_a_file(path: Path) -> str | None:
    """Why `path` cannot be read as a file, or None when it is a regular file."""
    if path.is_dir():
        return "is a directory"
    if path.exists() and not path.is_file():
        return "is not a regular file"
    if not path.exists():
        return "does not exist"
    return None


def _open_file(config: ModelConfig) -> tuple[Classifier, ModelInfo]:
    assert config.path is not None and config.labels is not None  # load_config guarantees both
    problem = _not_a_file(config.path)
    if problem:
        raise ModelError(f"model.path: model file {str(config.path)!r} {problem}")
    pre = config.preprocessing
    spec = Preprocessing(pre.color_order, config.crop or "center", pre.interpolation, pre.mean, pre.std)
    try:
        labels = read_labels(config.labels)
    except ModelError as exc:
        raise with_key("model.labels", exc) from None
    runner = LiteRTRunner(config.path, config.num_threads)
    classes = runner.output_spec.shape[-1]
    if classes != len(labels):
        runner.close()
        raise ModelError(
            f"model.labels: {str(config.labels)!r} has {len(labels)} labels but the model outputs {classes} classes"
        )
    classifier = Classifier(runner, labels, spec, pre.output_kind, None, config.path)
    return classifier, ModelInfo(config.path.stem, "unversioned", sha256_file(config.path))


def _open_manifest(config: ModelConfig) -> tuple[Classifier, ModelInfo]:
    manifest_path = resolve_manifest(config.manifest)
    problem = _not_a_file(manifest_path)
    if problem:
        raise ModelError(f"model.manifest: {str(manifest_path)!r} {problem}, not a manifest (.json) file")
    classifier = Classifier.from_manifest(manifest_path, config.num_threads, crop=config.crop)
    manifest = classifier.manifest
    assert manifest is not None
    if config.selftest:
        try:
            passed = run_selftest(classifier, manifest.selftest)
        except ModelError:
            classifier.close()
            raise
        logger.info("model %s %s: self-test passed on %d images", manifest.name, manifest.version, passed)
    return classifier, ModelInfo(manifest.name, manifest.version, manifest.sha256)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve, and why it serves instead of the configured one when it is the fallback."""

    classifier: Classifier
    info: ModelInfo
    fallback: str | None = None  # None: the configured (or requested) model


def fallback_config(config: ModelConfig) -> ModelConfig | None:
    """The model section that loads model.fallback_manifest, or None when it is disabled or is the configured one."""
    if config.fallback_manifest is None:
        return None
    fallback = replace(config, manifest=config.fallback_manifest, path=None, labels=None, crop=None)
    if config.path is None and _same_manifest(config.manifest, config.fallback_manifest):
        return None
    return fallback


def _same_manifest(configured: Path | None, fallback: Path) -> bool:
    try:
        return resolve_manifest(configured).resolve() == resolve_manifest(fallback).resolve()
    except ModelError:
        return False


def load_with_fallback(config: ModelConfig) -> LoadedModel:
    """The configured model; if it is missing, corrupt or fails its self-test, model.fallback_manifest, said loudly.

    ModelError (exit 78) when neither is usable, or when the fallback is disabled (null) or is the configured model.
    """
    try:
        return LoadedModel(*open_classifier(config))
    except ModelError as exc:
        problem = exc
    fallback = fallback_config(config)
    if fallback is None:
        raise problem
    try:
        classifier, info = open_classifier(fallback)
    except ModelError as exc:
        message = str(exc).replace("model.manifest:", "model.fallback_manifest:", 1)
        raise ModelError(f"{problem}; and the fallback is unusable too: {message}") from None
    logger.error(
        "%s; running on the FALLBACK model %s %s (model.fallback_manifest) until the configured model is fixed "
        "and the service restarted or reloaded",
        problem, info.name, info.version,
    )  # fmt: skip
    return LoadedModel(classifier, info, str(problem))


def min_score(result: ResultConfig, classifier: Classifier) -> float:
    """The configured min_score, else the one calibrated for the model (its manifest), else the default."""
    if result.min_score is not None:
        return result.min_score
    calibrated = classifier.manifest.min_score if classifier.manifest is not None else None
    return DEFAULT_MIN_SCORE if calibrated is None else calibrated
