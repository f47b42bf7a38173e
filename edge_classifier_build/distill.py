"""Knowledge distillation: a student trained on labels and on a frozen teacher's softened predictions.

loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The cross-entropy term keeps the build's label smoothing, so alpha = 1 is exactly the plain build.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
import tf_keras as keras

from edge_classifier.errors import InputError, first_line
from edge_classifier.model.preprocess import Preprocessing

from . import architectures, train
from .fitting import FitResult, fit

logger = logging.getLogger(__name__)

# A Keras loss or metric function: (one-hot targets, predictions) -> a tensor (tf.Tensor is untyped).
TensorFunction = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class DistillOptions:
    """How much the labels and the teacher count, and how soft the teacher's targets are."""

    alpha: float
    temperature: float


def check_distill_options(options: DistillOptions) -> None:
    if not 0.0 <= options.alpha <= 1.0:
        raise InputError(f"--distill-alpha {options.alpha} must be between 0 and 1")
    if options.temperature <= 0:
        raise InputError(f"--distill-temperature {options.temperature} must be positive")


def load_teacher(path: Path) -> keras.Model:
    """A saved Keras classifier (softmax output; a `logits` layer is used when it has one)."""
    try:
        model = keras.models.load_model(path, compile=False)
    except (ValueError, OSError, ImportError) as exc:
        raise InputError(f"--teacher {path}: not a loadable Keras model ({first_line(exc)})") from None
    model.trainable = False
    return model


def distillation_loss(num_classes: int, options: DistillOptions, label_smoothing: float) -> TensorFunction:
    """A Keras loss over y_pred = [student logits | teacher logits] and one-hot y_true."""
    temperature = float(options.temperature)

    def loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        student, teacher = y_pred[:, :num_classes], tf.stop_gradient(y_pred[:, num_classes:])
        hard = keras.losses.categorical_crossentropy(y_true, student, from_logits=True, label_smoothing=label_smoothing)
        soft = keras.losses.kl_divergence(tf.nn.softmax(teacher / temperature), tf.nn.softmax(student / temperature))
        return options.alpha * hard + (1.0 - options.alpha) * temperature**2 * soft

    return loss


def student_accuracy(num_classes: int) -> TensorFunction:
    """Accuracy of the student half of y_pred, reported under the usual `accuracy` key."""

    def accuracy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return keras.metrics.categorical_accuracy(y_true, y_pred[:, :num_classes])

    return accuracy


def teacher_student_model(student: keras.Model, teacher: keras.Model) -> keras.Model:
    """One model whose output is [student logits | teacher logits]; the teacher runs frozen, in inference mode.

    A teacher with another input size sees the student's (already augmented) image resized bilinearly.
    """
    inputs = keras.Input(shape=student.input_shape[1:], name="image")
    student_logits = architectures.logits_model(student)(inputs)
    teacher_inputs = inputs
    teacher_size = tuple(teacher.input_shape[1:3])
    if teacher_size != tuple(student.input_shape[1:3]):
        teacher_inputs = keras.layers.Resizing(*teacher_size, interpolation="bilinear")(inputs)
    teacher_logits = architectures.logits_model(teacher)(teacher_inputs, training=False)
    outputs = keras.layers.Concatenate(name="student_teacher_logits")([student_logits, teacher_logits])
    return keras.Model(inputs, outputs, name="distillation")


def distill(
    student: keras.Model,
    teacher: keras.Model,
    train_pixels: npt.NDArray[np.uint8],
    train_labels: npt.NDArray[np.int64],
    spec: Preprocessing,
    options: train.TrainOptions,
    distill_options: DistillOptions,
    verbose: int = 1,
) -> FitResult:
    """Train STUDENT in place on the distillation loss; same data, schedule and epochs as a plain build."""
    num_classes = int(student.output_shape[-1])
    if int(teacher.output_shape[-1]) != num_classes:
        raise InputError(f"the teacher has {teacher.output_shape[-1]} classes, the data {num_classes}")
    teacher.trainable = False
    combined = teacher_student_model(student, teacher)
    ds, steps = train.one_hot_dataset(train_pixels, train_labels, num_classes, spec, options)
    loss = distillation_loss(num_classes, distill_options, options.label_smoothing)
    return fit(
        combined, ds, steps, options.epochs, options.learning_rate, loss, [student_accuracy(num_classes)], verbose
    )
