"""Opening sources with OpenCV: what kind a URI names, and the capture each kind opens."""

from __future__ import annotations

import glob
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.config.settings import SourceConfig
from edge_classifier.errors import ConfigError

logger = logging.getLogger(__name__)


class Capture(Protocol):
    """The subset of cv2.VideoCapture the reader uses (the I/O seam for tests)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def read(self) -> tuple[bool, Any]: ...
    def get(self, prop: int) -> float: ...
    def set(self, prop: int, value: float) -> bool: ...
    def release(self) -> None: ...


# What a folder given as the source plays: its image files, as a sorted glob would (lower-cased suffixes).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def source_kind(uri: int | str) -> str:
    """device, stream, gstreamer, folder, glob or file."""
    if isinstance(uri, int) or uri.isdigit() or uri.startswith("/dev/"):
        return "device"
    if "!" in uri:
        return "gstreamer"
    if "://" in uri:
        return "stream"
    if Path(uri).is_dir():
        return "folder"
    if any(c in uri for c in "*?[") and not Path(uri).is_file():
        return "glob"
    return "file"


def image_files(uri: int | str) -> list[str]:
    """The images a glob or folder source plays, sorted: a glob's matches, or a folder's image files."""
    if source_kind(uri) == "folder":
        return sorted(
            str(path)
            for path in Path(str(uri)).iterdir()
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
        )
    # Regular files only: reading a FIFO blocks until a writer comes, and a directory is no image.
    return sorted(path for path in glob.glob(str(uri)) if os.path.isfile(path))


def missing_camera(uri: int | str) -> str | None:
    """Why a local camera source certainly has no camera now, and what to give instead; else None."""
    if source_kind(uri) != "device":
        return None
    text = str(uri)
    if text.isdigit():
        node = Path(f"/dev/video{int(text)}")  # what OpenCV's V4L2 backend opens for an index
    elif text.startswith("/dev/"):
        node = Path(text)
    else:
        return None  # a negative index: "any camera", no one node to look for
    if node.exists():
        return None
    instead = "to classify a file, folder or stream instead: --source FILE|FOLDER|URL|'GLOB'"
    return f"no camera: {node} does not exist ({instead})"


class NoCameraError(OSError):
    """The opener found no camera at all at a local device (its node does not exist): nothing to retry soon."""


class ImageGlobCapture:
    """A sorted glob of image files (or a folder's images) behaving like a VideoCapture."""

    def __init__(self, files: list[str]):
        self._files = list(files)
        self._next = 0
        # Skipped files, for the reader to log and count: logging here would repeat on every pass of a loop.
        self.unreadable: list[str] = []

    def isOpened(self) -> bool:  # noqa: N802
        return bool(self._files)

    def read(self) -> tuple[bool, Any]:
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is not None:
                return True, image
            self.unreadable.append(path)
        return False, None

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self._files = []


def frame_as_bgr(image: Any) -> npt.NDArray[Any] | None:
    """An 8-bit BGR frame from what a capture returned: grey and BGRA are converted, anything else is None."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        return None
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        # A GStreamer pipeline ending in GRAY8, or a monochrome camera.
        bgr: npt.NDArray[Any] = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return bgr
    if image.ndim == 3 and image.shape[2] == 4:
        without_alpha: npt.NDArray[Any] = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return without_alpha
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    return None


def open_capture(config: SourceConfig) -> Capture:
    """The real opener: cv2.VideoCapture with the requested size and rate (where the device honours them)."""
    kind = source_kind(config.uri)
    if kind in ("glob", "folder"):
        return ImageGlobCapture(image_files(config.uri))
    if kind == "device":
        absent = missing_camera(config.uri)
        if absent:
            raise NoCameraError(absent)  # before OpenCV, which would print its own warnings on every attempt
        uri = config.uri
        target: int | str = int(uri) if isinstance(uri, int) or uri.isdigit() else uri
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2) if hasattr(cv2, "CAP_V4L2") else cv2.VideoCapture(target)
    elif kind == "gstreamer":
        cap = cv2.VideoCapture(str(config.uri), cv2.CAP_GSTREAMER)
    else:
        # Decoder threads can only be chosen at open; they compete with inference for the same cores.
        params = [cv2.CAP_PROP_N_THREADS, config.decode_threads] if config.decode_threads else []
        if kind == "stream":
            # FFmpeg's own timeouts (30 s by default) bound how long an abandoned reader stays
            # blocked in open() or read() after the stall detector has given up on it.
            open_ms, read_ms = round(1000 * config.open_timeout_s), round(1000 * config.stall_timeout_s)
            params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
        cap = cv2.VideoCapture(str(config.uri), cv2.CAP_ANY, params)
    if kind in ("device", "stream"):
        # Keep OpenCV's internal queue short: our reader thread already holds the freshest frame.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    for prop, value in (
        (cv2.CAP_PROP_FRAME_WIDTH, config.width),
        (cv2.CAP_PROP_FRAME_HEIGHT, config.height),
        (cv2.CAP_PROP_FPS, config.fps),
    ):
        if value is not None and kind == "device":
            cap.set(prop, float(value))
    return cap


def not_a_file(path: str) -> str | None:
    """What a path that exists but is no regular file is ("a FIFO"), judged from stat alone; else None.

    Opening a FIFO blocks until a writer comes, so nothing here opens it.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, what in (
        (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device node"),
        (stat.S_ISBLK, "a block device node"), (stat.S_ISDIR, "a directory"),
    ):  # fmt: skip
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_source(config: SourceConfig, opener: Callable[[SourceConfig], Capture] = open_capture) -> None:
    """Refuse at start-up a file, folder or glob that gives no frame (a camera, unlike them, may be plugged in later).

    A ConfigError (exit 78): restarting the service will not make the file readable.
    """
    kind = source_kind(config.uri)
    what = not_a_file(str(config.uri)) if kind == "file" else None
    if what:
        raise ConfigError(f"source.uri: {config.uri!r} is {what}, not a video file")
    if kind == "file" and not Path(str(config.uri)).is_file():
        raise ConfigError(f"source.uri: video file {config.uri!r} does not exist")
    if kind == "glob" and not image_files(config.uri):
        raise ConfigError(f"source.uri: no image matches {config.uri!r}")
    if kind == "folder" and not image_files(config.uri):
        suffixes = ", ".join(s.lstrip(".") for s in IMAGE_SUFFIXES)
        raise ConfigError(f"source.uri: folder {config.uri!r} holds no image file ({suffixes})")
    if kind in ("file", "glob", "folder"):
        cap = opener(config)
        try:
            ok, image = cap.read() if cap.isOpened() else (False, None)
            for path in getattr(cap, "unreadable", []):
                logger.warning("skipping unreadable image %s", path)
        finally:
            cap.release()
        if not ok or frame_as_bgr(image) is None:
            if kind == "glob":
                raise ConfigError(f"source.uri: none of the images matching {config.uri!r} is readable")
            if kind == "folder":
                raise ConfigError(f"source.uri: none of the images in folder {config.uri!r} is readable")
            raise ConfigError(f"source.uri: video file {config.uri!r} gives no frame OpenCV can decode")
