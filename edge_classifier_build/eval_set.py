"""`edge-classifier-eval-set`: the committed real-photo evaluation set, clothing-dataset-small's validation photos."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_classifier.model.preprocess import crop_box

from .paths import REAL_PHOTOS_DIR, shown

PROGRAM = "edge-classifier-eval-set"
REPOSITORY = "alexeygrigorev/clothing-dataset-small"

# The dataset's class folders (sorted, so in the model's class order) and the labels the model shows.
LABELS = {
    "dress": "Dress",
    "hat": "Hat",
    "longsleeve": "Long sleeve",
    "outwear": "Outwear",
    "pants": "Pants",
    "shirt": "Shirt",
    "shoes": "Shoes",
    "shorts": "Shorts",
    "skirt": "Skirt",
    "t-shirt": "T-shirt",
}


def square(image_bgr: npt.NDArray[Any], size: int) -> npt.NDArray[np.uint8]:
    """The daemon's centre crop to a square, resized with INTER_AREA as the daemon resizes."""
    y0, y1, x0, x1 = crop_box(image_bgr.shape[0], image_bgr.shape[1], size, size)
    resized = cv2.resize(image_bgr[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(resized, dtype=np.uint8)


def convert_folder(source: Path, output: Path, size: int, quality: int) -> int:
    """Write every photo of one class folder; returns how many."""
    output.mkdir(parents=True, exist_ok=True)
    photos = sorted(source.glob("*.jpg"))
    for photo in photos:
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"error: {photo} is not a readable image")
        # Baseline (not progressive or optimized) JPEG keeps the bytes the same from run to run.
        ok = cv2.imwrite(str(output / f"{photo.stem}.jpg"), square(image, size), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise SystemExit(f"error: cannot write {output / photo.name}")
    return len(photos)


def command_line(output: Path, size: int, quality: int) -> str:
    """The command that remakes the set from a clone, so the README does not name this machine's paths."""
    return (
        f".venv/bin/{PROGRAM} --source clothing-dataset-small/validation --output {shown(output)} "
        f"--size {size} --quality {quality}"
    )


def readme(counts: dict[str, int], total_bytes: int, command: str, size: int, quality: int) -> str:
    rows = "\n".join(f"| `{folder}/` | {LABELS.get(folder, '?')} | {n} |" for folder, n in counts.items())
    return f"""# Real-photo evaluation set

{sum(counts.values())} photos of garments, {size}x{size} JPEG (quality {quality}), one folder per class: the
whole `validation/` split of the public GitHub repository
[{REPOSITORY}](https://github.com/{REPOSITORY})
(real photos taken by people: flat lays, worn, on hangers). License: CC0 1.0, see `LICENSE`
(copied from the dataset).

Each photo was cropped to its largest centred square (`edge_classifier.model.preprocess.crop_box`,
the daemon's own crop) and resized with `cv2.INTER_AREA`, so the daemon sees the same square as it
would in the original photo. Made by `{PROGRAM}` (the same command writes the same bytes again):

```sh
git clone https://github.com/{REPOSITORY}
{command}
```

| Folder | Label | Photos |
| --- | --- | ---: |
{rows}
| | **total** | **{sum(counts.values())}** |

The JPEGs total {total_bytes:,} bytes ({total_bytes / 1e6:.2f} MB).

Model choices are tuned on the dataset's validation split (its `test/` split is kept for
independent evaluation), so accuracy measured on this set is not an independent test figure.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, required=True, help="the dataset's validation folder (one folder per class)")
    p.add_argument("--output", type=Path, default=REAL_PHOTOS_DIR)
    p.add_argument("--size", type=int, default=224, help="side of the square photos in pixels")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality (85 keeps the 341 photos near 4 MB)")
    p.add_argument("--license", type=Path, help="the dataset's CC0 license text (default: LICENSE beside SOURCE)")
    args = p.parse_args(argv)

    folders = sorted(d for d in args.source.iterdir() if d.is_dir())
    if not folders:
        print(f"error: {args.source} has no class folders", file=sys.stderr)
        return 1
    license_file = args.license or args.source.parent / "LICENSE"
    if not license_file.is_file():
        print(f"error: {license_file} (the dataset's license) is missing; give it with --license", file=sys.stderr)
        return 1
    counts = {d.name: convert_folder(d, args.output / d.name, args.size, args.quality) for d in folders}
    total_bytes = sum(f.stat().st_size for d in folders for f in (args.output / d.name).glob("*.jpg"))
    shutil.copyfile(license_file, args.output / "LICENSE")
    command = command_line(args.output, args.size, args.quality)
    (args.output / "README.md").write_text(readme(counts, total_bytes, command, args.size, args.quality))
    print(f"wrote {sum(counts.values())} photos to {args.output} ({total_bytes / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
