"""The main loop with fakes at the I/O seams (frame source, publisher) and the real default model."""

import json
import threading

import jsonschema
import pytest

from edge_classifier.capture.source import Frame, SourceStats
from edge_classifier.model.classifier import Classifier, read_image_bgr
from edge_classifier.mqtt.client import MemoryPublisher
from edge_classifier.mqtt.topics import Topics
from edge_classifier.service.loop import LoopSettings, run_loop
from edge_classifier.service.metrics import Metrics
from edge_classifier.service.notify import Notifier
from edge_classifier.service.payloads import ModelInfo, Reporter
from edge_classifier.service.voting import Voter
from helpers import FASHION_MANIFEST, SCHEMAS

DOCUMENT = json.loads(FASHION_MANIFEST.read_text())
IMAGES = {case["label"]: FASHION_MANIFEST.parent / case["image"] for case in DOCUMENT["selftest"]}
TOPICS = Topics("edge-classifier", "unit")


class FakeClock:
    """Time that advances by `step` seconds each time it is read."""

    def __init__(self, step=0.01):
        self.now = 0.0
        self.step = step

    def __call__(self):
        self.now += self.step
        return self.now


class ListSource:
    """Hands out a fixed list of frames, then ends; `on_get` runs before each hand-out."""

    def __init__(self, frames, on_get=None):
        self.frames = list(frames)
        self.on_get = on_get or (lambda i: None)
        self.served = 0

    def get(self, timeout):
        if not self.frames:
            return None
        self.on_get(self.served)
        self.served += 1
        return Frame(self.frames.pop(0), self.served - 1, 0.0, 0.001)

    @property
    def ended(self):
        return not self.frames

    def stats(self):
        return SourceStats("ended" if self.ended else "running", self.served, 0, 0, 0)

    def close(self):
        pass


@pytest.fixture(scope="module")
def classifier():
    with Classifier.from_manifest(FASHION_MANIFEST) as c:
        yield c


def run(classifier, frames, publisher, on_get=None):
    clock = FakeClock()
    reporter = Reporter(publisher, TOPICS, 1, 1000.0, None, 1000.0, 0.0)
    settings = LoopSettings("unit", ModelInfo("m", "1", "0" * 64), 3)
    return run_loop(settings, ListSource(frames, on_get), classifier, publisher, reporter, Voter(3, 0.5), Metrics(clock),
                    Notifier({}), threading.Event(), clock)  # fmt: skip


def published(publisher, topic):
    return [payload for t, payload, _, _ in publisher.messages if t == topic]


def test_label_changes_are_published_after_online(classifier):
    """online comes first; then a result on the first frame and one per change of stable label."""
    bag, boot = read_image_bgr(IMAGES["Bag"]), read_image_bgr(IMAGES["Ankle boot"])
    publisher = MemoryPublisher()
    assert "ended" == run(classifier, [bag] * 4 + [boot] * 4, publisher)
    assert ("status", "online") == publisher.messages[0][:2]
    assert ["unknown", "Bag", "Ankle boot"] == published(publisher, TOPICS.label)
    results = [json.loads(p) for p in published(publisher, TOPICS.result)]
    for result in results:
        jsonschema.validate(result, json.loads((SCHEMAS / "result.schema.json").read_text()))
    assert [1, 2, 3] == [r["seq"] for r in results]


def test_heartbeat_is_due_every_heartbeat_s():
    """After a result at t=10, the next is due at t=11 with heartbeat_s=1, not before."""
    reporter = Reporter(MemoryPublisher(), TOPICS, 1, 1.0, None, 1000.0, 0.0)
    first = reporter.heartbeat_due(0.0)
    reporter.result({"device_id": "u", "label": "Bag", "score": 1.0, "top_k": [("Bag", 1.0)],
                     "model": ModelInfo("m", "1", "0" * 64), "frame_age_ms": 0.0, "timing_ms": {}}, 10.0)  # fmt: skip
    assert [True, False, True] == [first, reporter.heartbeat_due(10.9), reporter.heartbeat_due(11.0)]


def test_broker_away_loop_goes_on_and_state_is_republished(classifier):
    """Frames are classified while the broker is away; after reconnect: online, then the last result again."""
    publisher = MemoryPublisher(connected=False)

    def reconnect_at_frame_six(index):
        publisher.is_connected = index >= 6

    frames = [read_image_bgr(IMAGES["Bag"])] * 8
    run(classifier, frames, publisher, on_get=reconnect_at_frame_six)
    stats = publisher.stats()
    assert ("online", "Bag") == (publisher.messages[0][1], published(publisher, TOPICS.label)[0])
    assert (True, 1) == (stats.publish_skipped > 0, stats.connects)


@pytest.mark.parametrize(("hz", "expected"), [(2.0, 5), (None, 0)])
def test_inference_topic_is_rate_limited(hz, expected):
    """Offered every 0.1 s for 2 s at 2 Hz, five inference messages go out; none when it is off."""
    publisher = MemoryPublisher()
    publisher.service()
    reporter = Reporter(publisher, TOPICS, 1, 30.0, 1 / hz if hz else None, 1000.0, 0.0)
    for tick in range(21):
        reporter.inference({"label": "Bag"}, tick / 10)
    assert expected == len(published(publisher, TOPICS.inference))


def test_metrics_payload_validates_and_counts_frames(classifier):
    """The metrics published when the source ends follow metrics.schema.json and count every frame."""
    publisher = MemoryPublisher()
    run(classifier, [read_image_bgr(IMAGES["Coat"])] * 5, publisher)
    payload = json.loads(published(publisher, TOPICS.metrics)[-1])
    jsonschema.validate(payload, json.loads((SCHEMAS / "metrics.schema.json").read_text()))
    assert (5, "ended") == (payload["frames_processed"], payload["camera"]["state"])
