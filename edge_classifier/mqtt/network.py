"""The MQTT network thread: connects, runs paho's loop, reconnects with backoff, and records why each attempt failed."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from edge_classifier.errors import ServiceError, first_line
from edge_classifier.mqtt.backoff import Backoff
from edge_classifier.ratelimit import RateLimitedLog

logger = logging.getLogger(__name__)

# paho's loop() waits at most this long for traffic, so a healthy thread comes back at least this often.
LOOP_S = 1.0
# One blocking connection attempt: DNS look-up, TCP connect and TLS handshake (paho allows 5 s for each
# socket operation; a resolver that tries several servers takes longer).
CONNECT_BUDGET_S = 30.0
# On close: how long the thread may take to write what is queued (the DISCONNECT) before it gives up.
FLUSH_S = 1.0
# The same connection failure is logged at most twice a minute; the next line says how many were held back.
WARN_INTERVAL_S = 30.0
_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)$")
_GENERIC_DROP = "Unspecified error"  # what paho reports for any connection that just ended
_END_REASONS = {MQTTErrorCode.MQTT_ERR_CONN_LOST: "closed by the broker or the network"}


def describe(exc: BaseException) -> str:
    """A connection error as one line for the log and metrics, without OpenSSL's source location."""
    return _SSL_SOURCE.sub("", first_line(exc)).rstrip(".")


@dataclass(frozen=True)
class LinkState:
    """What the network thread knows about the connection at one moment."""

    connection: int  # the number of the current connection (1, 2, ...), 0 while there is none
    connects: int  # connections the broker accepted since start
    connect_failures: int  # attempts that did not end in an accepted connection
    last_error: str | None  # why the last attempt failed or the last connection ended; None if nothing did yet
    offline_since: float | None  # clock time since when no connection exists; None while connected


class NetworkThread:
    """Owns all socket I/O of one paho client; paho's callbacks only record facts here.

    The caller's thread may publish (paho queues, this thread writes), read `state()`, and must call
    `check()` regularly: it raises ServiceError once this thread died or stopped making progress.
    """

    def __init__(
        self,
        client: mqtt.Client,
        address: str,
        *,
        tls: bool,
        keepalive_s: float,
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client = client
        self._address = address
        self._tls = tls
        self._backoff = backoff
        self._clock = clock
        # paho's loop() returns at least every LOOP_S and a connection attempt blocks for CONNECT_BUDGET_S at
        # most; a broker gives up on a silent client after 1.5 keepalives. Twice that and one attempt is a hang.
        self.stall_limit_s = 2 * keepalive_s + CONNECT_BUDGET_S
        self._warn = RateLimitedLog(logger, WARN_INTERVAL_S)
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._connects = self._failures = 0
        self._last_error: str | None = None
        self._offline_since: float | None = clock()
        self._fatal: Exception | None = None
        self._due = clock()  # the thread promises to be back by then; check() measures lateness from it
        # Facts about the current attempt, recorded by paho's callbacks (which run on this thread).
        self._accepted_at: float | None = None
        self._refused: str | None = None
        self._dropped: str | None = None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        # Without a thread of paho's own, publish() from another thread would write to the socket itself;
        # with a write-registration callback it only queues and wakes this thread, which does all the writing.
        client.on_socket_register_write = _ignore
        self._thread = threading.Thread(target=self._run, name="mqtt-network", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # the network thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                delay = self._attempt()
                if self._stopping.is_set():
                    break
                logger.debug("next connection attempt to %s in %.2fs", self._address, delay)
                self._due = self._clock() + delay
                self._stopping.wait(delay)
            self._flush()
        except Exception as exc:
            # A bug here or in paho (e.g. struct.error on an over-long field): the thread is gone, and
            # check() turns that into a ServiceError on the main loop, so systemd restarts the service.
            with self._lock:
                self._fatal = exc
            self._connected.clear()
            logger.exception("the MQTT network thread died")

    def _attempt(self) -> float:
        """One connection attempt and the connection while it lasts; the delay before the next attempt."""
        with self._lock:
            self._accepted_at = self._refused = self._dropped = None
        self._due = self._clock()
        try:
            self._client.reconnect()
        except OSError as exc:  # refused, unreachable, DNS, timeout; TLS too (ssl.SSLError is an OSError)
            return self._failed(describe(exc))
        rc = mqtt.MQTT_ERR_SUCCESS
        while rc == mqtt.MQTT_ERR_SUCCESS and not self._stopping.is_set():
            self._due = self._clock() + LOOP_S
            rc = self._client.loop(LOOP_S)
        return 0.0 if self._stopping.is_set() else self._ended(rc)

    def _failed(self, reason: str) -> float:
        delay = self._backoff.after_failure()
        with self._lock:
            self._failures += 1
            self._last_error = reason
        self._warn.warning_for(
            f"failed: {reason}", "could not connect to broker %s: %s; retrying in %.2fs", self._address, reason, delay
        )
        return delay

    def _ended(self, rc: MQTTErrorCode) -> float:
        now = self._clock()
        self._went_offline(now)
        with self._lock:
            accepted_at, refused, dropped = self._accepted_at, self._refused, self._dropped
        if accepted_at is None:
            if refused is None:
                refused = "the broker closed the connection before accepting it"
                if not self._tls:
                    refused += " (if the port is a TLS listener, set mqtt.tls: true)"
            return self._failed(refused)
        reason = dropped or _END_REASONS.get(rc) or mqtt.error_string(rc).rstrip(".")
        lasted = now - accepted_at
        delay = self._backoff.after_loss(lasted)
        with self._lock:
            self._last_error = f"connection lost: {reason}"
        self._warn.warning_for(
            f"lost: {reason}", "connection to broker %s lost after %.1fs (%s); reconnecting in %.2fs",
            self._address, lasted, reason, delay,
        )  # fmt: skip
        return delay

    def _went_offline(self, now: float) -> None:
        self._connected.clear()
        with self._lock:
            if self._offline_since is None:
                self._offline_since = now

    def _flush(self) -> None:
        """Stopping: write what is queued and a DISCONNECT, so that the broker drops our Last Will."""
        if self._client.socket() is None:
            return
        self._client.disconnect()
        deadline = time.monotonic() + FLUSH_S
        while self._client.socket() is not None and time.monotonic() < deadline:
            if self._client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS:
                break

    # paho callbacks (on the network thread): record facts only -----------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            refused = f"the broker refused the connection: {reason_code}"
            if "protocol version" in str(reason_code).lower():
                refused += " (for a broker without MQTT 5, set mqtt.protocol: mqttv311)"
            with self._lock:
                self._refused = refused
            return
        with self._lock:
            self._accepted_at = self._clock()
            self._connects += 1
            self._offline_since = None
            connects = self._connects
        self._connected.set()
        # Not rate-limited: the backoff spaces connections out, and each one ends a run of failures.
        logger.info("connected to broker %s (connection %d since start)", self._address, connects)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._went_offline(self._clock())
        with self._lock:
            if self._accepted_at is None or self._dropped is not None:
                return
            if flags.is_disconnect_packet_from_server:
                self._dropped = f"the broker sent DISCONNECT: {reason_code}"
            elif str(reason_code) != _GENERIC_DROP:
                self._dropped = str(reason_code)

    # the caller's thread --------------------------------------------------------------------
    def connection(self) -> int:
        """The number of the current connection (it changes on every reconnect); 0 while there is none."""
        with self._lock:
            return self._connects if self._connected.is_set() else 0

    def state(self) -> LinkState:
        with self._lock:
            connection = self._connects if self._connected.is_set() else 0
            return LinkState(connection, self._connects, self._failures, self._last_error, self._offline_since)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def note_error(self, text: str) -> None:
        """Record a failure seen on the caller's thread (a denied publish) as the last error."""
        with self._lock:
            self._last_error = text

    def check(self) -> None:
        """Raise ServiceError if the thread died, or has not come back for longer than `stall_limit_s`."""
        with self._lock:
            fatal = self._fatal
        if fatal is not None:
            raise ServiceError(f"the MQTT network thread died: {_qualified(fatal)}: {first_line(fatal)}") from fatal
        if not self._thread.is_alive() and not self._stopping.is_set():
            raise ServiceError("the MQTT network thread is not running")
        late = self._clock() - self._due
        if late > self.stall_limit_s:
            raise ServiceError(
                f"the MQTT network thread has made no progress for {late:.0f}s "
                f"(limit {self.stall_limit_s:.0f}s: twice mqtt.keepalive_s plus {CONNECT_BUDGET_S:.0f}s to connect)"
            )

    def stop(self) -> None:
        """Ask the thread to send DISCONNECT and end; wait for it a little (it is a daemon thread)."""
        self._stopping.set()
        self._client.disconnect()  # also wakes paho's select() at once
        self._thread.join(LOOP_S + FLUSH_S + 0.5)
        if self._thread.is_alive():
            logger.warning("the MQTT network thread did not stop within %.1fs", LOOP_S + FLUSH_S + 0.5)
        elif (sock := self._client.socket()) is not None:
            sock.close()  # the thread died holding a connection: the broker sees it end, and fires our Last Will


def _ignore(client: Any, userdata: Any, sock: Any) -> None:
    pass


def _qualified(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
