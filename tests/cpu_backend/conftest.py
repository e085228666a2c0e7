"""Fixtures for the CPU backend tests: a saved tiny model folder, composed configs, a toy verl dataset, and a padded
batch with an independent per-sequence log-prob computation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.utils.model import compute_position_id_with_mask
from verl.workers.utils.padding import left_right_2_no_padding

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


BATCH, PROMPT, RESPONSE = 4, 6, 5


def padded_batch(vocab: int, temperature: float, seed: int = 0) -> DataProto:
    """Left-padded prompts and right-padded responses of different lengths, as verl's rollout lays them out."""
    gen = torch.Generator().manual_seed(seed)
    prompts = torch.randint(0, vocab, (BATCH, PROMPT), generator=gen)
    responses = torch.randint(0, vocab, (BATCH, RESPONSE), generator=gen)
    prompt_mask = torch.ones(BATCH, PROMPT, dtype=torch.long)
    prompt_mask[0, :2] = 0
    prompt_mask[2, :1] = 0
    response_mask = torch.ones(BATCH, RESPONSE, dtype=torch.long)
    response_mask[1, 3:] = 0
    response_mask[3, 1:] = 0
    attention_mask = torch.cat([prompt_mask, response_mask], dim=1)
    return DataProto.from_single_dict(
        {
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": attention_mask,
            "position_ids": compute_position_id_with_mask(attention_mask),
            "response_mask": response_mask,
        },
        meta_info={"temperature": temperature},
    )


def no_padding(batch: DataProto, **non_tensor):
    """The no-padding TensorDict verl's trainer sends its workers, with ``non_tensor`` entries assigned."""
    data = left_right_2_no_padding(batch.to_tensordict())
    tu.assign_non_tensor(data, **non_tensor)
    return data


def reference_log_probs(model, batch: DataProto, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain per-sequence forward without padding: log_softmax(logits / T) of each response token, and the entropy."""
    size, length = batch.batch["response_mask"].shape
    log_probs = torch.zeros(size, length, dtype=torch.float64)
    entropy = torch.zeros(size, length, dtype=torch.float64)
    n_prompt_columns = batch.batch["prompts"].shape[1]
    for i in range(size):
        mask = batch.batch["attention_mask"][i].bool()
        ids = batch.batch["input_ids"][i][mask]
        n_prompt = int(batch.batch["attention_mask"][i, :n_prompt_columns].sum())
        n_response = int(batch.batch["response_mask"][i].sum())
        with torch.no_grad():
            logp = torch.log_softmax(model(ids[None]).logits[0].double() / temperature, dim=-1)
        rows = logp[n_prompt - 1 : n_prompt + n_response - 1]
        log_probs[i, :n_response] = rows.gather(-1, ids[n_prompt:, None])[:, 0]
        entropy[i, :n_response] = -(rows.exp() * rows).sum(-1)
    return log_probs, entropy
