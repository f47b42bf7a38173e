"""What a command handler gives back: an outcome now, or one pending on a future (a model being verified)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from edge_classifier.errors import BusyError, EdgeClassifierError

# done: carried out; accepted: carried out, its final outcome not known yet (a new model waits for live frames);
# invalid: the payload or command is malformed or unknown; refused: well-formed but not taken (retained, a repeated
# id, busy); failed: taken but could not be carried out (the old state stays).
Status = Literal["done", "accepted", "invalid", "refused", "failed"]


@dataclass(frozen=True)
class Outcome:
    """The answer to one command, before it becomes an acknowledgement payload."""

    status: Status
    data: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("done", "accepted")


class CommandError(EdgeClassifierError):
    """A command that cannot be carried out; its status says how the acknowledgement reports it."""

    def __init__(self, status: Status, message: str, data: dict[str, Any] | None = None):
        super().__init__(message)
        self.status: Status = status
        self.data = data

    def outcome(self) -> Outcome:
        return Outcome(self.status, self.data, str(self))


@dataclass(frozen=True)
class Pending:
    """An outcome that waits for `future` (resolved on the loop's thread); `settle` turns the resolved future into it.

    `waiting` is the outcome to send when the future takes longer than the acknowledgement may wait.
    """

    future: Future[Any]
    settle: Callable[[Future[Any]], Outcome]
    waiting: Outcome


Result = Outcome | Pending


def settled(future: Future[Any], failed: str, document: Callable[[Any], dict[str, Any]]) -> Outcome:
    """The outcome of a change the main loop made or refused (its future resolved): `refused` when it was busy (a
    model on probation), `failed` with FAILED ("the catalogue was not changed") before the reason on any other
    refusal, else `done` with DOCUMENT of its answer."""
    try:
        answer = future.result()
    except BusyError as exc:
        return Outcome("refused", None, str(exc))
    except EdgeClassifierError as exc:
        return Outcome("failed", None, f"{failed}: {exc}")
    return Outcome("done", document(answer))
