"""The rule that puts a taught match beside the trained head's scores: one final top-k.

Two experts, each with a confidence in [0, 1]. The trained head's is its score for a label. The taught class's is a
logistic function of the similarity margin, `p = 1 / (1 + exp(-(similarity - threshold) / temperature))`, where the
similarity is the frame's mean cosine to the class's taught photos (`TaughtClasses.match`). The taught label takes the
frame when `p` exceeds the head's top score: in log-odds, when the similarity's margin beats the head's own
confidence, so a frame the head is sure of resists a loose match and one it hesitates on goes to a close one. The
final top-k is the head's labels with their scores and the taught label with `p`, sorted; a taught label that is
also a trained label (a refinement: "these photos are Hat too") keeps the larger of its two scores.

The threshold and temperature were chosen by `edge_classifier_build.kshot` on the default model's embeddings
(models/REPORT.md, "On-device learning: k-shot"): the pair that best balances the accuracy on a newly taught class
against the accuracy on the trained classes, every garment class taught in turn from 1, 5 and 10 photos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edge_classifier.learning.taught import TaughtMatch
from edge_classifier.model.classification import LabelScore


@dataclass(frozen=True)
class TaughtRule:
    """The similarity (mean cosine to a taught class's photos) at which a match is an even bet, and how steeply
    its confidence grows around it."""

    threshold: float = 0.30
    temperature: float = 0.05

    def confidence(self, similarity: float) -> float:
        """The taught label's score, in [0, 1]."""
        margin = (similarity - self.threshold) / self.temperature
        if margin < -60:
            return 0.0
        return 1.0 / (1.0 + math.exp(-margin))


DEFAULT_RULE = TaughtRule()


def combine(
    trained: Sequence[LabelScore], match: TaughtMatch | None, k: int, rule: TaughtRule = DEFAULT_RULE
) -> tuple[LabelScore, ...]:
    """The final top-k from the trained head's top-k (highest first) and the nearest taught class, if any.

    Without a match the trained top-k comes back as it was (cut to k).
    """
    if match is None:
        return tuple(trained[:k])
    p = rule.confidence(match.similarity)
    entries = list(trained)
    for i, (label, score) in enumerate(entries):
        if label == match.label:
            entries[i] = LabelScore(label, max(score, p))
            break
    else:
        entries.append(LabelScore(match.label, p))
    # A stable sort: on a tie the trained label stays first (the taught one must exceed the head's score).
    return tuple(sorted(entries, key=lambda entry: -entry.score)[:k])
