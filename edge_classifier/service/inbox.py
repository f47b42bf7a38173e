"""The main loop's inbox: requests from other threads, each with a future for its answer, served between frames."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from edge_classifier.catalogue.items import ItemInfo
from edge_classifier.catalogue.search import Match
from edge_classifier.config.settings import ResultConfig
from edge_classifier.errors import BusyError, StoppedError
from edge_classifier.model.classification import LabelScore
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.identity import ModelInfo
from edge_classifier.service.hot_swap import PROBATION_FRAMES
from edge_classifier.service.live_settings import LiveSettings

DEFAULT_CAPACITY = 8


@dataclass(frozen=True)
class Prediction:
    """The answer to a predict request: best labels, the model that gave them and its stage times."""

    top_k: tuple[LabelScore, ...]
    model: ModelInfo
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    # Asked for a catalogue search (POST /api/search): the similar items, None when the serving model has no index.
    similar: tuple[Match, ...] | None = None
    search_ms: float = 0.0


@dataclass(frozen=True)
class PredictRequest:
    """Classify one image (not a camera frame) with the serving model."""

    image_bgr: npt.NDArray[np.uint8]
    top_k: int
    reply: Future[Prediction] = field(default_factory=Future)
    search_top_n: int | None = None  # also search the catalogue for this many similar items (POST /api/search)


@dataclass(frozen=True)
class SettingsRequest:
    """Replace the live result settings (top-k, vote window, min score, heartbeat); answered with what is in force."""

    result: ResultConfig
    reply: Future[LiveSettings] = field(default_factory=Future)


@dataclass(frozen=True)
class SwapModelRequest:
    """Load a model on the loop's thread and serve it from the next frame; the old one keeps serving on failure.

    The reply resolves once the new model has classified `verify_frames` live frames cleanly; if one of them fails,
    the previous model serves again and the reply is the ModelError saying why.
    """

    load: Callable[[], tuple[Classifier, ModelInfo]]
    reply: Future[ModelInfo] = field(default_factory=Future)
    verify_frames: int = PROBATION_FRAMES


@dataclass(frozen=True)
class CatalogueChange:
    """The answer to a catalogue add or remove: the item, the catalogue's size after it, what it cost."""

    item: ItemInfo
    photos: int  # embedded (add), or the photos the removed item had
    replaced: bool  # an item with this id was there before (add: replaced in place)
    items: int  # in the catalogue afterwards
    model: ModelInfo
    embed_ms: float
    save_ms: float


@dataclass(frozen=True)
class CatalogueAddRequest:
    """Embed decoded photos (BGR, at least one) with the serving model and store them as one catalogue item."""

    info: ItemInfo
    images: tuple[npt.NDArray[np.uint8], ...]
    reply: Future[CatalogueChange] = field(default_factory=Future)


@dataclass(frozen=True)
class CatalogueRemoveRequest:
    """Remove one item from the serving model's catalogue."""

    item_id: str
    reply: Future[CatalogueChange] = field(default_factory=Future)


class TaughtEntry(NamedTuple):
    """One class taught for the serving model: its label, its photos, whether it refines a trained class."""

    label: str
    photos: int
    refines: bool


@dataclass(frozen=True)
class TaughtChange:
    """The answer to a teach, forget or list: what was done, the classes taught now, what it cost."""

    action: str  # "taught" (a new class), "refined" (a trained class), "forgotten", "listed"
    label: str | None  # the class taught or forgotten, in its stored spelling; None for a list
    photos: int  # embedded now (teach), or the photos the forgotten class had
    classes: tuple[TaughtEntry, ...]  # every class taught for the serving model afterwards
    model: ModelInfo
    embed_ms: float = 0.0
    save_ms: float = 0.0


@dataclass(frozen=True)
class TeachRequest:
    """Embed decoded photos (BGR, at least one) with the serving model and add them to a taught class."""

    label: str
    images: tuple[npt.NDArray[np.uint8], ...]
    reply: Future[TaughtChange] = field(default_factory=Future)


@dataclass(frozen=True)
class ForgetRequest:
    """Forget one class taught for the serving model."""

    label: str
    reply: Future[TaughtChange] = field(default_factory=Future)


@dataclass(frozen=True)
class TaughtListRequest:
    """The classes taught for the serving model, as the loop has them."""

    reply: Future[TaughtChange] = field(default_factory=Future)


CatalogueRequest = CatalogueAddRequest | CatalogueRemoveRequest
TaughtRequest = TeachRequest | ForgetRequest | TaughtListRequest
Request = PredictRequest | SettingsRequest | SwapModelRequest | CatalogueRequest | TaughtRequest


class Inbox:
    """A bounded queue: a full inbox refuses at once (BusyError) rather than growing a backlog."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, on_submit: Callable[[], None] | None = None):
        self._queue: queue.Queue[Request] = queue.Queue(maxsize=capacity)
        # Wakes the main loop from its wait for a frame, so a request does not wait for the next one.
        self._on_submit = on_submit
        self._closed = False
        # Held by submit() and close() so that no request slips in after close() has drained the queue.
        self._lock = threading.Lock()

    def submit(self, request: Request) -> Future[Any]:
        """Queue a request; its future resolves once the loop has served it."""
        with self._lock:
            if self._closed:
                raise StoppedError("the service is stopping")
            try:
                self._queue.put_nowait(request)
            except queue.Full:
                raise BusyError(f"{self._queue.maxsize} requests are already waiting for the main loop") from None
        if self._on_submit is not None:
            self._on_submit()
        return request.reply

    def take(self) -> Request | None:
        """The next waiting request, or None (the loop's side; never blocks)."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        """Refuse new requests and fail the waiting ones, so no caller waits for a loop that has stopped."""
        with self._lock:
            self._closed = True
        while (request := self.take()) is not None:
            request.reply.set_exception(StoppedError("the service stopped before serving the request"))

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
