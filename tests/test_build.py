"""The workstation build: a smoke build that must come out full int8, and one-line errors for bad input."""

import json
import re
import subprocess
import sys
from importlib.metadata import entry_points

import cv2
import jsonschema
import numpy as np
import pytest

from edge_classifier.model.runner import load_interpreter, op_counts, tensor_dtypes
from helpers import ROOT, SCHEMAS

# The console script's module, in this interpreter: what `edge-classifier-build` runs.
BUILD = [sys.executable, "-m", "edge_classifier_build.cli"]
BUILD_SCRIPTS = ("edge-classifier-build", "edge-classifier-sweep", "edge-classifier-report", "edge-classifier-eval-set",
                 "edge-classifier-sample-video")  # fmt: skip
tensorflow = pytest.importorskip("tensorflow", reason="the build extra (TensorFlow) is not installed")


def build(*args, timeout=600):
    return subprocess.run([*BUILD, "--quiet", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.build
def test_smoke_build_is_full_int8_valid_and_better_than_chance(tmp_path):
    """A short build on 6,000 images with an embedding output writes a full-int8 model whose manifest validates,
    has every field, gives the scores as output 0, and beats chance."""
    # From scratch MobileNetV2 needs a few hundred steps to leave chance (10%): 6,000 images, 4 epochs, no
    # augmentation, a high learning rate and fast batch-norm statistics reach ~70% in under a minute here.
    out = build("--train-limit", "6000", "--test-limit", "1000", "--epochs", "4", "--resolution", "32",
                "--learning-rate", "5e-3", "--no-augment", "--dropout", "0", "--bn-momentum", "0.9",
                "--name", "smoke", "--output-dir", str(tmp_path), "--embedding-output")  # fmt: skip
    assert 0 == out.returncode, out.stderr[-2000:]
    document = json.loads((tmp_path / "smoke.json").read_text())
    schema = json.loads((SCHEMAS / "manifest.schema.json").read_text())
    jsonschema.validate(document, schema)
    assert set(schema["properties"]) == set(document)
    interpreter = load_interpreter(tmp_path / "smoke.tflite", xnnpack=False)
    io = [d["dtype"] for d in (*interpreter.get_input_details(), *interpreter.get_output_details())]
    ops = op_counts(interpreter)
    assert (set(), [np.int8] * 3) == (tensor_dtypes(interpreter) - {"int8", "int32"}, io)
    assert ([], ops) == ([op for op in ops if op in ("QUANTIZE", "DEQUANTIZE", "MUL")], document["build"]["op_counts"])
    shapes = [[int(d) for d in details["shape"]] for details in interpreter.get_output_details()]
    assert ([["scores", 0], ["embedding", 1]], [1, 10]) == (
        [[o["name"], o["index"]] for o in document["outputs"]], shapes[0],
    )  # fmt: skip
    assert (1000, True) == (document["metrics"]["int8"]["images"], document["metrics"]["int8_accuracy"] > 40.0)


@pytest.mark.slow
@pytest.mark.build
def test_rebuilding_with_the_same_command_gives_the_same_model(tmp_path):
    """Two runs of one build command write byte-identical .tflite files (TensorFlow op determinism)."""
    args = ("--train-limit", "1000", "--test-limit", "200", "--epochs", "1", "--resolution", "32",
            "--calibration-images", "50", "--selftest-per-class", "1")  # fmt: skip
    outs = [build(*args, "--output-dir", str(tmp_path / run)) for run in ("a", "b")]
    manifests = [json.loads((tmp_path / run / "fashion-mobilenetv2.json").read_text()) for run in ("a", "b")]
    assert ([0, 0], [True, True]) == ([o.returncode for o in outs], [m["build"]["deterministic"] for m in manifests])
    assert manifests[0]["sha256"] == manifests[1]["sha256"]


def write_image_folder(root, classes, per_class, empty=()):
    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(0 if name in empty else per_class):
            image = np.full((40, 60, 3), 40 * index, dtype=np.uint8) + rng.integers(0, 20, (40, 60, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / f"{i}.png"), image)


@pytest.mark.slow
@pytest.mark.build
def test_image_folder_build_learns_distinct_classes(tmp_path):
    """A shop's DIR/<label>/*.png folder builds a model with those labels and a seeded split."""
    write_image_folder(tmp_path / "photos", ["coat", "dress", "shoe"], 30)
    out = build("--image-dir", str(tmp_path / "photos"), "--epochs", "3", "--resolution", "32", "--bn-momentum", "0.5",
                "--batch-size", "16", "--name", "shop", "--output-dir", str(tmp_path / "out"))  # fmt: skip
    assert 0 == out.returncode, out.stderr[-2000:]
    document = json.loads((tmp_path / "out" / "shop.json").read_text())
    assert (["coat", "dress", "shoe"], 18) == (document["labels"], document["metrics"]["int8"]["images"])


@pytest.mark.slow  # each case imports TensorFlow in a subprocess (~5 s)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-dir", "{tmp}/nowhere"], "error: Fashion-MNIST files missing from {tmp}/nowhere: "
         "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; "
         "install them with 'apt-get install dataset-fashion-mnist' or pass --data-dir"),
        (["--weights", "resnet"], "error: --weights 'resnet' is neither 'none', 'imagenet' nor an existing weights file"),
        (["--resolution", "24"], "error: --resolution 24 is below MobileNetV2's minimum of 32"),
        (["--weights", "imagenet", "--resolution", "64"], "error: --weights imagenet exists only for alpha in "
         "(0.35, 0.5, 0.75, 1.0, 1.3, 1.4) and resolution in (96, 128, 160, 192, 224), not alpha 0.35 at 64"),
        (["--image-dir", "{tmp}/photos"], "error: class folder {tmp}/photos/dress has 0 images; each class needs at least 2"),
        (["--epochs", "0"], "edge-classifier-build: error: --epochs must be at least 1"),
        (["--random-erasing", "1.5"], "error: --random-erasing 1.5 must be between 0 and 1"),
        (["--val-fraction", "1"], "edge-classifier-build: error: --val-fraction must be between 0 and 1 (exclusive), got 1.0"),
        (["--train-limit", "0"], "edge-classifier-build: error: --train-limit must be at least 1, got 0"),
        (["--fold-check-images", "-1"], "edge-classifier-build: error: --fold-check-images must be 0 (no check) or more, got -1"),
        (["--record", "{tmp}/a-file/record.json"], "edge-classifier-build: error: --record: {tmp}/a-file is not a folder"),
    ],
)  # fmt: skip
def test_bad_build_input_is_one_line_and_nonzero(tmp_path, args, message):
    """Missing data, an empty class, unknown weights or a too-small resolution: one error line, non-zero exit."""
    write_image_folder(tmp_path / "photos", ["coat", "dress"], 3, empty=("dress",))
    (tmp_path / "a-file").write_text("not a folder")
    out = build(*[a.format(tmp=tmp_path) for a in args], "--output-dir", str(tmp_path / "out"))
    last = out.stderr.strip().splitlines()[-1]
    assert (True, message.format(tmp=tmp_path), False) == (out.returncode != 0, last, "Traceback" in out.stderr)


def test_corrupt_idx_file_is_named(tmp_path):
    """A truncated Fashion-MNIST file is reported by name, not as a numpy reshape error."""
    from edge_classifier.errors import InputError
    from edge_classifier_build.data import FASHION_DIR, load_fashion_mnist

    if not FASHION_DIR.is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist")
    for name in FASHION_DIR.iterdir():
        (tmp_path / name.name).write_bytes(name.read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(InputError, match="t10k-labels-idx1-ubyte.gz is not a readable gzip file"):
        load_fashion_mnist(tmp_path)


def test_corrupt_deflate_stream_is_named(tmp_path):
    """A gzip file whose header is intact but whose compressed data is damaged is named, not a zlib traceback."""
    from edge_classifier.errors import InputError
    from edge_classifier_build.data import FASHION_DIR, load_fashion_mnist

    if not FASHION_DIR.is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist")
    for name in FASHION_DIR.iterdir():
        (tmp_path / name.name).write_bytes(name.read_bytes())
    good = (tmp_path / "train-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(good[:10] + b"\xff" * 20 + good[30:])
    with pytest.raises(InputError, match="train-labels-idx1-ubyte.gz is not a readable gzip file"):
        load_fashion_mnist(tmp_path)


def test_imagenet_weights_that_cannot_be_fetched_are_one_error(monkeypatch):
    """Without internet Keras raises a bare Exception for the ImageNet download; the build names the option instead."""
    import tf_keras as keras

    from edge_classifier.errors import InputError
    from edge_classifier_build import architectures

    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] no network")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(InputError) as caught:
        architectures.backbone("mobilenetv2", keras.Input((96, 96, 3)), 0.35, True, None)
    expected = (
        "--weights imagenet: cannot get the weights (URL fetch failure on https://storage.googleapis.com/...: "
        "None -- [Errno -3] no network); use --weights FILE"
    )
    assert expected == str(caught.value)


def test_random_erasing_replaces_one_rectangle_of_the_documented_size():
    """With probability 1 each image gets one rectangle of 2-40 % of its area; with 0 it is untouched."""
    from edge_classifier_build.train import random_erase

    tensorflow.random.set_seed(3)
    image = np.full((96, 96, 3), 7, dtype=np.uint8)
    areas = []
    for _ in range(20):
        erased = random_erase(tensorflow.constant(image), 1.0).numpy()
        rows, cols = np.nonzero((erased != 7).any(axis=2))
        areas.append((np.ptp(rows) + 1) * (np.ptp(cols) + 1) / 96**2)
    untouched = random_erase(tensorflow.constant(image), 0.0).numpy()
    assert (True, True) == (0.015 < min(areas) and max(areas) <= 0.41, np.array_equal(image, untouched))


def test_caches_trained_before_random_erasing_still_match():
    """With random erasing off, the cache description has no new key, so older Keras caches are reused."""
    from dataclasses import replace

    from edge_classifier_build.train import TrainOptions
    from edge_classifier_build.trainstage import describe

    options = TrainOptions(0.35, 96, 1, 128, 2e-3, 0.1, 0.2, "none", 1)
    keys = [set(describe(o, {})["options"]) for o in (options, replace(options, random_erasing=0.5))]
    assert ({"random_erasing"}, False) == (keys[1] - keys[0], "random_erasing" in keys[0])


@pytest.mark.parametrize("script", BUILD_SCRIPTS)
def test_every_build_command_is_an_installed_console_script(script, capsys):
    """The build's five commands are console scripts of the package; each answers --help under its own name."""
    (entry,) = [entry for entry in entry_points(group="console_scripts") if entry.name == script]
    with pytest.raises(SystemExit) as exited:
        entry.load()(["--help"])
    assert (0, f"usage: {script} ") == (exited.value.code, capsys.readouterr().out[: len(script) + 8])


def test_the_runtime_never_imports_the_build():
    """The daemon's package stays free of the build and of TensorFlow: no module of it names either."""
    sources = sorted((ROOT / "edge_classifier").rglob("*.py"))
    forbidden = re.compile(r"^\s*(from|import)\s+(edge_classifier_build|tensorflow|tf_keras)\b")
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in sources
        for line in path.read_text(encoding="utf-8").splitlines()
        if forbidden.match(line)
    ]
    assert (True, []) == (len(sources) > 10, found)
