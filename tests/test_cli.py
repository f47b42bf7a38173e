"""The command line: classify, check-config, refusal of bad models and arguments, exit codes."""

import json
import shutil

import pytest

from helpers import DEFAULT_MANIFEST, FASHION_MANIFEST, ROOT, run_cli

MANIFEST = json.loads(DEFAULT_MANIFEST.read_text())
SELFTEST = [(DEFAULT_MANIFEST.parent / case["image"], case["label"]) for case in MANIFEST["selftest"]]


def copy_model(tmp_path, manifest=DEFAULT_MANIFEST):
    """A bundled model's files (the default model's unless MANIFEST) copied to tmp_path; the copied manifest's path."""
    stem = manifest.stem
    for suffix in (".json", ".tflite", ".labels.txt"):
        shutil.copy(manifest.with_name(stem + suffix), tmp_path / (stem + suffix))
    shutil.copytree(manifest.with_name(stem + ".selftest"), tmp_path / (stem + ".selftest"))
    return tmp_path / (stem + ".json")


def test_version():
    """--version prints the package version."""
    from edge_classifier import __version__

    assert f"edge-classifier {__version__}\n" == run_cli("--version").stdout


def test_classify_gives_each_selftest_image_its_label():
    """classify --json on the self-test images returns their expected labels and raw int8 outputs."""
    out = run_cli("classify", "--json", *[str(path) for path, _ in SELFTEST])
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert (0, [label for _, label in SELFTEST]) == (out.returncode, [row["label"] for row in rows])
    assert [case["output_raw"] for case in MANIFEST["selftest"]] == [row["raw"] for row in rows]


def test_classify_plain_output_lists_top_k():
    """The human-readable form shows the path and top-k labels with scores."""
    path, label = SELFTEST[0]
    out = run_cli("classify", "--top-k", "2", str(path))
    assert (0, f"{path}: {label} ") == (out.returncode, out.stdout[: len(str(path)) + len(label) + 3])


def test_classify_unreadable_image_is_one_line_and_exit_1(tmp_path):
    """A file that is not an image gives one error line and exit 1; the good image is still classified."""
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    out = run_cli("classify", str(SELFTEST[0][0]), str(bad))
    assert (1, f"error: image {bad} is not a readable image\n", 1) == (
        out.returncode, out.stderr.splitlines(keepends=True)[-1], len(out.stdout.splitlines()))  # fmt: skip


def test_changed_model_file_is_refused_with_exit_78(tmp_path):
    """A .tflite whose sha256 differs from its manifest is refused before loading (exit 78)."""
    manifest = copy_model(tmp_path)
    model = manifest.with_suffix(".tflite")
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    out = run_cli("classify", "--model", str(manifest), str(SELFTEST[0][0]))
    assert (78, True) == (out.returncode, "the file was changed or replaced" in out.stderr.splitlines()[-1]), out.stderr


def test_failing_selftest_is_refused_with_exit_78(tmp_path):
    """A self-test image that does not get its label stops start-up (exit 78) naming the image."""
    manifest = copy_model(tmp_path)
    document = json.loads(manifest.read_text())
    case = document["selftest"][0]
    case["label"] = next(label for label in document["labels"] if label != case["label"])
    manifest.write_text(json.dumps(document))
    out = run_cli("check-config", str(ROOT / "deploy" / "config.example.yaml"), "--set", f"model.manifest={manifest}")
    expected = "error: model.manifest: model self-test failed on 1/"
    assert (78, expected) == (out.returncode, out.stderr.splitlines()[-1][: len(expected)])


def test_garbage_model_file_is_a_model_error(tmp_path):
    """A .tflite that is not a model gives a one-line ModelError (exit 78), no traceback."""
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x00" * 64)
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    out = run_cli("classify", "--set", f"model.path={model}", "--set", f"model.labels={labels}", str(SELFTEST[0][0]))
    assert (78, 1, True) == (
        out.returncode, len(out.stderr.strip().splitlines()[-1:]), "Traceback" not in out.stderr), out.stderr  # fmt: skip
    expected = f"error: model.path: model file {model} is not a loadable TFLite model"
    assert expected == out.stderr.strip().splitlines()[-1][: len(expected)]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("sha256"), "missing field sha256"),
        (lambda d: d.update(schema="other/v9"), "schema is 'other/v9'"),
        (lambda d: d["output"].update(kind="odds"), "output.kind is 'odds'"),
        (lambda d: d["preprocessing"].update(crop="zoom"), "preprocessing.crop: 'zoom' is not one of center, squash"),
        (lambda d: d["preprocessing"].update(mean="127"), "field preprocessing.mean has the wrong type ('127')"),
        (
            lambda d: d["preprocessing"].update(std=[1, float("nan"), 1]),
            "field preprocessing.std must be a list of finite numbers, got [1, nan, 1]",
        ),
        (lambda d: d.update(selftest=None), "field selftest has the wrong type (None)"),
    ],
)
def test_bad_manifest_names_the_field(tmp_path, edit, message):
    """A manifest with a missing or bad field is refused with a message naming that field."""
    manifest = copy_model(tmp_path)
    document = json.loads(manifest.read_text())
    edit(document)
    manifest.write_text(json.dumps(document))
    out = run_cli("classify", "--model", str(manifest), str(SELFTEST[0][0]))
    assert (78, True) == (out.returncode, message in out.stderr.splitlines()[-1]), out.stderr


def test_model_without_manifest_runs_with_explicit_config(tmp_path):
    """A bare one-output .tflite plus labels file and preprocessing in config classifies like its manifest does."""
    manifest = copy_model(tmp_path, FASHION_MANIFEST)  # the default model has two outputs: it needs its manifest
    labels = manifest.with_name(manifest.stem + ".labels.txt")
    case = json.loads(manifest.read_text())["selftest"][0]
    out = run_cli("classify", "--top-k", "1", "--set", f"model.path={manifest.with_suffix('.tflite')}",
                  "--set", f"model.labels={labels}", str(manifest.parent / case["image"]))  # fmt: skip
    assert (0, case["label"]) == (out.returncode, out.stdout.split(": ", 1)[1].rsplit(" ", 1)[0])


def test_check_config_accepts_the_example():
    """check-config on the example file loads the model and says OK."""
    out = run_cli("check-config", str(ROOT / "deploy" / "config.example.yaml"))
    ending = "broker localhost:1883)\n"
    assert (0, ending) == (out.returncode, out.stdout[-len(ending) :])


def test_check_config_rejects_a_bad_file_with_exit_78(tmp_path):
    """A bad key is one line on stderr and exit 78."""
    bad = tmp_path / "c.yaml"
    bad.write_text("mqtt:\n  port: nope\n")
    out = run_cli("check-config", str(bad))
    assert (78, "error: mqtt.port: expected an integer from 1 to 65535, got 'nope'\n") == (out.returncode, out.stderr)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "does not exist"), ("not a certificate\n", "holds no usable CA certificate")],
)
def test_check_config_rejects_an_unusable_ca_file_with_exit_78(tmp_path, content, problem):
    """With mqtt.tls on, a CA file that is missing or holds no certificate is one line and exit 78."""
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)
    config = tmp_path / "c.yaml"
    config.write_text(f"mqtt:\n  tls: true\n  ca_file: {ca_file}\n")
    out = run_cli("check-config", str(config))
    expected = f"error: mqtt.ca_file: '{ca_file}' {problem}"
    lines = out.stderr.splitlines()
    assert (78, 1, expected) == (out.returncode, len(lines), lines[0][: len(expected)])


@pytest.mark.parametrize(
    ("setting", "message"),
    [("source.uri={tmp}/*.nomatch", "source.uri: no image matches '{tmp}/*.nomatch'"),
     ("mqtt.password_file={tmp}/secret", "mqtt.password_file: '{tmp}/secret' does not exist")],
)  # fmt: skip
def test_check_config_refuses_what_run_would_refuse(tmp_path, setting, message):
    """check-config checks the source and the password file as run does: one line, exit 78."""
    out = run_cli("check-config", str(ROOT / "deploy" / "config.example.yaml"), "--set", setting.format(tmp=tmp_path))
    assert (78, f"error: {message.format(tmp=tmp_path)}\n") == (out.returncode, out.stderr)


@pytest.mark.parametrize(("what", "command"), [("config file", "check-config"), ("manifest", "classify --model")])
def test_a_binary_file_given_as_config_or_manifest_is_one_line_and_exit_78(what, command):
    """The .tflite passed where a YAML config or a JSON manifest belongs is named in one line, exit 78."""
    model = DEFAULT_MANIFEST.with_suffix(".tflite")
    out = run_cli(*command.split(), str(model), *([str(SELFTEST[0][0])] if command == "classify --model" else []))
    expected = f"error: {'model.manifest: ' if what == 'manifest' else ''}{what} {model} is not UTF-8 text"
    lines = out.stderr.splitlines()
    assert (78, 1, expected) == (out.returncode, len(lines), lines[0][: len(expected)])


def test_classify_top_k_below_one_is_refused():
    """--top-k 0 is an argument error (one line, exit 1), not an empty answer."""
    out = run_cli("classify", "--top-k", "0", str(SELFTEST[0][0]))
    assert (1, "edge-classifier classify: error: argument --top-k: 0 is below 1 (see --help)\n") == (
        out.returncode,
        out.stderr,
    )


def test_unknown_command_line_option_is_one_line_and_exit_1():
    """argparse errors are a single line, not a usage block, and exit 1."""
    out = run_cli("run", "--no-such-flag")
    assert (1, 1) == (out.returncode, len(out.stderr.splitlines()))


def test_run_with_missing_video_is_refused(tmp_path):
    """A video file that does not exist stops the daemon at once with a one-line error (exit 78)."""
    out = run_cli("run", "--source", str(tmp_path / "nope.mp4"), "--set", "mqtt.connect_wait_s=0")
    assert (78, f"error: source.uri: video file '{tmp_path / 'nope.mp4'}' does not exist\n") == (
        out.returncode, out.stderr.splitlines(keepends=True)[-1])  # fmt: skip
