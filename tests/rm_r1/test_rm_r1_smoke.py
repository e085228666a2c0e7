"""The RM-R1 recipes: the paper's settings in configs/rm_r1, the launchers' Hydra overrides, and a CPU smoke run of
GRPO with the preference reward (verl's real RayPPOTrainer.fit() on the project's CPU backend)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "rm_r1"
RECIPES = ROOT / "recipes" / "rm_r1"
DATA = Path(__file__).parent / "data"

# RM_R1.md §4. GRPO launcher: (model, data family, learning rate, nodes); SFT launcher: (model, learning rate).
GRPO = {
    "run_grpo_instruct_7b.sh": (str(ROOT / "checkpoints/rm_r1/sft_instruct_7b/final_hf"), "instruct", 1e-6, 1),
    "run_grpo_instruct_14b.sh": (str(ROOT / "checkpoints/rm_r1/sft_instruct_14b/final_hf"), "instruct", 7e-7, 2),
    "run_grpo_instruct_32b.sh": (str(ROOT / "checkpoints/rm_r1/sft_instruct_32b/final_hf"), "instruct", 5e-7, 4),
    "run_grpo_distill_7b.sh": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "reasoning", 1e-6, 1),
    "run_grpo_distill_14b.sh": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "reasoning", 1e-6, 2),
    "run_grpo_distill_32b.sh": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "reasoning", 8e-7, 4),
}
SFT = {
    "run_sft_instruct_7b.sh": ("Qwen/Qwen2.5-7B-Instruct", 5e-6),
    "run_sft_instruct_14b.sh": ("Qwen/Qwen2.5-14B-Instruct", 3e-6),
    "run_sft_instruct_32b.sh": ("Qwen/Qwen2.5-32B-Instruct", 2e-6),
}
VARIABLES = ("MODEL_PATH", "TRAIN_FILE", "VAL_FILE", "GPUS_PER_NODE", "NNODES", "LOGGER", "OUTPUT_DIR")


def _compose(name: str, overrides: list[str] = ()):
    with initialize_config_dir(str(CONFIGS), version_base=None):
        return compose(name, overrides=list(overrides))


def test_grpo_config_has_the_papers_settings():
    cfg = _compose("grpo")
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert (cfg.data.train_batch_size, actor.ppo_mini_batch_size, rollout.n) == (1024, 128, 7)
    assert (rollout.temperature, rollout.top_p) == (1.0, 1.0)
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (True, 0.001, "low_var_kl")
    assert cfg.algorithm.use_kl_in_reward is False and cfg.algorithm.adv_estimator == "grpo"
    assert (actor.clip_ratio, actor.entropy_coeff) == (0.2, 0)
    assert (cfg.data.max_prompt_length, cfg.data.max_response_length) == (4096, 8192)
    assert (cfg.trainer.total_epochs, rollout.tensor_model_parallel_size) == (1, 4)
    assert 0.4 <= rollout.gpu_memory_utilization <= 0.5
    assert rollout.val_kwargs.do_sample is False  # one greedy verdict per held-out pair
    assert cfg.trainer.val_before_train and cfg.trainer.test_freq > 0 and cfg.data.val_files
    reward = cfg.reward
    assert (reward.custom_reward_function.path, reward.custom_reward_function.name) == ("pkg://rm_r1.reward",
                                                                                        "compute_score")
    assert reward.custom_reward_function.reward_kwargs.rule == "strict_tail"
    assert (reward.reward_manager.source, reward.reward_manager.name, reward.reward_manager.module.path) == (
        "importlib", "SpecialTokenTextRewardManager", "pkg://rm_r1.reward")


def test_sft_config_has_the_papers_settings():
    cfg = _compose("sft")
    assert (cfg.data.train_batch_size, cfg.trainer.total_epochs, cfg.data.max_length) == (128, 1, 12288)
    assert (cfg.optim.lr, cfg.optim.lr_scheduler_type, cfg.optim.lr_warmup_steps_ratio) == (5e-6, "cosine", 0.03)
    assert cfg.data.messages_key == "messages" and cfg.data.truncation == "error"
    assert "hf_model" in cfg.checkpoint.save_contents


def _run_launcher(name: str, stub_dir: Path, env: dict[str, str], *args: str) -> list[str]:
    """Run a launcher with ``python`` / ``torchrun`` replaced by a stub that records its arguments."""
    record = stub_dir / "argv.json"
    record.unlink(missing_ok=True)
    fake_checkpoint = (
        "import json, sys, pathlib\n"
        "args = sys.argv[1:]\n"
        f"pathlib.Path({str(record)!r}).write_text(json.dumps(args))\n"
        "out = [a.split('=', 1)[1] for a in args if a.startswith('trainer.default_local_dir=')][0]\n"
        "if sys.argv[0].endswith('torchrun'):\n"
        "    pathlib.Path(out, 'global_step_3', 'huggingface').mkdir(parents=True)\n"
        "    pathlib.Path(out, 'latest_checkpointed_iteration.txt').write_text('3')\n"
    )
    for tool in ("python", "torchrun"):
        path = stub_dir / tool
        path.write_text(f"#!{sys.executable}\n{fake_checkpoint}")
        path.chmod(0o755)
    done = subprocess.run(["bash", str(RECIPES / name), *args], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{stub_dir}:{os.environ['PATH']}", **env})
    assert done.returncode == 0, done.stderr
    return json.loads(record.read_text())


def _hydra_overrides(argv: list[str], config_name: str) -> list[str]:
    assert argv[argv.index("--config-path") + 1] == str(CONFIGS)
    assert argv[argv.index("--config-name") + 1] == config_name
    return argv[argv.index("--config-name") + 2:]


@pytest.mark.parametrize("name", [*GRPO, *SFT])
def test_launcher_help_lists_the_variables(name):
    out = subprocess.run(["bash", str(RECIPES / name), "--help"], capture_output=True, text=True, check=True).stdout
    for variable in VARIABLES:
        assert variable in out
    assert ("ray start --head" in out and "ray start --address" in out) if name in GRPO else "NODE_RANK" in out


@pytest.mark.parametrize("name", GRPO)
def test_grpo_launchers_compose_the_papers_setting(name, tmp_path):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    model, family, lr, nodes = GRPO[name]
    argv = _run_launcher(name, tmp_path, {}, "trainer.test_freq=5")
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    cfg = _compose("grpo", _hydra_overrides(argv, "grpo"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert cfg.actor_rollout_ref.model.path == model
    assert cfg.data.train_files == str(ROOT / "data/rm_r1" / family / "train.parquet")
    assert cfg.data.val_files == str(ROOT / "data/rm_r1" / family / "val.parquet")
    assert (cfg.actor_rollout_ref.actor.optim.lr, cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (lr, nodes, 8)
    assert cfg.trainer.experiment_name == name.removeprefix("run_").removesuffix(".sh")
    assert list(cfg.trainer.logger) == ["console", "wandb"] and cfg.trainer.test_freq == 5
    assert cfg.actor_rollout_ref.actor.fsdp_config.optimizer_offload is name.endswith("32b.sh")

    argv = _run_launcher(name, tmp_path, {"MODEL_PATH": "/m", "NNODES": "3", "GPUS_PER_NODE": "4",
                                          "LOGGER": "[console]", "OUTPUT_DIR": "/out", "VERDICT_RULE": "last_answer",
                                          "TRAIN_FILE": "/t.parquet", "VAL_FILE": "/v.parquet"})
    cfg = _compose("grpo", _hydra_overrides(argv, "grpo"))
    assert (cfg.actor_rollout_ref.model.path, cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == ("/m", 3, 4)
    assert (cfg.data.train_files, cfg.data.val_files, cfg.trainer.default_local_dir) == ("/t.parquet", "/v.parquet",
                                                                                         "/out")
    assert list(cfg.trainer.logger) == ["console"]
    assert cfg.reward.custom_reward_function.reward_kwargs.rule == "last_answer"


@pytest.mark.parametrize("name", SFT)
def test_sft_launchers_compose_and_link_the_final_model(name, tmp_path):
    model, lr = SFT[name]
    out = tmp_path / "ckpt"
    argv = _run_launcher(name, tmp_path, {"OUTPUT_DIR": str(out), "NNODES": "2", "NODE_RANK": "0"})
    assert "--nnodes=2" in argv and "--nproc_per_node=8" in argv and "verl.trainer.sft_trainer" in argv
    cfg = _compose("sft", _hydra_overrides(argv, "sft"))
    assert (cfg.model.path, cfg.optim.lr, cfg.trainer.nnodes) == (model, lr, 2)
    assert cfg.data.train_files == str(ROOT / "data/rm_r1/sft/train.parquet")
    assert cfg.engine.optimizer_offload is name.endswith("32b.sh")
    assert (out / "final_hf").resolve() == (out / "global_step_3" / "huggingface").resolve()


# ---------------------------------------------------------------------------------------------------------------------
# CPU smoke: a few GRPO steps on the bundled sample pairs with a tiny model

SMOKE_PROMPT = "Compare the two replies and say which is better. End with {verdict_a} or {verdict_b}.\n"


def _prepare(tokenizer, out: Path, prompt_file: Path, budget: int) -> None:
    spec = importlib.util.spec_from_file_location("prepare_rm_r1_data", ROOT / "scripts" / "prepare_rm_r1_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--output-dir", str(out), "--tokenizer", "unused", "--family", "instruct", "--val-size", "4",
                 "--prompt-file", str(prompt_file), "--prompt-budget", str(budget),
                 "--skywork", str(DATA / "skywork.jsonl"), "--code", str(DATA / "code.jsonl"),
                 "--math", str(DATA / "math.parquet")], tokenizer=tokenizer)


@pytest.fixture
def one_torch_thread():
    """A tiny model runs several times faster on one thread than on oversubscribed cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_cpu_smoke_grpo_with_the_preference_reward(small_tokenizer, tmp_path, monkeypatch, one_torch_thread):
    import pandas as pd
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from verl.utils.tracking import Tracking

    from cpu_backend import build_cpu_trainer, compose_cpu_config, warm_start
    from offline_models import load_tiny_qwen2
    from rm_r1.reward import TAIL_CHARS, VERDICT_TAGS, preference_reward

    # A one-line judge prompt (a user prompt file) keeps the CPU forward passes short; the real prompts are tested
    # in test_prompts.py and test_prepare_data.py.
    prompt_file = tmp_path / "smoke_prompt.txt"
    prompt_file.write_text(SMOKE_PROMPT)
    budget = 512
    _prepare(small_tokenizer, tmp_path / "data", prompt_file, budget)
    train = pd.read_parquet(tmp_path / "data" / "train.parquet")
    # Teach the random model the verdict format, both verdicts for every prompt, so that its sampled verdicts differ
    # within a group and GRPO has something to compare.
    examples = [(list(p), VERDICT_TAGS[side]) for p in train["prompt"] for side in ("A", "B")]
    load_tiny_qwen2(small_tokenizer, tmp_path / "tiny")
    model_dir = warm_start(tmp_path / "tiny", tmp_path / "judge", small_tokenizer, examples, steps=30, lr=1e-2)

    logged: list[tuple[int, dict]] = []
    monkeypatch.setattr(Tracking, "log", lambda self, data, step, backend=None: logged.append((step, dict(data))))
    config = compose_cpu_config("grpo", config_dir=str(CONFIGS), overrides=[
        f"actor_rollout_ref.model.path={model_dir}",
        f"data.train_files={tmp_path / 'data' / 'train.parquet'}",
        f"data.val_files={tmp_path / 'data' / 'val.parquet'}",
        f"data.max_prompt_length={budget}",
        "data.max_response_length=24",
        "data.train_batch_size=4",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "trainer.total_training_steps=2",
        "trainer.test_freq=2",
        "trainer.save_freq=-1",
        f"trainer.default_local_dir={tmp_path / 'ckpt'}",
        f"trainer.validation_data_dir={tmp_path / 'val_dump'}",
    ])
    trainer = build_cpu_trainer(RayPPOTrainer, config, small_tokenizer)
    trainer.fit()

    assert [step for step, _ in logged] == [0, 1, 2]
    sources = set(pd.read_parquet(tmp_path / "data" / "val.parquet")["data_source"])
    for step in (0, 2):
        metrics = logged[step][1]
        for source in sources:
            # preference accuracy on the held-out split, per source; score = 2 * acc - 1 (one compute_score call)
            acc = metrics[f"val-core/{source}/acc/mean@1"]
            assert 0.0 <= acc <= 1.0
            assert metrics[f"val-aux/{source}/score/mean@1"] == pytest.approx(2 * acc - 1)
    for step in (1, 2):
        metrics = logged[step][1]
        assert {"actor/pg_loss", "actor/kl_loss", "critic/score/mean"} <= metrics.keys()
        assert set(trainer.config.reward.custom_reward_function.reward_kwargs) == {"rule"}
    # sampled verdicts differ within groups: some +1 and some -1 rewards, so GRPO gets non-zero advantages
    assert any(m["critic/score/max"] == 1.0 and m["critic/score/min"] == -1.0 for _, m in logged[1:])
    assert any(m["critic/advantages/max"] > 0 for _, m in logged[1:])

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
