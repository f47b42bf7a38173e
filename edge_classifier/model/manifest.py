"""The model manifest (`<name>.json` beside `<name>.tflite`): reading, checking and labels files."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_classifier.errors import ModelError
from edge_classifier.model.preprocess import Preprocessing, PreprocessingValueError
from edge_classifier.model.runner import EMBEDDING_OUTPUT, SCORES_OUTPUT, OutputNames, OutputRef

SCHEMA_ID = "edge-classifier/manifest/v1"
OUTPUT_KINDS = ("probabilities", "logits")


@dataclass(frozen=True)
class SelfTestCase:
    """An image stored beside the model and the label the model must give it."""

    image: Path
    label: str


@dataclass(frozen=True)
class Manifest:
    """What the daemon needs from a manifest; the full document stays in `document`."""

    path: Path
    name: str
    version: str
    model_path: Path
    sha256: str
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    output_kind: str
    selftest: tuple[SelfTestCase, ...]
    document: dict[str, Any]
    min_score: float | None = None  # the build's calibrated rejection threshold, if it made one
    outputs: OutputNames | None = None  # which output is which, for a model with more than one


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_labels(path: Path) -> tuple[str, ...]:
    """One label per line; blank lines are not allowed because they shift every index after them."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read labels file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ModelError(f"labels file {path} is not UTF-8 text") from None
    labels = tuple(line.strip() for line in lines)
    if not labels or any(not label for label in labels):
        raise ModelError(f"labels file {path} is empty or has a blank line")
    return labels


def _field(document: dict[str, Any], dotted: str, kind: type | tuple[type, ...], where: Path) -> Any:
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ModelError(f"manifest {where}: missing field {dotted}")
        value = value[part]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ModelError(f"manifest {where}: field {dotted} has the wrong type ({value!r})")
    return value


def _numbers(document: dict[str, Any], dotted: str, where: Path) -> tuple[float, ...]:
    values = _field(document, dotted, list, where)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ModelError(f"manifest {where}: field {dotted} must be a list of finite numbers, got {values!r}")
    return tuple(float(v) for v in values)


def load_manifest(path: Path) -> Manifest:
    """Parse and check a manifest; every problem is a ModelError naming the field."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot read manifest {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"manifest {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except UnicodeDecodeError:
        raise ModelError(f"manifest {path} is not UTF-8 text (a .tflite given for its .json?)") from None
    if not isinstance(document, dict):
        raise ModelError(f"manifest {path} is not a JSON object")
    if document.get("schema") != SCHEMA_ID:
        raise ModelError(f"manifest {path}: schema is {document.get('schema')!r}, expected {SCHEMA_ID!r}")
    base = path.parent
    labels = tuple(_field(document, "labels", list, path))
    if not labels or not all(isinstance(label, str) and label for label in labels):
        raise ModelError(f"manifest {path}: labels must be a non-empty list of non-empty strings")
    try:
        preprocessing = Preprocessing(
            color_order=_field(document, "preprocessing.color_order", str, path),
            crop=_field(document, "preprocessing.crop", str, path),
            interpolation=_field(document, "preprocessing.interpolation", str, path),
            mean=_numbers(document, "preprocessing.mean", path),
            std=_numbers(document, "preprocessing.std", path),
        )
    except PreprocessingValueError as exc:
        raise ModelError(f"manifest {path}: preprocessing.{exc.field}: {exc}") from None
    output_kind = _field(document, "output.kind", str, path)
    if output_kind not in OUTPUT_KINDS:
        raise ModelError(f"manifest {path}: output.kind is {output_kind!r}, expected one of {OUTPUT_KINDS}")
    selftest = document.get("selftest", [])
    if not isinstance(selftest, list):
        raise ModelError(f"manifest {path}: field selftest has the wrong type ({selftest!r})")
    cases = []
    for i, case in enumerate(selftest):
        if not isinstance(case, dict) or case.get("label") not in labels or not isinstance(case.get("image"), str):
            raise ModelError(f"manifest {path}: selftest[{i}] needs an image path and one of the labels")
        cases.append(SelfTestCase(base / case["image"], case["label"]))
    return Manifest(
        min_score=_min_score(document, path),
        outputs=_outputs(document, path),
        path=path,
        name=_field(document, "name", str, path),
        version=_field(document, "version", str, path),
        model_path=base / _field(document, "model_file", str, path),
        sha256=_field(document, "sha256", str, path),
        labels=labels,
        preprocessing=preprocessing,
        output_kind=output_kind,
        selftest=tuple(cases),
        document=document,
    )


def _min_score(document: dict[str, Any], where: Path) -> float | None:
    """rejection.min_score: the score below which a frame counts as `unknown`, when the build calibrated one."""
    if "rejection" not in document:
        return None
    value = _field(document, "rejection.min_score", (int, float), where)
    if not 0.0 <= value <= 1.0:
        raise ModelError(f"manifest {where}: rejection.min_score must be between 0 and 1, got {value!r}")
    return float(value)


def _output_ref(entry: Any, i: int, where: Path) -> OutputRef:
    """outputs[i]: its name, and its tensor name and/or index (both: they must agree with the model)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        raise ModelError(f"manifest {where}: outputs[{i}] needs a name ({SCORES_OUTPUT!r} or {EMBEDDING_OUTPUT!r})")
    tensor, index, shape = entry.get("tensor"), entry.get("index"), entry.get("shape")
    if tensor is not None and (not isinstance(tensor, str) or not tensor):
        raise ModelError(f"manifest {where}: outputs[{i}].tensor must be a tensor name, got {tensor!r}")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise ModelError(f"manifest {where}: outputs[{i}].index must be an integer >= 0, got {index!r}")
    if tensor is None and index is None:
        raise ModelError(f"manifest {where}: outputs[{i}] ({entry['name']!r}) needs a tensor name or an index")
    if shape is not None and not (
        isinstance(shape, list) and shape and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    ):
        raise ModelError(f"manifest {where}: outputs[{i}].shape must be a list of integers, got {shape!r}")
    return OutputRef(entry["name"], tensor, index, None if shape is None else tuple(shape))


def _outputs(document: dict[str, Any], where: Path) -> OutputNames | None:
    """`outputs` (which output holds the scores and which the embedding) and the `embedding` section that goes with it.

    Names other than scores and embedding are allowed and ignored: a later format may name more outputs.
    """
    if "outputs" not in document:
        if "embedding" in document:
            raise ModelError(f"manifest {where}: an `embedding` section needs `outputs` naming the embedding output")
        return None
    entries = _field(document, "outputs", list, where)
    refs = [_output_ref(entry, i, where) for i, entry in enumerate(entries)]
    by_name = {ref.role: ref for ref in refs}
    if len(by_name) != len(refs):
        raise ModelError(f"manifest {where}: outputs names an output twice ({[ref.role for ref in refs]})")
    if SCORES_OUTPUT not in by_name:
        raise ModelError(f"manifest {where}: outputs has no {SCORES_OUTPUT!r} entry (the class scores)")
    embedding = by_name.get(EMBEDDING_OUTPUT)
    if "embedding" in document:
        if embedding is None:
            raise ModelError(f"manifest {where}: `embedding` is described but outputs has no {EMBEDDING_OUTPUT!r}")
        dims = _field(document, "embedding.dims", int, where)
        if embedding.shape is not None and embedding.shape[-1] != dims:
            raise ModelError(
                f"manifest {where}: embedding.dims is {dims}, the embedding output's shape {list(embedding.shape)}"
            )
    return OutputNames(by_name[SCORES_OUTPUT], embedding)


def verify_sha256(manifest: Manifest) -> None:
    """Refuse a model file that is not the one the manifest describes."""
    if not manifest.model_path.is_file():
        raise ModelError(f"model.manifest: model file {manifest.model_path} named by {manifest.path} does not exist")
    actual = sha256_file(manifest.model_path)
    if actual != manifest.sha256:
        raise ModelError(
            f"model file {manifest.model_path} has sha256 {actual[:12]}..., "
            f"its manifest says {manifest.sha256[:12]}...: the file was changed or replaced"
        )
