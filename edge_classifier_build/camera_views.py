"""Camera-like views of a photo, deterministic: what a customer's phone or a kiosk camera makes of a catalogue photo.

Each view is one perspective warp (a crop of 70-95% of the area, rotated by up to 15 degrees about its centre,
its corners moved by up to 6% of its size) back to the photo's own size, then a Gaussian blur, a brightness and
contrast change and a JPEG re-compression at quality 40-90. The random draws of view `index` of a photo come from
a seed made of the photo's key (its path relative to the photo folder) and the index, so a view is the same
image in every run and on every machine with the same OpenCV (whose warp, blur and JPEG paths are bit-exact).
OpenCV and numpy only: no TensorFlow.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

CROP_AREA = (0.70, 0.95)  # share of the photo's area the view keeps
CROP_ASPECT = (3 / 4, 4 / 3)  # width / height of the crop, drawn log-uniformly
MAX_ROTATION_DEG = 15.0
MAX_CORNER_SHIFT = 0.06  # each corner of the crop moves by up to this share of the crop's width and height
BLUR_SIGMA = (0.3, 1.5)  # pixels
CONTRAST = (0.75, 1.25)
BRIGHTNESS = (-30.0, 30.0)  # added to 0-255 pixel values
JPEG_QUALITY = (40, 90)  # inclusive

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ViewParams:
    """The random draws of one view: crop box (pixels), rotation, corner shifts, blur, light and JPEG quality."""

    crop: tuple[float, float, float, float]  # left, top, width, height
    angle_deg: float
    corner_shifts: tuple[float, ...]  # dx, dy of the 4 corners, as shares of the crop's width and height
    blur_sigma: float
    contrast: float
    brightness: float
    jpeg_quality: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def view_seed(key: str, index: int) -> int:
    """A 64-bit seed from the photo's key and the view's index (sha256, so it does not depend on Python's hash)."""
    digest = hashlib.sha256(f"{key}\0{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def draw_params(width: int, height: int, seed: int) -> ViewParams:
    """The view's random draws for a photo of WIDTH x HEIGHT pixels."""
    rng = np.random.default_rng(seed)
    area = float(rng.uniform(*CROP_AREA)) * width * height
    aspect = math.exp(float(rng.uniform(math.log(CROP_ASPECT[0]), math.log(CROP_ASPECT[1]))))
    crop_w = min(float(width), math.sqrt(area * aspect))
    crop_h = min(float(height), math.sqrt(area / aspect))
    left = float(rng.uniform(0.0, width - crop_w))
    top = float(rng.uniform(0.0, height - crop_h))
    return ViewParams(
        crop=(left, top, crop_w, crop_h),
        angle_deg=float(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)),
        corner_shifts=tuple(float(v) for v in rng.uniform(-MAX_CORNER_SHIFT, MAX_CORNER_SHIFT, 8)),
        blur_sigma=float(rng.uniform(*BLUR_SIGMA)),
        contrast=float(rng.uniform(*CONTRAST)),
        brightness=float(rng.uniform(*BRIGHTNESS)),
        jpeg_quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1], endpoint=True)),
    )


def source_quad(params: ViewParams) -> npt.NDArray[np.float32]:
    """The four points of the photo (top-left, top-right, bottom-right, bottom-left) the view's corners show."""
    left, top, w, h = params.crop
    cx, cy = left + w / 2, top + h / 2
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]], dtype=np.float64)
    corners += np.array(params.corner_shifts, dtype=np.float64).reshape(4, 2) * np.array([w, h])
    angle = math.radians(params.angle_deg)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    quad: npt.NDArray[np.float32] = (corners @ rotation.T + np.array([cx, cy])).astype(np.float32)
    return quad


def render_view(image: Image, params: ViewParams) -> Image:
    """Apply PARAMS to a BGR photo; the view has the photo's size (borders reflected where the warp leaves it)."""
    height, width = image.shape[:2]
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(source_quad(params), target)
    warped = cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip
    blurred = cv2.GaussianBlur(warped, (0, 0), params.blur_sigma)
    # out = contrast * (pixel - 128) + 128 + brightness, saturated to 0-255.
    lit = cv2.convertScaleAbs(blurred, alpha=params.contrast, beta=128 * (1 - params.contrast) + params.brightness)
    ok, encoded = cv2.imencode(".jpg", lit, [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a view as JPEG")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return np.asarray(decoded, dtype=np.uint8)


def camera_view(image: Image, key: str, index: int) -> Image:
    """View INDEX of the photo whose key (path relative to its folder, '/'-separated) is KEY."""
    height, width = image.shape[:2]
    return render_view(image, draw_params(width, height, view_seed(key, index)))


def camera_views(image: Image, key: str, count: int) -> list[Image]:
    """Views 0 .. COUNT-1 of one photo."""
    return [camera_view(image, key, index) for index in range(count)]


def generator_settings() -> dict[str, Any]:
    """The generator's ranges, as the measurement records them."""
    return {
        "crop_area": list(CROP_AREA),
        "crop_aspect": [round(CROP_ASPECT[0], 4), round(CROP_ASPECT[1], 4)],
        "max_rotation_deg": MAX_ROTATION_DEG,
        "max_corner_shift": MAX_CORNER_SHIFT,
        "blur_sigma": list(BLUR_SIGMA),
        "contrast": list(CONTRAST),
        "brightness": list(BRIGHTNESS),
        "jpeg_quality": list(JPEG_QUALITY),
    }
