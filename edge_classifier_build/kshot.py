"""k-shot accuracy of on-device learning: each garment class in turn taught from k photos beside the other nine.

    python -m edge_classifier_build.kshot --photos tests/data/real-photos --json [--train-dir DIR] [--output FILE]

Protocol, for k = 1, 5, 10, every class c and several seeds: the k teaching photos are drawn from c's photos in
`--photos`; every other photo there is a test photo. Two feature sets:

- **default model** (what the device runs): the trained head is the model's probabilities restricted to the nine
  other classes and renormalised; the taught class is matched by `TaughtClasses.match` and put beside the head by
  `combine`, the runtime's own code. Its rule (threshold and temperature) is chosen leave-class-out: for class c, the
  pair on a grid that maximises the balanced accuracy (the mean of the new class's accuracy and the other classes'
  accuracy) over the runs where another class is the new one, for all k at once. The device's constant
  (`DEFAULT_RULE`) is the pair chosen over all classes. Caveat: the model's backbone was fine-tuned on all ten
  classes, so its features have seen the "new" class.
- **frozen ImageNet** (features that have never seen a garment label), and the default model's embeddings beside
  them: nearest class mean for every class, the nine trained classes' means from all photos in `--train-dir`, with
  two similarities (cosine to the normalised mean; mean cosine to the class's photos, as the device computes).

The section of models/REPORT.md is `report_kshot.kshot_section(kshot.json)`.

Accuracies are averaged over seeds, then over classes (each class weighs the same).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_classifier.learning.combine import TaughtRule, combine
from edge_classifier.learning.taught import TaughtClasses
from edge_classifier.model.classification import LabelScore

from .kshot_features import FrozenImageNet, PhotoSet, cached, default_model_features, photo_set, unit_rows

logger = logging.getLogger(__name__)

KS = (1, 5, 10)
THRESHOLDS = np.round(np.arange(0.20, 0.601, 0.01), 2)
TEMPERATURES = (0.02, 0.05, 0.1)
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"  # the workstation's data sets and pretrained models, beside the checkout
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def teaching_split(classes: Ints, new: int, k: int, seed: int) -> tuple[Ints, Ints]:
    """The indices of k teaching photos of class NEW (drawn with SEED) and of every other photo (the test set)."""
    rng = np.random.default_rng(1000 * seed + 17 * new + k)
    teach = np.sort(rng.choice(np.flatnonzero(classes == new), size=k, replace=False))
    return teach, np.setdiff1d(np.arange(len(classes)), teach)


def figures(predicted: Ints, before: Ints, truth: Ints, new: int) -> dict[str, float]:
    """One run's accuracies (%): the new class, the others before and after teaching, all test photos after."""
    is_new = truth == new
    return {
        "new_class": 100.0 * float(np.mean(predicted[is_new] == new)),
        "others_before": 100.0 * float(np.mean(before[~is_new] == truth[~is_new])),
        "others_after": 100.0 * float(np.mean(predicted[~is_new] == truth[~is_new])),
        "all_after": 100.0 * float(np.mean(predicted == truth)),
        "others_taken_by_new": 100.0 * float(np.mean(predicted[~is_new] == new)),
    }


def head_runs(scores: Floats, embeddings: Floats, classes: Ints, seeds: int) -> list[dict[str, Any]]:
    """Every (class, k, seed) run with the trained head: the similarities and head scores the rule works on."""
    runs = []
    for new in range(scores.shape[1]):
        others = np.array([c for c in range(scores.shape[1]) if c != new])
        for k in KS:
            for seed in range(seeds):
                teach, test = teaching_split(classes, new, k, seed)
                head = scores[test][:, others]
                head = head / np.maximum(head.sum(axis=1, keepdims=True), 1e-12)
                taught = TaughtClasses("measurement", embeddings.shape[1]).teach("new", embeddings[teach])
                similarity = embeddings[test] @ taught.classes["new"].mean.astype(np.float32)
                runs.append({"new": new, "k": k, "seed": seed, "others": others, "teach": teach, "test": test,
                             "head": head, "similarity": similarity, "taught": taught})  # fmt: skip
    return runs


def grid() -> list[TaughtRule]:
    """The rules tried: every threshold with every temperature."""
    return [TaughtRule(float(t), float(temperature)) for temperature in TEMPERATURES for t in THRESHOLDS]


def taken_by_new(run: dict[str, Any], rules: list[TaughtRule]) -> npt.NDArray[np.bool_]:
    """For each rule, which test photos go to the taught class (vectorised form of `combine`'s top-1)."""
    thresholds = np.array([r.threshold for r in rules])[:, None]
    temperatures = np.array([r.temperature for r in rules])[:, None]
    margin = np.clip((run["similarity"][None, :] - thresholds) / temperatures, -60, 60)
    share = 1.0 / (1.0 + np.exp(-margin))
    result: npt.NDArray[np.bool_] = share > run["head"].max(axis=1)[None, :]
    return result


def accuracies(run: dict[str, Any], classes: Ints, rules: list[TaughtRule]) -> tuple[Floats, Floats]:
    """For each rule, the run's accuracy on the new class and on the other classes (fractions)."""
    truth = classes[run["test"]]
    is_new = truth == run["new"]
    head_label = run["others"][np.argmax(run["head"], axis=1)]
    taken = taken_by_new(run, rules)
    others_right = (~taken[:, ~is_new]) & (head_label[~is_new] == truth[~is_new])[None, :]
    return taken[:, is_new].mean(axis=1), others_right.mean(axis=1)


def balanced(run: dict[str, Any], classes: Ints, rules: list[TaughtRule]) -> Floats:
    """For each rule, the mean of the new class's and the other classes' accuracy."""
    new, others = accuracies(run, classes, rules)
    return (0.5 * (new + others)).astype(np.float32)


def tradeoff(runs: list[dict[str, Any]], classes: Ints, temperature: float) -> dict[str, Any]:
    """For a few thresholds and each k: the new class's and the other classes' accuracy (%), for the report."""
    rules = [TaughtRule(t, temperature) for t in (0.25, 0.30, 0.35, 0.40, 0.45, 0.50)]
    curve: dict[str, Any] = {}
    for k in KS:
        pairs = [accuracies(run, classes, rules) for run in runs if run["k"] == k]
        new = 100 * np.mean([p[0] for p in pairs], axis=0)
        others = 100 * np.mean([p[1] for p in pairs], axis=0)
        curve[str(k)] = {
            f"{rule.threshold:.2f}": {"new_class": round(float(n), 1), "others_after": round(float(o), 1)}
            for rule, n, o in zip(rules, new, others, strict=True)
        }
    return curve


def predict_with_rule(run: dict[str, Any], labels: tuple[str, ...], rule: TaughtRule, embeddings: Floats) -> Ints:
    """Each test photo's label through the runtime's own `TaughtClasses.match` and `combine`."""
    index = {label: i for i, label in enumerate(labels)}
    predicted = []
    for row, photo in zip(run["head"], run["test"], strict=True):
        trained = sorted(
            (LabelScore(labels[c], float(s)) for c, s in zip(run["others"], row, strict=True)), key=lambda e: -e.score
        )
        top = combine(trained, run["taught"].match(embeddings[photo]), 1, rule)[0]
        predicted.append(run["new"] if top.label == "new" else index[top.label])
    return np.array(predicted, dtype=np.int64)


def mean_figures(rows: list[dict[str, float]], by_class: list[int]) -> dict[str, float]:
    """Per-run figures averaged over seeds, then over classes."""
    per_class = [
        {key: float(np.mean([r[key] for r, c in zip(rows, by_class, strict=True) if c == cls])) for key in rows[0]}
        for cls in sorted(set(by_class))
    ]
    return {key: round(float(np.mean([f[key] for f in per_class])), 2) for key in rows[0]}


def restricted_top_scores(scores: Floats, classes: Ints) -> dict[str, float]:
    """How sure the 9-class head (one column dropped, renormalised) is of photos of the dropped class and of others:
    the median top score and the share below 0.7 (the default model's open-set threshold)."""
    held_out, others = [], []
    for new in range(scores.shape[1]):
        head = np.delete(scores, new, axis=1)
        top = (head / np.maximum(head.sum(axis=1, keepdims=True), 1e-12)).max(axis=1)
        held_out.append(top[classes == new])
        others.append(top[classes != new])
    mine, rest = np.concatenate(held_out), np.concatenate(others)
    return {
        "held_out_median": round(float(np.median(mine)), 3),
        "held_out_below_0.7": round(100 * float(np.mean(mine < 0.7)), 1),
        "others_median": round(float(np.median(rest)), 3),
        "others_below_0.7": round(100 * float(np.mean(rest < 0.7)), 1),
    }


def measure_head(scores: Floats, embeddings: Floats, classes: Ints, labels: tuple[str, ...], seeds: int) -> Any:
    """The default model: trained head plus taught class, threshold chosen leave-class-out."""
    runs = head_runs(scores, embeddings, classes, seeds)
    rules = grid()
    scored = np.stack([balanced(run, classes, rules) for run in runs])
    news = np.array([run["new"] for run in runs])
    nested = {new: rules[int(np.argmax(scored[news != new].mean(axis=0)))] for new in range(len(labels))}
    chosen = rules[int(np.argmax(scored.mean(axis=0)))]
    result: dict[str, Any] = {
        "rule_device": {"threshold": chosen.threshold, "temperature": chosen.temperature},
        "rule_per_class": {labels[c]: [r.threshold, r.temperature] for c, r in nested.items()},
        "tradeoff": tradeoff(runs, classes, chosen.temperature),
        "head_top_score": restricted_top_scores(scores, classes),
        "k": {},
    }
    for k in KS:
        rows, owners, per_class = [], [], {}
        for run in (r for r in runs if r["k"] == k):
            predicted = predict_with_rule(run, labels, nested[run["new"]], embeddings)
            before = run["others"][np.argmax(run["head"], axis=1)]
            rows.append(figures(predicted, before, classes[run["test"]], run["new"]))
            owners.append(run["new"])
        for new in range(len(labels)):
            mine = [r for r, c in zip(rows, owners, strict=True) if c == new]
            per_class[labels[new]] = round(float(np.mean([r["new_class"] for r in mine])), 1)
        result["k"][str(k)] = {**mean_figures(rows, owners), "new_class_by_class": per_class}
    return result


def nearest_mean(means: Floats, queries: Floats) -> Ints:
    nearest: Ints = np.argmax(queries @ means.T, axis=1).astype(np.int64)
    return nearest


def class_means(features: Floats, classes: Ints, n: int, normalise: bool) -> Floats:
    """Each class's mean feature, scaled to unit length when NORMALISE (cosine to the mean) else as it is (the mean
    cosine to the class's photos, the similarity `TaughtClasses.match` uses)."""
    means = np.stack([features[classes == c].mean(axis=0) for c in range(n)]).astype(np.float32)
    return unit_rows(means) if normalise else means


def measure_ncm(features: Floats, classes: Ints, train: Floats, train_classes: Ints, seeds: int) -> Any:
    """Nearest class mean for all classes: trained means from the training photos, the new one from k photos.

    Two similarities: the cosine to the normalised mean (the textbook form, which favours a mean of many photos over
    one of a few: a mean of hundreds sits nearer every photo), and the mean cosine to the class's photos.
    """
    n = int(classes.max()) + 1
    result: dict[str, Any] = {}
    for name, normalise in (("cosine_to_mean", True), ("mean_cosine", False)):
        train_means = class_means(train, train_classes, n, normalise)
        all_photos = 100.0 * float(np.mean(nearest_mean(train_means, features) == classes))
        result[name] = {"all_classes_from_training_photos": round(all_photos, 2), "k": {}}
        for k in KS:
            rows, owners = [], []
            for new in range(n):
                others = np.array([c for c in range(n) if c != new])
                for seed in range(seeds):
                    teach, test = teaching_split(classes, new, k, seed)
                    means = train_means.copy()
                    means[new] = class_means(features[teach], np.zeros(k, dtype=np.int64), 1, normalise)[0]
                    predicted = nearest_mean(means, features[test])
                    before = others[nearest_mean(train_means[others], features[test])]
                    rows.append(figures(predicted, before, classes[test], new))
                    owners.append(new)
            result[name]["k"][str(k)] = mean_figures(rows, owners)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    photos = photo_set(args.photos)
    report: dict[str, Any] = {
        "photos": {"dir": shown(args.photos), "count": len(photos.paths), "per_class": per_class_counts(photos)},
        "ks": list(KS), "seeds": args.seeds,
    }  # fmt: skip
    scores, embeddings, labels_array = cached(args.cache, "default-val", lambda: _default(args.manifest, photos))
    labels = tuple(str(label) for label in labels_array)
    logger.info("default model: %d photos", len(photos.paths))
    report["default_model"] = {"manifest": shown(args.manifest), "head_plus_taught": measure_head(
        scores, embeddings, photos.classes, labels, args.seeds)}  # fmt: skip
    if args.train_dir is None or not args.train_dir.is_dir():
        report["frozen_imagenet"] = {"skipped": "no --train-dir: the trained classes' means need the training photos"}
        return report
    train = photo_set(args.train_dir)
    if train.folders != photos.folders:
        raise SystemExit(f"--train-dir classes {train.folders} differ from --photos classes {photos.folders}")
    report["train"] = {"dir": shown(args.train_dir), "count": len(train.paths)}
    _, train_embeddings, _ = cached(args.cache, "default-train", lambda: _default(args.manifest, train))
    report["default_model"]["nearest_class_mean"] = measure_ncm(
        embeddings, photos.classes, train_embeddings, train.classes, args.seeds
    )
    frozen = FrozenImageNet(args.imagenet)
    report["frozen_imagenet"] = {"model": shown(args.imagenet), "tensor": frozen.pooled_name}
    val = cached(args.cache, "frozen-val", lambda: (frozen.features(photos.paths),))[0]
    logger.info("frozen features of %d training photos (about 30 ms each)", len(train.paths))
    trained = cached(args.cache, "frozen-train", lambda: (frozen.features(train.paths),))[0]
    ncm = measure_ncm(val, photos.classes, trained, train.classes, args.seeds)
    report["frozen_imagenet"]["nearest_class_mean"] = ncm
    return report


def shown(path: Path) -> str:
    """PATH relative to the working directory (as a command line would give it)."""
    return os.path.relpath(path)


def _default(manifest: Path, photos: PhotoSet) -> tuple[Floats, Floats, npt.NDArray[np.str_]]:
    scores, embeddings, labels = default_model_features(manifest, photos.paths)
    return scores, embeddings, np.array(labels)


def per_class_counts(photos: PhotoSet) -> dict[str, int]:
    return {folder: int(np.sum(photos.classes == i)) for i, folder in enumerate(photos.folders)}


def main(argv: list[str] | None = None, out: Callable[[str], Any] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_classifier_build.kshot", description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, required=True, help="one folder per class (sorted = the model's labels)")
    parser.add_argument(
        "--train-dir", type=Path, default=SHARED / "datasets/clothing-dataset-small/train",
        help="training photos, for the nearest-class-mean rows (default: the shared data set)",
    )  # fmt: skip
    parser.add_argument("--manifest", type=Path, default=ROOT / "models" / "clothing-mobilenetv2.json")
    parser.add_argument("--imagenet", type=Path, default=SHARED / "pretrained/tf2_mobilenet_v2_1.0_224_ptq.tflite")
    parser.add_argument("--seeds", type=int, default=5, help="random teaching sets per class and k")
    parser.add_argument("--cache", type=Path, help="keep the computed features here between runs (.npz)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument("--json", action="store_true", help="print the JSON document (else a summary)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    report = run(args)
    text = json.dumps(report, indent=2)
    if args.output is not None:
        args.output.write_text(text + "\n")
    out(text if args.json else summary(report))
    return 0


def summary(report: dict[str, Any]) -> str:
    lines = []
    head = report["default_model"]["head_plus_taught"]
    lines.append(f"default model, head + taught class (rule {head['rule_device']}):")
    for k, f in head["k"].items():
        lines.append(f"  k={k}: new {f['new_class']}%, others {f['others_before']}% -> {f['others_after']}%")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
