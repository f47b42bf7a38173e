"""What command handlers share: the configuration in force, where it came from, the topics, the counts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_classifier.config.settings import Config, ConfigSource
from edge_classifier.model.loading import default_model_dirs
from edge_classifier.mqtt.topics import Topics


@dataclass
class CommandCounts:
    """Commands received since start, by how they were answered."""

    received: int = 0
    done: int = 0
    accepted: int = 0
    invalid: int = 0
    refused: int = 0
    failed: int = 0


@dataclass
class CommandContext:
    """Lives as long as the service; handlers run on the loop's thread and may replace `config` (a reload)."""

    config: Config  # in force: as read at start-up or by the last reload, where it applied
    topics: Topics
    source: ConfigSource | None  # None: started from a Config value (tests, bench); a reload is refused
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    counts: CommandCounts = field(default_factory=CommandCounts)

    @property
    def snapshot_topic(self) -> str:
        return f"{self.topics.base}/snapshot"

    def model_dirs(self) -> list[Path]:
        """Where model/load may take a manifest from: the bundled models' folders and the configured model's."""
        dirs = default_model_dirs()
        configured = self.config.model.manifest
        if configured is not None and configured.parent != Path("."):  # a bare name is a bundled model
            dirs.append(configured.parent)
        return [d.resolve() for d in dirs]
