"""Transfer learning from an int8 MobileNetV2 .tflite: the transplant into Keras, its agreement check, the build
options around it, and their one-line errors.

The pretrained file is a stand-in for Coral's ImageNet MobileNetV2 (CI has no internet): the same network at 32 px
with 10 classes, trained for a few seconds on the committed photos and converted to full int8 with uint8 input and
output, as Coral's file is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from photos import PHOTOS, committed_photos, needs_tensorflow

from edge_classifier.errors import InputError
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.preprocess import Preprocessing, normalize, to_model_pixels
from helpers import SCHEMAS

FOLDERS = ("dress", "hat", "longsleeve", "outwear", "pants", "shirt", "shoes", "shorts", "skirt", "t-shirt")
LABEL_NAMES = "Dress,Hat,Long sleeve,Outwear,Pants,Shirt,Shoes,Shorts,Skirt,T-shirt"
SPEC = Preprocessing(color_order="RGB", crop="center", interpolation="area")  # the build's preprocessing
RESOLUTION = 32
SEED = 3
EPOCHS = 8
CHECK_PHOTOS = 30


@dataclass(frozen=True)
class StandIn:
    """The stand-in .tflite, the Keras network it was converted from, and both networks' view of every photo."""

    path: Path
    model: Any
    files: list[Path]
    frames: list[np.ndarray]  # BGR, as read from disk
    inputs: np.ndarray  # normalized 32 px model inputs
    logits: np.ndarray  # the original float network's logits
    scores: np.ndarray  # the .tflite's dequantized outputs, through the daemon's classifier

    @cached_property
    def clear(self) -> np.ndarray:
        """Photos on which the int8 file and its float original agree, with a lead of the top-1 over the second
        logit of at least the median lead.

        A network trained for seconds has many near-ties, on which int8 rounding alone flips the top-1: those
        photos would test the quantization, not the transplant.
        """
        leads = np.array([self.lead(i) for i in range(len(self.files))])
        same = self.logits.argmax(axis=1) == self.scores.argmax(axis=1)
        return np.flatnonzero(same & (leads >= np.median(leads)))

    def lead(self, index: int) -> float:
        """How far the original network's top-1 logit for a photo is ahead of its second."""
        second, first = np.sort(self.logits[index])[-2:]
        return float(first - second)

    def check_photos(self) -> np.ndarray:
        """CHECK_PHOTOS of the clear photos, spread over the folders."""
        clear = self.clear
        return clear[np.linspace(0, len(clear) - 1, CHECK_PHOTOS).astype(int)]


def tflite_scores(path: Path, frames: list[np.ndarray]) -> np.ndarray:
    """A .tflite's dequantized outputs for some frames, through the daemon's own classifier."""
    with Classifier.from_file(path, tuple(str(i) for i in range(len(FOLDERS))), SPEC) as classifier:
        return np.stack([classifier.classify(frame).scores for frame in frames])


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> StandIn:
    """MobileNetV2(alpha=1.0) at 32 px trained briefly on the committed photos, as a full-int8 uint8-in/out .tflite."""
    import tensorflow as tf
    import tf_keras as keras

    files, labels = committed_photos()
    frames = [cv2.imread(str(photo), cv2.IMREAD_COLOR) for photo in files]
    inputs = normalize(np.stack([to_model_pixels(f, SPEC, (RESOLUTION, RESOLUTION)) for f in frames]), SPEC)
    keras.utils.set_random_seed(SEED)
    model = keras.applications.MobileNetV2(
        input_shape=(RESOLUTION, RESOLUTION, 3), alpha=1.0, weights=None, classes=len(FOLDERS),
        classifier_activation=None,
    )  # fmt: skip
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for norm in norms:
        norm.momentum = 0.8  # at Keras' 0.999 the moving statistics barely leave their initial values in 88 steps
    model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(inputs, labels, epochs=EPOCHS, batch_size=32, shuffle=True, verbose=0)
    # One pass in training mode at momentum 0 makes the moving statistics the photos' own: without it the
    # network in inference mode gives every photo the same class.
    for norm in norms:
        norm.momentum = 0.0
    model(inputs, training=True)

    def representative() -> Any:
        for image in inputs:
            yield [image[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    path = tmp_path_factory.mktemp("stand-in") / "mobilenet_v2_1.0_32_ptq.tflite"
    with warnings.catch_warnings():
        # TF asks for input statistics whenever the input is integer; the representative data set gives them.
        warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected", UserWarning)
        path.write_bytes(converter.convert())
    logits = np.asarray(model.predict(inputs, verbose=0))
    return StandIn(path, model, files, frames, inputs, logits, tflite_scores(path, frames))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def corrupted(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the transplant in one of the ways a wrong layout would, without changing any kernel's shape."""
    from edge_classifier_build import transplant

    if how == "kernel rows and columns swapped":
        right = transplant.keras_kernel

        def swapped(conv: Any, layer: Any) -> np.ndarray:
            kernel = right(conv, layer)
            return np.swapaxes(kernel, 0, 1) if kernel.ndim == 4 else kernel

        monkeypatch.setattr(transplant, "keras_kernel", swapped)
    elif how == "biases dropped":
        read = transplant.read_conv_weights
        monkeypatch.setattr(transplant, "read_conv_weights", lambda path: [replace(c, bias=None) for c in read(path)])
    elif how == "first kernel rotated":
        read = transplant.read_conv_weights

        def rotated(path: Path) -> list[Any]:
            first, *rest = read(path)
            return [replace(first, kernel=np.ascontiguousarray(first.kernel[:, ::-1, ::-1, :])), *rest]

        monkeypatch.setattr(transplant, "read_conv_weights", rotated)


@needs_tensorflow
@pytest.mark.build
@pytest.mark.slow
def test_stand_in_is_full_int8_with_uint8_input_and_output_like_corals(stand_in):
    """The stand-in has uint8 input and output, int8 weights and activations, and MobileNetV2's 53 weighted ops."""
    from edge_classifier.model.runner import load_interpreter, tensor_dtypes
    from edge_classifier_build.transplant import read_conv_weights

    interpreter = load_interpreter(stand_in.path, xnnpack=False)
    io = [d["dtype"] for d in (*interpreter.get_input_details(), *interpreter.get_output_details())]
    ops = [conv.op for conv in read_conv_weights(stand_in.path)]
    expected = ([np.uint8, np.uint8], set(), 53, "FULLY_CONNECTED")
    assert expected == (io, tensor_dtypes(interpreter) - {"uint8", "int8", "int32"}, len(ops), ops[-1])


@needs_tensorflow
@pytest.mark.build
@pytest.mark.slow
def test_transplant_agrees_with_the_tflite_on_the_photos(stand_in):
    """check_agreement finds the Keras rebuild and the .tflite on the same top-1 for at least 95% of 30 photos."""
    from edge_classifier_build.transplant import MIN_AGREEMENT, check_agreement

    photos = stand_in.check_photos()
    agreement = check_agreement(stand_in.path, [stand_in.frames[i] for i in photos], SPEC)
    # Precondition: the photos are classified differently, so agreeing by chance is out of the question.
    assert len(set(stand_in.scores[photos].argmax(axis=1))) >= 5
    assert (30, 32, 10, True) == (
        agreement.images, agreement.resolution, agreement.classes, agreement.share >= MIN_AGREEMENT
    )  # fmt: skip


@needs_tensorflow
@pytest.mark.build
@pytest.mark.slow
def test_rebuild_reproduces_the_original_network_and_the_tflite(stand_in):
    """The rebuild's pooled features and logits track the float network the file came from, its logits the file's."""
    import tf_keras as keras

    from edge_classifier_build.transplant import imagenet_model

    rebuild, classes = imagenet_model(stand_in.path)
    photos = stand_in.check_photos()

    def pooled(model: Any) -> np.ndarray:
        return keras.Model(model.input, model.layers[-2].output).predict(stand_in.inputs[photos], verbose=0)

    logits = rebuild.predict(stand_in.inputs[photos], verbose=0)
    original, file = stand_in.logits[photos], stand_in.scores[photos]
    spread = float(np.ptp(original))
    # Measured: features and logits correlate 0.9998 with the original's (max error 1-2% of the logits' spread),
    # logits 0.994-0.998 with the file's int8 ones (4-7%). With a kernel's rows and columns swapped, the biases
    # dropped or the first kernel rotated (see corrupted) every correlation is between -0.04 and 0.43.
    assert (10, True, True, True) == (
        classes,
        correlation(pooled(stand_in.model), pooled(rebuild)) > 0.99,
        correlation(original, logits) > 0.99 and float(np.abs(original - logits).max()) < 0.1 * spread,
        correlation(file, logits) > 0.97 and float(np.abs(file - logits).max()) < 0.2 * spread,
    )


@needs_tensorflow
@pytest.mark.build
@pytest.mark.slow
@pytest.mark.parametrize("how", ["kernel rows and columns swapped", "biases dropped", "first kernel rotated"])
def test_a_transplant_that_does_not_line_up_fails_the_check(stand_in, monkeypatch, how):
    """A kernel layout or bias mistake that keeps every shape is caught by the agreement check, not loaded silently."""
    from edge_classifier_build.transplant import verified

    corrupted(how, monkeypatch)
    with pytest.raises(InputError, match=r"agrees with the TFLite on only \d+\.\d% of \d+ decided images") as caught:
        verified(stand_in.path, [stand_in.frames[i] for i in stand_in.check_photos()], SPEC)
    assert str(caught.value).endswith("(at least 95% expected): the weights did not transplant")


@needs_tensorflow
@pytest.mark.build
@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("alpha 0.5", "layer Conv1 expects a (3, 3, 3, 16) kernel, the file has (3, 3, 3, 32)"),
        ("shuffled", "layer Conv1 expects a (3, 3, 3, 32) kernel, the file has (1, 1, 32, 16)"),
        ("MobileNetV3-Small", "53 convolutions in the file, 54 in the Keras model"),
    ],
)
def test_weights_for_another_network_are_refused_by_shape(stand_in, model, message):
    """Loading into a narrower or different network, or in the wrong order, names the first layer that does not fit."""
    import tf_keras as keras

    from edge_classifier_build.transplant import load_into, read_conv_weights

    convs = read_conv_weights(stand_in.path)
    shape = (RESOLUTION, RESOLUTION, 3)
    if model == "MobileNetV3-Small":
        target = keras.applications.MobileNetV3Small(input_shape=shape, weights=None, classes=10)
    else:
        target = keras.applications.MobileNetV2(input_shape=shape, alpha=0.5 if model == "alpha 0.5" else 1.0,
                                                weights=None, classes=10)  # fmt: skip
    if model == "shuffled":
        convs = [convs[2], convs[0], convs[1], *convs[3:]]
    with pytest.raises(InputError) as caught:
        load_into(target, convs, "stand-in.tflite")
    assert str(caught.value).startswith(f"--weights stand-in.tflite: {message}")
    assert str(caught.value).endswith("(is it a MobileNetV2 with alpha 1.0?)")


@needs_tensorflow
@pytest.mark.build
@pytest.mark.slow
@pytest.mark.parametrize("classes", [10, 3])
def test_the_files_head_is_loaded_only_into_a_head_of_its_size(stand_in, classes):
    """The build's model takes the file's logits for 10 classes; for 3 it keeps its own head and loads 52 layers."""
    from edge_classifier_build.architectures import classifier
    from edge_classifier_build.transplant import load_into, read_conv_weights

    convs = read_conv_weights(stand_in.path)
    model = classifier("mobilenetv2", RESOLUTION, 3, 1.0, classes, 0.2)
    head = [w.copy() for w in model.get_layer("logits").get_weights()]
    loaded = load_into(model, convs, "stand-in.tflite")
    kernel, bias = model.get_layer("logits").get_weights()
    expected_kernel, expected_bias = (convs[-1].kernel.T, convs[-1].bias) if classes == 10 else head
    first_norm = [w.tolist() for w in model.get_layer("bn_Conv1").get_weights()]
    epsilon = np.float32(model.get_layer("bn_Conv1").epsilon)
    ones = np.ones(32, np.float32)
    assert (53 if classes == 10 else 52, True, True) == (
        loaded, np.array_equal(expected_kernel, kernel), np.array_equal(expected_bias, bias)
    )  # fmt: skip
    # The first convolution's folded bias goes into its batch norm, which then adds it and nothing else.
    assert [ones.tolist(), convs[0].bias.tolist(), [0.0] * 32, (ones - epsilon).tolist()] == first_norm


@needs_tensorflow
@pytest.mark.build
@pytest.mark.slow
def test_transfer_build_on_the_photos_is_full_int8_with_named_labels(stand_in, tmp_path):
    """A build from the stand-in's weights checks the transplant, evaluates the photos and writes a full-int8 model."""
    import jsonschema

    from edge_classifier.model.runner import load_interpreter

    # Trained on clear photos (a folder without one gets its clearest): the build checks its first 20 training
    # images, and a near-tie there would test the stand-in's int8 rounding, not the transplant (StandIn.clear).
    train_dir, clear = tmp_path / "train", set(stand_in.clear.tolist())
    for folder in FOLDERS:
        (train_dir / folder).mkdir(parents=True)
        in_folder = [i for i, photo in enumerate(stand_in.files) if photo.parent.name == folder]
        chosen = [i for i in in_folder if i in clear] or [max(in_folder, key=stand_in.lead)]
        for index in chosen:
            shutil.copy(stand_in.files[index], train_dir / folder)
    out = subprocess.run(
        [sys.executable, "-m", "edge_classifier_build.cli", "--image-dir", str(train_dir), "--val-dir", str(PHOTOS),
         "--weights", str(stand_in.path), "--alpha", "1.0", "--resolution", "32", "--augmentation", "camera",
         "--head-epochs", "1", "--epochs", "1", "--batch-size", "16", "--train-limit", "40", "--test-limit", "20",
         "--calibration-images", "8", "--fold-check-images", "4", "--transplant-check-images", "20",
         "--eval-dir", str(PHOTOS), "--label-names", LABEL_NAMES, "--output-dir", str(tmp_path / "out"),
         "--name", "x", "--quiet"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert 0 == out.returncode, out.stderr[-3000:]
    document = json.loads((tmp_path / "out" / "x.json").read_text())
    jsonschema.validate(document, json.loads((SCHEMAS / "manifest.schema.json").read_text()))
    check = document["training"]["transplant_check"]
    photos = document["metrics"]["photos"]
    interpreter = load_interpreter(tmp_path / "out" / "x.tflite", xnnpack=False)
    io = [d["dtype"] for d in (*interpreter.get_input_details(), *interpreter.get_output_details())]
    assert (LABEL_NAMES.split(","), (20, True), [np.int8, np.int8]) == (
        document["labels"], (check["images"], check["share"] >= 0.95), io
    )  # fmt: skip
    assert (341, True, str(PHOTOS)) == (
        photos["images"], len(photos["fingerprint"]) == 64 and set(photos["fingerprint"]) <= set("0123456789abcdef"),
        photos["dir"],
    )  # fmt: skip
    assert (str(stand_in.path), 1) == (document["training"]["weights"], document["training"]["head_epochs"])


def build_error(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """Run the build in-process with ARGS; its exit code and the lines it wrote to stderr."""
    from edge_classifier_build import cli

    try:
        code = cli.main(list(args))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    return code, capsys.readouterr().err.splitlines()


@needs_tensorflow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--weights", "x.tflite", "--alpha", "0.35"],
         "error: --weights x.tflite: a TFLite file's weights fit MobileNetV2 alpha 1.0 only, not MobileNetV2 alpha 0.35"),
        (["--weights", "x.tflite", "--alpha", "1.0", "--architecture", "mobilenetv3small"],
         "error: --weights x.tflite: a TFLite file's weights fit MobileNetV2 alpha 1.0 only, not MobileNetV3-Small alpha 1.0"),
        (["--head-epochs", "2"], "error: --head-epochs trains a head on pretrained features; it needs --weights"),
        (["--image-dir", str(PHOTOS), "--label-names", "Dress,Hat,Shoes"],
         "error: --label-names gives 3 names for 10 classes (" + ", ".join(FOLDERS) + ")"),
    ],
)  # fmt: skip
def test_transfer_options_that_cannot_work_are_one_line_errors(capsys, tmp_path, args, message):
    """A TFLite file for another network, a linear probe without weights or a wrong label count: exit 1, one line."""
    assert (1, [message]) == build_error(capsys, *args, "--output-dir", str(tmp_path))


@pytest.mark.slow  # imports TensorFlow in a subprocess (~5 s)
@needs_tensorflow
@pytest.mark.build
@pytest.mark.parametrize("check_images", ["20", "0"])
def test_a_weights_file_that_is_not_tflite_is_one_line_error(tmp_path, check_images):
    """A .tflite that is no flatbuffer is named in one error line, by the transplant check or, without it, the loader."""
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(bytes(range(100)))
    out = subprocess.run(
        [sys.executable, "-m", "edge_classifier_build.cli", "--image-dir", str(PHOTOS), "--weights", str(bogus), "--alpha", "1.0",
         "--resolution", "32", "--train-limit", "10", "--test-limit", "10", "--transplant-check-images", check_images,
         "--output-dir", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    expected = f"error: --weights {bogus}: model file {bogus} is not a loadable TFLite model: "
    last = out.stderr.strip().splitlines()[-1]
    assert (1, True, False, False) == (
        out.returncode, last.startswith(expected), "Traceback" in out.stderr, (tmp_path / "out").exists()
    )  # fmt: skip


def test_val_dir_without_image_dir_is_a_usage_error(capsys, tmp_path):
    """--val-dir alone is refused by the argument parser (exit 2) before anything is loaded."""
    code, lines = build_error(capsys, "--val-dir", str(PHOTOS), "--output-dir", str(tmp_path))
    assert (2, "edge-classifier-build: error: --val-dir goes with --image-dir") == (code, lines[-1])
