"""Model hot-swap: loaded and verified on the loop's thread, served from the next frame with none lost, the previous
model kept, and rolled back when the new model's first live inferences fail."""

from __future__ import annotations

import json
import shutil
import signal
import threading

import jsonschema
import numpy as np
import pytest
from test_commands import BASE, Collector, daemon_args, publish, rig, wait_ack

from edge_classifier.config.settings import Config, MqttConfig, ResultConfig
from edge_classifier.errors import BusyError, ModelError, StoppedError
from edge_classifier.model.identity import ModelInfo
from edge_classifier.service.hot_swap import PROBATION_FRAMES
from edge_classifier.service.inbox import SwapModelRequest
from fakes import FAKE_MODEL, FakeRunner, fake_classifier
from helpers import DEFAULT_MANIFEST, FASHION_MANIFEST, SCHEMAS

NEW_MODEL = ModelInfo("fake-two", "2", "2" * 64)
# Results and metrics on every other frame, with time that advances 10 ms at each reading.
FAST = Config(device_id="unit", result=ResultConfig(heartbeat_s=0.1), mqtt=MqttConfig(metrics_interval_s=0.1))


class FakeClock:
    """Time that advances by 10 ms each time it is read."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.01
        return self.now


METRICS_SCHEMA = json.loads((SCHEMAS / "metrics.schema.json").read_text())


class RaisingRunner(FakeRunner):
    """A model that loads but fails when it runs (a broken delegate, an op the runtime cannot execute)."""

    def invoke(self, input_tensor):
        super().invoke(input_tensor)
        raise RuntimeError("Node number 3 (CONV_2D) failed to invoke.")


class NanRunner(FakeRunner):
    """A model whose float output is NaN (an overflowed float32 export)."""

    def invoke(self, input_tensor):
        return super().invoke(input_tensor) * np.float32("nan")


def swap(r, runner, model=NEW_MODEL, verify_frames=PROBATION_FRAMES):
    """Submit a swap to the inbox as another thread would; the request, for its reply."""
    request = SwapModelRequest(lambda: (fake_classifier(runner), model), verify_frames=verify_frames)
    r.service.inbox.submit(request)
    return request


def test_a_swap_is_answered_once_the_new_model_classified_its_first_live_frames():
    """The reply waits for the first live frames; every frame in between is classified; the old model is kept."""
    new_runner = FakeRunner()
    with rig() as r:
        r.answers(2)
        before = r.service.state.snapshot().frames_processed
        request = swap(r, new_runner)
        r.answers(PROBATION_FRAMES)
        waiting = request.reply.done()
        r.answers(1)
        keeper = r.loop.parts.models
        state = r.service.state.snapshot()
        result = (request.reply.result(0), keeper.previous.info, r.runner.closed, state.model)
    assert (False, (NEW_MODEL, FAKE_MODEL, False, NEW_MODEL)) == (waiting, result)
    assert (before + PROBATION_FRAMES + 1, PROBATION_FRAMES, {threading.get_ident()}) == (
        state.frames_processed, new_runner.invocations, new_runner.threads)  # fmt: skip


@pytest.mark.parametrize(
    ("runner", "problem"),
    [
        (RaisingRunner(), "raised RuntimeError: Node number 3 (CONV_2D) failed to invoke."),
        (NanRunner(), "gave the score nan for"),
    ],
    ids=["raises", "nan"],
)
def test_a_new_model_that_fails_live_is_rolled_back_and_no_frame_is_lost(runner, problem):
    """Its first live frame fails: the previous model serves again and classifies that same frame; the reply says
    why; the failed model is closed; the rollback is counted."""
    with rig() as r:
        r.answers(2)
        request = swap(r, runner)
        before = r.service.state.snapshot().frames_processed
        r.answers(1)  # the swap is served after this iteration's frame
        r.answers(1)  # the new model's first live frame
        state = r.service.state.snapshot()
        keeper = r.loop.parts.models
        with pytest.raises(ModelError) as caught:
            request.reply.result(0)
    assert (FAKE_MODEL, before + 2, "hundred", True, 1, None) == (
        state.model, state.frames_processed, state.latest.best.label if state.latest else None, runner.closed,
        keeper.rollbacks, keeper.previous,
    )  # fmt: skip
    expected = "model fake-two 2 was rolled back to fake 1: its live inference on frame "
    assert (True, True) == (str(caught.value).startswith(expected), problem in str(caught.value)), str(caught.value)


def test_a_second_swap_while_the_first_is_verified_is_refused():
    """One new model at a time: a swap during verification is refused at once, without loading anything."""
    loads = []
    with rig() as r:
        r.answers(1)
        swap(r, FakeRunner())
        r.answers(1)
        second = SwapModelRequest(lambda: loads.append(1) or (fake_classifier(FakeRunner()), FAKE_MODEL))
        r.service.inbox.submit(second)
        r.answers(1)
        with pytest.raises(BusyError, match="is still being verified on live frames"):
            second.reply.result(0)
    assert [] == loads


def test_rollback_serves_the_previous_model_and_closes_the_current():
    """model/rollback after a verified swap: the old model serves again, the new one is closed, nothing is kept."""
    new_runner = FakeRunner()
    with rig() as r:
        r.answers(1)
        request = swap(r, new_runner)
        r.answers(PROBATION_FRAMES + 1)
        request.reply.result(0)
        ack = r.ask("model/rollback", {"id": "rb"})
        snapshot = r.service.state.snapshot()
        previous = r.loop.parts.models.previous
    assert ("done", FAKE_MODEL.as_dict(), NEW_MODEL.as_dict(), FAKE_MODEL, True, None) == (
        ack["status"], ack["data"]["model"], ack["data"]["rolled_back"], snapshot.model, new_runner.closed, previous,
    )  # fmt: skip


def test_state_metrics_and_status_name_the_model_in_use():
    """After a swap, the state, the next metrics message (valid) and status all name the new model."""
    with rig(FAST, clock=FakeClock()) as r:
        r.answers(1)
        swap(r, FakeRunner(), verify_frames=0)
        status = r.ask("status")["data"]
        r.answers(2)
        metrics = json.loads([m for m in r.publisher.messages if m.topic == f"{BASE}/metrics"][-1].payload)
        state = r.service.state.snapshot()
    jsonschema.validate(metrics, METRICS_SCHEMA)
    assert (NEW_MODEL, NEW_MODEL.as_dict(), None, NEW_MODEL.as_dict(), FAKE_MODEL.as_dict()) == (
        state.model, metrics["model"], metrics["model_fallback"], status["model"], status["previous_model"])  # fmt: skip


def test_stopping_closes_the_kept_model_and_fails_a_waiting_verification():
    """At stop, the model kept for a rollback is closed too, and a swap still being verified gets StoppedError."""
    new_runner = FakeRunner()
    with rig() as r:
        r.answers(1)
        request = swap(r, new_runner)
        r.answers(1)
    with pytest.raises(StoppedError):
        request.reply.result(0)
    assert (True, True) == (r.runner.closed, new_runner.closed)


def test_model_load_command_serves_the_bundled_fashion_model():
    """model/load fashion-mobilenetv2 (real model, self-test on this thread) is answered once verified; the
    results then name it."""
    with rig(FAST, clock=FakeClock()) as r:
        r.answers(1)
        ack = r.ask("model/load", {"id": "load", "manifest": "fashion-mobilenetv2"})
        r.answers(2)
        result = json.loads([m for m in r.publisher.messages if m.topic == f"{BASE}/result"][-1].payload)
    assert ("done", "fashion-mobilenetv2", True, FAKE_MODEL.as_dict(), "fashion-mobilenetv2") == (
        ack["status"], ack["data"]["model"]["name"], ack["data"]["verified"], ack["data"]["previous_model"],
        result["model"]["name"],
    )  # fmt: skip


def copy_models(folder):
    """Both bundled models' files in `folder` (a models directory of the test's own)."""
    for manifest in (DEFAULT_MANIFEST, FASHION_MANIFEST):
        stem = manifest.stem
        for suffix in (".json", ".tflite", ".labels.txt"):
            shutil.copy(manifest.with_name(stem + suffix), folder / (stem + suffix))
        shutil.copytree(manifest.with_name(stem + ".selftest"), folder / (stem + ".selftest"))
    return folder / DEFAULT_MANIFEST.name


def test_hot_swap_and_rollback_while_frames_flow(broker, daemons, tmp_path):
    """Daemon on the looped video: model/load of the Fashion-MNIST model while frames flow, results and metrics
    then name it with frames still rising, rollback back to the default."""
    collector = Collector(broker.port, "edge-classifier/swap/#")
    try:
        daemon = daemons(*daemon_args(broker.port, "swap", "--set", "result.heartbeat_s=0.5"))
        first = collector.metrics()
        publish(
            broker.port,
            "edge-classifier/swap/cmd/model/load",
            json.dumps({"id": "l", "manifest": "fashion-mobilenetv2"}),
        )
        loaded = wait_ack(collector, "model/load", "l")
        result = json.loads(collector.wait_for(lambda m: m.topic.endswith("/result")).payload)
        during = collector.metrics()
        publish(broker.port, "edge-classifier/swap/cmd/model/rollback", json.dumps({"id": "r"}))
        rolled = wait_ack(collector, "model/rollback", "r")
        back = json.loads(collector.wait_for(lambda m: m.topic.endswith("/result")).payload)
        after = collector.metrics()
        code = daemon.stop(signal.SIGTERM)
    finally:
        collector.close()
    names = [m["model"]["name"] for m in (first, loaded["data"], result, during, rolled["data"], back, after)]
    assert ["clothing-mobilenetv2", "fashion-mobilenetv2", "fashion-mobilenetv2", "fashion-mobilenetv2",
            "clothing-mobilenetv2", "clothing-mobilenetv2", "clothing-mobilenetv2"] == names  # fmt: skip
    assert (0, True, True) == (
        code, first["frames_processed"] < during["frames_processed"] < after["frames_processed"], loaded["ok"])  # fmt: skip


def test_a_corrupt_manifest_fails_and_the_old_model_keeps_serving(broker, daemons, tmp_path):
    """A manifest whose sha256 does not match its model: the answer says so, and the old model keeps classifying."""
    manifest = copy_models(tmp_path)
    corrupt = json.loads(FASHION_MANIFEST.read_text())
    corrupt["sha256"] = "0" * 64
    (tmp_path / "corrupt.json").write_text(json.dumps(corrupt))
    collector = Collector(broker.port, "edge-classifier/bad/#")
    try:
        daemon = daemons(*daemon_args(broker.port, "bad", "--set", f"model.manifest={manifest}"))
        first = collector.metrics()
        publish(broker.port, "edge-classifier/bad/cmd/model/load",
                json.dumps({"id": "c", "manifest": str(tmp_path / "corrupt.json")}))  # fmt: skip
        ack = wait_ack(collector, "model/load", "c")
        after = collector.metrics()
        code = daemon.stop(signal.SIGTERM)
    finally:
        collector.close()
    assert (0, "failed", True, "clothing-mobilenetv2", "clothing-mobilenetv2", True) == (
        code, ack["status"], "the file was changed or replaced" in ack["error"], ack["data"]["model"]["name"],
        after["model"]["name"], after["frames_processed"] > first["frames_processed"],
    ), ack  # fmt: skip
