"""Synthetic scenes with no garment, for outlier exposure: trained towards the uniform distribution over labels.

A softmax classifier trained only on garments is confident on anything: a plain wall came out as
`T-shirt` at 0.73. Outlier exposure (Hendrycks et al., ICLR 2019) adds images of none of the
classes whose target is the uniform distribution, so such scenes get low scores and the daemon's
`min_score` turns them into `unknown`. These are made here, seeded, from a different generator
than the empty scenes the build calibrates `min_score` on (openset.py) and the tests use: wall
and counter colours, splits, gradients, textures and noise levels are drawn at random.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from .data import Frames

NEGATIVE_LABEL = -1  # the label of a negative in the training labels: trained towards the uniform target


def _smooth(rng: np.random.Generator, h: int, w: int, cells: int) -> npt.NDArray[np.float32]:
    """Low-frequency random texture in [-1, 1] (a stain, uneven light, a patterned surface)."""
    small = rng.uniform(-1, 1, (cells, max(1, cells * w // h), 3)).astype(np.float32)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), dtype=np.float32)


def _surface(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A surface colour: mostly near-grey (walls, counters, floors), sometimes strongly coloured."""
    colour = rng.uniform(0, 255, 3)
    mixed: npt.NDArray[np.float64] = colour + (colour.mean() - colour) * rng.uniform(0.3, 1.0) * (rng.random() < 0.8)
    return mixed


def _scene(rng: np.random.Generator, h: int, w: int) -> npt.NDArray[np.uint8]:
    """One random garment-free scene: one or two surfaces, light gradient, texture and sensor noise."""
    base = _surface(rng)
    image = np.empty((h, w, 3), np.float32)
    image[:] = base
    if rng.random() < 0.6:  # a second surface: counter, floor, shelf edge or shadow
        split = int(rng.uniform(0.3, 0.85) * (h if rng.random() < 0.7 else w))
        other = _surface(rng)
        if rng.random() < 0.7:
            image[split:] = other
        else:
            image[:, split:] = other
    axis = rng.integers(0, 2)
    ramp = np.linspace(rng.uniform(0.6, 1.1), rng.uniform(0.8, 1.3), image.shape[axis], dtype=np.float32)
    image *= ramp[:, None, None] if axis == 0 else ramp[None, :, None]
    image += _smooth(rng, h, w, int(rng.integers(2, 24))) * rng.uniform(0, 60)
    kind = rng.random()
    if kind < 0.15:  # pure noise, as from a broken or uncovered sensor
        image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    elif kind < 0.3:  # very dark or washed out
        image = image * rng.uniform(0.02, 0.15) if rng.random() < 0.5 else 255 - (255 - image) * rng.uniform(0.02, 0.2)
    image += rng.normal(0, rng.uniform(0, 12), (h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def negative_scenes(count: int, seed: int, size_hw: tuple[int, int] = (300, 400)) -> list[npt.NDArray[np.uint8]]:
    """COUNT seeded BGR scenes with no garment, of the photos' size (400 px wide)."""
    rng = np.random.default_rng([seed, 0x0E])
    return [_scene(rng, *size_hw) for _ in range(count)]


def targets(labels: npt.NDArray[np.int64], num_classes: int) -> npt.NDArray[np.float32]:
    """One-hot rows for class labels, uniform rows for NEGATIVE_LABEL."""
    rows = np.full((len(labels), num_classes), 1.0 / num_classes, dtype=np.float32)
    known = labels >= 0
    rows[known] = np.eye(num_classes, dtype=np.float32)[labels[known]]
    return rows


def with_negatives(
    frames: Frames, labels: npt.NDArray[np.int64], count: int, seed: int
) -> tuple[Frames, npt.NDArray[np.int64]]:
    """The training frames with COUNT scenes of the first frame's size (label NEGATIVE_LABEL) appended."""
    scenes = negative_scenes(count, seed, tuple(frames[0].shape[:2]))
    print(f"      + {count} synthetic scenes with no garment, trained towards the uniform distribution")
    labels = np.concatenate([labels, np.full(count, NEGATIVE_LABEL, dtype=np.int64)])
    if isinstance(frames, np.ndarray):
        return np.concatenate([frames, np.stack(scenes)]), labels
    return [*frames, *scenes], labels
