"""On-device learning: classes taught from a few photos (edge_classifier.learning), with the real default model and
the committed real photos; the `teach`, `forget` and `list-taught` commands; the stored file."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from photos import PHOTOS

from edge_classifier.capture.frames import Frame
from edge_classifier.errors import InputError
from edge_classifier.learning.combine import DEFAULT_RULE, combine
from edge_classifier.learning.daemon import TaughtComponent
from edge_classifier.learning.store import load_taught, save_taught, taught_path
from edge_classifier.learning.taught import TaughtClasses, TaughtMatch
from edge_classifier.model.classification import Classification, LabelScore
from edge_classifier.model.classifier import Classifier, read_image_bgr
from edge_classifier.model.manifest import load_manifest
from edge_classifier.service.frame_result import FrameResult
from edge_classifier.service.loop import classify_frame
from edge_classifier_build.kshot import measure_head
from edge_classifier_build.kshot_features import default_model_features, photo_set
from helpers import DEFAULT_MANIFEST, ROOT, SCHEMAS, run_cli

SHA = load_manifest(DEFAULT_MANIFEST).sha256
SHOES = sorted((PHOTOS / "shoes").glob("*.jpg"))
HATS = sorted((PHOTOS / "hat").glob("*.jpg"))


@pytest.fixture(scope="module")
def classifier():
    with Classifier.from_manifest(DEFAULT_MANIFEST) as loaded:
        yield loaded


def classified(classifier: Classifier, photos: list[Path]) -> list[Classification]:
    return [classifier.classify(read_image_bgr(photo)) for photo in photos]


def without(classifier: Classifier, result: Classification, label: str, k: int = 3) -> tuple[LabelScore, ...]:
    """The top-k of a head that never learnt LABEL: its score dropped, the rest renormalised (as the measurement)."""
    scores = result.scores.copy()
    scores[classifier.labels.index(label)] = 0.0
    scores /= scores.sum()
    return tuple(LabelScore(classifier.labels[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")[:k])


def final_labels(classifier: Classifier, results: list[Classification], taught: TaughtClasses) -> list[str]:
    return [combine(r.top_k(classifier.labels, 3), taught.match(r.embedding), 3)[0].label for r in results]


def test_five_photos_teach_a_class_that_a_head_without_it_then_gives(classifier):
    """Taught from 5 shoe photos, a class the head does not know takes every other shoe photo."""
    results = classified(classifier, SHOES)
    taught = TaughtClasses(SHA, 1280).teach("Sneakers", [r.embedding for r in results[:5]])
    labels = [combine(without(classifier, r, "Shoes"), taught.match(r.embedding), 3)[0].label for r in results[5:]]
    assert ["Sneakers"] * len(results[5:]) == labels


def test_a_taught_class_leaves_photos_of_other_classes_alone(classifier):
    """Shoes taught as a new class: the committed hat photos keep the trained head's label."""
    shoes, hats = classified(classifier, SHOES[:5]), classified(classifier, HATS)
    taught = TaughtClasses(SHA, 1280).teach("Sneakers", [r.embedding for r in shoes])
    before = [r.top_k(classifier.labels, 1)[0].label for r in hats]
    assert before == final_labels(classifier, hats, taught)


def test_taught_with_the_cli_then_forgotten(classifier, tmp_path):
    """`teach` stores the class, other photos of it come out as the taught label; `forget` restores the trained one."""
    state = tmp_path / "state"
    taught_run = run_cli("teach", "Sneakers", *map(str, SHOES[:5]), "--set", f"state_dir={state}")
    assert (0, "") == (taught_run.returncode, taught_run.stderr.replace(_selftest_line(taught_run.stderr), ""))
    assert taught_run.stdout.startswith("taught new class 'Sneakers' from 5 photos (5 in all)")
    results = classified(classifier, SHOES[5:])
    taught = load_taught(taught_path(state, SHA), SHA, 1280)
    assert ["Sneakers"] * len(results) == final_labels(classifier, results, taught)
    listed = run_cli("list-taught", "--json", "--set", f"state_dir={state}")
    assert [{"label": "Sneakers", "photos": 5, "refines": False}] == json.loads(listed.stdout)["classes"]

    forgot = run_cli("forget", "sneakers", "--set", f"state_dir={state}")
    assert (0, "forgot 'Sneakers' (0 taught classes left for clothing-mobilenetv2 1.0.0)\n") == (
        forgot.returncode, forgot.stdout)  # fmt: skip
    restored = load_taught(taught_path(state, SHA), SHA, 1280)
    trained = [r.top_k(classifier.labels, 1)[0].label for r in results]
    assert trained == final_labels(classifier, results, restored)
    listed_after = run_cli("list-taught", "--set", f"state_dir={state}")
    assert "no taught classes for clothing-mobilenetv2 1.0.0\n" == listed_after.stdout


def _selftest_line(stderr: str) -> str:
    """The model's INFO line about its self-test (the only thing a successful command logs)."""
    return "".join(line for line in stderr.splitlines(keepends=True) if "self-test passed" in line)


def test_refining_a_trained_class_adds_no_class(tmp_path):
    """A trained class's name in any case refines it: the taught entry takes the trained spelling."""
    state = tmp_path / "state"
    refined = run_cli("teach", "hat", str(HATS[0]), str(HATS[1]), "--set", f"state_dir={state}")
    assert (0, "refined trained class 'Hat' from 2 photos (2 in all)") == (
        refined.returncode, refined.stdout.split(" for ")[0])  # fmt: skip
    listed = run_cli("list-taught", "--json", "--set", f"state_dir={state}")
    assert [{"label": "Hat", "photos": 2, "refines": True}] == json.loads(listed.stdout)["classes"]


def test_refining_keeps_one_entry_with_the_larger_score():
    """A refinement's match raises the trained label's score; it never makes a second entry."""
    trained = (LabelScore("Hat", 0.5), LabelScore("Shoes", 0.3))
    final = combine(trained, TaughtMatch("Hat", 0.9), 3)
    assert (("Hat", "Shoes"), 0.3) == (tuple(e.label for e in final), final[1].score)
    assert DEFAULT_RULE.confidence(0.9) == pytest.approx(final[0].score)


def test_no_match_or_a_weak_one_keeps_the_trained_top_k():
    """Without taught classes the head's top-k is the answer; a far match is ranked by its low confidence."""
    trained = (LabelScore("Pants", 0.9), LabelScore("Shorts", 0.05), LabelScore("Skirt", 0.03))
    assert trained[:2] == combine(trained, None, 2)
    assert trained[:2] == combine(trained, TaughtMatch("Scarf", 0.1), 2)
    assert None is TaughtClasses(SHA, 1280).match(np.ones(1280, dtype=np.float32))


def test_the_stored_file_survives_a_reload_and_is_refused_for_another_model(tmp_path):
    """Saved and loaded again, the classes match the same way; the file under another model's sha is refused."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 1280)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    taught = TaughtClasses(SHA, 1280).teach("Scarf", vectors[:2]).teach("Belt", vectors[2:])
    path = taught_path(tmp_path, SHA)
    save_taught(path, taught)
    loaded = load_taught(path, SHA, 1280)
    counts = {label: entry.count for label, entry in loaded.classes.items()}
    assert (("Belt", "Scarf"), {"Belt": 1, "Scarf": 2}) == (loaded.labels, counts)
    assert taught.match(vectors[0]) == pytest.approx(loaded.match(vectors[0]))
    assert [path.name] == [p.name for p in path.parent.iterdir()]  # no temporary file left beside it
    other = "0" * 64
    taught_path(tmp_path, other).write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="taught for model sha256 bc3765a0d3bc..., not this model"):
        load_taught(taught_path(tmp_path, other), other, 1280)
    assert () == load_taught(taught_path(tmp_path, "f" * 64), "f" * 64, 1280).labels


@pytest.mark.slow
def test_bad_input_is_one_line_and_changes_nothing(tmp_path):
    """An empty label, a missing photo, an empty folder, a corrupt or truncated image, an unknown class: one line each."""
    state = tmp_path / "state"
    stored = taught_path(state, SHA)
    assert 0 == run_cli("teach", "Scarf", str(SHOES[0]), "--set", f"state_dir={state}").returncode
    before = stored.read_bytes()
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(SHOES[1].read_bytes()[:200])
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(SHOES[1].read_bytes()[:3000])
    (tmp_path / "empty").mkdir()
    missing, empty = tmp_path / "missing.jpg", tmp_path / "empty"
    cases = [
        (("teach", " ", str(SHOES[1])), "error: the label is empty"),
        (("teach", "Scarf", str(missing)), f"error: photo {missing} does not exist"),
        (("teach", "Scarf", str(empty)), f"error: no usable photo: folder {empty} holds no image file"),
        (("teach", "Scarf", str(SHOES[1]), str(corrupt)), f"error: image {corrupt} is not a readable image"),
        (("teach", "Scarf", str(truncated)), f"error: image {truncated} is corrupt (Premature end of JPEG file)"),
        (("forget", "Belt"), "error: 'Belt' is not a taught class (taught: 'Scarf')"),
    ]
    for args, message in cases:
        result = run_cli(*args, "--set", f"state_dir={state}")
        errors = [line for line in result.stderr.splitlines() if "self-test passed" not in line]
        assert (1, [message]) == (result.returncode, errors)
    assert before == stored.read_bytes()


def frame_result(classifier: Classifier, photo: Path) -> FrameResult:
    """A photo through the main loop's own per-frame function, as a camera frame."""
    return classify_frame(classifier, Frame(read_image_bgr(photo), 0, time.monotonic(), 0.0), 3)


def test_the_daemon_component_follows_the_file(classifier, tmp_path, caplog):
    """The loop's component applies what the file holds, re-reads it after a change, and skips a corrupt one."""
    component = TaughtComponent(tmp_path)
    path = taught_path(tmp_path, SHA)
    embeddings = [r.embedding for r in classified(classifier, SHOES[:5])]
    save_taught(path, TaughtClasses(SHA, 1280).teach("Sneakers", embeddings))
    component.refresh(SHA, classifier.embedding_spec)
    result = frame_result(classifier, SHOES[6])
    assert ("Shoes", "Sneakers") == (result.best.label, component.apply(result, 3).best.label)

    save_taught(path, TaughtClasses(SHA, 1280))  # what `forget` leaves
    os.utime(path, ns=(1, 1))  # a change the stat sees even within the file system's time resolution
    component.refresh(SHA, classifier.embedding_spec)
    assert "Shoes" == component.apply(result, 3).best.label

    path.write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="edge_classifier.learning.daemon"):
        component.refresh(SHA, classifier.embedding_spec)
    assert ["Shoes", f"taught classes {path}: not valid JSON (line 1); classifying with the trained classes only"] == [
        component.apply(result, 3).best.label, caplog.records[-1].getMessage()]  # fmt: skip


@pytest.mark.slow
def test_the_daemon_publishes_the_taught_label(tmp_path, broker, subscriber, daemons):
    """Taught with `teach`, then a folder of other shoe photos as the camera: the stable label is the taught one."""
    state = tmp_path / "state"
    assert 0 == run_cli("teach", "Sneakers", *map(str, SHOES[:5]), "--set", f"state_dir={state}").returncode
    folder = tmp_path / "camera"
    folder.mkdir()
    for photo in SHOES[5:15]:
        shutil.copy(photo, folder / photo.name)
    proc = daemons("--source", str(folder), "--device-id", "teach", "--set", f"mqtt.port={broker.port}",
                   "--set", "mqtt.host=127.0.0.1", "--set", f"state_dir={state}", "--set", "source.file_rate=max",
                   "--set", "result.vote_window=3")  # fmt: skip
    assert 0 == proc.wait(60), proc.log
    subscriber.wait_for(lambda m: m.topic == "edge-classifier/teach/status" and m.payload == "offline")
    results = [m.json() for m in subscriber.seen if m.topic == "edge-classifier/teach/result"]
    schema = json.loads((SCHEMAS / "result.schema.json").read_text())
    for payload in results:
        jsonschema.validate(payload, schema)
    assert ("Sneakers", "Sneakers") == (results[-1]["label"], results[-1]["top_k"][0]["label"])
    assert "taught classes for model bc3765a0d3bc...: Sneakers (5 photos)" in proc.log


def test_the_device_rule_is_the_one_the_measurement_chose():
    """`DEFAULT_RULE` is the threshold and temperature that models/report/kshot.json records for the device."""
    recorded = json.loads((ROOT / "models" / "report" / "kshot.json").read_text())
    rule = recorded["default_model"]["head_plus_taught"]["rule_device"]
    assert (rule["threshold"], rule["temperature"]) == (DEFAULT_RULE.threshold, DEFAULT_RULE.temperature)


@pytest.mark.slow
def test_the_k_shot_figures_of_the_default_model_are_the_recorded_ones():
    """The measurement's trained-head-plus-taught-class figures, recomputed on the committed photos, are the report's."""
    recorded = json.loads((ROOT / "models" / "report" / "kshot.json").read_text())
    photos = photo_set(PHOTOS)
    scores, embeddings, labels = default_model_features(DEFAULT_MANIFEST, photos.paths)
    measured = measure_head(scores, embeddings, photos.classes, labels, recorded["seeds"])
    assert recorded["default_model"]["head_plus_taught"] == json.loads(json.dumps(measured))
