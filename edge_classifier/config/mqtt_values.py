"""What MQTT and paho can carry: broker host, topic prefix, text without control characters, byte lengths."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from edge_classifier.config.from_yaml import show
from edge_classifier.errors import ConfigError
from edge_classifier.mqtt.topics import Topics

# Every MQTT string (topic, client id, user name) and the password carry a two-byte length: paho's
# network thread dies on a longer one (struct.error) and never reconnects.
MQTT_MAX_BYTES = 65535
# Kept free after `<prefix>/<device>/` for topic names, command topics like cmd/<name>/response included.
TOPIC_NAME_ROOM = 200

# C0 and C1 control characters (MQTT forbids U+0000 and discourages the rest) and lone surrogates,
# which cannot be encoded as UTF-8 at all (paho's will_set raised UnicodeEncodeError).
_UNFIT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_HOST_LABEL = re.compile(r"[A-Za-z0-9_-]+")  # underscores: container and NetBIOS names resolve with them
_DOTTED_NUMBERS = re.compile(r"[0-9.]*[0-9][0-9.]*")


def check_text(key: str, value: str, described: str | None = None) -> None:
    """Refuse a control character or lone surrogate; `described` stands in for a value not to be shown (a password)."""
    found = _UNFIT.search(value)
    if found is None:
        return
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        raise ConfigError(f"{key}: {described or show(value)} contains a lone surrogate (U+{ord(char):04X}), "
                          "which is not valid UTF-8")  # fmt: skip
    raise ConfigError(f"{key}: {described or show(value)} contains the control character U+{ord(char):04X}, "
                      "which MQTT does not allow")  # fmt: skip


def check_length(key: str, value: str, described: str | None = None) -> None:
    """Refuse text longer in UTF-8 than an MQTT string can be."""
    size = len(value.encode("utf-8"))
    if size > MQTT_MAX_BYTES:
        raise ConfigError(f"{key}: {described or show(value)} is {size} bytes long in UTF-8; MQTT allows at most "
                          f"{MQTT_MAX_BYTES}")  # fmt: skip


def check_names(prefix: str, device: str, device_id: str) -> None:
    """Refuse a prefix and device (sanitized from device_id) that make a client id or topic too long for MQTT."""
    topics = Topics(prefix, device)
    client_id = len(topics.client_id.encode("utf-8"))
    if client_id > MQTT_MAX_BYTES:
        raise ConfigError(f"device_id: {show(device_id)} makes the client id {client_id} bytes long; MQTT allows at "
                          f"most {MQTT_MAX_BYTES}")  # fmt: skip
    base = len(topics.base.encode("utf-8"))
    published = (topics.status, topics.result, topics.label, topics.inference, topics.metrics)
    room = max(TOPIC_NAME_ROOM, *(len(t.encode("utf-8")) - base for t in published))
    if base + room > MQTT_MAX_BYTES:
        prefix_size, device_size = len(prefix.encode("utf-8")), len(device.encode("utf-8"))
        # Blame the longer part: that is the one to shorten.
        key, value, size = ("device_id", device_id, device_size)
        if prefix_size > device_size:
            key, value, size = ("mqtt.prefix", prefix, prefix_size)
        raise ConfigError(
            f"{key}: {show(value)} is {size} bytes long; topics <prefix>/<device>/<name> would need {base + room} "
            f"bytes ({prefix_size} prefix, {device_size} device, {room} kept for names); MQTT allows at most "
            f"{MQTT_MAX_BYTES}"
        )


def check_prefix(prefix: str) -> None:
    """Refuse a topic prefix that is not a plain topic name, or that brokers treat specially."""
    check_text("mqtt.prefix", prefix)
    if not prefix or any(c in prefix for c in "#+") or prefix.startswith("/"):
        raise ConfigError(f"mqtt.prefix: expected a topic prefix without '#', '+' or a leading '/', got {show(prefix)}")
    # A trailing '/' is dropped when topics are built (Topics.base), so only an inner '//' makes an empty level.
    if "//" in prefix.rstrip("/"):
        raise ConfigError(f"mqtt.prefix: {show(prefix)} has an empty topic level ('//')")
    if prefix.startswith("$"):
        raise ConfigError(f"mqtt.prefix: {show(prefix)} starts with '$', which brokers keep for themselves ($SYS)")


def check_host(host: str) -> None:
    """Refuse a broker host that can never be connected to, saying what was probably meant.

    paho retries such a host forever (or its network thread dies on one it cannot encode).
    """
    check_text("mqtt.host", host)
    given = f"mqtt.host: {show(host)}"
    if "://" in host:
        name: str | None = None
        port: int | None = None
        try:
            url = urlsplit(host)
            name = url.hostname
            port = url.port
        except ValueError:
            pass  # a broken URL: the hint stays general
        alone = f" ({name})" if name else ""
        port_hint = f" ({port})" if port is not None else ""
        tls_hint = ", with mqtt.tls: true" if host.lower().startswith(("mqtts:", "ssl:")) else ""
        raise ConfigError(
            f"{given} is a URL; give the host name alone{alone} and the port as mqtt.port{port_hint}{tls_hint}"
        )
    bracketed = re.fullmatch(r"\[([^\]]*)\](?::([0-9]+))?", host)
    if bracketed:
        address, port_text = bracketed.groups()
        if port_text:
            raise ConfigError(f"{given} includes a port; use mqtt.host: {address} and mqtt.port: {port_text}")
        raise ConfigError(f"{given} has brackets; give the IPv6 address without them ({address})")
    if host.count(":") == 1:
        name, port_text = host.split(":")
        if port_text.isdigit() and name:
            raise ConfigError(f"{given} includes a port; use mqtt.host: {name} and mqtt.port: {port_text}")
        raise ConfigError(f"{given} is not a host name or IP address")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{given} is not a valid IPv6 address") from None
        return
    if _DOTTED_NUMBERS.fullmatch(host):
        # What the resolver accepts for a numeric host (127.1 and 10 included): anything else never resolves.
        try:
            socket.inet_aton(host)
        except OSError:
            raise ConfigError(f"{given} is not a valid IPv4 address") from None
        return
    try:
        labels = host.encode("idna").decode("ascii").rstrip(".").split(".")
    except UnicodeError:
        labels = []
    if host != host.strip() or not all(_HOST_LABEL.fullmatch(label) for label in labels) or not labels:
        raise ConfigError(f"{given} is not a host name or IP address")
