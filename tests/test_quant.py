"""Quantize/dequantize round trips for int8, uint8 and float32 tensors."""

import numpy as np
import pytest

from edge_classifier.errors import ModelError
from edge_classifier.model.quant import QuantParams, dequantize, quantize


@pytest.mark.parametrize(
    "params",
    [QuantParams(np.dtype(np.int8), 0.05, -3), QuantParams(np.dtype(np.uint8), 0.02, 128)],
    ids=["int8", "uint8"],
)
def test_round_trip_error_is_at_most_half_a_step(params):
    """Every representable real survives a round trip within scale/2."""
    info = np.iinfo(params.dtype)
    low, high = (info.min - params.zero_point) * params.scale, (info.max - params.zero_point) * params.scale
    reals = np.linspace(low, high, 1001)
    error = np.abs(dequantize(quantize(reals, params), params) - reals)
    assert float(error.max()) <= params.scale / 2 + 1e-6


def test_int8_extremes_do_not_wrap_when_dequantized():
    """-128 minus a positive zero point is widened before subtracting, so it stays negative."""
    params = QuantParams(np.dtype(np.int8), 0.5, 100)
    assert [-114.0, 13.5] == dequantize(np.array([-128, 127], dtype=np.int8), params).tolist()


def test_out_of_range_values_clip_to_the_dtype():
    """Reals beyond the representable range clip instead of overflowing."""
    params = QuantParams(np.dtype(np.int8), 0.1, 0)
    assert [-128, 127] == quantize([-1000.0, 1000.0], params).tolist()


def test_float32_tensors_pass_through():
    """A float32 tensor has no scale: values are only cast."""
    params = QuantParams(np.dtype(np.float32))
    values = np.array([-1.5, 0.25], dtype=np.float64)
    assert ([-1.5, 0.25], np.float32) == (
        dequantize(quantize(values, params), params).tolist(),
        quantize(values, params).dtype,
    )


def test_params_read_from_interpreter_details():
    """Scale and zero point come from quantization_parameters when present."""
    details = {"name": "x", "dtype": np.int8, "quantization": (0.0, 0),
               "quantization_parameters": {"scales": np.array([0.25]), "zero_points": np.array([-7])}}  # fmt: skip
    assert QuantParams(np.dtype(np.int8), 0.25, -7) == QuantParams.from_details(details)


def test_per_channel_quantized_input_is_a_model_error():
    """A model input quantized per channel is refused as a model problem (exit 78), not a crash."""
    details = {"name": "input", "dtype": np.int8, "quantization": (0.0, 0),
               "quantization_parameters": {"scales": np.array([0.1, 0.2]), "zero_points": np.array([0, 0])}}  # fmt: skip
    with pytest.raises(ModelError, match="'input' is quantized per channel"):
        QuantParams.from_details(details)
