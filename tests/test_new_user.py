"""What a new user hit (issue 14 item 7): no camera, a folder as the source, the install, a noisy log, missing models."""

import json
import logging
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from edge_classifier.capture.opening import NoCameraError, check_source, source_kind
from edge_classifier.capture.source import OpenCVSource
from edge_classifier.config.settings import SourceConfig
from edge_classifier.errors import ConfigError
from helpers import DEFAULT_MANIFEST, ROOT, SCHEMAS, run_cli

EXAMPLE_CONFIG = ROOT / "deploy" / "config.example.yaml"
SELFTEST_IMAGES = sorted(str(p) for p in DEFAULT_MANIFEST.with_suffix(".selftest").iterdir())
DRESSES = ROOT / "tests" / "data" / "real-photos" / "dress"
NO_SUCH_CAMERA = "/dev/video99"
NO_CAMERA = (
    f"no camera: {NO_SUCH_CAMERA} does not exist "
    "(to classify a file, folder or stream instead: --source FILE|FOLDER|URL|'GLOB')"
)
LITERT_BANNER = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def daemon_args(port, device, *extra):
    return ("--device-id", device, "--set", f"mqtt.port={port}", "--set", "mqtt.host=127.0.0.1", *extra)


# -- 1. no camera -----------------------------------------------------------------------------------


def wait_for(source, condition, seconds=20.0):
    """Let the source run (the consumer waits for frames) until condition(stats) holds; the last stats."""
    deadline = time.monotonic() + seconds
    while not condition(source.stats()) and time.monotonic() < deadline:
        source.get(0.1)
    return source.stats()


def test_no_camera_is_said_once_and_looked_for_quietly(caplog):
    """A camera device that does not exist is one WARNING naming it and the alternatives, then quiet retries, state absent."""
    assert False == Path(NO_SUCH_CAMERA).exists()
    config = SourceConfig(uri=NO_SUCH_CAMERA, reopen_backoff_s=0.01, reopen_backoff_max_s=0.02)
    with OpenCVSource(config) as source:
        stats = wait_for(source, lambda s: s.reopens >= 4)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert ("absent", True, [f"source {NO_SUCH_CAMERA}: {NO_CAMERA}; looking for one every 0.02s"]) == (
        stats.state, stats.reopens >= 4, warnings)  # fmt: skip


class CameraFrames:
    """A camera that was plugged in: distinct frames until closed."""

    def __init__(self):
        self.count = 0

    def isOpened(self):  # noqa: N802
        return True

    def read(self):
        self.count += 1
        return True, np.full((4, 4, 3), self.count % 256, dtype=np.uint8)

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return True

    def release(self):
        pass


def test_camera_plugged_in_later_is_found_and_said(caplog):
    """While no camera is there the state is absent; once one appears frames flow, the state is running and it is logged."""
    caplog.set_level(logging.INFO, logger="edge_classifier.capture.source")
    plugged_in = threading.Event()

    def opener(config):
        if not plugged_in.is_set():
            raise NoCameraError(f"no camera: {config.uri} does not exist")
        return CameraFrames()

    config = SourceConfig(uri=NO_SUCH_CAMERA, reopen_backoff_s=0.01, reopen_backoff_max_s=0.02)
    with OpenCVSource(config, opener=opener) as source:
        before = wait_for(source, lambda s: s.reopens >= 3)
        plugged_in.set()
        frame, deadline = None, time.monotonic() + 20
        while frame is None and time.monotonic() < deadline:
            frame = source.get(0.5)
        after = source.stats()
    levels = [(r.levelname, r.getMessage().split(";")[0]) for r in caplog.records]
    assert ("absent", True, "running") == (before.state, frame is not None, after.state)
    assert [
        ("WARNING", f"source {NO_SUCH_CAMERA}: no camera: {NO_SUCH_CAMERA} does not exist"),
        ("INFO", f"source {NO_SUCH_CAMERA}: a camera appeared"),
    ] == levels


def test_check_config_warns_about_a_camera_that_is_not_there():
    """check-config still says OK (exit 0) but warns on stderr that the configured camera device does not exist."""
    out = run_cli("check-config", str(EXAMPLE_CONFIG), "--set", f"source.uri={NO_SUCH_CAMERA}")
    warnings = [line for line in out.stderr.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert (0, [f"warning: source.uri: {NO_CAMERA}; `run` waits for one to be plugged in"]) == (
        out.returncode, warnings)  # fmt: skip
    assert True == out.stdout.startswith(f"{EXAMPLE_CONFIG}: OK ")


@pytest.mark.slow
def test_daemon_without_a_camera_publishes_absent_and_warns_once(broker, subscriber, daemons):
    """`run` on a missing camera publishes camera state absent (valid metrics) across retries, with one warning and no native noise."""
    proc = daemons(
        "--source", NO_SUCH_CAMERA,
        *daemon_args(broker.port, "nocam", "--set", "source.reopen_backoff_s=0.05",
                     "--set", "source.reopen_backoff_max_s=0.1", "--set", "mqtt.metrics_interval_s=0.2"),
    )  # fmt: skip
    metrics = subscriber.wait_for(
        lambda m: m.topic == "edge-classifier/nocam/metrics" and m.json()["camera"]["reopens"] >= 3
    ).json()
    code = proc.stop()
    jsonschema.validate(metrics, json.loads((SCHEMAS / "metrics.schema.json").read_text()))
    warned = [line.split(": ", 1)[1].rstrip() for line in proc.lines if " WARNING " in line and "camera" in line]
    native = [line for line in proc.lines if line.startswith("[") or "XNNPACK" in line]
    assert (0, "absent", [f"source {NO_SUCH_CAMERA}: {NO_CAMERA}; looking for one every 0.1s"], []) == (
        code, metrics["camera"]["state"], warned, native)  # fmt: skip


# -- 2. a folder of images --------------------------------------------------------------------------


def test_folder_source_plays_its_images_in_name_order(tmp_path):
    """A folder plays its image files sorted by name, whatever the suffix's case; other files, folders and dotfiles are not frames."""
    for name, value in (("b.JPG", 100), ("a.png", 50), ("c.bmp", 150), (".hidden.png", 200)):
        cv2.imwrite(str(tmp_path / name.lower()), np.full((10, 10, 3), value, dtype=np.uint8))
        (tmp_path / name.lower()).rename(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()
    with OpenCVSource(SourceConfig(uri=str(tmp_path), file_rate="max")) as source:
        frames, deadline = [], time.monotonic() + 20
        while not source.ended and time.monotonic() < deadline:
            frame = source.get(5.0)
            if frame is not None:
                frames.append(round(float(frame.image_bgr.mean())))
        state = source.stats().state
    assert ("folder", [50, 100, 150], "ended") == (source_kind(str(tmp_path)), frames, state)


@pytest.mark.parametrize(
    ("content", "message"),
    [({}, "source.uri: folder '{dir}' holds no image file (jpg, jpeg, png, bmp, webp, tif, tiff)"),
     ({"a.png": "not an image", "b.txt": "text"}, "source.uri: none of the images in folder '{dir}' is readable")],
)  # fmt: skip
def test_folder_without_a_readable_image_is_refused(tmp_path, content, message):
    """A folder with no image, or none readable, is a ConfigError naming source.uri, as a glob's would be."""
    for name, text in content.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as caught:
        check_source(SourceConfig(uri=str(tmp_path)))
    assert message.format(dir=tmp_path) == str(caught.value)


@pytest.mark.slow
def test_daemon_classifies_a_folder_of_photos_to_the_end(broker, subscriber, daemons):
    """`edge-classifier run --source FOLDER` with source.file_rate=max classifies the photos, ends and exits 0."""
    proc = daemons("--source", str(DRESSES), *daemon_args(broker.port, "folder", "--set", "source.file_rate=max"))
    code = proc.wait(120)
    subscriber.wait_for(lambda m: m.topic == "edge-classifier/folder/status" and m.payload == "offline")
    labels = {m.json()["label"] for m in subscriber.seen if m.topic == "edge-classifier/folder/result"}
    assert (0, {"Dress"}) == (code, labels - {"unknown"}), proc.log


# -- 3. getting the command -------------------------------------------------------------------------


def running_it_commands():
    """The commands of the README's `Running it` block, comments dropped."""
    section = (ROOT / "README.md").read_text().split("## Running it", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_gets_the_command_from_the_venv_the_setup_script_makes():
    """The README's Running-it block makes .venv with deploy/dev-setup.sh and activates it; no bare `pip install`."""
    commands = running_it_commands()
    setup = commands[: next(i for i, c in enumerate(commands) if c.startswith("edge-classifier"))]
    script = (ROOT / "deploy" / "dev-setup.sh").read_text()
    assert ["bash deploy/dev-setup.sh mosquitto", "source .venv/bin/activate"] == setup
    assert (True, True) == (
        "python3 -m venv .venv" in script,
        bool(re.search(r"\.venv/bin/python -m pip install .*-e ", script)),
    )


def test_activated_venv_puts_the_command_on_path():
    """`source .venv/bin/activate`, as the README says, is what makes `edge-classifier` a command of the shell."""
    from edge_classifier import __version__

    if not (ROOT / ".venv" / "bin" / "activate").is_file():
        pytest.skip("no .venv in the checkout (deploy/dev-setup.sh makes it)")
    out = subprocess.run(
        ["bash", "-c", "source .venv/bin/activate && edge-classifier --version"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert (0, f"edge-classifier {__version__}\n") == (out.returncode, out.stdout)


# -- 4. the log says what matters ------------------------------------------------------------------


def test_classify_stderr_has_only_our_log():
    """classify's stderr is our own log (the self-test line), without LiteRT's XNNPACK banner; -v shows the banner again."""
    quiet = run_cli("classify", *SELFTEST_IMAGES)
    verbose = run_cli("-v", "classify", SELFTEST_IMAGES[0])
    ours = re.compile(r"\d{4}-\d\d-\d\d [\d:,]+ (DEBUG|INFO|WARNING|ERROR) edge_classifier\.")
    assert (0, len(SELFTEST_IMAGES), []) == (
        quiet.returncode, len(quiet.stdout.splitlines()), [line for line in quiet.stderr.splitlines() if not ours.match(line)])  # fmt: skip
    assert True == (LITERT_BANNER in verbose.stderr.splitlines())


@pytest.mark.slow
def test_opencv_warnings_stay_out_of_the_daemon_log(daemons, tmp_path):
    """A device OpenCV cannot open is logged by the source alone, not also by OpenCV's own [ WARN ] lines."""
    proc = daemons("--source", "/dev/null", "--set", "mqtt.connect_wait_s=0", "--set", "mqtt.port=1",
                   "--set", "source.reopen_backoff_s=0.05", "--set", "source.reopen_backoff_max_s=0.1")  # fmt: skip
    # Logged once (rate-limited); OpenCV prints its own warning before each open, so one open shows it.
    proc.wait_for_line(lambda line: "cannot open source '/dev/null'" in line)
    proc.stop()
    assert [] == [line for line in proc.lines if line.startswith("[") or "XNNPACK" in line]


@pytest.mark.slow  # a whole bench run
def test_bench_prints_its_json_and_no_log():
    """bench writes its JSON on stdout and nothing on stderr: no per-label INFO lines from the measured loop, no banner."""
    out = run_cli("bench", "--iterations", "20", "--frames", "100")
    assert (0, "", 100) == (out.returncode, out.stderr, json.loads(out.stdout)["end_to_end"]["frames"])


# -- 5. missing models name the key -------------------------------------------------------------------


def manifest_without_its_model(folder):
    """The default manifest copied alone into `folder`, so the .tflite it names is missing."""
    return shutil.copy(DEFAULT_MANIFEST, folder / DEFAULT_MANIFEST.name)


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--model", "/nonexistent.json"), "model.manifest: '/nonexistent.json' does not exist"),
     (("--set", "model.path=/x.tflite", "--set", "model.labels=/y.txt"), "model.path: model file '/x.tflite' does not exist"),
     (("--set", f"model.path={DEFAULT_MANIFEST.with_suffix('.tflite')}", "--set", "model.labels=/y.txt"),
      "model.labels: cannot read labels file /y.txt: No such file or directory"),
     (("--model", "{tmp}/clothing-mobilenetv2.json"),
      "model.manifest: model file {tmp}/clothing-mobilenetv2.tflite named by {tmp}/clothing-mobilenetv2.json does not exist")],
    ids=["manifest", "path", "labels", "manifest-model-file"],
)  # fmt: skip
def test_missing_model_files_name_the_config_key(tmp_path, args, message):
    """A manifest, model file or labels file that is missing is one line naming the dotted config key, exit 78."""
    manifest_without_its_model(tmp_path)
    out = run_cli("classify", *[a.format(tmp=tmp_path) for a in args], SELFTEST_IMAGES[0])
    assert (78, f"error: {message.format(tmp=tmp_path)}\n") == (out.returncode, out.stderr)
