"""The main loop as the model's only owner: other threads use its inbox and read its state while frames flow."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from edge_classifier.config.settings import Config, ResultConfig
from edge_classifier.errors import BusyError, ModelError, StoppedError
from edge_classifier.model.identity import ModelInfo
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.service.compose import Seams, Service, build_service
from edge_classifier.service.inbox import Inbox, PredictRequest, SettingsRequest, SwapModelRequest
from fakes import FAKE_LABELS, FAKE_MODEL, TOP_SCORE, EndlessSource, FakeRunner, fake_classifier, solid_frame

WAIT_S = 10.0  # bound on every wait; a healthy loop answers in milliseconds


@dataclass
class Running:
    service: Service
    runner: FakeRunner
    source: EndlessSource
    loop_thread: threading.Thread
    publisher: MemoryPublisher


@pytest.fixture
def running() -> Iterator[Running]:
    """The service wired by the composition root with fakes at its edges, its loop on its own thread."""
    runner, source, publisher = FakeRunner(), EndlessSource(0), MemoryPublisher()
    stop = threading.Event()
    config = Config(device_id="unit", result=ResultConfig(vote_window=3))
    with contextlib.ExitStack() as stack:
        seams = Seams(source=source, publisher=publisher, model=(fake_classifier(runner), FAKE_MODEL))
        service = build_service(config, stack, stop, seams)
        thread = threading.Thread(target=service.loop.run, args=(stop,), name="main-loop")
        thread.start()
        yield Running(service, runner, source, thread, publisher)
        stop.set()
        thread.join(WAIT_S)
        assert not thread.is_alive(), "the main loop did not stop"


def test_predictions_from_many_threads_are_served_by_the_loop_thread_only(running):
    """Forty predict requests from four threads, while frames flow, get the right labels; only the loop invokes."""
    frames_before = running.service.state.snapshot().frames_processed

    def ask(value: int) -> str:
        future = running.service.inbox.submit(PredictRequest(solid_frame(value), 2))
        return future.result(WAIT_S).top_k[0].label

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, [0, 50, 100, 150, 200] * 8, timeout=WAIT_S))
    after = running.service.state.wait_for_frame(frames_before + 5, WAIT_S)
    assert list(FAKE_LABELS) * 8 == answers
    assert {running.loop_thread.ident} == running.runner.threads
    assert after.frames_processed > frames_before + 5


def test_prediction_carries_model_and_timings(running):
    """A prediction names the serving model and has its top-k and non-negative stage timings."""
    prediction = running.service.inbox.submit(PredictRequest(solid_frame(100), 3)).result(WAIT_S)
    assert (FAKE_MODEL, "hundred", TOP_SCORE, 3) == (
        prediction.model,
        prediction.top_k[0].label,
        pytest.approx(prediction.top_k[0].score),
        len(prediction.top_k),
    )
    assert [True, True, True] == [
        ms >= 0 for ms in (prediction.preprocess_ms, prediction.inference_ms, prediction.postprocess_ms)
    ]


def test_bad_image_is_refused_and_the_loop_goes_on(running):
    """A grey (HxW) image gets an InputError through its future; frames keep flowing."""
    future = running.service.inbox.submit(PredictRequest(solid_frame(0)[:, :, 0], 1))
    with pytest.raises(Exception, match="expected an HxWx3 8-bit BGR image"):
        future.result(WAIT_S)
    before = running.service.state.snapshot().frames_processed
    assert running.service.state.wait_for_frame(before + 3, WAIT_S).frames_processed > before + 3


def test_runtime_state_shows_latest_frame_and_stable_label(running):
    """After the scene changes, a reader sees the new frame's result, the frame itself and the voted label."""
    running.source.value = 150
    state = running.service.state
    snapshot = state.wait_for_frame(state.snapshot().frames_processed + 5, WAIT_S)
    assert ("one-fifty", "one-fifty", (24, 32, 3), FAKE_MODEL) == (
        snapshot.latest.best.label if snapshot.latest else None,
        snapshot.stable.label,
        snapshot.frame_bgr.shape if snapshot.frame_bgr is not None else None,
        snapshot.model,
    )
    assert ("running", True) == (snapshot.source.state, snapshot.publisher.connected)


def test_settings_change_applies_between_frames(running):
    """Raising min_score above the fake's score makes the stable label `unknown`; the reply says what is in force."""
    state = running.service.state
    state.wait_for_frame(3, WAIT_S)
    reply = running.service.inbox.submit(SettingsRequest(ResultConfig(vote_window=1, min_score=0.95))).result(WAIT_S)
    snapshot = state.wait_for_frame(state.snapshot().frames_processed + 2, WAIT_S)
    assert (1, 0.95, "unknown") == (reply.vote_window, reply.min_score, snapshot.stable.label)


def test_model_swap_serves_the_new_model_from_the_next_frame(running):
    """After a swap, results and predictions come from the new model; the old one is kept open for a rollback."""
    new_runner = FakeRunner(2)
    new_model = ModelInfo("fake-two", "2", "1" * 64)
    labels = ("dark", "light")
    swap = SwapModelRequest(lambda: (fake_classifier(new_runner, labels), new_model))
    assert new_model == running.service.inbox.submit(swap).result(WAIT_S)
    state = running.service.state
    snapshot = state.wait_for_frame(state.snapshot().frames_processed + 3, WAIT_S)
    prediction = running.service.inbox.submit(PredictRequest(solid_frame(200), 1)).result(WAIT_S)
    assert (new_model, "dark", "light", False) == (
        snapshot.model, snapshot.latest.best.label if snapshot.latest else None, prediction.top_k[0].label,
        running.runner.closed,
    )  # fmt: skip


def test_failed_model_swap_keeps_the_old_model_serving(running):
    """A swap whose load fails answers with the error; the old model keeps classifying frames."""

    def broken() -> tuple:
        raise ModelError("model.manifest: 'missing.json' does not exist")

    with pytest.raises(ModelError, match="missing.json"):
        running.service.inbox.submit(SwapModelRequest(broken)).result(WAIT_S)
    state = running.service.state
    snapshot = state.wait_for_frame(state.snapshot().frames_processed + 3, WAIT_S)
    assert (FAKE_MODEL, False, "zero") == (
        snapshot.model,
        running.runner.closed,
        snapshot.latest.best.label if snapshot.latest else None,
    )


def test_full_inbox_refuses_at_once():
    """With the capacity taken, one more request is a BusyError, not a wait."""
    inbox = Inbox(capacity=2)
    inbox.submit(PredictRequest(solid_frame(0), 1))
    inbox.submit(PredictRequest(solid_frame(0), 1))
    with pytest.raises(BusyError, match="2 requests are already waiting"):
        inbox.submit(PredictRequest(solid_frame(0), 1))


def test_closing_the_inbox_fails_waiting_requests():
    """Requests still waiting when the service stops get a StoppedError; later ones are refused."""
    inbox = Inbox()
    waiting = inbox.submit(PredictRequest(solid_frame(0), 1))
    inbox.close()
    with pytest.raises(StoppedError):
        waiting.result(WAIT_S)
    with pytest.raises(StoppedError):
        inbox.submit(PredictRequest(solid_frame(0), 1))


def test_stopping_closes_the_model_the_loop_owns():
    """When the service's stack closes, the model is closed and the source too."""
    runner, source = FakeRunner(), EndlessSource(0)
    with contextlib.ExitStack() as stack:
        seams = Seams(source=source, publisher=MemoryPublisher(), model=(fake_classifier(runner), FAKE_MODEL))
        service = build_service(Config(device_id="unit"), stack, threading.Event(), seams)
        service.loop.step()
    assert (True, True, 1) == (runner.closed, source.closed, runner.invocations)
