#!/usr/bin/env python3
"""Write the demo video: real garment photos one after another, as a camera over a counter would see them.

The photos come from the committed evaluation set (tests/data/real-photos, made by
make_eval_set.py): --per-class photos of every class, drawn in a seeded order, then shuffled so
that neighbours differ. Each is shown for --seconds-per-item on a textured wall-and-counter
background, filling most of the 480x480 centre square the daemon crops, while the camera slowly
zooms or pans and the light ramps or steps; every frame gets mild sensor noise. --empty-seconds
of the empty background (no garment) separate the garments. The same --seed gives the same video.

With --model MANIFEST a photo is used only if that model, loaded as `edge-classifier classify`
loads it, labels the first, middle and last frames of the photo's segment correctly with a score at
or above the manifest's min_score (so the daemon does not call it unknown); candidates are tried in the
seeded order until each class has its quota. The model's self-test images are chosen the same
way: the video demonstrates the camera path (codec, 640x480, crop, resize, voting), it does not
measure accuracy, which the build measures on whole test sets.

The ground truth goes to a JSON file beside the video: every segment's first and last frame and
label (null for the empty scenes), each garment's photo and camera motion, and how the video was
made.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from make_eval_set import LABELS

from edge_classifier.config.settings import ResultConfig
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.loading import min_score

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DEFAULT_PHOTOS = ROOT / "tests" / "data" / "real-photos"
WIDTH, HEIGHT = 640, 480
PHOTO_SIDE = 0.82  # of the frame height at zoom 1: most of the daemon's centre square, some counter around it
ZOOM = (1.0, 1.1)
PAN_ZOOM = 1.08  # a pan needs some scene beyond the frame's edges to move over
# Zooming about the centre leaves (zoom - 1) / 2 of the frame at each edge; 90% of it never shows past the scene.
PAN_REACH = 0.9 * (PAN_ZOOM - 1) / 2
DARK, BRIGHT = (0.78, 0.92), (1.02, 1.15)  # exposure gains a segment's light goes between
NOISE_SIGMA = 1.5  # grey levels: a phone-class sensor in good indoor light, after its own denoising

Image = npt.NDArray[Any]


@dataclass(frozen=True)
class Camera:
    """A segment's camera, start to end: zoom (>= 1: no edge of the scene shows), pan in pixels, exposure gain."""

    motion: str
    zoom: tuple[float, float]
    pan: tuple[tuple[float, float], tuple[float, float]]
    light: str
    gain: tuple[float, float]
    step_at: float  # where a lighting step happens, as a fraction of the segment (unused by a ramp)

    def at(self, t: float) -> tuple[float, float, float, float]:
        """Zoom, pan x, pan y and gain at t in [0, 1]."""
        (x0, y0), (x1, y1) = self.pan
        light = float(t >= self.step_at) if self.light == "step" else t
        return lerp(self.zoom, t), lerp((x0, x1), t), lerp((y0, y1), t), lerp(self.gain, light)

    def as_dict(self) -> dict[str, Any]:
        described: dict[str, Any] = {"motion": self.motion, "zoom": self.zoom, "pan_px": self.pan}
        described |= {"light": self.light, "gain": self.gain}
        if self.light == "step":
            described["step_at"] = self.step_at
        return rounded(described)


@dataclass(frozen=True)
class Garment:
    """A photo of the set, its label and how the camera films it."""

    photo: Path  # relative to the photo set
    label: str
    camera: Camera


def lerp(pair: tuple[float, float], t: float) -> float:
    return pair[0] + (pair[1] - pair[0]) * t


def rounded(value: Any) -> Any:
    """Floats rounded to 3 places, tuples as lists: the JSON stays readable."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, (tuple, list)):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def keyed_rng(seed: int, key: str, n: int = 0) -> np.random.Generator:
    """A generator that depends only on the seed, a name and a number, not on what was drawn before.

    A photo's camera and noise are then the same whether it is screened or written, and in any order.
    """
    return np.random.default_rng([seed, zlib.crc32(key.encode()), n])


def random_camera(rng: np.random.Generator) -> Camera:
    """A zoom in, a zoom out or a diagonal pan, and a light ramp or step between a dark and a bright exposure."""
    motion = str(rng.choice(["zoom in", "zoom out", "pan"]))
    if motion == "pan":
        zoom = (PAN_ZOOM, PAN_ZOOM)
        reach_x, reach_y = PAN_REACH * WIDTH, PAN_REACH * HEIGHT
        sign_x, sign_y = rng.choice([-1.0, 1.0], size=2)
        pan = ((-sign_x * reach_x, -sign_y * reach_y), (sign_x * reach_x, sign_y * reach_y))
    else:
        zoom = ZOOM if motion == "zoom in" else (ZOOM[1], ZOOM[0])
        pan = ((0.0, 0.0), (0.0, 0.0))
    light = str(rng.choice(["ramp", "step"]))
    low, high = float(rng.uniform(*DARK)), float(rng.uniform(*BRIGHT))
    gain = (low, high) if rng.random() < 0.5 else (high, low)
    return Camera(motion, zoom, pan, light, gain, float(rng.uniform(0.3, 0.7)))


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
    composed = scene * (1 - 0.45 * shadow)[..., None]
    cv2.warpAffine(
        photo_bgr.astype(np.float32), placed, (WIDTH, HEIGHT), dst=composed,
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT,
    )  # fmt: skip
    return composed


def shoot(scene: Image, zoom: float, pan_x: float, pan_y: float, gain: float, noise: np.random.Generator) -> Image:
    """One camera frame of a scene: zoom about the centre, pan, exposure, lens softness, sensor noise."""
    view = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), 0, zoom)
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


def candidates(photos: Path, folder: str, rng: np.random.Generator) -> list[Path]:
    """The class's photos (relative paths) in the seeded order they are tried."""
    found = sorted(p.relative_to(photos) for p in (photos / folder).glob("*.jpg"))
    return [found[i] for i in rng.permutation(len(found))]


def choose(
    photos: Path, per_class: int, seed: int, rng: np.random.Generator, accept: Callable[[Garment], bool]
) -> list[Garment]:
    """`per_class` accepted garments of every class folder, in the seeded order."""
    chosen = []
    for folder in sorted(d.name for d in photos.iterdir() if d.is_dir()):
        if folder not in LABELS:
            raise SystemExit(f"error: {photos / folder} is not one of the classes {', '.join(LABELS)}")
        kept = []
        for photo in candidates(photos, folder, rng):
            garment = Garment(photo, LABELS[folder], random_camera(keyed_rng(seed, photo.as_posix())))
            if accept(garment):
                kept.append(garment)
                if len(kept) == per_class:
                    break
        if len(kept) < per_class:
            raise SystemExit(f"error: only {len(kept)} photos of {folder} pass the screening, {per_class} wanted")
        chosen += kept
    return chosen


def accept_all(garment: Garment) -> bool:
    return True


def screen(classifier: Classifier, photos: Path, frames_per_item: int, seed: int) -> Callable[[Garment], bool]:
    """Whether the model labels a garment's segment (first, middle, last frame) right, above its min_score."""
    missing = sorted(set(LABELS.values()) - set(classifier.labels))
    if missing:
        raise SystemExit(f"error: the model {classifier.model_path} has no label {', '.join(missing)}")
    wall = background(seed)
    threshold = min_score(ResultConfig(), classifier)  # what the daemon uses with the default config

    def right(frame: Image, label: str) -> bool:
        scores = classifier.classify(frame).scores
        return classifier.labels[int(np.argmax(scores))] == label and float(np.max(scores)) >= threshold

    def accept(garment: Garment) -> bool:
        scene = place_photo(wall, read_photo(photos / garment.photo))
        samples = (0, frames_per_item // 2, frames_per_item - 1)
        return all(right(garment_frame(garment, scene, i, frames_per_item, seed), garment.label) for i in samples)

    return accept


def spread(order: list[int], labels: list[str]) -> list[int]:
    """Reorder so that no two neighbours share a label: each garment is then a visible label change."""
    result: list[int] = []
    pending = list(order)
    while pending:
        pick = next((i for i in pending if not result or labels[i] != labels[result[-1]]), pending[0])
        pending.remove(pick)
        result.append(pick)
    return result


def write_video(
    path: Path, garments: list[Garment], photos: Path, fps: float, frames: tuple[int, int], seed: int
) -> list[dict[str, Any]]:
    """Garments with empty scenes between them; the segments of the ground truth."""
    frames_per_item, frames_empty = frames
    wall = background(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit(f"error: cannot write {path} with the mp4v codec")
    segments: list[dict[str, Any]] = []
    written = 0
    for n, garment in enumerate(garments):
        if n and frames_empty:
            gains = (garments[n - 1].camera.gain[1], garment.camera.gain[0])
            for frame in empty_frames(wall, gains, frames_empty, seed, n):
                writer.write(frame)
            segments.append({"label": None, "first_frame": written, "last_frame": written + frames_empty - 1})
            written += frames_empty
        scene = place_photo(wall, read_photo(photos / garment.photo))
        for i in range(frames_per_item):
            writer.write(garment_frame(garment, scene, i, frames_per_item, seed))
        segments.append({
            "label": garment.label, "photo": garment.photo.as_posix(),
            "first_frame": written, "last_frame": written + frames_per_item - 1,
            "camera": garment.camera.as_dict(),
        })  # fmt: skip
        written += frames_per_item
    writer.release()
    return segments


def shown(path: Path) -> str:
    """A path as the repository's command lines show it: relative to the checkout when inside it."""
    resolved = path.resolve()
    return resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(path)


def describe(args: argparse.Namespace, frames_per_item: int, frames_empty: int) -> str:
    return (
        f"{args.per_class} photos per class from {shown(args.photos)}, in a seeded order (seed {args.seed}) with no "
        f"two neighbours of the same class, each shown for {frames_per_item} frames in the middle of a "
        f"{WIDTH}x{HEIGHT} frame at {args.fps:g} fps (the photo {PHOTO_SIDE:.0%} of the frame height) on a "
        f"plaster wall over a wooden counter. Per garment, the camera zooms in or out ({ZOOM[0]:g} to {ZOOM[1]:g}) or "
        f"pans diagonally (up to {PAN_REACH * WIDTH:.0f} px either way at zoom {PAN_ZOOM:g}), and the light ramps or "
        f"steps between a dark and a bright exposure (gain {DARK[0]:g}-{DARK[1]:g} and {BRIGHT[0]:g}-{BRIGHT[1]:g}); "
        f"every frame has Gaussian sensor noise (sigma {NOISE_SIGMA:g} grey levels) and a slight blur. "
        f"{frames_empty} frames of the empty background (label null) separate the garments."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="one folder of photos per class")
    p.add_argument("--model", type=Path, help="model manifest: use only photos it labels correctly in the video")
    p.add_argument("--output", type=Path, default=MODELS / "sample" / "garments.mp4", help="ground truth beside it")
    p.add_argument("--per-class", type=int, default=2)
    p.add_argument("--seconds-per-item", type=float, default=2.5)
    p.add_argument("--empty-seconds", type=float, default=1.0, help="empty scene between garments")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    frames_per_item = round(args.seconds_per_item * args.fps)
    frames_empty = round(args.empty_seconds * args.fps)
    rng = np.random.default_rng(args.seed)
    accept, screened_with = accept_all, None
    if args.model:
        classifier = Classifier.from_manifest(args.model)
        accept = screen(classifier, args.photos, frames_per_item, args.seed)
        assert classifier.manifest is not None  # from_manifest sets it
        screened_with = {"model": classifier.manifest.name, "sha256": classifier.manifest.sha256}
    chosen = choose(args.photos, args.per_class, args.seed, rng, accept)
    order = spread(rng.permutation(len(chosen)).tolist(), [g.label for g in chosen])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    garments = [chosen[i] for i in order]
    segments = write_video(args.output, garments, args.photos, args.fps, (frames_per_item, frames_empty), args.seed)
    truth = {
        "video": args.output.name,
        "fps": args.fps,
        "size": [WIDTH, HEIGHT],
        "frames": segments[-1]["last_frame"] + 1,
        "seed": args.seed,
        "description": describe(args, frames_per_item, frames_empty),
        "photos": shown(args.photos),
        "screened_with": screened_with,
        "command": "python models/make_sample_video.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "segments": segments,
    }
    args.output.with_suffix(".json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    size_kib = args.output.stat().st_size // 1024
    print(f"wrote {args.output} ({size_kib} KiB, {truth['frames']} frames, {len(segments)} segments)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
