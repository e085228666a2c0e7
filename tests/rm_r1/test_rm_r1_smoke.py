"""The RM-R1 recipes: the paper's settings in configs/rm_r1 (one config per setting on a shared base), the launchers'
Hydra overrides, and a CPU smoke run of GRPO with the preference reward (verl's real RayPPOTrainer.fit() on the
project's CPU backend)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[2]
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
        "pkg://rm_r1.reward",
        "compute_score",
    )
    assert reward.custom_reward_function.reward_kwargs.rule == "strict_tail"
    assert (reward.reward_manager.source, reward.reward_manager.name, reward.reward_manager.module.path) == (
        "importlib",
        "SpecialTokenTextRewardManager",
        "pkg://rm_r1.reward",
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


@pytest.mark.parametrize("name", SFT)
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


def _run_launcher(setting: str, stub_dir: Path, env: dict[str, str], *args: str) -> tuple[list[str], Path]:
    """Run ``run_<setting>.sh`` with the training commands (``python -m``, ``torchrun``) replaced by a stub that records
    its arguments and working directory and, for torchrun, writes a checkpoint where the composed config puts it.
    ``python -c`` (the launchers reading their config) runs for real."""
    record = stub_dir / "argv.json"
    record.unlink(missing_ok=True)
    stub = (
        "import json, os, pathlib, sys\n"
        "args = sys.argv[1:]\n"
        "if args[0] == '-c':\n"
        f"    os.execv({sys.executable!r}, [{sys.executable!r}, *args])\n"
        f"pathlib.Path({str(record)!r}).write_text(json.dumps({{'argv': args, 'cwd': os.getcwd()}}))\n"
        "if sys.argv[0].endswith('torchrun'):\n"
        "    from hydra import compose, initialize_config_dir\n"
        "    name = args.index('--config-name')\n"
        "    with initialize_config_dir(args[args.index('--config-path') + 1], version_base=None):\n"
        "        out = compose(args[name + 1], overrides=args[name + 2:]).trainer.default_local_dir\n"
        "    pathlib.Path(out, 'global_step_3', 'huggingface').mkdir(parents=True)\n"
        "    pathlib.Path(out, 'latest_checkpointed_iteration.txt').write_text('3')\n"
    )
    for tool in ("python", "torchrun"):
        path = stub_dir / tool
        path.write_text(f"#!{sys.executable}\n{stub}")
        path.chmod(0o755)
    done = subprocess.run(
        ["bash", str(RECIPES / f"run_{setting}.sh"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{stub_dir}:{os.environ['PATH']}", **env},
    )
    assert done.returncode == 0, done.stderr
    recorded = json.loads(record.read_text())
    return recorded["argv"], Path(recorded["cwd"])


def composed_from(argv: list[str]):
    """The config a recorded trainer command line composes: its --config-path/--config-name and the overrides after."""
    name = argv.index("--config-name")
    with initialize_config_dir(argv[argv.index("--config-path") + 1], version_base=None):
        return compose(argv[name + 1], overrides=argv[name + 2 :])


@pytest.mark.parametrize("setting", [*GRPO, *SFT])
def test_launcher_help_lists_the_variables_and_the_settings_defaults(setting):
    out = subprocess.run(
        ["bash", str(RECIPES / f"run_{setting}.sh"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for variable in VARIABLES:
        assert variable in out
    assert ("ray start --head" in out and "ray start --address" in out) if setting in GRPO else "NODE_RANK" in out
    # the defaults shown are the setting config's values
    model, *_ = GRPO.get(setting) or SFT[setting]
    assert f"configs/rm_r1/{setting}.yaml" in out and f"[{model}]" in out
    nodes = GRPO[setting][3] if setting in GRPO else 1
    assert re.search(rf"NNODES .*\[{nodes}\]", out) and f"[checkpoints/rm_r1/{setting}]" in out


@pytest.mark.parametrize("setting", GRPO)
def test_grpo_launchers_compose_the_papers_setting(setting, tmp_path):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    model, family, lr, nodes = GRPO[setting]
    argv, cwd = _run_launcher(setting, tmp_path, {}, "trainer.test_freq=5")
    # the launcher only names the setting's config: every value comes from the YAML (one place for each)
    assert argv == [
        "-m",
        "verl.trainer.main_ppo",
        "--config-path",
        str(CONFIGS),
        "--config-name",
        setting,
        "trainer.test_freq=5",
    ]
    assert cwd == ROOT  # the configs' relative paths are relative to the repository root
    cfg = composed_from(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert cfg.actor_rollout_ref.model.path == model
    assert (cfg.data.train_files, cfg.data.val_files) == (
        f"data/rm_r1/{family}/train.parquet",
        f"data/rm_r1/{family}/val.parquet",
    )
    assert (cfg.actor_rollout_ref.actor.optim.lr, cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (lr, nodes, 8)
    assert cfg.trainer.experiment_name == setting and cfg.trainer.default_local_dir == f"checkpoints/rm_r1/{setting}"
    assert list(cfg.trainer.logger) == ["console", "wandb"] and cfg.trainer.test_freq == 5
    assert cfg.reward.custom_reward_function.reward_kwargs.rule == "strict_tail"
    assert cfg.actor_rollout_ref.actor.fsdp_config.optimizer_offload is setting.endswith("32b")

    argv, _ = _run_launcher(
        setting,
        tmp_path,
        {
            "MODEL_PATH": "/m",
            "NNODES": "3",
            "GPUS_PER_NODE": "4",
            "LOGGER": "[console]",
            "OUTPUT_DIR": "/out",
            "VERDICT_RULE": "last_answer",
            "TRAIN_FILE": "/t.parquet",
            "VAL_FILE": "/v.parquet",
        },
    )
    cfg = composed_from(argv)
    assert (cfg.actor_rollout_ref.model.path, cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == ("/m", 3, 4)
    assert (cfg.data.train_files, cfg.data.val_files, cfg.trainer.default_local_dir) == (
        "/t.parquet",
        "/v.parquet",
        "/out",
    )
    assert list(cfg.trainer.logger) == ["console"]
    assert cfg.reward.custom_reward_function.reward_kwargs.rule == "last_answer"


@pytest.mark.parametrize("setting", SFT)
def test_sft_launchers_compose_and_link_the_final_model(setting, tmp_path):
    model, lr = SFT[setting]
    out = tmp_path / "ckpt"
    argv, cwd = _run_launcher(setting, tmp_path, {"OUTPUT_DIR": str(out), "NNODES": "2", "NODE_RANK": "0"})
    # torchrun's layout is the composed config's: the setting's values, the variables, then the arguments
    assert argv[:5] == [
        "--nnodes=2",
        "--nproc_per_node=8",
        "--node_rank=0",
        "--master_addr=127.0.0.1",
        "--master_port=29500",
    ]
    assert argv[5:11] == ["-m", "verl.trainer.sft_trainer", "--config-path", str(CONFIGS), "--config-name", setting]
    assert cwd == ROOT
    cfg = composed_from(argv)
    assert (cfg.model.path, cfg.optim.lr, cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (model, lr, 2, 8)
    assert cfg.data.train_files == "data/rm_r1/sft/train.parquet" and cfg.trainer.default_local_dir == str(out)
    assert cfg.engine.optimizer_offload is setting.endswith("32b")
    assert (out / "final_hf").resolve() == (out / "global_step_3" / "huggingface").resolve()

    (tmp_path / "again").mkdir()
    argv, _ = _run_launcher(
        setting,
        tmp_path / "again",
        {},
        "trainer.n_gpus_per_node=4",
        f"trainer.default_local_dir={tmp_path / 'from_args'}",
    )
    assert argv[:2] == ["--nnodes=1", "--nproc_per_node=4"]
    assert (tmp_path / "from_args" / "final_hf").resolve() == (tmp_path / "from_args/global_step_3/huggingface")


# ---------------------------------------------------------------------------------------------------------------------
# CPU smoke: python -m rm_r1.smoke, a few GRPO steps on the bundled sample pairs with a tiny judge


@pytest.fixture
def restore_threads():
    """The smoke command sets torch to one thread (right for a tiny model on 2 cores); restore it afterwards."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_cpu_smoke_grpo_with_the_preference_reward(small_tokenizer, tmp_path, monkeypatch, capsys, restore_threads):
    import pandas as pd

    from rlpr.reporting import read_metrics
    from rm_r1 import smoke
    from rm_r1.reward import TAIL_CHARS, preference_reward

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "smoke"
    assert smoke.main(["--output-dir", str(out), "trainer.total_training_steps=2", "trainer.save_freq=-1",
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
        assert float(rows[str(step)][3]) == pytest.approx(smoke.validation_accuracy(metrics), abs=5e-3)
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
