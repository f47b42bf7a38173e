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
        ("Ünïcode", "unicode-b8be8967"),
    ],
)
def test_device_id_is_reduced_to_safe_characters(raw, expected):
    """Wildcards, slashes, spaces and non-ASCII never reach a topic."""
    assert expected == sanitize_device_id(raw)


@pytest.mark.parametrize("raw", ["###", ""])
def test_device_id_without_letters_or_digits_is_refused(raw):
    """An id with nothing to name the device by is an error, not a shared fallback name."""
    with pytest.raises(ValueError, match="has no letter or digit"):
        sanitize_device_id(raw)


def test_topics_live_under_prefix_and_device():
    """Every topic is <prefix>/<device_id>/<name> and the client id derives from the device."""
    topics = Topics("shop", "till-3")
    actual = [topics.status, topics.result, topics.label, topics.inference, topics.metrics, topics.client_id]
    expected = ["shop/till-3/status", "shop/till-3/result", "shop/till-3/label", "shop/till-3/inference",
                "shop/till-3/metrics", "edge-classifier-till-3"]  # fmt: skip
    assert expected == actual
