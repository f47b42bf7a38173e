"""Item folders: one sub-folder per catalogue item with its photos and an `item.json` or `item.yaml`, validated."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge_classifier.config.yaml_reading import parse_yaml
from edge_classifier.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ITEM_FILES = ("item.json", "item.yaml", "item.yml")
MAX_ID_LENGTH = 128
_KEYS = ("id", "name", "price", "url", "class")


@dataclass(frozen=True)
class ItemInfo:
    """What the shop says about one item: its id (unique in the catalogue), name and optional price, URL, class."""

    id: str
    name: str
    price: float | None = None
    url: str | None = None
    item_class: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The item as in item.json, optional fields left out when not given."""
        document: dict[str, Any] = {"id": self.id, "name": self.name}
        optional = {"price": self.price, "url": self.url, "class": self.item_class}
        return document | {key: value for key, value in optional.items() if value is not None}


@dataclass(frozen=True)
class ItemFolder:
    """An item as found on disk: its description and its photos (name order)."""

    info: ItemInfo
    folder: Path
    photos: tuple[Path, ...]


def is_item_folder(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ITEM_FILES)


def item_info_from(document: Any, where: Path) -> ItemInfo:
    """Validate one item description; InputError naming the file and the field."""
    if not isinstance(document, dict):
        raise InputError(f"{where}: expected a mapping with at least `id` and `name`")
    for key in document:
        if key not in _KEYS:
            raise InputError(f"{where}: {key}: unknown field (expected {', '.join(_KEYS)})")
    item_id, name = document.get("id"), document.get("name")
    if not isinstance(item_id, str) or not item_id.strip():
        raise InputError(f"{where}: id: required, a non-empty string (got {item_id!r})")
    if len(item_id) > MAX_ID_LENGTH or item_id != item_id.strip() or any(ord(c) < 32 for c in item_id):
        raise InputError(f"{where}: id: {item_id!r} must be at most {MAX_ID_LENGTH} characters without control "
                         "characters or surrounding spaces")  # fmt: skip
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: name: required, a non-empty string (got {name!r})")
    price = document.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price)
                              or price < 0):  # fmt: skip
        raise InputError(f"{where}: price: expected a number of at least 0, got {price!r}")
    for key in ("url", "class"):
        value = document.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}: {key}: expected a string, got {value!r}")
    return ItemInfo(item_id, name, None if price is None else float(price), document.get("url"), document.get("class"))


def _read_description(folder: Path) -> tuple[Any, Path]:
    found = [folder / name for name in ITEM_FILES if (folder / name).is_file()]
    if not found:
        raise InputError(f"item folder {folder}: no item.json or item.yaml")
    if len(found) > 1:
        raise InputError(f"item folder {folder}: both {found[0].name} and {found[1].name}; keep one")
    path = found[0]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    if path.suffix == ".json":
        try:
            return json.loads(text), path
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON (line {exc.lineno})") from None
    try:
        return parse_yaml(text, str(path)), path
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"{path}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None


def read_item_folder(folder: Path) -> ItemFolder:
    """One item folder, validated; InputError for a bad description or a folder without photos."""
    document, path = _read_description(folder)
    info = item_info_from(document, path)
    photos = tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES))
    if not photos:
        raise InputError(f"item folder {folder}: no usable photo (expected {', '.join(PHOTO_SUFFIXES)} files)")
    return ItemFolder(info, folder, photos)


def find_item_folders(paths: list[Path]) -> list[ItemFolder]:
    """Each path an item folder, or a folder of item folders; InputError for a missing path or a duplicate id."""
    folders: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise InputError(f"{path}: not a folder (expected an item folder or a folder of item folders)")
        if is_item_folder(path):
            folders.append(path)
            continue
        children = sorted(child for child in path.iterdir() if child.is_dir() and not child.name.startswith("."))
        if not children:
            raise InputError(f"{path}: neither an item folder (item.json or item.yaml) nor a folder of item folders")
        folders.extend(children)
    items = [read_item_folder(folder) for folder in folders]
    seen: dict[str, Path] = {}
    for item in items:
        if item.info.id in seen:
            raise InputError(f"duplicate id {item.info.id!r}: in {seen[item.info.id]} and {item.folder}")
        seen[item.info.id] = item.folder
    return items
