"""Frame sources: real video files written with OpenCV, and a fake capture for stalls."""

import http.server
import logging
import threading
import time

import cv2
import numpy as np
import pytest

from edge_classifier.capture.opening import check_source, frame_as_bgr, open_capture, source_kind
from edge_classifier.capture.source import OpenCVSource
from edge_classifier.config.settings import SourceConfig
from edge_classifier.errors import ConfigError


def write_video(path, frames=20, fps=20.0, size=(160, 120)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (i * 10) % 256, dtype=np.uint8))
    writer.release()
    return path


# The longest a fake camera's read() or open() hangs; every test releases it sooner, in its `finally`.
HANG_S = 60


def drain(source, limit=1000, within=60.0):
    """Every frame of a finite source until it ends; fails if it has not ended within `within` seconds."""
    frames, deadline = [], time.monotonic() + within
    while not source.ended and len(frames) < limit:
        assert time.monotonic() < deadline, f"source not ended within {within}s: {len(frames)} frames, {source.stats()}"
        frame = source.get(5.0)
        if frame is not None:
            frames.append(frame)
    return frames


def first_frame(source, within=20.0):
    """The first frame the source delivers; fails if none comes within `within` seconds."""
    deadline = time.monotonic() + within
    while (remaining := deadline - time.monotonic()) > 0:
        frame = source.get(min(5.0, remaining))
        if frame is not None:
            return frame
    raise AssertionError(f"no frame within {within}s: {source.stats()}")


@pytest.mark.parametrize(
    ("uri", "kind"),
    [(0, "device"), ("2", "device"), ("/dev/video1", "device"),
     ("/dev/v4l/by-id/usb-Logitech_C920-video-index0", "device"), ("rtsp://cam/stream", "stream"),
     ("v4l2src ! videoconvert ! appsink", "gstreamer"), ("shots/*.jpg", "glob"), ("clip.mp4", "file")],
)  # fmt: skip
def test_source_kind_from_uri(uri, kind):
    """The URI alone decides how a source is opened."""
    assert kind == source_kind(uri)


def test_file_at_max_rate_delivers_every_frame(tmp_path):
    """file_rate=max hands over every frame in order, none dropped."""
    video = write_video(tmp_path / "v.mp4", frames=30)
    with OpenCVSource(SourceConfig(uri=str(video), file_rate="max")) as source:
        frames = drain(source)
        stats = source.stats()
    assert (list(range(30)), 0, "ended") == ([f.index for f in frames], stats.frames_dropped, stats.state)


@pytest.mark.parametrize("threads", [1, 2])
def test_decode_threads_reach_the_decoder(tmp_path, threads):
    """source.decode_threads is what FFmpeg's decoder is opened with, and it decodes every frame."""
    video = write_video(tmp_path / "v.mp4", frames=5)
    cap = open_capture(SourceConfig(uri=str(video), decode_threads=threads))
    decoded = 0
    while decoded < 100 and cap.read()[0]:  # bounded: the file has 5 frames
        decoded += 1
    assert (float(threads), 5) == (cap.get(cv2.CAP_PROP_N_THREADS), decoded)
    cap.release()


def test_slow_consumer_gets_freshest_frame_and_drops_are_counted(tmp_path):
    """At native rate a consumer that holds back finds only the newest frame; the rest count as dropped."""
    video = write_video(tmp_path / "v.mp4", frames=10, fps=100.0)
    with OpenCVSource(SourceConfig(uri=str(video), file_rate="native")) as source:
        deadline = time.monotonic() + 20
        while not source.ended and source.stats().frames_captured < 10:
            assert time.monotonic() < deadline, f"10 frames not captured within 20s: {source.stats()}"
            threading.Event().wait(0.05)  # the consumer is busy elsewhere; frames keep arriving
        frame = source.get(1.0)
        stats = source.stats()
    assert (9, 9) == (frame.index, stats.frames_dropped)


def test_looping_file_restarts_from_the_first_frame(tmp_path):
    """loop=true plays the file again after its last frame."""
    video = write_video(tmp_path / "v.mp4", frames=5)
    with OpenCVSource(SourceConfig(uri=str(video), file_rate="max", loop=True)) as source:
        frames = [source.get(5.0) for _ in range(12)]
    assert [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] == [f.index for f in frames]
    assert frames[0].image_bgr.mean() == pytest.approx(frames[5].image_bgr.mean(), abs=2)


def test_image_glob_is_a_finite_source(tmp_path):
    """A glob of images plays them in sorted order, skipping unreadable files."""
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((10, 10, 3), i * 50, dtype=np.uint8))
    (tmp_path / "3.png").write_text("not an image")
    with OpenCVSource(SourceConfig(uri=str(tmp_path / "*.png"), file_rate="max")) as source:
        means = [round(float(f.image_bgr.mean())) for f in drain(source)]
    assert [0, 50, 100] == means


class TrackedCapture:
    """A real capture that records whether it was released."""

    def __init__(self, cap):
        self.cap, self.released = cap, False

    def __getattr__(self, name):
        return getattr(self.cap, name)

    def release(self):
        self.released = True
        self.cap.release()


def test_every_capture_of_a_looping_glob_is_released(tmp_path):
    """A looping image glob reopens its sequence on each pass; after close() none of those captures is left open."""
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((10, 10, 3), i * 50, dtype=np.uint8))
    opened = []

    def opener(config):
        opened.append(TrackedCapture(open_capture(config)))
        return opened[-1]

    with OpenCVSource(SourceConfig(uri=str(tmp_path / "*.png"), file_rate="max", loop=True), opener=opener) as source:
        means = [round(float(source.get(5.0).image_bgr.mean())) for _ in range(5)]
    assert ([0, 50, 0, 50, 0], [True] * len(opened)) == (means, [c.released for c in opened])


def test_missing_file_is_refused_at_start(tmp_path):
    """A video file that does not exist is a ConfigError, not an endless reopen loop."""
    with pytest.raises(ConfigError, match="video file .*missing.mp4' does not exist"):
        check_source(SourceConfig(uri=str(tmp_path / "missing.mp4")))


def test_file_that_is_not_a_video_is_refused_at_start(tmp_path):
    """A file OpenCV cannot decode is a ConfigError at start-up, not an endless reopen loop."""
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    with pytest.raises(ConfigError, match="video file .*notes.mp4' gives no frame OpenCV can decode"):
        check_source(SourceConfig(uri=str(fake)))


def test_glob_of_unreadable_images_is_refused_at_start(tmp_path):
    """A glob whose every match is unreadable is a ConfigError at start-up."""
    (tmp_path / "a.png").write_text("not an image")
    with pytest.raises(ConfigError, match="none of the images matching .* is readable"):
        check_source(SourceConfig(uri=str(tmp_path / "*.png")))


def test_existing_file_with_glob_characters_is_a_file(tmp_path):
    """clip[1].mp4 that exists is played as a file, not searched as a pattern."""
    video = write_video(tmp_path / "clip[1].mp4", frames=3)
    check_source(SourceConfig(uri=str(video)))
    assert ("file", "glob") == (source_kind(str(video)), source_kind(str(tmp_path / "clip[2].mp4")))


@pytest.mark.parametrize(
    ("image", "expected_shape"),
    [(np.zeros((4, 6), np.uint8), (4, 6, 3)), (np.zeros((4, 6, 1), np.uint8), (4, 6, 3)),
     (np.zeros((4, 6, 4), np.uint8), (4, 6, 3)), (np.zeros((4, 6, 3), np.uint8), (4, 6, 3)),
     (np.zeros((4, 6, 3), np.uint16), None), (None, None)],
)  # fmt: skip
def test_frames_become_8_bit_bgr_or_are_refused(image, expected_shape):
    """Grey and BGRA frames are converted to BGR once, at the source; other formats are refused."""
    converted = frame_as_bgr(image)
    assert expected_shape == (None if converted is None else converted.shape)


def test_grey_camera_frames_reach_the_loop_as_bgr():
    """A camera (or GStreamer pipeline) giving GRAY8 frames delivers 3-channel BGR frames."""

    class GreyCapture(BlockingCapture):
        def read(self):
            ok, image = super().read()
            return ok, None if image is None else image[:, :, 0]

    release = threading.Event()
    source = OpenCVSource(SourceConfig(uri=0), opener=lambda config: GreyCapture(2, release))
    try:
        frame = first_frame(source)
    finally:
        release.set()
        source.close()
    assert (4, 4, 3) == frame.image_bgr.shape


def test_slow_file_at_native_rate_is_not_a_stall(tmp_path):
    """Images played at 2 fps with a 0.2 s stall timeout: waiting for the next frame time is not a stall."""
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8, 3), 100 * i, np.uint8))
    config = SourceConfig(uri=str(tmp_path / "*.png"), fps=2.0, stall_timeout_s=0.2, reopen_backoff_s=0.01)
    with OpenCVSource(config) as source:
        frames = []
        for _ in range(4):  # bounded: a source reopened on every frame would never end
            frame = source.get(2.0)
            if frame is not None:
                frames.append(frame)
            if source.ended:
                break
        stats = source.stats()
    assert ([0, 1], 0) == ([f.index for f in frames], stats.stalls)


def test_opener_that_raises_is_retried_not_fatal():
    """An OpenCV error while opening is logged and retried with backoff; the source keeps going."""
    attempts = []
    opened = threading.Event()
    release = threading.Event()

    def opener(config):
        attempts.append(1)
        if len(attempts) < 3:
            raise cv2.error("backend refused")
        opened.set()
        return BlockingCapture(1, release)

    source = OpenCVSource(SourceConfig(uri=0, reopen_backoff_s=0.01, reopen_backoff_max_s=0.02), opener=opener)
    try:
        first_frame(source)
        stats = source.stats()
    finally:
        release.set()
        source.close()
    assert (3, True, 2) == (len(attempts), opened.is_set(), stats.stalls)


class BlockingCapture:
    """Delivers `frames` distinct frames, then blocks in read() until released (an unplugged camera)."""

    def __init__(self, frames, release_event, repeat_last=False):
        self.frames = frames
        self.release_event = release_event
        self.repeat_last = repeat_last
        self.count = 0
        self.released = threading.Event()

    def isOpened(self):  # noqa: N802
        return True

    def read(self):
        if self.count >= self.frames:
            if self.repeat_last:
                return True, np.full((4, 4, 3), self.frames - 1, dtype=np.uint8)
            self.release_event.wait(HANG_S)
            return False, None
        self.count += 1
        return True, np.full((4, 4, 3), self.count % 256, dtype=np.uint8)

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return True

    def release(self):
        self.released.set()


@pytest.mark.parametrize("repeat_last", [False, True], ids=["read-blocks", "same-frame-forever"])
def test_stalled_camera_is_detected_and_reopened(repeat_last):
    """A camera whose read() hangs, or repeats one frame, is reopened and frames flow again."""
    release = threading.Event()
    opened = []

    def opener(config):
        opened.append(BlockingCapture(3, release, repeat_last))
        return opened[-1]

    config = SourceConfig(uri=0, stall_timeout_s=0.3, reopen_backoff_s=0.05, reopen_backoff_max_s=0.1)
    source = OpenCVSource(config, opener=opener)
    try:
        deadline = time.monotonic() + 20
        while source.stats().stalls == 0 and time.monotonic() < deadline:
            source.get(0.5)
        captured_at_stall = source.stats().frames_captured
        # An abandoned reader can no longer deliver, so any new frame comes from the reopened capture.
        while source.stats().frames_captured <= captured_at_stall and time.monotonic() < deadline:
            source.get(0.5)
        stats = source.stats()
    finally:
        release.set()
        source.close()
    assert (True, True, True) == (stats.stalls >= 1, stats.frames_captured > captured_at_stall, len(opened) >= 2), (
        f"{stats}; frames captured at the first stall: {captured_at_stall}; captures opened: {len(opened)}"
    )


class FrozenCapture(BlockingCapture):
    """Hands back one and the same image on every read, whenever it is opened (a covered or frozen camera)."""

    def __init__(self, fail_on_read=None):
        super().__init__(0, threading.Event())
        self.fail_on_read = fail_on_read

    def read(self):
        self.count += 1
        if self.count == self.fail_on_read:
            raise cv2.error("VIDIOC_DQBUF: No such device")
        return True, np.full((4, 4, 3), 7, dtype=np.uint8)


def test_camera_frozen_on_one_image_backs_off_across_reopens(caplog):
    """A camera repeating one image after every reopen is reopened with a growing delay, not every stall timeout."""
    caplog.set_level(logging.DEBUG, logger="edge_classifier.capture.source")  # repeats past the first go to DEBUG
    config = SourceConfig(uri=0, stall_timeout_s=0.2, reopen_backoff_s=0.1, reopen_backoff_max_s=0.4)
    source = OpenCVSource(config, opener=lambda c: FrozenCapture())
    try:
        deadline = time.monotonic() + 20
        while source.stats().stalls < 4 and time.monotonic() < deadline:
            source.get(0.5)
    finally:
        source.close()
    delays = [r.getMessage().rsplit(" ", 1)[1] for r in caplog.records if "produced no new frame" in r.getMessage()]
    assert ["0.1s", "0.2s", "0.4s", "0.4s"] == delays[:4]


def test_network_stream_of_a_still_scene_is_not_a_stall():
    """Identical frames from a network stream (a still scene) keep flowing without a reopen."""
    config = SourceConfig(uri="rtsp://cam/still", stall_timeout_s=0.1)
    source = OpenCVSource(config, opener=lambda c: FrozenCapture())
    try:
        start = time.monotonic()
        while time.monotonic() - start < 1.0:  # ten stall timeouts of identical frames
            source.get(0.5)
        stats = source.stats()
    finally:
        source.close()
    assert (0, True) == (stats.stalls, stats.frames_captured > 10), stats


def test_opencv_error_while_reading_reopens_the_camera(caplog):
    """cv2.error from read() (a camera unplugged mid-frame) is logged and counted, and the camera reopened."""
    opened = []

    def opener(config):
        opened.append(FrozenCapture(fail_on_read=2 if not opened else None))
        return opened[-1]

    config = SourceConfig(uri=0, reopen_backoff_s=0.01, reopen_backoff_max_s=0.02)
    source = OpenCVSource(config, opener=opener)
    try:
        deadline = time.monotonic() + 20
        while len(opened) < 2 and time.monotonic() < deadline:
            source.get(0.5)
        stats = source.stats()
    finally:
        source.close()
    failures = [r.getMessage() for r in caplog.records if "failed while reading" in r.getMessage()]
    assert (2, 1, 1) == (len(opened), stats.stalls, len(failures))


def test_camera_that_cannot_be_opened_is_retried_with_backoff():
    """A device that fails to open is retried with growing delays; the source never raises."""
    attempts = []
    done = threading.Event()

    class Closed:
        def isOpened(self):  # noqa: N802
            attempts.append(1)
            if len(attempts) >= 3:
                done.set()
            return False

        def release(self):
            pass

    config = SourceConfig(uri=0, reopen_backoff_s=0.01, reopen_backoff_max_s=0.02)
    source = OpenCVSource(config, opener=lambda c: Closed())
    try:
        assert done.wait(10), f"3 open attempts awaited for 10s, {len(attempts)} made"
        stats = source.stats()
    finally:
        source.close()
    assert (True, "reopening") == (stats.reopens >= 2, stats.state), stats


def test_open_that_never_returns_is_abandoned_and_retried():
    """An open() that blocks (a hung driver) is given up after open_timeout_s; a new open delivers frames."""
    release = threading.Event()
    opened = []

    def opener(config):
        capture = BlockingCapture(10**9, release)  # frames flow for as long as the test runs
        opened.append(capture)
        if len(opened) == 1:
            release.wait(HANG_S)  # the first open hangs until the test ends
        return capture

    config = SourceConfig(uri=0, open_timeout_s=1.0, reopen_backoff_s=0.01, reopen_backoff_max_s=0.02)
    source = OpenCVSource(config, opener=opener)
    try:
        frame, deadline = None, time.monotonic() + 20
        while frame is None and time.monotonic() < deadline:
            frame = source.get(0.5)
        stats = source.stats()
    finally:
        release.set()
        source.close()
    # The abandoned reader releases what its open() finally returned.
    assert (True, 1, 2, "running", True) == (
        frame is not None, stats.stalls, len(opened), stats.state, opened[0].released.wait(5)), stats  # fmt: skip


def test_opens_that_all_block_stop_at_the_live_reader_cap():
    """When every open() blocks, at most MAX_LIVE_READERS are tried at once, however long it lasts."""
    from edge_classifier.capture.source import MAX_LIVE_READERS

    release = threading.Event()
    calls = []

    def opener(config):
        calls.append(1)
        release.wait(HANG_S)
        return BlockingCapture(1, release)

    config = SourceConfig(uri=0, open_timeout_s=0.1, reopen_backoff_s=0.01, reopen_backoff_max_s=0.02)
    source = OpenCVSource(config, opener=opener)
    try:
        deadline = time.monotonic() + 20
        while len(calls) < MAX_LIVE_READERS and time.monotonic() < deadline:
            source.get(0.1)
        # Ten more open timeouts: none of them may start another open.
        for _ in range(10):
            source.get(0.1)
        stats = source.stats()
    finally:
        release.set()
        source.close()
    assert (MAX_LIVE_READERS, MAX_LIVE_READERS - 1) == (len(calls), stats.stalls)


def test_looping_glob_whose_files_vanish_is_reopened_not_spun(tmp_path):
    """A looping image glob whose files all disappear fails over to reopening instead of looping on nothing."""
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((10, 10, 3), i * 50, dtype=np.uint8))
    # A long backoff holds the source in `stalled` (a running source that failed) while the test looks.
    config = SourceConfig(
        uri=str(tmp_path / "*.png"), file_rate="max", loop=True, stall_timeout_s=600, reopen_backoff_s=30
    )
    with OpenCVSource(config) as source:
        first = [source.get(5.0) for _ in range(2)]
        for path in tmp_path.glob("*.png"):
            path.unlink()
        deadline = time.monotonic() + 20
        while source.stats().stalls == 0 and time.monotonic() < deadline:
            source.get(0.2)
        stats = source.stats()
    assert (True, 1, "stalled") == (None not in first, stats.stalls, stats.state), (
        f"{stats}; first frames: {[None if f is None else f.index for f in first]}"
    )


class HangingMjpegCamera:
    """An HTTP camera on loopback: each connection gets a few MJPEG frames, then the camera hangs, connection open."""

    def __init__(self, frames):
        self.jpegs = [
            cv2.imencode(".jpg", np.full((120, 160, 3), 40 * i, np.uint8))[1].tobytes() for i in range(frames)
        ]
        self.connections = 0
        self.reconnected = threading.Event()
        self.shutdown = threading.Event()
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                camera.connections += 1
                if camera.connections >= 2:
                    camera.reconnected.set()
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for jpeg in camera.jpegs:
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
                camera.shutdown.wait(30)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown.set()
        self.server.shutdown()
        self.server.server_close()


def test_network_stream_that_hangs_is_detected_and_reopened():
    """A real MJPEG-over-HTTP stream whose server stops sending is reconnected, and the hung reader exits by itself."""
    camera = HangingMjpegCamera(frames=4)
    source = OpenCVSource(SourceConfig(uri=camera.url, stall_timeout_s=1.0, reopen_backoff_s=0.1))
    try:
        first = first_frame(source, within=30.0)
        first_reader = next(t for t in threading.enumerate() if t.name == "capture-1")
        reconnected = camera.reconnected.wait(30)
        stats = source.stats()
        # The server still holds the first connection open: only FFmpeg's read timeout frees its reader.
        first_reader.join(15)
    finally:
        source.close()
        camera.close()
    assert ((120, 160, 3), True, True, False) == (
        first.image_bgr.shape, reconnected, stats.stalls >= 1, first_reader.is_alive()
    ), f"{stats}; connections: {camera.connections}"  # fmt: skip
