"""Which received topics the daemon handles, and with what: the one place routes are declared."""

from __future__ import annotations

from edge_classifier.config.settings import Config
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.router import Router


def build_router(config: Config, topics: Topics) -> Router:
    """The routes for this configuration (commands, Home Assistant's status, ...)."""
    return Router()
