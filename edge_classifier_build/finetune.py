"""Transfer learning: a linear probe on the pretrained network's pooled features, then the whole network fine-tuned.

A head trained from random weights sends large gradients into a pretrained backbone and undoes
part of what it knew; fitting the head first on the frozen backbone's features (computed once,
from the daemon's own centre crop) and only then training every layer keeps them (Kumar et al.,
"Fine-tuning can distort pretrained features", ICLR 2022). The batch norms stay in inference mode
throughout: a transplanted network's batch norms hold no real statistics (transplant.py), and
batches of a few dozen photos estimate them worse than ImageNet did.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import tf_keras as keras

from edge_classifier.model.preprocess import Preprocessing, normalize

from . import architectures, train
from .fitting import FitResult, fit
from .negatives import targets

logger = logging.getLogger(__name__)

PROBE_LEARNING_RATE = 1e-3
PROBE_BATCH = 64


@dataclass(frozen=True)
class Probe:
    """The linear probe's final training accuracy (percent) and wall time."""

    accuracy: float
    seconds: float


def freeze_batch_norm(model: keras.Model) -> int:
    """Every BatchNormalization layer to inference mode and untrainable; returns how many."""
    frozen = 0
    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            frozen += 1
    return frozen


def at_resolution(pixels: npt.NDArray[np.uint8], resolution: int) -> npt.NDArray[np.uint8]:
    """Stored training squares (larger with camera augmentation) at the model's input size."""
    if pixels.shape[1] == resolution:
        return pixels
    return np.stack([cv2.resize(p, (resolution, resolution), interpolation=cv2.INTER_AREA) for p in pixels])


def pooled_features(model: keras.Model, pixels: npt.NDArray[np.uint8], spec: Preprocessing) -> npt.NDArray[Any]:
    """The backbone's pooled feature vector of every image (the input of the dropout before the logits)."""
    extractor = keras.Model(model.input, model.get_layer("dropout").input)
    resolution = int(model.input_shape[1])
    images = normalize(at_resolution(pixels, resolution), spec)
    return np.asarray(extractor.predict(images, batch_size=32, verbose=0))


def linear_probe(
    model: keras.Model,
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    options: train.TrainOptions,
    verbose: int,
) -> Probe:
    """Fit MODEL's `logits` layer on the frozen backbone's features; returns the probe's accuracy and time."""
    start = time.monotonic()
    features = pooled_features(model, pixels, spec)
    num_classes = int(model.output_shape[-1])
    keras.utils.set_random_seed(options.seed)
    head = keras.Sequential(
        [
            keras.Input(shape=features.shape[1:]),
            keras.layers.Dropout(options.dropout),
            keras.layers.Dense(num_classes, name=architectures.LOGITS_LAYER),
        ]
    )
    one_hot = targets(labels, num_classes)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=options.label_smoothing)
    head.compile(optimizer=keras.optimizers.Adam(PROBE_LEARNING_RATE), loss=loss, metrics=["accuracy"])
    history = head.fit(
        features, one_hot, batch_size=PROBE_BATCH, epochs=options.head_epochs, shuffle=True, verbose=0
    ).history
    model.get_layer(architectures.LOGITS_LAYER).set_weights(head.get_layer(architectures.LOGITS_LAYER).get_weights())
    accuracy = round(100 * history["accuracy"][-1], 2)
    seconds = time.monotonic() - start
    if verbose:
        print(f"      linear probe: {options.head_epochs} epochs on pooled features, train accuracy {accuracy}%")
    return Probe(accuracy, seconds)


def fine_tune(
    model: keras.Model,
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    options: train.TrainOptions,
    verbose: int,
) -> FitResult:
    """The linear probe (with --head-epochs), then every layer but the batch norms for --epochs epochs."""
    probe = linear_probe(model, pixels, labels, spec, options, verbose) if options.head_epochs else None
    frozen = freeze_batch_norm(model)
    logger.info("fine-tuning with %d batch norms in inference mode", frozen)
    ds, steps = train.one_hot_dataset(pixels, labels, int(model.output_shape[-1]), spec, options)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing)
    result = fit(model, ds, steps, options.epochs, options.learning_rate, loss, ["accuracy"], verbose)
    # The probe is part of the training: its time is charged to the fit.
    return replace(result, seconds=result.seconds + probe.seconds) if probe is not None else result
