"""The main loop with fakes at the I/O seams (frame source, publisher) and the real Fashion-MNIST model."""

import contextlib
import json
import threading

import jsonschema
import pytest

from edge_classifier.config.settings import Config, MqttConfig, ResultConfig
from edge_classifier.model.classification import LabelScore
from edge_classifier.model.classifier import Classifier, read_image_bgr
from edge_classifier.model.identity import ModelInfo
from edge_classifier.mqtt.memory import MemoryPublisher
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.compose import Seams, build_service
from edge_classifier.service.frame_result import FrameInfo, FrameResult, StableLabel, StageTimings
from edge_classifier.service.notify import Notifier
from edge_classifier.service.reporter import Reporter
from fakes import ListSource
from helpers import FASHION_MANIFEST, SCHEMAS

DOCUMENT = json.loads(FASHION_MANIFEST.read_text())
IMAGES = {case["label"]: FASHION_MANIFEST.parent / case["image"] for case in DOCUMENT["selftest"]}
TOPICS = Topics("edge-classifier", "unit")
MODEL = ModelInfo("m", "1", "0" * 64)
CONFIG = Config(
    device_id="unit",
    result=ResultConfig(vote_window=3, min_score=0.5, heartbeat_s=1000.0),
    mqtt=MqttConfig(metrics_interval_s=1000.0),
)
RESULT = FrameResult(
    FrameInfo(7, 0.0, 480, 640), (LabelScore("Bag", 0.912345), LabelScore("Coat", 0.05)),
    StageTimings(1.23456, 0.5, 2.0, 0.1), 12.3456,
)  # fmt: skip


class FakeClock:
    """Time that advances by `step` seconds each time it is read."""

    def __init__(self, step=0.01):
        self.now = 0.0
        self.step = step

    def __call__(self):
        self.now += self.step
        return self.now


@pytest.fixture(scope="module")
def classifier():
    with Classifier.from_manifest(FASHION_MANIFEST) as c:
        yield c


def run(classifier, frames, publisher, on_get=None):
    """The service as the composition root wires it, with the list of frames as its source."""
    seams = Seams(ListSource(frames, on_get), publisher, Notifier({}), (classifier, MODEL), FakeClock())
    with contextlib.ExitStack() as stack:
        service = build_service(CONFIG, stack, threading.Event(), seams)
        # The module's classifier outlives this run: the loop must not close it.
        stack.pop_all()
        return service.loop.run(threading.Event())


def published(publisher, topic):
    return [message.payload for message in publisher.messages if message.topic == topic]


def test_label_changes_are_published_after_online(classifier):
    """online comes first; then a result on the first frame and one per change of stable label."""
    bag, boot = read_image_bgr(IMAGES["Bag"]), read_image_bgr(IMAGES["Ankle boot"])
    publisher = MemoryPublisher()
    assert "ended" == run(classifier, [bag] * 4 + [boot] * 4, publisher)
    assert ("status", "online") == (publisher.messages[0].topic, publisher.messages[0].payload)
    assert ["unknown", "Bag", "Ankle boot"] == published(publisher, TOPICS.label)
    results = [json.loads(p) for p in published(publisher, TOPICS.result)]
    for result in results:
        jsonschema.validate(result, json.loads((SCHEMAS / "result.schema.json").read_text()))
    assert [1, 2, 3] == [r["seq"] for r in results]


def test_heartbeat_is_due_every_heartbeat_s():
    """After a result at t=10, the next is due at t=11 with heartbeat_s=1, not before."""
    reporter = Reporter(TOPICS, 1, 1.0, None, 1000.0, 0.0)
    first = reporter.heartbeat_due(0.0)
    reporter.for_frame(RESULT, StableLabel("Bag", 1.0), True, MODEL, "u", 10.0)
    assert [True, False, True] == [first, reporter.heartbeat_due(10.9), reporter.heartbeat_due(11.0)]


def test_broker_away_loop_goes_on_and_state_is_republished(classifier):
    """Frames are classified while the broker is away; after reconnect: online, then the last result again."""
    publisher = MemoryPublisher(connected=False)

    def reconnect_at_frame_six(index):
        publisher.is_connected = index >= 6

    frames = [read_image_bgr(IMAGES["Bag"])] * 8
    run(classifier, frames, publisher, on_get=reconnect_at_frame_six)
    stats = publisher.stats()
    assert ("online", "Bag") == (publisher.messages[0].payload, published(publisher, TOPICS.label)[0])
    assert (True, 1) == (stats.publish_skipped > 0, stats.connects)


@pytest.mark.parametrize(("hz", "expected"), [(2.0, 5), (None, 0)])
def test_inference_topic_is_rate_limited(hz, expected):
    """Offered every 0.1 s for 2 s at 2 Hz, five inference messages go out; none when it is off."""
    reporter = Reporter(TOPICS, 1, 30.0, 1 / hz if hz else None, 1000.0, 0.0)
    messages = []
    for tick in range(21):
        messages += reporter.for_frame(RESULT, StableLabel("Bag", 1.0), False, MODEL, "u", tick / 10)
    assert expected == len([m for m in messages if m.topic == TOPICS.inference])


def test_metrics_payload_validates_and_counts_frames(classifier):
    """The metrics published when the source ends follow metrics.schema.json and count every frame."""
    publisher = MemoryPublisher()
    run(classifier, [read_image_bgr(IMAGES["Coat"])] * 5, publisher)
    payload = json.loads(published(publisher, TOPICS.metrics)[-1])
    jsonschema.validate(payload, json.loads((SCHEMAS / "metrics.schema.json").read_text()))
    assert (5, "ended") == (payload["frames_processed"], payload["camera"]["state"])


def test_inference_payload_validates_with_seq_objects_and_rounded_numbers():
    """The inference message follows inference.schema.json: schema, seq from 1, top_k objects, rounded numbers."""
    reporter = Reporter(TOPICS, 1, 30.0, 0.5, 1000.0, 0.0, timestamp=lambda: "2026-12-02T10:00:00.000Z")
    messages = [
        m for t in (0.0, 1.0) for m in reporter.for_frame(RESULT, StableLabel("Bag", 0.9), False, MODEL, "u", t)
    ]
    payloads = [json.loads(m.payload) for m in messages if m.topic == TOPICS.inference]
    for payload in payloads:
        jsonschema.validate(payload, json.loads((SCHEMAS / "inference.schema.json").read_text()))
    assert [1, 2] == [p["seq"] for p in payloads]
    assert {
        "schema": "edge-classifier/inference/v1", "seq": 1, "ts": "2026-12-02T10:00:00.000Z", "device_id": "u",
        "frame_index": 7, "label": "Bag", "score": 0.9123,
        "top_k": [{"label": "Bag", "score": 0.9123}, {"label": "Coat", "score": 0.05}],
        "model": {"name": "m", "version": "1", "sha256": "0" * 64}, "frame_age_ms": 12.35,
        "timing_ms": {"capture": 1.235, "preprocess": 0.5, "inference": 2.0, "postprocess": 0.1, "total": 3.835},
    } == payloads[0]  # fmt: skip
    assert (False, 0) == (messages[-1].retain, messages[-1].qos)
