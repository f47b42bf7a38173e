"""The fallback model at start-up: a configured model that is missing, corrupt or fails its self-test gives way to
model.fallback_manifest, said loudly (log, status, metrics); no usable model at all is still exit 78."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import threading
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from test_commands import Collector, daemon_args, publish, wait_ack
from test_hot_swap import FAST, FakeClock

from edge_classifier.config.settings import ModelConfig, load_config
from edge_classifier.errors import ModelError
from edge_classifier.model.loading import load_with_fallback
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.notify import Notifier
from fakes import EndlessSource
from helpers import DEFAULT_MANIFEST, FASHION_MANIFEST, SAMPLE_VIDEO, SCHEMAS, run_cli


def copy_fashion(folder: Path) -> Path:
    """The Fashion-MNIST model's files in `folder`, to be broken by the test."""
    stem = FASHION_MANIFEST.stem
    for suffix in (".json", ".tflite", ".labels.txt"):
        shutil.copy(FASHION_MANIFEST.with_name(stem + suffix), folder / (stem + suffix))
    shutil.copytree(FASHION_MANIFEST.with_name(stem + ".selftest"), folder / (stem + ".selftest"))
    return folder / FASHION_MANIFEST.name


def corrupt_model(manifest: Path) -> None:
    model = manifest.with_suffix(".tflite")
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))


def failing_selftest(manifest: Path) -> None:
    document = json.loads(manifest.read_text())
    case = document["selftest"][0]
    case["label"] = next(label for label in document["labels"] if label != case["label"])
    manifest.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("breaks", "reason"),
    [
        (lambda m: m.unlink(), "model.manifest: '{m}' does not exist"),
        (corrupt_model, "the file was changed or replaced"),
        (failing_selftest, "model self-test failed on 1/10 images"),
    ],
    ids=["missing", "corrupt", "selftest"],
)
def test_a_broken_configured_model_gives_way_to_the_fallback(tmp_path, caplog, breaks, reason):
    """Missing, corrupt or failing its self-test: the default model serves, the reason is kept, an ERROR is logged."""
    manifest = copy_fashion(tmp_path)
    breaks(manifest)
    with caplog.at_level(logging.ERROR, logger="edge_classifier.model.loading"):
        loaded = load_with_fallback(ModelConfig(manifest=manifest))
    loaded.classifier.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert ("clothing-mobilenetv2", True, 1) == (
        loaded.info.name, reason.format(m=manifest) in (loaded.fallback or ""), len(errors))  # fmt: skip
    assert "running on the FALLBACK model clothing-mobilenetv2" in errors[0]


def test_the_configured_model_serves_without_a_fallback_reason():
    """A usable configured model: it serves, no fallback, nothing logged at ERROR."""
    loaded = load_with_fallback(ModelConfig(manifest=FASHION_MANIFEST))
    loaded.classifier.close()
    assert ("fashion-mobilenetv2", None) == (loaded.info.name, loaded.fallback)


def test_a_disabled_fallback_keeps_the_error(tmp_path):
    """model.fallback_manifest: null: the configured model's own error stops the start-up."""
    with pytest.raises(ModelError) as caught:
        load_with_fallback(ModelConfig(manifest=tmp_path / "gone.json", fallback_manifest=None))
    assert f"model.manifest: '{tmp_path / 'gone.json'}' does not exist" == str(caught.value)


def test_an_unusable_fallback_names_both_problems(tmp_path):
    """Configured model and fallback both broken: one error naming both keys."""
    config = ModelConfig(manifest=tmp_path / "gone.json", fallback_manifest=tmp_path / "also-gone.json")
    with pytest.raises(ModelError) as caught:
        load_with_fallback(config)
    assert (
        f"model.manifest: '{tmp_path / 'gone.json'}' does not exist; and the fallback is unusable too: "
        f"model.fallback_manifest: '{tmp_path / 'also-gone.json'}' does not exist"
    ) == str(caught.value)


def test_a_fallback_that_is_the_configured_model_is_not_tried_twice(tmp_path):
    """The broken configured model is the fallback itself: its own error, not a second attempt."""
    manifest = copy_fashion(tmp_path)
    corrupt_model(manifest)
    with pytest.raises(ModelError, match="the file was changed or replaced") as caught:
        load_with_fallback(ModelConfig(manifest=manifest, fallback_manifest=manifest))
    assert "unusable too" not in str(caught.value)


def test_the_fallback_key_defaults_to_the_bundled_model_and_null_disables_it():
    """model.fallback_manifest: the bundled default model's name unless set; null turns the fallback off."""
    assert (Path(DEFAULT_MANIFEST.stem), None) == (
        load_config().model.fallback_manifest,
        load_config(None, ("model.fallback_manifest=null",)).model.fallback_manifest,
    )


def test_state_status_and_metrics_say_the_fallback_serves(tmp_path):
    """Built by the composition root with a missing configured model: the state, status and metrics carry why."""
    config = replace(FAST, model=ModelConfig(manifest=tmp_path / "gone.json"))
    publisher = MemoryPublisher()
    with contextlib.ExitStack() as stack:
        seams = Seams(EndlessSource(100), publisher, Notifier({}), clock=FakeClock())
        service = build_service(config, stack, threading.Event(), seams)
        for _ in range(3):
            service.loop.step()
        state = service.state.snapshot()
    metrics = json.loads([m for m in publisher.messages if m.topic.endswith("/metrics")][-1].payload)
    jsonschema.validate(metrics, json.loads((SCHEMAS / "metrics.schema.json").read_text()))
    reason = f"model.manifest: '{tmp_path / 'gone.json'}' does not exist"
    assert ("clothing-mobilenetv2", reason, reason, "clothing-mobilenetv2") == (
        state.model.name, state.model_fallback, metrics["model_fallback"], metrics["model"]["name"])  # fmt: skip


def test_daemon_starts_on_the_fallback_and_says_so(broker, daemons, tmp_path):
    """A configured model that does not exist: the daemon runs on the default model, logs an ERROR, metrics and
    status name the fallback and why; SIGTERM still ends it with 0."""
    missing = tmp_path / "missing.json"
    collector = Collector(broker.port, "edge-classifier/fb/#")
    try:
        daemon = daemons(*daemon_args(broker.port, "fb", "--set", f"model.manifest={missing}"))
        metrics = collector.metrics()
        publish(broker.port, "edge-classifier/fb/cmd/status", json.dumps({"id": "s"}))
        status = wait_ack(collector, "status", "s")["data"]
        code = daemon.stop(signal.SIGTERM)
    finally:
        collector.close()
    reason = f"model.manifest: '{missing}' does not exist"
    error_lines = [line for line in daemon.lines if " ERROR " in line]
    assert (0, "clothing-mobilenetv2", reason, "clothing-mobilenetv2", reason, 1) == (
        code, metrics["model"]["name"], metrics["model_fallback"], status["model"]["name"], status["model_fallback"],
        len(error_lines),
    ), daemon.log  # fmt: skip
    assert "running on the FALLBACK model clothing-mobilenetv2" in error_lines[0]


@pytest.mark.parametrize(
    "fallback",
    ["null", "{tmp}/also-missing.json"],
    ids=["fallback-disabled", "fallback-missing"],
)
def test_no_usable_model_is_exit_78(tmp_path, fallback):
    """Configured model missing and no usable fallback: one error line naming the key, exit 78."""
    missing = tmp_path / "missing.json"
    out = run_cli("run", "--source", str(SAMPLE_VIDEO), "--set", f"model.manifest={missing}",
                  "--set", f"model.fallback_manifest={fallback.format(tmp=tmp_path)}",
                  "--set", "mqtt.connect_wait_s=0")  # fmt: skip
    last = out.stderr.splitlines()[-1]
    assert (78, True, False) == (
        out.returncode, last.startswith(f"error: model.manifest: '{missing}' does not exist"), "Traceback" in out.stderr)  # fmt: skip
