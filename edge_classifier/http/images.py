"""Uploaded image bytes to a BGR frame, refusing what is too large before anything is decoded.

OpenCV has no call that reads only an image's size, and its own pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS) is an
environment variable read once per process, before the model's self-test has already decoded images; so the
width and height come from the header here (JPEG, PNG, WebP, BMP: what a phone or a browser sends) and any
other format is refused rather than decoded unchecked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.http.problems import RequestError

Image = npt.NDArray[np.uint8]
FORMATS = "JPEG, PNG, WebP or BMP"
# JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC share the range but are not frames).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7, SOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_OTHER_SIGNATURES = {
    b"GIF8": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000",
    b"%PDF": "PDF",
}


@dataclass(frozen=True)
class ImageHeader:
    format: str  # jpeg, png, webp, bmp
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _bad(message: str) -> RequestError:
    return RequestError(400, message)


def _u16be(data: bytes, at: int) -> int:
    value: int = struct.unpack_from(">H", data, at)[0]
    return value


def read_header(data: bytes) -> ImageHeader:
    """Format and size from the first bytes; RequestError (415 or 400) for anything else or a broken header."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:2] == b"BM":
            return _bmp(data)
    except struct.error:
        raise _bad("the image header is truncated") from None
    named = next((name for signature, name in _OTHER_SIGNATURES.items() if data.startswith(signature)), None)
    if named:
        raise RequestError(415, f"{named} images are not accepted: send a {FORMATS} image")
    raise RequestError(415, f"the body is not a {FORMATS} image (it starts with {data[:8].hex() or 'nothing'})")


def _png(data: bytes) -> ImageHeader:
    if data[12:16] != b"IHDR":
        raise _bad("the PNG has no IHDR header chunk")
    width, height = struct.unpack_from(">II", data, 16)
    return _sized("png", width, height)


def _jpeg(data: bytes) -> ImageHeader:
    """Walk the marker segments to the first start-of-scan; the frame header before it gives the size."""
    size: tuple[int, int] | None = None
    at = 2
    while True:
        if at >= len(data):
            raise _bad("the JPEG is truncated: it ends before its image data")
        if data[at] != 0xFF:
            raise _bad(f"the JPEG is corrupt: no marker at byte {at}")
        while at < len(data) and data[at] == 0xFF:  # fill bytes
            at += 1
        if at >= len(data):
            raise _bad("the JPEG is truncated: it ends before its image data")
        marker = data[at]
        at += 1
        if marker in _STANDALONE:
            continue
        if marker == 0xD9:
            raise _bad("the JPEG ends before its image data")
        length = _u16be(data, at)
        if length < 2:
            raise _bad(f"the JPEG is corrupt: marker {marker:02X} has length {length}")
        if marker in _SOF and size is None:
            height, width = struct.unpack_from(">HH", data, at + 3)
            if height == 0:
                raise _bad("JPEG images whose height comes after the image data (DNL) are not accepted")
            size = (width, height)
        if marker == 0xDA:
            break
        at += length
    if size is None:
        raise _bad("the JPEG has no frame header before its image data")
    # Entropy-coded data never holds FF D9 (FF is always followed by 00 or a restart marker there), so a
    # complete image has its end-of-image marker after the first scan; thumbnails are in APP segments before it.
    if data.find(b"\xff\xd9", at) < 0:
        raise _bad("the JPEG is truncated: no end-of-image marker after its image data")
    return _sized("jpeg", *size)


def _webp(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise _bad("the WebP (VP8) frame header is corrupt")
        width, height = struct.unpack_from("<HH", data, 26)
        return _sized("webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        if data[20:21] != b"\x2f":
            raise _bad("the WebP (VP8L) header is corrupt")
        bits: int = struct.unpack_from("<I", data, 21)[0]
        return _sized("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        if len(data) < 30:
            raise struct.error
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _sized("webp", width, height)
    raise _bad(f"the WebP has an unknown first chunk {chunk!r}")


def _bmp(data: bytes) -> ImageHeader:
    header_size: int = struct.unpack_from("<I", data, 14)[0]
    if header_size == 12:  # BITMAPCOREHEADER
        width, height = struct.unpack_from("<HH", data, 18)
    elif header_size >= 40:
        width, height = struct.unpack_from("<ii", data, 18)
    else:
        raise _bad(f"the BMP has an unknown header size {header_size}")
    return _sized("bmp", abs(width), abs(height))  # a negative height means top-down rows


def _sized(kind: str, width: int, height: int) -> ImageHeader:
    if width <= 0 or height <= 0:
        raise _bad(f"the {kind.upper()} header gives an empty size {width}x{height}")
    return ImageHeader(kind, width, height)


def check_pixels(header: ImageHeader, max_pixels: int) -> None:
    if header.pixels > max_pixels:
        raise RequestError(
            413,
            f"the image is {header.width}x{header.height} ({header.pixels / 1e6:.1f} megapixels), more than "
            f"http.max_image_pixels ({max_pixels / 1e6:.1f} megapixels)",
        )


def decode_image(data: bytes, max_pixels: int) -> tuple[Image, ImageHeader]:
    """A BGR frame (EXIF orientation applied, as `classify` reads files) once the header says its size is allowed."""
    header = read_header(data)
    check_pixels(header, max_pixels)
    image = cast("Image | None", cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    if image is None:
        raise _bad(f"the {header.format.upper()} image could not be decoded (corrupt or truncated data)")
    return image, header
