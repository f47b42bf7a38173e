"""The `homeassistant` config section: discovery on or off, its topic prefix and mode, checked as it is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from edge_classifier.config.from_yaml import show
from edge_classifier.config.mqtt_values import check_text
from edge_classifier.errors import ConfigError

# Far below MQTT's 65,535 bytes: node id, platform and entity key still have to fit after it.
MAX_PREFIX_BYTES = 1024


def _limits(low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"low": low, "high": high}


@dataclass(frozen=True)
class HomeAssistantConfig:
    """Home Assistant MQTT discovery: retained config messages that make the daemon's entities appear in it."""

    # On by default: Home Assistant users are the main audience, and retained discovery config on a broker
    # that no Home Assistant reads costs a few kilobytes and nothing else (`edge-classifier ha-remove` clears it).
    enabled: bool = True
    # Home Assistant's discovery prefix (its MQTT integration's setting); its birth message comes on
    # <discovery_prefix>/status.
    discovery_prefix: str = "homeassistant"
    # device: one retained message for every entity (Home Assistant 2024.11 and later); component: one per
    # entity on <discovery_prefix>/<platform>/<node_id>/<entity>/config, for older consumers.
    mode: Literal["device", "component"] = "device"
    # After Home Assistant announces `online` on <discovery_prefix>/status, publish again this much later.
    republish_grace_s: float = field(default=5.0, metadata=_limits(0.0, 600.0))
    # A binary sensor per label (on while it is the stable label) for models with at most this many labels;
    # 0: none.
    label_entities_max: int = field(default=50, metadata=_limits(0, 1000))
    # The origin's support URL that Home Assistant shows with the discovered device; null: none.
    support_url: str | None = None

    def __post_init__(self) -> None:
        check_discovery_prefix(self.discovery_prefix)
        if self.support_url is not None:
            check_text("homeassistant.support_url", self.support_url)
            if not self.support_url.startswith(("http://", "https://")) or len(self.support_url) > 2048:
                raise ConfigError(
                    f"homeassistant.support_url: expected an http:// or https:// URL, got {show(self.support_url)}"
                )


def check_discovery_prefix(prefix: str) -> None:
    """Refuse a discovery prefix that is not a plain topic name (the same rules as mqtt.prefix)."""
    key = "homeassistant.discovery_prefix"
    check_text(key, prefix)
    stripped = prefix.rstrip("/")
    if not stripped or any(c in prefix for c in "#+") or prefix.startswith("/"):
        raise ConfigError(f"{key}: expected a topic prefix without '#', '+' or a leading '/', got {show(prefix)}")
    if "//" in stripped:
        raise ConfigError(f"{key}: {show(prefix)} has an empty topic level ('//')")
    if prefix.startswith("$"):
        raise ConfigError(f"{key}: {show(prefix)} starts with '$', which brokers keep for themselves ($SYS)")
    size = len(prefix.encode("utf-8"))
    if size > MAX_PREFIX_BYTES:
        raise ConfigError(f"{key}: {show(prefix)} is {size} bytes long in UTF-8; at most {MAX_PREFIX_BYTES}")
