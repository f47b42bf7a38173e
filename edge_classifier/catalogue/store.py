"""The index on disk: `<state_dir>/catalogue/<model sha256>/`, replaced atomically, refused for another model.

`<sha256>` is a symbolic link to a directory `.<sha256>.<token>` holding `index.json` (model, dims, items),
`vectors.npy` (float32, one row per photo) and `thumbs/<n>.jpg`. A new index is written into a new such directory
beside the old one, flushed to disk, and the link is then replaced in one rename: a reader sees the old index or
the new one, and a failure at any step (a full disk, a bad photo found earlier) leaves the old one as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge_classifier.catalogue.index import CatalogueIndex, CatalogueItem
from edge_classifier.catalogue.items import item_info_from
from edge_classifier.catalogue.photos import PHOTOS_DIR, check_names, remove_unreferenced
from edge_classifier.errors import InputError, ModelError, first_line
from edge_classifier.model.identity import ModelInfo

logger = logging.getLogger(__name__)

SCHEMA = "edge-classifier/catalogue/v1"
INDEX_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
LEFTOVER_AGE_S = 3600.0


def catalogue_root(state_dir: Path) -> Path:
    return state_dir / "catalogue"


def index_path(state_dir: Path, model_sha256: str) -> Path:
    """Where the index for this model lives (a link to the current version's directory)."""
    return catalogue_root(state_dir) / model_sha256


def rebuild_hint(built: ModelInfo, serving: ModelInfo) -> str:
    return (
        f"the catalogue was built with model {built.name} {built.version} (sha256 {built.sha256[:12]}), this is "
        f"{serving.name} {serving.version} (sha256 {serving.sha256[:12]}): run `edge-classifier catalogue build`"
    )


def other_models(state_dir: Path, model: ModelInfo) -> list[ModelInfo]:
    """The models other catalogue indexes in the state directory were built with (not this one)."""
    root = catalogue_root(state_dir)
    found = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.name.startswith(".") or entry.name in (model.sha256, PHOTOS_DIR):
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            document = json.loads((entry / INDEX_FILE).read_text(encoding="utf-8"))
            found.append(ModelInfo(**document["model"]))
    return found


def load_index(state_dir: Path, model: ModelInfo, dims: int) -> CatalogueIndex | None:
    """The index built for MODEL, or None when there is none; ModelError for one of another model or embedding length,
    InputError for an unreadable one."""
    path = index_path(state_dir, model.sha256)
    if not (path / INDEX_FILE).is_file():
        return None
    try:
        document = json.loads((path / INDEX_FILE).read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document")
        built = ModelInfo(**document["model"])
        if built.sha256 != model.sha256:
            raise ModelError(rebuild_hint(built, model))
        if document["dims"] != dims:
            raise ModelError(f"the catalogue holds embeddings of {document['dims']} values, model {model.name} gives "
                             f"{dims}: run `edge-classifier catalogue build`")  # fmt: skip
        vectors = np.load(path / VECTORS_FILE, allow_pickle=False)
        return _from_document(document, vectors, path, model, dims)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError, InputError) as exc:
        reason = getattr(exc, "strerror", None) or first_line(exc)
        raise InputError(
            f"catalogue index {path} is unreadable ({reason}): run `edge-classifier catalogue build`"
        ) from None


def _from_document(document: dict[str, Any], vectors: Any, path: Path, model: ModelInfo, dims: int) -> CatalogueIndex:
    rows = [int(entry["rows"]) for entry in document["items"]]
    if vectors.dtype != np.float32 or vectors.shape != (sum(rows), dims):
        raise ValueError(
            f"{VECTORS_FILE} holds {vectors.dtype} {vectors.shape}, expected float32 ({sum(rows)}, {dims})"
        )
    items, start = [], 0
    for entry, count in zip(document["items"], rows, strict=True):
        description = {key: entry[key] for key in ("id", "name", "price", "url", "class") if key in entry}
        info = item_info_from(description, path / INDEX_FILE)
        photos = check_names(entry.get("photos", []), path / INDEX_FILE)
        if photos and len(photos) != count:
            raise ValueError(f"{INDEX_FILE}: item {info.id}: {len(photos)} stored photos for {count} vectors")
        items.append(CatalogueItem(info, vectors[start : start + count], path / entry["thumbnail"], photos))
        start += count
    return CatalogueIndex(model, dims, tuple(items))


def to_document(index: CatalogueIndex) -> dict[str, Any]:
    items = [
        item.info.as_dict()
        | {"rows": len(item.vectors), "thumbnail": f"thumbs/{n:06d}.jpg"}
        | ({"photos": list(item.photos)} if item.photos else {})
        for n, item in enumerate(index.items)
    ]
    return {
        "schema": SCHEMA,
        "model": {"name": index.model.name, "version": index.model.version, "sha256": index.model.sha256},
        "dims": index.dims,
        "photos": int(index.matrix.shape[0]),
        "updated": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "items": items,
    }


def _write_file(path: Path, data: bytes) -> None:
    """The one place index files are written (the seam a full-disk test replaces): written and flushed to disk."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_version(directory: Path, index: CatalogueIndex) -> None:
    """Every file of the index into DIRECTORY (new and empty)."""
    (directory / "thumbs").mkdir()
    document = to_document(index)
    for entry, item in zip(document["items"], index.items, strict=True):
        _write_file(directory / entry["thumbnail"], item.thumbnail_bytes())
    buffer = io.BytesIO()
    np.save(buffer, index.matrix, allow_pickle=False)
    _write_file(directory / VECTORS_FILE, buffer.getvalue())
    _write_file(directory / INDEX_FILE, json.dumps(document, indent=1).encode())
    _fsync_dir(directory / "thumbs")
    _fsync_dir(directory)


def _remove_leftovers(link: Path, keep: Path) -> None:
    """Versions left by a build that was killed half-way (older than LEFTOVER_AGE_S: not one being written now)."""
    now = time.time()
    for entry in link.parent.glob(f".{link.name}.*"):
        with contextlib.suppress(OSError):
            if entry != keep and now - entry.lstat().st_mtime > LEFTOVER_AGE_S:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def save_index(state_dir: Path, index: CatalogueIndex) -> Path:
    """Write INDEX as the catalogue for its model, atomically; InputError (the old index unchanged) on failure."""
    link = index_path(state_dir, index.model.sha256)
    token = uuid.uuid4().hex[:12]
    version = link.parent / f".{link.name}.{token}"
    temporary_link = link.parent / f".{link.name}.link-{token}"
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        version.mkdir()
        _write_version(version, index)
        os.symlink(version.name, temporary_link)
        old = link.resolve() if link.is_symlink() else None
        if link.exists() and not link.is_symlink():  # a plain directory (copied by hand): moved aside first
            os.rename(link, link.parent / f".{link.name}.moved-{token}")
            old = link.parent / f".{link.name}.moved-{token}"
        os.replace(temporary_link, link)
        _fsync_dir(link.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary_link.unlink()
        shutil.rmtree(version, ignore_errors=True)
        reason = exc.strerror or str(exc)
        raise InputError(
            f"cannot write the catalogue under {link.parent}: {reason}; the existing index is unchanged"
        ) from None
    if old is not None and old != version:
        shutil.rmtree(old, ignore_errors=True)
    _remove_leftovers(link, version)
    remove_unreferenced(state_dir)
    logger.info("catalogue: %d items, %d photos written to %s", len(index), index.matrix.shape[0], version)
    return link
