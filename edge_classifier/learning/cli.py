"""`edge-classifier teach LABEL PHOTO...`, `forget LABEL`, `list-taught`: classes taught on the device.

`teach` with a new label adds a class; with a label the model already has (any letter case), it refines that
class: the photos become a second prototype for it, so frames like them come out as that trained label even where
the trained head would say otherwise. Either way the photos must all be readable images: one that is not is named
and nothing is stored. A running daemon reads the file at start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.config.settings import Config, state_directory
from edge_classifier.errors import InputError, ModelError
from edge_classifier.learning.store import load_taught, save_taught, taught_path
from edge_classifier.learning.taught import TaughtClasses, check_label, spelled_as_known

COMMANDS = ("teach", "forget", "list-taught")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def add_commands(sub: Any, config_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the three commands on the main parser's sub-parsers, each with the usual -c/--set/--model."""
    teach = sub.add_parser("teach", help="teach a new class (or refine a trained one) from a few photos")
    config_args(teach)
    teach.add_argument("label", help="the class's name; a trained class's name refines that class")
    teach.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="image files, or folders of them")
    forget = sub.add_parser("forget", help="forget a taught class")
    config_args(forget)
    forget.add_argument("label")
    listing = sub.add_parser("list-taught", help="list the classes taught for the configured model")
    config_args(listing)
    listing.add_argument("--json", action="store_true", help="one JSON document")


def expand_photos(paths: list[Path]) -> list[Path]:
    """Files as given, folders as their image files in name order; InputError for a missing path or empty folder."""
    photos: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise InputError(f"no usable photo: folder {path} holds no image file")
            photos.extend(found)
        elif path.is_file():
            photos.append(path)
        else:
            raise InputError(f"photo {path} does not exist")
    return photos


def read_photo(path: Path) -> npt.NDArray[np.uint8]:
    """The photo as a BGR frame; InputError when it is unreadable, or when the decoder complained (a truncated or
    damaged JPEG decodes to a partly grey picture, which must not become part of a class)."""
    from edge_classifier.model.classifier import read_image_bgr

    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            frame = read_image_bgr(path)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        complaint = captured.read().decode(errors="replace").strip()
    if complaint:
        raise InputError(f"image {path} is corrupt ({complaint.splitlines()[0]})")
    return frame


def run_command(args: argparse.Namespace, config: Config) -> int:
    """Carry out teach, forget or list-taught; errors are EdgeClassifierError (one line, from the main CLI)."""
    from edge_classifier.model.loading import open_classifier

    if args.command == "teach":
        label = check_label(args.label)  # an empty label fails before the model is loaded
        photos = expand_photos(args.photos)
    classifier, model = open_classifier(config.model)
    with classifier:
        spec = classifier.embedding_spec
        if spec is None:
            raise ModelError(
                f"model {model.name} {model.version} gives no embedding output: teaching needs one "
                "(a manifest with `outputs.embedding`, as the default model has)"
            )
        path = taught_path(state_directory(config), model.sha256)
        taught = load_taught(path, model.sha256, spec.shape[-1])
        trained = {name.lower(): name for name in classifier.labels}
        if args.command == "list-taught":
            return _list(taught, trained, f"{model.name} {model.version}", path, args.json)
        if args.command == "forget":
            label = spelled_as_known(args.label.strip(), classifier.labels, taught.labels)
            save_taught(path, taught.forget(label))
            print(f"forgot {label!r} ({len(taught) - 1} taught classes left for {model.name} {model.version})")
            return 0
        label = spelled_as_known(label, classifier.labels, taught.labels)
        embeddings = []
        for photo in photos:  # one photo at a time; any unusable one stops it before anything is stored
            embedding = classifier.classify(read_photo(photo)).embedding
            assert embedding is not None  # the model has an embedding output (checked above)
            embeddings.append(embedding)
    updated = taught.teach(label, embeddings)
    save_taught(path, updated)
    entry = updated.classes[label]
    kind = "refined trained class" if label.lower() in trained else "taught new class"
    model_name = f"{model.name} {model.version}"
    print(f"{kind} {label!r} from {len(photos)} photos ({entry.photos} in all) for {model_name}: {path}")
    return 0


def _list(taught: TaughtClasses, trained: dict[str, str], model: str, path: Path, as_json: bool) -> int:
    rows = [
        {"label": label, "photos": entry.photos, "refines": label.lower() in trained}
        for label, entry in sorted(taught.classes.items())
    ]
    if as_json:
        print(json.dumps({"model": model, "file": str(path), "classes": rows}))
    elif not rows:
        print(f"no taught classes for {model}")
    for row in rows if not as_json else []:
        kind = "refines the trained class" if row["refines"] else "new class"
        print(f"{row['label']}: {row['photos']} photos, {kind}")
    return 0
