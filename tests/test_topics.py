"""Device id sanitizing and topic names."""

import pytest

from edge_classifier.mqtt.topics import Topics, sanitize_device_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("kiosk-1", "kiosk-1"),
        ("Store 12 / Till #3", "store-12-till-3"),
        ("  UPPER_case  ", "upper_case"),
        ("a+b#c/d", "a-b-c-d"),
        ("Ünïcode", "n-code"),
        ("###", "device"),
        ("", "device"),
    ],
)
def test_device_id_is_reduced_to_safe_characters(raw, expected):
    """Wildcards, slashes, spaces and non-ASCII never reach a topic."""
    assert expected == sanitize_device_id(raw)


def test_topics_live_under_prefix_and_device():
    """Every topic is <prefix>/<device_id>/<name> and the client id derives from the device."""
    topics = Topics("shop", "till-3")
    actual = [topics.status, topics.result, topics.label, topics.inference, topics.metrics, topics.client_id]
    expected = ["shop/till-3/status", "shop/till-3/result", "shop/till-3/label", "shop/till-3/inference",
                "shop/till-3/metrics", "edge-classifier-till-3"]  # fmt: skip
    assert expected == actual
