"""`edge-classifier catalogue build FOLDER | add FOLDER... | remove ID... | list`: the visual-search catalogue.

Every command works on the index of the configured model (its sha256); errors are EdgeClassifierError, printed as
one line by the main CLI: InputError (exit 1) for bad item folders, photos or ids and a disk that cannot take the
index, ModelError (exit 78) for a model without embeddings or a catalogue built with another model.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_classifier.catalogue.index import CatalogueIndex, embed_items, embedding_dims
from edge_classifier.catalogue.items import find_item_folders
from edge_classifier.catalogue.photos import forget_photos
from edge_classifier.catalogue.store import index_path, load_index, other_models, rebuild_hint, save_index
from edge_classifier.config.settings import Config, state_directory
from edge_classifier.errors import InputError, ModelError
from edge_classifier.model.identity import ModelInfo

logger = logging.getLogger(__name__)

COMMAND = "catalogue"


def add_commands(sub: Any, config_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `catalogue` and its four sub-commands, each with the usual -c/--set/--model."""
    catalogue = sub.add_parser(COMMAND, help="the visual-search catalogue: build, add, remove, list items")
    commands = catalogue.add_subparsers(
        dest="catalogue_command", metavar="{build,add,remove,list}", required=True, parser_class=type(catalogue)
    )
    build = commands.add_parser("build", help="replace the whole catalogue with the item folders in FOLDER")
    config_args(build)
    build.add_argument("folder", type=Path, metavar="FOLDER", help="a folder of item folders")
    add = commands.add_parser("add", help="add items (or replace the ones with the same id)")
    config_args(add)
    add.add_argument("folders", nargs="+", type=Path, metavar="FOLDER", help="item folders, or folders of them")
    remove = commands.add_parser("remove", help="remove items by id")
    config_args(remove)
    remove.add_argument("ids", nargs="+", metavar="ID")
    listing = commands.add_parser("list", help="list the catalogue's items")
    config_args(listing)
    listing.add_argument("--json", action="store_true", help="one JSON document")


def run_command(args: argparse.Namespace, config: Config) -> int:
    """Carry out one catalogue command; item folders are checked before the model is loaded."""
    from edge_classifier.model.loading import open_classifier

    command = args.catalogue_command
    given = [args.folder] if command == "build" else args.folders if command == "add" else []
    folders = find_item_folders(given) if given else []
    state_dir = state_directory(config)
    classifier, model = open_classifier(config.model)
    with classifier:
        dims = embedding_dims(classifier, model)
        existing = None if command == "build" else existing_index(state_dir, model, dims)
        if command == "list":
            return _list(existing, model, state_dir, args.json)
        if command == "remove":
            if existing is None:
                raise InputError(f"no catalogue for model {model.name} {model.version}: nothing to remove")
            updated = existing.without(args.ids)
            save_index(state_dir, updated)
            print(f"removed {len(args.ids)} items; {len(updated)} left for {model.name} {model.version}")
            return 0
        started = time.monotonic()
        items = embed_items(classifier, folders, state_dir)
        elapsed = time.monotonic() - started
    base = existing or CatalogueIndex(model, dims, ())
    updated = CatalogueIndex(model, dims, tuple(items)) if command == "build" else base.with_items(items)
    try:
        path = save_index(state_dir, updated)
    except InputError:
        forget_photos(state_dir, [name for item in items for name in item.photos])
        raise
    photos = sum(len(item.vectors) for item in items)
    verb = "built" if command == "build" else "added"
    print(f"{verb} {len(items)} items ({photos} photos, {elapsed:.1f}s); the catalogue holds {len(updated)} items "
          f"for {model.name} {model.version}: {path}")  # fmt: skip
    return 0


def existing_index(state_dir: Path, model: ModelInfo, dims: int) -> CatalogueIndex | None:
    """This model's index; None when there is none at all; ModelError when only other models have one."""
    index = load_index(state_dir, model, dims)
    if index is None and (others := other_models(state_dir, model)):
        raise ModelError(rebuild_hint(others[0], model))
    return index


def _list(index: CatalogueIndex | None, model: ModelInfo, state_dir: Path, as_json: bool) -> int:
    items = [] if index is None else [item.info.as_dict() | {"photos": len(item.vectors)} for item in index.items]
    if as_json:
        document = {"model": model.as_dict(), "path": str(index_path(state_dir, model.sha256)), "items": items}
        print(json.dumps(document))
        return 0
    if not items:
        print(f"no catalogue items for model {model.name} {model.version}")
    for item in items:
        extras = [f"{item['price']:g}" if "price" in item else "", item.get("class", ""), item.get("url", "")]
        print("\t".join([item["id"], item["name"], *extras, f"{item['photos']} photos"]))
    return 0
