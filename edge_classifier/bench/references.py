"""The bench's references: the same frames served the simple way, to show what the daemon's design buys.

- `sequential`: the daemon's own per-frame work (decode, crop, resize, quantize, invoke, scores) in one
  plain loop on one thread: no capture thread, no MQTT, no voting. The daemon must beat it, because its
  capture thread decodes the next frame while the loop classifies this one.
- `keras_predict`: the seed's way, the same network in Keras with `model.predict` per frame, run by
  `python -m edge_classifier_build.keras_reference` in its own process. That module imports TensorFlow,
  so it lives in the build package; the runtime package never imports it, and the bench runs it only
  where TensorFlow is installed (never on a Pi).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_classifier.capture.opening import frame_as_bgr, open_capture
from edge_classifier.config.settings import SourceConfig
from edge_classifier.errors import InputError
from edge_classifier.model.preprocess import Preprocessing, Preprocessor
from edge_classifier.model.runner import LiteRTRunner, OutputNames, scores_from_raw

WARMUP_FRAMES = 10
KERAS_MODULE = "edge_classifier_build.keras_reference"
# Frames the Keras child classifies after its warm-up: about 5-10 s on 2 x86 cores, plus TensorFlow's import.
KERAS_FRAMES = 100


def sequential_loop(
    model_path: Path,
    outputs: OutputNames | None,
    spec: Preprocessing,
    logits: bool,
    threads: int,
    source_config: SourceConfig,
    frames: int,
) -> dict[str, Any]:
    """Decode, preprocess, invoke and score each frame in turn on this thread; warm-up frames not counted."""
    cap = open_capture(source_config)
    runner = LiteRTRunner(model_path, threads, outputs)
    try:
        preprocess = Preprocessor(spec, runner.input_spec.shape, runner.input_spec.quant)
        stage_s = np.zeros(4)  # decode, preprocess, inference, postprocess
        done, start = 0, 0.0
        while done < WARMUP_FRAMES + frames:
            if done == WARMUP_FRAMES:
                stage_s[:], start = 0.0, time.perf_counter()
            t0 = time.perf_counter()
            ok, image = cap.read()
            if not ok:
                if done == 0 or not cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    raise InputError(f"--video {source_config.uri}: no frame could be decoded")
                continue
            bgr = frame_as_bgr(image)
            if bgr is None:
                raise InputError(f"--video {source_config.uri}: frames are not 8-bit BGR, grey or BGRA")
            t1 = time.perf_counter()
            tensor = preprocess(bgr)
            t2 = time.perf_counter()
            raw = runner.invoke(tensor)
            t3 = time.perf_counter()
            int(np.argmax(scores_from_raw(raw, runner.output_spec, logits)))
            t4 = time.perf_counter()
            stage_s += (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
            done += 1
        seconds = time.perf_counter() - start
    finally:
        runner.close()
        cap.release()
    ms = 1000 * stage_s / frames
    return {
        "frames": frames,
        "rate_per_s": round(frames / seconds, 1),
        "stage_ms_mean": {name: round(float(v), 3) for name, v in zip(("decode", "preprocess", "inference",
                                                                      "postprocess"), ms, strict=True)},
    }  # fmt: skip


def keras_skip_reason(manifest: Path | None, frames: int) -> str | None:
    """Why the Keras reference cannot run here, or None when it can."""
    if frames == 0:
        return "not run (0 Keras frames asked for)"
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
        return "TensorFlow is not installed (the build extra): nothing to compare with on this machine"
    if importlib.util.find_spec("edge_classifier_build") is None:
        return "the build package (edge_classifier_build) is not installed"
    if manifest is None:
        return "the model has no manifest (model.path): nothing says which Keras architecture it is"
    return None


def keras_predict(manifest: Path | None, video: Path, frames: int) -> dict[str, Any]:
    """The seed's way in a child process; `skipped` with the reason where it cannot run."""
    why = keras_skip_reason(manifest, frames)
    if why is not None:
        return {"skipped": why}
    assert manifest is not None
    # TensorFlow's C++ start-up lines (oneDNN, CPU features) are not this report's business.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", KERAS_MODULE, str(manifest), str(video), "--frames", str(frames)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120 + frames, env=env)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        raise InputError(f"bench Keras reference failed: {last}")
    child = json.loads(out.stdout.strip().splitlines()[-1])
    kb = {key: child.pop(key) for key in ("rss_kb", "peak_rss_kb", "anon_kb", "file_kb")}
    return {
        **child,
        "rss_mb": round(kb["rss_kb"] / 1024, 1),
        "peak_rss_mb": round(kb["peak_rss_kb"] / 1024, 1),
        "rss_anon_mb": round(kb["anon_kb"] / 1024, 1),
        "rss_file_mb": round(kb["file_kb"] / 1024, 1),
    }
