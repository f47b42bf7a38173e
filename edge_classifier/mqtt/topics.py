"""MQTT topic names and identifiers derived from the device id."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
# Latin letters with no ASCII decomposition; accents decompose and are dropped (é → e). Other scripts
# (Cyrillic, CJK) have none: the appended hash keeps such ids apart.
_LATIN = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ð": "d", "ł": "l", "þ": "th", "ı": "i"})


def sanitize_device_id(raw: str) -> str:
    """Lower-case, only [a-z0-9_-], runs of anything else become one '-'; accents dropped.

    A non-ASCII id, which cannot survive unchanged, gets the first 8 hex digits of the sha256 of its
    lower-case NFC form appended: 'кухня' and '厨房' stay two devices, the same on every start.
    ValueError if the id has no letter or digit in any script ('---', '').
    """
    text = unicodedata.normalize("NFC", raw.strip()).lower()
    if not any(c.isalnum() for c in text):
        raise ValueError(f"device id {raw!r} has no letter or digit")
    decomposed = unicodedata.normalize("NFKD", text.translate(_LATIN))
    cleaned = _UNSAFE.sub("-", "".join(c for c in decomposed if not unicodedata.combining(c)).lower()).strip("-")
    if text.isascii():
        return cleaned  # punctuation and spaces become '-' as they always did: existing topics keep their names
    # surrogatepass: the hash never fails, even on text the configuration would refuse
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned}-{digest}" if cleaned else digest


@dataclass(frozen=True)
class Topics:
    """Every topic the daemon publishes, under `<prefix>/<device_id>`."""

    prefix: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix.rstrip('/')}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def result(self) -> str:
        return f"{self.base}/result"

    @property
    def label(self) -> str:
        return f"{self.base}/label"

    @property
    def inference(self) -> str:
        return f"{self.base}/inference"

    @property
    def metrics(self) -> str:
        return f"{self.base}/metrics"

    @property
    def client_id(self) -> str:
        return f"edge-classifier-{self.device_id}"
