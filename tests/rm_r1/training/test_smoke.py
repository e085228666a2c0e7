"""The RM-R1 recipes: the paper's settings in configs/rm_r1 (one config per setting on a shared base), the launchers'
Hydra overrides, and a CPU smoke run of GRPO with the preference reward (verl's real RayPPOTrainer.fit() on the
project's CPU backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from tests.helpers.params import fast_and_slow

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "configs" / "rm_r1"
RECIPES = ROOT / "recipes" / "rm_r1"
DATA = Path(__file__).parent / "data"

# docs/rm_r1.md#training-recipes, by setting (configs/rm_r1/<setting>.yaml, launched by recipes/rm_r1/run_<setting>.sh).
# GRPO: (model, data family, learning rate, nodes); SFT: (model, learning rate). Paths are relative to the repository
# root, where the launchers run.
GRPO = {
    "grpo_instruct_7b": ("checkpoints/rm_r1/sft_instruct_7b/final_hf", "instruct", 1e-6, 1),
    "grpo_instruct_14b": ("checkpoints/rm_r1/sft_instruct_14b/final_hf", "instruct", 7e-7, 2),
    "grpo_instruct_32b": ("checkpoints/rm_r1/sft_instruct_32b/final_hf", "instruct", 5e-7, 4),
    "grpo_distill_7b": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "reasoning", 1e-6, 1),
    "grpo_distill_14b": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "reasoning", 1e-6, 2),
    "grpo_distill_32b": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "reasoning", 8e-7, 4),
}
SFT = {
    "sft_instruct_7b": ("Qwen/Qwen2.5-7B-Instruct", 5e-6),
    "sft_instruct_14b": ("Qwen/Qwen2.5-14B-Instruct", 3e-6),
    "sft_instruct_32b": ("Qwen/Qwen2.5-32B-Instruct", 2e-6),
}
VARIABLES = ("MODEL_PATH", "TRAIN_FILE", "VAL_FILE", "GPUS_PER_NODE", "NNODES", "LOGGER", "OUTPUT_DIR")


def _compose(name: str, overrides: list[str] = ()):
    with initialize_config_dir(str(CONFIGS), version_base=None):
        return compose(name, overrides=list(overrides))


@pytest.mark.parametrize("name", GRPO)
def test_grpo_config_has_the_papers_settings(name):
    cfg = _compose(name)
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert (cfg.data.train_batch_size, actor.ppo_mini_batch_size, rollout.n) == (1024, 128, 7)
    assert (rollout.temperature, rollout.top_p) == (1.0, 1.0)
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (True, 0.001, "low_var_kl")
    assert cfg.algorithm.use_kl_in_reward is False and cfg.algorithm.adv_estimator == "grpo"
    assert (actor.clip_ratio, actor.entropy_coeff) == (0.2, 0)
    assert (cfg.data.max_prompt_length, cfg.data.max_response_length) == (4096, 8192)
    assert (cfg.trainer.total_epochs, rollout.tensor_model_parallel_size) == (1, 4)
    assert rollout.gpu_memory_utilization == (0.4 if name.endswith("32b") else 0.5)
    assert rollout.val_kwargs.do_sample is False  # one greedy verdict per held-out pair
    assert cfg.trainer.val_before_train and cfg.trainer.test_freq > 0 and cfg.data.val_files
    reward = cfg.reward
    assert (reward.custom_reward_function.path, reward.custom_reward_function.name) == (
        "pkg://rm_r1.training.reward",
        "compute_score",
    )
    assert reward.custom_reward_function.reward_kwargs.verdict_rule == "strict_tail"
    assert (reward.reward_manager.source, reward.reward_manager.name, reward.reward_manager.module.path) == (
        "importlib",
        "SpecialTokenTextRewardManager",
        "pkg://rm_r1.training.reward",
    )
    model, family, lr, nodes = GRPO[name]
    assert actor.optim.lr == lr and (cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (nodes, 8)
    assert cfg.actor_rollout_ref.model.path == model
    assert (cfg.data.train_files, cfg.data.val_files) == (
        f"data/rm_r1/{family}/train.parquet",
        f"data/rm_r1/{family}/val.parquet",
    )
    assert cfg.trainer.experiment_name == name
    assert cfg.trainer.default_local_dir == f"checkpoints/rm_r1/{name}"
    assert actor.fsdp_config.param_offload is actor.fsdp_config.optimizer_offload is name.endswith("32b")


@pytest.mark.parametrize("name", fast_and_slow(SFT, ["sft_instruct_7b"]))
def test_sft_config_has_the_papers_settings(name):
    cfg = _compose(name)
    model, lr = SFT[name]
    assert (cfg.data.train_batch_size, cfg.trainer.total_epochs, cfg.data.max_length) == (128, 1, 12288)
    assert (cfg.optim.lr, cfg.optim.lr_scheduler_type, cfg.optim.lr_warmup_steps_ratio) == (lr, "cosine", 0.03)
    assert cfg.model.path == model
    assert cfg.data.messages_key == "messages" and cfg.data.truncation == "error"
    assert "hf_model" in cfg.checkpoint.save_contents
    assert cfg.trainer.experiment_name == name and cfg.trainer.default_local_dir == f"checkpoints/rm_r1/{name}"
    assert cfg.engine.optimizer_offload is name.endswith("32b")
    # stage 2 of the same size starts from this run's final_hf link
    stage_2 = _compose(name.replace("sft", "grpo"))
    assert stage_2.actor_rollout_ref.model.path == f"{cfg.trainer.default_local_dir}/final_hf"


@pytest.mark.parametrize("name", [*GRPO, *SFT])
def test_setting_config_is_thin_and_commented(name):
    """A setting's config holds its own values only, each with a comment line right above it."""
    path = CONFIGS / f"{name}.yaml"
    raw = OmegaConf.load(path)
    base = name.split("_")[0]
    assert list(raw.defaults) == [base, "_self_"] and list(raw.hydra.searchpath) == ["pkg://verl.trainer.config"]
    shared = OmegaConf.load(CONFIGS / f"{base}.yaml")
    lines = path.read_text().splitlines()
    body = lines[lines.index("defaults:") :]
    for number, line in enumerate(body):
        if line.strip().startswith(("-", "#")) or not line.strip():
            continue
        if not line.rstrip().endswith(":"):  # a value, not a section
            assert body[number - 1].lstrip().startswith("#"), f"{path.name}: {line.strip()} has no comment"
    for key in _leaf_keys(raw):
        if not key.startswith(("hydra.", "defaults")):
            repeated = OmegaConf.select(raw, key) == OmegaConf.select(shared, key)
            assert not repeated, f"{path.name}: {key} repeats {base}.yaml"


def _leaf_keys(node, prefix: str = "") -> list[str]:
    if not isinstance(node, DictConfig):
        return [prefix.rstrip(".")]
    return [key for k in node for key in _leaf_keys(node._get_node(k), f"{prefix}{k}.")]


@pytest.mark.slow
def test_cpu_smoke_grpo_with_the_preference_reward(small_tokenizer, tmp_path, monkeypatch, capsys, restore_threads):
    import pandas as pd

    from harness.reporting import read_metrics, validation_accuracy
    from rm_r1 import smoke  # the command users run
    from rm_r1.judge.verdicts import TAIL_CHARS
    from rm_r1.training.reward import preference_reward

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "smoke"
    assert smoke.main(["--backend", "inprocess", "--output-dir", str(out), "trainer.total_training_steps=2",
                       "trainer.save_freq=-1",
                       f"trainer.validation_data_dir={tmp_path / 'val_dump'}"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    lines = [line.split() for line in printed.splitlines()]
    assert ["step", "reward", "train_acc", "val_acc", "resp_len", "kl", "step_s"] in lines
    rows = {line[0]: line for line in lines if len(line) == 7 and line[0] in ("0", "1", "2")}
    assert sorted(rows) == ["0", "1", "2"]
    assert "Done: step 2 of 2." in printed and "To go further: python -m rm_r1.smoke" in printed

    logged, bad = read_metrics(out / "metrics.jsonl")
    assert bad == 0 and sorted(logged) == [0, 1, 2]
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    sources = set(pd.read_parquet(out / "data" / "val.parquet")["data_source"])
    for step in (0, 2):
        metrics = logged[step]
        for source in sources:
            # preference accuracy on the held-out split, per source; score = 2 * acc - 1 (one compute_score call)
            acc = metrics[f"val-core/{source}/acc/mean@1"]
            assert 0.0 <= acc <= 1.0
            assert metrics[f"val-aux/{source}/score/mean@1"] == pytest.approx(2 * acc - 1)
        assert float(rows[str(step)][3]) == pytest.approx(validation_accuracy(metrics), abs=5e-3)
    for step in (1, 2):
        metrics = logged[step]
        assert {"actor/pg_loss", "actor/kl_loss", "critic/score/mean"} <= metrics.keys()
        # the table's training accuracy is the share of right verdicts: (mean reward + 1) / 2
        assert float(rows[str(step)][2]) == pytest.approx((metrics["critic/score/mean"] + 1) / 2, abs=5e-3)
    # sampled verdicts differ within groups: some +1 and some -1 rewards, so GRPO gets non-zero advantages
    assert any(logged[s]["critic/score/max"] == 1.0 and logged[s]["critic/score/min"] == -1.0 for s in (1, 2))
    assert any(logged[s]["critic/advantages/max"] > 0 for s in (1, 2))

    # Each dumped validation score is the preference reward of its own output. verl dumps the text without special
    # tokens while the reward read it with them, so compare where the whole text lies inside the 80-character tail.
    dumped = [json.loads(line) for line in (tmp_path / "val_dump" / "2.jsonl").read_text().splitlines()]
    assert len(dumped) == 4
    compared = 0
    for sample in dumped:
        assert sample["acc"] == (sample["score"] + 1) / 2
        if len(sample["output"]) + len(small_tokenizer.eos_token) <= TAIL_CHARS:
            assert sample["score"] == preference_reward(sample["output"], sample["gts"])
            compared += 1
    assert compared >= 1
