"""Serving the application with waitress: threads sized for streams plus API requests, limits, JSON errors, shutdown.

waitress is a production WSGI server in pure Python: its one asyncore thread reads whole requests (so a slow
client holds no worker thread) and enforces the body size, header size, idle timeout and connection limit
before the application runs; werkzeug routes and parses. Measured on the daemon with the sample video, it adds
less memory than aiohttp (see the README).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.server import create_server  # type: ignore[import-untyped]
from waitress.task import ErrorTask  # type: ignore[import-untyped]

from edge_classifier.errors import ConfigError
from edge_classifier.http.app import AppParts, HttpApp
from edge_classifier.http.overlay import CropGeometry, RateMeter
from edge_classifier.http.problems import error_document
from edge_classifier.http.prometheus import HttpCounts, ServiceCollector, build_registry
from edge_classifier.http.settings import HttpConfig, is_loopback, read_token
from edge_classifier.http.stream import FrameEncoder

if TYPE_CHECKING:
    from edge_classifier.config.settings import Config
    from edge_classifier.service.compose import Service

logger = logging.getLogger(__name__)
SHUTDOWN_WAIT_S = 3.0
MAX_HEADER_BYTES = 32 * 1024
# A stream's unsent output beyond this makes its thread wait for the client (a few JPEGs).
OUTBUF_HIGH_WATERMARK = 2 * 2**20
_HINTS = {413: "http.max_body_bytes", 431: "request headers over 32 KiB"}


class _JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """What waitress refuses itself (body over the limit, malformed request line or chunking) answered as JSON."""

    def execute(self) -> None:
        error = self.request.error
        hint = _HINTS.get(error.code)
        message = f"{error.reason.lower()}: {error.body}" + (f" ({hint})" if hint else "")
        body = json.dumps(error_document(error.code, message)).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _JsonErrorChannel(HTTPChannel):  # type: ignore[misc]
    error_task_class = _JsonErrorTask


def page_url(bind: str, port: int) -> str:
    """Where a browser on this machine finds the page."""
    address = ipaddress.ip_address(bind)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}/"


class HttpServer:
    """The listening socket is bound at construction (errors are ConfigError); start() serves, close() stops."""

    def __init__(self, config: HttpConfig, parts: AppParts):
        self.config = config
        self.parts = parts
        self.app = HttpApp(parts)
        timeout = max(1, round(config.request_timeout_s))
        try:
            self._server: Any = create_server(
                self.app, host=config.bind, port=config.port, threads=config.threads + config.max_streams,
                connection_limit=config.max_connections, channel_timeout=timeout,
                cleanup_interval=max(1, min(30, timeout // 2)), max_request_body_size=config.max_body_bytes,
                max_request_header_size=MAX_HEADER_BYTES, outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
                # One request read ahead keeps the connection readable while a stream is served, so a client
                # that leaves is noticed (waitress.client_disconnected) even while no frame is being sent.
                channel_request_lookahead=1, asyncore_use_poll=True, ident="edge-classifier",
            )  # fmt: skip
        except OSError as exc:
            raise ConfigError(f"http.port: cannot listen on {config.bind} port {config.port}: {exc.strerror}") from None
        self._server.channel_class = _JsonErrorChannel
        self.port: int = self._server.effective_port
        self.url = page_url(config.bind, self.port)
        self._thread = threading.Thread(target=self._server.run, name="http-server", daemon=True)

    def start(self) -> HttpServer:
        self.parts.encoder.start()
        self._thread.start()
        auth = "bearer token" if self.parts.token else "no token"
        logger.info("HTTP interface on %s (bound to %s, %s): page, /api/*, /stream.mjpg, /metrics",
                    self.url, self.config.bind, auth)  # fmt: skip
        if self.config.auth == "none" and not is_loopback(self.config.bind):
            logger.warning("http.auth is none: anyone who can reach %s:%d may use the API", self.config.bind, self.port)
        return self

    def close(self) -> None:
        """Streams end, waiting predictions fail, connections close; returns within a few seconds."""
        self.parts.encoder.close()  # open streams end, new ones are refused
        # The loop has stopped by now: fail the predictions still waiting for it instead of letting them time out.
        self.parts.inbox.close()
        dispatcher = self._server.task_dispatcher
        dispatcher.shutdown(cancel_pending=True, timeout=SHUTDOWN_WAIT_S)
        if not self._thread.is_alive():
            self._close_dispatchers(including_server=True)
            return
        # Closing the connections releases a worker blocked on a client that stopped reading; only once no worker
        # is left to wake waitress's loop are its listening socket and wake-up pipe closed (its loop then returns).
        self._server.trigger.pull_trigger(self._close_dispatchers)
        dispatcher.shutdown(cancel_pending=True, timeout=1.0)
        self._server.trigger.pull_trigger(lambda: self._close_dispatchers(including_server=True))
        self._thread.join(SHUTDOWN_WAIT_S)

    def _close_dispatchers(self, including_server: bool = False) -> None:
        """In waitress's own thread (a trigger thunk): close the connections, and the server itself if asked."""
        for dispatcher in list(self._server._map.values()):
            with contextlib.suppress(OSError):
                if isinstance(dispatcher, HTTPChannel):
                    dispatcher.handle_close()
        if including_server:
            self._server.close()  # the listening socket and the trigger: nothing is left in the loop's map

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_http(config: Config, service: Service) -> HttpServer:
    """The interface for a built service, bound but not yet serving (enter it, or call start()).

    Called on the main thread before the loop runs: the model's input size and crop mode (for the overlay's
    crop box) are read from the classifier once, here; handlers never touch it.
    """
    http = config.http
    preprocess = service.loop.parts.classifier.preprocess
    geometry = CropGeometry(preprocess.size_hw, preprocess.spec.crop)
    rate = RateMeter()
    encoder = FrameEncoder(service.state, geometry, http, rate)
    counts = HttpCounts()
    registry = build_registry(ServiceCollector(service.state, service.metrics, counts,
                                               lambda: encoder.streams, config.device))  # fmt: skip
    parts = AppParts(
        http, service.inbox, service.state, service.metrics, encoder, rate, registry, counts, read_token(http),
        config.model.selftest, catalogue=service.loop.parts.catalogue,
    )  # fmt: skip
    return HttpServer(http, parts)
