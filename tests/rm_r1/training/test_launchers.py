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
from tests.helpers.launchers import REPO, preflight_here, recorded, run_launcher

CONFIGS = REPO / "configs" / "rm_r1"
LAUNCHERS = sorted((REPO / "recipes" / "rm_r1").glob("run_*.sh"))


def compose_setting(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(config_name=name, overrides=overrides)


def test_every_setting_has_a_launcher_on_the_shared_library():
    settings = setting_names()
    assert set(settings) | {"grpo", "sft", "smoke_cpu"} == {p.stem for p in CONFIGS.glob("*.yaml")}
    assert [p.stem.removeprefix("run_") for p in LAUNCHERS] == settings
    for launcher in LAUNCHERS:
        assert subprocess.run(["bash", "-n", str(launcher)], capture_output=True).returncode == 0
        text = launcher.read_text()
        assert f"LAUNCH_CONFIG={launcher.stem.removeprefix('run_')}\n" in text and text.rstrip().endswith('launch "$@"')


@pytest.mark.parametrize("name", ["run_grpo_instruct_7b", "run_sft_instruct_7b"])
def test_help_shows_the_settings_values(name, launcher_tools):
    home = launcher_tools.home
    result = run_launcher(REPO / "recipes" / "rm_r1" / f"{name}.sh", "--help", env={}, home=home)
    assert result.returncode == 0, result.stderr
    config = compose_setting(name.removeprefix("run_"), [])
    model = config.actor_rollout_ref.model.path if "grpo" in name else config.model.path
    assert f"[{model}]" in result.stdout and f"[{config.trainer.default_local_dir}]" in result.stdout
    assert "same path on every node" in result.stdout and "wandb login" in result.stdout
    assert ("VERDICT_RULE" in result.stdout) == ("grpo" in name) and ("NODE_RANK" in result.stdout) == ("sft" in name)


def test_grpo_launcher_runs_the_checked_entry_point(launcher_tools, tmp_path):
    _, python, out, home = launcher_tools
    launcher = REPO / "recipes" / "rm_r1" / "run_grpo_distill_7b.sh"
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_LAYOUT": "1 8 /x"}
    result = run_launcher(launcher, env=env, home=home)
    assert result.returncode == 0, result.stderr
    assert recorded(launcher_tools) == ["-m", "rm_r1.main", "--config-name", "grpo_distill_7b"]

    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_LAYOUT": "1 8 /x", "VERDICT_RULE": "last_answer"}
    env |= {"MODEL_PATH": "/m", "TRAIN_FILES": "/d/t.parquet", "OUTPUT_DIR": str(tmp_path / "o"), "LOGGER": "[console]"}
    assert run_launcher(launcher, "trainer.total_epochs=2", env=env, home=home).returncode == 0
    config = compose_setting("grpo_distill_7b", recorded(launcher_tools)[4:])
    assert config.actor_rollout_ref.model.path == "/m" and config.data.train_files == "/d/t.parquet"
    assert config.reward.custom_reward_function.reward_kwargs.verdict_rule == "last_answer"
    assert config.trainer.default_local_dir == str(tmp_path / "o") and config.trainer.total_epochs == 2


def test_sft_launcher_runs_torchrun_and_links_the_last_checkpoint(launcher_tools, tmp_path):
    _, python, out, home = launcher_tools
    output = tmp_path / "sft"
    (output / "global_step_7" / "huggingface").mkdir(parents=True)
    (output / "latest_checkpointed_iteration.txt").write_text("7")
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_LAYOUT": f"2 4 {output}", "NNODES": "2"}
    result = run_launcher(REPO / "recipes" / "rm_r1" / "run_sft_instruct_14b.sh", env=env, home=home)
    assert result.returncode == 0, result.stderr
    command = recorded(launcher_tools)
    assert command[:3] == ["-m", "torch.distributed.run", "--nnodes=2"] and "--nproc_per_node=4" in command
    assert command[command.index("-m", 1) :] == [
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
def test_a_machine_without_gpus_is_refused_in_seconds(name, needs, launcher_tools, monkeypatch):
    # Before: GRPO printed its config and waited forever; SFT died with an NCCL error.
    _, python, out, home = launcher_tools
    env = {"PYTHON": str(python), "FAKE_OUT": str(out), "FAKE_REFUSAL": "setting: cannot start: (the preflight)"}
    result = run_launcher(REPO / "recipes" / "rm_r1" / f"{name}.sh", env=env, home=home)
    assert result.returncode != 0
    assert "setting: cannot start: (the preflight)" in result.stderr  # the preflight's refusal, shown
    assert not out.exists()  # training never started
    args = Path(f"{out}.preflight").read_text().splitlines()
    assert args == ["-m", "rm_r1.main", "--preflight", "--config-name", name.removeprefix("run_")]
    # what the real preflight says on this machine (no GPUs, no wandb key), run in this process as the launcher would
    from rm_r1.training.main import main

    with pytest.raises(SystemExit) as refused:
        preflight_here(main, args[2:], home, monkeypatch)
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
