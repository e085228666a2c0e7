"""What the launcher tests of both recipes share: a stand-in python that records the command a launcher builds, a
clean environment to run a launcher in, and the entry point's ``--preflight`` run in this process as a launcher would.

The fixture ``launcher_tools`` (tests/conftest.py) builds the stand-ins in a test's temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
# The launchers' own variables (recipes/_launch.sh and the recipes' own), cleared so that the machine's environment
# does not leak into a test.
CLEARED = [
    "MODEL_PATH", "DATA_DIR", "TRAIN_FILES", "VAL_FILES", "NNODES", "GPUS_PER_NODE", "LOGGER", "OUTPUT_DIR",
    "PROJECT_NAME", "EXPERIMENT_NAME", "PYTHON", "VERDICT_RULE", "RAY_ADDRESS", "WANDB_API_KEY", "WANDB_MODE", "NETRC",
    "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
]  # fmt: skip
# A stand-in PYTHON: records RAY_ADDRESS and its arguments in $FAKE_OUT instead of training; `python -c` runs. Its
# `--preflight` answers FAKE_LAYOUT, or refuses with FAKE_REFUSAL (either way its arguments are recorded in
# $FAKE_OUT.preflight), or, with neither, runs for real (that imports verl: seconds of CPU, so most tests check the
# preflight in this process with ``preflight_here``).
FAKE_PYTHON = """#!/usr/bin/env bash
if [[ "$1" == "-c" ]]; then exec python3 "$@"; fi
if [[ "$3" == "--preflight" && -n "${FAKE_LAYOUT:-}" ]]; then
    printf '%s\\n' "$@" > "$FAKE_OUT.preflight"; printf '%s\\n' $FAKE_LAYOUT; exit 0
fi
if [[ "$3" == "--preflight" && -n "${FAKE_REFUSAL:-}" ]]; then
    printf '%s\\n' "$@" > "$FAKE_OUT.preflight"; echo "$FAKE_REFUSAL" >&2; exit 1
fi
if [[ "$3" == "--preflight" ]]; then exec python3 "$@"; fi
printf '%s\\n' "RAY_ADDRESS=${RAY_ADDRESS:-}" "$@" > "$FAKE_OUT"
"""
# Generous: the launchers answer in seconds of CPU time, but the test machine is shared.
TIMEOUT = 300


class LauncherTools(NamedTuple):
    bin_dir: Path  # put first on PATH for stand-in tools (``fake_tool``)
    python: Path  # the stand-in PYTHON
    out: Path  # where it records: FAKE_OUT
    home: Path  # an empty HOME (no wandb key)


def make_launcher_tools(folder: Path) -> LauncherTools:
    bin_dir, home = folder / "bin", folder / "home"
    bin_dir.mkdir()
    home.mkdir()
    python = bin_dir / "fake-python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return LauncherTools(bin_dir, python, folder / "args.txt", home)


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    """A stand-in command ``name`` (e.g. ``nvidia-smi``, ``ray``) running the bash ``script``."""
    tool = bin_dir / name
    tool.write_text(f"#!/usr/bin/env bash\n{script}\n")
    tool.chmod(0o755)


def recorded(tools: LauncherTools) -> list[str]:
    """The command the launcher started, without the recorded RAY_ADDRESS line: ``["-m", <module>, ...]``."""
    return tools.out.read_text().splitlines()[1:]


def run_launcher(launcher: Path, *args: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess:
    """``bash launcher *args`` in the machine's environment without the launchers' variables, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    return subprocess.run(
        ["bash", str(launcher), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**base, "HOME": str(home), **env},
    )


def preflight_here(main: Callable[[], None], argv: list[str], home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run an entry point's ``main`` with ``argv`` (e.g. ``--preflight ...``) in this process as a launcher would: from
    the repository root, the launchers' variables cleared, ``home`` as HOME."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["main", *argv])
    main()
