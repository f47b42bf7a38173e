"""One Keras training run: Adam on a cosine schedule, and what it cost and reached (FitResult)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import tf_keras as keras

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """The Keras history of one fit, its wall time and, for pruning, the sparsity it reached."""

    history: dict[str, list[float]]
    seconds: float
    keras_sparsity: float | None = None  # pruning: share of zeros in the prunable kernels once stripped

    @property
    def final_accuracy(self) -> float:
        """Training accuracy of the last epoch, in percent."""
        return round(100 * self.history["accuracy"][-1], 2)


def fit(
    model: Any,
    dataset: Any,
    steps_per_epoch: int,
    epochs: int,
    learning_rate: float,
    loss: Any,
    metrics: list[Any],
    verbose: int = 1,
    callbacks: list[Any] | None = None,
) -> FitResult:
    """Compile with Adam on a cosine schedule and fit; returns history and wall time."""
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps_per_epoch * epochs))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=metrics)
    start = time.monotonic()
    history = model.fit(dataset, epochs=epochs, verbose=verbose, callbacks=callbacks or [])
    return FitResult({key: [float(v) for v in values] for key, values in history.history.items()},
                     time.monotonic() - start)  # fmt: skip
