"""The image of a POST /api/predict: a multipart file field, a raw image/* body, base64 JSON or (if enabled) a URL."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.formparser import parse_form_data
from werkzeug.wrappers import Request

from edge_classifier.http.fetch import fetch_image
from edge_classifier.http.problems import RequestError
from edge_classifier.http.settings import HttpConfig

FILE_FIELD = "image"
MAX_FORM_PARTS = 16
MAX_TOP_K = 100
ACCEPTED = 'multipart/form-data (field \'image\'), an image/* body, or application/json {"image": "<base64>"}'


@dataclass(frozen=True)
class PredictInput:
    data: bytes
    via: str  # multipart, body, base64, url
    top_k: int | None


def parse_top_k(value: Any, where: str) -> int:
    """A top_k from the query string, a form field or JSON: a whole number from 1 to MAX_TOP_K."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        shown = value if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise RequestError(400, f"{where}: expected a whole number from 1 to {MAX_TOP_K}, got {shown!r}")
    return value


def check_length(request: Request, config: HttpConfig) -> None:
    """Refuse a declared body over the limit before reading it (waitress also stops one without a length there)."""
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        raise RequestError(413, f"the request body is {request.content_length} bytes, more than "
                                f"http.max_body_bytes ({config.max_body_bytes})")  # fmt: skip


def read_predict_input(request: Request, config: HttpConfig) -> PredictInput:
    check_length(request, config)
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        result = _multipart(request, config)
    elif mimetype.startswith("image/") or mimetype == "application/octet-stream":
        result = PredictInput(request.get_data(cache=False), "body", None)
    elif mimetype == "application/json":
        result = _json(request.get_data(cache=False), config)
    else:
        shown = mimetype or "none"
        raise RequestError(415, f"Content-Type {shown} is not accepted: send {ACCEPTED}")
    if not result.data:
        raise RequestError(400, f"the image is empty ({result.via})")
    return result


def _multipart(request: Request, config: HttpConfig) -> PredictInput:
    try:
        _, form, files = parse_form_data(
            request.environ, silent=False, max_content_length=config.max_body_bytes,
            max_form_memory_size=64 * 1024, max_form_parts=MAX_FORM_PARTS,
        )  # fmt: skip
    except ValueError as exc:
        raise RequestError(400, f"malformed multipart body: {exc}") from None
    except HTTPException as exc:  # RequestEntityTooLarge: too many parts, or a form field too large
        raise RequestError(exc.code or 400, f"multipart body refused: {exc.description}") from None
    upload = files.get(FILE_FIELD) or next(iter(files.values()), None)
    if upload is None:
        raise RequestError(400, f"the multipart body has no file: send the image as the file field {FILE_FIELD!r}")
    top_k = parse_top_k(form["top_k"], "top_k") if "top_k" in form else None
    return PredictInput(upload.read(), "multipart", top_k)


def _json(body: bytes, config: HttpConfig) -> PredictInput:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"the JSON body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RequestError(400, 'the JSON body must be an object: {"image": "<base64>"}')
    unknown = sorted(set(document) - {"image", "url", "top_k"})
    if unknown:
        raise RequestError(400, f"unknown key {unknown[0]!r} in the JSON body (known: image, url, top_k)")
    top_k = parse_top_k(document["top_k"], "top_k") if "top_k" in document else None
    if "image" in document and "url" in document:
        raise RequestError(400, "give either image or url in the JSON body, not both")
    if "url" in document:
        if not config.fetch_urls:
            raise RequestError(403, "url: fetching images by URL is off (http.fetch_urls: false)")
        return PredictInput(fetch_image(document["url"], config.max_body_bytes, config.fetch_timeout_s), "url", top_k)
    if "image" not in document:
        raise RequestError(400, 'the JSON body has no image: send {"image": "<base64>"}')
    return PredictInput(_base64(document["image"]), "base64", top_k)


def _base64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise RequestError(400, "image: expected a base64 string")
    if text.startswith("data:"):  # a data URL, as a browser's FileReader gives it
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise RequestError(400, "image: a data URL must be base64 encoded")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(400, f"image: not valid base64 ({exc})") from None
