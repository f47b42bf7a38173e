"""The live frame with what the model makes of it drawn on: the crop it sees, the label, fps and stage times."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.model.preprocess import crop_box
from edge_classifier.service.state import RuntimeSnapshot

Image = npt.NDArray[np.uint8]
BOX_BGR = (0, 220, 255)
TEXT_BGR = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class CropGeometry:
    """What part of a frame the model sees: its input size and crop mode (center: the largest centred box)."""

    input_hw: tuple[int, int]
    crop: str

    def box(self, frame_h: int, frame_w: int) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of the region the model sees in a frame of this size."""
        if self.crop == "center":
            return crop_box(frame_h, frame_w, *self.input_hw)
        return 0, frame_h, 0, frame_w


class RateMeter:
    """Frames per second over the last few seconds, from the processed-frame count; safe from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, span_s: float = 3.0):
        self._clock = clock
        self._span = span_s
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, int]] = deque()

    def rate(self, frames: int) -> float:
        now = self._clock()
        with self._lock:
            samples = self._samples
            if not samples or now - samples[-1][0] >= 0.2:
                samples.append((now, frames))
            while len(samples) > 2 and now - samples[1][0] >= self._span:
                samples.popleft()
            (t0, n0), (t1, n1) = samples[0], samples[-1]
        return round((n1 - n0) / (t1 - t0), 2) if t1 > t0 else 0.0


def overlay_lines(snapshot: RuntimeSnapshot, fps: float) -> list[str]:
    stable = snapshot.stable
    lines = [f"{stable.label} {stable.score:.2f}"]
    latest = snapshot.latest
    if latest is not None:
        t = latest.timings
        lines.append(f"{fps:.1f} fps  cap {t.capture_ms:.1f}  pre {t.preprocess_ms:.1f}  "
                     f"inf {t.inference_ms:.1f}  post {t.postprocess_ms:.1f} ms")  # fmt: skip
        best = latest.best
        lines.append(f"frame: {best.label} {best.score:.2f}")
    else:
        lines.append(f"{fps:.1f} fps")
    return lines


def render(snapshot: RuntimeSnapshot, geometry: CropGeometry, fps: float, max_width: int) -> Image | None:
    """A new image (the shared frame is never written): scaled to max_width at most, the overlay drawn on it."""
    frame = snapshot.frame_bgr
    if frame is None:
        return None
    height, width = frame.shape[:2]
    scale = min(1.0, max_width / width)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cast("Image", cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    else:
        image = frame.copy()
    y0, y1, x0, x1 = (round(v * scale) for v in geometry.box(height, width))
    thick = max(1, round(image.shape[1] / 320))
    cv2.rectangle(image, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), BOX_BGR, thick)
    lines = overlay_lines(snapshot, fps)
    font_scale = max(0.35, image.shape[1] / 1100)
    line_h = round(30 * font_scale) + 4
    text_w = max(cv2.getTextSize(line, FONT, font_scale, 1)[0][0] for line in lines) + 12
    band = image[: min(image.shape[0], line_h * len(lines) + 8), : min(image.shape[1], text_w)]
    np.right_shift(band, 1, out=band)  # darken behind the text so it reads on any scene
    for i, line in enumerate(lines):
        scale_i = font_scale * (1.3 if i == 0 else 1.0)
        cv2.putText(image, line, (6, line_h * (i + 1)), FONT, scale_i, TEXT_BGR, 1 + (i == 0), cv2.LINE_AA)
    return image


def encode_jpeg(image: Image, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit BGR image
        raise RuntimeError("OpenCV could not encode a JPEG")
    return buffer.tobytes()
