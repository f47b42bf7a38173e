"""The catalogue in the daemon: the index for the serving model, searched on the main loop's thread, kept current.

A frame's `similar` comes from the embedding of that frame. Every RECHECK_S the loop looks (one readlink) at which
index is stored for the serving model and loads it again when `catalogue build`, `add` or `remove` replaced it, or
when a model swap or rollback brought another model: a model without an index gets no `similar` (a WARNING says
to run `catalogue build`), and gets it within RECHECK_S of a build.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge_classifier.catalogue.search import CatalogueSearch, Match
from edge_classifier.catalogue.settings import CatalogueConfig
from edge_classifier.catalogue.store import index_path, load_index, other_models, rebuild_hint
from edge_classifier.errors import EdgeClassifierError
from edge_classifier.model.classification import Classification
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.identity import ModelInfo
from edge_classifier.service.frame_result import FrameResult

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)
RECHECK_S = 2.0


class CatalogueRuntime:
    """The configured search settings and the index for the serving model (None: no `similar`).

    Written on the main loop only; the HTTP threads read `current` (one reference) for thumbnails.
    """

    def __init__(self, config: CatalogueConfig, state_dir: Path):
        self.config = config
        self.state_dir = state_dir
        self.current: CatalogueSearch | None = None
        self._key: tuple[str, str | None] | None = None  # (model sha256, the stored version) last loaded
        self._next_check = 0.0

    def refresh(self, model: ModelInfo, dims: int | None) -> None:
        """Load the index stored for MODEL if it is not the one loaded; problems are logged, never raised."""
        link = index_path(self.state_dir, model.sha256)
        key = (model.sha256, os.readlink(link) if link.is_symlink() else None)
        if key == self._key:
            return
        had = self.current
        self._key, self.current = key, None
        try:
            index = None if dims is None else load_index(self.state_dir, model, dims)
        except EdgeClassifierError as exc:
            logger.warning("visual search is off: %s", exc)
            return
        if index is not None:
            self.current = CatalogueSearch(index)
            logger.info("visual search: %d catalogue items (%d photos) for model %s %s, top %d at similarity >= %.2f",
                        len(index), index.matrix.shape[0], model.name, model.version, self.config.top_n,
                        self.config.min_similarity)  # fmt: skip
            return
        built = had.index.model if had is not None else next(iter(other_models(self.state_dir, model)), None)
        if built is not None:
            logger.warning("visual search is off while model %s %s serves: %s", model.name, model.version,
                           rebuild_hint(built, model))  # fmt: skip

    def tick(self, loop: MainLoop, now: float) -> None:
        """Every RECHECK_S: the index for the serving model, reloaded when it changed on disk or the model did."""
        if now >= self._next_check:
            self._next_check = now + RECHECK_S
            self.refresh(loop.parts.model, embedding_length(loop.parts.classifier))

    def on_connect(self, loop: MainLoop) -> None:
        """Nothing to publish on a new connection."""

    def matches(
        self, classification: Classification, model: ModelInfo, top_n: int | None = None
    ) -> tuple[Match, ...] | None:
        """The similar items (top_n, else the configured number); None without an index for the serving model."""
        search = self.current
        embedding = classification.embedding
        if search is None or search.model_sha256 != model.sha256 or embedding is None:
            return None
        return search.search(embedding, top_n or self.config.top_n, self.config.min_similarity)

    def annotate(self, result: FrameResult, model: ModelInfo) -> FrameResult:
        """RESULT with `similar` filled in from its own frame's embedding (unchanged without an index)."""
        if result.classification is None:
            return result
        similar = self.matches(result.classification, model)
        return result if similar is None else replace(result, similar=similar)

    def thumbnail(self, item_id: str) -> bytes | None:
        """The item's JPEG thumbnail (any thread), or None: no such item, or its index was replaced meanwhile."""
        search = self.current
        try:
            return None if search is None else search.thumbnail(item_id)
        except OSError:
            return None


def embedding_length(classifier: Classifier) -> int | None:
    return None if classifier.embedding_spec is None else int(classifier.embedding_spec.shape[-1])


def open_catalogue(
    config: CatalogueConfig, state_dir: Path, classifier: Classifier, model: ModelInfo
) -> CatalogueRuntime | None:
    """The catalogue runtime with the index for the serving model loaded, if any; None when catalogue.enabled is off."""
    if not config.enabled:
        return None
    runtime = CatalogueRuntime(config, state_dir)
    runtime.refresh(model, embedding_length(classifier))
    return runtime
