"""The `teach` and `forget` commands: classes taught on the running daemon from photos sent over MQTT.

Run on the main loop's thread like every command, and served as the inbox's taught requests are (embed the
photos, replace the stored file, use it from the next frame). Photos are base64 in the JSON payload, checked as
catalogue/add's are; the ones that cannot be used are named in `photos_skipped`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge_classifier.commands.catalogue import MAX_PHOTO_CHARS, decode_photos
from edge_classifier.commands.context import CommandContext
from edge_classifier.commands.outcome import CommandError, Outcome, Result, settled
from edge_classifier.commands.validation import MAX_PAYLOAD_BYTES
from edge_classifier.errors import InputError
from edge_classifier.learning.remote import MAX_PHOTOS, serve_teaching, taught_document
from edge_classifier.learning.taught import check_label
from edge_classifier.service.inbox import ForgetRequest, TaughtRequest, TeachRequest

if TYPE_CHECKING:
    from edge_classifier.service.loop import MainLoop

MAX_TEACH_PAYLOAD_BYTES = MAX_PHOTOS * MAX_PHOTO_CHARS + MAX_PAYLOAD_BYTES


def _served(loop: MainLoop, request: TaughtRequest, extra: dict[str, Any]) -> Outcome:
    serve_teaching(loop, request)  # on this, the loop's, thread: between two frames; the reply is set on return
    return settled(request.reply, "the taught classes were not changed", lambda change: taught_document(change) | extra)


def teach(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    """Embed the photos that decode (the others are named in `photos_skipped`) and add them to the class."""
    try:
        label = check_label(document["label"])
    except InputError as exc:
        raise CommandError("invalid", str(exc)) from None
    images, skipped = decode_photos(document["photos"], context.config.http.max_image_pixels)
    return _served(loop, TeachRequest(label, tuple(images)), {"photos_skipped": skipped})


def forget(context: CommandContext, loop: MainLoop, document: dict[str, Any]) -> Result:
    return _served(loop, ForgetRequest(document["label"]), {})
