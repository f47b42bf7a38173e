"""Catalogue items added to and removed from a running daemon: over HTTP (uploaded photos) and MQTT commands (acks)."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import pytest
from test_catalogue import FAST, camera_view, cli, index_files, listed, make_catalogue, photos_of
from test_commands import Collector, daemon_args, publish, wait_ack
from test_http_api import call, error_of, frames_processed, png_header_only, start_daemon, stop, wait_until
from test_http_unit import TOKEN, client_for
from test_http_unit import error_of as unit_error_of

from helpers import SCHEMAS, Broker, free_port

ITEM_SCHEMA = json.loads((SCHEMAS / "http-catalogue-item.schema.json").read_text())
ITEMS_SCHEMA = json.loads((SCHEMAS / "http-catalogue-items.schema.json").read_text())
NEW_PHOTOS = photos_of("outwear")[:2]  # no item of the built catalogue is a coat
CORRUPT = NEW_PHOTOS[0].read_bytes()[:4000]  # a JPEG cut short: its header is fine, its data is not


def jpeg(image: Any) -> bytes:
    return bytes(cv2.imencode(".jpg", image)[1].tobytes())


def upload(port: int, fields: dict[str, str], photos: list[tuple[str, bytes]], headers: dict[str, str] | None = None):
    """POST /api/catalogue/items as multipart/form-data: FIELDS, then each of PHOTOS as a file field `photo`."""
    body, content_type = form_body(fields, photos)
    return call(port, "POST", "/api/catalogue/items", body, {"Content-Type": content_type, **(headers or {})})


def form_body(fields: dict[str, str], photos: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body: FIELDS, then each of PHOTOS as a file field `photo`; with its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = [f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}'.encode() for name, value in fields.items()]
    parts += [f'Content-Disposition: form-data; name="photo"; filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n'
              .encode() + data for name, data in photos]  # fmt: skip
    body = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_the_catalogue_routes_need_the_token_like_predict():
    """With http.auth: token, listing, adding and removing items without the token are each a 401."""
    client = client_for(TOKEN)
    body, content_type = form_body({"id": "x", "name": "X"}, [("a.jpg", NEW_PHOTOS[0].read_bytes())])
    answers = [
        client.get("/api/catalogue/items"),
        client.post("/api/catalogue/items", data=body, content_type=content_type),
        client.delete("/api/catalogue/items/x"),
    ]
    listing = client.get("/api/catalogue/items", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    jsonschema.validate(listing, ITEMS_SCHEMA)
    assert [401, 401, 401] == [answer.status_code for answer in answers]
    assert (False, 0, []) == (listing["enabled"], listing["count"], listing["items"])


def test_an_upload_over_the_body_or_pixel_limit_is_refused_before_decoding():
    """A body over http.max_body_bytes is a 413; a photo over http.max_image_pixels is refused from its header."""
    small = client_for(max_body_bytes=2048)
    body, content_type = form_body({"id": "x", "name": "X"}, [("a.jpg", NEW_PHOTOS[0].read_bytes())])
    too_long = small.post("/api/catalogue/items", data=body, content_type=content_type)
    huge, content_type = form_body({"id": "x", "name": "X"}, [("huge.png", png_header_only(20_000, 20_000))])
    too_many_pixels = client_for().post("/api/catalogue/items", data=huge, content_type=content_type)
    assert (413, f"the request body is {len(body)} bytes, more than http.max_body_bytes (2048)") == unit_error_of(
        too_long
    )
    assert (413, "no usable photo: huge.png: the image is 20000x20000 (400.0 megapixels), more than "
                 "http.max_image_pixels (16.0 megapixels)") == unit_error_of(too_many_pixels)  # fmt: skip


@contextlib.contextmanager
def serving(root: Path, state: Path, device: str) -> Iterator[int]:
    """A daemon on the looped sample video with its own broker, the HTTP interface on and STATE as its state
    directory, once it has classified a frame; its HTTP port. It must leave no traceback in its log."""
    broker = Broker(root).start()
    port = free_port()
    daemon = start_daemon(broker.port, port, "--preview", "--set", f"state_dir={state}", *FAST, device=device)
    try:
        daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
        wait_until(lambda: frames_processed(port) > 0, what="the first classified frame")
        yield port
    finally:
        stop(daemon)
        broker.stop()
    assert "Traceback" not in daemon.log, daemon.log


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A daemon with the HTTP interface on, serving a catalogue of 5 items built through the CLI."""
    root = tmp_path_factory.mktemp("shop")
    state = root / "state"
    assert 0 == cli(state, "build", str(make_catalogue(root / "items", per_class=1))).returncode
    with serving(root, state, "shop") as port:
        yield port, state


@pytest.mark.slow
def test_an_item_uploaded_over_http_is_found_first_by_another_view_and_can_be_removed(shop):
    """A coat uploaded with two photos (and a corrupt one, skipped) is stored, listed, found first, then removed."""
    port, state = shop
    photos = [(p.name, p.read_bytes()) for p in NEW_PHOTOS] + [("cut.jpg", CORRUPT)]
    fields = {"id": "coat-1", "name": "Wool coat", "price": "129.5", "class": "outwear"}
    added = upload(port, fields, photos)
    assert 201 == added.status, added.body
    document = added.json()
    jsonschema.validate(document, ITEM_SCHEMA)
    view = jpeg(camera_view(NEW_PHOTOS[0]))
    found = call(port, "POST", "/api/search?top_n=3", view, {"Content-Type": "image/jpeg"}).json()
    items = call(port, "GET", "/api/catalogue/items").json()
    jsonschema.validate(items, ITEMS_SCHEMA)
    removed = call(port, "DELETE", "/api/catalogue/items/coat-1")
    jsonschema.validate(removed.json(), ITEM_SCHEMA)
    again = call(port, "DELETE", "/api/catalogue/items/coat-1")
    after = call(port, "POST", "/api/search?top_n=3", view, {"Content-Type": "image/jpeg"}).json()
    expected_item = {"id": "coat-1", "name": "Wool coat", "price": 129.5, "class": "outwear"}
    assert ("added", expected_item, 2, [p.name for p in NEW_PHOTOS], 6) == (
        document["action"], document["item"], document["photos"], [p["name"] for p in document["photos_used"]],
        document["items"],
    )  # fmt: skip
    assert ["cut.jpg"] == [p["name"] for p in document["photos_skipped"]]
    assert "JPEG" in document["photos_skipped"][0]["reason"]
    assert ("coat-1", 6, {"photos": 2, "thumbnail": "/api/catalogue/thumbnail/coat-1"}) == (
        found["items"][0]["id"], items["count"],
        {k: v for k, v in items["items"][-1].items() if k in ("photos", "thumbnail")},
    )  # fmt: skip
    assert (200, "removed", 5) == (removed.status, removed.json()["action"], removed.json()["items"])
    assert (404, "no item with id 'coat-1' in the catalogue (5 items)") == error_of(again)
    assert "coat-1" not in [item["id"] for item in after["items"]]
    assert "coat-1" not in listed(state)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fields", "photos", "expected"),
    [
        ({"id": "x", "name": "X"}, [], (400, "no photo: send the item's photos as file fields 'photo'")),
        ({"id": "x", "name": "X"}, [("cut.jpg", CORRUPT)],
         (400, "no usable photo: cut.jpg: the JPEG is truncated: no end-of-image marker after its image data")),
        ({"id": "x", "name": "X"}, [("notes.txt", b"just some text")],
         (415, "no usable photo: notes.txt: the body is not a JPEG, PNG, WebP or BMP image (it starts with "
               "6a75737420736f6d)")),
        ({"name": "X"}, [("a.jpg", NEW_PHOTOS[0].read_bytes())], (400, "item: id: required, a non-empty string (got None)")),
        ({"id": "x"}, [("a.jpg", NEW_PHOTOS[0].read_bytes())], (400, "item: name: required, a non-empty string (got None)")),
        ({"id": "x", "name": "X", "price": "cheap"}, [("a.jpg", NEW_PHOTOS[0].read_bytes())],
         (400, "item: price: expected a number of at least 0, got 'cheap'")),
        ({"id": "x", "name": "X", "price": "-3"}, [("a.jpg", NEW_PHOTOS[0].read_bytes())],
         (400, "item: price: expected a number of at least 0, got -3.0")),
        ({"id": "x", "name": "X", "colour": "red"}, [("a.jpg", NEW_PHOTOS[0].read_bytes())],
         (400, "unknown field 'colour' (expected id, name, price, url, class and the files 'photo')")),
    ],
)  # fmt: skip
def test_a_bad_upload_is_a_4xx_naming_the_problem_and_changes_nothing(shop, fields, photos, expected):
    """No photo, a corrupt image, not an image, a missing id or name, a bad price, an unknown field: 4xx, no change."""
    port, state = shop
    before = index_files(state)
    answer = upload(port, fields, photos)
    assert (expected, before) == (error_of(answer), index_files(state))


@pytest.mark.slow
def test_a_change_from_another_sites_page_or_not_multipart_is_refused(shop):
    """A browser page elsewhere cannot add items (its Origin is checked); a raw JPEG body is not an upload."""
    port, state = shop
    before = index_files(state)
    photo = [("a.jpg", NEW_PHOTOS[0].read_bytes())]
    cross = upload(port, {"id": "x", "name": "X"}, photo, {"Origin": "http://evil.example"})
    raw = call(port, "POST", "/api/catalogue/items", photo[0][1], {"Content-Type": "image/jpeg"})
    assert (403, "a change from another site's page is refused (Origin 'http://evil.example')") == error_of(cross)
    assert 415 == error_of(raw)[0]
    assert before == index_files(state)


def b64(photo: Path) -> str:
    return base64.b64encode(photo.read_bytes()).decode()


@pytest.mark.slow
def test_catalogue_add_and_remove_over_mqtt_are_acked_and_seen_by_the_cli(broker, daemons, tmp_path):
    """catalogue/add is acked done and `catalogue list` shows the item; a bad command gets an error ack."""
    state = tmp_path / "state"
    collector = Collector(broker.port, "edge-classifier/mq/#")
    base = "edge-classifier/mq/cmd/catalogue"
    item = {"id": "coat-9", "name": "Rain coat", "url": "https://shop.example/coat-9"}
    try:
        daemon = daemons(*daemon_args(broker.port, "mq", "--set", f"state_dir={state}", *FAST))
        collector.wait_for(lambda m: m.topic.endswith("/result"))
        publish(broker.port, f"{base}/add", json.dumps({"id": "a1", "item": item, "photos": [b64(NEW_PHOTOS[0])]}))
        added = wait_ack(collector, "catalogue/add", "a1")
        listed_after_add = listed(state)
        bad = [
            ("b1", "add", {"item": item}),
            ("b2", "add", {"item": {"id": "x", "name": " "}, "photos": [b64(NEW_PHOTOS[0])]}),
            ("b3", "add", {"item": item, "photos": ["not base64!"]}),
            ("b4", "add", {"item": item, "photos": [base64.b64encode(CORRUPT).decode()]}),
            ("b5", "remove", {"item_id": "nope"}),
        ]
        for request_id, name, body in bad:
            publish(broker.port, f"{base}/{name}", json.dumps({"id": request_id, **body}))
        errors = [wait_ack(collector, f"catalogue/{name}", request_id) for request_id, name, _ in bad]
        publish(broker.port, f"{base}/remove", json.dumps({"id": "r1", "item_id": "coat-9"}))
        removed = wait_ack(collector, "catalogue/remove", "r1")
        assert 0 == daemon.stop()
    finally:
        collector.close()
    assert ("done", item, 1, False, 1) == (
        added["status"], added["data"]["item"], added["data"]["photos"], added["data"]["replaced"],
        added["data"]["items"],
    )  # fmt: skip
    assert (["coat-9"], [], "done") == (listed_after_add, listed(state), removed["status"])
    assert [
        ("invalid", "payload: must contain ['photos'] properties"),
        ("invalid", "item: name: required, a non-empty string (got ' ')"),
        ("invalid", "no usable photo: photo 1: not valid base64"),
        ("invalid", "no usable photo: photo 1: the JPEG is truncated: no end-of-image marker after its image data"),
        ("failed", "the catalogue was not changed: no item with id 'nope' in the catalogue (1 items)"),
    ] == [(ack["status"], ack["error"]) for ack in errors]
