"""Rate-limited logging: once per interval per key, with the held-back count on the next line."""

import logging

from edge_classifier.ratelimit import RateLimitedLog


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_repeats_within_the_interval_are_counted_not_logged(caplog):
    """Five repeats in 10 s give one line; the next one after the interval says four were held back."""
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("test.ratelimit"), interval_s=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        for second in range(5):
            clock.now = second * 2.0
            log.warning_for("unreadable", "skipping unreadable image %s", "a.jpg")
        clock.now = 61.0
        log.warning_for("unreadable", "skipping unreadable image %s", "a.jpg")
    expected = [
        "skipping unreadable image a.jpg",
        "skipping unreadable image a.jpg (4 more like this in the last 60s were not logged)",
    ]
    assert (expected, 4) == ([r.getMessage() for r in caplog.records], log.suppressed_total)


def test_keys_are_limited_independently(caplog):
    """Two different events in the same second are both logged."""
    log = RateLimitedLog(logging.getLogger("test.ratelimit"), clock=Clock())
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        log.warning_for("a", "event a")
        log.warning_for("b", "event b")
        log.warning_for("a", "event a")
    assert ["event a", "event b"] == [r.getMessage() for r in caplog.records]
