"""Fixtures for the CPU backend tests: a saved tiny model folder, composed configs, a toy verl dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

TOY_REWARD = Path(__file__).with_name("toy_reward.py")


@pytest.fixture(scope="package", autouse=True)
def single_torch_thread():
    """Tiny models run several times faster on one thread than on oversubscribed cores; restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(small_tokenizer, tmp_path_factory) -> Path:
    """A tiny random Qwen2 saved with its tokenizer (what ``actor_rollout_ref.model.path`` points at)."""
    from offline_models import load_tiny_qwen2

    path = tmp_path_factory.mktemp("cpu-backend-tiny")
    load_tiny_qwen2(small_tokenizer, path)
    return path


def toy_rows(count: int, split: str) -> list[dict]:
    """Rows in verl's RLHFDataset format."""
    return [
        {
            "data_source": "toy",
            "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": str(2 * i)},
            "extra_info": {"index": i, "split": split},
        }
        for i in range(count)
    ]


@pytest.fixture(scope="session")
def toy_parquet(tmp_path_factory) -> tuple[Path, Path]:
    """(train, val) parquet files of toy arithmetic prompts."""
    folder = tmp_path_factory.mktemp("toy-data")
    train, val = folder / "train.parquet", folder / "val.parquet"
    pd.DataFrame(toy_rows(8, "train")).to_parquet(train)
    pd.DataFrame(toy_rows(4, "test")).to_parquet(val)
    return train, val


def base_overrides(model_dir: Path, train: Path | None = None, val: Path | None = None) -> list[str]:
    """GRPO on the tiny model with short lengths, the toy reward and small batches."""
    overrides = [
        "algorithm.adv_estimator=grpo",
        f"actor_rollout_ref.model.path={model_dir}",
        "data.max_prompt_length=64",
        "data.max_response_length=32",
        "data.train_batch_size=4",
        "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.actor.optim.lr=1e-3",
        f"reward.custom_reward_function.path={TOY_REWARD}",
        "reward.custom_reward_function.name=compute_score",
    ]
    if train is not None:
        overrides += [f"data.train_files={train}", f"data.val_files={val}"]
    return overrides


@pytest.fixture(scope="session")
def grpo_config(tiny_model_dir):
    """A composed CPU config (actor_rollout_ref.actor.optim.total_training_steps filled in as the trainer does)."""
    from cpu_backend import compose_cpu_config

    config = compose_cpu_config(overrides=base_overrides(tiny_model_dir))
    config.actor_rollout_ref.actor.optim.total_training_steps = 10
    return config
