"""The `replay` command: results the broker acknowledged, sent again for a subscriber that found a gap in seq.

A kiosk's broker acknowledges a result before its bridge has delivered it to the centre, and a bridge may lose
the one in flight when the link drops (mosquitto 2.0.11 does). The outbox keeps the newest acknowledged results
(outbox.keep_acknowledged), so the subscriber at the centre asks for a range of seqs and gets them again,
flagged `replayed`, through the same bridge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge_classifier.commands.context import CommandContext
from edge_classifier.commands.outcome import CommandError, Outcome, Result

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

# Seqs per request: an answer stays small (the seqs it lists), and paho's queue short.
MAX_RANGE = 1000


def replay(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    first = document["from_seq"]
    last = document.get("to_seq", first)
    if last < first:
        raise CommandError("invalid", f"to_seq {last} is below from_seq {first}")
    if last - first + 1 > MAX_RANGE:
        raise CommandError("invalid", f"{last - first + 1} seqs asked for; at most {MAX_RANGE} per request")
    results = loop.parts.results
    if results is None:
        raise CommandError("failed", "no outbox (outbox.enabled false or mqtt.qos 0): nothing is kept to replay")
    done = results.replay(first, last)
    data = {"from_seq": first, "to_seq": last, "sent": done.sent, "waiting": done.waiting, "gone": done.gone}
    if done.unsent:
        raise CommandError("failed", f"the connection went after {done.sent} of {done.sent + done.unsent}: ask again")
    return Outcome("done", data)
