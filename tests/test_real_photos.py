"""The default model on real garment photos: the committed evaluation set, its recorded figure, the target."""

import json

from edge_classifier.model.classifier import Classifier
from edge_classifier_build.photo_eval import evaluate_folder
from helpers import DEFAULT_MANIFEST, ROOT

PHOTOS = ROOT / "tests" / "data" / "real-photos"
DOCUMENT = json.loads(DEFAULT_MANIFEST.read_text())
TARGET = 92.0  # percent top-1 of the int8 model through the daemon's own path


def test_accuracy_on_the_committed_photos_is_the_one_the_manifest_records():
    """Classifying every committed photo as `edge-classifier classify` does gives the manifest's figure."""
    with Classifier.from_manifest(DEFAULT_MANIFEST) as classifier:
        measured = evaluate_folder(classifier, PHOTOS, shown_as="tests/data/real-photos").as_dict()
    recorded = DOCUMENT["metrics"]["photos"]
    keys = ("dir", "images", "correct", "fingerprint", "accuracy", "confusion_matrix")
    assert {k: recorded[k] for k in keys} == {k: measured[k] for k in keys}


def test_accuracy_on_the_committed_photos_meets_the_target():
    """At least 92% of the 341 committed validation photos get their label."""
    photos = DOCUMENT["metrics"]["photos"]
    assert (341, True) == (photos["images"], photos["accuracy"] >= TARGET)


def test_int8_loses_at_most_half_a_point_against_float():
    """On the validation set, full-int8 quantization costs at most 0.5 points of top-1."""
    metrics = DOCUMENT["metrics"]
    assert True is (metrics["float_accuracy"] - metrics["int8_accuracy"] <= 0.5), metrics


def test_the_committed_photos_carry_their_license():
    """The evaluation photos are CC0 and say so beside them."""
    assert "CC0" in (PHOTOS / "LICENSE").read_text() + (PHOTOS / "README.md").read_text()
