"""A model swapped in without a catalogue index gets one rebuilt from the stored photos, between frames.

The swapped-in model is the default model's own weights loaded a second time under another identity (name, version
and sha256): the bundled Fashion model has no embedding output, so it cannot have a catalogue at all, and a
byte-identical copy of the default `.tflite` would have the same sha256 (and so the same index). The index is keyed by
the sha256 the loop serves, so the second identity has no index and must get one rebuilt, with a real model running
over the real stored photos; the same weights let the test check that the rebuilt index finds the same items.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from test_catalogue import make_catalogue, photos_of
from test_commands import Rig

from edge_classifier.capture.source import Frame, SourceStats
from edge_classifier.catalogue.index import CatalogueIndex, embed_items
from edge_classifier.catalogue.items import ItemInfo, find_item_folders
from edge_classifier.catalogue.photos import photos_dir
from edge_classifier.catalogue.rebuild import PHOTOS_PER_STEP
from edge_classifier.catalogue.store import index_path, save_index
from edge_classifier.config.settings import Config, ModelConfig
from edge_classifier.model.identity import ModelInfo
from edge_classifier.model.loading import open_classifier
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.inbox import CatalogueAddRequest, SwapModelRequest
from edge_classifier.service.notify import Notifier
from fakes import EndlessSource
from helpers import DEFAULT_MANIFEST

MODEL_CONFIG = ModelConfig(manifest=DEFAULT_MANIFEST, selftest=False)
MAX_STEPS = 200  # loop iterations allowed for a rebuild of 10 photos at PHOTOS_PER_STEP each, with room to spare
QUERY = photos_of("hat")[0]  # the first photo of item hat-0
PHOTOS = 10  # in the catalogue: 5 items of 2 photos


class PhotoSource(EndlessSource):
    """A camera that keeps seeing one real photo."""

    def __init__(self, photo: Path):
        super().__init__()
        self.image = cv2.imread(str(photo))

    def get(self, timeout: float) -> Frame | None:
        self.served += 1
        return Frame(self.image, self.served - 1, time.monotonic(), 0.001)

    def stats(self) -> SourceStats:
        return SourceStats("running", self.served, 0, 0, 0)


def other_identity(model: ModelInfo, n: int) -> ModelInfo:
    """The default model's identity with another version and sha256 (see the module's docstring)."""
    return dataclasses.replace(model, version=f"{model.version}-copy{n}", sha256=f"{n:x}" * 64)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A state directory with a catalogue of 5 items (10 photos) built for the default model."""
    root = tmp_path_factory.mktemp("built")
    classifier, model = open_classifier(MODEL_CONFIG)
    with classifier:
        items = embed_items(
            classifier, find_item_folders([make_catalogue(root / "items", per_class=1)]), root / "state"
        )
        save_index(root / "state", CatalogueIndex(model, 1280, tuple(items)))
    return root / "state"


@contextlib.contextmanager
def daemon(state: Path) -> Iterator[Rig]:
    """The service from the composition root on the real default model, a camera seeing QUERY, MQTT in memory."""
    publisher = MemoryPublisher()
    with contextlib.ExitStack() as stack:
        seams = Seams(PhotoSource(QUERY), publisher, Notifier({}), open_classifier(MODEL_CONFIG))
        config = Config(device_id="unit", state_dir=state, model=MODEL_CONFIG)
        yield Rig(build_service(config, stack, threading.Event(), seams), publisher, None, seams.source)


def swap_to(r: Rig, identity: ModelInfo) -> None:
    """Serve the default model's weights as IDENTITY from the next frame (no probation)."""
    request = SwapModelRequest(lambda: (open_classifier(MODEL_CONFIG)[0], identity), verify_frames=0)
    r.service.inbox.submit(request)
    r.answers(1)
    assert identity == request.reply.result(0)


def similar_now(r: Rig) -> list[str] | None:
    """One loop iteration; the ids in its frame's `similar` (None: no index for the serving model)."""
    r.answers(1)
    latest = r.service.state.snapshot().latest
    assert latest is not None
    return None if latest.similar is None else [match.id for match in latest.similar]


def test_a_swap_rebuilds_the_index_between_frames_and_a_rollback_uses_the_original_at_once(built, tmp_path, caplog):
    """After a swap: frames keep coming without `similar`, at most PHOTOS_PER_STEP photos per iteration, then the
    rebuilt index is written and the same items are found; a rollback finds the original index unchanged at once."""
    state = tmp_path / "state"
    shutil.copytree(built, state, symlinks=True)
    with daemon(state) as r, caplog.at_level(logging.INFO, logger="edge_classifier.catalogue.runtime"):
        model = r.loop.parts.model
        original = os.readlink(index_path(state, model.sha256))
        before = similar_now(r)
        swapped = other_identity(model, 1)
        swap_to(r, swapped)
        runtime = r.loop.parts.catalogue
        during, frames, done = [], [], [runtime.rebuild.done]
        for _ in range(MAX_STEPS):
            processed = r.service.state.snapshot().frames_processed
            during.append(similar_now(r))
            frames.append(r.service.state.snapshot().frames_processed - processed)
            if during[-1] is not None:
                break
            done.append(PHOTOS if runtime.rebuild is None else runtime.rebuild.done)  # None: written this iteration
        rebuilt = index_path(state, swapped.sha256).is_symlink()
        r.ask("model/rollback", {"id": "rb"})
        back = similar_now(r)
        after = (os.readlink(index_path(state, model.sha256)), runtime.rebuild, runtime.current.index.model)
    steps = [later - earlier for earlier, later in itertools.pairwise(done)]
    assert ("hat-0", None, before, before, True) == (before[0], during[0], during[-1], back, rebuilt)
    assert ([1] * len(during), PHOTOS, True) == (
        frames, done[-1], all(0 < step <= PHOTOS_PER_STEP for step in steps))  # fmt: skip
    assert (original, None, model) == after
    name = f"{swapped.name} {swapped.version}"
    infos = [record.getMessage() for record in caplog.records if "rebuilding catalogue" in record.getMessage()]
    assert [
        f"rebuilding catalogue for model {name}: 0/10 (5 items from the index of model {model.name} {model.version}); "
        "visual search is off until it is written",
        f"rebuilding catalogue for model {name}: 10/10: done, 5 items",
    ] == infos


def test_a_second_swap_during_a_rebuild_cancels_it(built, tmp_path, caplog):
    """A swap while an index is rebuilt: that rebuild is cancelled (nothing written) and one for the new model starts."""
    state = tmp_path / "state"
    shutil.copytree(built, state, symlinks=True)
    with daemon(state) as r, caplog.at_level(logging.INFO, logger="edge_classifier.catalogue.runtime"):
        first, second = other_identity(r.loop.parts.model, 1), other_identity(r.loop.parts.model, 2)
        swap_to(r, first)
        r.answers(1)
        swap_to(r, second)
        r.answers(1)
        runtime = r.loop.parts.catalogue
        state_now = (runtime.rebuild.model, index_path(state, first.sha256).exists())
    cancelled = [record.getMessage() for record in caplog.records if "cancelled" in record.getMessage()]
    assert (second, False) == state_now
    assert 1 == len(cancelled)
    assert cancelled[0].endswith(f"cancelled: model {second.name} {second.version} serves now"), cancelled[0]


def test_a_corrupt_stored_photo_is_logged_once_and_frames_keep_coming_without_similar(built, tmp_path, caplog):
    """A stored photo that no longer decodes: one WARNING naming it, no index written, results without `similar`."""
    state = tmp_path / "state"
    shutil.copytree(built, state, symlinks=True)
    broken = sorted(photos_dir(state).iterdir())[3]
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    with daemon(state) as r, caplog.at_level(logging.WARNING, logger="edge_classifier.catalogue.runtime"):
        swapped = other_identity(r.loop.parts.model, 1)
        swap_to(r, swapped)
        frames = r.service.state.snapshot().frames_processed
        results = [similar_now(r) for _ in range(3 * 10 // PHOTOS_PER_STEP)]
        processed = r.service.state.snapshot().frames_processed - frames
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert ([None] * len(results), len(results), False) == (
        results, processed, index_path(state, swapped.sha256).exists())  # fmt: skip
    assert 1 == len(warnings)
    assert f"stored photo {broken} does not decode as an image; visual search stays off" in warnings[0], warnings[0]


def test_an_item_added_to_the_running_daemon_keeps_its_photos_and_is_rebuilt_too(built, tmp_path):
    """An item added through the loop (as HTTP and MQTT do) stores its photos; a swap's rebuild includes it."""
    state = tmp_path / "state"
    shutil.copytree(built, state, symlinks=True)
    coat = [cv2.imread(str(photo)) for photo in photos_of("outwear")[:2]]
    with daemon(state) as r:
        request = CatalogueAddRequest(ItemInfo("coat-1", "Coat"), tuple(coat))
        r.service.inbox.submit(request)
        r.answers(1)
        request.reply.result(0)
        stored = next(item for item in r.loop.parts.catalogue.current.index.items if item.info.id == "coat-1").photos
        swapped = other_identity(r.loop.parts.model, 1)
        swap_to(r, swapped)
        runtime = r.loop.parts.catalogue
        for _ in range(MAX_STEPS):
            if runtime.rebuild is None:
                break
            r.answers(1)
        rebuilt = runtime.current.index
    coats = [item.photos for item in rebuilt.items if item.info.id == "coat-1"]
    files = [(photos_dir(state) / name).is_file() for name in stored]
    assert (swapped, 6, [stored], [True, True]) == (rebuilt.model, len(rebuilt), coats, files)
