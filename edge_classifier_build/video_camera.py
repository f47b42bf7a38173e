"""The demo video's camera: per garment a zoom or a pan and a light ramp or step, from a seeded generator."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WIDTH, HEIGHT = 640, 480
ZOOM = (1.0, 1.1)
PAN_ZOOM = 1.08  # a pan needs some scene beyond the frame's edges to move over
# Zooming about the centre leaves (zoom - 1) / 2 of the frame at each edge; 90% of it never shows past the scene.
PAN_REACH = 0.9 * (PAN_ZOOM - 1) / 2
DARK, BRIGHT = (0.78, 0.92), (1.02, 1.15)  # exposure gains a segment's light goes between


@dataclass(frozen=True)
class Camera:
    """A segment's camera, start to end: zoom (>= 1: no edge of the scene shows), pan in pixels, exposure gain."""

    motion: str
    zoom: tuple[float, float]
    pan: tuple[tuple[float, float], tuple[float, float]]
    light: str
    gain: tuple[float, float]
    step_at: float  # where a lighting step happens, as a fraction of the segment (unused by a ramp)

    def at(self, t: float) -> tuple[float, float, float, float]:
        """Zoom, pan x, pan y and gain at t in [0, 1]."""
        (x0, y0), (x1, y1) = self.pan
        light = float(t >= self.step_at) if self.light == "step" else t
        return lerp(self.zoom, t), lerp((x0, x1), t), lerp((y0, y1), t), lerp(self.gain, light)

    def as_dict(self) -> dict[str, Any]:
        described: dict[str, Any] = {"motion": self.motion, "zoom": self.zoom, "pan_px": self.pan}
        described |= {"light": self.light, "gain": self.gain}
        if self.light == "step":
            described["step_at"] = self.step_at
        readable: dict[str, Any] = rounded(described)
        return readable


@dataclass(frozen=True)
class Garment:
    """A photo of the set, its label and how the camera films it."""

    photo: Path  # relative to the photo set
    label: str
    camera: Camera


def lerp(pair: tuple[float, float], t: float) -> float:
    return pair[0] + (pair[1] - pair[0]) * t


def rounded(value: Any) -> Any:
    """Floats rounded to 3 places, tuples as lists: the JSON stays readable."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, (tuple, list)):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def keyed_rng(seed: int, key: str, n: int = 0) -> np.random.Generator:
    """A generator that depends only on the seed, a name and a number, not on what was drawn before.

    A photo's camera and noise are then the same whether it is screened or written, and in any order.
    """
    return np.random.default_rng([seed, zlib.crc32(key.encode()), n])


def random_camera(rng: np.random.Generator) -> Camera:
    """A zoom in, a zoom out or a diagonal pan, and a light ramp or step between a dark and a bright exposure."""
    motion = str(rng.choice(["zoom in", "zoom out", "pan"]))
    if motion == "pan":
        zoom = (PAN_ZOOM, PAN_ZOOM)
        reach_x, reach_y = PAN_REACH * WIDTH, PAN_REACH * HEIGHT
        sign_x, sign_y = rng.choice([-1.0, 1.0], size=2)
        pan = ((-sign_x * reach_x, -sign_y * reach_y), (sign_x * reach_x, sign_y * reach_y))
    else:
        zoom = ZOOM if motion == "zoom in" else (ZOOM[1], ZOOM[0])
        pan = ((0.0, 0.0), (0.0, 0.0))
    light = str(rng.choice(["ramp", "step"]))
    low, high = float(rng.uniform(*DARK)), float(rng.uniform(*BRIGHT))
    gain = (low, high) if rng.random() < 0.5 else (high, low)
    return Camera(motion, zoom, pan, light, gain, float(rng.uniform(0.3, 0.7)))
