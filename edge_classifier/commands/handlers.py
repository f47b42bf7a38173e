"""The command table: one small handler per command, run on the main loop's thread."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_classifier.commands.catalogue import MAX_ADD_PAYLOAD_BYTES, catalogue_add, catalogue_remove
from edge_classifier.commands.context import CommandContext
from edge_classifier.commands.outcome import CommandError, Outcome, Pending, Result
from edge_classifier.commands.reload import reload_config
from edge_classifier.commands.replay import replay
from edge_classifier.commands.snapshot import DEFAULT_QUALITY, DEFAULT_WIDTH, encode_capped, snapshot_message
from edge_classifier.commands.status import ping_data, status_data
from edge_classifier.commands.teaching import MAX_TEACH_PAYLOAD_BYTES, forget, teach
from edge_classifier.commands.validation import MAX_PAYLOAD_BYTES
from edge_classifier.config.from_yaml import build_dataclass
from edge_classifier.config.settings import ModelConfig, ResultConfig
from edge_classifier.errors import BusyError, ConfigError, EdgeClassifierError, ModelError
from edge_classifier.model.identity import ModelInfo
from edge_classifier.model.loading import open_classifier
from edge_classifier.service.hot_swap import roll_back
from edge_classifier.service.inbox import SettingsRequest, SwapModelRequest
from edge_classifier.service.requests import change_settings, swap_model

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

logger = logging.getLogger(__name__)
Handler = Callable[[CommandContext, "MainLoop", dict[str, Any]], Result]


@dataclass(frozen=True)
class Command:
    """A handler, and an optional check that runs before the schema's (settings: the config's own, so that an
    error names result.<key> exactly as a bad config file would)."""

    handler: Handler
    precheck: Callable[[CommandContext, MainLoop, dict[str, Any]], object] | None = None
    max_payload_bytes: int = MAX_PAYLOAD_BYTES


def ping(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    return Outcome("done", ping_data(context.clock() - context.started))


def status(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    parts = loop.parts
    snapshot = parts.state.snapshot()
    uptime = context.clock() - context.started
    return Outcome("done", status_data(snapshot, parts.settings, parts.models, context.counts, uptime))


def new_result_config(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> ResultConfig:
    """The settings in force with the document's changes, checked by the config's own code."""
    changes = {key: value for key, value in document.items() if key != "id"}
    tree = {**dataclasses.asdict(loop.parts.settings.configured), **changes}
    try:
        result: ResultConfig = build_dataclass(ResultConfig, tree, "result")
    except ConfigError as exc:
        raise CommandError("invalid", str(exc)) from None
    return result


def settings(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    request = SettingsRequest(new_result_config(context, loop, document))
    change_settings(loop, request)
    live = request.reply.result(0)
    return Outcome("done", {
        "top_k": live.top_k, "vote_window": live.vote_window, "min_score": round(live.min_score, 4),
        "heartbeat_s": live.heartbeat_s,
    })  # fmt: skip


def snapshot(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    state = loop.parts.state.snapshot()
    if state.frame_bgr is None:
        raise CommandError("failed", "no frame has been classified yet")
    width, quality = document.get("max_width", DEFAULT_WIDTH), document.get("quality", DEFAULT_QUALITY)
    jpeg = encode_capped(state.frame_bgr, width, quality)
    topic = context.snapshot_topic
    if not loop.parts.publisher.send(snapshot_message(topic, jpeg)):
        raise CommandError("failed", "the snapshot could not be published: not connected")
    return Outcome("done", {
        "topic": topic, "bytes": len(jpeg.data), "width": jpeg.width, "height": jpeg.height, "quality": jpeg.quality,
        "frame_index": state.latest.frame.index if state.latest is not None else None,
    })  # fmt: skip


def allowed_manifest(given: str, dirs: list[Path]) -> Path:
    """A bundled model's name, or a manifest path (relative: to a models directory) inside one of `dirs`."""
    if "/" not in given:
        name = given if given.endswith(".json") else f"{given}.json"
        candidates = [folder / name for folder in dirs]
    else:
        path = Path(given).expanduser()
        candidates = [path] if path.is_absolute() else [folder / path for folder in dirs]
    for candidate in candidates:
        real = candidate.resolve()
        if any(real.is_relative_to(folder) for folder in dirs) and real.exists():
            return real
    places = ", ".join(str(folder) for folder in dirs)
    inside = [c for c in candidates if any(c.resolve().is_relative_to(folder) for folder in dirs)]
    if not inside:
        raise CommandError("refused", f"{given!r} is not inside a models directory ({places})")
    raise CommandError("failed", f"no manifest {given!r} in {places}")


def _swap_outcome(loop: MainLoop, request: SwapModelRequest, before: ModelInfo) -> Pending:
    def settle(future: Future[Any]) -> Outcome:
        try:
            info: ModelInfo = future.result()
        except BusyError as exc:
            return Outcome("refused", {"model": loop.parts.model.as_dict()}, str(exc))
        except EdgeClassifierError as exc:
            message = str(exc).removeprefix("model.manifest: ")
            return Outcome("failed", {"model": loop.parts.model.as_dict()}, f"still serving the old model: {message}")
        return Outcome("done", {"model": info.as_dict(), "previous_model": before.as_dict(), "verified": True})

    waiting = Outcome("accepted", {"model": loop.parts.model.as_dict(), "previous_model": before.as_dict(),
                                   "verified": False})  # fmt: skip
    return Pending(request.reply, settle, waiting)


def model_load(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    manifest = allowed_manifest(document["manifest"], context.model_dirs())
    config = ModelConfig(manifest=manifest, num_threads=context.config.model.num_threads, selftest=True)
    request = SwapModelRequest(lambda: open_classifier(config))
    before = loop.parts.model
    swap_model(loop, request)
    return _swap_outcome(loop, request, before)


def model_rollback(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    before = loop.parts.model
    try:
        now = roll_back(loop, f"model {before.name} {before.version} rolled back by the model/rollback command")
    except ModelError as exc:
        raise CommandError("failed", str(exc)) from None
    logger.info("model/rollback: now serving %s %s again", now.name, now.version)
    return Outcome("done", {"model": now.as_dict(), "previous_model": None, "rolled_back": before.as_dict()})


COMMANDS: dict[str, Command] = {
    "ping": Command(ping),
    "status": Command(status),
    "settings": Command(settings, precheck=new_result_config),
    "reload": Command(reload_config),
    "snapshot": Command(snapshot),
    "model/load": Command(model_load),
    "model/rollback": Command(model_rollback),
    "catalogue/add": Command(catalogue_add, max_payload_bytes=MAX_ADD_PAYLOAD_BYTES),
    "catalogue/remove": Command(catalogue_remove),
    "replay": Command(replay),
    "teach": Command(teach, max_payload_bytes=MAX_TEACH_PAYLOAD_BYTES),
    "forget": Command(forget),
}
