"""Open set: scenes with no garment (an empty counter, a plain wall, noise) become `unknown`, not a garment."""

import cv2
import numpy as np
import pytest

from edge_classifier.model.classifier import Classifier
from edge_classifier.model.manifest import load_manifest
from helpers import DEFAULT_MANIFEST

MIN_SCORE = load_manifest(DEFAULT_MANIFEST).min_score


def no_garment_frames():
    """Frames a kiosk camera sees between customers, made here independently of the build's own set."""
    rng = np.random.default_rng(2026)
    h, w = 480, 640
    frames = {}
    for name, bgr in {"white": (245, 245, 240), "cream": (200, 225, 240), "slate": (90, 90, 80)}.items():
        light = np.linspace(1.05, 0.9, w, dtype=np.float32)[None, :, None]
        frames[f"wall-{name}"] = np.clip(
            np.full((h, w, 3), bgr, np.float32) * light + rng.normal(0, 3, (h, w, 3)), 0, 255
        )
    counter = np.full((h, w, 3), (170, 180, 185), np.float32)
    counter[300:] = (40, 70, 110)
    frames["empty-counter"] = np.clip(counter + rng.normal(0, 5, (h, w, 3)), 0, 255)
    frames["noise"] = rng.integers(0, 256, (h, w, 3))
    frames["noise-smooth"] = cv2.resize(rng.integers(0, 256, (12, 16, 3)).astype(np.uint8), (w, h))
    frames["lights-off"] = np.clip(rng.normal(8, 3, (h, w, 3)), 0, 255)
    return {name: np.ascontiguousarray(frame.astype(np.uint8)) for name, frame in frames.items()}


FRAMES = no_garment_frames()


def test_the_default_model_carries_a_calibrated_threshold():
    """The default manifest's rejection threshold was calibrated by its build (not the fallback)."""
    document = load_manifest(DEFAULT_MANIFEST).document
    assert (True, MIN_SCORE) == (document["rejection"]["met"], document["rejection"]["min_score"])


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_a_frame_without_a_garment_scores_below_the_threshold(name):
    """Each no-garment frame's best score is below the manifest's min_score, so it votes `unknown`."""
    with Classifier.from_manifest(DEFAULT_MANIFEST) as classifier:
        scores = classifier.classify(FRAMES[name]).scores
    assert True is (float(scores.max()) < MIN_SCORE), (classifier.labels[int(scores.argmax())], float(scores.max()))


@pytest.mark.slow
def test_the_daemon_publishes_unknown_for_scenes_without_garments(tmp_path, broker, subscriber, daemons):
    """The daemon on a folder of no-garment frames publishes `unknown` and nothing else as its stable label."""
    for i, (name, frame) in enumerate(sorted(FRAMES.items()) * 3):
        cv2.imwrite(str(tmp_path / f"{i:03d}-{name}.png"), frame)
    proc = daemons("--source", str(tmp_path / "*.png"), "--device-id", "empty", "--set", f"mqtt.port={broker.port}",
                   "--set", "mqtt.host=127.0.0.1", "--set", "source.file_rate=max")  # fmt: skip
    assert 0 == proc.wait(120), proc.log
    subscriber.wait_for(lambda m: m.topic == "edge-classifier/empty/status" and m.payload == "offline")
    labels = [m.payload for m in subscriber.seen if m.topic == "edge-classifier/empty/label"]
    assert ["unknown"] == sorted(set(labels))
