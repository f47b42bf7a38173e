"""The Keras (tf_keras, Keras 2) MobileNetV2 classifier and its training loop."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
import tf_keras as keras

from edge_classifier.errors import InputError
from edge_classifier.preprocess import Preprocessing

logger = logging.getLogger(__name__)

MIN_RESOLUTION = 32  # Keras' MobileNetV2 refuses smaller inputs
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_RESOLUTIONS = (96, 128, 160, 192, 224)


@dataclass(frozen=True)
class TrainOptions:
    """Everything that decides the trained weights."""

    alpha: float
    resolution: int
    epochs: int
    batch_size: int
    learning_rate: float
    label_smoothing: float
    dropout: float
    weights: str  # "none", "imagenet" or a path to a .h5/.keras weights file
    seed: int
    augment: bool = True
    bn_momentum: float | None = None  # None: Keras' 0.999, too slow for runs of a few dozen steps


def check_options(options: TrainOptions) -> None:
    """Refuse options the architecture cannot build, before any data is loaded."""
    if options.resolution < MIN_RESOLUTION:
        raise InputError(f"--resolution {options.resolution} is below MobileNetV2's minimum of {MIN_RESOLUTION}")
    if options.alpha <= 0:
        raise InputError(f"--alpha {options.alpha} must be positive")
    if options.bn_momentum is not None and not 0 < options.bn_momentum < 1:
        raise InputError(f"--bn-momentum {options.bn_momentum} must be between 0 and 1")
    if options.weights == "imagenet":
        if options.alpha not in IMAGENET_ALPHAS or options.resolution not in IMAGENET_RESOLUTIONS:
            raise InputError(
                f"--weights imagenet exists only for alpha in {IMAGENET_ALPHAS} and resolution in "
                f"{IMAGENET_RESOLUTIONS}, not alpha {options.alpha} at {options.resolution}"
            )
    elif options.weights != "none" and not Path(options.weights).is_file():
        raise InputError(f"--weights {options.weights!r} is neither 'none', 'imagenet' nor an existing weights file")


def build_model(options: TrainOptions, num_classes: int, channels: int) -> keras.Model:
    """MobileNetV2 backbone, global average pooling, dropout and a softmax classifier."""
    keras.utils.set_random_seed(options.seed)
    shape = (options.resolution, options.resolution, channels)
    backbone = keras.applications.MobileNetV2(
        input_shape=shape,
        alpha=options.alpha,
        include_top=False,
        weights="imagenet" if options.weights == "imagenet" else None,
        pooling="avg",
    )
    if options.bn_momentum is not None:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = options.bn_momentum
    inputs = keras.Input(shape=shape, name="image")
    features = backbone(inputs)
    features = keras.layers.Dropout(options.dropout, name="dropout")(features)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(features)
    model = keras.Model(inputs, outputs, name=f"mobilenetv2_{options.alpha}_{options.resolution}")
    if options.weights not in ("none", "imagenet"):
        try:
            model.load_weights(options.weights)
        except (ValueError, OSError) as exc:
            raise InputError(f"--weights {options.weights}: cannot load into this model ({exc})") from None
    return model


def normalize_tf(pixels: tf.Tensor, spec: Preprocessing) -> tf.Tensor:
    """The same arithmetic as edge_classifier.preprocess.normalize, inside the tf.data graph."""
    mean = tf.constant(spec.mean, dtype=tf.float32)
    std = tf.constant(spec.std, dtype=tf.float32)
    return (tf.cast(pixels, tf.float32) - mean) / std


def make_dataset(
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    batch_size: int,
    training: bool,
    seed: int,
) -> tf.data.Dataset:
    """Batches of normalized images; training adds random flips and small shifts."""
    height, width = pixels.shape[1:3]
    pad = max(2, height // 8)
    ds = tf.data.Dataset.from_tensor_slices((pixels, labels))
    if training:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)

        def augment(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            image = tf.image.random_flip_left_right(image)
            # Pads with black, the Fashion-MNIST background, then crops back: a shift of up to `pad`.
            image = tf.image.pad_to_bounding_box(image, pad, pad, height + 2 * pad, width + 2 * pad)
            image = tf.image.random_crop(image, (height, width, pixels.shape[3]))
            return image, label

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda x, y: (normalize_tf(x, spec), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def train(
    model: keras.Model,
    train_pixels: npt.NDArray[np.uint8],
    train_labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    options: TrainOptions,
    verbose: int = 1,
) -> dict[str, Any]:
    """Fit with Adam on a cosine schedule and label smoothing; returns history and wall time."""
    steps = int(np.ceil(len(train_labels) / options.batch_size)) * options.epochs
    schedule = keras.optimizers.schedules.CosineDecay(options.learning_rate, decay_steps=max(1, steps))
    num_classes = int(model.output_shape[-1])
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing),
        metrics=["accuracy"],
    )
    one_hot = np.eye(num_classes, dtype=np.float32)[train_labels]
    ds = make_dataset(train_pixels, one_hot, spec, options.batch_size, options.augment, options.seed)
    start = time.monotonic()
    history = model.fit(ds, epochs=options.epochs, verbose=verbose)
    return {"history": history.history, "seconds": time.monotonic() - start}
