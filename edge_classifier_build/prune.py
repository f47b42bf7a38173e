"""Magnitude pruning: zero the smallest weights of every Conv2D and Dense layer on a schedule, while fine-tuning.

Depthwise convolutions are left dense: they hold few weights and each one matters. The pruning
wrappers are stripped before conversion, so the .tflite holds ordinary (mostly zero) weight tensors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import tf_keras as keras

from edge_classifier.errors import InputError
from edge_classifier.model.preprocess import Preprocessing

from . import train
from .fitting import FitResult, fit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneOptions:
    """Target sparsity, fine-tuning epochs and their starting learning rate."""

    sparsity: float
    epochs: int
    learning_rate: float


def check_prune_options(options: PruneOptions) -> None:
    if not 0.0 < options.sparsity < 1.0:
        raise InputError(f"--prune-sparsity {options.sparsity} must be between 0 and 1 (exclusive)")
    if options.epochs < 1:
        raise InputError(f"--prune-epochs {options.epochs} must be at least 1")


def tfmot_module() -> Any:
    """tensorflow_model_optimization, or InputError saying how to install it."""
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError:
        raise InputError(
            "pruning and quantization-aware training need tensorflow-model-optimization: "
            "pip install --no-deps tensorflow-model-optimization==0.8.1"
        ) from None
    return tfmot


def is_prunable(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Conv2D | keras.layers.Dense) and not isinstance(
        layer, keras.layers.DepthwiseConv2D
    )


def schedule(tfmot: Any, sparsity: float, steps_per_epoch: int, epochs: int) -> Any:
    """From 0 to SPARSITY over the first three quarters of the steps, then fine-tuning at SPARSITY."""
    total = steps_per_epoch * epochs
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=max(1, (3 * total) // 4),
        frequency=max(1, steps_per_epoch // 8),
    )


def prune(
    model: keras.Model,
    train_pixels: npt.NDArray[np.uint8],
    train_labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    options: train.TrainOptions,
    prune_options: PruneOptions,
    verbose: int = 1,
) -> tuple[keras.Model, FitResult]:
    """Fine-tune a pruned copy of MODEL; returns the stripped (plain Keras) model and the fit summary."""
    tfmot = tfmot_module()
    ds, steps = train.one_hot_dataset(train_pixels, train_labels, int(model.output_shape[-1]), spec, options)
    pruning_schedule = schedule(tfmot, prune_options.sparsity, steps, prune_options.epochs)

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if is_prunable(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=pruning_schedule)
        return layer

    train.set_bn_momentum(model, train.FINETUNE_BN_MOMENTUM)
    wrapped = keras.models.clone_model(model, clone_function=wrap)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing)
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    result = fit(
        wrapped, ds, steps, prune_options.epochs, prune_options.learning_rate, loss, ["accuracy"], verbose, callbacks
    )
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    sparsity = keras_sparsity(stripped)
    logger.info("pruned to %.1f%% zeros in Conv2D/Dense kernels", 100 * sparsity)
    return stripped, replace(result, keras_sparsity=sparsity)


def keras_sparsity(model: keras.Model) -> float:
    """Share of exact zeros in the kernels of the prunable layers."""
    zeros = total = 0
    for layer in model.layers:
        if is_prunable(layer):
            kernel = layer.kernel.numpy()
            zeros += int(np.count_nonzero(kernel == 0))
            total += kernel.size
    return zeros / total if total else 0.0
