"""Where the Hydra recipes are: ``configs/`` of a checkout, or ``harness/_configs`` inside an installed wheel.

pyproject's wheel build force-includes the top-level ``configs/`` folder as ``harness/_configs``, so an installed
package carries the same tree; an editable install or a plain checkout uses ``configs/`` next to the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def configs_root() -> Path:
    """The folder that holds ``rlpr/`` and ``rm_r1/`` recipe folders (installed copy first, then the checkout)."""
    for candidate in (_PACKAGE_DIR / "_configs", _PACKAGE_DIR.parent / "configs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no recipe configs found: neither {_PACKAGE_DIR / '_configs'} (installed wheel) nor "
        f"{_PACKAGE_DIR.parent / 'configs'} (checkout) exists"
    )


def recipe_config_dir(recipe: str) -> Path:
    """The config folder of one recipe family, e.g. ``recipe_config_dir("rlpr")``."""
    path = configs_root() / recipe
    if not path.is_dir():
        known = sorted(p.name for p in configs_root().iterdir() if p.is_dir())
        raise FileNotFoundError(f"no config folder {path}; known recipe folders: {known}")
    return path
