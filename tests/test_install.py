"""deploy/install.sh run for real into throw-away roots (--root): tree, idempotence, config, dry run, removal, refusals.

One real install (venv + pip install of this checkout, from pip's cache when warm) is shared by the module;
tests that change a root work on a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edge_classifier import __version__

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / "deploy" / "install.sh"
UNIT = ROOT / "systemd" / "edge-classifier.service"
DEFAULT_MANIFEST = ROOT / "models" / "fashion-mobilenetv2.json"
CONFIG_EXAMPLE = ROOT / "deploy" / "config.example.yaml"
NAME = "edge-classifier"
BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'

# The first test that uses `setup` pays for a real install, which run_installer allows 600 s.
pytestmark = pytest.mark.timeout(900)


def run_installer(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", str(INSTALLER), *map(str, args)], capture_output=True, text=True, timeout=600, cwd="/"
    )
    if check:
        assert 0 == result.returncode, result.stdout + result.stderr
    return result


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root with its kind, size, mtime and mode (symlinks: target); bytecode caches left out."""
    entries: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        info = path.lstat()
        key = str(path.relative_to(root))
        if stat.S_ISLNK(info.st_mode):
            entries[key] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            entries[key] = ("dir", stat.S_IMODE(info.st_mode))
        else:
            entries[key] = ("file", info.st_size, info.st_mtime_ns, stat.S_IMODE(info.st_mode))
    return entries


def make_model(folder: Path) -> Path:
    """The default model when it is built, else a stand-in with the same files (the installer only copies them)."""
    if DEFAULT_MANIFEST.is_file():
        return DEFAULT_MANIFEST
    folder.mkdir()
    manifest = folder / "standin.json"
    manifest.write_text(json.dumps({"model_file": "standin.tflite", "labels_file": "standin.labels.txt"}))
    (folder / "standin.tflite").write_bytes(b"not a real model")
    (folder / "standin.labels.txt").write_text("a\nb\n")
    (folder / "standin.selftest").mkdir()
    (folder / "standin.selftest" / "00-a-1.png").write_bytes(b"png")
    return manifest


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Installs once into a fresh root; returns the root and the sources used."""
    base = tmp_path_factory.mktemp("install")
    example = CONFIG_EXAMPLE
    if not example.is_file():
        example = base / "config.example.yaml"
        example.write_text("# throw-away example for the installer test\nlog_level: info\n")
    manifest = make_model(base / "model")
    root = base / "root"
    setup = {"base": base, "root": root, "example": example, "manifest": manifest, "python": venv_python()}
    run_installer(*installer_args(setup, root))
    return setup


def venv_python() -> Path:
    """Debian's python3 as on a Pi when it can make venvs (python3-venv), else the interpreter behind this one."""
    system = Path("/usr/bin/python3")
    if (
        system.is_file()
        and 0 == subprocess.run([system, "-c", "import ensurepip, venv"], capture_output=True, timeout=60).returncode
    ):
        return system
    return Path(sys._base_executable)


def installer_args(setup: dict[str, Path], root: Path) -> list[str | Path]:
    return [
        "--root", root, "--model", setup["manifest"], "--config-example", setup["example"], "--python", setup["python"],
    ]  # fmt: skip


def copy_root(setup: dict[str, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(setup["root"], copy, symlinks=True)
    return copy


@pytest.mark.slow
def test_venv_has_a_working_edge_classifier(setup):
    """The venv's bin/edge-classifier runs and reports this checkout's version."""
    binary = setup["root"] / f"opt/{NAME}/venv/bin/{NAME}"
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60, cwd="/")
    assert f"{NAME} {__version__}" == result.stdout.strip()


@pytest.mark.slow
def test_package_is_installed_not_linked_to_the_checkout(setup):
    """The venv imports edge_classifier from its own site-packages, not from the checkout (non-editable)."""
    python = setup["root"] / f"opt/{NAME}/venv/bin/python"
    code = "import edge_classifier; print(edge_classifier.__file__)"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert True is Path(result.stdout.strip()).is_relative_to(setup["root"] / f"opt/{NAME}/venv"), (
        result.stdout + result.stderr
    )


@pytest.mark.slow
def test_model_config_and_unit_are_in_place(setup):
    """Model files, the configuration, an empty password file and the enabled unit are where the daemon expects."""
    root, manifest = setup["root"], setup["manifest"]
    source = manifest.parent
    models = root / f"var/lib/{NAME}/models"
    wanted = [manifest.name, manifest.stem + ".tflite", manifest.stem + ".labels.txt"]
    wanted += [f"{manifest.stem}.selftest/{p.name}" for p in sorted((source / f"{manifest.stem}.selftest").iterdir())]
    assert [(name, True) for name in wanted] == [
        (name, (models / name).read_bytes() == (source / name).read_bytes()) for name in wanted
    ]
    password = root / f"etc/{NAME}/mqtt_password"
    wants = root / f"etc/systemd/system/multi-user.target.wants/{NAME}.service"
    assert (setup["example"].read_text(), UNIT.read_text(), b"", 0o600, f"/etc/systemd/system/{NAME}.service") == (
        (root / f"etc/{NAME}/config.yaml").read_text(),
        (root / f"etc/systemd/system/{NAME}.service").read_text(),
        password.read_bytes(),
        stat.S_IMODE(password.stat().st_mode),
        os.readlink(wants),
    )


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_MANIFEST.is_file(), reason="the default model is not built yet")
def test_installed_daemon_passes_the_model_self_test(setup):
    """The installed command loads the installed default model, whose self-test must pass, and classifies an image."""
    root = setup["root"]
    manifest = root / f"var/lib/{NAME}/models/{DEFAULT_MANIFEST.name}"
    images = sorted((manifest.parent / f"{manifest.stem}.selftest").glob("*.png"))[:2]
    binary = root / f"opt/{NAME}/venv/bin/{NAME}"
    result = subprocess.run(
        [binary, "classify", "--json", "--model", manifest, *images], capture_output=True, text=True, timeout=120
    )
    assert 0 == result.returncode, result.stderr
    assert len(images) == len(result.stdout.splitlines())


@pytest.mark.slow
def test_second_run_changes_nothing(setup, tmp_path):
    """Running the installer again leaves every path, size, mtime and mode as it was."""
    root = copy_root(setup, tmp_path)
    before = snapshot(root)
    result = run_installer(*installer_args(setup, root))
    assert (before, True) == (snapshot(root), "nothing to change" in result.stdout), result.stdout


@pytest.mark.slow
def test_user_edits_to_the_config_survive_a_reinstall(setup, tmp_path):
    """An edited config.yaml and a password file are kept byte for byte when the installer runs again."""
    root = copy_root(setup, tmp_path)
    config = root / f"etc/{NAME}/config.yaml"
    password = root / f"etc/{NAME}/mqtt_password"
    config.write_text("mqtt:\n  host: broker.kiosk.lan # edited by hand\n")
    password.write_text("s3cret\n")
    run_installer(*installer_args(setup, root))
    assert ("mqtt:\n  host: broker.kiosk.lan # edited by hand\n", "s3cret\n") == (
        config.read_text(),
        password.read_text(),
    )


@pytest.mark.slow
def test_a_changed_model_file_is_replaced(setup, tmp_path):
    """A model file that differs from the checkout's is copied again; a stray self-test image is removed."""
    root = copy_root(setup, tmp_path)
    models = root / f"var/lib/{NAME}/models"
    labels = models / f"{setup['manifest'].stem}.labels.txt"
    labels.write_text("tampered\n")
    stray = models / f"{setup['manifest'].stem}.selftest" / "99-stray.png"
    stray.write_bytes(b"old")
    run_installer(*installer_args(setup, root))
    source_labels = setup["manifest"].parent / labels.name
    assert (source_labels.read_text(), False) == (labels.read_text(), stray.exists())


@pytest.mark.slow
def test_dry_run_changes_nothing(setup, tmp_path):
    """--dry-run prints the steps but creates nothing in a fresh root and changes nothing in an installed one."""
    fresh = tmp_path / "fresh"
    installed = copy_root(setup, tmp_path)
    (installed / f"var/lib/{NAME}/models" / setup["manifest"].name).write_text("{}")
    before = snapshot(installed)
    fresh_run = run_installer("--dry-run", *installer_args(setup, fresh))
    installed_run = run_installer("--dry-run", *installer_args(setup, installed))
    assert (False, before) == (fresh.exists(), snapshot(installed))
    assert (True, True) == ("would run:" in fresh_run.stdout, "would run: install" in installed_run.stdout), (
        fresh_run.stdout,
        installed_run.stdout,
    )


@pytest.mark.slow
def test_uninstall_keeps_config_and_purge_removes_it(setup, tmp_path):
    """--uninstall removes venv, models and unit but keeps config and state; --purge removes those too."""
    root = copy_root(setup, tmp_path)
    (root / f"var/lib/{NAME}/notes.txt").write_text("state")
    run_installer("--root", root, "--uninstall")
    kept = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())
    assert [f"etc/{NAME}/config.yaml", f"etc/{NAME}/mqtt_password", f"var/lib/{NAME}/notes.txt"] == kept
    run_installer("--root", root, "--uninstall", "--purge")
    assert [] == [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()]


@pytest.mark.parametrize(
    ("os_release", "expected"),
    [
        ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\n', "unsupported OS ubuntu 22.04"),
        ('ID=debian\nVERSION_ID="11"\nVERSION_CODENAME=bullseye\n', "unsupported OS debian 11"),
        ("ID=fedora\nVERSION_ID=40\n", "unsupported OS fedora 40"),
    ],
)
def test_refuses_an_unsupported_os(tmp_path, os_release, expected):
    """On anything but the Debian 12 family the installer exits non-zero with one line and creates nothing."""
    release = tmp_path / "os-release"
    release.write_text(os_release)
    result = run_installer("--root", tmp_path / "root", "--os-release", release, check=False)
    lines = result.stderr.splitlines()
    assert (1, 1, True, False) == (
        result.returncode, len(lines), expected in result.stderr, (tmp_path / "root").exists()
    ), result.stderr  # fmt: skip


def test_accepts_raspberry_pi_os_bookworm(tmp_path):
    """Raspberry Pi OS Bookworm's os-release (64-bit: ID=debian) passes the check; shown with a dry run."""
    release = tmp_path / "os-release"
    release.write_text(BOOKWORM)
    manifest = make_model(tmp_path / "model")
    example = tmp_path / "config.example.yaml"
    example.write_text("log_level: info\n")
    result = run_installer(
        "--dry-run", "--root", tmp_path / "root", "--os-release", release, "--model", manifest,
        "--config-example", example,
    )  # fmt: skip
    assert (True, False) == ("==> OS: debian 12" in result.stdout, (tmp_path / "root").exists()), result.stdout


def test_refuses_python_older_than_3_10(tmp_path):
    """A Python 3.9 interpreter is refused with one line before anything is created."""
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\necho 3.9\n")
    python.chmod(0o755)
    release = tmp_path / "os-release"
    release.write_text(BOOKWORM)
    result = run_installer(
        "--root", tmp_path / "root", "--os-release", release, "--python", python, "--model", make_model(tmp_path / "m"),
        check=False,
    )  # fmt: skip
    assert (1, [f"install.sh: error: Python 3.9 at {python} is too old: Python 3.10 or newer needed"], False) == (
        result.returncode,
        result.stderr.splitlines(),
        (tmp_path / "root").exists(),
    )


def test_help_and_unknown_option():
    """--help describes the options; an unknown option is refused with one line."""
    helped = run_installer("--help")
    bad = run_installer("--frobnicate", check=False)
    assert (True, 1, ["install.sh: error: unknown option --frobnicate (see --help)"]) == (
        "--uninstall" in helped.stdout and "--root DIR" in helped.stdout,
        bad.returncode,
        bad.stderr.splitlines(),
    ), helped.stdout
