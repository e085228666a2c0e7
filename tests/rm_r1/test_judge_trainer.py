"""The judge's training-step metrics (rm_r1.judge_trainer) and the entry point that trains with them."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from verl import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils.metric import reduce_metrics

from rm_r1.judge_reward import EXTRA_KEYS
from rm_r1.judge_trainer import JudgeRewardTrainer, judge_step_metrics

# four samples, 4 calls each: all voted / 1 failed / none voted (neutral) / 2 failed
BATCH = {
    "judge_calls": np.array([4.0, 4.0, 4.0, 4.0]),
    "judge_votes": np.array([4.0, 3.0, 0.0, 2.0]),
    "judge_failed": np.array([0.0, 1.0, 4.0, 2.0]),
    "judge_agreement": np.array([1.0, 2 / 3, 0.0, 0.5]),
    "judge_truncated": np.array([0.0, 1.0, 0.0, 1.0]),
    "judge_neutral": np.array([0.0, 0.0, 1.0, 0.0]),
}
EXPECTED = {
    "judge/calls_total": 16.0,
    "judge/calls_per_sample": 4.0,
    "judge/failed_total": 7.0,
    "judge/failed_frac": 7 / 16,
    "judge/agreement_mean": 13 / 18,  # (1 + 2/3 + 1/2) / 3: the neutral sample has no agreement
    "judge/truncated_total": 2.0,
    "judge/neutral_frac": 0.25,
}


def test_step_metrics_of_a_batch():
    metrics = judge_step_metrics(BATCH)
    assert metrics.keys() == EXPECTED.keys()
    # sums of at most four terms of size <= 16: a few ulps at most
    assert metrics == pytest.approx(EXPECTED, rel=1e-12)
    # the rollout hands the keys over as object arrays (one Python float per sample)
    as_objects = {key: np.array(list(values), dtype=object) for key, values in BATCH.items()}
    assert judge_step_metrics(as_objects) == metrics


def test_a_batch_where_no_call_voted():
    batch = {**BATCH, "judge_votes": np.zeros(4), "judge_failed": np.full(4, 4.0), "judge_agreement": np.zeros(4)}
    batch["judge_neutral"] = np.ones(4)
    metrics = judge_step_metrics(batch)
    assert metrics["judge/agreement_mean"] == 0.0 and metrics["judge/neutral_frac"] == 1.0
    assert metrics["judge/failed_frac"] == 1.0


def test_a_batch_without_judge_keys_gives_no_metrics():
    assert judge_step_metrics({}) == {}
    assert judge_step_metrics({"acc": np.array([1.0, 0.0]), "data_source": np.array(["a", "b"], dtype=object)}) == {}
    assert judge_step_metrics({key: np.array([]) for key in EXTRA_KEYS}) == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"judge_neutral": None}, r"has judge keys .* but not \['judge_neutral'\]"),
        ({"judge_failed": np.array(["x", "1", "0", "2"], dtype=object)}, "'judge_failed' must hold one number"),
        ({"judge_agreement": np.array([1.0, np.nan, 0.0, 0.5])}, "'judge_agreement' holds a value that is not"),
        ({"judge_calls": np.array([4.0, 4.0])}, "one value per sample each"),
    ],
)
def test_bad_judge_keys_are_named(change, message):
    batch = {**BATCH, **change}
    batch = {key: value for key, value in batch.items() if value is not None}
    with pytest.raises(ValueError, match=message):
        judge_step_metrics(batch)


def test_the_trainer_adds_the_metrics_that_verl_reduces_into_the_step(monkeypatch):
    actor_metrics = {"actor/pg_loss": [0.25, 0.75], "actor/grad_norm_max": [1.0, 3.0], "perf/mfu/actor": 0.5}

    def update_actor(self, batch):  # what verl's _update_actor returns (verl/trainer/ppo/ray_trainer.py:1370-1376)
        return DataProto.from_single_dict(data={}, meta_info={"metrics": dict(actor_metrics)})

    monkeypatch.setattr(RayPPOTrainer, "_update_actor", update_actor)
    batch = DataProto.from_dict(tensors={"responses": torch.zeros(4, 2, dtype=torch.long)}, non_tensors=BATCH)
    trainer = object.__new__(JudgeRewardTrainer)  # the hook needs nothing the constructor builds
    step = reduce_metrics(trainer._update_actor(batch).meta_info["metrics"])  # as fit() does
    assert {key: step[key] for key in EXPECTED} == judge_step_metrics(BATCH)
    assert step["actor/pg_loss"] == 0.5 and step["actor/grad_norm_max"] == 3.0 and step["perf/mfu/actor"] == 0.5


def test_entry_point_trains_the_judge_reward_trainer(monkeypatch, tmp_path):
    import ray
    import verl.trainer.main_ppo
    from hydra.core.global_hydra import GlobalHydra
    from verl.trainer.main_ppo_v0 import BaseTaskRunner

    from rm_r1 import judge_main

    started = []
    monkeypatch.setattr(
        verl.trainer.main_ppo, "run_ppo", lambda config, task_runner_class: started.append((config, task_runner_class))
    )
    monkeypatch.chdir(tmp_path)
    argv = ["--config-name", "external_judge", "reward.custom_reward_function.reward_kwargs.base_url=http://j:8000/v1"]
    monkeypatch.setattr(sys, "argv", ["rm_r1.judge_main", *argv])
    try:
        judge_main.main()
    finally:
        GlobalHydra.instance().clear()
    ((config, runner),) = started
    runner_cls = runner.__ray_actor_class__  # run_ppo gets the Ray actor class
    assert issubclass(runner_cls, BaseTaskRunner) and runner_cls.__name__ == "JudgeRewardTaskRunner"
    assert runner_cls.trainer_cls is JudgeRewardTrainer
    shipped = ray.cloudpickle.loads(ray.cloudpickle.dumps(runner_cls))  # how Ray sends it to the actor's process
    assert shipped.trainer_cls is JudgeRewardTrainer and shipped.__name__ == "JudgeRewardTaskRunner"
    assert config.trainer.default_local_dir.startswith(str(tmp_path))  # checked and resolved before Ray
