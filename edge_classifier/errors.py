"""The project's exception hierarchy; `cli` maps each class to an exit code.

EdgeClassifierError            base of every error the program expects and explains
├── ConfigError                the configuration is invalid (exit 78, EX_CONFIG)
├── ModelError                 model file, manifest, labels or self-test are wrong (exit 78)
├── InputError                 a user-supplied input (image, video, data set, argument) is unusable (exit 1)
├── BusyError                  the main loop has too many requests waiting; retry later
├── StoppedError               the service stopped before it answered a request
└── ServiceError               the service cannot go on; systemd restarts it (exit 70, EX_SOFTWARE)

Anything else escaping the program is a bug: it crashes with a traceback so that systemd
restarts the service and the log shows where.
"""

EX_CONFIG = 78


def first_line(exc: BaseException) -> str:
    """The first line of a library's exception message (or its type name): enough for a one-line error."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class EdgeClassifierError(Exception):
    """An expected failure with a message meant for the person running the program."""

    exit_code = 1


class ConfigError(EdgeClassifierError):
    """The configuration names a bad key or value; restarting will not fix it."""

    exit_code = EX_CONFIG


class ModelError(EdgeClassifierError):
    """The model, its manifest, labels or self-test do not check out."""

    exit_code = EX_CONFIG


class InputError(EdgeClassifierError):
    """An image, video, data set or argument given by the user cannot be used."""


class BusyError(EdgeClassifierError):
    """The main loop's inbox is full; the caller may retry later (HTTP 503 with Retry-After)."""


class StoppedError(EdgeClassifierError):
    """The service stopped before it could answer a request."""


EX_SOFTWARE = 70


class ServiceError(EdgeClassifierError):
    """The service cannot go on (its MQTT network thread died or hangs); systemd restarts it."""

    exit_code = EX_SOFTWARE
