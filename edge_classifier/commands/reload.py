"""Reloading the configuration file (the reload command, SIGHUP): apply what can change live, list the rest."""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from edge_classifier.commands.context import CommandContext
from edge_classifier.commands.outcome import CommandError, Outcome, Pending, Result
from edge_classifier.config.settings import Config
from edge_classifier.errors import ConfigError, EdgeClassifierError
from edge_classifier.model.identity import ModelInfo
from edge_classifier.model.loading import open_classifier
from edge_classifier.service.inbox import SettingsRequest, SwapModelRequest
from edge_classifier.service.requests import change_settings, swap_model

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)
# Sections a reload applies while the daemon runs; a change anywhere else takes effect at the next start.
LIVE = ("result.", "model.")


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configurations (or sections of one)."""
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        keys: list[str] = []
        for item in dataclasses.fields(old):
            keys += changed_keys(getattr(old, item.name), getattr(new, item.name), f"{prefix}{item.name}.")
        return keys
    return [] if old == new else [prefix.rstrip(".")]


def read_again(context: CommandContext) -> Config:
    if context.source is None:
        raise CommandError("failed", "this service was not started from a configuration it can read again")
    try:
        return context.source.load()
    except ConfigError as exc:
        raise CommandError("failed", f"the configuration was not reloaded, nothing changed: {exc}") from None


def reload_config(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    """Re-read the file: result settings apply at once; the model is swapped (verified as model/load is) when its
    section changed since the last read, or when the start-up fallback serves; other changes wait for a restart."""
    new = read_again(context)
    old = context.config
    changed = changed_keys(old, new)
    restart = [key for key in changed if not key.startswith(LIVE)]
    applied = [key for key in changed if key.startswith("result.") or key == "model.fallback_manifest"]
    model_keys = [key for key in changed if key.startswith("model.") and key != "model.fallback_manifest"]
    if new.result != old.result:
        change_settings(loop, SettingsRequest(new.result))
    fallback = new.model.fallback_manifest
    context.config = replace(old, result=new.result, model=replace(old.model, fallback_manifest=fallback))
    data: dict[str, Any] = {"changed": changed, "applied": applied, "restart_needed": restart}
    if restart:
        logger.warning("reload: these changed keys take effect at the next start: %s", ", ".join(restart))
    if not model_keys and loop.parts.models.fallback is None:
        return Outcome("done", {**data, "model": loop.parts.model.as_dict()})
    request = SwapModelRequest(lambda: open_classifier(new.model))
    swap_model(loop, request)

    def settle(future: Future[Any]) -> Outcome:
        try:
            info: ModelInfo = future.result()
        except EdgeClassifierError as exc:
            current = loop.parts.model.as_dict()
            return Outcome("failed", {**data, "model": current}, f"the model was not changed: {exc}")
        context.config = replace(context.config, model=new.model)
        return Outcome("done", {**data, "applied": applied + model_keys, "model": info.as_dict()})

    waiting = Outcome("accepted", {**data, "model": loop.parts.model.as_dict(), "verified": False})
    return Pending(request.reply, settle, waiting)


def log_reload(outcome: Outcome) -> None:
    """SIGHUP has no one to answer: the outcome goes to the log."""
    data = outcome.data or {}
    if not outcome.ok:
        logger.error("reload (SIGHUP): %s", outcome.error)
        return
    model = data.get("model") or {}
    logger.info(
        "reload (SIGHUP): applied %s; restart needed for %s; serving model %s %s",
        ", ".join(data.get("applied", [])) or "nothing", ", ".join(data.get("restart_needed", [])) or "nothing",
        model.get("name"), model.get("version"),
    )  # fmt: skip
