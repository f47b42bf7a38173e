"""What one classification gives: scores, the raw output, stage times, and label/score pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt


class LabelScore(NamedTuple):
    """One label and its score in [0, 1]."""

    label: str
    score: float


@dataclass(frozen=True)
class Classification:
    """Scores for one image plus how long each stage took (seconds)."""

    scores: npt.NDArray[np.float32]
    raw: npt.NDArray[Any]
    preprocess_s: float
    inference_s: float
    postprocess_s: float

    def top_k(self, labels: tuple[str, ...], k: int) -> tuple[LabelScore, ...]:
        """The k best labels, highest score first (ties keep the model's label order)."""
        order = np.argsort(-self.scores, kind="stable")[:k]
        return tuple(LabelScore(labels[i], float(self.scores[i])) for i in order)
