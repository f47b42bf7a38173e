"""The Keras (tf_keras) backbones the build can train: MobileNetV2 and MobileNetV3-Small, with a logits layer.

Every model is one flat functional graph (the backbone's layers are not nested in a sub-model) so
that tfmot can wrap its layers for pruning and quantization-aware training. Its last two layers are
`logits` (a Dense layer without activation, what distillation needs) and `probabilities` (softmax,
the output the daemon reads).
"""

from __future__ import annotations

import logging

import tensorflow as tf
import tf_keras as keras

from edge_classifier.errors import InputError, first_line

from .options import ARCHITECTURES

logger = logging.getLogger(__name__)

LOGITS_LAYER = "logits"
OUTPUT_LAYER = "probabilities"


def application(architecture: str, inputs: keras.KerasTensor, alpha: float, weights: str | None) -> keras.Model:
    """The Keras application without its top, global-average-pooled."""
    if architecture == "mobilenetv2":
        return keras.applications.MobileNetV2(
            input_tensor=inputs, alpha=alpha, include_top=False, weights=weights, pooling="avg"
        )
    if architecture == "mobilenetv3small":
        # The build normalizes pixels itself (edge_classifier.model.preprocess): no Rescaling layer inside.
        return keras.applications.MobileNetV3Small(
            input_tensor=inputs,
            alpha=alpha,
            include_top=False,
            weights=weights,
            pooling="avg",
            include_preprocessing=False,
        )
    raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")


def backbone(
    architecture: str, inputs: keras.KerasTensor, alpha: float, imagenet: bool, bn_momentum: float | None
) -> keras.Model:
    """The convolutional feature extractor built on INPUTS, ending in global average pooling."""
    weights = "imagenet" if imagenet else None
    try:
        model = application(architecture, inputs, alpha, weights)
    except Exception as exc:
        if not imagenet:
            raise
        # Keras downloads the weights on first use; without internet it raises a bare Exception.
        reason = first_line(exc)
        raise InputError(f"--weights imagenet: cannot get the weights ({reason}); use --weights FILE") from None
    if bn_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    return model


def classifier(
    architecture: str,
    resolution: int,
    channels: int,
    alpha: float,
    num_classes: int,
    dropout: float,
    imagenet: bool = False,
    bn_momentum: float | None = None,
) -> keras.Model:
    """Backbone, dropout, a `logits` Dense layer and a `probabilities` softmax, as one flat model."""
    inputs = keras.Input(shape=(resolution, resolution, channels), name="image")
    features = backbone(architecture, inputs, alpha, imagenet, bn_momentum).output
    features = keras.layers.Dropout(dropout, name="dropout")(features)
    logits = keras.layers.Dense(num_classes, name=LOGITS_LAYER)(features)
    outputs = keras.layers.Activation("softmax", name=OUTPUT_LAYER)(logits)
    short = "mobilenetv2" if architecture == "mobilenetv2" else "mobilenetv3s"
    return keras.Model(inputs, outputs, name=f"{short}_{alpha}_{resolution}")


def logits_model(model: keras.Model) -> keras.Model:
    """The same layers up to the pre-softmax logits.

    A model without a `logits` layer (a teacher from elsewhere) gets log-probabilities instead:
    they differ from its logits by one constant per image, which a softmax (at any temperature)
    cancels, so distillation sees the same soft targets.
    """
    try:
        return keras.Model(model.input, model.get_layer(LOGITS_LAYER).output)
    except ValueError:
        logger.info("%s has no %r layer: using log-probabilities as logits", model.name, LOGITS_LAYER)
        log_probabilities = keras.layers.Lambda(lambda p: tf.math.log(tf.maximum(p, 1e-12)))(model.output)
        return keras.Model(model.input, log_probabilities)
