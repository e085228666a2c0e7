"""The RM-R1 launchers (recipes/rm_r1, on the shared recipes/_launch.sh) and the entry point ``python -m rm_r1.main``:
the commands they build (with a stand-in python), the one convention shared with RLPR, the classic trainer, and a fast
clear refusal on a machine without GPUs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rm_r1.training.main import setting_names

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "configs" / "rm_r1"
LAUNCHERS = sorted((REPO / "recipes" / "rm_r1").glob("run_*.sh"))
CLEARED = ["MODEL_PATH", "TRAIN_FILES", "VAL_FILES", "NNODES", "GPUS_PER_NODE", "LOGGER", "OUTPUT_DIR"]
CLEARED += ["PROJECT_NAME", "EXPERIMENT_NAME", "PYTHON", "VERDICT_RULE", "RAY_ADDRESS", "WANDB_API_KEY", "WANDB_MODE"]
CLEARED += ["NETRC", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"]
# Records its arguments instead of training; `python -c` runs. `--preflight` answers FAKE_LAYOUT, or refuses with
# FAKE_REFUSAL (its arguments recorded in $FAKE_OUT.preflight), or runs: the real one imports verl (seconds of CPU), so
# tests/rlpr/test_launchers.py runs it through a launcher once and the tests here check it in this process.
FAKE_PYTHON = """#!/usr/bin/env bash
if [[ "$1" == "-c" ]]; then exec python3 "$@"; fi
if [[ "$3" == "--preflight" && -n "${FAKE_LAYOUT:-}" ]]; then printf '%s\\n' $FAKE_LAYOUT; exit 0; fi
if [[ "$3" == "--preflight" && -n "${FAKE_REFUSAL:-}" ]]; then
    printf '%s\\n' "$@" > "$FAKE_OUT.preflight"; echo "$FAKE_REFUSAL" >&2; exit 1
fi
if [[ "$3" == "--preflight" ]]; then exec python3 "$@"; fi
printf '%s\\n' "$@" > "$FAKE_OUT"
"""
TIMEOUT = 300


def compose_setting(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(config_name=name, overrides=overrides)


@pytest.fixture
def tools(tmp_path):
    python = tmp_path / "fake-python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    (tmp_path / "home").mkdir()
    return python, tmp_path / "args.txt", tmp_path / "home"


def run(launcher: Path, *args: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    return subprocess.run(
        ["bash", str(launcher), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**base, "HOME": str(home), **env},
    )


def test_every_setting_has_a_launcher_on_the_shared_library():
    settings = setting_names()
    assert set(settings) | {"grpo", "sft", "smoke_cpu"} == {p.stem for p in CONFIGS.glob("*.yaml")}
    assert [p.stem.removeprefix("run_") for p in LAUNCHERS] == settings
    for launcher in LAUNCHERS:
        assert subprocess.run(["bash", "-n", str(launcher)], capture_output=True).returncode == 0
        text = launcher.read_text()
        assert f"LAUNCH_CONFIG={launcher.stem.removeprefix('run_')}\n" in text and text.rstrip().endswith('launch "$@"')


@pytest.mark.parametrize("name", ["run_grpo_instruct_7b", "run_sft_instruct_7b"])
def test_help_shows_the_settings_values(name, tools):
    *_, home = tools
    result = run(REPO / "recipes" / "rm_r1" / f"{name}.sh", "--help", env={}, home=home)
    assert result.returncode == 0, result.stderr
    config = compose_setting(name.removeprefix("run_"), [])
    model = config.actor_rollout_ref.model.path if "grpo" in name else config.model.path
    assert f"[{model}]" in result.stdout and f"[{config.trainer.default_local_dir}]" in result.stdout
    assert "same path on every node" in result.stdout and "wandb login" in result.stdout
    assert ("VERDICT_RULE" in result.stdout) == ("grpo" in name) and ("NODE_RANK" in result.stdout) == ("sft" in name)


def test_grpo_launcher_runs_the_checked_entry_point(tools, tmp_path):
    python, out, home = tools
    launcher = REPO / "recipes" / "rm_r1" / "run_grpo_distill_7b.sh"
    result = run(launcher, env={"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_LAYOUT": "1 8 /x"}, home=home)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == ["-m", "rm_r1.main", "--config-name", "grpo_distill_7b"]

    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_LAYOUT": "1 8 /x", "VERDICT_RULE": "last_answer"}
    env |= {"MODEL_PATH": "/m", "TRAIN_FILES": "/d/t.parquet", "OUTPUT_DIR": str(tmp_path / "o"), "LOGGER": "[console]"}
    assert run(launcher, "trainer.total_epochs=2", env=env, home=home).returncode == 0
    recorded = out.read_text().splitlines()
    config = compose_setting("grpo_distill_7b", recorded[4:])
    assert config.actor_rollout_ref.model.path == "/m" and config.data.train_files == "/d/t.parquet"
    assert config.reward.custom_reward_function.reward_kwargs.verdict_rule == "last_answer"
    assert config.trainer.default_local_dir == str(tmp_path / "o") and config.trainer.total_epochs == 2


def test_sft_launcher_runs_torchrun_and_links_the_last_checkpoint(tools, tmp_path):
    python, out, home = tools
    output = tmp_path / "sft"
    (output / "global_step_7" / "huggingface").mkdir(parents=True)
    (output / "latest_checkpointed_iteration.txt").write_text("7")
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_LAYOUT": f"2 4 {output}", "NNODES": "2"}
    result = run(REPO / "recipes" / "rm_r1" / "run_sft_instruct_14b.sh", env=env, home=home)
    assert result.returncode == 0, result.stderr
    recorded = out.read_text().splitlines()
    assert recorded[:3] == ["-m", "torch.distributed.run", "--nnodes=2"] and "--nproc_per_node=4" in recorded
    assert recorded[recorded.index("-m", 1) :] == [
        "-m",
        "rm_r1.main",
        "--config-name",
        "sft_instruct_14b",
        "trainer.nnodes=2",
    ]
    assert os.readlink(output / "final_hf") == "global_step_7/huggingface"


@pytest.mark.parametrize(
    ("name", "needs"),
    [("run_grpo_instruct_7b", "the run needs 8 GPUs"), ("run_sft_instruct_7b", "this node needs 8 GPUs")],
)
def test_a_machine_without_gpus_is_refused_in_seconds(name, needs, tools, monkeypatch):
    # Before: GRPO printed its config and waited forever; SFT died with an NCCL error.
    python, out, home = tools
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_REFUSAL": "setting: cannot start: (the preflight)"}
    result = run(REPO / "recipes" / "rm_r1" / f"{name}.sh", env=env, home=home)
    assert result.returncode != 0
    assert "setting: cannot start: (the preflight)" in result.stderr  # the preflight's refusal, shown
    assert not out.exists()  # training never started
    args = Path(f"{out}.preflight").read_text().splitlines()
    assert args == ["-m", "rm_r1.main", "--preflight", "--config-name", name.removeprefix("run_")]
    # what the real preflight says on this machine (no GPUs, no wandb key), run in this process as the launcher would
    for variable in CLEARED:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["rm_r1.main", *args[2:]])
    from rm_r1.training.main import main

    with pytest.raises(SystemExit) as refused:
        main()
    message = str(refused.value.code)
    assert needs in message and "nvidia-smi shows 0" in message and "wandb login" in message


def _rm_r1_main(argv: list[str], monkeypatch):
    from hydra.core.global_hydra import GlobalHydra

    from rm_r1.training.main import main

    monkeypatch.setattr(sys, "argv", ["rm_r1.main", *argv])
    try:
        main()
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.slow
def test_entry_point_checks_then_hands_over_to_verls_classic_trainer(monkeypatch, tmp_path):
    import verl.trainer.main_ppo
    from verl.trainer.main_ppo_v0 import BaseTaskRunner
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    started = []
    monkeypatch.setattr(
        verl.trainer.main_ppo, "run_ppo", lambda config, task_runner_class: started.append((config, task_runner_class))
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"trainer\.totl_training_steps \(unknown key; did you mean trainer\.total_"):
        _rm_r1_main(["--config-name", "grpo_instruct_7b", "+trainer.totl_training_steps=3"], monkeypatch)
    with pytest.raises(SystemExit, match=r"actor_rollout_ref\.actor\.optim\.lr='abc' \(expected a number"):
        _rm_r1_main(["--config-name", "grpo_instruct_7b", "actor_rollout_ref.actor.optim.lr=abc"], monkeypatch)
    with pytest.raises(SystemExit, match="classic RayPPOTrainer"):
        _rm_r1_main(["--config-name", "grpo_instruct_7b", "trainer.use_v1=true"], monkeypatch)
    assert started == []
    _rm_r1_main(["--config-name", "grpo_instruct_7b"], monkeypatch)
    ((config, runner),) = started
    runner_cls = runner.__ray_actor_class__  # verl's classic task runner (main_ppo_v0), not TaskRunnerV1
    assert issubclass(runner_cls, BaseTaskRunner) and runner_cls.trainer_cls is RayPPOTrainer
    assert config.data.train_files == str(tmp_path / "data" / "rm_r1" / "instruct" / "train.parquet")
    assert config.trainer.default_local_dir == str(tmp_path / "checkpoints" / "rm_r1" / "grpo_instruct_7b")


def test_entry_point_help_names_and_torchrun(monkeypatch, capsys):
    _rm_r1_main(["--help"], monkeypatch)
    assert "  grpo_distill_32b" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown recipe 'grpo_instruct7b'; did you mean 'grpo_instruct_7b'"):
        _rm_r1_main(["--config-name", "grpo_instruct7b"], monkeypatch)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(SystemExit, match="runs under torchrun"):
        _rm_r1_main(["--config-name", "sft_instruct_7b"], monkeypatch)


def test_the_smoke_setting_points_at_its_own_command(monkeypatch):
    from rm_r1.training import main as rm_r1_main

    monkeypatch.setattr("sys.argv", ["rm_r1.main", "--config-name", "smoke_cpu"])
    with pytest.raises(SystemExit, match="use python -m rm_r1.smoke"):
        rm_r1_main.main()
