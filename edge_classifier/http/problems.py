"""A request the HTTP interface refuses: its status and the one line that names the problem."""

from __future__ import annotations

from edge_classifier.errors import InputError


class RequestError(InputError):
    """Answered as {"error": message, "status": status}; `headers` adds e.g. Retry-After or WWW-Authenticate."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def error_document(status: int, message: str) -> dict[str, object]:
    """The body of every error answer (schemas/http-error.schema.json)."""
    return {"error": message, "status": status}
