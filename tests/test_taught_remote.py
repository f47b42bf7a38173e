"""Classes taught on a running daemon: over HTTP (uploaded photos, /api/taught) and MQTT commands (teach, forget,
with acks), with the real default model and committed real photos; predictions use them at once."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import pytest
from photos import PHOTOS
from test_catalogue import FAST
from test_catalogue_remote import CORRUPT, form_body, serving
from test_commands import Collector, daemon_args, publish, wait_ack
from test_http_api import call, error_of
from test_http_unit import TOKEN, client_for

from edge_classifier.learning.store import load_taught, taught_path
from edge_classifier.model.manifest import load_manifest
from helpers import DEFAULT_MANIFEST, SCHEMAS

SCHEMA = json.loads((SCHEMAS / "http-taught.schema.json").read_text())
SHA = load_manifest(DEFAULT_MANIFEST).sha256
SHOES = sorted((PHOTOS / "shoes").glob("*.jpg"))
HATS = sorted((PHOTOS / "hat").glob("*.jpg"))


def stored(state: Path) -> dict[str, int]:
    """The taught classes in the daemon's file: label -> photos."""
    taught = load_taught(taught_path(state, SHA), SHA, 1280)
    return {label: entry.photos for label, entry in taught.classes.items()}


def teach(port: int, fields: dict[str, str], photos: list[tuple[str, bytes]], headers: dict[str, str] | None = None):
    body, content_type = form_body(fields, photos)
    return call(port, "POST", "/api/taught", body, {"Content-Type": content_type, **(headers or {})})


def label_of(port: int, photo: Path) -> str:
    answer = call(port, "POST", "/api/predict", photo.read_bytes(), {"Content-Type": "image/jpeg"})
    assert 200 == answer.status, answer.body
    return str(answer.json()["label"])


def test_the_taught_routes_need_the_token_like_predict():
    """With http.auth: token, listing, teaching and forgetting without the token are each a 401."""
    client = client_for(TOKEN)
    body, content_type = form_body({"label": "Sneakers"}, [("a.jpg", SHOES[0].read_bytes())])
    answers = [
        client.get("/api/taught"),
        client.post("/api/taught", data=body, content_type=content_type),
        client.delete("/api/taught/Sneakers"),
    ]
    assert [401, 401, 401] == [answer.status_code for answer in answers]


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory):
    """A daemon with the HTTP interface on and nothing taught yet."""
    root = tmp_path_factory.mktemp("kiosk")
    with serving(root, root / "state", "kiosk") as port:
        yield port, root / "state"


@pytest.mark.slow
def test_a_class_taught_over_http_answers_predictions_at_once_and_can_be_forgotten(kiosk):
    """Sneakers taught from 5 shoe photos (and a corrupt one, skipped): other shoes are Sneakers until it is forgotten."""
    port, state = kiosk
    photos = [(p.name, p.read_bytes()) for p in SHOES[:5]] + [("cut.jpg", CORRUPT)]
    taught = teach(port, {"label": "Sneakers"}, photos)
    assert 201 == taught.status, taught.body
    labels_taught = [label_of(port, photo) for photo in SHOES[5:8]]
    listed = call(port, "GET", "/api/taught")
    in_file = stored(state)
    forgot = call(port, "DELETE", "/api/taught/sneakers")
    again = call(port, "DELETE", "/api/taught/sneakers")
    labels_after = [label_of(port, photo) for photo in SHOES[5:8]]
    for answer in (taught, listed, forgot):
        jsonschema.validate(answer.json(), SCHEMA)
    classes = [{"label": "Sneakers", "photos": 5, "refines": False}]
    assert ("taught", "Sneakers", 5, classes, ["cut.jpg"]) == (
        taught.json()["action"], taught.json()["label"], taught.json()["photos"], taught.json()["classes"],
        [p["name"] for p in taught.json()["photos_skipped"]],
    )  # fmt: skip
    assert (["Sneakers"] * 3, {"Sneakers": 5}) == (labels_taught, in_file)
    assert (200, "listed", None, classes) == (listed.status, listed.json()["action"], listed.json()["label"],
                                              listed.json()["classes"])  # fmt: skip
    assert (200, "forgotten", "Sneakers", 5, []) == (
        forgot.status, forgot.json()["action"], forgot.json()["label"], forgot.json()["photos"],
        forgot.json()["classes"],
    )  # fmt: skip
    assert (404, "'sneakers' is not a taught class (taught: none)") == error_of(again)
    assert (["Shoes"] * 3, {}) == (labels_after, stored(state))


@pytest.mark.slow
def test_teaching_a_trained_class_in_any_case_refines_it(kiosk):
    """`hat` taught from hat photos refines the trained class Hat: the answer and the file use its spelling."""
    port, state = kiosk
    refined = teach(port, {"label": "hat"}, [(p.name, p.read_bytes()) for p in HATS[:2]])
    document = refined.json()
    forgot = call(port, "DELETE", "/api/taught/HAT")
    assert (201, "refined", "Hat", [{"label": "Hat", "photos": 2, "refines": True}]) == (
        refined.status, document["action"], document["label"], document["classes"])  # fmt: skip
    assert (200, {}) == (forgot.status, stored(state))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fields", "photos", "expected"),
    [
        ({"label": "Sneakers"}, [], (400, "no photo: send the class's photos as file fields 'photo'")),
        ({}, [("a.jpg", SHOES[0].read_bytes())], (400, "label: the label is empty")),
        ({"label": "  "}, [("a.jpg", SHOES[0].read_bytes())], (400, "label: the label is empty")),
        ({"label": "unknown"}, [("a.jpg", SHOES[0].read_bytes())],
         (400, "label: the label 'unknown' is what the daemon publishes for no garment: pick another")),
        ({"label": "S" * 65}, [("a.jpg", SHOES[0].read_bytes())],
         (400, "label: the label 'SSSSSSSSSSSSSSSSSSSS'... is longer than 64 characters")),
        ({"label": "Sneakers"}, [("cut.jpg", CORRUPT)],
         (400, "no usable photo: cut.jpg: the JPEG is truncated: no end-of-image marker after its image data")),
        ({"label": "Sneakers", "colour": "red"}, [("a.jpg", SHOES[0].read_bytes())],
         (400, "unknown field 'colour' (expected label and the files 'photo')")),
        ({"label": "Sneakers"}, [(f"{n}.jpg", SHOES[0].read_bytes()) for n in range(9)],
         (400, "9 photos: at most 8 at a time")),
    ],
)  # fmt: skip
def test_a_bad_teach_is_a_4xx_naming_the_problem_and_changes_nothing(kiosk, fields, photos, expected):
    """No photo, no or a bad label, a corrupt image, an unknown field, too many photos: 4xx, nothing stored."""
    port, state = kiosk
    assert (expected, {}) == (error_of(teach(port, fields, photos)), stored(state))


@pytest.mark.slow
def test_a_teach_from_another_sites_page_is_refused(kiosk):
    """A browser page elsewhere cannot teach or forget (its Origin is checked)."""
    port, state = kiosk
    evil = {"Origin": "http://evil.example"}
    crossed = teach(port, {"label": "Sneakers"}, [("a.jpg", SHOES[0].read_bytes())], evil)
    forgot = call(port, "DELETE", "/api/taught/Hat", None, evil)
    expected = (403, "a change from another site's page is refused (Origin 'http://evil.example')")
    assert (expected, expected, {}) == (error_of(crossed), error_of(forgot), stored(state))


def b64(photo: Path) -> str:
    return base64.b64encode(photo.read_bytes()).decode()


@pytest.mark.slow
def test_teach_and_forget_over_mqtt_are_acked_and_change_the_stored_classes(broker, daemons, tmp_path):
    """teach is acked done and the stored file holds the class; bad commands get error acks; forget removes it."""
    state = tmp_path / "state"
    collector = Collector(broker.port, "edge-classifier/mqteach/#")
    base = "edge-classifier/mqteach/cmd"
    try:
        daemon = daemons(*daemon_args(broker.port, "mqteach", "--set", f"state_dir={state}", *FAST))
        collector.wait_for(lambda m: m.topic.endswith("/result"))
        payload = {"id": "t1", "label": "Sneakers", "photos": [b64(p) for p in SHOES[:3]]}
        publish(broker.port, f"{base}/teach", json.dumps(payload))
        taught = wait_ack(collector, "teach", "t1")
        in_file = stored(state)
        bad = [
            ("b1", "teach", {"label": "Sneakers"}),
            ("b2", "teach", {"label": "unknown", "photos": [b64(SHOES[0])]}),
            ("b3", "teach", {"label": "Sneakers", "photos": ["not base64!"]}),
            ("b4", "forget", {"label": "Scarf"}),
        ]
        for request_id, name, body in bad:
            publish(broker.port, f"{base}/{name}", json.dumps({"id": request_id, **body}))
        errors = [wait_ack(collector, name, request_id) for request_id, name, _ in bad]
        publish(broker.port, f"{base}/forget", json.dumps({"id": "f1", "label": "SNEAKERS"}))
        forgot = wait_ack(collector, "forget", "f1")
        assert 0 == daemon.stop()
    finally:
        collector.close()
    assert ("done", "taught", "Sneakers", 3, [], {"Sneakers": 3}) == (
        taught["status"], taught["data"]["action"], taught["data"]["label"], taught["data"]["photos"],
        taught["data"]["photos_skipped"], in_file,
    )  # fmt: skip
    assert [
        ("invalid", "payload: must contain ['photos'] properties"),
        ("invalid", "the label 'unknown' is what the daemon publishes for no garment: pick another"),
        ("invalid", "no usable photo: photo 1: not valid base64"),
        ("failed", "the taught classes were not changed: 'Scarf' is not a taught class (taught: 'Sneakers')"),
    ] == [(ack["status"], ack["error"]) for ack in errors]
    assert ("done", "forgotten", "Sneakers", [], {}) == (
        forgot["status"],
        forgot["data"]["action"],
        forgot["data"]["label"],
        forgot["data"]["classes"],
        stored(state),
    )
