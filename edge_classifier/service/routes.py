"""Which received topics the daemon handles, and with what: the one place routes are declared."""

from __future__ import annotations

from edge_classifier.commands.center import CommandCenter
from edge_classifier.config.settings import Config
from edge_classifier.homeassistant.component import on_homeassistant_status
from edge_classifier.homeassistant.discovery import status_topic
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.router import Router


def build_router(config: Config, topics: Topics, commands: CommandCenter | None = None) -> Router:
    """The routes for this configuration (commands, Home Assistant's status, ...)."""
    router = Router()
    if commands is not None:
        # <prefix>/<device>/cmd/<name>: answered on .../cmd/<name>/response (or the MQTT 5 response topic).
        router.route(commands.topic_filter, commands.handle)
    if config.homeassistant.enabled:
        # Home Assistant's birth message: the discovery config is published again after a grace period.
        router.route(status_topic(config.homeassistant), on_homeassistant_status)
    return router
