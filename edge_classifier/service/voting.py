"""Stable label from per-frame labels: majority over the last N frames, with hysteresis."""

from __future__ import annotations

from collections import Counter, deque

from edge_classifier.service.frame_result import StableLabel

UNKNOWN = "unknown"


class Voter:
    """The stable label changes only when another label holds a strict majority of the window.

    A frame whose best score is below `min_score` votes `unknown`, so an uncertain scene
    settles on `unknown` rather than flickering between guesses.
    """

    def __init__(self, window: int, min_score: float):
        self.window = window
        self.min_score = min_score
        self._votes: deque[tuple[str, float]] = deque(maxlen=window)
        self.label = UNKNOWN
        self.score = 0.0

    @property
    def stable(self) -> StableLabel:
        return StableLabel(self.label, self.score)

    def update(self, label: str, score: float) -> bool:
        """Add one frame's top-1; True when the stable label changed."""
        self._votes.append((label if score >= self.min_score else UNKNOWN, score))
        counts = Counter(vote for vote, _ in self._votes)
        leader, count = counts.most_common(1)[0]
        if count * 2 > self.window:
            scores = [s for vote, s in self._votes if vote == leader]
            self.score = sum(scores) / len(scores)
            if leader != self.label:
                self.label = leader
                return True
        return False
