"""verl's real RayPPOTrainer.fit() (classic trainer, GRPO) on the CPU backend, with verl's FSDP engine worker as the
actor: runs, logs, gives the rollout the new weights only through update_weights, checkpoints, resumes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils.tracking import Tracking

from cpu_backend import build_cpu_trainer, check_cpu_config, compose_cpu_config
from tests.cpu_backend.conftest import base_overrides

EXPECTED_KEYS = {
    "actor/pg_loss",
    "actor/pg_clipfrac",
    "actor/ppo_kl",
    "actor/entropy",
    "actor/grad_norm",
    "actor/lr",
    "critic/score/mean",
    "critic/rewards/mean",
    "critic/advantages/mean",
    "response_length/mean",
    "timing_s/gen",
    "timing_s/update_actor",
    "perf/mfu/actor",
    "training/global_step",
}


def run_fit(tiny_model_dir, toy_parquet, small_tokenizer, checkpoint_dir, total_steps, monkeypatch):
    logged: list[tuple[int, dict]] = []
    monkeypatch.setattr(Tracking, "log", lambda self, data, step, backend=None: logged.append((step, dict(data))))
    overrides = base_overrides(tiny_model_dir, *toy_parquet) + [
        f"trainer.total_training_steps={total_steps}",
        "trainer.save_freq=1",
        "trainer.test_freq=2",
        "trainer.resume_mode=auto",
        f"trainer.default_local_dir={checkpoint_dir}",
    ]
    trainer = build_cpu_trainer(RayPPOTrainer, compose_cpu_config(overrides=overrides), small_tokenizer)
    trainer.fit()
    return trainer, logged


@pytest.mark.slow
def test_fit_two_grpo_steps_then_resume(tiny_model_dir, toy_parquet, small_tokenizer, tmp_path, monkeypatch):
    checkpoints = tmp_path / "ckpt"
    trainer, logged = run_fit(tiny_model_dir, toy_parquet, small_tokenizer, checkpoints, 2, monkeypatch)

    assert [step for step, _ in logged] == [0, 1, 2]
    for step, metrics in logged[1:]:
        assert EXPECTED_KEYS <= metrics.keys(), EXPECTED_KEYS - metrics.keys()
        assert metrics["training/global_step"] == step
        assert 0.0 <= metrics["critic/score/mean"] <= 1.0
        # The rollout's sampling log-probs and the actor's forward are the same model at the same temperature.
        assert metrics["training/rollout_probs_diff_max"] < 1e-3
    assert "val-core/toy/reward/mean@1" in logged[0][1] and "val-core/toy/reward/mean@1" in logged[2][1]
    assert trainer.checkpoint_manager.update_calls == [0, 1, 2]
    assert trainer.checkpoint_manager.sleep_calls == 2

    for step in (1, 2):  # verl's FSDP checkpoint: model, optimizer and extra (LR scheduler, RNG) shards
        folder = checkpoints / f"global_step_{step}"
        assert (folder / "actor" / "huggingface" / "config.json").exists() and (folder / "data.pt").exists()
        for part in ("model", "optim", "extra_state"):
            assert (folder / "actor" / f"{part}_world_size_1_rank_0.pt").exists(), part
    assert (checkpoints / "latest_checkpointed_iteration.txt").read_text() == "2"
    # The rollout has its own model, which received the trained actor weights through update_weights.
    initial = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).state_dict()
    rollout = trainer.checkpoint_manager.client.model.state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in rollout.items())
    actor = trainer.actor_rollout_wg.actor_worker.actor.engine.module.state_dict()
    for name, value in rollout.items():
        torch.testing.assert_close(value, actor[name].full_tensor(), rtol=0, atol=0)

    # Resume: a new trainer finds global_step_2, restores it and runs only step 3. Its greedy validation before
    # training sees the step-2 weights, so it reproduces the first run's final validation exactly.
    resumed, logged_again = run_fit(tiny_model_dir, toy_parquet, small_tokenizer, checkpoints, 3, monkeypatch)
    assert [step for step, _ in logged_again] == [2, 3]
    final_val = {k: v for k, v in logged[2][1].items() if k.startswith("val-")}
    assert {k: v for k, v in logged_again[0][1].items() if k.startswith("val-")} == final_val
    assert resumed.checkpoint_manager.update_calls == [2, 3]


@pytest.mark.parametrize(
    ("override", "named"),
    [("trainer.use_v1=True", "trainer.use_v1"), ("algorithm.adv_estimator=gae", "critic")],
)
def test_configs_the_backend_cannot_run_are_named(tiny_model_dir, override, named):
    config = compose_cpu_config(overrides=[*base_overrides(tiny_model_dir), override])
    with pytest.raises(ValueError, match=named):
        check_cpu_config(config)


def test_compose_from_a_recipe_folder(tmp_path):
    """A recipe YAML on verl's search path composes with the CPU overrides applied on top of it."""
    (tmp_path / "smoke.yaml").write_text(
        "hydra:\n  searchpath:\n    - pkg://verl.trainer.config\n"
        "defaults:\n  - ppo_trainer\n  - _self_\n"
        "trainer:\n  use_v1: true\n"
        "recipe:\n  beta: 0.5\n"
    )
    config = compose_cpu_config("smoke", ["recipe.beta=0.25"], config_dir=str(tmp_path))
    assert config.recipe.beta == 0.25
    assert config.trainer.use_v1 is False and config.trainer.device == "cpu"
    assert config.data.dataloader_num_workers == 0
