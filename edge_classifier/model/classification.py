"""What one classification gives: scores, the raw output, stage times, label/score pairs and the optional embedding."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from edge_classifier.model.runner import TensorSpec, unit_embedding


class LabelScore(NamedTuple):
    """One label and its score in [0, 1]."""

    label: str
    score: float


@dataclass(frozen=True)
class Classification:
    """Scores for one image plus how long each stage took (seconds).

    A model whose manifest names an embedding output also leaves its raw (still quantized) vector here;
    `embedding` dequantizes and normalises it only when first read, so a loop that never reads it pays
    for one small copy per frame and nothing else.
    """

    scores: npt.NDArray[np.float32]
    raw: npt.NDArray[Any]
    preprocess_s: float
    inference_s: float
    postprocess_s: float
    embedding_raw: npt.NDArray[Any] | None = None
    embedding_spec: TensorSpec | None = None

    def top_k(self, labels: tuple[str, ...], k: int) -> tuple[LabelScore, ...]:
        """The k best labels, highest score first (ties keep the model's label order)."""
        order = np.argsort(-self.scores, kind="stable")[:k]
        return tuple(LabelScore(labels[i], float(self.scores[i])) for i in order)

    @cached_property
    def embedding(self) -> npt.NDArray[np.float32] | None:
        """The L2-normalised embedding (cosine similarity = dot product), or None when the model gives none."""
        if self.embedding_raw is None or self.embedding_spec is None:
            return None
        return unit_embedding(self.embedding_raw, self.embedding_spec)
