"""The optimization sweep: its mini plan end to end, its resumability, the report and the selection rule."""

import importlib.util
import json
import subprocess
import sys

import jsonschema
import pytest

from edge_classifier_build import selection, sweep
from edge_classifier_build.rebuild import rebuild_command
from edge_classifier_build.report import latest, planned_but_missing, render
from helpers import MODELS, SCHEMAS

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
needs_tensorflow = pytest.mark.skipif(not HAS_TENSORFLOW, reason="the build extra (TensorFlow) is not installed")
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
MINI_VARIANTS = [v.name for v in sweep.mini_plan(1, 1)[1]]


def run(module, *args, timeout=900):
    """One of the build's commands (edge_classifier_build.MODULE, as its console script runs it) in a subprocess."""
    return subprocess.run([sys.executable, "-m", f"edge_classifier_build.{module}", *args], capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def fake_record(name, accuracy, p50_ms, size, quantization="int8", group="architecture", **extra):
    """A results line with every field the report reads."""
    latency = {key: {"p50": p50_ms, "p95": p50_ms * 1.2, "runs": 20, "threads": 1, "xnnpack": True}
               for key in ("1t", "2t", "1t_no_xnnpack", "2t_no_xnnpack")}  # fmt: skip
    return {
        "variant": name, "group": group, "plan": "test", "techniques": [quantization], "quantization": quantization,
        "architecture": "mobilenetv2", "alpha": 0.35, "resolution": 32, "epochs": 1, "seed": 1,
        "train_images": 100, "test_images": 10, "full_int8": quantization in ("int8", "qat"),
        "base_float_accuracy": accuracy, "float_accuracy": accuracy, "accuracy": accuracy, "accuracy_delta": 0.0,
        "size_bytes": size, "size_gzip_bytes": size // 2, "weight_sparsity": {"conv": 0.0, "dense": 0.0},
        "latency_ms": latency, "train_seconds": 1.0, "op_counts": {"CONV_2D": 1},
        "batch_norm": {"keras_batch_norm_layers": 1, "batch_norm_ops": [], "per_channel_affine_ops": [],
                       "outputs": {"images": 2, "max_abs_diff": 0.0, "same_top1": 1.0, "tolerance": 1e-4},
                       "folded": True},
        "per_class_accuracy": {"a": 50.0, "b": 50.0}, "confusion_matrix": [[1, 1], [1, 1]],
        "command": f"edge-classifier-build --quiet --name {name} --record r.json --alpha 0.35",
        "versions": {"python": "3"}, "machine": {"cpu": "test", "cpus": 2}, **extra,
    }  # fmt: skip


def test_rule_picks_the_fastest_small_int8_model_close_to_the_best():
    """Within 0.5 points of the best int8 model of at most 1 MB, the fastest wins; float and big models do not count."""
    records = [
        fake_record("slow-best", 91.0, 2.0, 900_000),
        fake_record("fast-close", 90.6, 0.5, 950_000),
        fake_record("fastest-far", 89.0, 0.2, 500_000),
        fake_record("too-big", 93.0, 0.3, 2_000_000),
        fake_record("float", 95.0, 0.1, 300_000, quantization="float32"),
    ]
    assert "fast-close" == selection.choose(records, selection.Rule())["variant"]


def test_rule_breaks_a_latency_tie_by_accuracy():
    """Two trainings of one graph (p50 within 5%) go to the more accurate one, not to the luckier timing."""
    records = [fake_record("lucky-timing", 93.9, 0.100, 633_000), fake_record("better", 94.2, 0.104, 633_000)]
    assert "better" == selection.choose(records, selection.Rule())["variant"]


def test_pareto_front_keeps_only_undominated_variants():
    """A variant slower and less accurate than another is not on the front."""
    records = [fake_record("a", 90.0, 1.0, 1), fake_record("b", 89.0, 2.0, 1), fake_record("c", 92.0, 3.0, 1)]
    assert ["a", "c"] == [r["variant"] for r in selection.pareto_front(records, selection.latency_p50)]


@needs_matplotlib
def test_report_renders_from_results_alone(tmp_path):
    """The report has one table row per successful variant, names failures and writes its three plots."""
    results = tmp_path / "results.jsonl"
    lines = [fake_record("v-int8", 90.0, 1.0, 600_000), fake_record("v-float32", 90.1, 2.0, 1_600_000, "float32"),
             {"variant": "v-broken", "group": "quantization", "plan": "test", "error": "error: no such thing"}]  # fmt: skip
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = render(results, tmp_path / "REPORT.md", tmp_path / "plots", selection.Rule()).read_text()
    table = report.split("## All variants")[1].split("\n## ")[0]
    rows = [line.split("|")[2].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert (True, True) == ("- v-broken: error: no such thing" in report, "The rule picks **v-int8**" in report)
    assert (
        ["**v-int8**", "Variant", "v-float32"],
        ["accuracy-latency.png", "accuracy-size.png", "confusion-chosen.png"],
    ) == (sorted(rows), pngs)


def test_rebuild_command_drops_the_sweeps_own_files():
    """The chosen variant's command loses --record, --name and --quiet but keeps its training options."""
    assert "edge-classifier-build --alpha 0.35" == rebuild_command(fake_record("x", 1.0, 1.0, 1))


def test_rebuild_command_of_a_record_made_by_the_old_script_is_the_console_script():
    """Records written when the build was `python models/build.py` rebuild with `edge-classifier-build`."""
    record = {"command": "python models/build.py --quiet --name v --epochs 60 --alpha 0.35"}
    assert "edge-classifier-build --epochs 60 --alpha 0.35" == rebuild_command(record)


def test_rebuild_command_keeps_the_last_value_and_qat_epochs_only_for_qat():
    """A variant's own --epochs overrides the sweep's, and --qat-epochs stays only where QAT runs."""
    common = "edge-classifier-build --quiet --qat-epochs 2 --epochs 15 --alpha 0.35"
    commands = [
        rebuild_command({"command": f"{common} --epochs 60 --quantization {quantization}"})
        for quantization in ("int8", "qat")
    ]
    assert [
        "edge-classifier-build --epochs 60 --alpha 0.35 --quantization int8",
        "edge-classifier-build --qat-epochs 2 --epochs 60 --alpha 0.35 --quantization qat",
    ] == commands


def test_the_default_int8_model_runs_as_one_xnnpack_partition():
    """Every op of the default int8 MobileNetV2 is delegated to XNNPACK, so the graph is one DELEGATE node."""
    from edge_classifier_build.measure import xnnpack_partitions

    assert 1 == xnnpack_partitions(MODELS / "fashion-mobilenetv2.tflite")


def test_report_names_the_planned_variants_not_yet_measured():
    """A results file holding part of a plan makes the report list what is missing, in plan order."""
    _, variants = sweep.mini_plan(1, 1)
    records = [{**fake_record(variants[1].name, 90.0, 1.0, 1), "plan": "mini"}]
    assert [v.name for v in variants if v is not variants[1]] == planned_but_missing(records, [])


def test_report_does_not_list_a_failed_variant_as_not_measured():
    """A variant whose build failed is reported under its error, not as one still to measure."""
    _, variants = sweep.mini_plan(1, 1)
    records = [{**fake_record(variants[1].name, 90.0, 1.0, 1), "plan": "mini"}]
    failed = [{"variant": variants[2].name, "plan": "mini", "error": "error: something"}]
    expected = [v.name for v in variants if v not in (variants[1], variants[2])]
    assert expected == planned_but_missing(records, failed)


def test_sweep_skips_variants_already_in_the_results(tmp_path):
    """A results file that holds every variant makes the sweep run nothing: an interrupted sweep resumes."""
    common, variants = sweep.mini_plan(1, 1)
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps({"variant": v.name, "plan": "mini"}) + "\n" for v in variants))
    assert [] == sweep.sweep(variants, common, 1, "mini", results, tmp_path / "work", timeout=60)


def test_latest_keeps_the_last_success_and_failures_without_one():
    """A variant that failed then succeeded counts as a success; one that only failed is listed as failed."""
    lines = [{"variant": "a", "plan": "test", "error": "x"}, fake_record("a", 80.0, 1.0, 1),
             {"variant": "b", "plan": "test", "error": "y"}]  # fmt: skip
    records, failed = latest(lines)
    assert (["a"], ["b"]) == ([r["variant"] for r in records], [f["variant"] for f in failed])


def test_lines_of_another_plan_are_neither_skipped_nor_reported(tmp_path):
    """A mini sweep's lines in the same file do not count as done for the full plan, nor in its report."""
    path = tmp_path / "results.jsonl"
    lines = [fake_record("a", 80.0, 1.0, 1, plan="mini"), fake_record("b", 81.0, 1.0, 1, plan="full")]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert ({"b"}, ["b"]) == (sweep.done_names(path, "full"), [r["variant"] for r in latest(lines)[0]])


@pytest.mark.slow  # each case imports TensorFlow in a subprocess (~5 s)
@needs_tensorflow
@pytest.mark.build
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--quantization", "qat", "--architecture", "mobilenetv3small"],
         "error: --quantization qat is not available for --architecture mobilenetv3small: tfmot cannot quantize "
         "its TFOpLambda (hard-swish) layers; use --quantization int8"),
        (["--prune-sparsity", "1.5"], "error: --prune-sparsity 1.5 must be between 0 and 1 (exclusive)"),
        (["--teacher", "{tmp}/missing.keras"],
         "error: --teacher {tmp}/missing.keras does not exist; add --teacher-alpha to train one there"),
        (["--teacher-alpha", "1.0", "--distill-alpha", "2"], "error: --distill-alpha 2.0 must be between 0 and 1"),
    ],
)  # fmt: skip
def test_bad_optimization_options_are_one_line_errors(tmp_path, args, message):
    """Impossible technique combinations fail before any data is loaded, with one line and a non-zero exit."""
    out = run("cli", *[a.format(tmp=tmp_path) for a in args], "--output-dir", str(tmp_path / "out"), timeout=300)
    last = out.stderr.strip().splitlines()[-1]
    assert (True, message.format(tmp=tmp_path), False) == (out.returncode != 0, last, "Traceback" in out.stderr)


@needs_tensorflow
@pytest.mark.build
def test_unfolded_batch_norm_is_detected(tmp_path):
    """Batch norm after pooling cannot fold and shows as per-channel MUL/ADD; after a convolution it vanishes."""
    import tensorflow as tf
    import tf_keras as keras

    from edge_classifier_build.foldcheck import batch_norm_ops

    found = []
    for name, after_pooling in (("folded", False), ("unfolded", True)):
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x) if after_pooling else x
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Flatten()(x)
        model = keras.Model(inputs, keras.layers.Dense(2)(x))
        for layer in model.layers:  # non-trivial statistics, so the converter cannot drop the affine ops
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.set_weights([w + 0.5 * (i + 1) for i, w in enumerate(layer.get_weights())])
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        found.append(len(batch_norm_ops(path).per_channel_affine_ops) > 0)
    assert [False, True] == found


@needs_tensorflow
@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_model_optimization") is None,
    reason="QAT and pruning need: pip install --no-deps tensorflow-model-optimization==0.8.1",
)
@pytest.mark.slow
@pytest.mark.build
def test_mini_sweep_writes_results_and_the_report_renders(tmp_path):
    """The mini plan builds every technique into one results file, resumes as a no-op and renders the report."""
    results, work = tmp_path / "results.jsonl", tmp_path / "work"
    out = run("sweep", "--plan", "mini", "--results", str(results), "--work-dir", str(work), timeout=900)
    assert 0 == out.returncode, out.stdout[-3000:] + out.stderr[-3000:]
    records = {r["variant"]: r for r in sweep.read_results(results)}
    errors = {name: r.get("error") for name, r in records.items() if "error" in r}
    assert (MINI_VARIANTS, {}) == (list(records), errors)
    flags = {name: (r["full_int8"], r["batch_norm"]["folded"], r["test_images"]) for name, r in records.items()}
    assert dict.fromkeys(MINI_VARIANTS, (True, True, 500)) | {"v2-a035-r32-float32": (False, True, 500)} == flags
    assert dict.fromkeys(MINI_VARIANTS, 1) == {name: r["xnnpack_partitions"] for name, r in records.items()}
    # One cached training: the pruned variant's base accuracy is the unpruned network's, taken before pruning.
    bases = [records[name]["base_float_accuracy"] for name in ("v2-a035-r32-int8", "v2-a035-r32-prune50-int8")]
    assert bases[0] == bases[1]
    pruned = records["v2-a035-r32-prune50-int8"]
    assert (True, pruned["size_bytes"]) == (
        pruned["weight_sparsity"]["conv"] >= 0.45, records["v2-a035-r32-int8"]["size_bytes"]
    )  # fmt: skip
    float_manifest = json.loads((work / "variants" / "v2-a035-r32-float32" / "v2-a035-r32-float32.json").read_text())
    jsonschema.validate(float_manifest, json.loads((SCHEMAS / "manifest.schema.json").read_text()))
    again = run("sweep", "--plan", "mini", "--results", str(results), "--work-dir", str(work), timeout=120)
    assert (0, len(MINI_VARIANTS)) == (again.returncode, again.stdout.count("already in"))
    report = tmp_path / "REPORT.md"
    rendered = run("report", "--results", str(results), "--output", str(report), timeout=120)
    assert 0 == rendered.returncode, rendered.stderr[-2000:]
    text = report.read_text()
    rows = [name for name in MINI_VARIANTS if f"| {name} |" in text or f"| **{name}** |" in text]
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert (MINI_VARIANTS, ["accuracy-latency.png", "accuracy-size.png", "confusion-chosen.png"]) == (rows, pngs)


def test_random_erasing_is_a_network_of_its_own_in_the_report():
    """A variant trained with random erasing is named so, and never shares a float baseline with one without."""
    from edge_classifier_build.report import parameters
    from edge_classifier_build.report_sections import network_key

    plain = fake_record("plain", 90.0, 1.0, 1)
    erased = fake_record("erased", 91.0, 1.0, 1, random_erasing=0.5)
    assert ("MobileNetV2 α0.35 32 px, 1 ep; random erasing p 0.5", False) == (
        parameters(erased),
        network_key(plain) == network_key(erased),
    )


def test_training_section_steps_through_budget_and_augmentation():
    """The training section orders one network's plain int8 builds by epochs, then erasing, with each step."""
    from edge_classifier_build.report_sections import training_section

    records = [
        fake_record("short", 92.0, 1.0, 1),
        fake_record("erased", 94.1, 1.0, 1, group="training", epochs=60, random_erasing=0.5),
        fake_record("long", 93.9, 1.0, 1, group="training", epochs=60),
    ]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in training_section(records)[6:9]]
    assert [["short", ""], ["long", "+1.90"], ["erased", "+0.20"]] == [[row[0], row[5]] for row in cells]


def test_width_resolution_grid_compares_one_training_recipe():
    """The grid holds plain int8 MobileNetV2 builds of the base budget only, and steps from narrowest to widest."""
    from edge_classifier_build.report_architecture import width_resolution_section

    records = [
        fake_record("narrow", 90.0, 0.05, 600_000, resolution=64),
        fake_record("wide", 91.0, 0.20, 2_400_000, alpha=1.0, resolution=64),
        fake_record("longer", 93.0, 0.05, 600_000, group="training", epochs=60, resolution=64),
        fake_record("float", 92.0, 0.10, 1_600_000, quantization="float32", resolution=64),
    ]
    lines = width_resolution_section(records)
    table = [line for line in lines if line.startswith("| α")]
    steps = [line for line in lines if line.startswith("- ")]
    assert (
        ["| α0.35 | 90.00% · 0.050 ms · 600 kB |", "| α1 | 91.00% · 0.200 ms · 2,400 kB |"],
        ["- Width α0.35 → α1 at 64 px: +1.00 points for ×4.00 latency and ×4.00 size (narrow → wide)."],
    ) == (table, steps)


def test_a_teacher_loaded_from_a_cache_is_charged_to_the_variant_that_trained_it():
    """A student whose teacher file is another variant's trained cache names that variant, not a second training."""
    from edge_classifier_build.report_sections import teacher_cost

    teacher = fake_record("wide", 92.0, 1.0, 1, base_train_seconds=2592.0,
                          command="edge-classifier-build --keras-cache cache/wide.keras")  # fmt: skip
    student = fake_record("student", 91.0, 1.0, 1, teacher_seconds=2479.0,
                          command="edge-classifier-build --keras-cache cache/student.keras --teacher cache/wide.keras")  # fmt: skip
    alone = fake_record(
        "alone", 91.0, 1.0, 1, teacher_seconds=2479.0, command="edge-classifier-build --teacher cache/gone.keras"
    )
    assert ["0 (loaded: the network of wide, 2592 s)", "2479"] == [
        teacher_cost(student, [teacher, student]),
        teacher_cost(alone, [teacher, alone]),
    ]


@needs_matplotlib
def test_the_committed_report_is_what_its_committed_results_render(tmp_path):
    """models/REPORT.md is regenerated from models/report/results.jsonl, not edited by hand or left stale."""
    (tmp_path / "report").mkdir()
    results = tmp_path / "report" / "results.jsonl"
    results.write_bytes((MODELS / "report" / "results.jsonl").read_bytes())
    real_photos = MODELS / "report" / "real-photos.jsonl"
    if real_photos.is_file():
        (tmp_path / "report" / "real-photos.jsonl").write_bytes(real_photos.read_bytes())
    for measured in ("retrieval.json", "kshot.json"):  # visual search and on-device learning, when measured
        if (MODELS / "report" / measured).is_file():
            (tmp_path / "report" / measured).write_bytes((MODELS / "report" / measured).read_bytes())
    rendered = render(results, tmp_path / "REPORT.md", tmp_path / "report", selection.Rule()).read_text()
    assert (MODELS / "REPORT.md").read_text() == rendered


def test_levers_pair_variants_that_differ_in_one_setting_only():
    """Widths pair in order within one resolution; a variant differing in two settings pairs with nothing."""
    from edge_classifier_build.report_levers import lever_pairs

    records = [
        fake_record("a035-r64", 90.0, 0.05, 600_000, resolution=64),
        fake_record("a100-r64", 91.0, 0.20, 2_400_000, alpha=1.0, resolution=64),
        fake_record("a050-r64", 90.5, 0.08, 900_000, alpha=0.5, resolution=64),
        fake_record("a050-r96", 91.5, 0.16, 900_000, alpha=0.5, resolution=96, epochs=60),
        fake_record("a035-r64-float", 90.1, 0.10, 1_600_000, quantization="float32", resolution=64),
    ]
    assert [("width", "a035-r64", "a050-r64"), ("width", "a050-r64", "a100-r64")] == [
        (lever, before["variant"], after["variant"]) for lever, before, after in lever_pairs(records)
    ]


def test_front_summary_says_where_the_top_came_from_and_what_slower_networks_reached():
    """Two trainings of one network top the front; a slower, shorter-trained network is named with its budget."""
    from edge_classifier_build.report_sections import front_summary

    short = fake_record("short", 92.0, 0.10, 600_000, resolution=96)
    long = fake_record("long", 94.0, 0.11, 600_000, resolution=96, epochs=60)
    wide = fake_record("wide", 92.5, 0.20, 2_400_000, alpha=1.0, resolution=64)
    expected = [
        "- The top 2 points are one network, MobileNetV2 α0.35 96 px, trained 2 ways (short, long): 92.00 → 94.00% "
        "for ×1.10 latency. At the top, accuracy came from training, not from a bigger network.",
        "- Slower networks, each at its best variant: MobileNetV2 α1 64 px 92.50% (1 ep), all with fewer epochs "
        "than the top's 60: how they do on that budget is not measured.",
        "- The most accurate full-int8 variant, long, is 1.00 points short of the goal's 95%.",
        "",
    ]
    assert expected == front_summary([short, long], [short, long, wide])


def fake_real_record(alpha, resolution, accuracy, p50_ms, size, weights="pretrained.tflite", **extra):
    """A real-photo build's record with the fields the report's real-photo section reads."""
    record = fake_record("unused", accuracy, p50_ms, size, alpha=alpha, resolution=resolution, **extra)
    del record["variant"], record["group"], record["plan"]
    record["command"] = f"edge-classifier-build --weights {weights} --alpha {alpha} --resolution {resolution}"
    return record


def test_real_photo_default_is_the_fastest_row_within_half_a_point_of_the_best():
    """Of the transplanted rows, the 160 px one is 0.3 points short of the best and twice as fast: it is the default."""
    from edge_classifier_build.report_real import RULE
    from edge_classifier_build.report_real_rows import rows

    records = [
        fake_real_record(1.0, 224, 93.3, 28.0, 2_900_000),
        fake_real_record(1.0, 160, 93.0, 15.0, 2_900_000),
        fake_real_record(1.0, 128, 91.2, 10.0, 2_900_000),
        fake_real_record(0.35, 128, 87.0, 2.0, 700_000, weights="none"),
    ]
    table = rows(records)
    assert (["a100-r224", "a100-r160", "a100-r128", "a035-r128-scratch"], "a100-r160") == (
        [r["variant"] for r in table],
        selection.choose(table, RULE)["variant"],
    )


def test_real_photo_confused_pairs_are_ordered_by_count_with_the_share_of_the_true_class():
    """Off-diagonal counts, largest first (ties: larger share, then matrix order), with the true class's share."""
    from edge_classifier_build.report_real_confusion import confused_pairs

    record = fake_real_record(
        1.0,
        224,
        80.0,
        1.0,
        1,
        per_class_accuracy={"Shirt": 60.0, "T-shirt": 90.0, "Hat": 100.0},
        confusion_matrix=[[6, 3, 1], [1, 9, 0], [0, 0, 5]],
    )
    expected = [("Shirt", "T-shirt", 3, 0.3), ("Shirt", "Hat", 1, 0.1), ("T-shirt", "Shirt", 1, 0.1)]
    assert expected == confused_pairs(record)


def test_real_photo_student_names_the_row_whose_cache_is_its_teacher():
    """The student's weights say which row taught it and with what label weight and temperature."""
    from edge_classifier_build.report_real_rows import rows, weights_text

    teacher = fake_real_record(1.0, 224, 93.0, 28.0, 2_900_000)
    teacher["command"] += " --keras-cache work/real-224.keras"
    student = fake_real_record(0.35, 128, 87.0, 2.0, 700_000, weights="none")
    student["command"] += " --teacher work/real-224.keras --distill-alpha 0.3 --distill-temperature 3"
    table = rows([teacher, student])
    assert ("a035-r128-kd", "from scratch, distilled from the a100-r224 network (label weight alpha 0.3, T 3)") == (
        table[1]["variant"],
        weights_text(table[1], table),
    )
