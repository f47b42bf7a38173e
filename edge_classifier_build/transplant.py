"""Pretrained MobileNetV2 weights from an int8 TFLite file, transplanted into a trainable Keras model.

Keras cannot download `weights="imagenet"` everywhere; an ImageNet MobileNetV2 as a post-training
quantized `.tflite` (such as Coral's `tf2_mobilenet_v2_1.0_224_ptq.tflite`) carries the same network.
Its convolution-like ops (CONV_2D, DEPTHWISE_CONV_2D, and a final 1x1 CONV_2D or FULLY_CONNECTED for
the logits), in graph order, line up one to one with the Conv2D, DepthwiseConv2D and Dense layers of
`MobileNetV2(alpha=1.0)` in layer order. Each kernel is dequantized with its per-channel scales and
transposed to Keras' layout; the converter folded every batch norm into the convolution before it,
so the folded bias goes into the following BatchNormalization as beta, with gamma 1, moving mean 0
and moving variance 1 - epsilon: that layer then adds the bias and nothing else. Those statistics are
not the activations' real ones, so a transplanted network is fine-tuned with its batch norms in
inference mode (see `train.freeze_batch_norm`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tf_keras as keras

from edge_classifier.errors import InputError, ModelError
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.preprocess import Preprocessing
from edge_classifier.model.quant import dequantize
from edge_classifier.model.runner import io_specs, load_interpreter

from .data import Frames

logger = logging.getLogger(__name__)

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
KERAS_CONV_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


@dataclass(frozen=True)
class ConvWeights:
    """One convolution-like op of the TFLite graph, dequantized, in TFLite's own layout."""

    op: str
    kernel: npt.NDArray[np.float32]  # CONV_2D [out, kh, kw, in]; DEPTHWISE [1, kh, kw, ch]; FC [out, in]
    bias: npt.NDArray[np.float32] | None


def dequantize_constant(interpreter: Any, details: dict[str, Any]) -> npt.NDArray[np.float32]:
    """A constant tensor as float32, with per-tensor or per-channel scales and zero points."""
    raw = np.asarray(interpreter.get_tensor(details["index"]))
    if raw.dtype == np.float32:
        return raw
    params = details["quantization_parameters"]
    scales = np.asarray(params["scales"], dtype=np.float64)
    zero_points = np.asarray(params["zero_points"], dtype=np.float64)
    if scales.size == 0:
        raise InputError(f"tensor {details['name']!r} is {raw.dtype} without quantization parameters")
    shape = [1] * raw.ndim
    if scales.size > 1:
        shape[int(params["quantized_dimension"])] = scales.size
    real = (raw.astype(np.float64) - zero_points.reshape(shape)) * scales.reshape(shape)
    return real.astype(np.float32)


def read_conv_weights(path: Path) -> list[ConvWeights]:
    """Every convolution-like op's dequantized kernel and bias, in graph order."""
    try:
        # Without XNNPACK the interpreter keeps every op in its list instead of one DELEGATE node.
        interpreter = load_interpreter(path, xnnpack=False)
    except ModelError as exc:
        raise InputError(f"--weights {path}: {exc}") from None
    tensors = {int(t["index"]): t for t in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():
        if op["op_name"] not in CONV_OPS:
            continue
        inputs = [int(i) for i in op["inputs"]]
        kernel = dequantize_constant(interpreter, tensors[inputs[1]])
        bias = dequantize_constant(interpreter, tensors[inputs[2]]) if len(inputs) > 2 and inputs[2] >= 0 else None
        found.append(ConvWeights(op["op_name"], kernel, bias))
    if not found:
        raise InputError(f"--weights {path}: the TFLite graph has no convolution to take weights from")
    return found


def keras_kernel(conv: ConvWeights, layer: keras.layers.Layer) -> npt.NDArray[np.float32]:
    """CONV's kernel in LAYER's Keras layout."""
    if isinstance(layer, keras.layers.Dense):
        # A 1x1 CONV_2D over a pooled vector is a Dense layer: [out, 1, 1, in] -> [in, out].
        return conv.kernel.reshape(conv.kernel.shape[0], -1).T
    # CONV_2D [out, kh, kw, in] -> [kh, kw, in, out]; DEPTHWISE [1, kh, kw, ch] -> [kh, kw, ch, 1].
    return np.transpose(conv.kernel, (1, 2, 3, 0))


def following_batch_norm(model: keras.Model, layer: keras.layers.Layer) -> keras.layers.BatchNormalization | None:
    """The BatchNormalization that consumes LAYER's output directly, if any."""
    for node in layer.outbound_nodes:
        if isinstance(node.outbound_layer, keras.layers.BatchNormalization):
            return node.outbound_layer
    return None


def conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if isinstance(layer, KERAS_CONV_TYPES)]


def load_into(model: keras.Model, convs: list[ConvWeights], source: str) -> int:
    """Load CONVS into MODEL's conv-like layers in order; the file's logits only into a head of their size.

    Returns how many layers were loaded; InputError names the first layer whose shape does not match.
    """
    layers = conv_layers(model)
    backbone, logits = convs[:-1], convs[-1]
    rest = layers[len(backbone) :]
    if len(layers) < len(backbone) or len(rest) > 1:
        raise InputError(
            f"--weights {source}: {len(convs)} convolutions in the file, {len(layers)} in the Keras model "
            "(is it a MobileNetV2 with alpha 1.0?)"
        )
    pairs = list(zip(layers, backbone, strict=False))
    # A new head (10 garment classes, not 1001 ImageNet ones) starts from its own initialization.
    if rest and keras_kernel(logits, rest[0]).shape == tuple(rest[0].get_weights()[0].shape):
        pairs.append((rest[0], logits))
    for layer, conv in pairs:
        load_layer(model, layer, conv, source)
    return len(pairs)


def load_layer(model: keras.Model, layer: keras.layers.Layer, conv: ConvWeights, source: str) -> None:
    """One kernel into LAYER, its bias into LAYER (Dense) or into the batch norm that follows it."""
    kernel = keras_kernel(conv, layer)
    expected = tuple(layer.get_weights()[0].shape)
    if kernel.shape != expected:
        raise InputError(
            f"--weights {source}: layer {layer.name} expects a {expected} kernel, the file has "
            f"{kernel.shape} (is it a MobileNetV2 with alpha 1.0?)"
        )
    channels = expected[-1] if not isinstance(layer, keras.layers.DepthwiseConv2D) else expected[2]
    bias = conv.bias if conv.bias is not None else np.zeros(channels, np.float32)
    if isinstance(layer, keras.layers.Dense):
        layer.set_weights([kernel, bias])
        return
    layer.set_weights([kernel])
    norm = following_batch_norm(model, layer)
    if norm is None:
        raise InputError(f"--weights {source}: layer {layer.name} has no batch norm to take its bias")
    ones = np.ones_like(bias)
    norm.set_weights([ones, bias, np.zeros_like(bias), ones - np.float32(norm.epsilon)])


MIN_AGREEMENT = 0.95  # share of decided images on which the Keras float model must pick the TFLite's top-1
# The TFLite's top-1 must lead its runner-up by this much (5 steps of a uint8 softmax) for an image to be decided:
# garment photos are near-ties among ImageNet's 1,001 classes, where the file's own int8 rounding picks the winner.
DECIDED_MARGIN = 0.02


@dataclass(frozen=True)
class Agreement:
    """How often the transplanted Keras float model and the source TFLite agree on top-1."""

    images: int
    agreed: int
    decided: int  # images whose TFLite top-1 leads by at least DECIDED_MARGIN
    decided_agreed: int
    resolution: int
    classes: int

    @property
    def share(self) -> float:
        """Agreement on the decided images, the figure the check holds to MIN_AGREEMENT."""
        return self.decided_agreed / self.decided if self.decided else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "agreed": self.agreed,
            "decided_margin": DECIDED_MARGIN,
            "decided": self.decided,
            "decided_agreed": self.decided_agreed,
            "share": round(self.share, 4),
            "resolution": self.resolution,
            "classes": self.classes,
        }


def imagenet_model(path: Path) -> tuple[keras.Model, int]:
    """The whole source network (its own classes and input size) rebuilt in Keras with the file's weights."""
    try:
        source, output = io_specs(load_interpreter(path, xnnpack=False))
    except ModelError as exc:
        raise InputError(f"--weights {path}: {exc}") from None
    resolution, classes = source.shape[1], output.shape[-1]
    model = keras.applications.MobileNetV2(
        input_shape=(resolution, resolution, 3), alpha=1.0, weights=None, classes=classes, classifier_activation=None
    )
    load_into(model, read_conv_weights(path), str(path))
    return model, classes


def check_agreement(path: Path, frames_bgr: Frames, spec: Preprocessing) -> Agreement:
    """Top-1 of the Keras rebuild (float) against the TFLite run by the daemon's own classifier, per frame.

    The rebuild gets the TFLite's own input: the daemon's preprocessing of the frame, quantized to the
    file's input type, dequantized (for Coral's file, (p - 127) / 127.5 rather than (p - 127.5) / 127.5).
    """
    model, classes = imagenet_model(path)
    resolution = int(model.input_shape[1])
    names = tuple(str(i) for i in range(classes))
    agreed = decided = decided_agreed = 0
    with Classifier.from_file(path, names, spec) as tflite:
        for frame in frames_bgr:
            frame_bgr = np.ascontiguousarray(frame)
            seen = dequantize(tflite.preprocess(frame_bgr), tflite.input_spec.quant)
            keras_top = int(np.argmax(model(seen)[0]))
            scores = tflite.classify(frame_bgr).scores
            first, second = np.sort(scores)[::-1][:2]
            same = int(np.argmax(scores)) == keras_top
            agreed += same
            if first - second >= DECIDED_MARGIN:
                decided += 1
                decided_agreed += same
    return Agreement(len(frames_bgr), agreed, decided, decided_agreed, resolution, classes)


def verified(path: Path, frames_bgr: Frames, spec: Preprocessing) -> Agreement:
    """check_agreement, refusing a transplant below MIN_AGREEMENT (the layers did not line up)."""
    agreement = check_agreement(path, frames_bgr, spec)
    print(
        f"      transplant check: Keras and TFLite agree on top-1 for {agreement.decided_agreed} of "
        f"{agreement.decided} images where the TFLite's top-1 leads by >= {DECIDED_MARGIN} ({agreement.share:.1%}); "
        f"{agreement.agreed} of all {agreement.images}"
    )
    if agreement.share < MIN_AGREEMENT:
        raise InputError(
            f"--weights {path}: the Keras rebuild agrees with the TFLite on only {agreement.share:.1%} of "
            f"{agreement.decided} decided images (at least {MIN_AGREEMENT:.0%} expected): "
            "the weights did not transplant"
        )
    return agreement


def check_on_photos(
    path: Path, frames_bgr: Frames, labels: npt.NDArray[np.int64], count: int, spec: Preprocessing
) -> Agreement:
    """`verified` on COUNT training photos spread over every class (not the first class's only), negatives left out."""
    photos = np.flatnonzero(labels >= 0)
    picked = photos[np.linspace(0, len(photos) - 1, min(count, len(photos))).astype(int)]
    return verified(path, [frames_bgr[i] for i in picked], spec)
