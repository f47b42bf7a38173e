"""Crop geometry, colour order and the LUT-based quantization path of the preprocessor."""

import cv2
import numpy as np
import pytest

from edge_classifier.errors import ModelError
from edge_classifier.model.preprocess import Preprocessing, Preprocessor, crop_box, normalize, to_model_pixels
from edge_classifier.model.quant import QuantParams, quantize

INT8 = QuantParams(np.dtype(np.int8), 2 / 255, -1)
UINT8 = QuantParams(np.dtype(np.uint8), 1 / 255, 0)
FLOAT32 = QuantParams(np.dtype(np.float32))


@pytest.mark.parametrize(
    ("frame_hw", "target_hw", "expected"),
    [
        ((480, 640), (96, 96), (0, 480, 80, 560)),  # landscape camera, square model: trim the sides
        ((640, 480), (96, 96), (80, 560, 0, 480)),  # portrait camera: trim top and bottom
        ((480, 640), (96, 128), (0, 480, 0, 640)),  # same aspect ratio: nothing to crop
        ((100, 100), (50, 100), (25, 75, 0, 100)),  # wide model on a square frame
        ((3, 5), (1, 1), (0, 3, 1, 4)),  # odd sizes round toward the centre
    ],
)
def test_crop_box_is_largest_centred_box_of_model_aspect(frame_hw, target_hw, expected):
    """The crop keeps the model's aspect ratio and is centred in the frame."""
    assert expected == crop_box(*frame_hw, *target_hw)


def test_bgr_frame_becomes_rgb_pixels_once():
    """A pure blue BGR frame comes out with blue in the last RGB channel."""
    frame_bgr = np.zeros((48, 64, 3), dtype=np.uint8)
    frame_bgr[..., 0] = 255  # blue in BGR order
    pixels_rgb = to_model_pixels(frame_bgr, Preprocessing(color_order="RGB"), (8, 8))
    assert [0, 0, 255] == pixels_rgb[4, 4].tolist()


def test_bgr_model_keeps_bgr_order():
    """A model trained on BGR gets the frame's channels untouched."""
    frame_bgr = np.zeros((8, 8, 3), dtype=np.uint8)
    frame_bgr[..., 0] = 200
    pixels = to_model_pixels(frame_bgr, Preprocessing(color_order="BGR"), (4, 4))
    assert [200, 0, 0] == pixels[0, 0].tolist()


def test_center_crop_drops_the_sides_and_squash_keeps_them():
    """Red side bands survive a squash but not a centre crop."""
    frame_bgr = np.zeros((100, 200, 3), dtype=np.uint8)
    frame_bgr[:, :50] = (0, 0, 255)
    frame_bgr[:, 150:] = (0, 0, 255)
    center = to_model_pixels(frame_bgr, Preprocessing(crop="center", interpolation="nearest"), (10, 10))
    squash = to_model_pixels(frame_bgr, Preprocessing(crop="squash", interpolation="nearest"), (10, 10))
    assert (0, 255) == (int(center[..., 0].max()), int(squash[..., 0].max()))


def differences(expected, actual, show=5):
    """Where two arrays of one shape differ: the first `show` (index, expected, actual), empty when equal."""
    return [(tuple(map(int, i)), expected[tuple(i)].item(), actual[tuple(i)].item())
            for i in np.argwhere(expected != actual)[:show]]  # fmt: skip


@pytest.mark.parametrize("params", [INT8, UINT8, FLOAT32], ids=["int8", "uint8", "float32"])
@pytest.mark.parametrize("color_order", ["RGB", "GRAY"])
def test_preprocessor_matches_reference_formula(params, color_order):
    """The table lookup equals quantize(normalize(pixels)) for every dtype and colour order."""
    spec = Preprocessing(color_order=color_order, mean=(127.5,), std=(127.5,))
    shape = (1, 24, 32, spec.channels)
    frame_bgr = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    tensor = Preprocessor(spec, shape, params)(frame_bgr)
    expected = quantize(normalize(to_model_pixels(frame_bgr, spec, (24, 32)), spec), params).reshape(shape)
    assert (params.dtype, expected.shape) == (tensor.dtype, tensor.shape)
    assert [] == differences(expected, tensor)


def test_preprocessor_reuses_its_input_tensor():
    """Two frames fill the same buffer: no allocation per frame for the tensor."""
    pre = Preprocessor(Preprocessing(), (1, 16, 16, 3), INT8)
    first = pre(np.zeros((30, 40, 3), dtype=np.uint8))
    second = pre(np.full((30, 40, 3), 255, dtype=np.uint8))
    assert (True, 127) == (first is second, int(second.max()))


def test_per_channel_mean_and_std_apply_in_model_channel_order():
    """ImageNet-style mean/std are applied to R, G, B in that order after the BGR->RGB swap."""
    spec = Preprocessing(mean=(10.0, 20.0, 30.0), std=(1.0, 2.0, 4.0))
    frame_bgr = np.full((4, 4, 3), (130, 120, 110), dtype=np.uint8)  # B=130, G=120, R=110
    tensor = Preprocessor(spec, (1, 2, 2, 3), FLOAT32)(frame_bgr)
    assert [100.0, 50.0, 25.0] == tensor[0, 0, 0].tolist()


def test_channel_mismatch_is_a_model_error():
    """A grayscale spec on a 3-channel model is refused with a message naming both."""
    with pytest.raises(ModelError, match="3 channels but preprocessing colour order GRAY gives 1"):
        Preprocessor(Preprocessing(color_order="GRAY", mean=(0.0,), std=(1.0,)), (1, 8, 8, 3), INT8)


def test_non_bgr_frame_is_refused():
    """A single-channel frame is a programming error, not silently misread."""
    with pytest.raises(ValueError, match="HxWx3 uint8 BGR"):
        Preprocessor(Preprocessing(), (1, 8, 8, 3), INT8)(np.zeros((8, 8), dtype=np.uint8))


def test_area_resize_of_upscaled_image_recovers_the_original():
    """A 28x28 image shown at 448x448 and resized back by area averaging is nearly unchanged."""
    image = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    frame_bgr = cv2.cvtColor(cv2.resize(image, (448, 448), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR)
    pixels = to_model_pixels(frame_bgr, Preprocessing(color_order="GRAY", mean=(0.0,), std=(1.0,)), (28, 28))
    assert 0 == int(np.abs(pixels.astype(int) - image).max())
