"""Serving the inbox's requests on the main loop's thread: predict, settings change, model swap, catalogue change."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from edge_classifier.catalogue.remote import serve_catalogue
from edge_classifier.errors import EdgeClassifierError, InputError
from edge_classifier.learning.remote import serve_teaching
from edge_classifier.model.classification import Classification
from edge_classifier.model.loading import LoadedModel
from edge_classifier.service.hot_swap import check_can_swap, swap_in
from edge_classifier.service.inbox import (
    CatalogueAddRequest,
    CatalogueRemoveRequest,
    ForgetRequest,
    Prediction,
    PredictRequest,
    Request,
    SettingsRequest,
    SwapModelRequest,
    TaughtListRequest,
    TeachRequest,
)
from edge_classifier.service.live_settings import LiveSettings
from edge_classifier.service.voting import Voter

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)


def serve_request(loop: MainLoop, request: Request) -> None:
    """Answer one request through its future; a refused request never stops the loop."""
    if not request.reply.set_running_or_notify_cancel():
        return  # the caller gave up waiting
    if isinstance(request, PredictRequest):
        predict(loop, request)
    elif isinstance(request, SettingsRequest):
        change_settings(loop, request)
    elif isinstance(request, CatalogueAddRequest | CatalogueRemoveRequest):
        serve_catalogue(loop, request)
    elif isinstance(request, TeachRequest | ForgetRequest | TaughtListRequest):
        serve_teaching(loop, request)
    else:
        swap_model(loop, request)


def predict(loop: MainLoop, request: PredictRequest) -> None:
    image = request.image_bgr
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        request.reply.set_exception(InputError(f"expected an HxWx3 8-bit BGR image, got shape {shape}"))
        return
    classifier = loop.parts.classifier
    result = classifier.classify(image)
    started = time.perf_counter()
    top = result.top_k(classifier.labels, request.top_k)
    if loop.parts.taught is not None:  # a photo is answered as a camera frame would be, taught classes included
        top = loop.parts.taught.top_k(top, result, request.top_k)
    postprocess_ms = 1000 * (result.postprocess_s + time.perf_counter() - started)
    model = loop.parts.model
    prediction = Prediction(top, model, 1000 * result.preprocess_s, 1000 * result.inference_s, postprocess_ms)
    if request.search_top_n is not None:
        prediction = with_similar(loop, prediction, result, request.search_top_n)
    request.reply.set_result(prediction)


def with_similar(loop: MainLoop, prediction: Prediction, result: Classification, top_n: int) -> Prediction:
    """The prediction with the catalogue items most like its image (similar None: no index for the serving model)."""
    catalogue = loop.parts.catalogue
    started = time.perf_counter()
    similar = None if catalogue is None else catalogue.matches(result, loop.parts.model, top_n)
    return replace(prediction, similar=similar, search_ms=1000 * (time.perf_counter() - started))


def change_settings(loop: MainLoop, request: SettingsRequest) -> None:
    parts = loop.parts
    settings = LiveSettings.resolve(request.result, parts.classifier)
    apply_settings(loop, settings)
    logger.info(
        "settings: top_k %d, vote window %d, min score %.2f, heartbeat %.1fs",
        settings.top_k, settings.vote_window, settings.min_score, settings.heartbeat_s,
    )  # fmt: skip
    request.reply.set_result(settings)


def apply_settings(loop: MainLoop, settings: LiveSettings) -> None:
    """A new vote starts (its window or threshold may differ); the heartbeat applies from the next frame."""
    parts = loop.parts
    parts.settings = settings
    parts.reporter.heartbeat_s = settings.heartbeat_s
    if (settings.vote_window, settings.min_score) != (loop.voter.window, loop.voter.min_score):
        loop.voter = Voter(settings.vote_window, settings.min_score)


def swap_model(loop: MainLoop, request: SwapModelRequest) -> None:
    """Load on this thread, so only the loop ever touches an interpreter; the old model serves on any failure."""
    parts = loop.parts
    try:
        check_can_swap(loop)
        classifier, model = request.load()
    except EdgeClassifierError as exc:
        logger.warning("model swap refused, still serving %s %s: %s", parts.model.name, parts.model.version, exc)
        request.reply.set_exception(exc)
        return
    swap_in(loop, LoadedModel(classifier, model), request.reply, request.verify_frames)
