"""Where the build reads and writes by default: the checkout this package is installed (editable) from."""

from __future__ import annotations

from pathlib import Path

# The build extra is installed editable from a checkout (deploy/dev-setup.sh), so the package sits in it.
ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
REAL_PHOTOS_DIR = ROOT / "tests" / "data" / "real-photos"


def shown(path: Path) -> str:
    """A path as the repository's command lines show it: relative to the checkout when inside it."""
    resolved = path.resolve()
    return resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(path)
