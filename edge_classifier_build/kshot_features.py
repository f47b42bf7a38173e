"""Features for the k-shot measurement: the default model's scores and embeddings, and frozen ImageNet features.

Frozen ImageNet features are the pooled 1,280-value layer of the ImageNet MobileNetV2 int8 TFLite (the
`MobileNetV2/top/GlobalPool/Mean` tensor that feeds the final 1x1 convolution making the 1,001 logits), read with
LiteRT's `experimental_preserve_all_tensors` and without the XNNPACK delegate (whose fused graph keeps no
intermediate tensors). Both sets are L2-normalised. No TensorFlow is needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.errors import InputError, ModelError
from edge_classifier.model.classifier import Classifier, read_image_bgr
from edge_classifier.model.preprocess import Preprocessing, Preprocessor
from edge_classifier.model.quant import QuantParams

from .data import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PhotoSet:
    """Photos with their class index (class folders in sorted order) and the folder names."""

    paths: list[Path]
    classes: npt.NDArray[np.int64]
    folders: tuple[str, ...]


def photo_set(root: Path) -> PhotoSet:
    """Every image under ROOT/<class folder>/, class folders sorted; InputError when there is none."""
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    pairs = [
        (photo, index)
        for index, folder in enumerate(folders)
        for photo in sorted(folder.iterdir())
        if photo.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not pairs:
        raise InputError(f"{root} holds no photo in class folders")
    classes = np.array([index for _, index in pairs], dtype=np.int64)
    return PhotoSet([photo for photo, _ in pairs], classes, tuple(f.name for f in folders))


def unit_rows(vectors: npt.NDArray[Any]) -> Floats:
    """Each row scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Floats = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def default_model_features(manifest: Path, photos: list[Path]) -> tuple[Floats, Floats, tuple[str, ...]]:
    """The default model's class probabilities and unit embeddings for each photo, and its labels."""
    with Classifier.from_manifest(manifest) as classifier:
        if classifier.embedding_spec is None:
            raise ModelError(f"{manifest}: the model gives no embedding output")
        scores, embeddings = [], []
        for photo in photos:
            result = classifier.classify(read_image_bgr(photo))
            assert result.embedding is not None
            scores.append(result.scores)
            embeddings.append(result.embedding)
        return np.stack(scores).astype(np.float32), unit_rows(np.stack(embeddings)), classifier.labels


class FrozenImageNet:
    """The ImageNet MobileNetV2 TFLite as a frozen feature extractor: the pooled layer before its classifier."""

    def __init__(self, model_path: Path):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if not model_path.is_file():
            raise InputError(f"ImageNet model {model_path} does not exist")
        self.interpreter: Any = Interpreter(
            model_path=str(model_path),
            num_threads=1,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        self.input_index = detail["index"]
        scale, zero_point = detail["quantization"]
        params = QuantParams(np.dtype(detail["dtype"]), float(scale), int(zero_point))
        # The model's own convention: RGB in [-1, 1] (input scale 1/127.5, zero point 127 on raw pixels).
        self.preprocess = Preprocessor(Preprocessing("RGB", "center", "area"), tuple(detail["shape"]), params)
        self.pooled = self._pooled_tensor()
        self.pooled_name: str = self.pooled["name"]

    def _pooled_tensor(self) -> dict[str, Any]:
        """The tensor that feeds the last CONV_2D (the 1x1 convolution making the 1,001 logits), checked."""
        tensors = {t["index"]: t for t in self.interpreter.get_tensor_details()}
        convs = [op for op in self.interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
        last = convs[-1]
        output = tensors[int(last["outputs"][0])]
        pooled = tensors[int(last["inputs"][0])]
        if int(output["shape"][-1]) != 1001 or list(pooled["shape"]) != [1, 1, 1, 1280]:
            raise ModelError(f"unexpected head: {list(pooled['shape'])} -> {list(output['shape'])}")
        if "GlobalPool" not in pooled["name"]:
            raise ModelError(f"the tensor before the classifier is {pooled['name']!r}, not the global pool")
        return dict(pooled)

    def features(self, photos: list[Path]) -> Floats:
        """Unit pooled feature vectors, one row per photo."""
        scale, zero_point = self.pooled["quantization"]
        rows = []
        for number, photo in enumerate(photos, 1):
            self.interpreter.set_tensor(self.input_index, self.preprocess(read_image_bgr(photo)))
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self.pooled["index"]).reshape(-1).astype(np.float32)
            rows.append((raw - zero_point) * scale)
            if number % 500 == 0:
                logger.info("frozen ImageNet features: %d/%d photos", number, len(photos))
        return unit_rows(np.stack(rows))


def cached(cache: Path | None, key: str, compute: Any) -> Any:
    """COMPUTE()'s arrays, kept in CACHE/<key>.npz between runs when a cache folder is given."""
    if cache is None:
        return compute()
    path = cache / f"{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return tuple(stored[f"a{i}"] for i in range(len(stored.files)))
    arrays = compute()
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"a{i}": a for i, a in enumerate(arrays)})
    return arrays
