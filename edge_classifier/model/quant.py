"""Affine (de)quantization between real values and a tensor's dtype, written once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.errors import ModelError

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.int8))


@dataclass(frozen=True)
class QuantParams:
    """How a tensor stores real numbers: real = (stored - zero_point) * scale."""

    dtype: np.dtype[Any]
    scale: float = 0.0
    zero_point: int = 0

    @property
    def is_quantized(self) -> bool:
        return self.dtype.kind in "iu" and self.scale > 0.0

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> QuantParams:
        """Read dtype, scale and zero point from an interpreter's tensor details."""
        dtype = np.dtype(details["dtype"])
        params = details.get("quantization_parameters") or {}
        scales = np.asarray(params.get("scales", []), dtype=np.float64)
        zero_points = np.asarray(params.get("zero_points", []), dtype=np.int64)
        if scales.size > 1:
            # Per-channel quantization only appears on weights, never on model inputs/outputs.
            raise ModelError(
                f"model tensor {details.get('name')!r} is quantized per channel; inputs and outputs need one scale"
            )
        if scales.size == 1:
            return cls(dtype, float(scales[0]), int(zero_points[0]))
        scale, zero_point = details.get("quantization", (0.0, 0))
        return cls(dtype, float(scale), int(zero_point))


def quantize(real: npt.ArrayLike, params: QuantParams) -> npt.NDArray[Any]:
    """Map real values into the tensor's dtype: round to nearest, clip to the dtype's range."""
    real_f = np.asarray(real, dtype=np.float64)
    if not params.is_quantized:
        return real_f.astype(params.dtype)
    info = np.iinfo(params.dtype)
    stored = np.rint(real_f / params.scale) + params.zero_point
    clipped: npt.NDArray[Any] = np.clip(stored, info.min, info.max).astype(params.dtype)
    return clipped


def dequantize(stored: npt.ArrayLike, params: QuantParams) -> npt.NDArray[np.float32]:
    """Map stored values back to reals, widening first so that int8 - zero_point cannot wrap."""
    arr = np.asarray(stored)
    if not params.is_quantized:
        return arr.astype(np.float32)
    widened = arr.astype(np.int32) - np.int32(params.zero_point)
    return (widened * params.scale).astype(np.float32)
