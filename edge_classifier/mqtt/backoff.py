"""Reconnect delays: doubling from a minimum to a maximum, back to the minimum only after a connection that lasted."""

from __future__ import annotations

# A connection must last this long before the delay starts again from mqtt.reconnect_min_s. A broker that
# accepts and then drops at once (a client-id takeover by a twin device, an auth plugin, a connection limit)
# does so within seconds; 30 s, the default keepalive, is also when a broker that silently lost us would
# have been found out. A fixed value, not a setting: no deployment is known to need another.
STABLE_AFTER_S = 30.0


class Backoff:
    """The delay before the next connection attempt; used by the network thread only."""

    def __init__(self, min_s: float, max_s: float, stable_after_s: float = STABLE_AFTER_S):
        self.min_s = min_s
        self.max_s = max(min_s, max_s)
        self.stable_after_s = stable_after_s
        self._next = min_s

    def after_failure(self) -> float:
        """An attempt failed: wait the current delay, and twice as long next time (up to the maximum)."""
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay

    def after_loss(self, lasted_s: float) -> float:
        """A connection ended after LASTED_S: start again from the minimum only if it was stable."""
        if lasted_s >= self.stable_after_s:
            self._next = self.min_s
        return self.after_failure()
