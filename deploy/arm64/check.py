"""The Python half of deploy/arm64-check.sh: extract frames, probe one platform, compare the platforms.

  check.py frames VIDEO OUTDIR --count N     evenly spaced frames of VIDEO as lossless PNGs (host only)
  check.py probe --manifest M --out F.npz [--tensors X.npz] IMAGE...
                                             per image: the daemon's input tensor and raw int8 output
                                             (manifest interpolation and INTER_LINEAR_EXACT), and the
                                             interpreter alone on the tensors X.npz made elsewhere
  check.py report --reference x86.npz x86.jsonl --platform NAME F.npz F.jsonl ... --out result.json
                                             compare each platform with the reference; exit 1 on mismatch

Runs under the project's own Python on x86 and under qemu-aarch64 with the sysroot's Python 3.11.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
EXACT = "linear_exact"  # OpenCV's bit-exact resize: the same pixels on every CPU


def extract_frames(video: Path, outdir: Path, count: int) -> list[Path]:
    """Write `count` evenly spaced frames of `video` as PNG files (lossless, so both platforms read equal pixels)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    cap.release()
    if not frames:
        raise SystemExit(f"check.py: error: no frames could be read from {video}")
    outdir.mkdir(parents=True, exist_ok=True)
    picks = sorted({round(i * (len(frames) - 1) / max(1, count - 1)) for i in range(count)})
    paths = []
    for index in picks:
        path = outdir / f"frame-{index:05d}.png"
        cv2.imwrite(str(path), frames[index])
        paths.append(path)
    return paths


def cpu_description() -> str:
    """What /proc/cpuinfo says the CPU is (under qemu: the sysroot's stand-in file)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields.get("Model") or fields.get("model name") or f"CPU part {fields.get('CPU part', '?')}"


def interpreter_alone(model: Path, outputs: Any, tensors: Any, count: int, arrays: dict[str, Any]) -> str:
    """Run the model on the given input tensors; keep the output and, if the last op is SOFTMAX, its input.

    The interpreter is the daemon's (XNNPACK delegate included) with every tensor kept, so the logits
    that enter the final SOFTMAX can be compared on their own. Returns the last op's name.
    """
    from edge_classifier.model.runner import interpreter_class, io_specs, run_raw

    interpreter = interpreter_class()[0](model_path=str(model), num_threads=2, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    input_spec, output_spec = io_specs(interpreter, outputs)  # OUTPUTS: the manifest's, for a model with several
    producers = [op for op in interpreter._get_ops_details() if output_spec.index in op["outputs"]]
    last = next((op for op in producers if op["op_name"] != "DELEGATE"), producers[0])
    for i in range(count):
        arrays[f"given_raw_{i}"] = run_raw(interpreter, input_spec, output_spec, tensors[f"input_{i}"])
        if last["op_name"] == "SOFTMAX":
            arrays[f"given_logits_{i}"] = np.array(interpreter.get_tensor(int(last["inputs"][0]))).reshape(-1)
    return str(last["op_name"])


def probe(manifest_path: Path, images: list[Path], tensors: Path | None, out: Path) -> None:
    """Run the daemon's own code on every image and save what the other platform must match."""
    import cv2

    from edge_classifier import __version__
    from edge_classifier.model.classifier import Classifier, read_image_bgr
    from edge_classifier.model.runner import interpreter_class

    classifier = Classifier.from_manifest(manifest_path, num_threads=2)
    manifest = classifier.manifest
    assert manifest is not None
    exact = Classifier.from_file(
        manifest.model_path, manifest.labels, replace(manifest.preprocessing, interpolation=EXACT),
        manifest.output_kind, 2, manifest.outputs,
    )  # fmt: skip
    arrays: dict[str, Any] = {}
    for i, path in enumerate(images):
        frame = read_image_bgr(path)
        # Copies: the preprocessor reuses one output buffer for every frame.
        arrays[f"input_{i}"] = np.array(classifier.preprocess(frame), copy=True)
        arrays[f"raw_{i}"] = np.array(classifier.classify(frame).raw, copy=True)
        arrays[f"exact_input_{i}"] = np.array(exact.preprocess(frame), copy=True)
        arrays[f"exact_raw_{i}"] = np.array(exact.classify(frame).raw, copy=True)
    last_op = interpreter_alone(
        manifest.model_path, manifest.outputs, np.load(tensors) if tensors else arrays, len(images), arrays
    )
    meta = {
        "machine": platform.machine(),
        "cpu": cpu_description(),
        "python": platform.python_version(),
        "edge_classifier": __version__,
        "interpreter": interpreter_class()[1],
        "versions": {p: version(p) for p in ("numpy", "opencv-python-headless", "ai-edge-litert")},
        "opencv": cv2.__version__,
        "model": f"{manifest.name} {manifest.version}",
        "interpolation": manifest.preprocessing.interpolation,
        "images": [str(p) for p in images],
        "last_op": last_op,
    }
    np.savez(out, meta=np.array(json.dumps(meta)), **arrays)


def diff(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(number of differing elements, largest absolute difference) of two integer arrays."""
    delta = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return int(np.count_nonzero(delta)), int(delta.max(initial=0))


def compare_sets(ref: Any, other: Any, key: str, count: int) -> dict[str, Any]:
    """Summary of `key_i` arrays of two probes: identical or not, how many images and elements differ, max diff."""
    per_image = [diff(ref[f"{key}_{i}"], other[f"{key}_{i}"]) for i in range(count)]
    worst = max((d for _, d in per_image), default=0)
    images = sum(1 for n, _ in per_image if n)
    return {"identical": worst == 0, "images_differing": images, "max_abs_diff": worst,
            "elements_differing": sum(n for n, _ in per_image),
            "per_image_max_abs_diff": [d for _, d in per_image]}  # fmt: skip


def read_cli(path: Path) -> dict[str, dict[str, Any]]:
    """`edge-classifier classify --json` output by image path."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {doc["image"]: doc for doc in map(json.loads, lines) if doc}


def platform_entry(ref: Any, other: Any, ref_cli: dict[str, Any], cli: dict[str, Any], ctx: dict[str, Any]) -> dict:
    """Every comparison of one platform with the reference, and which checks pass."""
    images, count, tolerance = ctx["images"], len(ctx["images"]), ctx["tolerance"]
    softmax_step = 1 if ctx["last_op"] == "SOFTMAX" else 0
    cli_diff = [diff(np.array(ref_cli[p]["raw"]), np.array(cli[p]["raw"]))[1] for p in images if p in cli]
    selftest = [diff(np.array(raw), np.array(cli[p]["raw"]))[1] for p, raw in ctx["recorded"].items() if p in cli]
    entry: dict[str, Any] = {
        "meta": json.loads(str(other["meta"])),
        "interpreter_logits": compare_sets(ref, other, "given_logits", count) if softmax_step else None,
        "interpreter_output": compare_sets(ref, other, "given_raw", count),
        "preprocessing": compare_sets(ref, other, "input", count),
        "pipeline": compare_sets(ref, other, "raw", count),
        "exact_preprocessing": compare_sets(ref, other, "exact_input", count),
        "exact_pipeline": compare_sets(ref, other, "exact_raw", count),
        "cli": {
            "images": len(cli_diff),
            "top1_equal": all(ref_cli[p]["label"] == cli.get(p, {}).get("label") for p in images),
            "max_abs_diff": max(cli_diff, default=0),
        },
        "selftest_vs_recorded": {"images": len(selftest), "max_abs_diff": max(selftest, default=0)},
    }
    logits = entry["interpreter_logits"]
    entry["checks"] = {
        "logits entering SOFTMAX bit-identical": logits is None or logits["identical"],
        f"interpreter output within {softmax_step}": entry["interpreter_output"]["max_abs_diff"] <= softmax_step,
        f"{EXACT} preprocessing bit-identical": entry["exact_preprocessing"]["identical"],
        f"{EXACT} pipeline within {softmax_step}": entry["exact_pipeline"]["max_abs_diff"] <= softmax_step,
        f"pipeline within {tolerance}": entry["pipeline"]["max_abs_diff"] <= tolerance,
        "classify ran on every image": entry["cli"]["images"] == count,
        "classify top-1 labels equal": entry["cli"]["top1_equal"],
        f"classify within {tolerance}": entry["cli"]["max_abs_diff"] <= tolerance,
        f"self-test within {tolerance} of output_raw": entry["selftest_vs_recorded"]["max_abs_diff"] <= tolerance,
    }
    entry["passed"] = all(entry["checks"].values())
    return entry


def report(args: argparse.Namespace) -> int:
    ref_npz, ref_cli_path = args.reference
    ref = np.load(ref_npz)
    ref_meta = json.loads(str(ref["meta"]))
    ref_cli = read_cli(Path(ref_cli_path))
    manifest = json.loads(Path(args.manifest).read_text(encoding="utf-8"))
    base = Path(args.manifest).parent
    recorded = {str(base / c["image"]): c["output_raw"] for c in manifest.get("selftest", []) if "output_raw" in c}
    ctx = {
        "images": ref_meta["images"],
        "tolerance": args.tolerance,
        "last_op": ref_meta["last_op"],
        "recorded": recorded,
    }
    ref_selftest = [diff(np.array(raw), np.array(ref_cli[p]["raw"]))[1] for p, raw in recorded.items() if p in ref_cli]
    # The interpreter run with every tensor kept must give the daemon's own result on the reference.
    count = len(ctx["images"])
    consistent = all(np.array_equal(ref[f"given_raw_{i}"], ref[f"raw_{i}"]) for i in range(count))
    result: dict[str, Any] = {
        "model": ref_meta["model"],
        "interpolation": ref_meta["interpolation"],
        "last_op": ref_meta["last_op"],
        "images": count,
        "tolerance": args.tolerance,
        "reference": ref_meta,
        "reference_consistent": consistent,
        "reference_selftest_vs_recorded": {"images": len(ref_selftest), "max_abs_diff": max(ref_selftest, default=0)},
        "platforms": {},
    }
    for name, npz, cli_path in args.platform:
        result["platforms"][name] = platform_entry(ref, np.load(npz), ref_cli, read_cli(Path(cli_path)), ctx)
    result["passed"] = consistent and all(entry["passed"] for entry in result["platforms"].values())
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_summary(result)
    return 0 if result["passed"] else 1


def describe(section: dict[str, Any] | None, count: int) -> str:
    if section is None:
        return "n/a (the model does not end in SOFTMAX)"
    if section["identical"]:
        return f"identical ({count} images)"
    images, elements, worst = section["images_differing"], section["elements_differing"], section["max_abs_diff"]
    return f"{images}/{count} images differ ({elements} elements), max abs diff {worst}"


def print_summary(result: dict[str, Any]) -> None:
    count, interpolation, ref = result["images"], result["interpolation"], result["reference"]
    recorded = result["reference_selftest_vs_recorded"]
    print(f"model {result['model']} (interpolation {interpolation}, last op {result['last_op']}), {count} images")
    print(f"reference {ref['machine']} ({ref['cpu']}): self-test images vs output_raw recorded at build: "
          f"{recorded['images']} images, max abs diff {recorded['max_abs_diff']}")  # fmt: skip
    for name, entry in result["platforms"].items():
        cli, selftest = entry["cli"], entry["selftest_vs_recorded"]
        rows = [
            ("interpreter alone: logits into SOFTMAX", describe(entry["interpreter_logits"], count)),
            ("interpreter alone: raw int8 output", describe(entry["interpreter_output"], count)),
            (f"preprocessing ({EXACT})", describe(entry["exact_preprocessing"], count)),
            (f"full pipeline ({EXACT}), raw int8", describe(entry["exact_pipeline"], count)),
            (f"preprocessing ({interpolation})", describe(entry["preprocessing"], count)),
            (f"full pipeline ({interpolation}), raw int8", describe(entry["pipeline"], count)),
            ("edge-classifier classify --json", f"{cli['images']} images, top-1 labels equal: {cli['top1_equal']}, "
             f"max abs diff {cli['max_abs_diff']}"),
            ("self-test images vs recorded output_raw", f"{selftest['images']} images, "
             f"max abs diff {selftest['max_abs_diff']}"),
        ]  # fmt: skip
        print(f"{name} ({entry['meta']['machine']}, {entry['meta']['cpu']}):")
        for label, text in rows:
            print(f"  {label:<42} {text}")
        failed = [check for check, passed in entry["checks"].items() if not passed]
        print(f"  => {'PASS' if not failed else 'FAIL: ' + ', '.join(failed)}")
    if not result["reference_consistent"]:
        print("FAIL: on the reference, the interpreter run alone disagrees with the daemon's own output")
    print(f"overall: {'PASS' if result['passed'] else 'FAIL'} (pipeline tolerance {result['tolerance']} int8 steps)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    frames = sub.add_parser("frames")
    frames.add_argument("video", type=Path)
    frames.add_argument("outdir", type=Path)
    frames.add_argument("--count", type=int, default=12)
    pr = sub.add_parser("probe")
    pr.add_argument("--manifest", type=Path, required=True)
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("--tensors", type=Path)
    pr.add_argument("images", nargs="+", type=Path)
    rep = sub.add_parser("report")
    rep.add_argument("--manifest", type=Path, required=True)
    rep.add_argument("--reference", nargs=2, required=True, metavar=("NPZ", "JSONL"))
    rep.add_argument("--platform", nargs=3, action="append", required=True, metavar=("NAME", "NPZ", "JSONL"))
    rep.add_argument("--tolerance", type=int, default=0)
    rep.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "frames":
        for path in extract_frames(args.video, args.outdir, args.count):
            print(path)
        return 0
    if args.command == "probe":
        probe(args.manifest, args.images, args.tensors, args.out)
        return 0
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
