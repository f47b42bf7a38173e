"""The HTTP interface's parts in-process: image headers and limits, bodies, config, overlay, encoder, metrics, auth."""

from __future__ import annotations

import base64
import http.server
import json
import struct
import threading
import zlib
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

from edge_classifier.capture.source import SourceStats
from edge_classifier.config.settings import load_config
from edge_classifier.errors import ConfigError
from edge_classifier.http import images
from edge_classifier.http.app import AppParts, HttpApp
from edge_classifier.http.bodies import parse_top_k, read_predict_input
from edge_classifier.http.fetch import fetch_image
from edge_classifier.http.overlay import BOX_BGR, CropGeometry, RateMeter, render
from edge_classifier.http.problems import RequestError
from edge_classifier.http.prometheus import HttpCounts, ServiceCollector, build_registry, exposition
from edge_classifier.http.settings import HttpConfig, check_http, read_token
from edge_classifier.http.stream import FrameEncoder, MjpegStream
from edge_classifier.model.classification import LabelScore
from edge_classifier.model.identity import ModelInfo
from edge_classifier.mqtt.client import PublisherStats
from edge_classifier.service.frame_result import FrameInfo, FrameResult, StableLabel, StageTimings
from edge_classifier.service.inbox import Inbox
from edge_classifier.service.metrics import Metrics
from edge_classifier.service.state import RuntimeState
from helpers import ROOT, SCHEMAS

PHOTOS = ROOT / "tests" / "data" / "real-photos"
PHOTO = sorted((PHOTOS / "dress").glob("*.jpg"))[0]
MODEL = ModelInfo("test-model", "1.0.0", "0" * 64)
TOKEN = "s3cret-token-0123456789"
ERROR_SCHEMA = json.loads((SCHEMAS / "http-error.schema.json").read_text())


def encoded(ext, width, height, params=()):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, buffer = cv2.imencode(ext, image, list(params))
    assert ok
    return buffer.tobytes()


def png_header_only(width, height):
    """A PNG signature and IHDR (8-bit RGB) with a valid CRC, an empty IDAT and IEND: no pixel data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# -- image headers and limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ext", "params", "kind"),
    [
        (".jpg", (), "jpeg"),
        (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "jpeg"),
        (".png", (), "png"),
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), "webp"),
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "webp"),  # lossless: VP8L
        (".bmp", (), "bmp"),
    ],
)
def test_header_gives_the_size_opencv_decodes(ext, params, kind):
    """Every accepted format's header gives the width and height the decoder then produces."""
    data = encoded(ext, 123, 77, params)
    header = images.read_header(data)
    image, _ = images.decode_image(data, 10**6)
    assert (kind, 123, 77, (77, 123, 3)) == (header.format, header.width, header.height, image.shape)


def test_webp_extended_header_gives_the_canvas_size():
    """A VP8X WebP (alpha, animation, metadata) is sized by its canvas."""
    data = b"RIFF" + struct.pack("<I", 22) + b"WEBPVP8X" + struct.pack("<I", 10) + b"\x10\x00\x00\x00"
    data += (3999).to_bytes(3, "little") + (2999).to_bytes(3, "little")
    assert (4000, 3000) == (images.read_header(data).width, images.read_header(data).height)


def test_bmp_top_down_rows_have_a_positive_height():
    data = bytearray(encoded(".bmp", 20, 10))
    struct.pack_into("<i", data, 22, -10)
    assert (20, 10) == (images.read_header(bytes(data)).width, images.read_header(bytes(data)).height)


def test_a_huge_png_is_refused_from_its_header_without_decoding(monkeypatch):
    """20,000 x 20,000 is refused with 413 naming the limit; OpenCV's decoder is never called."""

    def no_decode(*args):
        raise AssertionError("imdecode called")

    monkeypatch.setattr(images.cv2, "imdecode", no_decode)
    with pytest.raises(RequestError) as refused:
        images.decode_image(png_header_only(20_000, 20_000), 25_000_000)
    assert (413, "the image is 20000x20000 (400.0 megapixels), more than http.max_image_pixels (25.0 megapixels)") == (
        refused.value.status, str(refused.value))  # fmt: skip


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (
            b"hello, not an image",
            415,
            "the body is not a JPEG, PNG, WebP or BMP image (it starts with 68656c6c6f2c206e)",
        ),
        (b"", 415, "the body is not a JPEG, PNG, WebP or BMP image (it starts with nothing)"),
        (b"GIF89a\x01\x00\x01\x00", 415, "GIF images are not accepted: send a JPEG, PNG, WebP or BMP image"),
        (b"II*\x00\x08\x00\x00\x00", 415, "TIFF images are not accepted: send a JPEG, PNG, WebP or BMP image"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", 400, "the PNG has no IHDR header chunk"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00", 400, "the image header is truncated"),
        (b"\xff\xd8\xff\xe0\x00", 400, "the image header is truncated"),
        (b"\xff\xd8", 400, "the JPEG is truncated: it ends before its image data"),
        (b"\xff\xd8\x00\x00", 400, "the JPEG is corrupt: no marker at byte 2"),
        (b"\xff\xd8\xff\xd9", 400, "the JPEG ends before its image data"),
        (b"BM" + b"\x00" * 12 + struct.pack("<I", 20) + b"\x00" * 8, 400, "the BMP has an unknown header size 20"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8Z", 400, "the WebP has an unknown first chunk b'VP8Z'"),
    ],
)
def test_broken_or_foreign_bytes_are_named(data, status, message):
    with pytest.raises(RequestError) as refused:
        images.read_header(data)
    assert (status, message) == (refused.value.status, str(refused.value))


def test_a_truncated_jpeg_is_refused_even_with_an_end_marker_in_its_thumbnail():
    """The FF D9 of an EXIF thumbnail (before the scan) does not make a cut-off photo look complete."""
    photo = PHOTO.read_bytes()
    thumbnail = b"Exif\x00\x00" + b"\xff\xd8fake thumbnail\xff\xd9"
    with_app1 = photo[:2] + b"\xff\xe1" + struct.pack(">H", len(thumbnail) + 2) + thumbnail + photo[2:]
    assert "jpeg" == images.read_header(with_app1).format
    with pytest.raises(RequestError) as refused:
        images.read_header(with_app1[: len(with_app1) // 2])
    assert (400, "the JPEG is truncated: no end-of-image marker after its image data") == (
        refused.value.status, str(refused.value))  # fmt: skip


def test_undecodable_data_behind_a_valid_header_is_a_400():
    data = png_header_only(10, 10)
    with pytest.raises(RequestError) as refused:
        images.decode_image(data, 10**6)
    assert (400, "the PNG image could not be decoded (corrupt or truncated data)") == (
        refused.value.status, str(refused.value))  # fmt: skip


# -- request bodies -------------------------------------------------------------------------------------------


def request_for(data, content_type, query=""):
    return Request(EnvironBuilder(path="/api/predict", method="POST", data=data, content_type=content_type,
                                  query_string=query).get_environ())  # fmt: skip


def refused_body(data, content_type):
    with pytest.raises(RequestError) as refused:
        read_predict_input(request_for(data, content_type), HttpConfig())
    return refused.value.status, str(refused.value)


def test_each_way_of_sending_an_image_gives_its_bytes():
    photo = PHOTO.read_bytes()
    b64 = base64.b64encode(photo).decode()
    multipart = request_for({"image": (PHOTO.open("rb"), "photo.jpg", "image/jpeg"), "top_k": "2"}, None)
    got = [
        read_predict_input(multipart, HttpConfig()),
        read_predict_input(request_for(photo, "image/jpeg"), HttpConfig()),
        read_predict_input(request_for(json.dumps({"image": b64, "top_k": 4}), "application/json"), HttpConfig()),
        read_predict_input(
            request_for(json.dumps({"image": "data:image/jpeg;base64," + b64}), "application/json"), HttpConfig()
        ),
    ]
    assert [(photo, "multipart", 2), (photo, "body", None), (photo, "base64", 4), (photo, "base64", None)] == [
        (g.data, g.via, g.top_k) for g in got
    ]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message"),
    [
        (b"garbage", "multipart/form-data; boundary=xyz", 400,
         "malformed multipart body: Invalid form-data cannot parse beyond State.PREAMBLE"),
        (b"--xyz\r\n", "multipart/form-data", 400, "malformed multipart body: Missing boundary"),
        (b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\nxx',
         "multipart/form-data; boundary=xyz", 400, "malformed multipart body: Invalid form-data cannot parse beyond State.DATA"),
        (b'--xyz\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--xyz--\r\n',
         "multipart/form-data; boundary=xyz", 400, "the multipart body has no file: send the image as the file field 'image'"),
        (b"", "image/jpeg", 400, "the image is empty (body)"),
        (b"x", "text/plain", 415, "Content-Type text/plain is not accepted: send multipart/form-data (field 'image'), "
                                  'an image/* body, or application/json {"image": "<base64>"}'),
        (b"{", "application/json", 400, "the JSON body is not valid JSON: Expecting property name enclosed in double "
                                        "quotes: line 1 column 2 (char 1)"),
        (b"[1]", "application/json", 400, 'the JSON body must be an object: {"image": "<base64>"}'),
        (b'{"img": "x"}', "application/json", 400, "unknown key 'img' in the JSON body (known: image, url, top_k)"),
        (b"{}", "application/json", 400, 'the JSON body has no image: send {"image": "<base64>"}'),
        (b'{"image": 5}', "application/json", 400, "image: expected a base64 string"),
        (b'{"image": "abc"}', "application/json", 400,
         "image: not valid base64 (Incorrect padding)"),
        (b'{"image": "data:image/png,abc"}', "application/json", 400, "image: a data URL must be base64 encoded"),
        (b'{"image": "aGk=", "top_k": 0}', "application/json", 400, "top_k: expected a whole number from 1 to 100, got 0"),
        (b'{"url": "http://example.com/a.jpg"}', "application/json", 403,
         "url: fetching images by URL is off (http.fetch_urls: false)"),
        (b'{"url": "x", "image": "aGk="}', "application/json", 400, "give either image or url in the JSON body, not both"),
    ],
)  # fmt: skip
def test_bad_bodies_are_named(data, content_type, status, message):
    assert (status, message) == refused_body(data, content_type)


def test_a_declared_body_over_the_limit_is_refused_before_reading():
    request = request_for(b"x" * 2048, "image/jpeg")
    with pytest.raises(RequestError) as refused:
        read_predict_input(request, HttpConfig(max_body_bytes=1024))
    assert (413, "the request body is 2048 bytes, more than http.max_body_bytes (1024)") == (
        refused.value.status, str(refused.value))  # fmt: skip


@pytest.mark.parametrize(("value", "expected"), [("3", 3), (7, 7), ("100", 100)])
def test_top_k_accepts_whole_numbers_in_range(value, expected):
    assert expected == parse_top_k(value, "top_k")


@pytest.mark.parametrize("value", ["0", "101", "three", True, 2.5, None, "-1"])
def test_top_k_refuses_anything_else(value):
    with pytest.raises(RequestError):
        parse_top_k(value, "top_k")


# -- fetching by URL ------------------------------------------------------------------------------------------


@pytest.fixture
def web_server():
    """A local web server: /photo.jpg, /big (2 KiB), /missing (404), /to-file and /to-ftp (redirects)."""
    photo = PHOTO.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path in ("/to-file", "/to-ftp"):
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd" if self.path == "/to-file" else "ftp://example.com/a")
                self.end_headers()
                return
            body = photo if self.path == "/photo.jpg" else b"x" * 2048
            if self.path == "/missing":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_reads_an_image_over_http(web_server):
    assert PHOTO.read_bytes() == fetch_image(f"{web_server}/photo.jpg", 10**6, 5.0)


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/big", 413, "url: the image is 2048 bytes, more than http.max_body_bytes (1024)"),
        (
            "/to-file",
            502,
            "url: the server answered 302 Found - Redirection to url 'file:///etc/passwd' is not allowed",
        ),
        ("/to-ftp", 400, "url: redirected to ftp://example.com/a, which is not http(s)"),
        ("/missing", 502, "url: the server answered 404 Not Found"),
    ],
)
def test_fetch_refuses_big_bodies_foreign_redirects_and_errors(web_server, path, status, message):
    with pytest.raises(RequestError) as refused:
        fetch_image(web_server + path, 1024, 5.0)
    assert (status, message) == (refused.value.status, str(refused.value))


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "data:image/png;base64,AA", "http://"]
)
def test_fetch_refuses_other_schemes_before_any_request(url):
    with pytest.raises(RequestError) as refused:
        fetch_image(url, 1024, 1.0)
    assert (400, True) == (refused.value.status, str(refused.value).startswith("url: only http:// and https://"))


# -- configuration --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("http.bind=0.0.0.0",), "http.auth: http.bind 0.0.0.0 is not a loopback address: set http.auth: token (with "
                                 "http.token_file or the systemd credential http_token), or http.auth: none to serve "
                                 "anyone who can connect"),
        (("http.bind=kiosk.local",), "http.bind: expected an IP address such as 127.0.0.1, 0.0.0.0 or ::1, got "
                                     "'kiosk.local'"),
        (("http.token_file=/etc/token",), "http.token_file: '/etc/token' is set but http.auth is not token"),
        (("http.auth=basic",), "http.auth: expected 'token' or 'none', got 'basic'"),
        (("http.port=70000",), "http.port: expected an integer from 0 to 65535, got 70000"),
        (("http.max_streams=0",), "http.max_streams: expected an integer from 1 to 32, got 0"),
        (("http.colour=red",), "http.colour: unknown key (known keys here: enabled, bind, port, auth, token_file, "
                               "max_body_bytes, max_image_pixels, request_timeout_s, predict_timeout_s, "
                               "max_connections, threads, max_streams, stream_fps, stream_width, jpeg_quality, "
                               "ready_max_frame_age_s, fetch_urls, fetch_timeout_s)"),
    ],
)  # fmt: skip
def test_config_refuses_an_open_port_and_bad_values(sets, message):
    with pytest.raises(ConfigError) as refused:
        load_config(None, sets)
    assert message == str(refused.value)


def test_config_accepts_another_address_with_a_token_or_an_explicit_none(tmp_path):
    token = load_config(None, ("http.bind=0.0.0.0", "http.auth=token")).http
    (tmp_path / "config.yaml").write_text('http:\n  bind: "::"\n  auth: none\n')
    open_ = load_config(tmp_path / "config.yaml").http
    assert (("0.0.0.0", "token"), ("::", "none")) == ((token.bind, token.auth), (open_.bind, open_.auth))


def test_token_comes_from_the_file_or_the_systemd_credential(tmp_path, monkeypatch):
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "http_token").write_text("credential-token-abcdef\n")
    from_file = read_token(HttpConfig(auth="token", token_file=tmp_path / "token"))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    from_credential = read_token(HttpConfig(auth="token"))
    assert (TOKEN, "credential-token-abcdef", None) == (from_file, from_credential, read_token(HttpConfig()))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "http.token_file: '{tmp}/token' does not exist and there is no systemd credential http_token, but "
               "http.auth is token"),
        ("short", "http.token_file: the token in {tmp}/token must be at least 16 printable characters without spaces"),
        ("has a space in the middle", "http.token_file: the token in {tmp}/token must be at least 16 printable "
                                      "characters without spaces"),
    ],
)  # fmt: skip
def test_a_missing_or_weak_token_is_a_config_error_that_never_shows_it(tmp_path, monkeypatch, content, message):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    if content is not None:
        (tmp_path / "token").write_text(content)
    with pytest.raises(ConfigError) as refused:
        read_token(HttpConfig(auth="token", token_file=tmp_path / "token"))
    assert message.format(tmp=tmp_path) == str(refused.value)


def test_check_http_passes_the_defaults():
    check_http(HttpConfig())


# -- overlay, rate, encoder, streams --------------------------------------------------------------------------


def frame_result(index, captured_at=0.0, height=480, width=640):
    top = (LabelScore("Dress", 0.9), LabelScore("Skirt", 0.05))
    return FrameResult(FrameInfo(index, captured_at, height, width), top, StageTimings(1.0, 2.0, 3.0, 0.5), 4.0)


def state_with_frames(count, shape=(480, 640, 3)):
    state = RuntimeState(MODEL, SourceStats("running", count, 0, 0, 0), PublisherStats(True, 1, 0, 0, 0, None, False))
    for i in range(count):
        frame = np.full(shape, 100 + i, dtype=np.uint8)
        state.frame_done(frame_result(i, height=shape[0], width=shape[1]), frame, StableLabel("Dress", 0.9), None)
    return state


def test_render_scales_draws_the_crop_box_and_leaves_the_shared_frame_alone():
    """A 1280x720 frame at most 640 wide: 640x360, the centred 360x360 box the model sees drawn in its colour."""
    state = state_with_frames(1, (720, 1280, 3))
    snap = state.snapshot()
    before = snap.frame_bgr.copy()
    image = render(snap, CropGeometry((224, 224), "center"), 9.5, 640)
    assert ((360, 640, 3), True) == (image.shape, np.array_equal(before, snap.frame_bgr))
    # The box is 360 wide, centred: columns 140..499, drawn on its bottom row (below the text band).
    assert tuple(image[359, 320]) == BOX_BGR
    assert tuple(image[300, 140]) == BOX_BGR


def test_render_of_a_squash_model_boxes_the_whole_frame():
    snap = state_with_frames(1).snapshot()
    image = render(snap, CropGeometry((224, 224), "squash"), 0.0, 640)
    assert (tuple(image[479, 320]), tuple(image[300, 0])) == (BOX_BGR, BOX_BGR)


class StepClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_rate_meter_counts_frames_per_second_over_its_span():
    clock = StepClock()
    meter = RateMeter(clock, span_s=3.0)
    rates = []
    for second, frames in ((0, 0), (1, 10), (2, 20), (3, 30), (4, 50), (5, 70)):
        clock.now = float(second)
        rates.append(meter.rate(frames))
    # The oldest sample kept is at most span_s old: at 4 s the rate is over 1..4 s, at 5 s over 2..5 s.
    assert [0.0, 10.0, 10.0, 10.0, round(40 / 3, 2), round(50 / 3, 2)] == rates


def encoder_for(state, **http):
    return FrameEncoder(state, CropGeometry((224, 224), "center"), HttpConfig(**http), RateMeter())


def test_latest_jpeg_is_encoded_once_per_frame():
    state = state_with_frames(2)
    encoder = encoder_for(state)
    first = encoder.jpeg(state.snapshot())
    again = encoder.jpeg(state.snapshot())
    decoded = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
    assert (True, 1, (480, 640, 3)) == (first is again, encoder.frames_encoded, decoded.shape)


def test_streams_are_bounded_and_a_closed_one_frees_its_slot():
    state = state_with_frames(1)
    encoder = encoder_for(state, max_streams=2)
    first, second = encoder.open_stream(), encoder.open_stream()
    third = encoder.open_stream()
    MjpegStream(encoder, first, lambda: False).close()
    fourth = encoder.open_stream()
    assert (0, 0, None, 0, 2) == (first, second, third, fourth, encoder.streams)


def test_the_encoder_serves_frames_while_watched_and_a_stream_ends_when_its_client_leaves():
    state = state_with_frames(1)
    encoder = encoder_for(state, stream_fps=30)
    encoder.start()
    try:
        gone = threading.Event()
        stream = MjpegStream(encoder, encoder.open_stream(), gone.is_set)
        parts = [next(stream)]
        frame = np.full((480, 640, 3), 7, dtype=np.uint8)
        state.frame_done(frame_result(1), frame, StableLabel("Dress", 0.9), None)
        parts.append(next(stream))
        gone.set()
        with pytest.raises(StopIteration):
            next(stream)
        assert (True, True, 0) == (parts[0].startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "),
                                   parts[0] != parts[1], encoder.streams)  # fmt: skip
    finally:
        encoder.close()


def test_closing_the_encoder_ends_a_waiting_stream():
    state = state_with_frames(0)
    encoder = encoder_for(state)
    encoder.start()
    stream = MjpegStream(encoder, encoder.open_stream(), lambda: False)
    ended = threading.Event()

    def consume():
        for _ in stream:
            pass
        ended.set()

    threading.Thread(target=consume, daemon=True).start()
    encoder.close()
    assert ended.wait(5), "the stream did not end after close()"


# -- metrics --------------------------------------------------------------------------------------------------


def test_stage_histograms_are_cumulative_and_count_every_frame():
    metrics = Metrics()
    for ms in (0.5, 3.0, 30.0, 5000.0):
        metrics.record(StageTimings(ms, ms, ms, ms), publish_ms=0.2, frame_age_ms=1.0)
    inference = metrics.histograms()["inference"]
    publish = metrics.histograms()["publish"]
    assert (1, 1, 1, 1, 4, 5033.5) == (
        inference.counts[0], inference.counts[2], inference.counts[5], inference.counts[-1], sum(inference.counts),
        inference.sum_ms,
    )  # fmt: skip
    assert (4, 4) == (publish.counts[0], sum(publish.counts))


def test_prometheus_text_has_frames_stages_camera_mqtt_and_model():
    state = state_with_frames(3)
    metrics = Metrics()
    for _ in range(3):
        metrics.record(StageTimings(1.0, 2.0, 30.0, 0.5), publish_ms=0.2, frame_age_ms=1.0)
    counts = HttpCounts()
    counts.count("predict", 200)
    registry = build_registry(ServiceCollector(state, metrics, counts, lambda: 1, "kiosk"))
    families = {f.name: f for f in text_string_to_metric_families(exposition(registry).decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert {
        "frames": samples[("edge_classifier_frames_processed_total", ())],
        "camera": samples[("edge_classifier_camera_state", (("state", "running"),))],
        "mqtt": samples[("edge_classifier_mqtt_connected", ())],
        "model": samples[("edge_classifier_model_info", (("name", "test-model"), ("sha256", "0" * 64),
                                                          ("version", "1.0.0")))],
        "inference_le_25ms": samples[("edge_classifier_stage_seconds_bucket", (("le", "0.025"), ("stage", "inference")))],
        "inference_le_50ms": samples[("edge_classifier_stage_seconds_bucket", (("le", "0.05"), ("stage", "inference")))],
        "inference_count": samples[("edge_classifier_stage_seconds_count", (("stage", "inference"),))],
        "predict_200": samples[("edge_classifier_http_responses_total", (("route", "predict"), ("status", "200")))],
        "streams": samples[("edge_classifier_http_streams", ())],
        "rss": samples[("process_resident_memory_bytes", ())] > 0,
    } == {
        "frames": 3.0, "camera": 1.0, "mqtt": 1.0, "model": 1.0, "inference_le_25ms": 0.0, "inference_le_50ms": 3.0,
        "inference_count": 3.0, "predict_200": 1.0, "streams": 1.0, "rss": True,
    }  # fmt: skip


# -- the application: auth, host check, errors ----------------------------------------------------------------


def client_for(token=None, bind="127.0.0.1", **http):
    state = state_with_frames(1)
    metrics = Metrics()
    config = HttpConfig(enabled=True, bind=bind, auth="token" if token else None, **http)
    encoder = encoder_for(state)
    registry = build_registry(ServiceCollector(state, metrics, HttpCounts(), lambda: 0, "kiosk"))
    parts = AppParts(config, Inbox(), state, metrics, encoder, RateMeter(), registry, HttpCounts(), token, True)
    return Client(HttpApp(parts))


def error_of(response):
    document = response.get_json()
    jsonschema.validate(document, ERROR_SCHEMA)
    return response.status_code, document["error"]


def test_a_token_is_required_everywhere_but_health_and_the_page():
    client = client_for(TOKEN)
    open_paths = [client.get(p).status_code for p in ("/api/health", "/", "/static/index.html")]
    missing = error_of(client.get("/api/latest"))
    wrong = client.get("/api/latest", headers={"Authorization": "Bearer wrong-token-0123456789"})
    right = client.get("/api/latest", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ([200, 200, 200], (401, "missing Authorization: Bearer <token> header (http.auth is token)"),
            (401, "wrong bearer token"), 'Bearer realm="edge-classifier", error="invalid_token"', 200) == (
        open_paths, missing, error_of(wrong), wrong.headers["WWW-Authenticate"], right.status_code)  # fmt: skip


def test_a_loopback_server_without_a_token_answers_only_loopback_host_names():
    """A page elsewhere cannot reach it through a DNS name re-pointed at 127.0.0.1."""
    client = client_for()
    allowed = [client.get("/api/health", headers={"Host": h}).status_code
               for h in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "localhost")]  # fmt: skip
    refused = error_of(client.get("/api/health", headers={"Host": "evil.example:8080"}))
    assert ([200, 200, 200, 200], (421, "Host 'evil.example:8080' is not a loopback name: this server binds a "
                                        "loopback address without a token")) == (allowed, refused)  # fmt: skip


def test_unknown_routes_and_methods_are_json_errors():
    client = client_for()
    not_found = error_of(client.get("/nope"))
    wrong_method = client.get("/api/predict")
    static_missing = error_of(client.get("/static/../settings.py"))
    assert ((404, "no such route: GET /nope"), (405, "GET is not allowed on /api/predict (allowed: POST)"), "POST",
            404) == (not_found, error_of(wrong_method), wrong_method.headers["Allow"], static_missing[0])  # fmt: skip


def test_predict_while_the_loop_is_stopping_is_a_503_with_retry_after():
    client = client_for()
    client.application.parts.inbox.close()
    response = client.post("/api/predict", data=PHOTO.read_bytes(), content_type="image/jpeg")
    assert ((503, "the service is stopping"), "5") == (error_of(response), response.headers["Retry-After"])


def test_a_busy_inbox_is_a_503_with_retry_after():
    client = client_for()
    inbox = client.application.parts.inbox
    from edge_classifier.service.inbox import PredictRequest

    while True:  # fill it: nobody serves it
        try:
            inbox.submit(PredictRequest(np.zeros((2, 2, 3), np.uint8), 1))
        except Exception:
            break
    response = client.post("/api/predict", data=PHOTO.read_bytes(), content_type="image/jpeg")
    assert ((503, "busy: 8 requests are already waiting for the main loop"), "1") == (
        error_of(response), response.headers["Retry-After"])  # fmt: skip


def test_a_prediction_the_loop_does_not_answer_in_time_is_a_503():
    client = client_for(predict_timeout_s=0.1)
    response = client.post("/api/predict", data=PHOTO.read_bytes(), content_type="image/jpeg")
    assert (503, "the main loop did not answer within http.predict_timeout_s (0.1s)") == error_of(response)


def test_the_schemas_are_valid_json_schemas():
    for path in sorted(Path(SCHEMAS).glob("http-*.schema.json")):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_a_head_request_for_the_stream_frees_its_slot():
    client = client_for()
    response = client.head("/stream.mjpg")
    response.close()
    assert (200, "multipart/x-mixed-replace; boundary=frame", 0) == (
        response.status_code, response.headers["Content-Type"], client.application.parts.encoder.streams)  # fmt: skip


def test_predictions_beyond_the_slots_wait_then_get_a_503():
    """At most PREDICT_SLOTS uploads are held in memory at once; one more waits predict_timeout_s, then 503."""
    from edge_classifier.http.app import PREDICT_SLOTS

    client = client_for(predict_timeout_s=0.1)
    slots = client.application._predict_slots
    for _ in range(PREDICT_SLOTS):
        slots.acquire()
    response = client.post("/api/predict", data=PHOTO.read_bytes(), content_type="image/jpeg")
    assert ((503, f"busy: {PREDICT_SLOTS} predictions are already in progress"), "1") == (
        error_of(response), response.headers["Retry-After"])  # fmt: skip
