"""harness.task_runner: verl's classic task runner with the recipe's trainer, config check and training files.
Ray, the tokenizer and the datasets are replaced by recorders; verl's worker registration and resource pools run for
real."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from harness.config_paths import recipe_config_dir
from harness.task_runner import classic_task_runner_class

CONFIGS = recipe_config_dir("judge_reward")


class _Recorder:
    """Stands in for the trainer class: records how the runner builds and drives it."""

    events: list = []

    def __init__(self, **kwargs):
        self.events.append(("build", kwargs))

    def init_workers(self):
        self.events.append(("init_workers",))

    def fit(self):
        self.events.append(("fit",))


@pytest.fixture
def events(monkeypatch):
    # ray_trainer, skip_manager, engine_workers and replica bind omega_conf_to_dataclass by name when first imported,
    # and the runner imports them lazily: imported here, before the stand-in below, none of them keeps it for the
    # tests that run after this one.
    import verl.trainer.ppo.ray_trainer  # noqa: F401
    import verl.trainer.ppo.utils as ppo_utils
    import verl.utils.config as verl_config
    import verl.utils.skip.skip_manager  # noqa: F401
    import verl.workers.engine_workers  # noqa: F401
    import verl.workers.rollout.replica  # noqa: F401

    events = []
    monkeypatch.setattr(_Recorder, "events", events)
    real = verl_config.omega_conf_to_dataclass  # verl's validate_config builds its other sections with it

    def to_dataclass(section, *args, **kwargs):
        if section.get("_target_") == "verl.workers.config.HFModelConfig":  # no tokenizer to load
            return SimpleNamespace(tokenizer="the tokenizer", processor=None)
        return real(section, *args, **kwargs)

    monkeypatch.setattr(verl_config, "omega_conf_to_dataclass", to_dataclass)

    def dataset(files, data_config, tokenizer, processor, is_train, max_samples):
        events.append(("dataset", list(files) if not isinstance(files, str) else files, tokenizer, is_train))
        return f"{'train' if is_train else 'val'} dataset"

    monkeypatch.setattr(ppo_utils, "create_rl_dataset", dataset)
    monkeypatch.setattr(ppo_utils, "create_rl_sampler", lambda config, dataset: f"sampler of {dataset}")
    yield events
    kept = [
        name
        for name, module in list(sys.modules.items())
        if name != verl_config.__name__  # the patched module itself; monkeypatch restores it next
        and getattr(module, "__dict__", {}).get("omega_conf_to_dataclass") is to_dataclass
    ]
    assert kept == [], f"modules imported during the test keep the stand-in: {kept}"


def _config(overrides=()):
    with initialize_config_dir(str(CONFIGS), version_base=None):
        return compose(
            "served_judge_7b",
            overrides=["data.train_files=/d/train.parquet", "data.val_files=/d/val.parquet", *overrides],
        )


def test_the_runner_checks_then_builds_the_given_trainer(events):
    from verl.trainer.main_ppo_v0 import BaseTaskRunner
    from verl.trainer.ppo.ray_trainer import Role
    from verl.utils.dataset.rl_dataset import collate_fn

    def check(config):
        events.append(("check", config.trainer.use_v1))

    def training_files(config, tokenizer):
        events.append(("training_files", tokenizer))
        return ["/d/train_checked.parquet"]

    runner_cls = classic_task_runner_class(_Recorder, check, training_files, name="RecorderTaskRunner")
    assert issubclass(runner_cls, BaseTaskRunner) and runner_cls.__name__ == "RecorderTaskRunner"
    assert runner_cls.trainer_cls is _Recorder
    runner_cls().run(_config())

    names = [event[0] for event in events]
    assert names == ["check", "training_files", "dataset", "dataset", "build", "init_workers", "fit"]
    assert events[1] == ("training_files", "the tokenizer")
    assert events[2] == ("dataset", ["/d/train_checked.parquet"], "the tokenizer", True)  # the checked files
    assert events[3] == ("dataset", "/d/val.parquet", "the tokenizer", False)
    built = events[4][1]
    assert built["train_dataset"] == "train dataset" and built["val_dataset"] == "val dataset"
    assert built["train_sampler"] == "sampler of train dataset" and built["collate_fn"] is collate_fn
    assert built["tokenizer"] == "the tokenizer" and built["processor"] is None
    assert Role.ActorRolloutRef in built["role_worker_mapping"]  # the recipe's KL loss needs the reference
    # the judge on its own pool (reward.reward_model.enable_resource_pool): 4 + 4 GPUs
    assert built["resource_pool_manager"].resource_pool_spec == {"global_pool": [4], "reward_pool": [4]}


def test_by_default_verls_check_and_the_configs_training_files(events):
    runner_cls = classic_task_runner_class(_Recorder)
    runner_cls().run(_config())
    assert events[0] == ("dataset", "/d/train.parquet", "the tokenizer", True)
    assert [event[0] for event in events][-2:] == ["init_workers", "fit"]

    events.clear()
    odd = ["data.train_batch_size=3", "actor_rollout_ref.rollout.n=1", "actor_rollout_ref.actor.use_dynamic_bsz=false"]
    with pytest.raises(AssertionError, match=r"real_train_batch_size \(3\) must be divisible"):  # validate_config
        runner_cls().run(_config(odd))
    assert events == []
