"""Conversion to .tflite (float32, dynamic range, full int8) and the checks that full int8 really is full int8."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
import tf_keras as keras

from edge_classifier.errors import first_line
from edge_classifier.model.preprocess import Preprocessing, normalize
from edge_classifier.model.runner import EMBEDDING_OUTPUT, SCORES_OUTPUT, load_interpreter, op_counts, tensor_dtypes

from . import foldcheck
from .options import FULL_INT8_MODES

logger = logging.getLogger(__name__)

# Integer types a full-int8 graph may hold: int8 activations/weights, int32 biases, shape tensors.
INTEGER_DTYPES = {"int8", "int32", "int64"}


class ConversionError(Exception):
    """The converted model is not the full-int8, batch-norm-folded graph the daemon expects."""


def _run(converter: Any) -> bytes:
    """The converter's flatbuffer, or ConversionError with its first line (it refuses ops it cannot map)."""
    try:
        with warnings.catch_warnings():
            # TF asks for input statistics whenever the input is integer; the representative data set gives them.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected", UserWarning)
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, ValueError and RuntimeError alike
        raise ConversionError(f"the TFLite converter failed: {first_line(exc)}") from None


def convert_int8(
    model: keras.Model,
    calibration_pixels: npt.NDArray[np.uint8],
    spec: Preprocessing,
) -> bytes:
    """Quantize weights and activations to int8, with int8 input and output tensors."""

    def representative() -> Iterator[list[npt.NDArray[np.float32]]]:
        for pixels in calibration_pixels:
            yield [normalize(pixels[None], spec)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return _run(converter)


def convert_float(model: keras.Model) -> bytes:
    """The unquantized float32 twin, for comparisons."""
    return _run(tf.lite.TFLiteConverter.from_keras_model(model))


def convert_dynamic(model: keras.Model) -> bytes:
    """Dynamic-range quantization: int8 weights, float32 activations and input/output."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return _run(converter)


def convert(
    model: keras.Model, quantization: str, calibration_pixels: npt.NDArray[np.uint8], spec: Preprocessing
) -> bytes:
    """The .tflite for one --quantization mode (a QAT model is converted like int8 PTQ)."""
    if quantization in FULL_INT8_MODES:
        return convert_int8(model, calibration_pixels, spec)
    if quantization == "dynamic":
        return convert_dynamic(model)
    if quantization == "float32":
        return convert_float(model)
    raise ValueError(f"unknown quantization {quantization!r}")


def pooling_layer(model: keras.Model) -> Any:
    """The one GlobalAveragePooling2D layer (QAT-wrapped or not) whose output feeds the classifier head."""
    found = [
        layer
        for layer in model.layers
        if "GlobalAveragePooling2D" in (type(layer).__name__, type(getattr(layer, "layer", None)).__name__)
    ]
    if len(found) != 1:
        raise ConversionError(f"--embedding-output: expected one global average pooling layer, found {len(found)}")
    return found[0]


def with_embedding_output(model: keras.Model) -> keras.Model:
    """The same model with two outputs: its own (`scores`) and the pooled feature vector (`embedding`).

    The Identity layers only give the outputs their names, which become the signature's keys in the
    .tflite; they convert to no operator, so the graph and every tensor's quantization stay as they were.
    """
    pooled = pooling_layer(model).output
    if len(pooled.shape) != 2:
        raise ConversionError(f"--embedding-output: the pooled features have shape {pooled.shape}, expected 2-D")
    scores = keras.layers.Identity(name=SCORES_OUTPUT)(model.output)
    embedding = keras.layers.Identity(name=EMBEDDING_OUTPUT)(pooled)
    return keras.Model(model.input, [scores, embedding], name=model.name)


def scores_output_first(tflite_bytes: bytes) -> bytes:
    """The same model with the `scores` output first among the graph's outputs (and the signature's).

    The converter orders outputs by signature key, which puts `embedding` first; a tool that reads output 0 of
    a classifier (most do) must get the class scores. Only the order of two tensor indices changes: no operator,
    weight or quantization parameter.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    if len(model.subgraphs[0].outputs) == 1:
        return tflite_bytes
    (signature,) = model.signatureDefs
    by_key = {bytes(o.name).decode(): o for o in signature.outputs}
    if set(by_key) != {SCORES_OUTPUT, EMBEDDING_OUTPUT}:
        raise ConversionError(
            f"expected outputs keyed {SCORES_OUTPUT!r} and {EMBEDDING_OUTPUT!r}, got {sorted(by_key)}"
        )
    order = [by_key[SCORES_OUTPUT], by_key[EMBEDDING_OUTPUT]]
    model.subgraphs[0].outputs = np.array([o.tensorIndex for o in order], dtype=np.int32)
    signature.outputs = order
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def keras_layer_counts(model: keras.Model) -> dict[str, int]:
    """Layer class histogram of the Keras model, nested models expanded."""
    counts: dict[str, int] = {}

    def walk(layer: Any) -> None:
        for sub in getattr(layer, "layers", []):
            walk(sub)
        if not getattr(layer, "layers", None):
            name = type(layer).__name__
            counts[name] = counts.get(name, 0) + 1

    walk(model)
    return counts


def tf_op_lambdas(model: keras.Model) -> list[str]:
    """The functions of the model's TFOpLambda layers (e.g. 'math.multiply')."""
    return [
        str(layer.get_config().get("function", "")) for layer in model.layers if type(layer).__name__ == "TFOpLambda"
    ]


def check_full_int8(tflite_path: Path, model: keras.Model) -> dict[str, int]:
    """Raise ConversionError unless every tensor is integer and batch norm left no op behind.

    Folded batch norm disappears into the convolution's weights and bias. Unfolded, it shows as
    extra MUL/ADD ops, so the graph may hold exactly as many ADD ops as the Keras model has Add
    layers (MobileNetV2's residuals) and as many MUL ops as it has Multiply layers. MobileNetV3's
    hard-swish (x * relu6(x + 3) / 6, TFOpLambda and Multiply layers) becomes HARD_SWISH or MUL
    ops, so there MUL may be at most the Multiply layers plus the multiplying TFOpLambda layers.
    In every graph no MUL/ADD may have a per-channel constant operand (foldcheck).
    MODEL is the float Keras model that was converted (before any QAT wrappers).
    """
    # Without XNNPACK: a delegate would replace the operators this check is about with one DELEGATE node.
    interpreter = load_interpreter(tflite_path, xnnpack=False)
    float_types = tensor_dtypes(interpreter) - INTEGER_DTYPES
    if float_types:
        raise ConversionError(f"{tflite_path.name} still has {sorted(float_types)} tensors")
    for details in (*interpreter.get_input_details(), *interpreter.get_output_details()):
        if np.dtype(details["dtype"]) != np.int8:
            raise ConversionError(
                f"{tflite_path.name}: tensor {details['name']} is {np.dtype(details['dtype'])}, not int8"
            )
    ops = op_counts(interpreter)
    for forbidden in ("QUANTIZE", "DEQUANTIZE"):
        if forbidden in ops:
            raise ConversionError(f"{tflite_path.name} has {ops[forbidden]} {forbidden} ops")
    layers = keras_layer_counts(model)
    expected = {"ADD": layers.get("Add", 0), "MUL": layers.get("Multiply", 0)}
    lambda_muls = sum(1 for f in tf_op_lambdas(model) if "multiply" in f)
    for op, allowed in expected.items():
        count = ops.get(op, 0)
        wrong = count > allowed + lambda_muls if op == "MUL" and lambda_muls else count != allowed
        if wrong:
            raise ConversionError(
                f"{tflite_path.name} has {count} {op} ops where the Keras model has {allowed} "
                "matching layers: batch norm was not folded"
            )
    affine = foldcheck.per_channel_affine_ops(interpreter)
    if affine:
        raise ConversionError(
            f"{tflite_path.name} has per-channel constant {', '.join(affine)}: batch norm was not folded"
        )
    if layers.get("BatchNormalization", 0) and "BATCH_NORM" in "".join(ops):
        raise ConversionError(f"{tflite_path.name} has a batch-norm op")
    return ops
