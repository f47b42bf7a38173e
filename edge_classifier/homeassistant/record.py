"""The record of the discovery configs on the broker: a small JSON file in the state directory."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from edge_classifier.homeassistant.discovery import Declared
from edge_classifier.ratelimit import RateLimitedLog

logger = logging.getLogger(__name__)
RECORD_SCHEMA = "edge-classifier/ha-record/v1"


def record_path(state_dir: Path, device: str) -> Path:
    """One file per device id: two daemons (or a test run) may share a state directory."""
    return state_dir / f"ha-discovery-{device}.json"


def _declared(document: Any) -> Declared | None:
    if not isinstance(document, dict) or document.get("schema") != RECORD_SCHEMA:
        return None
    configs = document.get("configs")
    if not isinstance(configs, dict):
        return None
    declared: Declared = {}
    for topic, keys in configs.items():
        if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
            return None
        declared[str(topic)] = {str(k): v for k, v in keys.items()}
    return declared


class RecordFile:
    """Read once at start; written before and after each publication, atomically (a rename)."""

    def __init__(self, path: Path):
        self.path = path
        self._warn = RateLimitedLog(logger)

    def load(self) -> Declared:
        """What the record says was published; nothing if there is no record, or one that cannot be read."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("cannot read the Home Assistant discovery record %s: %s", self.path, exc)
            return {}
        try:
            declared = _declared(json.loads(text))
        except ValueError:
            declared = None
        if declared is None:
            logger.warning("ignoring the Home Assistant discovery record %s: not a %s document", self.path,
                           RECORD_SCHEMA)  # fmt: skip
            return {}
        return declared

    def save(self, declared: Declared) -> bool:
        """Replace the record; False (logged, at most once a minute) when the state directory is not writable."""
        document = {"schema": RECORD_SCHEMA, "configs": declared}
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            temporary.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            self._warn.warning_for("save", "cannot write the Home Assistant discovery record %s: %s (ha-remove "
                                   "will rely on what the broker retains)", self.path, exc)  # fmt: skip
            return False
        return True

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
