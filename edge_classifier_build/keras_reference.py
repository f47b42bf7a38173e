"""The seed's way of serving, for `edge-classifier bench`: the same network in Keras, `model.predict` per frame.

`python -m edge_classifier_build.keras_reference MANIFEST VIDEO --frames N` builds the architecture the
manifest describes (tf_keras MobileNetV2 or MobileNetV3-Small at the manifest's width, input size and
number of classes), decodes VIDEO with OpenCV, crops, resizes and normalizes each frame exactly as the
daemon does (edge_classifier.model.preprocess) and calls `model.predict` on one frame at a time, as the
original app served each request. It prints one JSON line: frames/s over N frames after a warm-up, and
this process's memory.

The weights are random (weights=None): the same layers, shapes and arithmetic as trained weights, so the
same speed and memory, without needing the trained Keras model on the machine. The labels it gives are
meaningless and not reported.

It imports TensorFlow, so it lives in the build package and runs in its own process: the runtime package
(edge_classifier) never imports it; the bench runs it only where TensorFlow is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_classifier.model.manifest import load_manifest
from edge_classifier.model.preprocess import normalize, to_model_pixels

WARMUP_FRAMES = 10  # the first predict() calls trace and build the graph: not counted


def _status_kb() -> dict[str, int]:
    """The kB figures of /proc/self/status (VmRSS, VmHWM, RssAnon, RssFile)."""
    status = Path("/proc/self/status").read_text(encoding="ascii")
    return {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith(("Vm", "Rss"))}


def build_model(architecture: str, input_hwc: tuple[int, int, int], alpha: float, classes: int, dropout: float) -> Any:
    """The build's classifier shape (backbone, global average pool, dropout, Dense, softmax), random weights."""
    import tf_keras as keras

    inputs = keras.Input(shape=input_hwc, name="image")
    name = architecture.lower().replace("-", "")
    if name == "mobilenetv2":
        backbone = keras.applications.MobileNetV2(
            input_tensor=inputs, alpha=alpha, include_top=False, weights=None, pooling="avg"
        )
    elif name == "mobilenetv3small":
        backbone = keras.applications.MobileNetV3Small(
            input_tensor=inputs, alpha=alpha, include_top=False, weights=None, pooling="avg",
            include_preprocessing=False,
        )  # fmt: skip
    else:
        known = "MobileNetV2, MobileNetV3-Small"
        raise SystemExit(f"error: architecture {architecture!r} has no Keras reference (known: {known})")
    features = keras.layers.Dropout(dropout, name="dropout")(backbone.output)
    logits = keras.layers.Dense(classes, name="logits")(features)
    outputs = keras.layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(inputs, outputs)


def measure(manifest_path: Path, video: Path, frames: int, warmup: int = WARMUP_FRAMES) -> dict[str, Any]:
    started = time.perf_counter()
    manifest = load_manifest(manifest_path)
    document = manifest.document
    training = document.get("training", {})
    _, height, width, channels = (int(d) for d in document["input"]["shape"])
    architecture = str(training.get("architecture", "MobileNetV2"))
    alpha = float(training.get("alpha", 1.0))

    import tensorflow as tf

    model = build_model(
        architecture, (height, width, channels), alpha, len(manifest.labels), float(training.get("dropout", 0.0))
    )
    ready_s = time.perf_counter() - started
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"error: cannot open {video}")
    spec = manifest.preprocessing
    predict_s: list[float] = []
    done = 0
    start = 0.0
    while done < warmup + frames:
        if done == warmup:
            start = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            if done == 0 or not cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                raise SystemExit(f"error: no frame could be decoded from {video}")
            continue
        x = normalize(to_model_pixels(frame, spec, (height, width)), spec)[np.newaxis]
        t0 = time.perf_counter()
        scores = model.predict(x, verbose=0)
        if done >= warmup:
            predict_s.append(time.perf_counter() - t0)
        assert scores.shape == (1, len(manifest.labels))
        done += 1
    seconds = time.perf_counter() - start
    cap.release()
    kb = _status_kb()
    ms = np.array(predict_s) * 1000
    return {
        "frames": frames,
        "rate_per_s": round(frames / seconds, 1),
        "predict_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "predict_mean_ms": round(float(ms.mean()), 2),
        "architecture": architecture,
        "alpha": alpha,
        "input": [height, width, channels],
        "classes": len(manifest.labels),
        "weights": "random (weights=None): same layers and cost as trained weights",
        "tensorflow": tf.__version__,
        "import_and_build_s": round(ready_s, 2),
        "rss_kb": kb["VmRSS"],
        "peak_rss_kb": kb["VmHWM"],
        "anon_kb": kb["RssAnon"],
        "file_kb": kb["RssFile"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path, help="the model's manifest (architecture, input size, classes)")
    parser.add_argument("video", type=Path, help="the video whose frames are classified (looped)")
    parser.add_argument("--frames", type=int, default=100, help="frames measured after the warm-up")
    parser.add_argument("--warmup", type=int, default=WARMUP_FRAMES, help="frames run first and not counted")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.warmup < 1:
        parser.error("--frames and --warmup must be at least 1")
    print(json.dumps(measure(args.manifest, args.video, args.frames, args.warmup)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
