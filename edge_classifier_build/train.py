"""Training options, the seeded Keras (tf_keras, Keras 2) classifier, its data pipeline and training loop."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
import tf_keras as keras

from edge_classifier.errors import InputError
from edge_classifier.model.preprocess import Preprocessing

from . import architectures
from .fitting import FitResult, fit
from .negatives import targets
from .options import DISPLAY_NAMES

logger = logging.getLogger(__name__)

MIN_RESOLUTION = 32  # Keras' MobileNetV2 refuses smaller inputs; MobileNetV3 ends at 1x1 there
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_RESOLUTIONS = (96, 128, 160, 192, 224)
IMAGENET_V3_ALPHAS = (0.75, 1.0)


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
    random_erasing: float = 0.0  # probability of erasing one rectangle per training image
    bn_momentum: float | None = None  # None: Keras' 0.999, too slow for runs of a few dozen steps
    architecture: str = "mobilenetv2"
    augmentation: str = "shift"  # "shift" (flips and shifts) or "camera" (camera_augment, for real photos)
    head_epochs: int = 0  # epochs of a linear probe on the frozen backbone's pooled features before fine-tuning
    negatives: int = 0  # synthetic no-garment scenes added to the training set (negatives.py)


AUGMENTATIONS = ("shift", "camera")


def is_tflite_weights(weights: str) -> bool:
    return weights.lower().endswith(".tflite")


def pretrained(options: TrainOptions) -> bool:
    return options.weights != "none"


def check_options(options: TrainOptions) -> None:
    """Refuse options the architecture cannot build, before any data is loaded."""
    name = DISPLAY_NAMES[options.architecture]
    if options.resolution < MIN_RESOLUTION:
        raise InputError(f"--resolution {options.resolution} is below {name}'s minimum of {MIN_RESOLUTION}")
    if options.alpha <= 0:
        raise InputError(f"--alpha {options.alpha} must be positive")
    if not 0 <= options.random_erasing <= 1:
        raise InputError(f"--random-erasing {options.random_erasing} must be between 0 and 1")
    if options.random_erasing > 0 and not options.augment:
        raise InputError(
            f"--random-erasing {options.random_erasing} is an augmentation; it cannot go with --no-augment"
        )
    if options.augmentation not in AUGMENTATIONS:
        raise InputError(f"--augmentation {options.augmentation!r} is not one of {', '.join(AUGMENTATIONS)}")
    if options.negatives < 0:
        raise InputError(f"--negatives {options.negatives} must be 0 or more")
    if options.head_epochs < 0:
        raise InputError(f"--head-epochs {options.head_epochs} must be 0 (no linear probe) or more")
    if options.head_epochs and not pretrained(options):
        raise InputError("--head-epochs trains a head on pretrained features; it needs --weights")
    if is_tflite_weights(options.weights) and (options.architecture, options.alpha) != ("mobilenetv2", 1.0):
        raise InputError(
            f"--weights {options.weights}: a TFLite file's weights fit MobileNetV2 alpha 1.0 only, "
            f"not {name} alpha {options.alpha}"
        )
    if options.bn_momentum is not None and not 0 < options.bn_momentum < 1:
        raise InputError(f"--bn-momentum {options.bn_momentum} must be between 0 and 1")
    if options.weights == "imagenet" and options.architecture == "mobilenetv3small":
        if options.alpha not in IMAGENET_V3_ALPHAS:
            raise InputError(f"--weights imagenet exists for {name} only for alpha in {IMAGENET_V3_ALPHAS}")
    elif options.weights == "imagenet":
        if options.alpha not in IMAGENET_ALPHAS or options.resolution not in IMAGENET_RESOLUTIONS:
            raise InputError(
                f"--weights imagenet exists only for alpha in {IMAGENET_ALPHAS} and resolution in "
                f"{IMAGENET_RESOLUTIONS}, not alpha {options.alpha} at {options.resolution}"
            )
    elif options.weights != "none" and not Path(options.weights).is_file():
        raise InputError(f"--weights {options.weights!r} is neither 'none', 'imagenet' nor an existing weights file")


def build_model(options: TrainOptions, num_classes: int, channels: int) -> keras.Model:
    """The chosen backbone, global average pooling, dropout, logits and a softmax, seeded."""
    keras.utils.set_random_seed(options.seed)
    model = architectures.classifier(
        options.architecture,
        options.resolution,
        channels,
        options.alpha,
        num_classes,
        options.dropout,
        imagenet=options.weights == "imagenet",
        bn_momentum=options.bn_momentum,
    )
    if is_tflite_weights(options.weights):
        from . import transplant

        loaded = transplant.load_into(model, transplant.read_conv_weights(Path(options.weights)), options.weights)
        logger.info("loaded %d layers from %s", loaded, options.weights)
    elif options.weights not in ("none", "imagenet"):
        try:
            model.load_weights(options.weights)
        except (ValueError, OSError) as exc:
            raise InputError(f"--weights {options.weights}: cannot load into this model ({exc})") from None
    return model


FINETUNE_BN_MOMENTUM = 0.99


def set_bn_momentum(model: keras.Model, momentum: float) -> None:
    """Set every BatchNormalization layer's moving-average momentum (nested models included).

    A fine-tune of a few epochs (pruning, QAT) changes the weights under the batch norms; at Keras'
    0.999 their moving statistics lag behind and the model collapses in inference mode.
    """
    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def normalize_tf(pixels: tf.Tensor, spec: Preprocessing) -> tf.Tensor:
    """The same arithmetic as edge_classifier.preprocess.normalize, inside the tf.data graph."""
    mean = tf.constant(spec.mean, dtype=tf.float32)
    std = tf.constant(spec.std, dtype=tf.float32)
    return (tf.cast(pixels, tf.float32) - mean) / std


def random_erase(image: tf.Tensor, probability: float) -> tf.Tensor:
    """With PROBABILITY, replace one rectangle (2-40 % of the area, aspect 0.3-3.3) by grey noise.

    Random erasing (Zhong et al., AAAI 2020) with their default ranges, two details changed: the
    aspect ratio is drawn log-uniform (as torchvision does), and a rectangle that does not fit is
    clipped to the image rather than drawn again. The noise is grey because Fashion-MNIST is; an
    occluding hand or price tag is what it stands for.
    """
    height, width = int(image.shape[0]), int(image.shape[1])
    area = tf.random.uniform([], 0.02, 0.4) * float(height * width)
    aspect = tf.exp(tf.random.uniform([], float(np.log(0.3)), float(-np.log(0.3))))
    h = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32), 1, height)
    w = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32), 1, width)
    top = tf.random.uniform([], 0, height - h + 1, dtype=tf.int32)
    left = tf.random.uniform([], 0, width - w + 1, dtype=tf.int32)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    inside = inside & (tf.random.uniform([]) < probability)
    noise = tf.cast(tf.random.uniform((height, width, 1), 0, 256, dtype=tf.int32), image.dtype)
    return tf.where(inside[:, :, None], noise, image)


def make_dataset(
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[Any],  # class indices, or target rows (negatives.targets)
    spec: Preprocessing,
    batch_size: int,
    training: bool,
    seed: int,
    random_erasing: float = 0.0,
    augmentation: str = "shift",
    resolution: int | None = None,
) -> tf.data.Dataset:
    """Batches of normalized images; training adds random flips and small shifts (or, with camera
    augmentation, crops RESOLUTION-sized camera-like views) and, if asked, random erasing."""
    if training and augmentation == "camera":
        return camera_dataset(pixels, labels, spec, batch_size, seed, random_erasing, resolution or pixels.shape[1])
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
            if random_erasing > 0:
                image = random_erase(image, random_erasing)
            return image, label

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda x, y: (normalize_tf(x, spec), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def camera_dataset(
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[Any],
    spec: Preprocessing,
    batch_size: int,
    seed: int,
    random_erasing: float,
    resolution: int,
) -> tf.data.Dataset:
    """Shuffled training batches of camera-like views (camera_augment) of the stored squares."""
    from . import camera_augment

    def augment(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = camera_augment.augment(image, resolution)
        if random_erasing > 0:
            image = random_erase(image, random_erasing)
        return normalize_tf(image, spec), label

    ds = tf.data.Dataset.from_tensor_slices((pixels, labels))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def one_hot_dataset(
    pixels: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    num_classes: int,
    spec: Preprocessing,
    options: TrainOptions,
) -> tuple[tf.data.Dataset, int]:
    """The training batches with one-hot labels, and the number of steps per epoch."""
    one_hot = targets(labels, num_classes)
    ds = make_dataset(
        pixels, one_hot, spec, options.batch_size, options.augment, options.seed, options.random_erasing,
        options.augmentation, options.resolution,
    )  # fmt: skip
    return ds, int(np.ceil(len(labels) / options.batch_size))


def train(
    model: keras.Model,
    train_pixels: npt.NDArray[np.uint8],
    train_labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    options: TrainOptions,
    verbose: int = 1,
) -> FitResult:
    """Fit with Adam on a cosine schedule and label smoothing; returns history and wall time.

    A pretrained network first gets a linear probe (with --head-epochs) and keeps its batch norms
    in inference mode (finetune.py).
    """
    if pretrained(options):
        from . import finetune

        return finetune.fine_tune(model, train_pixels, train_labels, spec, options, verbose)
    ds, steps = one_hot_dataset(train_pixels, train_labels, int(model.output_shape[-1]), spec, options)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing)
    return fit(model, ds, steps, options.epochs, options.learning_rate, loss, ["accuracy"], verbose)
