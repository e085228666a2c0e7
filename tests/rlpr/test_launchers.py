"""The bash launchers of recipes/rlpr (on the shared recipes/_launch.sh): --help, the command they build (run with a
stand-in python), the one convention (no variable set: exactly ``python -m rlpr.main --config-name <recipe>``), and a
fast, clear refusal on a machine without the GPUs or the wandb key a run needs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rlpr.data.prep import TRAIN, default_file_name
from rlpr.evaluation.benchmarks import BENCHMARKS
from rlpr.main import compose_recipe
from tests.helpers.launchers import REPO, fake_tool, preflight_here, run_launcher

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


def test_every_rlpr_recipe_has_a_launcher():
    assert [p.stem for p in LAUNCHERS] == ["gemma2-2b-it", "llama3.1-8b-instruct", "qwen2.5-7b-base"]


def preflight_layout(args: list[str], home: Path, monkeypatch, capsys) -> list[str]:
    """The lines ``python -m rlpr.main *args`` (``--preflight ...``) prints, run in this process as the launcher
    would."""
    from rlpr.main import main

    capsys.readouterr()
    preflight_here(main, args, home, monkeypatch)
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("launcher", LAUNCHERS, ids=[p.stem for p in LAUNCHERS])
def test_launcher_syntax_and_help(launcher, launcher_tools):
    *_, home = launcher_tools
    assert subprocess.run(["bash", "-n", str(launcher)], capture_output=True).returncode == 0
    result = run_launcher(launcher, "--help", env={}, home=home)
    assert result.returncode == 0, result.stderr
    for name in VARIABLES:
        assert f"\n  {name} " in result.stdout, name
    assert f"configs/rlpr/{launcher.stem}.yaml" in result.stdout
    # the defaults shown are the recipe's own
    config = compose_recipe(launcher.stem)
    assert f"[{config.actor_rollout_ref.model.path}]" in result.stdout
    assert f"[{config.data.train_files}]" in result.stdout
    assert "ray start --head --port=6379" in result.stdout and "ray start --address=" in result.stdout
    assert "same path on every node" in result.stdout and "wandb login" in result.stdout


def test_launcher_builds_a_command_that_composes(launcher_tools, tmp_path, monkeypatch, capsys):
    bin_dir, python, out, home = launcher_tools
    fake_tool(bin_dir, "nvidia-smi", 'for i in 0 1 2 3; do echo "GPU $i: Fake GPU (UUID: GPU-$i)"; done')
    launcher = REPO / "recipes" / "rlpr" / "gemma2-2b-it.sh"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHON": str(python),
        "FAKE_OUT": str(out),
        "DATA_DIR": "/data/x",
        "GPUS_PER_NODE": "4",
        "OUTPUT_DIR": str(tmp_path / "run"),
        "LOGGER": "[console]",
        "FAKE_LAYOUT": "1 4 /from/the/preflight",
    }
    result = run_launcher(launcher, "trainer.total_epochs=2", env=env, home=home)
    assert result.returncode == 0, result.stderr
    assert "1 node(s) x 4 GPUs, checkpoints in /from/the/preflight" in result.stdout  # the preflight's layout
    recorded = out.read_text().splitlines()
    assert recorded[:5] == ["RAY_ADDRESS=", "-m", "rlpr.main", "--config-name", launcher.stem]
    preflight_args = Path(f"{out}.preflight").read_text().splitlines()
    assert preflight_args == ["-m", "rlpr.main", "--preflight", *recorded[3:]]  # checks what it then runs
    # the real preflight on those arguments, on this machine with the 4 GPUs nvidia-smi shows
    monkeypatch.setenv("PATH", env["PATH"])
    assert preflight_layout(preflight_args[2:], home, monkeypatch, capsys) == ["1", "4", str(tmp_path / "run")]
    config = compose_recipe(launcher.stem, recorded[5:])
    assert config.data.train_files == f"/data/x/{default_file_name(TRAIN)}"
    assert list(config.data.val_files) == [f"/data/x/{default_file_name(name)}" for name in BENCHMARKS]
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (1, 4)
    assert config.trainer.default_local_dir == str(tmp_path / "run")
    assert list(config.trainer.logger) == ["console"]
    assert config.trainer.total_epochs == 2
    assert config.actor_rollout_ref.model.path == compose_recipe(launcher.stem).actor_rollout_ref.model.path


@pytest.mark.parametrize("launcher", LAUNCHERS, ids=[p.stem for p in LAUNCHERS])
def test_without_variables_the_launcher_runs_exactly_the_entry_point(launcher, launcher_tools):
    # one convention: the settings (output folder included) come from the YAML, so the launcher and
    # `python -m rlpr.main --config-name <recipe>` write to the same place
    _, python, out, home = launcher_tools
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_LAYOUT": "1 8 /x"}
    result = run_launcher(launcher, env=env, home=home)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == ["RAY_ADDRESS=", "-m", "rlpr.main", "--config-name", launcher.stem]


@pytest.mark.slow
def test_a_machine_without_gpus_or_wandb_key_is_refused_in_seconds(launcher_tools):
    # Before: the run printed its config and waited for GPUs (or died in wandb's UsageError at the first log line).
    _, python, out, home = launcher_tools
    launcher = REPO / "recipes" / "rlpr" / "qwen2.5-7b-base.sh"
    result = run_launcher(
        launcher,
        env={"PYTHON": str(python), "FAKE_OUT": str(out)},
        home=home,
    )
    assert result.returncode != 0
    assert "the run needs 8 GPUs (1 node(s) x 8" in result.stderr and "nvidia-smi shows 0" in result.stderr
    assert "wandb login" in result.stderr and "LOGGER='[console,tensorboard]'" in result.stderr
    assert not out.exists()  # training never started


def test_multi_node_joins_a_running_cluster_and_refuses_without_one(launcher_tools):
    bin_dir, python, out, home = launcher_tools
    launcher = REPO / "recipes" / "rlpr" / "gemma2-2b-it.sh"
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "NNODES": "2", "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    fake_tool(bin_dir, "ray", "exit 1")
    result = run_launcher(launcher, env=env, home=home)
    assert result.returncode == 1
    assert "NNODES=2 needs a running Ray cluster" in result.stderr
    assert not out.exists()

    fake_tool(bin_dir, "ray", "exit 0")
    result = run_launcher(launcher, "trainer.total_epochs=1", env={**env, "FAKE_LAYOUT": "2 8 /x"}, home=home)
    assert result.returncode == 0, result.stderr
    recorded = out.read_text().splitlines()
    assert recorded[0] == "RAY_ADDRESS=auto"
    assert "trainer.nnodes=2" in recorded
