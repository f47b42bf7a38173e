"""Training data: Fashion-MNIST IDX files or a folder of labelled photos, prepared like camera frames."""

from __future__ import annotations

import gzip
import hashlib
import logging
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.errors import InputError
from edge_classifier.model.preprocess import Preprocessing, to_model_pixels

logger = logging.getLogger(__name__)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
# sha256 and size of the *decompressed* files: Debian recompresses the .gz, so those bytes differ.
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
    "train-labels-idx1-ubyte.gz": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
    "t10k-images-idx3-ubyte.gz": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
    "t10k-labels-idx1-ubyte.gz": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
}
IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

# BGR uint8 frames: one array (N, H, W, 3) when they share a size (Fashion-MNIST), else a list of photos.
Frames = list[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8]


@dataclass
class Dataset:
    """Images as BGR uint8 frames (N, H, W, 3) of any size, integer labels and their names."""

    train_bgr: Frames
    train_labels: npt.NDArray[np.int64]
    test_bgr: Frames
    test_labels: npt.NDArray[np.int64]
    labels: tuple[str, ...]
    description: str


def read_idx(path: Path, expected_dims: int) -> npt.NDArray[np.uint8]:
    """Read one gzipped IDX file after checking its magic number, size and checksum."""
    expected_sha, expected_size = FASHION_FILES[path.name]
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path} is not a readable gzip file ({exc})") from None
    if len(raw) != expected_size or int.from_bytes(raw[:4], "big") != IDX_MAGIC[expected_dims]:
        raise InputError(f"{path} is not the Fashion-MNIST file it is named after (size or magic number differs)")
    if hashlib.sha256(raw).hexdigest() != expected_sha:
        raise InputError(f"{path} has the wrong sha256: the download is corrupt or from another data set")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * expected_dims).reshape(dims)


def load_fashion_mnist(data_dir: Path) -> Dataset:
    """The four Fashion-MNIST files from Debian's dataset-fashion-mnist or a download folder."""
    missing = [name for name in FASHION_FILES if not (data_dir / name).is_file()]
    if missing:
        raise InputError(
            f"Fashion-MNIST files missing from {data_dir}: {', '.join(missing)}; "
            "install them with 'apt-get install dataset-fashion-mnist' or pass --data-dir"
        )
    gray = {name: read_idx(data_dir / name, 3 if "images" in name else 1) for name in FASHION_FILES}

    def as_bgr(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return np.repeat(images[..., None], 3, axis=3)

    return Dataset(
        train_bgr=as_bgr(gray["train-images-idx3-ubyte.gz"]),
        train_labels=gray["train-labels-idx1-ubyte.gz"].astype(np.int64),
        test_bgr=as_bgr(gray["t10k-images-idx3-ubyte.gz"]),
        test_labels=gray["t10k-labels-idx1-ubyte.gz"].astype(np.int64),
        labels=FASHION_LABELS,
        description=f"Fashion-MNIST from {data_dir}",
    )


def load_image_folder(root: Path, val_fraction: float, seed: int) -> Dataset:
    """Photos under ROOT/<label>/, split per class into train and validation with a fixed seed."""
    class_dirs, class_files = read_class_folders(root, "image folder", minimum=2)
    rng = np.random.default_rng(seed)
    train: list[npt.NDArray[np.uint8]] = []
    test: list[npt.NDArray[np.uint8]] = []
    train_labels: list[int] = []
    test_labels: list[int] = []
    for label_index, files in enumerate(class_files):
        images = read_images(files)
        order = rng.permutation(len(images))
        n_val = max(1, round(len(images) * val_fraction))
        for rank, i in enumerate(order):
            (test if rank < n_val else train).append(images[i])
            (test_labels if rank < n_val else train_labels).append(label_index)
    return Dataset(
        train_bgr=train,
        train_labels=np.asarray(train_labels, dtype=np.int64),
        test_bgr=test,
        test_labels=np.asarray(test_labels, dtype=np.int64),
        labels=tuple(d.name for d in class_dirs),
        description=f"image folder {root} ({len(train)} train / {len(test)} validation, seed {seed})",
    )


def read_class_folders(root: Path, what: str, minimum: int = 1) -> tuple[list[Path], list[list[Path]]]:
    """The class folders under ROOT (sorted) and the image files of each (at least MINIMUM per class)."""
    if not root.is_dir():
        raise InputError(f"{what} {root} does not exist")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if len(class_dirs) < 2:
        raise InputError(f"{what} {root} needs at least two class folders, found {len(class_dirs)}")
    files = [sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for d in class_dirs]
    for class_dir, found in zip(class_dirs, files, strict=True):
        if len(found) < minimum:
            raise InputError(f"class folder {class_dir} has {len(found)} images; each class needs at least {minimum}")
    return class_dirs, files


def read_images(files: list[Path]) -> list[npt.NDArray[np.uint8]]:
    images = []
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read image {file}")
        images.append(np.asarray(image, dtype=np.uint8))  # IMREAD_COLOR gives uint8: no copy
    return images


def load_image_split(train_root: Path, val_root: Path) -> Dataset:
    """Photos under TRAIN_ROOT/<label>/ and VAL_ROOT/<label>/, with the same class folders in both."""
    train_dirs, train_files = read_class_folders(train_root, "image folder")
    val_dirs, val_files = read_class_folders(val_root, "validation folder")
    if [d.name for d in train_dirs] != [d.name for d in val_dirs]:
        raise InputError(
            f"{train_root} and {val_root} have different class folders: "
            f"{[d.name for d in train_dirs]} and {[d.name for d in val_dirs]}"
        )

    def flat(files: list[list[Path]]) -> tuple[list[npt.NDArray[np.uint8]], npt.NDArray[np.int64]]:
        images = read_images([f for group in files for f in group])
        labels = np.concatenate([np.full(len(group), i, dtype=np.int64) for i, group in enumerate(files)])
        return images, labels

    train_bgr, train_labels = flat(train_files)
    test_bgr, test_labels = flat(val_files)
    return Dataset(
        train_bgr=train_bgr,
        train_labels=train_labels,
        test_bgr=test_bgr,
        test_labels=test_labels,
        labels=tuple(d.name for d in train_dirs),
        description=f"image folders {train_root} ({len(train_bgr)} train) and {val_root} ({len(test_bgr)} validation)",
    )


def rename_labels(data: Dataset, names: str) -> Dataset:
    """DATA with the comma-separated NAMES as its labels, one per class folder in sorted order."""
    labels = tuple(name.strip() for name in names.split(","))
    if len(labels) != len(data.labels) or not all(labels):
        raise InputError(
            f"--label-names gives {len(labels)} names for {len(data.labels)} classes ({', '.join(data.labels)})"
        )
    if len(set(labels)) != len(labels):
        raise InputError(f"--label-names repeats a name: {names!r}")
    return replace(data, labels=labels)


def subsample(
    images: Frames, labels: npt.NDArray[np.int64], limit: int | None, seed: int
) -> tuple[Frames, npt.NDArray[np.int64]]:
    """A seeded random subset of at most LIMIT images (all of them when LIMIT is None)."""
    if limit is None or limit >= len(labels):
        return images, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(labels))[:limit])
    if isinstance(images, np.ndarray):
        return images[keep], labels[keep]
    return [images[i] for i in keep], labels[keep]


def to_pixels(frames_bgr: Frames, spec: Preprocessing, size_hw: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """Every frame through the daemon's own crop/resize/colour path: (N, H, W, C) uint8."""
    out = np.empty((len(frames_bgr), *size_hw, spec.channels), dtype=np.uint8)
    for i, frame in enumerate(frames_bgr):
        out[i] = to_model_pixels(np.ascontiguousarray(frame), spec, size_hw).reshape(*size_hw, spec.channels)
    return out
