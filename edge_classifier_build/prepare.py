"""A build's first two stages: its data loaded and subsampled, then every image as the daemon would see it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_classifier.model.preprocess import Preprocessing

from .build_options import BuildOptions
from .data import (
    Dataset,
    Frames,
    load_fashion_mnist,
    load_image_folder,
    load_image_split,
    rename_labels,
    subsample,
    to_pixels,
)
from .negatives import with_negatives

logger = logging.getLogger(__name__)
STAGES = 6


def stage(number: int, text: str) -> None:
    print(f"[{number}/{STAGES}] {text}", flush=True)


@dataclass
class Prepared:
    """The build's data, as frames and as model-sized pixels."""

    data: Dataset
    train_frames: Frames
    train_labels: npt.NDArray[np.int64]
    test_frames: Frames
    test_labels: npt.NDArray[np.int64]
    train_pixels: npt.NDArray[np.uint8]
    test_pixels: npt.NDArray[np.uint8]


def load(options: BuildOptions) -> Dataset:
    """Fashion-MNIST, or --image-dir split by --val-fraction or paired with --val-dir; renamed by --label-names."""
    if options.image_dir and options.val_dir:
        data = load_image_split(options.image_dir, options.val_dir)
    elif options.image_dir:
        data = load_image_folder(options.image_dir, options.val_fraction, options.seed)
    else:
        data = load_fashion_mnist(options.data_dir)
    return rename_labels(data, options.label_names) if options.label_names else data


def prepare(options: BuildOptions, spec: Preprocessing, size: tuple[int, int]) -> Prepared:
    """Stages 1 and 2: load, subsample with the seed, and run every image through the daemon's preprocessing."""
    stage(1, "loading data")
    data = load(options)
    train_frames, train_labels = subsample(data.train_bgr, data.train_labels, options.train_limit, options.seed)
    test_frames, test_labels = subsample(data.test_bgr, data.test_labels, options.test_limit, options.seed + 1)
    if options.negatives:
        train_frames, train_labels = with_negatives(train_frames, train_labels, options.negatives, options.seed)
    print(
        f"      {data.description}: {len(train_labels)} train, {len(test_labels)} test images, "
        f"{len(data.labels)} classes"
    )
    stage(
        2,
        f"preparing images like camera frames ({spec.crop} crop, {spec.interpolation} resize "
        f"to {size[0]}x{size[1]}, RGB)",
    )
    # Camera augmentation crops its views out of a slightly larger square (camera_augment.py).
    train_size = size
    if options.augmentation == "camera" and not options.no_augment:
        from .camera_augment import source_size

        train_size = (source_size(size[0]), source_size(size[1]))
    return Prepared(
        data, train_frames, train_labels, test_frames, test_labels,
        to_pixels(train_frames, spec, train_size), to_pixels(test_frames, spec, size),
    )  # fmt: skip


def calibration_pixels(
    prepared: Prepared, count: int, size: tuple[int, int], spec: Preprocessing
) -> npt.NDArray[np.uint8]:
    """COUNT training images spread over the set, at the model's input size, for int8 calibration."""
    step = max(1, len(prepared.train_pixels) // count)
    if prepared.train_pixels.shape[1:3] == size:
        return prepared.train_pixels[::step][:count]
    frames = prepared.train_frames[::step][:count]
    return to_pixels(frames, spec, size)
