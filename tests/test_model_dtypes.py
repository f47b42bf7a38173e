"""float32, uint8 and int8 models, probabilities or logits, all give the right labels through the runtime.

Public model-zoo files cannot be downloaded in CI, so this builds small models with the zoo
conventions (float32 I/O; uint8 I/O fed 0..1; int8 I/O fed -1..1; a logits head) whose right
answer is known: which colour channel is brightest. A BGR frame fed to an RGB model swaps red and
blue, so this also checks that the colour conversion happens, once.
"""

import numpy as np
import pytest

from edge_classifier.model.classifier import Classifier
from edge_classifier.model.preprocess import Preprocessing

tf = pytest.importorskip("tensorflow", reason="the build extra (TensorFlow) is not installed")
keras = pytest.importorskip("tf_keras")

LABELS = ("red", "green", "blue")
ZERO_TO_ONE = Preprocessing(mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0))
MINUS_ONE_TO_ONE = Preprocessing()  # (pixel - 127.5) / 127.5


def colour_model(logits):
    """RGB image -> mean per channel -> scores favouring the brightest channel."""
    inputs = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(3, activation=None if logits else "softmax")
    outputs = dense(pooled)
    model = keras.Model(inputs, outputs)
    dense.set_weights([np.eye(3, dtype=np.float32) * 8.0, np.zeros(3, dtype=np.float32)])
    return model


def convert(model, io_dtype, spec):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if io_dtype != "float32":
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(64):
                pixels = rng.integers(0, 256, (1, 16, 16, 3)).astype(np.float32)
                yield [((pixels - np.float32(spec.mean)) / np.float32(spec.std)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_dtype)
        converter.inference_output_type = getattr(tf, io_dtype)
    return converter.convert()


@pytest.mark.slow
@pytest.mark.build
# The converter asks for input statistics whenever the input is integer; the representative data set gives them.
@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs were expected:UserWarning")
@pytest.mark.parametrize(
    ("io_dtype", "spec", "logits"),
    [("float32", ZERO_TO_ONE, False), ("uint8", ZERO_TO_ONE, False), ("int8", MINUS_ONE_TO_ONE, False),
     ("int8", MINUS_ONE_TO_ONE, True), ("float32", MINUS_ONE_TO_ONE, True)],
)  # fmt: skip
def test_every_dtype_gives_the_right_colour(tmp_path, io_dtype, spec, logits):
    """Pure red, green and blue BGR frames get the labels red, green, blue, scores summing to one."""
    path = tmp_path / f"{io_dtype}.tflite"
    path.write_bytes(convert(colour_model(logits), io_dtype, spec))
    classifier = Classifier.from_file(path, LABELS, spec, "logits" if logits else "probabilities")
    frames_bgr = {"red": (0, 0, 230), "green": (0, 230, 0), "blue": (230, 0, 0)}
    results = {name: classifier.classify(np.full((48, 64, 3), bgr, dtype=np.uint8)) for name, bgr in frames_bgr.items()}
    got = {name: LABELS[int(np.argmax(r.scores))] for name, r in results.items()}
    sums = [round(float(r.scores.sum()), 1) for r in results.values()]
    assert (np.dtype(io_dtype), {n: n for n in LABELS}, [1.0, 1.0, 1.0]) == (
        classifier.input_spec.quant.dtype,
        got,
        sums,
    )
