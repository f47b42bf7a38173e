"""`edge-classifier-sample-video`: the demo video, real garment photos one after another as a counter camera sees them.

The photos come from the committed evaluation set (tests/data/real-photos, made by
edge-classifier-eval-set): --per-class photos of every class, drawn in a seeded order, then shuffled so
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_classifier.config.settings import ResultConfig
from edge_classifier.model.classifier import Classifier
from edge_classifier.model.loading import min_score

from .eval_set import LABELS
from .paths import MODELS_DIR, REAL_PHOTOS_DIR, shown
from .video_camera import BRIGHT, DARK, HEIGHT, PAN_REACH, PAN_ZOOM, WIDTH, ZOOM, Garment, keyed_rng, random_camera
from .video_frames import (
    NOISE_SIGMA,
    PHOTO_SIDE,
    Image,
    background,
    empty_frames,
    garment_frame,
    place_photo,
    read_photo,
)


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
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
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


@dataclass(frozen=True)
class Plan:
    """What the video shows and for how long, made once from the command line."""

    photos: Path
    per_class: int
    seed: int
    fps: float
    frames_per_item: int
    frames_empty: int


def describe(plan: Plan) -> str:
    """How the video was made, in words, for its ground truth."""
    frames_per_item, frames_empty = plan.frames_per_item, plan.frames_empty
    return (
        f"{plan.per_class} photos per class from {shown(plan.photos)}, in a seeded order (seed {plan.seed}) with no "
        f"two neighbours of the same class, each shown for {frames_per_item} frames in the middle of a "
        f"{WIDTH}x{HEIGHT} frame at {plan.fps:g} fps (the photo {PHOTO_SIDE:.0%} of the frame height) on a "
        f"plaster wall over a wooden counter. Per garment, the camera zooms in or out ({ZOOM[0]:g} to {ZOOM[1]:g}) or "
        f"pans diagonally (up to {PAN_REACH * WIDTH:.0f} px either way at zoom {PAN_ZOOM:g}), and the light ramps or "
        f"steps between a dark and a bright exposure (gain {DARK[0]:g}-{DARK[1]:g} and {BRIGHT[0]:g}-{BRIGHT[1]:g}); "
        f"every frame has Gaussian sensor noise (sigma {NOISE_SIGMA:g} grey levels) and a slight blur. "
        f"{frames_empty} frames of the empty background (label null) separate the garments."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-classifier-sample-video", description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, default=REAL_PHOTOS_DIR, help="one folder of photos per class")
    p.add_argument("--model", type=Path, help="model manifest: use only photos it labels correctly in the video")
    p.add_argument("--output", type=Path, default=MODELS_DIR / "sample" / "garments.mp4", help="ground truth beside it")
    p.add_argument("--per-class", type=int, default=2)
    p.add_argument("--seconds-per-item", type=float, default=2.5)
    p.add_argument("--empty-seconds", type=float, default=1.0, help="empty scene between garments")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=7)
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)

    frames_per_item = round(args.seconds_per_item * args.fps)
    frames_empty = round(args.empty_seconds * args.fps)
    plan = Plan(args.photos, args.per_class, args.seed, args.fps, frames_per_item, frames_empty)
    rng = np.random.default_rng(args.seed)
    accept: Callable[[Garment], bool] = accept_all
    screened_with: dict[str, str] | None = None
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
        "description": describe(plan),
        "photos": shown(args.photos),
        "screened_with": screened_with,
        "command": " ".join(["edge-classifier-sample-video", *argv]),
        "segments": segments,
    }
    args.output.with_suffix(".json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    size_kib = args.output.stat().st_size // 1024
    print(f"wrote {args.output} ({size_kib} KiB, {truth['frames']} frames, {len(segments)} segments)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
