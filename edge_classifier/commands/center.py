"""The command center: takes `<prefix>/<device>/cmd/<name>` messages on the loop's thread, checks them, runs the
handler and publishes the acknowledgement (at once, or when a pending outcome settles)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_classifier.commands.acks import ack_document, ack_message, command_name, is_response, response_topic
from edge_classifier.commands.context import CommandContext
from edge_classifier.commands.handlers import COMMANDS
from edge_classifier.commands.outcome import CommandError, Outcome, Pending, Result
from edge_classifier.commands.reload import log_reload, reload_config
from edge_classifier.commands.validation import MAX_PAYLOAD_BYTES, RequestSchema, parse_payload, request_id, short
from edge_classifier.config.settings import Config, ConfigSource
from edge_classifier.errors import BusyError, EdgeClassifierError
from edge_classifier.mqtt.inbound import IncomingMessage
from edge_classifier.mqtt.topics import Topics
from edge_classifier.ratelimit import RateLimitedLog
from edge_classifier.service.payloads import utc_now

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)
RECENT_IDS = 64  # a request whose id is among the last this many (valid) requests' is refused as a repeat
ACK_WAIT_S = 10.0  # a pending outcome (a new model waiting for live frames) is answered `accepted` after this


class RecentIds:
    """The last `capacity` ids seen, oldest forgotten first."""

    def __init__(self, capacity: int = RECENT_IDS):
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._capacity = capacity

    def seen(self, request_id: str) -> bool:
        """True when the id is one of the remembered ones; otherwise remember it."""
        if request_id in self._ids:
            return True
        self._order.append(request_id)
        self._ids.add(request_id)
        if len(self._order) > self._capacity:
            self._ids.discard(self._order.popleft())
        return False


@dataclass
class Reply:
    """Where and how one command is answered."""

    name: str
    topic: str
    correlation_data: bytes | None
    request_id: str | None = None


@dataclass(eq=False)
class Waiting:
    reply: Reply
    pending: Pending
    deadline: float


class CommandCenter:
    """The route handler for `cmd/#` and a loop component (it answers pending outcomes that take too long)."""

    def __init__(
        self,
        config: Config,
        topics: Topics,
        source: ConfigSource | None = None,
        clock: Callable[[], float] = time.monotonic,
        timestamp: Callable[[], str] = utc_now,
    ):
        self.context = CommandContext(config, topics, source, clock, clock())
        self.base = f"{topics.base}/cmd"
        self.topic_filter = f"{self.base}/#"
        self._schemas = {name: RequestSchema(name) for name in COMMANDS}
        self._recent = RecentIds()
        self._waiting: list[Waiting] = []
        self._timestamp = timestamp
        self._log = RateLimitedLog(logger)

    def handle(self, loop: MainLoop, message: IncomingMessage) -> None:
        """Answer one message received on `cmd/#` (our own answers, on `.../response`, are skipped)."""
        if is_response(message.topic):
            return
        name = command_name(self.base, message.topic)
        reply = Reply(name, response_topic(self.base, name, message.response_topic), message.correlation_data)
        self.context.counts.received += 1
        try:
            result = self._run(loop, message, reply)
        except CommandError as exc:
            result = exc.outcome()
        except BusyError as exc:
            result = Outcome("refused", None, str(exc))
        except EdgeClassifierError as exc:
            result = Outcome("failed", None, str(exc))
        self._answer(loop, reply, result)

    def _run(self, loop: MainLoop, message: IncomingMessage, reply: Reply) -> Result:
        command = COMMANDS.get(reply.name)
        try:
            limit = command.max_payload_bytes if command is not None else MAX_PAYLOAD_BYTES
            document: dict[str, Any] | None = parse_payload(message.payload, limit)
            problem = None
        except CommandError as exc:
            document, problem = None, exc
        reply.request_id = request_id(document)
        if message.retain:
            raise CommandError(
                "refused", "a retained command is refused: it would run again at every reconnect; publish without "
                "the retain flag (and clear it: mosquitto_pub -r -n -t TOPIC)",
            )  # fmt: skip
        if command is None:
            known = ", ".join(COMMANDS)
            raise CommandError("invalid", f"unknown command {short(reply.name, 60)!r} (known: {known})")
        if problem is not None or document is None:
            raise problem or CommandError("invalid", "payload is not a JSON object")
        if command.precheck is not None:
            command.precheck(self.context, loop, document)
        self._schemas[reply.name].check(document)
        if reply.request_id is not None and self._recent.seen(reply.request_id):
            raise CommandError("refused", f"id {reply.request_id!r} was used by one of the last {RECENT_IDS} commands")
        return command.handler(self.context, loop, document)

    def _answer(self, loop: MainLoop, reply: Reply, result: Result) -> None:
        if isinstance(result, Outcome):
            self._send(loop, reply, result)
            return
        waiting = Waiting(reply, result, self.context.clock() + ACK_WAIT_S)
        self._waiting.append(waiting)
        result.future.add_done_callback(lambda _: self._settle(loop, waiting))

    def _settle(self, loop: MainLoop, waiting: Waiting) -> None:
        """The pending outcome resolved (on the loop's thread); answered now unless the wait ran out before."""
        if waiting in self._waiting:
            self._waiting.remove(waiting)
            self._send(loop, waiting.reply, waiting.pending.settle(waiting.pending.future))

    def _send(self, loop: MainLoop, reply: Reply, outcome: Outcome) -> None:
        counts = self.context.counts
        setattr(counts, outcome.status, getattr(counts, outcome.status) + 1)
        if outcome.ok:
            logger.info("command %s%s: %s", reply.name, f" ({reply.request_id})" if reply.request_id else "",
                        outcome.status)  # fmt: skip
        else:
            self._log.warning_for(
                f"{outcome.status}:{short(reply.name, 40)}", "command %s %s: %s",
                short(reply.name, 60), outcome.status, outcome.error,
            )  # fmt: skip
        document = ack_document(reply.request_id, reply.name, loop.parts.device_id, outcome, self._timestamp())
        loop.parts.publisher.send(ack_message(reply.topic, document, reply.correlation_data))

    def on_connect(self, loop: MainLoop) -> None:
        """Nothing to announce: the router renews the `cmd/#` subscription."""

    def tick(self, loop: MainLoop, now: float) -> None:
        """Answer the pending outcomes whose wait ran out with their `accepted` outcome."""
        for waiting in [w for w in self._waiting if now >= w.deadline]:
            self._waiting.remove(waiting)
            self._send(loop, waiting.reply, waiting.pending.waiting)

    def reload(self, loop: MainLoop) -> None:
        """SIGHUP: what the reload command does, with the outcome in the log."""
        try:
            result = reload_config(self.context, loop, {})
        except CommandError as exc:
            result = exc.outcome()
        if isinstance(result, Outcome):
            log_reload(result)
        else:
            pending = result
            pending.future.add_done_callback(lambda future: log_reload(pending.settle(future)))
