"""Visual search: item folders, the catalogue CLI (build, add, remove, list), bad input, search and `similar`."""

import errno
import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from edge_classifier.catalogue import store
from edge_classifier.catalogue.index import CatalogueIndex, CatalogueItem
from edge_classifier.catalogue.items import ItemInfo, find_item_folders, read_item_folder
from edge_classifier.catalogue.runtime import CatalogueRuntime
from edge_classifier.catalogue.search import CatalogueSearch, Match
from edge_classifier.catalogue.settings import CatalogueConfig
from edge_classifier.catalogue.store import load_index, save_index
from edge_classifier.errors import InputError, ModelError
from edge_classifier.model.classification import Classification
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.identity import ModelInfo
from helpers import DEFAULT_MANIFEST, ROOT, SCHEMAS, run_cli

PHOTOS = ROOT / "tests" / "data" / "real-photos"
CLASSES = ("dress", "hat", "pants", "shoes", "skirt")
FAST = ("--set", "model.selftest=false")  # the model is the real one; its self-test is tested elsewhere
RESULT_SCHEMA = json.loads((SCHEMAS / "result.schema.json").read_text())


def photos_of(kind: str) -> list[Path]:
    return sorted((PHOTOS / kind).glob("*.jpg"))


def make_item(folder: Path, item_id: str, photos: list[Path], **fields) -> Path:
    """An item folder: the photos copied in, and an item.json with the id, a name and FIELDS."""
    folder.mkdir(parents=True)
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    (folder / "item.json").write_text(json.dumps({"id": item_id, "name": f"Item {item_id}", **fields}))
    return folder


def make_catalogue(root: Path, per_class: int = 2) -> Path:
    """A folder of item folders: for each class in CLASSES, PER_CLASS items of two photos each."""
    for kind in CLASSES:
        photos = photos_of(kind)
        for n in range(per_class):
            make_item(root / f"{kind}-{n}", f"{kind}-{n}", photos[2 * n : 2 * n + 2], price=10 + n, **{"class": kind})
    return root


def cli(state: Path, *args: str):
    return run_cli("catalogue", *args, "--set", f"state_dir={state}", *FAST)


def listed(state: Path) -> list[str]:
    out = cli(state, "list", "--json")
    assert 0 == out.returncode, out.stderr
    return [item["id"] for item in json.loads(out.stdout)["items"]]


def index_files(state: Path) -> dict[str, bytes]:
    """Every file of the catalogue (below the state directory's `catalogue`), by relative path."""
    root = state / "catalogue"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# Item folders, without the model.


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "x"}, "id: required, a non-empty string (got None)"),
        ({"id": "", "name": "x"}, "id: required, a non-empty string (got '')"),
        ({"id": 7, "name": "x"}, "id: required, a non-empty string (got 7)"),
        ({"id": "a"}, "name: required, a non-empty string (got None)"),
        ({"id": "a", "name": "x", "price": "cheap"}, "price: expected a number of at least 0, got 'cheap'"),
        ({"id": "a", "name": "x", "price": True}, "price: expected a number of at least 0, got True"),
        ({"id": "a", "name": "x", "url": 5}, "url: expected a string, got 5"),
        ({"id": "a", "name": "x", "prcie": 5}, "prcie: unknown field (expected id, name, price, url, class)"),
        ([1, 2], "expected a mapping with at least `id` and `name`"),
    ],
)
def test_a_bad_item_json_is_one_line_naming_the_file_and_the_field(tmp_path, document, message):
    """Each bad description names item.json and the field."""
    folder = make_item(tmp_path / "item", "a", photos_of("hat")[:1])
    (folder / "item.json").write_text(json.dumps(document))
    with pytest.raises(InputError) as caught:
        read_item_folder(folder)
    assert f"{folder / 'item.json'}: {message}" == str(caught.value)


def test_an_item_yaml_is_read_like_json(tmp_path):
    """item.yaml gives the same description as item.json would."""
    folder = make_item(tmp_path / "item", "a", photos_of("hat")[:2])
    (folder / "item.json").unlink()
    (folder / "item.yaml").write_text("id: hat-1\nname: Straw hat\nprice: 12.5\nurl: https://shop/hat-1\nclass: hat\n")
    item = read_item_folder(folder)
    assert (ItemInfo("hat-1", "Straw hat", 12.5, "https://shop/hat-1", "hat"), 2) == (item.info, len(item.photos))


def test_a_folder_without_photos_and_a_duplicate_id_are_refused(tmp_path):
    """No usable photo names the folder; a duplicate id names both folders."""
    empty = make_item(tmp_path / "one" / "empty", "e", [])
    (empty / "notes.txt").write_text("no photo here")
    with pytest.raises(InputError) as no_photo:
        find_item_folders([tmp_path / "one"])
    make_item(tmp_path / "two" / "a", "same", photos_of("hat")[:1])
    make_item(tmp_path / "two" / "b", "same", photos_of("hat")[1:2])
    with pytest.raises(InputError) as duplicate:
        find_item_folders([tmp_path / "two"])
    assert (
        f"item folder {empty}: no usable photo (expected .jpg, .jpeg, .png, .webp files)",
        f"duplicate id 'same': in {tmp_path / 'two' / 'a'} and {tmp_path / 'two' / 'b'}",
    ) == (str(no_photo.value), str(duplicate.value))


# Search and storage, with made-up vectors.

MODEL = ModelInfo("test-model", "1", "a" * 64)


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def small_index() -> CatalogueIndex:
    items = (
        CatalogueItem(ItemInfo("coat", "Coat", 99.0, "https://shop/coat", "outwear"),
                      np.stack([unit(1, 0, 0), unit(0, 1, 0)]), b"coat-jpeg"),
        CatalogueItem(ItemInfo("cap", "Cap"), np.stack([unit(1, 1, 0)]), b"cap-jpeg"),
        CatalogueItem(ItemInfo("sock", "Sock"), np.stack([unit(0, 0, 1)]), b"sock-jpeg"),
    )  # fmt: skip
    return CatalogueIndex(MODEL, 3, items)


def test_search_gives_each_item_once_by_its_best_photo_above_the_minimum():
    """The coat's second photo matches exactly; the cap follows; the sock is below the minimum."""
    matches = CatalogueSearch(small_index()).search(unit(0, 1, 0), top_n=5, min_similarity=0.5)
    expected = (Match("coat", "Coat", 1.0, 99.0, "https://shop/coat", "outwear"), Match("cap", "Cap", 0.7071))
    assert expected == matches


def test_search_keeps_top_n():
    """top_n 1 keeps only the best item."""
    assert ["cap"] == [m.id for m in CatalogueSearch(small_index()).search(unit(1, 1, 0.1), 1, 0.0)]


def test_an_index_is_written_and_read_back_with_its_thumbnails(tmp_path):
    """What save_index writes, load_index reads: ids, metadata, vectors and thumbnails."""
    save_index(tmp_path, small_index())
    loaded = load_index(tmp_path, MODEL, 3)
    assert loaded is not None
    search = CatalogueSearch(loaded)
    assert (["coat", "cap", "sock"], small_index().items[0].info, b"cap-jpeg") == (
        loaded.ids(),
        loaded.items[0].info,
        search.thumbnail("cap"),
    )
    assert np.array_equal(small_index().matrix, loaded.matrix)


def test_a_full_disk_leaves_the_existing_index_unchanged(tmp_path, monkeypatch):
    """ENOSPC while writing the new index: one-line error, the old index still loads, no temporary left behind."""
    save_index(tmp_path, small_index())
    before = index_files(tmp_path)

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_file", full)
    with pytest.raises(InputError) as caught:
        save_index(tmp_path, small_index().without(["sock"]))
    loaded = load_index(tmp_path, MODEL, 3)
    assert (
        f"cannot write the catalogue under {tmp_path / 'catalogue'}: No space left on device; "
        "the existing index is unchanged",
        before, ["coat", "cap", "sock"],
    ) == (str(caught.value), index_files(tmp_path), loaded.ids() if loaded else None)  # fmt: skip


def test_a_build_killed_half_way_leaves_nothing_behind_after_the_next_one(tmp_path):
    """An hour-old version directory (a killed build) is removed by the next save; a fresh one (a build in progress)
    and the current index stay."""
    root = store.catalogue_root(tmp_path)
    stale, fresh = root / f".{MODEL.sha256}.stale", root / f".{MODEL.sha256}.fresh"
    for folder in (stale, fresh):
        (folder / "thumbs").mkdir(parents=True)
    os.utime(stale, (1, 1))
    save_index(tmp_path, small_index())
    loaded = load_index(tmp_path, MODEL, 3)
    assert (False, True, 3) == (stale.exists(), fresh.exists(), len(loaded) if loaded else 0)


def test_an_index_of_another_model_or_length_is_refused(tmp_path):
    """The index's own record of its model and length is checked, with the command that fixes it."""
    save_index(tmp_path, small_index())
    other = ModelInfo("new-model", "2", "c" * 64)
    # The files copied by hand to where the other model's index would be.
    shutil.copytree(store.index_path(tmp_path, MODEL.sha256), store.index_path(tmp_path, other.sha256))
    with pytest.raises(ModelError) as copied:
        load_index(tmp_path, other, 3)
    with pytest.raises(ModelError) as length:
        load_index(tmp_path, MODEL, 4)
    assert (
        "the catalogue was built with model test-model 1 (sha256 aaaaaaaaaaaa), this is new-model 2 "
        "(sha256 cccccccccccc): run `edge-classifier catalogue build`",
        "the catalogue holds embeddings of 3 values, model test-model gives 4: run `edge-classifier catalogue build`",
    ) == (str(copied.value), str(length.value))


def test_after_a_swap_to_another_model_the_runtime_gives_no_similar_and_warns(tmp_path, caplog):
    """A serving model without an index, the other model's index without stored photos: no matches and a WARNING
    naming `catalogue build` and why no rebuild; a rollback brings them back, and a rebuilt index is loaded again."""
    save_index(tmp_path, small_index())
    runtime = CatalogueRuntime(CatalogueConfig(), tmp_path)
    frame = Classification(np.ones(1, np.float32), np.ones(1, np.float32), 0, 0, 0)
    object.__setattr__(frame, "embedding", unit(0, 1, 0))  # the cached property, as the model would fill it
    swapped = ModelInfo("new-model", "2", "c" * 64)
    runtime.refresh(MODEL, 3)
    before = runtime.matches(frame, MODEL)
    with caplog.at_level(logging.WARNING, logger="edge_classifier.catalogue.runtime"):
        runtime.refresh(swapped, 3)
        during = runtime.matches(frame, swapped)
        runtime.refresh(swapped, 3)  # nothing changed: no second warning
    runtime.refresh(MODEL, 3)
    back = runtime.matches(frame, MODEL)
    save_index(tmp_path, small_index().without(["coat"]))
    runtime.refresh(MODEL, 3)
    rebuilt = runtime.matches(frame, MODEL)
    assert ("coat", None, "coat", "cap") == (before[0].id, during, back[0].id, rebuilt[0].id)
    assert [
        "visual search is off while model new-model 2 serves: the catalogue was built with model test-model 1 "
        "(sha256 aaaaaaaaaaaa), this is new-model 2 (sha256 cccccccccccc): run `edge-classifier catalogue build` "
        "(the index of test-model 1 kept no photos, so it cannot be rebuilt for this model)"
    ] == [record.getMessage() for record in caplog.records]


# The real model through the command line.


@pytest.fixture(scope="module")
def classifier():
    with Classifier.from_manifest(DEFAULT_MANIFEST) as loaded:
        yield loaded


def camera_view(photo: Path) -> np.ndarray:
    """The photo as a camera might see it: rotated 8 degrees, cropped to 85%, darker, re-compressed."""
    image = cv2.imread(str(photo))
    height, width = image.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), 8, 1.0)
    image = cv2.warpAffine(image, rotation, (width, height), borderMode=cv2.BORDER_REFLECT)
    image = image[int(height * 0.08) : int(height * 0.93), int(width * 0.07) : int(width * 0.92)]
    image = cv2.convertScaleAbs(image, alpha=0.85, beta=5)
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_COLOR)


@pytest.mark.slow
def test_build_add_remove_and_list_through_the_cli(tmp_path):
    """build replaces, add adds and replaces by id, remove deletes, list shows the items with their fields."""
    state = tmp_path / "state"
    built = cli(state, "build", str(make_catalogue(tmp_path / "items")))
    first = listed(state)
    extra = make_item(tmp_path / "more" / "coat", "coat-1", photos_of("outwear")[:3], price=120)
    replaced = make_item(tmp_path / "more" / "hat-0", "hat-0", photos_of("hat")[5:6], name="Felt hat")
    added = cli(state, "add", str(extra), str(replaced))
    after_add = json.loads(cli(state, "list", "--json").stdout)["items"]
    removed = cli(state, "remove", "dress-0", "coat-1")
    text = cli(state, "list")
    rebuilt = cli(state, "build", str(tmp_path / "more"))
    assert (0, 0, 0, 0) == (built.returncode, added.returncode, removed.returncode, rebuilt.returncode), (
        built.stderr + added.stderr + removed.stderr + rebuilt.stderr
    )
    assert [f"{kind}-{n}" for kind in CLASSES for n in range(2)] == first
    assert {"id": "hat-0", "name": "Felt hat", "photos": 1} == next(i for i in after_add if i["id"] == "hat-0")
    assert {"id": "coat-1", "name": "Item coat-1", "price": 120.0, "photos": 3} == after_add[-1]
    assert 11 == len(after_add)
    assert "dress-1\tItem dress-1\t11\tdress\t\t2 photos" == text.stdout.splitlines()[0]
    assert 9 == len(text.stdout.splitlines())
    assert ["coat-1", "hat-0"] == listed(state)
    assert "built 10 items (20 photos" in built.stdout


@pytest.mark.slow
def test_a_camera_view_of_an_item_finds_that_item_first(tmp_path, classifier):
    """A catalogue built through the CLI, searched with a camera-like view of each item's photo: its own item first."""
    state = tmp_path / "state"
    assert 0 == cli(state, "build", str(make_catalogue(tmp_path / "items"))).returncode
    model = ModelInfo("clothing-mobilenetv2", "", json.loads(DEFAULT_MANIFEST.read_text())["sha256"])
    index = load_index(state, model, 1280)
    assert index is not None
    search = CatalogueSearch(index)
    firsts = []
    for item in index.items:
        photo = sorted((tmp_path / "items" / item.info.id).glob("*.jpg"))[1]
        embedding = classifier.classify(camera_view(photo)).embedding
        firsts.append(search.search(embedding, 5, 0.5)[0].id)
    assert index.ids() == firsts


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["no-photo", "corrupt-image", "duplicate-id", "bad-field", "unknown-id"])
def test_bad_input_is_one_line_and_leaves_the_index_unchanged(tmp_path, problem):
    """Each bad input: exit 1, one `error:` line naming the problem, no traceback, the index as it was."""
    state = tmp_path / "state"
    assert 0 == cli(state, "build", str(make_catalogue(tmp_path / "items", per_class=1))).returncode
    before = index_files(state)
    bad = tmp_path / "bad"
    item = make_item(bad / "new", "new", photos_of("shorts")[:2])
    if problem == "no-photo":
        for photo in item.glob("*.jpg"):
            photo.unlink()
        expected = f"error: item folder {item}: no usable photo (expected .jpg, .jpeg, .png, .webp files)"
    elif problem == "corrupt-image":
        broken = sorted(item.glob("*.jpg"))[1]
        broken.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
        expected = f"error: image {broken} is not a readable image"
    elif problem == "duplicate-id":
        make_item(bad / "other", "new", photos_of("shorts")[2:3])
        expected = f"error: duplicate id 'new': in {bad / 'new'} and {bad / 'other'}"
    elif problem == "bad-field":
        (item / "item.json").write_text('{"id": "new", "name": "x", "price": -3}')
        expected = f"error: {item / 'item.json'}: price: expected a number of at least 0, got -3"
    else:
        expected = "error: no item with id 'nope' in the catalogue (5 items)"
    out = cli(state, "remove", "dress-0", "nope") if problem == "unknown-id" else cli(state, "add", str(bad))
    assert (1, [expected], False) == (out.returncode, out.stderr.splitlines()[-1:], "Traceback" in out.stderr)
    assert before == index_files(state)


@pytest.mark.slow
def test_a_catalogue_built_with_another_model_is_refused_with_exit_78(tmp_path):
    """Only another model's index in the state directory: list and add say which model built it and what to run."""
    state = tmp_path / "state"
    other = ModelInfo("old-model", "0.9", "b" * 64)
    save_index(state, CatalogueIndex(other, 1280, ()))
    before = index_files(state)
    listing = cli(state, "list")
    adding = cli(state, "add", str(make_item(tmp_path / "items" / "x", "x", photos_of("hat")[:1])))
    sha = json.loads(DEFAULT_MANIFEST.read_text())["sha256"]
    expected = (
        "error: the catalogue was built with model old-model 0.9 (sha256 bbbbbbbbbbbb), this is clothing-mobilenetv2 "
        f"1.0.0 (sha256 {sha[:12]}): run `edge-classifier catalogue build`"
    )
    assert (78, [expected]) == (listing.returncode, listing.stderr.splitlines()[-1:])
    assert (78, [expected]) == (adding.returncode, adding.stderr.splitlines()[-1:])
    assert before == index_files(state)


def test_bad_catalogue_settings_are_config_errors():
    """catalogue.top_n below 1 and an unknown catalogue key are refused with exit 78."""
    low = run_cli("catalogue", "list", "--set", "catalogue.top_n=0")
    unknown = run_cli("catalogue", "list", "--set", "catalogue.size=3")
    assert (78, ["error: catalogue.top_n: expected an integer from 1 to 100, got 0"]) == (
        low.returncode, low.stderr.splitlines()
    )  # fmt: skip
    assert (78, ["error: catalogue.size: unknown key (known keys here: enabled, top_n, min_similarity)"]) == (
        unknown.returncode, unknown.stderr.splitlines()
    )  # fmt: skip


# The daemon.


@pytest.mark.slow
def test_the_daemons_result_carries_similar_items(tmp_path, broker, subscriber, daemons):
    """With a catalogue built, `run` on photos of one item publishes results whose `similar` starts with that item."""
    state = tmp_path / "state"
    assert 0 == cli(state, "build", str(make_catalogue(tmp_path / "items"))).returncode
    frames = tmp_path / "frames"
    frames.mkdir()
    for photo in sorted((tmp_path / "items" / "shoes-1").glob("*.jpg")):
        cv2.imwrite(str(frames / photo.name), camera_view(photo))
    daemon = daemons(
        "--source", str(frames), "--device-id", "cat", "--set", f"mqtt.port={broker.port}",
        "--set", "mqtt.host=127.0.0.1", "--set", f"state_dir={state}", "--set", "source.file_rate=max",
        "--set", "result.heartbeat_s=0.1", *FAST,
    )  # fmt: skip
    assert 0 == daemon.wait(60), daemon.log
    subscriber.wait_for(lambda m: m.topic == "edge-classifier/cat/status" and m.payload == "offline")
    results = [m.json() for m in subscriber.seen if m.topic == "edge-classifier/cat/result"]
    for result in results:
        jsonschema.validate(result, RESULT_SCHEMA)
    assert "visual search: 10 catalogue items (20 photos) for model clothing-mobilenetv2" in daemon.log
    assert ["shoes-1"] == sorted({result["similar"][0]["id"] for result in results})
    first = results[0]["similar"][0]
    assert ("Item shoes-1", 11.0, "shoes") == (first["name"], first["price"], first["class"])
    assert all(0.5 <= match["similarity"] <= 1.0 for result in results for match in result["similar"])


@pytest.mark.slow
def test_without_a_catalogue_results_have_no_similar(tmp_path, broker, subscriber, daemons):
    """No index for the model: results are as before, with no `similar` key."""
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(photos_of("hat")[0], frames)
    daemon = daemons(
        "--source", str(frames), "--device-id", "nocat", "--set", f"mqtt.port={broker.port}",
        "--set", "mqtt.host=127.0.0.1", "--set", f"state_dir={tmp_path / 'state'}", *FAST,
    )  # fmt: skip
    assert 0 == daemon.wait(60), daemon.log
    result = subscriber.wait_for(lambda m: m.topic == "edge-classifier/nocat/result").json()
    assert "similar" not in result


# The HTTP interface.


@pytest.mark.slow
def test_api_search_answers_the_similar_items_with_thumbnails(tmp_path, broker):
    """POST /api/search (raw body and multipart) puts the photographed item first; its thumbnail is a JPEG."""
    from test_http_api import call, frames_processed, multipart, start_daemon, stop, wait_until

    from helpers import free_port

    state = tmp_path / "state"
    assert 0 == cli(state, "build", str(make_catalogue(tmp_path / "items"))).returncode
    schema = json.loads((SCHEMAS / "http-search.schema.json").read_text())
    port = free_port()
    daemon = start_daemon(broker.port, port, "--preview", "--set", f"state_dir={state}", *FAST, device="search")
    try:
        daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
        wait_until(lambda: frames_processed(port) > 0, what="the first classified frame")
        photo = sorted((tmp_path / "items" / "skirt-1").glob("*.jpg"))[0]
        view = cv2.imencode(".jpg", camera_view(photo))[1].tobytes()
        raw = call(port, "POST", "/api/search?top_n=3", view, {"Content-Type": "image/jpeg"})
        body, content_type = multipart({"image": ("view.jpg", view, "image/jpeg")})
        form = call(port, "POST", "/api/search", body, {"Content-Type": content_type})
        for answer in (raw, form):
            assert 200 == answer.status, answer.body
            jsonschema.validate(answer.json(), schema)
        first = raw.json()["items"][0]
        thumbnail = call(port, "GET", first["thumbnail"])
        missing = call(port, "GET", "/api/catalogue/thumbnail/nope")
    finally:
        stop(daemon)
    image = cv2.imdecode(np.frombuffer(thumbnail.body, np.uint8), cv2.IMREAD_COLOR)
    assert ("skirt-1", "/api/catalogue/thumbnail/skirt-1", "skirt") == (first["id"], first["thumbnail"], first["class"])
    assert (True, "skirt-1") == (len(raw.json()["items"]) <= 3, form.json()["items"][0]["id"])
    assert ("image/jpeg", 128) == (thumbnail.headers["content-type"], max(image.shape[:2]))
    assert (404, "no catalogue item with id 'nope'") == (missing.status, missing.json()["error"])
    assert "Traceback" not in daemon.log


@pytest.mark.slow
def test_api_search_without_a_catalogue_is_404_naming_the_command(tmp_path, broker):
    """No index for the model: /api/search answers 404 with the command that builds one."""
    from test_http_api import call, frames_processed, start_daemon, stop, wait_until

    from helpers import free_port

    port = free_port()
    daemon = start_daemon(broker.port, port, "--preview", "--set", f"state_dir={tmp_path}", *FAST, device="nosearch")
    try:
        daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
        wait_until(lambda: frames_processed(port) > 0, what="the first classified frame")
        photo = photos_of("hat")[0].read_bytes()
        answer = call(port, "POST", "/api/search", photo, {"Content-Type": "image/jpeg"})
    finally:
        stop(daemon)
    expected = "no catalogue for the serving model clothing-mobilenetv2 1.0.0: run `edge-classifier catalogue build`"
    assert (404, expected) == (answer.status, answer.json()["error"])


@pytest.mark.slow
def test_a_catalogue_built_while_the_daemon_runs_is_used_without_a_restart(tmp_path, broker, subscriber, daemons):
    """Results have no `similar` until `catalogue build`; within seconds of it they do."""
    state = tmp_path / "state"
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(photos_of("hat")[0], frames)
    daemon = daemons(
        "--source", str(frames), "--device-id", "later", "--set", f"mqtt.port={broker.port}",
        "--set", "mqtt.host=127.0.0.1", "--set", f"state_dir={state}", "--set", "source.loop=true",
        "--set", "source.fps=20", "--set", "result.heartbeat_s=0.2", *FAST,
    )  # fmt: skip
    before = subscriber.wait_for(lambda m: m.topic == "edge-classifier/later/result").json()
    catalogue = make_catalogue(tmp_path / "items", per_class=1)
    make_item(catalogue / "the-hat", "the-hat", photos_of("hat")[:1])
    assert 0 == cli(state, "build", str(catalogue)).returncode
    after = subscriber.wait_for(lambda m: m.topic == "edge-classifier/later/result" and "similar" in m.json()).json()
    daemon.stop()
    assert ("similar" in before, "the-hat", 1.0) == (
        False,
        after["similar"][0]["id"],
        after["similar"][0]["similarity"],
    )
