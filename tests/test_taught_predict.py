"""Classes taught on the device in the answers to one photo: `edge-classifier classify` and POST /api/predict
give what a camera frame of it would give, with the real default model and committed real photos."""

from __future__ import annotations

import http.client
import json

import jsonschema
import pytest
from photos import PHOTOS

from helpers import SCHEMAS, free_port, run_cli

SHOES = sorted((PHOTOS / "shoes").glob("*.jpg"))
HATS = sorted((PHOTOS / "hat").glob("*.jpg"))


def classify_labels(state: str, photos: list) -> list[str]:
    out = run_cli("classify", "--json", *map(str, photos), "--set", f"state_dir={state}")
    assert 0 == out.returncode, out.stderr
    return [json.loads(line)["label"] for line in out.stdout.splitlines()]


def test_classify_gives_the_taught_class_and_leaves_other_photos_alone(tmp_path):
    """Taught Sneakers from 5 shoe photos, `classify` says Sneakers for other shoes and Hat for hats; untaught, Shoes."""
    state = tmp_path / "state"
    assert 0 == run_cli("teach", "Sneakers", *map(str, SHOES[:5]), "--set", f"state_dir={state}").returncode
    photos = SHOES[5:8] + HATS[:2]
    expected = ["Sneakers"] * 3 + ["Hat"] * 2
    assert expected == classify_labels(str(state), photos)
    assert ["Shoes"] * 3 + ["Hat"] * 2 == classify_labels(str(tmp_path / "nothing-taught"), photos)


def test_classify_with_a_corrupt_taught_file_says_so_once_and_uses_the_trained_classes(tmp_path):
    """A taught file that is not JSON: one ERROR line naming it, and the trained head's labels."""
    state = tmp_path / "state"
    assert 0 == run_cli("teach", "Sneakers", *map(str, SHOES[:5]), "--set", f"state_dir={state}").returncode
    (path,) = (state / "taught").glob("*.json")
    path.write_text("{not json")
    out = run_cli("classify", *map(str, SHOES[5:7]), "--set", f"state_dir={state}")
    errors = [line for line in out.stderr.splitlines() if "ERROR" in line]
    assert (0, 1, ["Shoes", "Shoes"]) == (
        out.returncode,
        len(errors),
        [line.split()[1] for line in out.stdout.splitlines()],
    )
    assert f"taught classes {path}: not valid JSON (line 1); classifying with the trained classes only" in errors[0]


def predict(port: int, photo) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/api/predict?top_k=3", photo.read_bytes(), {"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert 200 == response.status, body
    return json.loads(body)


@pytest.mark.slow
def test_predict_over_http_gives_the_taught_class(tmp_path, broker, daemons):
    """A daemon started after `teach` answers POST /api/predict of another shoe with the taught label, schema-valid."""
    state = tmp_path / "state"
    assert 0 == run_cli("teach", "Sneakers", *map(str, SHOES[:5]), "--set", f"state_dir={state}").returncode
    port = free_port()
    proc = daemons("--source", str(HATS[0].parent), "--device-id", "taught-http", "--preview",
                   "--set", f"mqtt.port={broker.port}", "--set", "mqtt.host=127.0.0.1", "--set", f"http.port={port}",
                   "--set", f"state_dir={state}", "--set", "source.loop=true")  # fmt: skip
    proc.wait_for_line(lambda text: "HTTP interface on" in text, 60)
    shoe, hat = predict(port, SHOES[6]), predict(port, HATS[1])  # the port is bound before that line
    jsonschema.validate(shoe, json.loads((SCHEMAS / "http-predict.schema.json").read_text()))
    assert ("Sneakers", "Sneakers", "Hat") == (shoe["label"], shoe["top_k"][0]["label"], hat["label"])
    assert "Shoes" in [entry["label"] for entry in shoe["top_k"]]
