"""The demo video's frames: a plaster wall over a wooden counter, a photo on it, filmed by a moving camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .video_camera import HEIGHT, WIDTH, Garment, keyed_rng, lerp

PHOTO_SIDE = 0.82  # of the frame height at zoom 1: most of the daemon's centre square, some counter around it
NOISE_SIGMA = 1.5  # grey levels: a phone-class sensor in good indoor light, after its own denoising

Image = npt.NDArray[Any]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> Image:
    """Gaussian noise blurred to features of about `sigma` pixels, rescaled to unit spread."""
    field = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), sigma)
    spread: Image = field / (field.std() + 1e-6)
    return spread


def background(seed: int) -> Image:
    """A plaster wall over a wooden counter, lit from the upper left (float32 BGR, 0-255)."""
    rng = keyed_rng(seed, "background")
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    wall = np.empty((HEIGHT, WIDTH, 3), np.float32)
    wall[:] = (178, 190, 200)  # warm off-white
    wall += (5 * smooth_noise(rng, (HEIGHT, WIDTH), 40) + 3 * smooth_noise(rng, (HEIGHT, WIDTH), 1.5))[..., None]
    counter_top = int(HEIGHT * 0.8)
    # Wood grain: noise stretched along x, then a little wavy texture across it.
    grain = cv2.resize(rng.standard_normal((HEIGHT, WIDTH // 24), dtype=np.float32), (WIDTH, HEIGHT))
    grain = cv2.GaussianBlur(grain, (0, 0), 1.2) * 10 + 4 * smooth_noise(rng, (HEIGHT, WIDTH), 6)
    wood = np.empty((HEIGHT, WIDTH, 3), np.float32)
    wood[:] = (78, 112, 150)
    wood += grain[..., None]
    scene = np.where((ys >= counter_top)[..., None], wood, wall)
    scene[counter_top : counter_top + 3] *= 1.25  # the counter's lit front edge
    scene[counter_top - 4 : counter_top] *= 0.8  # its shadow on the wall
    distance = np.hypot((xs - 0.2 * WIDTH) / WIDTH, (ys - 0.1 * HEIGHT) / HEIGHT)
    lit: Image = scene * (1.08 - 0.35 * distance**2)[..., None]
    return lit


def place_photo(scene: Image, photo_bgr: Image) -> Image:
    """The photo in the frame's centre with a soft shadow on the wall behind it."""
    side = PHOTO_SIDE * HEIGHT
    k = side / photo_bgr.shape[0]
    placed = np.array([[k, 0, (WIDTH - side) / 2], [0, k, (HEIGHT - side) / 2]], np.float32)
    shadow_at = placed + np.array([[0, 0, 7], [0, 0, 10]], np.float32)
    card = np.ones(photo_bgr.shape[:2], np.float32)
    shadow = cv2.GaussianBlur(cv2.warpAffine(card, shadow_at, (WIDTH, HEIGHT)), (0, 0), 9)
    composed: Image = scene * (1 - 0.45 * shadow)[..., None]
    cv2.warpAffine(
        photo_bgr.astype(np.float32), placed, (WIDTH, HEIGHT), dst=composed,
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT,
    )  # fmt: skip
    return composed


def shoot(scene: Image, zoom: float, pan_x: float, pan_y: float, gain: float, noise: np.random.Generator) -> Image:
    """One camera frame of a scene: zoom about the centre, pan, exposure, lens softness, sensor noise."""
    view = np.asarray(cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), 0, zoom), dtype=np.float64)
    view[:, 2] += (pan_x, pan_y)
    frame = cv2.warpAffine(scene, view, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    frame = cv2.GaussianBlur(frame, (0, 0), 0.7) * gain
    frame += noise.standard_normal(frame.shape, dtype=np.float32) * NOISE_SIGMA
    shot: Image = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    return shot


def garment_frame(garment: Garment, scene: Image, n: int, count: int, seed: int) -> Image:
    """Frame n of the `count` frames of a garment's segment."""
    zoom, pan_x, pan_y, gain = garment.camera.at(n / max(count - 1, 1))
    return shoot(scene, zoom, pan_x, pan_y, gain, keyed_rng(seed, garment.photo.as_posix(), n))


def empty_frames(wall: Image, gains: tuple[float, float], count: int, seed: int, index: int) -> Iterator[Image]:
    """The background alone, its light going from the last garment's to the next one's."""
    for n in range(count):
        gain = lerp(gains, (n + 1) / (count + 1))
        yield shoot(wall, 1.0, 0.0, 0.0, gain, keyed_rng(seed, f"empty-{index}", n))


def read_photo(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"error: {path} is not a readable image")
    return image
