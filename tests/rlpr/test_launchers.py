"""The bash launchers of recipes/rlpr (on the shared recipes/_launch.sh): --help, the command they build (run with a
stand-in python), the one convention (no variable set: exactly ``python -m rlpr.main --config-name <recipe>``), and a
fast, clear refusal on a machine without the GPUs or the wandb key a run needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlpr.data.prep import TRAIN, default_file_name
from rlpr.evaluation.benchmarks import BENCHMARKS
from rlpr.main import compose_recipe

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
# The launchers' own variables, cleared so that the machine's environment does not leak into a test.
CLEARED = [*VARIABLES, "RAY_ADDRESS", "WANDB_API_KEY", "WANDB_MODE", "NETRC"]
# Records its arguments and RAY_ADDRESS instead of training; `python -c` runs, and so does `--preflight` unless
# FAKE_LAYOUT stands in for its answer (its arguments then recorded in $FAKE_OUT.preflight). The real preflight imports
# verl (seconds of CPU): one test runs it through the launcher, the others check it in this process.
FAKE_PYTHON = """#!/usr/bin/env bash
if [[ "$1" == "-c" ]]; then exec python3 "$@"; fi
if [[ "$3" == "--preflight" && -n "${FAKE_LAYOUT:-}" ]]; then
    printf '%s\\n' "$@" > "$FAKE_OUT.preflight"; printf '%s\\n' $FAKE_LAYOUT; exit 0
fi
if [[ "$3" == "--preflight" ]]; then exec python3 "$@"; fi
printf '%s\\n' "RAY_ADDRESS=${RAY_ADDRESS:-}" "$@" > "$FAKE_OUT"
"""
# Generous: the launchers answer in seconds of CPU time, but the test machine is shared.
TIMEOUT = 300


def test_every_rlpr_recipe_has_a_launcher():
    assert [p.stem for p in LAUNCHERS] == ["gemma2-2b-it", "llama3.1-8b-instruct", "qwen2.5-7b-base"]


def run(launcher: Path, *args: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    return subprocess.run(
        ["bash", str(launcher), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**base, "HOME": str(home), **env},
    )


@pytest.fixture
def fake_tools(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "fake-python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    (tmp_path / "home").mkdir()
    return bin_dir, python, tmp_path / "args.txt", tmp_path / "home"


def preflight_layout(args: list[str], home: Path, monkeypatch, capsys) -> list[str]:
    """The lines ``python -m rlpr.main *args`` (``--preflight ...``) prints, run in this process as the launcher would
    (from the repository root, the launcher's variables cleared, ``home`` as HOME)."""
    from rlpr.main import main

    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["rlpr.main", *args])
    capsys.readouterr()
    main()
    return capsys.readouterr().out.splitlines()


def _fake_tool(bin_dir: Path, name: str, script: str) -> None:
    tool = bin_dir / name
    tool.write_text(f"#!/usr/bin/env bash\n{script}\n")
    tool.chmod(0o755)


@pytest.mark.parametrize("launcher", LAUNCHERS, ids=[p.stem for p in LAUNCHERS])
def test_launcher_syntax_and_help(launcher, fake_tools):
    *_, home = fake_tools
    assert subprocess.run(["bash", "-n", str(launcher)], capture_output=True).returncode == 0
    result = run(launcher, "--help", env={}, home=home)
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


def test_launcher_builds_a_command_that_composes(fake_tools, tmp_path, monkeypatch, capsys):
    bin_dir, python, out, home = fake_tools
    _fake_tool(bin_dir, "nvidia-smi", 'for i in 0 1 2 3; do echo "GPU $i: Fake GPU (UUID: GPU-$i)"; done')
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
    result = run(launcher, "trainer.total_epochs=2", env=env, home=home)
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
def test_without_variables_the_launcher_runs_exactly_the_entry_point(launcher, fake_tools):
    # one convention: the settings (output folder included) come from the YAML, so the launcher and
    # `python -m rlpr.main --config-name <recipe>` write to the same place
    _, python, out, home = fake_tools
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_LAYOUT": "1 8 /x"}
    result = run(launcher, env=env, home=home)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == ["RAY_ADDRESS=", "-m", "rlpr.main", "--config-name", launcher.stem]


@pytest.mark.slow
def test_a_machine_without_gpus_or_wandb_key_is_refused_in_seconds(fake_tools):
    # Before: the run printed its config and waited for GPUs (or died in wandb's UsageError at the first log line).
    _, python, out, home = fake_tools
    launcher = REPO / "recipes" / "rlpr" / "qwen2.5-7b-base.sh"
    result = run(
        launcher,
        env={"PYTHON": str(python), "FAKE_OUT": str(out)},
        home=home,
    )
    assert result.returncode != 0
    assert "the run needs 8 GPUs (1 node(s) x 8" in result.stderr and "nvidia-smi shows 0" in result.stderr
    assert "wandb login" in result.stderr and "LOGGER='[console,tensorboard]'" in result.stderr
    assert not out.exists()  # training never started


def test_multi_node_joins_a_running_cluster_and_refuses_without_one(fake_tools):
    bin_dir, python, out, home = fake_tools
    launcher = REPO / "recipes" / "rlpr" / "gemma2-2b-it.sh"
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "NNODES": "2", "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    _fake_tool(bin_dir, "ray", "exit 1")
    result = run(launcher, env=env, home=home)
    assert result.returncode == 1
    assert "NNODES=2 needs a running Ray cluster" in result.stderr
    assert not out.exists()

    _fake_tool(bin_dir, "ray", "exit 0")
    result = run(launcher, "trainer.total_epochs=1", env={**env, "FAKE_LAYOUT": "2 8 /x"}, home=home)
    assert result.returncode == 0, result.stderr
    recorded = out.read_text().splitlines()
    assert recorded[0] == "RAY_ADDRESS=auto"
    assert "trainer.nnodes=2" in recorded
