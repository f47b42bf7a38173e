"""The `http` config section, its cross-field checks and the bearer token it may name."""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_classifier.errors import ConfigError

MIN_TOKEN_CHARS = 16
CREDENTIAL_NAME = "http_token"


def _limits(low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"low": low, "high": high}


@dataclass(frozen=True)
class HttpConfig:
    """The local HTTP interface (API, live preview, metrics); off unless enabled (`run --preview` enables it)."""

    enabled: bool = False
    # An IP address; anything but loopback needs auth: token (or auth: none, said explicitly).
    bind: str = "127.0.0.1"
    port: int = field(default=8080, metadata=_limits(0, 65535))  # 0: any free port (the log names it)
    # null: no token on a loopback address, refused on any other; token: `Authorization: Bearer <token>`
    # on every route but /api/health and the page's static files; none: open to whoever can connect.
    auth: Literal["token", "none"] | None = None
    # The token: this file, or systemd's $CREDENTIALS_DIRECTORY/http_token.
    token_file: Path | None = None
    max_body_bytes: int = field(default=16 * 2**20, metadata=_limits(1024, 256 * 2**20))
    # Width x height of an uploaded image, read from its header before anything is decoded (a 12 MP phone
    # photo fits; decoded, 16 MP is 48 MB).
    max_image_pixels: int = field(default=16_000_000, metadata=_limits(1, 100_000_000))
    # A connection idle this long is closed; a prediction that waits this long for the main loop gets 503.
    request_timeout_s: float = field(default=30.0, metadata=_limits(1, 3600))
    predict_timeout_s: float = field(default=10.0, metadata=_limits(0.1, 600))
    max_connections: int = field(default=32, metadata=_limits(1, 1000))
    threads: int = field(default=4, metadata=_limits(1, 64))  # for API requests; each stream has its own
    max_streams: int = field(default=2, metadata=_limits(1, 32))
    stream_fps: float = field(default=5.0, metadata=_limits(0.1, 30))
    stream_width: int = field(default=640, metadata=_limits(64, 4096))  # wider frames are scaled down
    jpeg_quality: int = field(default=80, metadata=_limits(10, 100))
    # A frame older than this makes /api/ready answer 503.
    ready_max_frame_age_s: float = field(default=5.0, metadata=_limits(0.1, 3600))
    # POST /api/predict {"url": ...}: off, so that a kiosk never fetches addresses it is handed.
    fetch_urls: bool = False
    fetch_timeout_s: float = field(default=5.0, metadata=_limits(0.1, 120))


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def check_http(http: HttpConfig) -> None:
    """Cross-field checks that load_config runs: a usable bind address, and no open port beyond this host."""
    try:
        loopback = is_loopback(http.bind)
    except ValueError:
        raise ConfigError(
            f"http.bind: expected an IP address such as 127.0.0.1, 0.0.0.0 or ::1, got {http.bind!r}"
        ) from None
    if not loopback and http.auth is None:
        raise ConfigError(
            f"http.auth: http.bind {http.bind} is not a loopback address: set http.auth: token (with "
            f"http.token_file or the systemd credential {CREDENTIAL_NAME}), or http.auth: none to serve anyone "
            "who can connect"
        )
    if http.token_file is not None and http.auth != "token":
        raise ConfigError(f"http.token_file: {str(http.token_file)!r} is set but http.auth is not token")


def read_token(http: HttpConfig) -> str | None:
    """The bearer token when http.auth is token (from token_file or the systemd credential), else None."""
    if http.auth != "token":
        return None
    candidates = [http.token_file] if http.token_file else []
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        candidates.append(Path(os.environ["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME)
    for candidate in candidates:
        try:
            mode = candidate.stat().st_mode  # never open a FIFO or device: it could block start-up
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"http.token_file: cannot read {candidate}: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            raise ConfigError(f"http.token_file: {str(candidate)!r} is not a regular file")
        try:
            token = candidate.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"http.token_file: cannot read {candidate}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"http.token_file: {candidate} is not UTF-8 text") from None
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() or not c.isprintable() for c in token):
            # Never show the token itself.
            raise ConfigError(f"http.token_file: the token in {candidate} must be at least {MIN_TOKEN_CHARS} "
                              "printable characters without spaces")  # fmt: skip
        return token
    where = f"{str(http.token_file)!r} does not exist" if http.token_file else "is not set"
    raise ConfigError(f"http.token_file: {where} and there is no systemd credential {CREDENTIAL_NAME}, "
                      "but http.auth is token")  # fmt: skip
