"""Publishing over MQTT with paho 2.x: Last Will, online/offline status, denied publishes, supervised network I/O."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_classifier.errors import ConfigError
from edge_classifier.mqtt.backoff import STABLE_AFTER_S, Backoff
from edge_classifier.mqtt.denials import EchoCheck, PubackLedger
from edge_classifier.mqtt.inbound import Inbound, IncomingMessage, from_paho
from edge_classifier.mqtt.network import WARN_INTERVAL_S, NetworkThread
from edge_classifier.ratelimit import RateLimitedLog
from edge_classifier.service.messages import Message

logger = logging.getLogger(__name__)

ONLINE, OFFLINE = "online", "offline"
# mqtt.protocol, named as mosquitto_pub's -V names them.
PROTOCOLS = {"mqttv5": MQTTProtocolVersion.MQTTv5, "mqttv311": MQTTProtocolVersion.MQTTv311}
ClientFactory = Callable[[str, MQTTProtocolVersion], mqtt.Client]


def paho_client(client_id: str, protocol: MQTTProtocolVersion) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)


@dataclass(frozen=True)
class PublisherStats:
    connected: bool
    connects: int  # connections the broker accepted since start
    publish_skipped: int  # messages not sent because no connection was up
    connect_failures: int  # connection attempts that did not end in an accepted connection
    publish_denied: int  # publishes the broker refused (its ACL)
    last_error: str | None  # the last failed attempt, lost connection or denied publish; None if none yet
    publishing_lost: bool  # nothing could be published for longer than mqtt.max_offline_s


class DeliveryHook(Protocol):
    """Told of QoS 1 publishes and their PUBACKs (the outbox deletes what the broker acknowledged)."""

    def published(self, mid: int, topic: str) -> None:
        """The caller's thread handed TOPIC to paho as message id MID."""

    def acknowledged(self, mid: int, code: int) -> None:
        """paho's network thread: the PUBACK for MID, with its reason code (0: success; always 0 with MQTT 3.1.1)."""


class Publisher(Protocol):
    """What the main loop needs from a message bus: a sink with a connection to look after."""

    def send(self, message: Message) -> bool:
        """Queue a message; False (and counted) when it cannot be sent now."""

    def subscribe(self, topic_filter: str, qos: int) -> None:
        """Receive messages on this filter from now on, across reconnections."""

    def take_incoming(self) -> list[IncomingMessage]:
        """What arrived since the last call, oldest first; never blocks."""

    def service(self) -> bool:
        """Main-loop housekeeping; True right after a (re)connection was announced online.

        Raises ServiceError when the connection can no longer be looked after (the service must restart).
        """

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
    """Publishes from the caller's thread; a supervised network thread connects, reconnects and does the I/O.

    `service()`, called by the main loop every iteration, announces `online` (retained) on every new
    connection, reports publishes the broker refused, and raises ServiceError once the network thread
    died or hangs, so that systemd restarts the service.
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
        protocol: str = "mqttv5",
        max_offline_s: float = 0.0,
        stable_after_s: float = STABLE_AFTER_S,
        client_factory: ClientFactory = paho_client,
        clock: Callable[[], float] = time.monotonic,
        delivery: DeliveryHook | None = None,
    ):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        version = PROTOCOLS[protocol]
        self._status_topic = status_topic
        self._max_offline_s = max_offline_s
        self._clock = clock
        self._address = f"{host}:{port}"
        self._skipped = self._denied = 0
        self._announced = 0  # the connection whose `online` went out
        self._closed = False
        self._warn = RateLimitedLog(logger, WARN_INTERVAL_S)
        client = client_factory(client_id, version)
        client.will_set(status_topic, OFFLINE, qos=1, retain=True)
        if username is not None:
            client.username_pw_set(username, password)
        if tls is not None:
            client.tls_set_context(tls)
        self._acks: PubackLedger | None = None
        self._echo: EchoCheck | None = None
        self._inbound = Inbound()
        self._v5 = version == mqtt.MQTTv5
        self._delivery = delivery
        if self._v5:
            self._acks = PubackLedger()
        if self._v5 or delivery is not None:
            client.on_publish = self._on_publish
        if not self._v5:
            self._echo = EchoCheck(status_topic, ONLINE, float(keepalive_s))
            client.on_subscribe = self._echo.on_subscribe
        client.on_message = self._on_message
        client.connect_async(host, port, keepalive=keepalive_s, clean_start=True)
        self._client = client
        backoff = Backoff(reconnect_min_s, reconnect_max_s, stable_after_s)
        self._network = NetworkThread(
            client, self._address, tls=tls is not None, keepalive_s=keepalive_s, backoff=backoff, clock=clock
        )
        self._network.start()

    @property
    def connected(self) -> bool:
        return self._network.connection() > 0

    def wait_connected(self, timeout: float) -> bool:
        return self._network.wait_connected(timeout)

    def service(self) -> bool:
        self._network.check()
        if self._acks is not None:
            for topic, reason in self._acks.denied():
                self._count_denial(topic, reason, " (see its ACL for this client)")
        connection = self._network.connection()
        if not connection:
            return False
        if self._echo is not None:
            self._check_echo(self._echo, connection)
        if connection == self._announced:
            return False
        self._announced = connection
        self._inbound.subscribe_all(self._client)
        if self._echo is not None and not self._echo.done:
            self._echo.start(self._client, connection, self._clock())
        self._publish(self._status_topic, ONLINE, 1, True)
        return True

    def send(self, message: Message) -> bool:
        # Until service() has announced `online` on this connection, nothing else goes out,
        # so a dashboard never sees a result from a device it believes is offline.
        connection = self._network.connection()
        if not connection or connection != self._announced:
            self._skipped += 1
            return False
        return self._publish(message.topic, message.payload, message.qos, message.retain, message.correlation_data)

    def subscribe(self, topic_filter: str, qos: int) -> None:
        self._inbound.add(topic_filter, qos)
        if self.connected and self._announced == self._network.connection():
            self._client.subscribe(topic_filter, qos)

    def take_incoming(self) -> list[IncomingMessage]:
        return self._inbound.take_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        # paho's network thread: only hand the message over.
        if self._echo is not None and message.topic == self._echo.topic:
            self._echo.on_message(client, userdata, message)
            if message.topic not in self._inbound.filters:
                return
        self._inbound.put(from_paho(message))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        # paho's network thread.
        if self._acks is not None:
            self._acks.on_publish(client, userdata, mid, reason_code, properties)
        if self._delivery is not None:
            self._delivery.acknowledged(mid, int(getattr(reason_code, "value", 0)))

    def _publish(
        self, topic: str, payload: str | bytes, qos: int, retain: bool, correlation_data: bytes | None = None
    ) -> bool:
        properties = None
        if correlation_data is not None and self._v5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = correlation_data
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._skipped += 1
            return False
        if qos > 0 and self._acks is not None:
            self._acks.sent(info.mid, topic)
        if qos > 0 and self._delivery is not None:
            self._delivery.published(info.mid, topic)
        return True

    def _count_denial(self, topic: str, reason: str, advice: str = "") -> None:
        self._denied += 1
        self._network.note_error(f"publish to {topic} denied: {reason}")
        self._warn.warning_for(
            f"denied: {topic}", "broker %s denied a publish to %s: %s%s", self._address, topic, reason, advice
        )

    def _check_echo(self, echo: EchoCheck, connection: int) -> None:
        outcome = echo.outcome(connection, self._clock())
        if outcome is None:
            return
        self._client.unsubscribe(echo.topic)
        if outcome == "echoed":
            logger.debug("broker %s echoed our status on %s: publishing is allowed", self._address, echo.topic)
        elif outcome == "unverifiable":
            logger.info(
                "broker %s refused a subscription to %s: with MQTT 3.1.1 a denied publish cannot be detected",
                self._address, echo.topic,
            )  # fmt: skip
        else:
            self._count_denial(
                echo.topic,
                f"our {ONLINE!r} did not come back within {echo.timeout_s:.0f}s (MQTT 3.1.1 names no reason: "
                "the ACL may deny publishing, or reading, this topic; mqtt.protocol mqttv5 reports denials)",
            )

    def stats(self) -> PublisherStats:
        link = self._network.state()
        offline_s = 0.0 if link.offline_since is None else self._clock() - link.offline_since
        lost = self._max_offline_s > 0 and offline_s > self._max_offline_s
        return PublisherStats(
            link.connection > 0,
            link.connects,
            self._skipped,
            link.connect_failures,
            self._denied,
            link.last_error,
            lost,
        )

    def close(self, timeout: float = 1.0) -> None:
        """Publish `offline` (a clean disconnect does not fire the Last Will), flush, disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._network.alive and self.connected:
            info = self._client.publish(self._status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                logger.warning("could not flush 'offline': %s", exc)
        self._network.stop()

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
