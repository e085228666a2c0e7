"""The bash launchers of recipes/rlpr: syntax, --help, and the command they build (run with a stand-in python)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rlpr.data_prep import TRAIN, default_file_name
from rlpr.main import compose_recipe
from rlpr.validation import BENCHMARKS

REPO = Path(__file__).resolve().parents[2]
LAUNCHERS = sorted(p for p in (REPO / "recipes" / "rlpr").glob("*.sh") if not p.name.startswith("_"))
VARIABLES = [
    "MODEL_PATH",
    "DATA_DIR",
    "TRAIN_FILES",
    "VAL_FILES",
    "NNODES",
    "GPUS_PER_NODE",
    "LOGGER",
    "OUTPUT_DIR",
    "PROJECT_NAME",
    "EXPERIMENT_NAME",
    "PYTHON",
]
# Records its arguments and RAY_ADDRESS instead of training; `python -c` (the launcher's file-name lookup) runs.
FAKE_PYTHON = """#!/usr/bin/env bash
if [[ "$1" == "-c" ]]; then exec python3 "$@"; fi
printf '%s\\n' "RAY_ADDRESS=${RAY_ADDRESS:-}" "$@" > "$FAKE_OUT"
"""


def test_every_rlpr_recipe_has_a_launcher():
    assert [p.stem for p in LAUNCHERS] == ["gemma2-2b-it", "llama3.1-8b-instruct", "qwen2.5-7b-base"]


def run(launcher: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(launcher), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("launcher", LAUNCHERS, ids=[p.stem for p in LAUNCHERS])
def test_launcher_syntax_and_help(launcher):
    assert subprocess.run(["bash", "-n", str(launcher)], capture_output=True).returncode == 0
    result = run(launcher, "--help")
    assert result.returncode == 0, result.stderr
    for name in VARIABLES:
        assert f"\n  {name} " in result.stdout, name
    assert f"configs/rlpr/{launcher.stem}.yaml" in result.stdout
    assert "ray start --head --port=6379" in result.stdout and "ray start --address=" in result.stdout


@pytest.fixture
def fake_tools(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "fake-python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return bin_dir, python, tmp_path / "args.txt"


def _fake_ray(bin_dir: Path, running: bool) -> None:
    ray = bin_dir / "ray"
    ray.write_text(f"#!/usr/bin/env bash\nexit {0 if running else 1}\n")
    ray.chmod(0o755)


@pytest.mark.parametrize("launcher", LAUNCHERS, ids=[p.stem for p in LAUNCHERS])
def test_launcher_builds_a_command_that_composes(launcher, fake_tools, tmp_path):
    _, python, out = fake_tools
    env = {
        "PYTHON": str(python),
        "FAKE_OUT": str(out),
        "DATA_DIR": "/data/x",
        "GPUS_PER_NODE": "4",
        "OUTPUT_DIR": str(tmp_path / "run"),
        "LOGGER": "[console]",
    }
    result = run(launcher, "trainer.total_epochs=2", env=env)
    assert result.returncode == 0, result.stderr
    recorded = out.read_text().splitlines()
    assert recorded[:5] == ["RAY_ADDRESS=", "-m", "rlpr.main", "--config-name", launcher.stem]
    config = compose_recipe(launcher.stem, recorded[5:])
    assert config.data.train_files == f"/data/x/{default_file_name(TRAIN)}"
    assert list(config.data.val_files) == [f"/data/x/{default_file_name(name)}" for name in BENCHMARKS]
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (1, 4)
    assert config.trainer.default_local_dir == str(tmp_path / "run")
    assert list(config.trainer.logger) == ["console"]
    assert config.trainer.experiment_name == launcher.stem
    assert config.trainer.total_epochs == 2
    recipe_model = compose_recipe(launcher.stem).actor_rollout_ref.model.path
    assert config.actor_rollout_ref.model.path == recipe_model


def test_multi_node_joins_a_running_cluster_and_refuses_without_one(fake_tools):
    bin_dir, python, out = fake_tools
    launcher = REPO / "recipes" / "rlpr" / "gemma2-2b-it.sh"
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "NNODES": "2", "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    _fake_ray(bin_dir, running=False)
    result = run(launcher, env={**env, "RAY_ADDRESS": ""})
    assert result.returncode == 1
    assert "NNODES=2 needs a running Ray cluster" in result.stderr
    assert not out.exists()

    _fake_ray(bin_dir, running=True)
    result = run(launcher, "trainer.total_epochs=1", env={**env, "RAY_ADDRESS": ""})
    assert result.returncode == 0, result.stderr
    recorded = out.read_text().splitlines()
    assert recorded[0] == "RAY_ADDRESS=auto"
    assert "trainer.nnodes=2" in recorded
