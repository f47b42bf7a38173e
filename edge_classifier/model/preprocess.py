"""Camera frame (BGR, any size) to model input tensor: crop, resize, colour order, normalize, quantize.

The build script uses `to_model_pixels` and `normalize` to prepare its training images, so the
model is trained on exactly what the daemon feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.errors import ModelError
from edge_classifier.model.quant import QuantParams, quantize

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "linear_exact": cv2.INTER_LINEAR_EXACT,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
}
COLOR_ORDERS = ("RGB", "BGR", "GRAY")
CROP_MODES = ("center", "squash")

Image = npt.NDArray[Any]  # an OpenCV image; its colour order is in the variable's name


class PreprocessingValueError(ValueError):
    """A preprocessing value that cannot work; `field` names it for the caller's dotted key."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become model input: real = (pixel - mean[c]) / std[c] in the model's channel order."""

    color_order: str = "RGB"
    crop: str = "center"
    interpolation: str = "area"
    mean: tuple[float, ...] = (127.5, 127.5, 127.5)
    std: tuple[float, ...] = (127.5, 127.5, 127.5)

    def __post_init__(self) -> None:
        if self.color_order not in COLOR_ORDERS:
            raise PreprocessingValueError(
                "color_order", f"{self.color_order!r} is not one of {', '.join(COLOR_ORDERS)}"
            )
        if self.crop not in CROP_MODES:
            raise PreprocessingValueError("crop", f"{self.crop!r} is not one of {', '.join(CROP_MODES)}")
        if self.interpolation not in INTERPOLATIONS:
            interpolations = ", ".join(INTERPOLATIONS)
            raise PreprocessingValueError("interpolation", f"{self.interpolation!r} is not one of {interpolations}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, self.channels):
                wanted = "1 value" if self.channels == 1 else "1 or 3 values"
                message = f"color_order {self.color_order} needs {wanted}, got {list(values)}"
                raise PreprocessingValueError(name, message)
        if any(s <= 0 for s in self.std):
            raise PreprocessingValueError("std", f"every value must be positive, got {list(self.std)}")

    @property
    def channels(self) -> int:
        return 1 if self.color_order == "GRAY" else 3

    def as_dict(self) -> dict[str, Any]:
        return {
            "color_order": self.color_order,
            "crop": self.crop,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def crop_box(frame_h: int, frame_w: int, target_h: int, target_w: int) -> tuple[int, int, int, int]:
    """The largest centred box of the target's aspect ratio: (y0, y1, x0, x1)."""
    # Compare aspect ratios by cross-multiplying so that integer sizes give exact answers.
    if frame_w * target_h > frame_h * target_w:
        crop_w = max(1, round(frame_h * target_w / target_h))
        x0 = (frame_w - crop_w) // 2
        return 0, frame_h, x0, x0 + crop_w
    crop_h = max(1, round(frame_w * target_h / target_w))
    y0 = (frame_h - crop_h) // 2
    return y0, y0 + crop_h, 0, frame_w


def to_model_pixels(
    frame_bgr: Image,
    spec: Preprocessing,
    size_hw: tuple[int, int],
    resized_bgr: Image | None = None,
    out: Image | None = None,
) -> Image:
    """Crop and resize a BGR frame, then convert it to the model's colour order (the one place)."""
    height, width = size_hw
    if spec.crop == "center":
        y0, y1, x0, x1 = crop_box(frame_bgr.shape[0], frame_bgr.shape[1], height, width)
        frame_bgr = frame_bgr[y0:y1, x0:x1]
    resized: Image = cv2.resize(
        frame_bgr, (width, height), dst=resized_bgr, interpolation=INTERPOLATIONS[spec.interpolation]
    )
    if spec.color_order == "RGB":
        rgb: Image = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB, dst=out)
        return rgb
    if spec.color_order == "GRAY":
        gray: Image = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY, dst=out)
        return gray
    if out is None:
        return resized.copy()
    np.copyto(out, resized)
    return out


def normalize(pixels: npt.NDArray[np.uint8], spec: Preprocessing) -> npt.NDArray[np.float32]:
    """Real-valued model input for pixels in the model's colour order (channels last)."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return ((pixels.astype(np.float32) - mean) / std).astype(np.float32)


def build_lut(spec: Preprocessing, params: QuantParams) -> npt.NDArray[Any]:
    """A 256-entry table per channel from pixel value to stored input value (normalize + quantize)."""
    levels = np.arange(256, dtype=np.uint8).reshape(256, 1)
    per_channel = np.broadcast_to(levels, (256, spec.channels))
    table = quantize(normalize(per_channel, spec), params)
    return np.ascontiguousarray(table.reshape(1, 256, spec.channels))


def apply_lut(pixels: Image, lut: npt.NDArray[Any], out: Image | None = None) -> Image:
    """Model-order pixels (H, W[, C]) through a build_lut table: the stored input values, same shape."""
    table = lut if lut.shape[2] == 3 else lut.reshape(1, 256)
    stored: Image = cv2.LUT(pixels, table, dst=out)
    return stored


class Preprocessor:
    """Turns BGR frames into the model's input tensor, reusing its buffers across frames."""

    def __init__(self, spec: Preprocessing, input_shape: tuple[int, ...], params: QuantParams):
        if len(input_shape) != 4 or input_shape[0] != 1:
            raise ModelError(f"model input shape {list(input_shape)} is not [1, height, width, channels]")
        _, height, width, channels = input_shape
        if channels != spec.channels:
            raise ModelError(
                f"model input has {channels} channels but preprocessing colour order "
                f"{spec.color_order} gives {spec.channels}"
            )
        self.spec = spec
        self.size_hw = (height, width)
        self._resized_bgr = np.empty((height, width, 3), dtype=np.uint8)
        pixel_shape = (height, width) if channels == 1 else (height, width, 3)
        self._pixels = np.empty(pixel_shape, dtype=np.uint8)
        self._lut = build_lut(spec, params)
        self.input_tensor = np.empty(input_shape, dtype=params.dtype)
        # cv2.LUT writes a (h, w[, c]) image; this view lets it fill the batch tensor in place.
        self._input_view = self.input_tensor.reshape(pixel_shape)

    def __call__(self, frame_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
        """Fill and return the (reused) input tensor for one frame."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {frame_bgr.shape} {frame_bgr.dtype}")
        pixels = to_model_pixels(frame_bgr, self.spec, self.size_hw, self._resized_bgr, self._pixels)
        apply_lut(pixels, self._lut, out=self._input_view)
        return self.input_tensor
