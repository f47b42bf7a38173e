"""Fetching an image by URL for POST /api/predict {"url": ...}: http(s) only, a size cap and a time limit."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPMessage
from typing import IO, Any

from edge_classifier.errors import first_line
from edge_classifier.http.problems import RequestError

SCHEMES = ("http", "https")
MAX_REDIRECTS = 3
CHUNK = 65536


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a few redirects, never to a scheme other than http(s) (urllib alone would follow ftp://)."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: HTTPMessage, newurl: str
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in SCHEMES:
            raise RequestError(400, f"url: redirected to {_short(newurl)}, which is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# The scheme is checked before the first request and on every redirect, so file://, ftp:// and data: never open.
_OPENER = urllib.request.build_opener(_HttpOnlyRedirects())


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise RequestError(400, "url: expected a non-empty string")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise RequestError(400, f"url: only http:// and https:// addresses are fetched, not {_short(url)!r}")
    return url


def fetch_image(url: str, max_bytes: int, timeout_s: float) -> bytes:
    """The body at `url`: at most `max_bytes`, all of it within `timeout_s` seconds; RequestError (4xx) otherwise."""
    check_url(url)
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, headers={"User-Agent": "edge-classifier", "Accept": "image/*"})
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise RequestError(413, f"url: the image is {int(declared)} bytes, more than http.max_body_bytes "
                                        f"({max_bytes})")  # fmt: skip
            chunks, size = [], 0
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise RequestError(413, f"url: the image is more than http.max_body_bytes ({max_bytes} bytes)")
                if time.monotonic() > deadline:
                    raise RequestError(504, f"url: the download took longer than http.fetch_timeout_s ({timeout_s}s)")
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as exc:
        raise RequestError(502, f"url: the server answered {exc.code} {exc.reason}") from None
    except TimeoutError:
        raise RequestError(504, f"url: no answer within http.fetch_timeout_s ({timeout_s}s)") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        text = first_line(reason) if isinstance(reason, BaseException) else str(reason)
        raise RequestError(502, f"url: cannot fetch {_short(url)}: {text}") from None
