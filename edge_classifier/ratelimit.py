"""Rate-limited logging: a repeated event is logged once per interval, and the suppressed repeats are counted."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_INTERVAL_S = 60.0


@dataclass
class _Seen:
    last_logged: float
    suppressed: int = 0


class RateLimitedLog:
    """Logs each key at most once per `interval_s`; the next line it lets through says how many it held back.

    Safe to share between threads (the paho network thread, capture readers and the main loop).
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._logger = logger
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}
        self.suppressed_total = 0

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        """Log `message % args` unless `key` was logged less than `interval_s` ago; True when it was logged."""
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.last_logged < self._interval:
                seen.suppressed += 1
                self.suppressed_total += 1
                return False
            held_back = seen.suppressed if seen is not None else 0
            self._seen[key] = _Seen(now)
        if held_back:
            message += " (%d more like this in the last %.0fs were not logged)"
            args = (*args, held_back, self._interval)
        self._logger.log(level, message, *args)
        return True

    def warning_for(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def error_for(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.ERROR, key, message, *args)
