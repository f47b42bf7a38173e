"""Full-int8 post-training quantization and the checks that the result really is full int8."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
import tf_keras as keras

from edge_classifier.interpreter import load_interpreter, op_counts, tensor_dtypes
from edge_classifier.preprocess import Preprocessing, normalize

logger = logging.getLogger(__name__)

# Integer types a full-int8 graph may hold: int8 activations/weights, int32 biases, shape tensors.
INTEGER_DTYPES = {"int8", "int32", "int64"}


class ConversionError(Exception):
    """The converted model is not the full-int8, batch-norm-folded graph the daemon expects."""


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
    return bytes(converter.convert())


def convert_float(model: keras.Model) -> bytes:
    """The unquantized float32 twin, for comparisons."""
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


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


def check_full_int8(tflite_path: Path, model: keras.Model) -> dict[str, int]:
    """Raise ConversionError unless every tensor is integer and batch norm left no op behind.

    Folded batch norm disappears into the convolution's weights and bias. Unfolded, it shows as
    extra MUL/ADD ops, so the graph may hold exactly as many ADD ops as the Keras model has Add
    layers (MobileNetV2's residuals) and as many MUL ops as it has Multiply layers.
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
    for op, allowed in expected.items():
        if ops.get(op, 0) != allowed:
            raise ConversionError(
                f"{tflite_path.name} has {ops.get(op, 0)} {op} ops where the Keras model has {allowed} "
                "matching layers: batch norm was not folded"
            )
    if layers.get("BatchNormalization", 0) and "BATCH_NORM" in "".join(ops):
        raise ConversionError(f"{tflite_path.name} has a batch-norm op")
    return ops
