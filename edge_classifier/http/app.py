"""The WSGI application: routes, bearer-token check, JSON errors; predictions through the main loop's inbox."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Request, Response

from edge_classifier.catalogue.runtime import CatalogueRuntime
from edge_classifier.errors import BusyError, InputError, StoppedError
from edge_classifier.http import catalogue as catalogue_routes
from edge_classifier.http import teaching
from edge_classifier.http.access import Access, short
from edge_classifier.http.bodies import parse_top_k, read_predict_input
from edge_classifier.http.documents import health_document, latest_document, predict_document, ready_document
from edge_classifier.http.images import decode_image
from edge_classifier.http.overlay import RateMeter
from edge_classifier.http.problems import RequestError, error_document
from edge_classifier.http.prometheus import HttpCounts, exposition
from edge_classifier.http.search import search_document
from edge_classifier.http.settings import HttpConfig
from edge_classifier.http.stream import BOUNDARY, FrameEncoder, MjpegStream
from edge_classifier.ratelimit import RateLimitedLog
from edge_classifier.service.inbox import Inbox, Prediction, PredictRequest
from edge_classifier.service.metrics import Metrics
from edge_classifier.service.state import RuntimeState

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_TOP_K = 5
# Predictions holding an upload and its decoded image at once: bounds memory (a 16 MP photo is 48 MB decoded)
# while one image is decoded as the loop classifies another; the loop classifies one at a time anyway.
PREDICT_SLOTS = 2
ROUTES = Map(
    [
        Rule("/", endpoint="index"),
        Rule("/static/<path:name>", endpoint="static"),
        Rule("/api/health", endpoint="health"),
        Rule("/api/ready", endpoint="ready"),
        Rule("/api/predict", endpoint="predict", methods=["POST"]),
        Rule("/api/search", endpoint="search", methods=["POST"]),
        Rule("/api/catalogue/thumbnail/<path:item_id>", endpoint="thumbnail"),
        Rule("/api/catalogue/items", endpoint="items", methods=["GET"]),
        Rule("/api/catalogue/items", endpoint="add_item", methods=["POST"]),
        Rule("/api/catalogue/items/<path:item_id>", endpoint="remove_item", methods=["DELETE"]),
        Rule("/api/taught", endpoint="taught", methods=["GET"]),
        Rule("/api/taught", endpoint="teach", methods=["POST"]),
        Rule("/api/taught/<path:label>", endpoint="forget", methods=["DELETE"]),
        Rule("/api/latest", endpoint="latest"),
        Rule("/api/latest.jpg", endpoint="latest_jpg"),
        Rule("/stream.mjpg", endpoint="stream"),
        Rule("/metrics", endpoint="metrics"),
    ],
    strict_slashes=False,
)
# The page's own files only: no inline script, nothing from elsewhere; blob: for the polled preview and the photo
# sent, data: for the empty favicon; no framing by other sites (the page has buttons worth clickjacking).
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'"
# A route taking photos: POST /api/catalogue/items, POST /api/taught.
UploadHandler = Callable[[Request, HttpConfig, Inbox, Callable[[], float]], dict[str, Any]]


def json_response(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(document), status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(error_document(status, message), status, headers)


@dataclass(frozen=True)
class AppParts:
    """What the application reads and where it sends predictions; it never holds the classifier."""

    config: HttpConfig
    inbox: Inbox
    state: RuntimeState
    metrics: Metrics
    encoder: FrameEncoder
    rate: RateMeter
    registry: CollectorRegistry
    counts: HttpCounts
    token: str | None
    selftest: bool
    clock: Callable[[], float] = time.monotonic
    catalogue: CatalogueRuntime | None = None  # read for thumbnails and settings; searches go through the inbox


class HttpApp:
    """A WSGI callable; every answer is JSON but the page's files, JPEGs, the MJPEG stream and /metrics."""

    def __init__(self, parts: AppParts):
        self.parts = parts
        self._access = Access(parts.config.bind, parts.token)
        self._log = RateLimitedLog(logger)
        self._predict_slots = threading.BoundedSemaphore(PREDICT_SLOTS)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        endpoint = "unmatched"
        try:
            endpoint, args = ROUTES.bind_to_environ(environ).match()
            self._access.check(request, endpoint)
            response: Response = getattr(self, f"_{endpoint}")(request, **args)
        except Exception as exc:
            problem = self._problem(request, exc)
            response = error_response(problem.status, str(problem), problem.headers)
            # A client that repeats a bad request must not flood the journal: one line per kind and minute.
            self._log.log(logging.INFO, f"http-{endpoint}-{problem.status}", "HTTP %s %s -> %d %s",
                          request.method, short(request.path), problem.status, problem)  # fmt: skip
        self.parts.counts.count(endpoint, response.status_code)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response(environ, start_response)

    @staticmethod
    def _problem(request: Request, exc: Exception) -> RequestError:
        """Any failure of a request as the status and one line its answer carries."""
        if isinstance(exc, RequestError):
            return exc
        if isinstance(exc, NotFound):
            return RequestError(404, f"no such route: {request.method} {short(request.path)}")
        if isinstance(exc, MethodNotAllowed):
            allowed = ", ".join(exc.valid_methods or ())
            return RequestError(405, f"{request.method} is not allowed on {short(request.path)} (allowed: "
                                     f"{allowed})", {"Allow": allowed})  # fmt: skip
        if isinstance(exc, HTTPException):
            return RequestError(exc.code or 400, f"{exc.name}: {exc.description}")
        logger.exception("HTTP %s %s failed", request.method, short(request.path))
        return RequestError(500, "internal error (the daemon's log has the details)")

    # -- routes -------------------------------------------------------------------------------------------

    def _index(self, request: Request) -> Response:
        return self._static(request, "index.html")

    def _static(self, request: Request, name: str) -> Response:
        response: Response = send_from_directory(STATIC_DIR, name, request.environ, max_age=60)
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response

    def _health(self, request: Request) -> Response:
        return json_response(health_document(self.parts.clock() - self.parts.metrics.started))

    def _ready(self, request: Request) -> Response:
        parts = self.parts
        ready, document = ready_document(
            parts.state.snapshot(), parts.clock(), parts.config.ready_max_frame_age_s, parts.selftest
        )
        return json_response(document, 200 if ready else 503)

    def _latest(self, request: Request) -> Response:
        snap = self.parts.state.snapshot()
        return json_response(latest_document(snap, self.parts.rate.rate(snap.frames_processed), self.parts.clock()))

    def _latest_jpg(self, request: Request) -> Response:
        jpeg = self.parts.encoder.jpeg(self.parts.state.snapshot())
        if jpeg is None:
            raise RequestError(503, "no frame has been classified yet", {"Retry-After": "1"})
        response = Response(jpeg, content_type="image/jpeg")
        response.headers["Cache-Control"] = "no-store"
        return response

    def _stream(self, request: Request) -> Response:
        encoder = self.parts.encoder
        start = encoder.open_stream()
        if start is None:
            raise RequestError(503, f"{self.parts.config.max_streams} streams are already open (http.max_streams)",
                               {"Retry-After": "5"})  # fmt: skip
        client_gone = request.environ.get("waitress.client_disconnected") or (lambda: False)
        body = MjpegStream(encoder, start, client_gone)
        response = Response(body, content_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                            direct_passthrough=True)  # fmt: skip
        response.headers["Cache-Control"] = "no-store"
        return response

    def _metrics(self, request: Request) -> Response:
        return Response(exposition(self.parts.registry), content_type=CONTENT_TYPE_LATEST)

    def _search(self, request: Request) -> Response:
        """/api/predict's input forms and path through the inbox, answered with the catalogue's similar items."""
        if self.parts.catalogue is None:
            raise RequestError(404, "visual search is off (catalogue.enabled: false)")
        return self._predict(request, search=True)

    def _thumbnail(self, request: Request, item_id: str) -> Response:
        catalogue = self.parts.catalogue
        jpeg = None if catalogue is None else catalogue.thumbnail(item_id)
        if jpeg is None:
            raise RequestError(404, f"no catalogue item with id {short(item_id)!r}")
        response = Response(jpeg, content_type="image/jpeg")
        response.headers["Cache-Control"] = "max-age=60"
        return response

    def _items(self, request: Request) -> Response:
        return json_response(catalogue_routes.items_document(self.parts.catalogue, self.parts.state.snapshot().model))

    def _add_item(self, request: Request) -> Response:
        return self._upload(request, catalogue_routes.add_item)

    def _remove_item(self, request: Request, item_id: str) -> Response:
        return json_response(catalogue_routes.remove_item(request, item_id, self.parts.inbox, time.perf_counter))

    def _taught(self, request: Request) -> Response:
        return json_response(teaching.listing(self.parts.inbox, time.perf_counter))

    def _teach(self, request: Request) -> Response:
        return self._upload(request, teaching.teach)

    def _forget(self, request: Request, label: str) -> Response:
        return json_response(teaching.forget(request, label, self.parts.inbox, time.perf_counter))

    def _upload(
        self, request: Request, handle: Callable[[Request, HttpConfig, Inbox, Callable[[], float]], Any]
    ) -> Response:
        """Photos decoded here within a prediction slot (memory), embedded and stored by the main loop."""
        if not self._predict_slots.acquire(timeout=self.parts.config.predict_timeout_s):
            raise RequestError(503, f"busy: {PREDICT_SLOTS} predictions are already in progress", {"Retry-After": "1"})
        try:
            document = handle(request, self.parts.config, self.parts.inbox, time.perf_counter)
        finally:
            self._predict_slots.release()
        return json_response(document, 201)

    def _predict(self, request: Request, search: bool = False) -> Response:
        started = time.perf_counter()
        if not self._predict_slots.acquire(timeout=self.parts.config.predict_timeout_s):
            raise RequestError(503, f"busy: {PREDICT_SLOTS} predictions are already in progress", {"Retry-After": "1"})
        try:
            return self._predict_in_slot(request, started, search)
        finally:
            self._predict_slots.release()

    def _predict_in_slot(self, request: Request, started: float, search: bool = False) -> Response:
        config = self.parts.config
        given = read_predict_input(request, config)
        top_k = given.top_k or DEFAULT_TOP_K
        if "top_k" in request.args:
            top_k = parse_top_k(request.args["top_k"], "top_k")
        decode_start = time.perf_counter()
        image, header = decode_image(given.data, config.max_image_pixels)
        asked = time.perf_counter()
        search_top_n = search_size(request, self.parts.catalogue) if search else None
        prediction = self._ask_loop(PredictRequest(image, top_k, search_top_n=search_top_n))
        answered = time.perf_counter()
        if search and prediction.similar is None:
            model = f"{prediction.model.name} {prediction.model.version}"
            raise RequestError(
                404, f"no catalogue for the serving model {model}: run `edge-classifier catalogue build`"
            )
        model_ms = prediction.preprocess_ms + prediction.inference_ms + prediction.postprocess_ms + prediction.search_ms
        document = (search_document if search else predict_document)(
            prediction, header, len(given.data), given.via,
            decode_ms=1000 * (asked - decode_start),
            wait_ms=max(0.0, 1000 * (answered - asked) - model_ms),
            total_ms=1000 * (answered - started),
        )  # fmt: skip
        return json_response(document)

    def _ask_loop(self, request: PredictRequest) -> Prediction:
        timeout = self.parts.config.predict_timeout_s
        try:
            future = self.parts.inbox.submit(request)
        except BusyError as exc:
            raise RequestError(503, f"busy: {exc}", {"Retry-After": "1"}) from None
        except StoppedError as exc:
            raise RequestError(503, str(exc), {"Retry-After": "5"}) from None
        try:
            prediction: Prediction = future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RequestError(503, f"the main loop did not answer within http.predict_timeout_s ({timeout:g}s)",
                               {"Retry-After": "1"}) from None  # fmt: skip
        except StoppedError as exc:
            raise RequestError(503, str(exc), {"Retry-After": "5"}) from None
        except InputError as exc:
            raise RequestError(400, str(exc)) from None
        return prediction


def search_size(request: Request, catalogue: CatalogueRuntime | None) -> int:
    """How many similar items /api/search answers: the query's top_n, else catalogue.top_n."""
    if "top_n" in request.args:
        return parse_top_k(request.args["top_n"], "top_n")
    return catalogue.config.top_n if catalogue is not None else 1
