"""Received messages to their handlers by topic filter; handlers run on the main loop's thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from paho.mqtt.client import topic_matches_sub

from edge_classifier.mqtt.inbound import IncomingMessage

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)
Handler = Callable[["MainLoop", IncomingMessage], None]


class Router:
    """The first route whose filter matches a message's topic handles it."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, int, Handler]] = []

    def route(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        self._routes.append((topic_filter, qos, handler))

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(topic_filter, qos) for topic_filter, qos, _ in self._routes]

    def dispatch(self, loop: MainLoop, message: IncomingMessage) -> bool:
        """Hand the message to its handler; False when no route matches (a broker may deliver stray ones)."""
        for topic_filter, _, handler in self._routes:
            if topic_matches_sub(topic_filter, message.topic):
                handler(loop, message)
                return True
        logger.debug("no handler for a message on %s", message.topic)
        return False
