"""The catalogue's photos, kept so that an index can be rebuilt for another model: `<state_dir>/catalogue/photos/`.

Model-independent and shared by every model's index: each photo downscaled (longer side PHOTO_PX, JPEG quality
PHOTO_QUALITY: the model sees a 224-pixel crop) and named by its item id and its own hash, so the indexes of several
models refer to one copy. A file is written under a temporary name, flushed and renamed in (a reader never sees
half a photo); photos no index refers to are removed after an index is saved, once older than LEFTOVER_AGE_S (not
ones a build in another process is writing now).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.errors import InputError

logger = logging.getLogger(__name__)

PHOTOS_DIR = "photos"
PHOTO_PX = 640  # the longer side
PHOTO_QUALITY = 90
LEFTOVER_AGE_S = 3600.0
NAME = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{32}\.jpg$")


def photos_dir(state_dir: Path) -> Path:
    return state_dir / "catalogue" / PHOTOS_DIR


def shrunk_jpeg(frame_bgr: npt.NDArray[Any], size: int, quality: int) -> bytes:
    """The photo as a JPEG with its longer side SIZE pixels (never enlarged): a stored photo, or a thumbnail."""
    height, width = frame_bgr.shape[:2]
    scale = min(1.0, size / max(height, width))
    small: npt.NDArray[Any] = frame_bgr
    if scale < 1.0:
        small = cv2.resize(frame_bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)  # fmt: skip
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InputError("a photo could not be encoded as JPEG")
    return bytes(encoded.tobytes())


def photo_name(item_id: str, data: bytes) -> str:
    """The stored photo's file name: a hash of the item id (any characters) and one of the JPEG."""
    return f"{hashlib.sha256(item_id.encode()).hexdigest()[:16]}-{hashlib.sha256(data).hexdigest()[:32]}.jpg"


def store_photo(state_dir: Path, item_id: str, frame_bgr: npt.NDArray[Any]) -> str:
    """Keep FRAME (downscaled) for ITEM_ID; its file name. InputError (nothing half-written) when the disk refuses."""
    data = shrunk_jpeg(frame_bgr, PHOTO_PX, PHOTO_QUALITY)
    name = photo_name(item_id, data)
    folder = photos_dir(state_dir)
    path = folder / name
    temporary = folder / f".{name}.{uuid.uuid4().hex[:12]}"
    try:
        if path.is_file():
            os.utime(path)  # fresh again: not removed as a leftover while the index that refers to it is written
            return name
        folder.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        reason = exc.strerror or str(exc)
        raise InputError(f"cannot store a photo under {folder}: {reason}; the index is unchanged") from None
    return name


def read_photo(state_dir: Path, name: str) -> npt.NDArray[np.uint8]:
    """A stored photo, decoded; InputError naming it when it is missing or does not decode."""
    path = photos_dir(state_dir) / name
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"stored photo {path} cannot be read ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"stored photo {path} does not decode as an image")
    return np.asarray(image, dtype=np.uint8)


def check_names(names: Any, where: Path) -> tuple[str, ...]:
    """An index entry's `photos`, checked (ValueError): a list of stored photo names."""
    if not isinstance(names, list) or not all(isinstance(name, str) and NAME.match(name) for name in names):
        raise ValueError(f"{where}: photos: expected a list of stored photo names")
    return tuple(names)


def referenced(state_dir: Path) -> set[str]:
    """Every photo name an index in the state directory refers to (each model's current version)."""
    names: set[str] = set()
    root = state_dir / "catalogue"
    for entry in root.iterdir() if root.is_dir() else []:
        if entry.name.startswith(".") or entry.name == PHOTOS_DIR:
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            document = json.loads((entry / "index.json").read_text(encoding="utf-8"))
            names.update(name for item in document["items"] for name in item.get("photos", []))
    return names


def remove_unreferenced(state_dir: Path) -> int:
    """Remove the stored photos (and temporary files) no index refers to, older than LEFTOVER_AGE_S; how many."""
    folder = photos_dir(state_dir)
    if not folder.is_dir():
        return 0
    keep, now, removed = referenced(state_dir), time.time(), 0
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            if path.name not in keep and now - path.stat().st_mtime > LEFTOVER_AGE_S:
                path.unlink()
                removed += 1
    if removed:
        logger.info("catalogue: %d stored photos no index refers to removed", removed)
    return removed


def forget_photos(state_dir: Path, names: list[str]) -> None:
    """Remove those of NAMES no index refers to: photos stored for a build or an add that then failed."""
    keep = referenced(state_dir)
    for name in set(names) - keep:
        with contextlib.suppress(OSError):
            (photos_dir(state_dir) / name).unlink()
