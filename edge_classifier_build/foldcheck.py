"""Evidence that batch norm was folded into the convolutions: the converted graph and its outputs.

Unfolded, a batch-norm layer becomes `x * scale + offset` with one constant per channel: a MUL and
an ADD (or SUB) with a constant vector operand. Folded, it disappears into the convolution's weights
and bias. The float32 .tflite of a folded model must still give the Keras model's outputs.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.model.preprocess import Preprocessing, normalize
from edge_classifier.model.runner import load_interpreter, op_counts

logger = logging.getLogger(__name__)

AFFINE_OPS = ("MUL", "ADD", "SUB")
FOLD_TOLERANCE = 1e-4  # max abs difference of softmax probabilities, float32 .tflite vs Keras


@dataclass(frozen=True)
class BatchNormLeft:
    """What of batch norm is left in a graph (both lists should be empty), and the graph's operator counts."""

    batch_norm_ops: list[str]
    per_channel_affine_ops: list[str]
    op_counts: dict[str, int]


@dataclass(frozen=True)
class OutputComparison:
    """How far the folded float32 .tflite's outputs are from the Keras model's."""

    images: int
    max_abs_diff: float
    mean_abs_diff: float
    same_top1: float
    tolerance: float


@dataclass(frozen=True)
class FoldReport:
    """Both pieces of evidence that batch norm was folded, and whether they hold."""

    keras_batch_norm_layers: int
    float32_op_counts: dict[str, int]
    batch_norm_ops: list[str]
    per_channel_affine_ops: list[str]
    outputs: OutputComparison
    folded: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def constant_tensors(interpreter: Any) -> set[int]:
    """Indices of tensors that no operator produces and that are not model inputs: weights and constants."""
    produced = {int(i) for op in interpreter._get_ops_details() for i in op["outputs"]}
    inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    every = {int(t["index"]) for t in interpreter.get_tensor_details()}
    return every - produced - inputs


def per_channel_affine_ops(interpreter: Any) -> list[str]:
    """MUL/ADD/SUB operators with a constant operand of more than one element: what unfolded batch norm leaves."""
    constants = constant_tensors(interpreter)
    shapes = {int(t["index"]): tuple(int(d) for d in t["shape"]) for t in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():
        if op["op_name"] not in AFFINE_OPS:
            continue
        for index in (int(i) for i in op["inputs"]):
            if index in constants and int(np.prod(shapes[index])) > 1:
                found.append(f"{op['op_name']}#{op['index']}")
    return found


def batch_norm_ops(tflite_path: Path) -> BatchNormLeft:
    """What of batch norm is left in the graph: ops named like it and per-channel affine ops (both should be empty)."""
    # Without XNNPACK: its delegate would replace the operators looked at here with one DELEGATE node.
    interpreter = load_interpreter(tflite_path, xnnpack=False)
    ops = op_counts(interpreter)
    return BatchNormLeft(
        batch_norm_ops=sorted(op for op in ops if "BATCH_NORM" in op),
        per_channel_affine_ops=per_channel_affine_ops(interpreter),
        op_counts=ops,
    )


def float_tflite_outputs(tflite_path: Path, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Outputs of a float32 .tflite for each input image, one image at a time."""
    interpreter = load_interpreter(tflite_path, xnnpack=False)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    outputs = []
    for image in inputs:
        interpreter.set_tensor(input_index, image[None])
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_tensor(output_index)).reshape(-1))
    return np.stack(outputs).astype(np.float32)


def compare_with_keras(
    model: Any, float_tflite: Path, pixels: npt.NDArray[np.uint8], spec: Preprocessing
) -> OutputComparison:
    """Max abs difference between the Keras model (batch norm as layers) and its folded float32 .tflite."""
    inputs = normalize(pixels, spec)
    keras_out = np.asarray(model.predict(inputs, batch_size=64, verbose=0), dtype=np.float32)
    tflite_out = float_tflite_outputs(float_tflite, inputs)
    diff = np.abs(keras_out - tflite_out)
    return OutputComparison(
        images=len(pixels),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        same_top1=float(np.mean(np.argmax(keras_out, axis=1) == np.argmax(tflite_out, axis=1))),
        tolerance=FOLD_TOLERANCE,
    )


def fold_report(model: Any, float_tflite: Path, pixels: npt.NDArray[np.uint8], spec: Preprocessing) -> FoldReport:
    """Both pieces of evidence, and whether they hold."""
    graph = batch_norm_ops(float_tflite)
    outputs = compare_with_keras(model, float_tflite, pixels, spec)
    folded = not graph.batch_norm_ops and not graph.per_channel_affine_ops
    keras_bn = sum(1 for layer in model.layers if type(layer).__name__ == "BatchNormalization")
    return FoldReport(
        keras_batch_norm_layers=keras_bn,
        float32_op_counts=graph.op_counts,
        batch_norm_ops=graph.batch_norm_ops,
        per_channel_affine_ops=graph.per_channel_affine_ops,
        outputs=outputs,
        folded=folded and outputs.max_abs_diff <= FOLD_TOLERANCE,
    )
