"""The result settings in force, which a settings request may change while the daemon runs."""

from __future__ import annotations

from dataclasses import dataclass

from edge_classifier.config.settings import ResultConfig
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.loading import min_score


@dataclass(frozen=True)
class LiveSettings:
    top_k: int
    vote_window: int
    min_score: float  # the effective one: configured, else the model's calibrated one, else the default
    heartbeat_s: float
    configured: ResultConfig  # kept so that a new model's calibrated min_score applies when none is configured

    @classmethod
    def resolve(cls, result: ResultConfig, classifier: Classifier) -> LiveSettings:
        return cls(result.top_k, result.vote_window, min_score(result, classifier), result.heartbeat_s, result)
