"""The catalogue in the daemon: the index for the serving model, searched on the main loop's thread, kept current.

A frame's `similar` comes from the embedding of that frame. Every RECHECK_S the loop looks (one readlink) at which
index is stored for the serving model and loads it again when `catalogue build`, `add` or `remove` replaced it; a
model swap or rollback is seen at the next iteration. A serving model without an index gets one rebuilt from the
photos another model's index kept, a few photos per iteration between frames (`rebuild.py`), and uses it once it is
written; until then, and when no index kept its photos (a WARNING says to run `catalogue build`), no `similar`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge_classifier.catalogue.rebuild import Rebuild, find_sources
from edge_classifier.catalogue.search import CatalogueSearch, Match
from edge_classifier.catalogue.settings import CatalogueConfig
from edge_classifier.catalogue.store import index_path, load_index, rebuild_hint, save_index
from edge_classifier.errors import EdgeClassifierError, first_line
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
        self.rebuild: Rebuild | None = None  # the index for the serving model being rebuilt, if any

    def refresh(self, model: ModelInfo, dims: int | None) -> None:
        """Load the index stored for MODEL if it is not the one loaded, or start rebuilding one when it has none;
        problems are logged, never raised."""
        link = index_path(self.state_dir, model.sha256)
        key = (model.sha256, os.readlink(link) if link.is_symlink() else None)
        if key == self._key:
            return
        had = self.current
        self._key, self.current = key, None
        if self.rebuild is not None:  # another model serves, or an index for this one was stored meanwhile
            logger.info("%s cancelled: %s", self.rebuild.progress(),
                        "an index was stored for it" if model == self.rebuild.model else
                        f"model {model.name} {model.version} serves now")  # fmt: skip
            self.rebuild = None
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
        source, without = find_sources(self.state_dir, model) if dims is not None else (None, [])
        if source is not None and dims is not None:
            self.rebuild = Rebuild(self.state_dir, source, model, dims)
            logger.info("%s (%d items from the index of model %s %s); visual search is off until it is written",
                        self.rebuild.progress(), len(source.items), source.model.name,
                        source.model.version)  # fmt: skip
            return
        built = had.index.model if had is not None else next(iter(without), None)
        if built is not None:
            logger.warning("visual search is off while model %s %s serves: %s (the index of %s %s kept no photos, "
                           "so it cannot be rebuilt for this model)", model.name, model.version,
                           rebuild_hint(built, model), built.name, built.version)  # fmt: skip

    def tick(self, loop: MainLoop, now: float) -> None:
        """A few photos of a rebuild; at once after a model swap, else every RECHECK_S: the index for the serving
        model, reloaded when it changed on disk or the model did."""
        model = loop.parts.model
        if now >= self._next_check or (self._key is not None and self._key[0] != model.sha256):
            self._next_check = now + RECHECK_S
            self.refresh(model, embedding_length(loop.parts.classifier))
        if self.rebuild is not None:
            self._rebuild_step(loop)

    def _rebuild_step(self, loop: MainLoop) -> None:
        """At most a few photos through the serving model; the index written and used once all are; a failure is
        logged once and leaves visual search off for this model (until `catalogue build`)."""
        rebuild = self.rebuild
        assert rebuild is not None
        try:
            index = rebuild.step(loop.parts.classifier)
            if index is None:
                return
            save_index(self.state_dir, index)
        except Exception as exc:  # a disk, a stored photo or the new model failing must not stop the loop
            self.rebuild = None
            logger.warning("%s failed: %s; visual search stays off for this model (run `edge-classifier catalogue "
                           "build`)", rebuild.progress(), first_line(exc))  # fmt: skip
            return
        self.rebuild = None
        logger.info("%s: done, %d items", rebuild.progress(), len(index))
        self.refresh(rebuild.model, rebuild.dims)

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
