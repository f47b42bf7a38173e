"""The `snapshot` command's image: the latest classified frame as a JPEG no larger than a cap."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.errors import InputError
from edge_classifier.service.messages import Message

MAX_SNAPSHOT_BYTES = 512 * 1024
DEFAULT_WIDTH = 640
DEFAULT_QUALITY = 80
MIN_QUALITY = 10


@dataclass(frozen=True)
class Jpeg:
    data: bytes
    width: int
    height: int
    quality: int


def _scaled(frame: npt.NDArray[np.uint8], width: int) -> npt.NDArray[np.uint8]:
    height, current = frame.shape[:2]
    if current <= width:
        return frame
    size = (width, max(1, round(height * width / current)))
    return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def encode_capped(frame: npt.NDArray[np.uint8], max_width: int, quality: int, cap: int = MAX_SNAPSHOT_BYTES) -> Jpeg:
    """At most `max_width` wide; quality, then size, lowered until the JPEG fits in `cap` bytes."""
    width = min(max_width, frame.shape[1])
    while True:
        image = _scaled(frame, width)
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:  # pragma: no cover - OpenCV encodes any 8-bit BGR image
            raise InputError("OpenCV could not encode the frame as a JPEG")
        data = buffer.tobytes()
        if len(data) <= cap or width <= 16:
            return Jpeg(data, image.shape[1], image.shape[0], quality)
        if quality > MIN_QUALITY:
            quality = max(MIN_QUALITY, quality - 20)
        else:
            width = max(16, width // 2)


def snapshot_message(topic: str, jpeg: Jpeg) -> Message:
    """Never retained: a snapshot is a picture of one moment, not state."""
    return Message(topic, jpeg.data, qos=0, retain=False)
