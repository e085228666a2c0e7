"""The judge's training-step metrics (rm_r1.as_reward.trainer) and the entry point that trains with them."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
import torch
from verl import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils.metric import reduce_metrics

from rm_r1.as_reward.reward import DETAIL_KEY, EXTRA_KEYS
from rm_r1.as_reward.trainer import JudgeFailure, JudgeRewardTrainer, judge_step_metrics
from tests.helpers.params import fast_and_slow

URL = "http://judge:8000/v1/chat/completions"


def detail(failures: dict, latencies: list, span: list, endpoint: str = URL) -> str:
    return json.dumps({"endpoint": endpoint, "failures": failures, "latencies": latencies, "span": span})


# four samples, 4 calls each: all voted / 1 failed / none voted (neutral) / 2 failed
BATCH = {
    "judge_calls": np.array([4.0, 4.0, 4.0, 4.0]),
    "judge_votes": np.array([4.0, 3.0, 0.0, 2.0]),
    "judge_failed": np.array([0.0, 1.0, 4.0, 2.0]),
    "judge_agreement": np.array([1.0, 2 / 3, 0.0, 0.5]),
    "judge_truncated": np.array([0.0, 1.0, 0.0, 1.0]),
    "judge_neutral": np.array([0.0, 0.0, 1.0, 0.0]),
    "judge_cache_hits": np.array([0.0, 1.0, 0.0, 0.0]),
    DETAIL_KEY: np.array(
        [
            detail({}, [0.1, 0.2, 0.3, 0.4], [100.0, 101.0]),
            detail({"http_500": [1, "HTTP 500 from the judge"]}, [0.5, 0.6, 0.7], [100.5, 102.0]),
            detail({"no_verdict": [2, "no verdict in 'x'"], "timeout": [2, "ReadTimeout"]}, [1.0] * 4, [101.0, 104.0]),
            detail({"no_verdict": [2, "no verdict in 'y'"]}, [0.2] * 4, [100.0, 103.0]),
        ],
        dtype=object,
    ),
}
EXPECTED = {
    "judge/calls_total": 16.0,
    "judge/calls_per_sample": 4.0,
    "judge/failed_total": 7.0,
    "judge/failed_frac": 7 / 16,
    "judge/agreement_mean": 13 / 18,  # (1 + 2/3 + 1/2) / 3: the neutral sample has no agreement
    "judge/truncated_total": 2.0,
    "judge/neutral_frac": 0.25,
    "judge/cache_hits": 1.0,
    "judge/fail/http_500": 1.0,
    "judge/fail/no_verdict": 4.0,
    "judge/fail/timeout": 2.0,
    # the 15 latencies sorted: .1 .2 .2 .2 .2 .2 .3 [.4] .5 .6 .7 1 1 1 1; p50 = the 8th, p95 between the 14th and 15th
    "judge/latency_p50": 0.4,
    "judge/latency_p95": 1.0,
    "judge/requests_per_s": 15 / (104.0 - 100.0),
}


def test_step_metrics_of_a_batch():
    metrics = judge_step_metrics(BATCH)
    assert metrics.keys() == EXPECTED.keys()
    # sums of at most four terms of size <= 16: a few ulps at most
    assert metrics == pytest.approx(EXPECTED, rel=1e-12)
    # the rollout hands the keys over as object arrays (one Python float per sample)
    as_objects = {key: np.array(list(values), dtype=object) for key, values in BATCH.items()}
    as_objects[DETAIL_KEY] = np.array(list(BATCH[DETAIL_KEY]))  # or a numpy string array
    assert judge_step_metrics(as_objects) == metrics


def test_a_batch_where_no_call_voted():
    batch = {**BATCH, "judge_votes": np.zeros(4), "judge_failed": np.full(4, 4.0), "judge_agreement": np.zeros(4)}
    batch["judge_neutral"] = np.ones(4)
    del batch[DETAIL_KEY]
    metrics = judge_step_metrics(batch)
    assert metrics["judge/agreement_mean"] == 0.0 and metrics["judge/neutral_frac"] == 1.0
    assert metrics["judge/failed_frac"] == 1.0


def test_a_batch_without_judge_keys_gives_no_metrics():
    assert judge_step_metrics({}) == {}
    assert judge_step_metrics({"acc": np.array([1.0, 0.0]), "data_source": np.array(["a", "b"], dtype=object)}) == {}
    assert judge_step_metrics({key: np.array([]) for key in EXTRA_KEYS}) == {}
    with pytest.raises(ValueError, match=f"{DETAIL_KEY!r} of sample 0 is not"):
        judge_step_metrics({**BATCH, DETAIL_KEY: np.array(["{}"] * 4)})


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
    trainer = _trainer()
    step = reduce_metrics(trainer._update_actor(batch).meta_info["metrics"])  # as fit() does
    assert {key: step[key] for key in EXPECTED} == judge_step_metrics(BATCH)
    assert step["actor/pg_loss"] == 0.5 and step["actor/grad_norm_max"] == 3.0 and step["perf/mfu/actor"] == 0.5


def _trainer(**reward_kwargs) -> JudgeRewardTrainer:
    from omegaconf import OmegaConf

    trainer = object.__new__(JudgeRewardTrainer)  # the hooks need nothing else the constructor builds
    trainer.config = OmegaConf.create({"reward": {"custom_reward_function": {"reward_kwargs": reward_kwargs}}})
    trainer.global_steps = 1
    return trainer


def _step_batch(failed: list[float], kinds: list[dict]) -> DataProto:
    n = len(failed)
    columns = {
        **{key: np.zeros(n) for key in EXTRA_KEYS},
        "judge_calls": np.full(n, 2.0),
        "judge_failed": np.array(failed),
        "judge_votes": 2.0 - np.array(failed),
        DETAIL_KEY: np.array([detail(k, [0.1], [0.0, 1.0]) for k in kinds], dtype=object),
    }
    return DataProto.from_dict(tensors={"responses": torch.zeros(n, 2, dtype=torch.long)}, non_tensors=columns)


def test_a_failing_judge_stops_training_after_max_failed_steps(monkeypatch, caplog):
    updates = []

    def update_actor(self, batch):
        updates.append(self.global_steps)
        return DataProto.from_single_dict(data={}, meta_info={"metrics": {}})

    monkeypatch.setattr(RayPPOTrainer, "_update_actor", update_actor)
    refused = {"http_400": [2, "HTTP 400 from judge: prompt too long"]}
    garbled = {"malformed": [1, "malformed chat completion: '<html>'"]}
    bad = _step_batch([2.0, 2.0, 1.0], [refused, refused, garbled])  # 5 of 6 calls failed: 83% > 50%
    good = _step_batch([0.0, 1.0, 0.0], [{}, garbled, {}])  # 1 of 6
    trainer = _trainer(base_url="http://judge:8000/v1", model="m", max_failed_frac=0.5, max_failed_steps=2)
    for step, batch in enumerate([bad, good, bad], start=1):  # a good step in between: the count starts again
        trainer.global_steps = step
        trainer._update_actor(batch)
    trainer.global_steps = 4
    with caplog.at_level(logging.WARNING, logger="rm_r1.as_reward.trainer"), pytest.raises(JudgeFailure) as stop:
        trainer._update_actor(bad)
    message = str(stop.value)
    assert URL in message and "83%" in message and "(5 of 6)" in message and "2 training steps in a row" in message
    assert "most frequent failure: http_400 (4 calls), e.g.: HTTP 400 from judge: prompt too long" in message
    assert updates == [1, 2, 3]  # the stopping step updates nothing
    # one log line per failure kind of the step, with its example
    lines = [r.getMessage() for r in caplog.records if "step 4" in r.getMessage()]
    assert (
        len(lines) == 2 and "training step 4: 4 calls to " + URL + " failed with http_400, e.g.: HTTP 400" in lines[0]
    )
    assert "1 calls to " + URL + " failed with malformed" in lines[1]


def test_validation_counts_failures_but_never_stops(monkeypatch, caplog):
    monkeypatch.setattr(RayPPOTrainer, "_val_metrics_update", lambda self, *args: {"val-core/src/reward/mean@1": 0.0})
    trainer = _trainer(base_url="http://judge:8000/v1", model="m", max_failed_steps=1)
    infos = {"score": [0.0, 0.0], DETAIL_KEY: [detail({"timeout": [2, "ReadTimeout"]}, [], [0.0, 1.0])] * 2}
    with caplog.at_level(logging.WARNING, logger="rm_r1.as_reward.trainer"):
        for _ in range(3):  # every call failed, three times: no stop
            metrics = trainer._val_metrics_update(["src", "src"], ["a", "b"], infos, [])
    assert metrics == {"val-core/src/reward/mean@1": 0.0, "val-aux/judge/fail/timeout": 4.0}
    assert len(caplog.records) == 3 and "validation at step 1: 4 calls" in caplog.records[0].getMessage()


def test_entry_point_trains_the_judge_reward_trainer(monkeypatch, tmp_path):
    import ray
    import verl.trainer.main_ppo
    from hydra.core.global_hydra import GlobalHydra
    from verl.trainer.main_ppo_v0 import BaseTaskRunner

    from rm_r1.as_reward import main as judge_main

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


def _run_entry_point(monkeypatch, tmp_path, run_ppo, *overrides):
    import verl.trainer.main_ppo
    from hydra.core.global_hydra import GlobalHydra

    from rm_r1.as_reward import main as judge_main

    monkeypatch.setattr(verl.trainer.main_ppo, "run_ppo", run_ppo)
    monkeypatch.chdir(tmp_path)
    argv = ["--config-name", "external_judge", "reward.custom_reward_function.reward_kwargs.base_url=http://j:8000/v1"]
    monkeypatch.setattr(sys, "argv", ["rm_r1.judge_main", *argv, *overrides])
    try:
        judge_main.main()
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize("wrapped_by_ray", fast_and_slow([False, True], ["True"]))  # as on a cluster; unwrapped: slow
def test_entry_point_exits_non_zero_naming_a_failing_judge(monkeypatch, tmp_path, wrapped_by_ray):
    from ray.exceptions import RayTaskError

    def run_ppo(config, task_runner_class):
        stop = JudgeFailure("stopping: the judge at http://j:8000/v1/chat/completions failed 100% of its calls")
        if wrapped_by_ray:  # how ray.get hands the driver an actor's exception
            raise RayTaskError("TaskRunner.run", "traceback", stop).as_instanceof_cause()
        raise stop

    with pytest.raises(SystemExit) as exit_:
        _run_entry_point(monkeypatch, tmp_path, run_ppo)
    assert "judge at http://j:8000/v1/chat/completions failed 100%" in str(exit_.value.code)


def test_a_literal_api_key_is_refused_before_anything_starts(monkeypatch, tmp_path, capsys):
    started = []
    key = "+reward.custom_reward_function.reward_kwargs.api_key=sk-literal-secret"
    with pytest.raises(SystemExit) as exit_:
        _run_entry_point(monkeypatch, tmp_path, lambda config, task_runner_class: started.append(config), key)
    assert "literal API key" in str(exit_.value.code) and "api_key_env" in str(exit_.value.code)
    assert "sk-literal-secret" not in str(exit_.value.code) + capsys.readouterr().out and not started
    monkeypatch.delenv("JUDGE_KEY_FOR_TEST", raising=False)
    with pytest.raises(SystemExit, match="api_key_env=JUDGE_KEY_FOR_TEST: that environment variable is not set"):
        env = "+reward.custom_reward_function.reward_kwargs.api_key_env=JUDGE_KEY_FOR_TEST"
        _run_entry_point(monkeypatch, tmp_path, lambda config, task_runner_class: started.append(config), env)


def test_the_api_key_reaches_the_ray_workers_and_is_never_printed(monkeypatch, tmp_path, capsys):
    import ray
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    initialised = []
    monkeypatch.setattr(ray, "is_initialized", lambda: bool(initialised))
    monkeypatch.setattr(ray, "init", lambda **kwargs: initialised.append(kwargs))
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", "sk-env-secret")
    configs = []
    env = "+reward.custom_reward_function.reward_kwargs.api_key_env=JUDGE_KEY_FOR_TEST"
    _run_entry_point(monkeypatch, tmp_path, lambda config, task_runner_class: configs.append(config), env)
    ((kwargs,),) = [initialised]
    assert kwargs["runtime_env"]["env_vars"]["JUDGE_KEY_FOR_TEST"] == "sk-env-secret"  # every worker's environment
    verls = get_ppo_ray_runtime_env(configs[0])["env_vars"]
    assert verls and verls.items() <= kwargs["runtime_env"]["env_vars"].items()  # verl's own variables kept
    printed = capsys.readouterr().out
    assert "ray init kwargs" in printed and "JUDGE_KEY_FOR_TEST': '***'" in printed and "sk-env-secret" not in printed
    assert "sk-env-secret" not in str(configs[0])  # the config verl prints and logs holds the name only
