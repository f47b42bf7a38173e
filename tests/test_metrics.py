"""Metrics that several consumers read, each over its own window, without resetting another's."""

from edge_classifier.service.frame_result import StageTimings
from edge_classifier.service.metrics import Metrics, Window


class StepClock:
    """Time that moves only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def record(metrics, count, inference_ms):
    for _ in range(count):
        metrics.record(StageTimings(1.0, 1.0, inference_ms, 1.0), publish_ms=0.5, frame_age_ms=5.0)


def test_two_readers_keep_separate_windows():
    """A reader that reads often does not shorten the window of one that reads rarely."""
    clock = StepClock()
    metrics = Metrics(clock)
    mqtt, web = metrics.reader(), metrics.reader()
    record(metrics, 4, 2.0)
    clock.now = 2.0
    first_mqtt = mqtt.read()
    record(metrics, 6, 4.0)
    clock.now = 4.0
    second_mqtt, web_all = mqtt.read(), web.read()
    assert (4, 2.0, 2.0) == (first_mqtt.frames_processed, first_mqtt.fps, first_mqtt.timing_ms["inference"].max)
    assert (10, 3.0, 4.0, 4.0) == (
        second_mqtt.frames_processed, second_mqtt.fps, second_mqtt.timing_ms["inference"].p50,
        second_mqtt.timing_ms["inference"].mean,
    )  # fmt: skip
    assert (10, 2.5, 4.0, 3.2) == (
        web_all.frames_processed,
        web_all.fps,
        web_all.timing_ms["inference"].max,
        web_all.timing_ms["inference"].mean,
    )


def test_reader_with_no_new_frames_sees_no_timings():
    """A window without frames has null timings and 0 fps, while the total still counts every frame."""
    clock = StepClock()
    metrics = Metrics(clock)
    record(metrics, 3, 2.0)
    reader = metrics.reader()
    clock.now = 1.0
    summary = reader.read()
    assert (3, 0.0, None, None) == (
        summary.frames_processed,
        summary.fps,
        summary.timing_ms["total"],
        summary.frame_age_ms,
    )


def test_window_keeps_the_latest_samples_when_a_reader_falls_behind():
    """Past the ring's capacity, a summary covers the newest `capacity` samples."""
    window = Window(capacity=4)
    for value in range(10):
        window.add(float(value))
    summary = window.summary(since=0)
    assert summary is not None
    assert (9.0, 7.5) == (summary.max, summary.mean)
