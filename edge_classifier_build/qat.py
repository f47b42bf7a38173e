"""Quantization-aware training: fine-tune with fake-quantized weights and activations (tfmot), then full int8.

A pruned model gets tfmot's prune-preserving scheme, so the fine-tuning keeps its zeros.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import tf_keras as keras

from edge_classifier.errors import InputError
from edge_classifier.model.preprocess import Preprocessing

from . import train
from .fitting import FitResult, fit
from .prune import tfmot_module

logger = logging.getLogger(__name__)

# tfmot 0.8.1 cannot wrap the TFOpLambda layers (x + 3, x * 1/6) of Keras' hard-swish.
QAT_ARCHITECTURES = ("mobilenetv2",)


@dataclass(frozen=True)
class QatOptions:
    """Fine-tuning epochs and their starting learning rate."""

    epochs: int
    learning_rate: float


def check_qat_options(options: QatOptions, architecture: str) -> None:
    if options.epochs < 1:
        raise InputError(f"--qat-epochs {options.epochs} must be at least 1")
    if architecture not in QAT_ARCHITECTURES:
        raise InputError(
            f"--quantization qat is not available for --architecture {architecture}: tfmot cannot quantize "
            "its TFOpLambda (hard-swish) layers; use --quantization int8"
        )


def quantize_aware(model: keras.Model, keep_sparsity: bool) -> keras.Model:
    """MODEL with fake-quantization wrappers (the default 8-bit scheme, or its prune-preserving variant)."""
    tfmot = tfmot_module()
    quantization = tfmot.quantization.keras
    if keep_sparsity:
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        return quantization.quantize_apply(quantization.quantize_annotate_model(model), scheme)
    return quantization.quantize_model(model)


def quantization_aware_training(
    model: keras.Model,
    train_pixels: npt.NDArray[np.uint8],
    train_labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    options: train.TrainOptions,
    qat_options: QatOptions,
    keep_sparsity: bool,
    verbose: int = 1,
) -> tuple[keras.Model, FitResult]:
    """Fine-tune a fake-quantized copy of the trained MODEL; returns it (ready for int8 conversion) and the fit."""
    train.set_bn_momentum(model, train.FINETUNE_BN_MOMENTUM)  # copied into the quantized clone's config
    quantized = quantize_aware(model, keep_sparsity)
    ds, steps = train.one_hot_dataset(train_pixels, train_labels, int(model.output_shape[-1]), spec, options)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing)
    result = fit(quantized, ds, steps, qat_options.epochs, qat_options.learning_rate, loss, ["accuracy"], verbose)
    return quantized, result
