"""`bench`'s HTTP figures: predict over HTTP against bare inference, MJPEG cost per frame, RSS the interface adds."""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from edge_classifier.config.settings import Config, SourceConfig, load_config
from edge_classifier.errors import InputError
from edge_classifier.http.settings import HttpConfig
from edge_classifier.model.loading import open_classifier
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.service.compose import Seams, Service, build_service
from edge_classifier.service.metrics import rss_bytes
from edge_classifier.service.notify import Notifier

PHOTO_WH = (400, 600)  # width x height of the predicted JPEG: a portrait photo as a phone's page may send it
WARM_UP = 5
SETTLE_FRAMES = 200
RSS_REQUESTS = 200
FRAME_TIMEOUT_S = 60.0


def _ms(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    p50, p95 = np.percentile(array, (50, 95))
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "mean": round(float(array.mean()), 3)}


def sample_photo(video: Path) -> bytes:
    """A 400x600 JPEG made from the video's first frame (crop to the aspect ratio, then scale)."""
    capture = cv2.VideoCapture(str(video))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise InputError(f"--video {video}: no frame could be decoded")
    width, height = PHOTO_WH
    h, w = frame.shape[:2]
    crop_w = min(w, round(h * width / height))
    x0 = (w - crop_w) // 2
    photo = cv2.resize(frame[:, x0 : x0 + crop_w], (width, height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return bytes(buffer.tobytes())


def _http_config() -> HttpConfig:
    return HttpConfig(enabled=True, bind="127.0.0.1", port=0)


@contextlib.contextmanager
def running_service(config: Config, source_config: SourceConfig) -> Iterator[tuple[Service, Any]]:
    """The service with its HTTP interface on a free port, its loop on a thread of its own (the model's only user)."""
    from edge_classifier.capture.source import OpenCVSource
    from edge_classifier.http.server import open_http

    bench_config = replace(config, device_id="bench", model=replace(config.model, selftest=False), http=_http_config())
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        seams = Seams(source=OpenCVSource(source_config), publisher=MemoryPublisher(), notifier=Notifier({}))
        service = build_service(bench_config, stack, stop, seams)
        server = stack.enter_context(open_http(bench_config, service))
        loop = threading.Thread(target=service.loop.run, args=(stop,), name="bench-loop", daemon=True)
        loop.start()
        stack.callback(loop.join, 10)
        stack.callback(stop.set)
        if service.state.wait_for_frame(0, FRAME_TIMEOUT_S).frames_processed == 0:
            raise InputError(f"bench: no frame classified within {FRAME_TIMEOUT_S:.0f}s")
        yield service, server


def _post(connection: http.client.HTTPConnection, body: bytes) -> dict[str, Any]:
    connection.request("POST", "/api/predict", body, {"Content-Type": "image/jpeg"})
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        raise InputError(f"bench: POST /api/predict answered {response.status}: {answer[:200]!r}")
    document: dict[str, Any] = json.loads(answer)
    return document


def bare_predict_ms(config: Config, photo: bytes, iterations: int) -> list[float]:
    """The work a prediction costs without HTTP: decode the JPEG, then classify it, in this thread."""
    classifier, _ = open_classifier(replace(config.model, selftest=False))
    seconds = []
    with classifier:
        for i in range(iterations + WARM_UP):
            start = time.perf_counter()
            image = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
            classifier.classify(np.asarray(image, dtype=np.uint8)).top_k(classifier.labels, 5)
            if i >= WARM_UP:
                seconds.append(time.perf_counter() - start)
    return [1000 * s for s in seconds]


def predict_over_http(server: Any, photo: bytes, iterations: int) -> tuple[list[float], list[dict[str, float]]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    round_trips, timings = [], []
    try:
        for i in range(iterations + WARM_UP):
            start = time.perf_counter()
            document = _post(connection, photo)
            if i >= WARM_UP:
                round_trips.append(1000 * (time.perf_counter() - start))
                timings.append(document["timing_ms"])
    finally:
        connection.close()
    return round_trips, timings


def mjpeg_figures(service: Service, server: Any, frames: int) -> dict[str, Any]:
    """Render + encode cost per frame, measured directly and on a real stream, and what the stream delivers."""
    from edge_classifier.http.overlay import render

    encoder = server.parts.encoder
    snapshot = service.state.snapshot()
    direct = []
    for _ in range(frames):
        start = time.perf_counter()
        image = render(snapshot, encoder.geometry, 10.0, server.config.stream_width)
        assert image is not None
        cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, server.config.jpeg_quality])
        direct.append(1000 * (time.perf_counter() - start))
    before_n, before_s = encoder.frames_encoded, encoder.encode_s_total
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sizes: list[int] = []
    started = time.perf_counter()
    try:
        connection.request("GET", "/stream.mjpg")
        response = connection.getresponse()
        while len(sizes) < frames:
            line = response.readline()
            if line.lower().startswith(b"content-length:"):
                sizes.append(int(line.split(b":")[1]))
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    encoded = max(1, encoder.frames_encoded - before_n)
    return {
        "frames": frames,
        "width_max": server.config.stream_width,
        "fps_cap": server.config.stream_fps,
        "render_encode_ms": _ms(direct),
        "stream_encode_ms_mean": round(1000 * (encoder.encode_s_total - before_s) / encoded, 3),
        "stream_fps": round((frames - 1) / elapsed, 2) if elapsed > 0 else 0.0,
        "jpeg_bytes_mean": round(float(np.mean(sizes))),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def child_rss(config_file: str) -> None:
    """In a fresh process: the service settled, RSS; then the HTTP interface and 200 JSON requests, RSS again."""
    config = load_config(Path(config_file))
    source_config = replace(config.source, loop=True)
    with contextlib.ExitStack() as stack:
        stop = threading.Event()
        service = build_service(config, stack, stop, Seams(publisher=MemoryPublisher(), notifier=Notifier({})))
        loop = threading.Thread(target=service.loop.run, args=(stop,), daemon=True)
        loop.start()
        stack.callback(loop.join, 10)
        stack.callback(stop.set)
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        while service.state.wait_for_frame(SETTLE_FRAMES, 1.0).frames_processed < SETTLE_FRAMES:
            if time.monotonic() > deadline:
                raise InputError(f"bench: fewer than {SETTLE_FRAMES} frames within {FRAME_TIMEOUT_S:.0f}s")
        before = rss_bytes()
        from edge_classifier.http.server import open_http

        server = stack.enter_context(open_http(config, service))
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        for _ in range(RSS_REQUESTS):
            connection.request("GET", "/api/latest")
            connection.getresponse().read()
        after_json = rss_bytes()
        photo = sample_photo(Path(str(source_config.uri)))
        for _ in range(50):
            _post(connection, photo)
        for _ in range(10):
            connection.request("GET", "/metrics")
            connection.getresponse().read()
        connection.close()
        mjpeg_figures(service, server, 20)
        after_all = rss_bytes()
    print(json.dumps({"before": before, "after_json": after_json, "after_all": after_all}))


def rss_added(config: Config, video: Path) -> dict[str, Any]:
    """Measured in a fresh process, so that nothing the bench itself loaded counts."""
    tree = {
        "device_id": "bench",
        "model": {**_plain(asdict(config.model)), "selftest": False},
        # Every frame as fast as the loop takes them: the service settles in seconds; memory does not depend on it.
        "source": {"uri": str(video), "loop": True, "file_rate": "max", "decode_threads": config.source.decode_threads},
        "http": {"enabled": True, "port": 0},
    }
    with tempfile.TemporaryDirectory() as folder:
        config_file = Path(folder) / "bench-http.yaml"
        config_file.write_text(yaml.safe_dump(tree), encoding="utf-8")
        code = "import sys; from edge_classifier.bench.http_bench import child_rss; child_rss(sys.argv[1])"
        out = subprocess.run(
            [sys.executable, "-c", code, str(config_file)], capture_output=True, text=True, timeout=300
        )  # fmt: skip
    if out.returncode != 0:
        raise InputError(f"bench: the HTTP memory probe failed: {out.stderr.strip().splitlines()[-1:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    mb = 2**20
    return {
        "rss_before_mb": round(figures["before"] / mb, 1),
        "added_after_200_json_requests_mb": round((figures["after_json"] - figures["before"]) / mb, 1),
        "added_after_predicts_metrics_stream_mb": round((figures["after_all"] - figures["before"]) / mb, 1),
        "target_mb": 30,
    }


def http_bench(config: Config, video: Path, iterations: int = 100) -> dict[str, Any]:
    """The HTTP interface's figures (the `http` section of `edge-classifier bench`)."""
    photo = sample_photo(video)
    bare = bare_predict_ms(config, photo, iterations)
    # The camera's pace: frames arrive at the video's own rate, as they would from a camera.
    source_config = replace(config.source, uri=str(video), file_rate="native", loop=True)
    with running_service(config, source_config) as (service, server):
        round_trips, timings = predict_over_http(server, photo, iterations)
        mjpeg = mjpeg_figures(service, server, 15)
    waits = [t["wait"] for t in timings]
    without_wait = [rt - w for rt, w in zip(round_trips, waits, strict=True)]
    # What HTTP itself costs: the round trip less the loop's wait, the decode and the model's stages on the loop.
    work = [t["decode"] + t["preprocess"] + t["inference"] + t["postprocess"] for t in timings]
    http_only = [rt - w - x for rt, w, x in zip(round_trips, waits, work, strict=True)]
    bare_p50 = _ms(bare)["p50"]
    return {
        "predict": {
            "photo": f"{PHOTO_WH[0]}x{PHOTO_WH[1]} JPEG, {len(photo)} bytes",
            "iterations": iterations,
            "bare_decode_and_classify_ms": _ms(bare),
            "http_round_trip_ms": _ms(round_trips),
            # The main loop finishes the frame in hand (or its wait for one) before it takes a request.
            "loop_wait_ms": _ms(waits),
            "server_decode_ms": _ms([t["decode"] for t in timings]),
            "server_decode_and_classify_ms": _ms(work),
            "overhead_ms_p50": round(_ms(round_trips)["p50"] - bare_p50, 3),
            "overhead_without_loop_wait_ms_p50": round(_ms(without_wait)["p50"] - bare_p50, 3),
            "http_only_ms": _ms(http_only),
            "target_overhead_ms_p50": 3.0,
        },
        "mjpeg": mjpeg,
        "rss": rss_added(config, video),
    }
