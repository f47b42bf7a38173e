"""Publishing over MQTT with paho 2.x: Last Will, online/offline status, reconnect with backoff."""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_classifier.errors import ConfigError
from edge_classifier.service.messages import Message

logger = logging.getLogger(__name__)

ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True)
class PublisherStats:
    connected: bool
    connects: int
    publish_skipped: int


class Publisher(Protocol):
    """What the main loop needs from a message bus: a sink with a connection to look after."""

    def send(self, message: Message) -> bool:
        """Queue a message; False (and counted) when it cannot be sent now."""

    def service(self) -> bool:
        """Main-loop housekeeping; True right after a (re)connection was announced online."""

    def stats(self) -> PublisherStats: ...

    def close(self) -> None: ...


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context that verifies the broker's certificate and host name: against CA_FILE, else the system's CAs.

    A CA file that is missing or holds no certificate is a ConfigError naming mqtt.ca_file.
    """
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except FileNotFoundError:
        raise ConfigError(f"mqtt.ca_file: {str(ca_file)!r} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"mqtt.ca_file: {str(ca_file)!r} holds no usable CA certificate ({exc})") from None


class MqttPublisher:
    """paho's network thread connects and reconnects; its callbacks only log and set events.

    Everything else (announcing `online`, publishing) happens on the caller's thread.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        status_topic: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        keepalive_s: int = 30,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
    ):
        self._status_topic = status_topic
        self._connected = threading.Event()
        self._fresh_connection = threading.Event()
        self._connects = self._skipped = 0
        self._closed = False
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        client.will_set(status_topic, OFFLINE, qos=1, retain=True)
        if username is not None:
            client.username_pw_set(username, password)
        if tls is not None:
            client.tls_set_context(tls)
        client.reconnect_delay_set(min_delay=max(1, round(reconnect_min_s)), max_delay=max(1, round(reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        self._address = f"{host}:{port}"
        client.connect_async(host, port, keepalive=keepalive_s)
        client.loop_start()

    # paho network thread ------------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            logger.warning("broker %s refused the connection: %s", self._address, reason_code)
            return
        logger.info("connected to broker %s", self._address)
        # Fresh first: send() must never see connected-but-not-fresh before `online` is sent.
        self._fresh_connection.set()
        self._connected.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho passes no reason: a closed port, a wrong host or a TLS handshake that failed.
        logger.warning("could not connect to broker %s; retrying with backoff", self._address)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self._connected.is_set() and not self._closed:
            logger.warning("disconnected from broker %s (%s); reconnecting", self._address, reason_code)
        self._connected.clear()

    # caller's thread ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def service(self) -> bool:
        if not (self._fresh_connection.is_set() and self._connected.is_set()):
            return False
        self._fresh_connection.clear()
        self._connects += 1
        self._client.publish(self._status_topic, ONLINE, qos=1, retain=True)
        return True

    def send(self, message: Message) -> bool:
        # Until service() has announced `online` on this connection, nothing else goes out,
        # so a dashboard never sees a result from a device it believes is offline.
        if not self._connected.is_set() or self._fresh_connection.is_set():
            self._skipped += 1
            return False
        info = self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._skipped += 1
            return False
        return True

    def stats(self) -> PublisherStats:
        return PublisherStats(self.connected, self._connects, self._skipped)

    def close(self, timeout: float = 1.0) -> None:
        """Publish `offline` (a clean disconnect does not fire the Last Will), flush, disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._connected.is_set():
            info = self._client.publish(self._status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                logger.warning("could not flush 'offline': %s", exc)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryPublisher:
    """The fake: keeps messages in memory (unit tests, and `bench`, which measures without a broker)."""

    def __init__(self, connected: bool = True):
        self.messages: list[Message] = []
        self.is_connected = connected
        self._announced = False
        self._connects = self._skipped = 0
        self.closed = False

    def service(self) -> bool:
        if not self.is_connected:
            self._announced = False
            return False
        if self._announced:
            return False
        self._announced = True
        self._connects += 1
        self.messages.append(Message("status", ONLINE, 1, True))
        return True

    def send(self, message: Message) -> bool:
        if not (self.is_connected and self._announced):
            self._skipped += 1
            return False
        self.messages.append(message)
        return True

    def stats(self) -> PublisherStats:
        return PublisherStats(self.is_connected, self._connects, self._skipped)

    def close(self) -> None:
        if not self.closed and self.is_connected:
            self.messages.append(Message("status", OFFLINE, 1, True))
        self.closed = True
