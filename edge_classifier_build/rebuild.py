"""The command that rebuilds a recorded variant as models/<name>.*: its build command without the sweep's own files."""

from __future__ import annotations

import logging
import shlex
from typing import Any

from .build_options import PROGRAM

logger = logging.getLogger(__name__)

SWEEP_ONLY_OPTIONS = {"--record", "--keras-cache", "--output-dir", "--name", "--latency-runs", "--fold-check-images"}
# Records made before the build was a package ran it as this script.
SCRIPT_PROGRAM = ("python", "models/build.py")


def program_length(words: list[str]) -> int:
    """How many leading words of a recorded command are the program rather than its options."""
    if tuple(words[:2]) == SCRIPT_PROGRAM:
        return 2
    return next((i for i, word in enumerate(words) if word.startswith("--")), len(words))


def rebuild_command(record: dict[str, Any]) -> str:
    """The variant's build command, run as today's `edge-classifier-build`, without the sweep's own files.

    An option given twice keeps its last value (a variant's own options follow the sweep's common ones),
    and QAT's epochs appear only where QAT runs.
    """
    words = shlex.split(record["command"])
    options = words[program_length(words) :]
    values: dict[str, str | None] = {}
    i = 0
    while i < len(options):
        word = options[i]
        takes_value = i + 1 < len(options) and not options[i + 1].startswith("--")
        values[word] = options[i + 1] if takes_value else None
        i += 2 if takes_value else 1
    if values.get("--quantization") != "qat":
        values.pop("--qat-epochs", None)
    kept = [PROGRAM]
    for option, value in values.items():
        if option not in SWEEP_ONLY_OPTIONS and option != "--quiet":
            kept += [option] if value is None else [option, value]
    return shlex.join(kept)
