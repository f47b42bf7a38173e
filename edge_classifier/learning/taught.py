"""Taught classes as per-class embedding sums and counts; the nearest class mean of an embedding.

A class taught from n photos is the sum of their L2-normalised embeddings and n. Its similarity to a frame is the
frame's embedding dotted with the class mean (sum / n): the mean cosine between the frame and the taught photos.
Unlike the cosine to the re-normalised mean, that figure does not grow with n (the mean of many photos is shorter
than one unit vector), so one threshold serves a class taught from 1 photo and one taught from 50.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from edge_classifier.errors import InputError

MAX_LABEL_LENGTH = 64


class TaughtMatch(NamedTuple):
    """The nearest taught class and the frame's mean cosine to its photos."""

    label: str
    similarity: float


@dataclass(frozen=True)
class TaughtClass:
    """One taught class: the sum of its photos' unit embeddings, how many were summed, and the photos taught."""

    label: str
    total: npt.NDArray[np.float64]
    count: int
    photos: int

    @property
    def mean(self) -> npt.NDArray[np.float64]:
        return self.total / self.count


def check_label(label: str) -> str:
    """The label without surrounding blanks, or InputError when it is empty, too long or has control characters."""
    cleaned = label.strip()
    if not cleaned:
        raise InputError("the label is empty")
    if len(cleaned) > MAX_LABEL_LENGTH:
        raise InputError(f"the label {cleaned[:20]!r}... is longer than {MAX_LABEL_LENGTH} characters")
    if any(not ch.isprintable() for ch in cleaned):
        raise InputError(f"the label {cleaned!r} holds control characters")
    if cleaned.lower() == "unknown":
        raise InputError("the label 'unknown' is what the daemon publishes for no garment: pick another")
    return cleaned


def spelled_as_known(label: str, trained: Iterable[str], taught: Iterable[str]) -> str:
    """LABEL in the spelling it already has, matched without regard to case: a trained class's wins, then a taught
    class's; a new label as given."""
    known = {**{name.lower(): name for name in taught}, **{name.lower(): name for name in trained}}
    return known.get(label.lower(), label)


@dataclass(frozen=True)
class TaughtClasses:
    """The classes taught for one model (by its sha256), immutable: teach and forget return a new value."""

    model_sha256: str
    dims: int
    classes: Mapping[str, TaughtClass] = field(default_factory=dict)
    _means: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)
    _labels: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = tuple(sorted(self.classes))
        means = (
            np.stack([self.classes[label].mean for label in labels]).astype(np.float32)
            if labels
            else np.zeros((0, self.dims), dtype=np.float32)
        )
        object.__setattr__(self, "_labels", labels)
        object.__setattr__(self, "_means", means)

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def __len__(self) -> int:
        return len(self._labels)

    def match(self, embedding: npt.NDArray[np.float32] | None) -> TaughtMatch | None:
        """The taught class whose mean is nearest (largest dot product), or None with nothing taught or no embedding."""
        if embedding is None or not self._labels:
            return None
        similarities = self._means @ embedding.astype(np.float32, copy=False)
        best = int(np.argmax(similarities))
        return TaughtMatch(self._labels[best], float(similarities[best]))

    def teach(self, label: str, embeddings: Iterable[npt.NDArray[np.float32]]) -> TaughtClasses:
        """A copy with the embeddings (unit vectors) added to LABEL, created if new; InputError when there are none."""
        label = check_label(label)
        vectors = [np.asarray(e, dtype=np.float64) for e in embeddings]
        if not vectors:
            raise InputError(f"no usable photo to teach {label!r} from")
        for vector in vectors:
            if vector.shape != (self.dims,):
                raise InputError(f"an embedding of shape {vector.shape}, the model gives ({self.dims},)")
        old = self.classes.get(label)
        total = np.sum(vectors, axis=0) + (old.total if old is not None else 0.0)
        count = len(vectors) + (old.count if old is not None else 0)
        photos = len(vectors) + (old.photos if old is not None else 0)
        classes = {**self.classes, label: TaughtClass(label, total, count, photos)}
        return TaughtClasses(self.model_sha256, self.dims, classes)

    def forget(self, label: str) -> TaughtClasses:
        """A copy without LABEL; InputError naming the taught labels when it was never taught."""
        label = label.strip()
        if label not in self.classes:
            taught = ", ".join(repr(name) for name in self._labels) or "none"
            raise InputError(f"{label!r} is not a taught class (taught: {taught})")
        return TaughtClasses(self.model_sha256, self.dims, {k: v for k, v in self.classes.items() if k != label})
