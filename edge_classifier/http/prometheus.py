"""GET /metrics: Prometheus text from the runtime state and metrics, through a registry of our own (no globals)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from edge_classifier.service.metrics import Metrics, soc_temperature_c
from edge_classifier.service.state import RuntimeState

CAMERA_STATES = ("starting", "running", "stalled", "reopening", "absent", "ended")


class HttpCounts:
    """Answers by route and status code, and the open streams: the HTTP interface's own figures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._responses: Counter[tuple[str, int]] = Counter()

    def count(self, route: str, status: int) -> None:
        with self._lock:
            self._responses[(route, status)] += 1

    def responses(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._responses)


class ServiceCollector(Collector):
    """Reads the state and metrics the main loop publishes, at scrape time."""

    def __init__(
        self, state: RuntimeState, metrics: Metrics, counts: HttpCounts, streams: Callable[[], int], device: str
    ):
        self._state = state
        self._metrics = metrics
        self._counts = counts
        self._streams = streams
        self._device = device

    def collect(self) -> Iterator[Metric]:
        snap = self._state.snapshot()
        source, publisher = snap.source, snap.publisher
        yield InfoMetricFamily("edge_classifier_model", "The model serving", value={**snap.model.as_dict()})
        yield InfoMetricFamily("edge_classifier_device", "This device", value={"device_id": self._device})
        counters = (
            ("frames_processed", "Frames classified since start", snap.frames_processed),
            ("frames_captured", "Frames decoded by the source since start", source.frames_captured),
            ("frames_dropped", "Frames replaced by a newer one before the loop took them", source.frames_dropped),
            ("camera_stalls", "Times the camera delivered nothing for source.stall_timeout_s", source.stalls),
            ("camera_reopens", "Times the camera was reopened", source.reopens),
            ("mqtt_connects", "Connections the broker accepted since start", publisher.connects),
            ("mqtt_connect_failures", "Connection attempts that failed", publisher.connect_failures),
            ("mqtt_publish_skipped", "Messages not sent because no connection was up", publisher.publish_skipped),
            ("mqtt_publish_denied", "Publishes the broker refused", publisher.publish_denied),
        )
        for name, text, value in counters:
            yield CounterMetricFamily(f"edge_classifier_{name}", text, value=value)
        camera = GaugeMetricFamily("edge_classifier_camera_state", "1 for the camera's current state",
                                   labels=["state"])  # fmt: skip
        for state in CAMERA_STATES:
            camera.add_metric([state], 1.0 if source.state == state else 0.0)
        yield camera
        yield GaugeMetricFamily("edge_classifier_mqtt_connected", "1 while connected to the broker",
                                value=1.0 if publisher.connected else 0.0)  # fmt: skip
        yield GaugeMetricFamily("edge_classifier_mqtt_publishing_lost",
                                "1 once nothing could be published for longer than mqtt.max_offline_s",
                                value=1.0 if publisher.publishing_lost else 0.0)  # fmt: skip
        stable = GaugeMetricFamily("edge_classifier_stable_score", "The stable label and its mean score",
                                   labels=["label"])  # fmt: skip
        stable.add_metric([snap.stable.label], snap.stable.score)
        yield stable
        stages = HistogramMetricFamily("edge_classifier_stage_seconds", "Time per frame in each stage since start",
                                       labels=["stage"])  # fmt: skip
        for stage, histogram in self._metrics.histograms().items():
            running, buckets = 0, []
            for bound, count in zip((*histogram.bounds_ms, float("inf")), histogram.counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound / 1000), float(running)))
            stages.add_metric([stage], buckets, sum_value=histogram.sum_ms / 1000)
        yield stages
        if snap.latest is not None:
            yield GaugeMetricFamily("edge_classifier_frame_age_seconds",
                                    "From the latest classified frame's capture to its result",
                                    value=snap.latest.frame_age_ms / 1000)  # fmt: skip
        temperature = soc_temperature_c()
        if temperature is not None:
            yield GaugeMetricFamily("edge_classifier_soc_temperature_celsius", "The first thermal zone",
                                    value=temperature)  # fmt: skip
        responses = CounterMetricFamily("edge_classifier_http_responses", "HTTP answers by route and status",
                                        labels=["route", "status"])  # fmt: skip
        for (route, status), count in sorted(self._counts.responses().items()):
            responses.add_metric([route, str(status)], count)
        yield responses
        yield GaugeMetricFamily("edge_classifier_http_streams", "Open /stream.mjpg responses", value=self._streams())


def build_registry(collector: ServiceCollector) -> CollectorRegistry:
    """A registry of our own: the service's figures and this process's CPU, memory and file descriptors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
