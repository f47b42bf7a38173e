#!/usr/bin/env python3
"""Write the demo video: Fashion-MNIST test garments shown one after another, as a camera would see them.

Each segment shows one test image, upscaled and centred on a black 640x480 frame, for
--seconds-per-item seconds. The ground truth (label per segment, first and last frame) goes
to a JSON file beside the video.

Images are drawn at random (seeded) from the test set, skipping the ones the given model
misclassifies on their own: the video checks that the camera path (video codec, 640x480,
crop, resize) preserves the model's answers, while the model's accuracy is measured on the
whole test set by the build.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ecbuild.data import FASHION_DIR, load_fashion_mnist
from edge_classifier.classifier import Classifier

MODELS = Path(__file__).resolve().parent


def spread(order: list[int], labels: list[int]) -> list[int]:
    """Reorder so that no two neighbours share a label: each segment is then a visible label change."""
    result: list[int] = []
    pending = list(order)
    while pending:
        pick = next((i for i in pending if not result or labels[i] != labels[result[-1]]), pending[0])
        pending.remove(pick)
        result.append(pick)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=FASHION_DIR)
    p.add_argument("--model", type=Path, default=MODELS / "fashion-mobilenetv2.json")
    p.add_argument("--output", type=Path, default=MODELS / "sample" / "garments.mp4")
    p.add_argument("--per-class", type=int, default=2)
    p.add_argument("--seconds-per-item", type=float, default=1.5)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    data = load_fashion_mnist(args.data_dir)
    classifier = Classifier.from_manifest(args.model)
    rng = np.random.default_rng(args.seed)
    chosen: list[tuple[int, int]] = []  # (test index, label)
    for label in range(len(data.labels)):
        candidates = rng.permutation(np.flatnonzero(data.test_labels == label))
        kept = 0
        for index in candidates:
            frame = cv2.resize(data.test_bgr[index], (28, 28))
            if int(np.argmax(classifier.classify(frame).scores)) == label:
                chosen.append((int(index), label))
                kept += 1
                if kept == args.per_class:
                    break
    order = spread(rng.permutation(len(chosen)).tolist(), [label for _, label in chosen])
    frames_per_item = round(args.seconds_per_item * args.fps)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(args.output), cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (640, 480))
    if not writer.isOpened():
        print(f"error: cannot write {args.output} with the mp4v codec", file=sys.stderr)
        return 1
    segments = []
    for n, i in enumerate(order):
        index, label = chosen[i]
        garment = cv2.resize(data.test_bgr[index], (448, 448), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((480, 640, 3), dtype=np.uint8)
        canvas[16:464, 96:544] = garment
        for _ in range(frames_per_item):
            writer.write(canvas)
        segments.append({
            "label": data.labels[label], "test_index": index,
            "first_frame": n * frames_per_item, "last_frame": (n + 1) * frames_per_item - 1,
        })  # fmt: skip
    writer.release()
    truth = {
        "video": args.output.name,
        "fps": args.fps,
        "frames": len(segments) * frames_per_item,
        "screened_with": {
            "model": classifier.manifest.name if classifier.manifest else "",
            "sha256": classifier.manifest.sha256 if classifier.manifest else "",
        },
        "command": "python models/make_sample_video.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "segments": segments,
    }
    args.output.with_suffix(".json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    size_kib = args.output.stat().st_size // 1024
    print(f"wrote {args.output} ({size_kib} KiB, {truth['frames']} frames, {len(segments)} segments)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
