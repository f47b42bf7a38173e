"""The systemd unit: `systemd-analyze verify` accepts it and its security exposure stays at or below 2.0.

No systemd needs to run: `verify --root=DIR` loads the unit from a throw-away root that holds the
host's own unit files (for sysinit.target and friends) and a stand-in for the ExecStart binary.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "edge-classifier.service"
EXEC_START = "/opt/edge-classifier/venv/bin/edge-classifier"
RELOAD_PROGRAM = "/bin/kill"
HOST_UNITS = Path("/usr/lib/systemd/system")
MAX_EXPOSURE = 2.0

ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)")


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60)


def unit_settings() -> dict[str, list[str]]:
    """Every Key=value of the unit file, in order, comments dropped."""
    settings: dict[str, list[str]] = {}
    for line in (raw.strip() for raw in UNIT.read_text(encoding="utf-8").splitlines()):
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def make_root(tmp_path: Path, with_binary: bool = True) -> Path:
    """A root with the host's units, our unit in /etc/systemd/system and (optionally) the ExecStart binary."""
    root = tmp_path / "root"
    shutil.copytree(HOST_UNITS, root / HOST_UNITS.relative_to("/"), symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    # verify looks for each Exec*= program inside the root: ExecStart's (optionally) and ExecReload's kill.
    for program in [EXEC_START, RELOAD_PROGRAM] if with_binary else [RELOAD_PROGRAM]:
        binary = root / program.lstrip("/")
        binary.parent.mkdir(parents=True, exist_ok=True)
        if not binary.exists():
            binary.write_text("#!/bin/sh\nexit 0\n")
            binary.chmod(0o755)
    return root


def test_verify_accepts_the_unit(tmp_path):
    """`systemd-analyze verify` exits 0 and prints nothing (no unknown key, bad value or missing unit)."""
    if not HOST_UNITS.is_dir():
        pytest.skip(f"{HOST_UNITS} is missing: verify needs the host's sysinit.target and friends")
    root = make_root(tmp_path)
    result = analyze("verify", "--man=no", f"--root={root}", UNIT.name)
    assert (0, "") == (result.returncode, (result.stdout + result.stderr).strip())


def test_verify_notices_a_missing_binary(tmp_path):
    """Without the ExecStart binary in the root, verify fails and names it (so the test above checks something)."""
    if not HOST_UNITS.is_dir():
        pytest.skip(f"{HOST_UNITS} is missing: verify needs the host's sysinit.target and friends")
    root = make_root(tmp_path, with_binary=False)
    result = analyze("verify", "--man=no", f"--root={root}", UNIT.name)
    assert (1, True) == (result.returncode, EXEC_START in result.stderr), result.stderr


def test_security_exposure_is_at_most_two(record_property):
    """`systemd-analyze security --offline=yes` rates the unit 2.0 or lower ("OK" or better)."""
    result = analyze("security", "--offline=yes", str(UNIT))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    record_property("exposure", f"{exposure} {match.group(2)}")
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{result.stdout}"


def test_unit_keeps_the_service_alive_the_way_the_daemon_expects():
    """The unit uses the daemon's notify protocol, its watchdog, its exit code 78 and its shutdown time."""
    settings = unit_settings()
    picked = {key: settings.get(key, [None])[-1] for key in (
        "Type", "NotifyAccess", "Restart", "RestartPreventExitStatus", "ExecStart", "ExecReload", "User", "SupplementaryGroups",
        "ConfigurationDirectory", "StateDirectory", "LoadCredential", "DevicePolicy", "DeviceAllow",
        "RestrictAddressFamilies", "ProtectSystem", "NoNewPrivileges", "PrivateTmp",
    )}  # fmt: skip
    assert {
        "Type": "notify",
        "NotifyAccess": "main",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "78",
        "ExecStart": f"{EXEC_START} run -c /etc/edge-classifier/config.yaml",
        "ExecReload": f"{RELOAD_PROGRAM} -HUP $MAINPID",
        "User": "edge-classifier",
        "SupplementaryGroups": "video",
        "ConfigurationDirectory": "edge-classifier",
        "StateDirectory": "edge-classifier",
        "LoadCredential": "mqtt_password:/etc/edge-classifier/mqtt_password",
        "DevicePolicy": "closed",
        "DeviceAllow": "char-video4linux rw",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
    } == picked


def test_timeouts_leave_room_for_the_daemon():
    """The watchdog outlasts the daemon's 30 s camera back-off and the stop timeout its ~2 s shutdown."""
    settings = unit_settings()
    seconds = {key: int(settings[key][-1]) for key in ("WatchdogSec", "TimeoutStopSec", "TimeoutStartSec")}
    assert (True, True, True) == (
        seconds["WatchdogSec"] > 30,
        2 < seconds["TimeoutStopSec"] <= 30,
        seconds["TimeoutStartSec"] >= 30,
    ), seconds
