"""Capture faults an operator meets: unreadable images in a loop, stalls, FIFOs, and video files changed on disk."""

import json
import logging
import os
import threading
import time

import cv2
import jsonschema
import numpy as np

from edge_classifier.capture.opening import check_source, image_files
from edge_classifier.capture.source import OpenCVSource
from edge_classifier.config.settings import SourceConfig
from edge_classifier.errors import ConfigError
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.metrics import Metrics
from edge_classifier.service.payloads import metrics_message, utc_now
from helpers import SCHEMAS

# The longest a fake capture's read() or open() hangs; every test releases it sooner, in its `finally`.
HANG_S = 60


def write_video(path, values, fps=20.0, size=(160, 120)):
    """An mp4 whose frames are flat grey at `values`, one frame each."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for value in values:
        writer.write(np.full((size[1], size[0], 3), value, dtype=np.uint8))
    writer.release()
    return path


def grey_levels(frames):
    """Each frame's mean, to the nearest 10 (mp4v's compression moves flat frames by a level or two)."""
    return [int(round(float(f.image_bgr.mean()), -1)) for f in frames]


def frames_of(source, count, within=20.0):
    """The next `count` frames; fails if they do not all come within `within` seconds."""
    frames, deadline = [], time.monotonic() + within
    while len(frames) < count:
        assert time.monotonic() < deadline, f"{len(frames)} of {count} frames within {within}s: {source.stats()}"
        frame = source.get(1.0)
        if frame is not None:
            frames.append(frame)
    return frames


def test_unreadable_image_in_a_looping_folder_is_logged_once_and_counted(tmp_path, caplog):
    """A looping folder with one corrupt image says so once, and counts every time it skips it."""
    caplog.set_level(logging.WARNING)
    for name, value in (("0.png", 0), ("1.png", 50), ("2.png", 100)):
        cv2.imwrite(str(tmp_path / name), np.full((10, 10, 3), value, dtype=np.uint8))
    (tmp_path / "1x.png").write_text("not an image")  # sorted between 1.png and 2.png: skipped once per pass
    with OpenCVSource(SourceConfig(uri=str(tmp_path), file_rate="max", loop=True)) as source:
        frames = frames_of(source, 30)
        stats = source.stats()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert ([0, 50, 100] * 10, 10, [f"skipping unreadable image {tmp_path / '1x.png'}"]) == (
        grey_levels(frames), stats.images_skipped, warnings
    )  # fmt: skip


class BlockingCapture:
    """Delivers `frames` distinct frames, then blocks in read() until released (a camera that hangs)."""

    def __init__(self, frames, release_event):
        self.frames, self.release_event, self.count = frames, release_event, 0

    def isOpened(self):  # noqa: N802
        return True

    def read(self):
        if self.count >= self.frames:
            self.release_event.wait(HANG_S)
            return False, None
        self.count += 1
        return True, np.full((4, 4, 3), self.count % 256, dtype=np.uint8)

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return True

    def release(self):
        pass


def test_stalled_camera_is_stalled_then_reopening_then_running():
    """A camera that hangs in read() is `stalled` during the backoff, `reopening` while it opens, then `running`."""
    release, reopening_seen = threading.Event(), threading.Event()
    opened = []

    def opener(config):
        opened.append(1)
        if len(opened) > 1:
            reopening_seen.wait(HANG_S)  # the reopen lasts until the test has seen it
            return BlockingCapture(10**9, release)
        return BlockingCapture(2, release)

    config = SourceConfig(uri=0, stall_timeout_s=0.3, reopen_backoff_s=0.5, reopen_backoff_max_s=1.0)
    source = OpenCVSource(config, opener=opener)
    states, deadline = [], time.monotonic() + 20
    try:
        while states[-3:] != ["stalled", "reopening", "running"] and time.monotonic() < deadline:
            source.get(0.05)  # the consumer's wait is where a stall is noticed
            state = source.stats().state
            if state != "starting" and (not states or states[-1] != state):
                states.append(state)
            if state == "reopening":
                reopening_seen.set()
    finally:
        release.set()
        reopening_seen.set()
        source.close()
    assert ["running", "stalled", "reopening", "running"] == states, source.stats()


def test_fifo_given_as_video_file_is_refused_without_opening_it(tmp_path):
    """A FIFO as source.uri is a ConfigError saying what it is; check_source returns instead of blocking in open()."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    errors = []

    def check():
        try:
            check_source(SourceConfig(uri=str(fifo)))
        except ConfigError as exc:
            errors.append(str(exc))

    checker = threading.Thread(target=check, daemon=True)
    checker.start()
    checker.join(10)
    if checker.is_alive():  # it opened the FIFO: a writer lets that open return
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert [f"source.uri: {str(fifo)!r} is a FIFO, not a video file"] == errors


def test_video_replaced_between_loops_plays_the_new_file(tmp_path, caplog):
    """A looping video file replaced on disk is reopened at its rewind, with one warning: the new content plays."""
    video = write_video(tmp_path / "v.mp4", [0, 10, 20, 30, 40])
    replacement = write_video(tmp_path / "new.mp4", [200] * 5)
    with OpenCVSource(SourceConfig(uri=str(video), file_rate="max", loop=True)) as source:
        frames = frames_of(source, 2)
        os.replace(replacement, video)
        frames += frames_of(source, 8)
        stats = source.stats()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert ([0, 10, 20, 30, 40, 200, 200, 200, 200, 200], "running", [f"source.uri {str(video)!r} changed on disk: reopening it"]) == (
        grey_levels(frames), stats.state, warnings
    )  # fmt: skip


def test_video_deleted_while_looping_is_reported_and_not_running(tmp_path, caplog):
    """A looping video file deleted on disk gives a warning naming source.uri at its rewind, and stops running."""
    video = write_video(tmp_path / "v.mp4", [0, 10, 20, 30, 40])
    # A long backoff holds the source in `stalled` while the test looks.
    config = SourceConfig(uri=str(video), file_rate="max", loop=True, reopen_backoff_s=30)
    with OpenCVSource(config) as source:
        frames_of(source, 2)
        video.unlink()
        deadline = time.monotonic() + 20
        while source.stats().stalls == 0 and time.monotonic() < deadline:
            source.get(0.2)
        stats = source.stats()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert ([f"source.uri {str(video)!r} was deleted; retrying in 30.0s"], "stalled", 1) == (
        warnings, stats.state, stats.stalls
    )  # fmt: skip


def drain(source, within=20.0):
    """Every frame of a source that does not loop, until it ends; fails if it has not ended within `within` seconds."""
    frames, deadline = [], time.monotonic() + within
    while not source.ended:
        assert time.monotonic() < deadline, f"not ended within {within}s after {len(frames)} frames: {source.stats()}"
        frame = source.get(1.0)
        if frame is not None:
            frames.append(frame)
    return frames


def test_video_replaced_before_its_end_plays_the_new_file_then_ends(tmp_path, caplog):
    """A video file that does not loop, replaced while it plays, is reopened at its end: the new content plays, then it ends."""
    video = write_video(tmp_path / "v.mp4", [0, 10, 20, 30, 40])
    replacement = write_video(tmp_path / "new.mp4", [200] * 3)
    with OpenCVSource(SourceConfig(uri=str(video), file_rate="max")) as source:
        frames = frames_of(source, 2)
        os.replace(replacement, video)
        frames += drain(source)
        stats = source.stats()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert ([0, 10, 20, 30, 40, 200, 200, 200], "ended", [f"source.uri {str(video)!r} changed on disk: reopening it"]) == (
        grey_levels(frames), stats.state, warnings
    )  # fmt: skip


def test_video_deleted_before_its_end_is_reported_and_ends(tmp_path, caplog):
    """A video file that does not loop, deleted while it plays, ends after its frames with a warning naming source.uri."""
    video = write_video(tmp_path / "v.mp4", [0, 10, 20, 30, 40])
    with OpenCVSource(SourceConfig(uri=str(video), file_rate="max")) as source:
        frames = frames_of(source, 2)
        video.unlink()
        frames += drain(source)
        stats = source.stats()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert ([0, 10, 20, 30, 40], "ended", [f"source.uri {str(video)!r} was deleted while it played: it ends here"]) == (
        grey_levels(frames), stats.state, warnings
    )  # fmt: skip


def test_metrics_carry_the_skipped_images_count(tmp_path):
    """The images a looping folder skipped reach the metrics payload as camera.images_skipped, valid under its schema."""
    for name, value in (("0.png", 0), ("1.png", 50)):
        cv2.imwrite(str(tmp_path / name), np.full((10, 10, 3), value, dtype=np.uint8))
    (tmp_path / "0x.png").write_text("not an image")  # sorted between 0.png and 1.png: skipped once per pass
    with OpenCVSource(SourceConfig(uri=str(tmp_path), file_rate="max", loop=True)) as source:
        frames_of(source, 6)
        stats = source.stats()
    topics, summary = Topics("edge-classifier", "m"), Metrics().reader().read()
    document = json.loads(metrics_message(topics, utc_now(), "m", summary, stats, MemoryPublisher().stats()).payload)
    jsonschema.validate(document, json.loads((SCHEMAS / "metrics.schema.json").read_text()))
    assert 3 == document["camera"]["images_skipped"]


def test_glob_plays_regular_files_only_and_never_opens_a_fifo(tmp_path):
    """A FIFO matched by an image glob is left out (reading it would block until a writer comes); the images play."""
    os.mkfifo(tmp_path / "0.png")
    cv2.imwrite(str(tmp_path / "1.png"), np.full((10, 10, 3), 50, dtype=np.uint8))
    uri = str(tmp_path / "*.png")
    assert [str(tmp_path / "1.png")] == image_files(uri)  # before anything opens the FIFO, which would block
    check_source(SourceConfig(uri=uri))
    with OpenCVSource(SourceConfig(uri=uri, file_rate="max")) as source:
        frames = drain(source)
    assert [50] == grey_levels(frames)
