"""The HTTP interface end to end: the daemon as a subprocess (sample video looped, real mosquitto), a real client.

Every endpoint with its schema, every bad input of the issue (each a 4xx naming the problem while frames keep
being classified), predictions from several threads while a stream is watched, MJPEG framing parsed here, stream
slots freed by clients that leave, the bearer token, readiness without a camera, shutdown with open streams.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import json
import signal
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import ROOT, SAMPLE_VIDEO, SCHEMAS, Broker, Daemon, free_port, run_cli

pytestmark = pytest.mark.slow

PHOTOS = ROOT / "tests" / "data" / "real-photos"
# Two photos of every class: what the concurrency test sends, and what `classify` labels for comparison.
SAMPLE_PHOTOS = [p for folder in sorted(PHOTOS.iterdir()) if folder.is_dir() for p in sorted(folder.glob("*.jpg"))[:2]]
SCHEMA = {name: json.loads((SCHEMAS / f"{name}.schema.json").read_text())
          for name in ("http-health", "http-ready", "http-latest", "http-predict", "http-error", "result")}  # fmt: skip
MAX_BODY = 1024 * 1024
TOKEN = "test-token-7f3a9c2e5b1d4680"
WAIT_S = 30.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(port, method, path, body=None, headers=None, timeout=WAIT_S) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def raw_exchange(port, data: bytes) -> Answer:
    """Send bytes as they are (the server may answer before reading them all) and parse what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        # It may answer and close before taking everything: the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return Answer(int(status_line.split()[1]), headers, body)


def error_of(answer: Answer) -> tuple[int, str]:
    """The status and message of an error answer, after checking it is the schema'd JSON error."""
    assert answer.headers.get("content-type") == "application/json", (answer.status, answer.headers, answer.body)
    document = answer.json()
    jsonschema.validate(document, SCHEMA["http-error"])
    assert document["status"] == answer.status
    return answer.status, document["error"]


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT_S, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {result!r})")
        pause.wait(0.05)


def frames_processed(port) -> int:
    return int(call(port, "GET", "/api/latest").json()["frames_processed"])


def keeps_classifying(port, more: int = 3) -> None:
    """Frames go on being classified: the count rises by `more` after now."""
    start = frames_processed(port)
    wait_until(lambda: frames_processed(port) >= start + more, what=f"{more} more frames after {start}")


def multipart(fields: dict[str, tuple[str, bytes, str] | str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data, content_type = value
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {content_type}\r\n\r\n")  # fmt: skip
            parts.append(f"--{boundary}\r\n{head}".encode() + data + b"\r\n")
        else:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def png_header_only(width, height) -> bytes:
    """A valid PNG signature and IHDR for a width x height 8-bit RGB image, and no pixel data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# -- MJPEG ------------------------------------------------------------------------------------------------------


class MjpegReader:
    """A /stream.mjpg response parsed part by part: boundary line, headers, Content-Length bytes of JPEG, CRLF."""

    def __init__(self, port, headers=None):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
        self.connection.request("GET", "/stream.mjpg", headers=headers or {})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.content_type = self.response.getheader("Content-Type")

    def part(self) -> bytes:
        line = self.response.readline()
        assert b"--frame\r\n" == line, line
        headers = {}
        while (line := self.response.readline()) != b"\r\n":
            name, _, value = line.decode("ascii").partition(":")
            headers[name.strip().lower()] = value.strip()
        assert "image/jpeg" == headers["content-type"], headers
        jpeg = self.response.read(int(headers["content-length"]))
        assert b"\r\n" == self.response.read(2)
        assert (jpeg[:2], jpeg[-2:]) == (b"\xff\xd8", b"\xff\xd9"), (jpeg[:4], jpeg[-4:])
        return jpeg

    def close(self) -> None:
        self.response.close()
        self.connection.close()


# -- fixtures -----------------------------------------------------------------------------------------------------


@dataclass
class Running:
    daemon: Daemon
    port: int
    url_line: str


def start_daemon(broker_port: int, port: int, *extra: str, device: str = "http", env=None) -> Daemon:
    return Daemon(
        "--source", str(SAMPLE_VIDEO), "--device-id", device, "--set", "source.loop=true",
        "--set", f"mqtt.port={broker_port}", "--set", "mqtt.host=127.0.0.1", "--set", f"http.port={port}", *extra,
        env=env,
    )  # fmt: skip


def stop(daemon: Daemon) -> None:
    if daemon.poll() is None:
        try:
            daemon.stop(signal.SIGTERM, 15)
        except Exception:
            daemon.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("http-broker")).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def running(module_broker):
    """One daemon for the module: `run --preview` on the looped sample video, bodies limited to 1 MiB."""
    port = free_port()
    daemon = start_daemon(module_broker.port, port, "--preview", "--set", f"http.max_body_bytes={MAX_BODY}")
    try:
        line = daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
        wait_until(lambda: frames_processed(port) > 0, what="the first classified frame")
        yield Running(daemon, port, line)
    finally:
        stop(daemon)
    assert "Traceback" not in daemon.log, daemon.log


@pytest.fixture(scope="module")
def classify_labels():
    """`edge-classifier classify --json` on the sample photos: path -> (label, score)."""
    out = run_cli("classify", "--json", *map(str, SAMPLE_PHOTOS))
    assert 0 == out.returncode, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return {Path(row["image"]).resolve(): (row["label"], row["score"]) for row in rows}


# -- every endpoint -----------------------------------------------------------------------------------------------


def test_preview_logs_the_page_url_and_serves_the_page(running):
    """`run --preview` names http://127.0.0.1:PORT/ on start-up; the page and its static files answer."""
    page = call(running.port, "GET", "/")
    static = call(running.port, "GET", "/static/index.html")
    assert (True, 200, "text/html; charset=utf-8", True, True, 200) == (
        f"http://127.0.0.1:{running.port}/" in running.url_line, page.status, page.headers["content-type"],
        b"/api/latest" in page.body, b"/stream.mjpg" in page.body, static.status,
    )  # fmt: skip


def test_health_ready_and_latest_answer_with_their_schemas(running):
    health = call(running.port, "GET", "/api/health")
    jsonschema.validate(health.json(), SCHEMA["http-health"])
    ready = wait_until(lambda: (a := call(running.port, "GET", "/api/ready")).status == 200 and a, what="ready")
    jsonschema.validate(ready.json(), SCHEMA["http-ready"])
    latest = wait_until(lambda: (d := call(running.port, "GET", "/api/latest").json())["result"] and d, what="result")
    jsonschema.validate(latest, SCHEMA["http-latest"])
    jsonschema.validate(latest["result"], SCHEMA["result"])  # the MQTT `result` payload, as published
    keeps_classifying(running.port)
    assert (200, "ok", True, [], "running", "http") == (
        health.status, health.json()["status"], ready.json()["ready"], ready.json()["reasons"], latest["camera"],
        latest["result"]["device_id"],
    )  # fmt: skip


def test_latest_jpg_is_the_live_frame_with_its_overlay(running):
    answer = call(running.port, "GET", "/api/latest.jpg")
    image = cv2.imdecode(np.frombuffer(answer.body, np.uint8), cv2.IMREAD_COLOR)
    assert (200, "image/jpeg", "no-store", (480, 640, 3)) == (
        answer.status, answer.headers["content-type"], answer.headers["cache-control"], image.shape)  # fmt: skip


def test_metrics_are_prometheus_text_with_frames_stages_camera_mqtt_and_model(running):
    def samples():
        text = call(running.port, "GET", "/metrics").body.decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip

    before = samples()
    keeps_classifying(running.port)
    after = wait_until(lambda: (s := samples())[("edge_classifier_mqtt_connected", ())] == 1.0 and s, what="mqtt")
    frames = ("edge_classifier_frames_processed_total", ())
    inference = ("edge_classifier_stage_seconds_count", (("stage", "inference"),))
    model = [k for k in after if k[0] == "edge_classifier_model_info"]
    assert (True, True, 1.0, 1, True) == (
        after[frames] > before[frames], after[inference] >= after[frames] - 1,
        after[("edge_classifier_camera_state", (("state", "running"),))], len(model),
        ("name", "clothing-mobilenetv2") in model[0][1],
    )  # fmt: skip


def test_unknown_routes_and_methods_are_json_errors(running):
    assert [(404, "no such route: GET /api/nope"), (405, "GET is not allowed on /api/predict (allowed: POST)")] == [
        error_of(call(running.port, "GET", "/api/nope")), error_of(call(running.port, "GET", "/api/predict"))]  # fmt: skip


# -- predictions --------------------------------------------------------------------------------------------------


def predict_each_way(port, photo: Path, top_k: int | None = None) -> list[Answer]:
    data = photo.read_bytes()
    query = f"?top_k={top_k}" if top_k else ""
    body, content_type = multipart({"image": (photo.name, data, "image/jpeg")})
    return [
        call(port, "POST", "/api/predict" + query, body, {"Content-Type": content_type}),
        call(port, "POST", "/api/predict" + query, data, {"Content-Type": "image/jpeg"}),
        call(
            port,
            "POST",
            "/api/predict" + query,
            json.dumps({"image": base64.b64encode(data).decode()}),
            {"Content-Type": "application/json"},
        ),
    ]


def test_predict_by_multipart_raw_body_and_base64_gives_classifys_label(running, classify_labels):
    """Each way of sending a photo gets the label and score `edge-classifier classify` gives it, with timings."""
    photos = SAMPLE_PHOTOS[::7]
    seen, expected = [], []
    for photo in photos:
        for answer in predict_each_way(running.port, photo):
            document = answer.json()
            jsonschema.validate(document, SCHEMA["http-predict"])
            seen.append((answer.status, document["label"], document["score"], len(document["top_k"])))
            expected.append((200, *classify_labels[photo.resolve()], 5))
    assert expected == seen


def test_top_k_from_the_query_string(running):
    answers = predict_each_way(running.port, SAMPLE_PHOTOS[0], top_k=2)
    assert [(200, 2)] * 3 == [(a.status, len(a.json()["top_k"])) for a in answers]


PHOTO_BYTES = SAMPLE_PHOTOS[0].read_bytes()
MULTIPART_TRUNCATED = multipart({"image": ("cut.jpg", PHOTO_BYTES[: len(PHOTO_BYTES) // 2], "image/jpeg")})


def http_request(path, body, content_type, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body  # fmt: skip


BAD_INPUT = {
    "malformed-multipart": (
        lambda port: call(port, "POST", "/api/predict", b"--b\r\nContent-Type: image/jpeg\r\n\r\nxx\r\n--b--\r\n", {"Content-Type": "multipart/form-data; boundary=b"}),
        (400, "malformed multipart body: Missing Content-Disposition header"),
    ),
    "multipart-without-boundary": (
        lambda port: call(port, "POST", "/api/predict", b"x", {"Content-Type": "multipart/form-data"}),
        (400, "malformed multipart body: Missing boundary"),
    ),
    "truncated-jpeg": (
        lambda port: call(port, "POST", "/api/predict", PHOTO_BYTES[: len(PHOTO_BYTES) // 2], {"Content-Type": "image/jpeg"}),
        (400, "the JPEG is truncated: no end-of-image marker after its image data"),
    ),
    "truncated-jpeg-in-multipart": (
        lambda port: call(port, "POST", "/api/predict", MULTIPART_TRUNCATED[0], {"Content-Type": MULTIPART_TRUNCATED[1]}),
        (400, "the JPEG is truncated: no end-of-image marker after its image data"),
    ),
    "non-image-bytes": (
        lambda port: call(port, "POST", "/api/predict", b"this is not an image at all", {"Content-Type": "image/jpeg"}),
        (415, "the body is not a JPEG, PNG, WebP or BMP image (it starts with 7468697320697320)"),
    ),
    "huge-dimension-png": (
        lambda port: call(port, "POST", "/api/predict", png_header_only(20_000, 20_000), {"Content-Type": "image/png"}),
        (413, "the image is 20000x20000 (400.0 megapixels), more than http.max_image_pixels (16.0 megapixels)"),
    ),
    "huge-body": (
        # 4 MiB declared, 64 KiB sent: refused from the headers, before the body is read.
        lambda port: raw_exchange(port, http_request("/api/predict", b"\xff" * 65536, "image/jpeg").replace(
            b"Content-Length: 65536", f"Content-Length: {4 * MAX_BODY}".encode())),
        (413, f"request entity too large: exceeds max_body of {MAX_BODY} (http.max_body_bytes)"),
    ),
    "huge-chunked-body": (
        lambda port: raw_exchange(port, b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                                        b"Transfer-Encoding: chunked\r\n\r\n"
                                        + (b"10000\r\n" + b"\xff" * 65536 + b"\r\n") * 20 + b"0\r\n\r\n"),
        (413, f"request entity too large: exceeds max_body of {MAX_BODY} (http.max_body_bytes)"),
    ),
    "broken-content-length": (
        lambda port: raw_exchange(port, b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: many\r\n\r\n"),
        (400, "bad request: Content-Length is invalid"),
    ),
    "unsupported-content-type": (
        lambda port: call(port, "POST", "/api/predict", b"hello", {"Content-Type": "text/plain"}),
        (415, "Content-Type text/plain is not accepted: send multipart/form-data (field 'image'), an image/* body, "
              'or application/json {"image": "<base64>"}'),
    ),
    "url-while-fetching-is-off": (
        lambda port: call(port, "POST", "/api/predict", json.dumps({"url": "http://example.com/a.jpg"}),
                          {"Content-Type": "application/json"}),
        (403, "url: fetching images by URL is off (http.fetch_urls: false)"),
    ),
    "bad-base64": (
        lambda port: call(port, "POST", "/api/predict", json.dumps({"image": "@@@"}), {"Content-Type": "application/json"}),
        (400, "image: not valid base64 (Only base64 data is allowed)"),
    ),
    "bad-top-k": (
        lambda port: call(port, "POST", "/api/predict?top_k=none", PHOTO_BYTES, {"Content-Type": "image/jpeg"}),
        (400, "top_k: expected a whole number from 1 to 100, got 'none'"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input_is_a_named_error_and_the_daemon_keeps_classifying(running, name):
    send, expected = BAD_INPUT[name]
    assert expected == error_of(send(running.port))
    keeps_classifying(running.port)


# -- concurrency, streams -----------------------------------------------------------------------------------------


def test_predictions_from_threads_while_a_stream_is_watched_are_each_right_for_their_photo(running, classify_labels):
    """4 threads x 10 photos while /stream.mjpg is read and frames flow: every answer is its own photo's label."""
    results: list[tuple[Path, int, str, float]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    stream = MjpegReader(running.port)
    stream_frames: list[bytes] = []
    stop_stream = threading.Event()

    def watch():
        try:
            while not stop_stream.is_set():
                stream_frames.append(stream.part())
        except BaseException as exc:  # any failure is the test's
            if not stop_stream.is_set():
                failures.append(exc)

    def predict(offset):
        try:
            for i in range(10):
                photo = SAMPLE_PHOTOS[(offset * 5 + i) % len(SAMPLE_PHOTOS)]
                data = photo.read_bytes()
                if i % 2:
                    body, content_type = multipart({"image": (photo.name, data, "image/jpeg")})
                else:
                    body, content_type = data, "image/jpeg"
                answer = call(running.port, "POST", "/api/predict", body, {"Content-Type": content_type})
                document = answer.json()
                with lock:
                    results.append((photo, answer.status, document.get("label"), document.get("score")))
        except BaseException as exc:
            failures.append(exc)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start_frames = frames_processed(running.port)
    threads = [threading.Thread(target=predict, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    wait_until(lambda: len(stream_frames) >= 3, what="3 stream frames")
    stop_stream.set()
    stream.close()
    watcher.join(10)
    expected = [(p, 200, *classify_labels[p.resolve()]) for p, *_ in results]
    assert ([], 40, expected, True) == (
        failures, len(results), results, frames_processed(running.port) > start_frames)  # fmt: skip


def test_mjpeg_framing_and_content_type(running):
    reader = MjpegReader(running.port)
    try:
        jpegs = [reader.part() for _ in range(3)]
    finally:
        reader.close()
    shapes = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR).shape for j in jpegs]
    assert (200, "multipart/x-mixed-replace; boundary=frame", [(480, 640, 3)] * 3) == (
        reader.status, reader.content_type, shapes)  # fmt: skip


def test_a_client_that_leaves_frees_its_stream_slot(running):
    """With http.max_streams (2) open a third stream is refused; once a client leaves, a new one is accepted."""
    first, second = MjpegReader(running.port), MjpegReader(running.port)
    try:
        first.part()
        second.part()
        refused = call(running.port, "GET", "/stream.mjpg")
        first.close()  # leaves without a word: the server notices the closed connection

        def accepted():
            reader = MjpegReader(running.port)
            if reader.status == 200:
                reader.part()
            reader.close()
            return reader.status == 200

        wait_until(accepted, what="a stream accepted after a client left")
        assert ((503, "2 streams are already open (http.max_streams)"), "5") == (
            error_of(refused), refused.headers["retry-after"])  # fmt: skip
    finally:
        first.close()
        second.close()


# -- token, URL fetching, readiness, shutdown ---------------------------------------------------------------------


@pytest.fixture
def photo_server():
    """A local web server with one photo at /photo.jpg."""
    photo = SAMPLE_PHOTOS[3].read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(photo)))
            self.end_headers()
            self.wfile.write(photo)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/photo.jpg"
    server.shutdown()
    server.server_close()


def test_token_auth_and_url_fetching(broker, tmp_path, photo_server, classify_labels):
    """With http.auth: token a wrong or missing token is a 401 JSON; with fetch_urls a URL is classified."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    port = free_port()
    daemon = start_daemon(broker.port, port, "--set", "http.enabled=true", "--set", "http.auth=token",
                          "--set", f"http.token_file={tmp_path / 'token'}", "--set", "http.fetch_urls=true",
                          device="locked")  # fmt: skip
    try:
        daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        wait_until(lambda: call(port, "GET", "/api/latest", headers=auth).json()["frames_processed"] > 0)
        missing = call(port, "GET", "/api/latest")
        wrong = call(port, "GET", "/api/latest", headers={"Authorization": "Bearer not-the-token-0000000"})
        stream_wrong = call(port, "GET", "/stream.mjpg", headers={"Authorization": "Bearer x"})
        health = call(port, "GET", "/api/health")
        fetched = call(port, "POST", "/api/predict", json.dumps({"url": photo_server}),
                       {**auth, "Content-Type": "application/json"})  # fmt: skip
        file_url = call(port, "POST", "/api/predict", json.dumps({"url": "file:///etc/passwd"}),
                        {**auth, "Content-Type": "application/json"})  # fmt: skip
        start = call(port, "GET", "/api/latest", headers=auth).json()["frames_processed"]
        wait_until(lambda: call(port, "GET", "/api/latest", headers=auth).json()["frames_processed"] > start + 3)
    finally:
        stop(daemon)
    jsonschema.validate(fetched.json(), SCHEMA["http-predict"])
    assert (
        (401, "missing Authorization: Bearer <token> header (http.auth is token)"),
        (401, "wrong bearer token"), 'Bearer realm="edge-classifier", error="invalid_token"', 401, 200,
        (200, "url", classify_labels[SAMPLE_PHOTOS[3].resolve()][0]),
        (400, "url: only http:// and https:// addresses are fetched, not 'file:///etc/passwd'"),
        False,
    ) == (
        error_of(missing), error_of(wrong), wrong.headers["www-authenticate"], stream_wrong.status, health.status,
        (fetched.status, fetched.json()["image"]["via"], fetched.json()["label"]), error_of(file_url),
        TOKEN in daemon.log,
    )  # fmt: skip


def test_ready_is_503_with_its_reasons_while_no_camera_is_plugged_in(broker):
    """Live but not ready: /api/health 200, /api/ready 503 naming the camera; /api/latest.jpg 503 JSON."""
    port = free_port()
    daemon = Daemon("--preview", "--source", "/dev/video57", "--set", f"http.port={port}",
                    "--set", f"mqtt.port={broker.port}", "--set", "mqtt.host=127.0.0.1")  # fmt: skip
    try:
        daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
        health = call(port, "GET", "/api/health")
        ready = call(port, "GET", "/api/ready")
        jpeg = call(port, "GET", "/api/latest.jpg")
    finally:
        stop(daemon)
    jsonschema.validate(ready.json(), SCHEMA["http-ready"])
    assert (200, 503, False, ["camera absent", "no frame classified yet"], (503, "no frame has been classified yet")) == (
        health.status, ready.status, ready.json()["ready"], ready.json()["reasons"], error_of(jpeg))  # fmt: skip


def test_a_non_loopback_address_without_a_token_is_refused_at_start():
    out = run_cli("run", "--preview", "--source", str(SAMPLE_VIDEO), "--set", "http.bind=0.0.0.0")
    assert (78, "error: http.auth: http.bind 0.0.0.0 is not a loopback address: set http.auth: token (with "
                "http.token_file or the systemd credential http_token), or http.auth: none to serve anyone who can "
                "connect\n") == (out.returncode, out.stderr)  # fmt: skip


def test_a_port_in_use_is_a_config_error_naming_it(broker):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = start_daemon(broker.port, port, "--preview", device="busy")
        try:
            line = daemon.wait_for_line(lambda text: text.startswith("error:"), 60)
            code = daemon.wait(30)
        finally:
            stop(daemon)
    assert (78, f"error: http.port: cannot listen on 127.0.0.1 port {port}: Address already in use\n") == (code, line)


def test_sigterm_with_an_open_stream_exits_cleanly(broker):
    port = free_port()
    daemon = start_daemon(broker.port, port, "--preview", device="term")
    daemon.wait_for_line(lambda text: "HTTP interface on" in text, 60)
    reader = MjpegReader(port)
    try:
        reader.part()
        code = daemon.stop(signal.SIGTERM, 15)
    finally:
        reader.close()
    assert (0, False) == (code, "Traceback" in daemon.log), daemon.log
