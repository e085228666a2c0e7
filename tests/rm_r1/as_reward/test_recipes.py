"""The judge-as-reward recipes: configs/judge_reward (composed as rm_r1.judge_main does), their launchers' help."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rm_r1.as_reward import main as judge_main
from rm_r1.as_reward.reward import JudgeSettings

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "configs" / "judge_reward"
RECIPES = ROOT / "recipes" / "judge_reward"


def _compose(name: str, overrides: list[str] = ()):
    with initialize_config_dir(str(CONFIGS), version_base=None):
        return compose(name, overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("name", ["served_judge_7b", "external_judge"])
def test_settings_compose_the_judge_reward(name):
    # tests/test_configs.py runs the config checker (harness.config_check) on every file of configs/judge_reward
    cfg = _compose(name)
    assert cfg.trainer.use_v1 is False and cfg.algorithm.adv_estimator == "grpo"
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen2.5-7B-Instruct"
    reward = cfg.reward.custom_reward_function
    assert (reward.path, reward.name) == ("pkg://rm_r1.as_reward.reward", "compute_score")
    # every key is a setting; verl hands compute_score dict(reward_kwargs) (verl/trainer/ppo/reward.py:82)
    settings = JudgeSettings.from_kwargs(dict(reward.reward_kwargs))
    assert settings.mode == "pairwise" and settings.both_orders and settings.k == 1
    assert settings.verdict_rule == "last_answer"  # a reasoning judge's verdict after its thinking
    # a hung judge is bounded to minutes per step, and a failing one stops the run after 2 steps
    assert settings.deadline == 600 and settings.timeout <= settings.deadline
    assert (settings.max_failed_frac, settings.max_failed_steps) == (0.5, 2)
    assert OmegaConf.to_container(reward.reward_kwargs, resolve=True) == dict(reward.reward_kwargs)


def test_served_judge_split_of_one_node():
    cfg = _compose("served_judge_7b")
    rm = cfg.reward.reward_model
    assert rm.enable and rm.enable_resource_pool
    # 4 GPUs for the policy, 4 for the judge: 2 judge replicas of tensor parallel 2
    assert (cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (1, 4) and (rm.nnodes, rm.n_gpus_per_node) == (1, 4)
    assert rm.rollout.name == "vllm" and rm.rollout.tensor_model_parallel_size == 2
    assert rm.rollout.gpu_memory_utilization == 0.85 and rm.rollout.free_cache_engine is False
    assert cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 2
    # the judge's context (vLLM's max_model_len, what bounds its chat endpoint) holds its prompt (the policy's reply
    # cut to max_response_tokens) and its answer, and compute_score knows it (it cuts a reply that would not fit)
    kwargs = cfg.reward.custom_reward_function.reward_kwargs
    assert rm.rollout.max_model_len == kwargs.max_model_len == 12288
    assert kwargs.max_response_tokens + cfg.data.max_prompt_length + kwargs.max_new_tokens < rm.rollout.max_model_len
    # prompt_length / response_length bound verl's token-level generate() only: the recipe does not set them
    written = yaml.safe_load((CONFIGS / "served_judge_7b.yaml").read_text())["reward"]["reward_model"]["rollout"]
    assert not {"prompt_length", "response_length"} & set(written)
    assert "base_url" not in kwargs  # the router's address comes from verl


def test_external_judge_uses_the_url_and_all_gpus_for_the_policy():
    cfg = _compose("external_judge", ["reward.custom_reward_function.reward_kwargs.base_url=http://judge:8000/v1"])
    assert cfg.reward.reward_model.enable is False and cfg.trainer.n_gpus_per_node == 8
    assert cfg.reward.custom_reward_function.reward_kwargs.base_url == "http://judge:8000/v1"


def test_judge_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "judge").mkdir()
    cfg = _compose(
        "served_judge_7b",
        ["reward.reward_model.model_path=judge", "+reward.custom_reward_function.reward_kwargs.prompt_file=p.txt"],
    )
    judge_main.resolve_judge_paths(cfg)
    assert cfg.reward.reward_model.model_path == str(tmp_path / "judge")
    assert cfg.reward.custom_reward_function.reward_kwargs.prompt_file == str(tmp_path / "p.txt")
    cfg = _compose("served_judge_7b", ["reward.reward_model.model_path=org/hub-judge"])
    judge_main.resolve_judge_paths(cfg)
    assert cfg.reward.reward_model.model_path == "org/hub-judge"  # not a local folder: a hub id, kept


def test_launcher_help():
    setting = "external_judge"  # run_served_judge_7b.sh differs only in its two LAUNCH_ lines
    out = subprocess.run(
        ["bash", str(RECIPES / f"run_{setting}.sh"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert f"configs/judge_reward/{setting}.yaml" in out and "python -m rm_r1.judge_main" in out
    assert "JUDGE_URL" in out and "JUDGE_PATH" in out and f"[checkpoints/judge_reward/{setting}]" in out


def test_entry_point_refuses_the_new_trainer_and_a_typo():
    cfg = _compose("external_judge", ["trainer.use_v1=true"])
    with pytest.raises(judge_main.config_check.ConfigError, match="use_v1=false"):
        judge_main.check_config(cfg)

    assert judge_main.setting_names() == ["external_judge", "served_judge_7b"]
    done = subprocess.run(
        ["python", "-m", "rm_r1.judge_main", "--config-name", "served_judge_8b"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode != 0 and "served_judge_7b" in done.stderr
