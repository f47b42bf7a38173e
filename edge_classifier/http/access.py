"""Who may ask: the bearer token (http.auth: token) and, on a loopback server without one, the Host header."""

from __future__ import annotations

import hmac
import ipaddress

from werkzeug.wrappers import Request

from edge_classifier.http.problems import RequestError
from edge_classifier.http.settings import is_loopback

# Open to anyone who can connect, even with http.auth: token (a load balancer's probe, the page's own files).
PUBLIC = frozenset({"health", "index", "static"})
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
CHALLENGE = 'Bearer realm="edge-classifier"'


class Access:
    """The checks every request passes before its route runs; a refusal is a RequestError (421 or 401)."""

    def __init__(self, bind: str, token: str | None):
        self._token = token.encode("utf-8") if token else None
        # A loopback server without a token answers only requests addressed to loopback names, so that a web
        # page elsewhere cannot reach it through a DNS name re-pointed at 127.0.0.1 (DNS rebinding).
        self._check_host = is_loopback(bind) and self._token is None

    def check(self, request: Request, endpoint: str) -> None:
        if self._check_host and not loopback_name(host_name(request.host)):
            raise RequestError(421, f"Host {short(request.host)!r} is not a loopback name: this server binds a "
                                    "loopback address without a token")  # fmt: skip
        if self._token is None or endpoint in PUBLIC:
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise RequestError(401, "missing Authorization: Bearer <token> header (http.auth is token)",
                               {"WWW-Authenticate": CHALLENGE})  # fmt: skip
        if not hmac.compare_digest(given.strip().encode("utf-8"), self._token):
            raise RequestError(401, "wrong bearer token", {"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})


def host_name(host: str) -> str:
    """The name in a Host header, without its port: [::1]:8080 -> ::1, localhost:8080 -> localhost."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def loopback_name(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def short(text: str) -> str:
    """At most 100 characters of a path or header shown in an answer or the log."""
    return text if len(text) <= 100 else text[:97] + "..."
