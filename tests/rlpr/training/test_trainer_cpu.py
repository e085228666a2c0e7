"""RLPRTrainer end to end on the CPU backend: the real verl loop with the RLPR reward, filter, refill and resume."""

import json

import pandas as pd
import pytest
import torch

from rlpr import smoke
from rlpr.training.trainer import check_trainer_supports

FAST = ["trainer.test_freq=-1", "trainer.val_before_train=false"]


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    """Sample data and the warm-started tiny model, built once for the module."""
    path = tmp_path_factory.mktemp("rlpr-smoke")
    smoke.prepare(path)
    return path


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(work_dir, checkpoints, *overrides, patch=None):
    """fit() the smoke trainer; ``patch(trainer)`` may wrap its methods first. Returns (trainer, metrics per step)."""
    logged = []
    trainer = smoke.build_trainer(work_dir, [f"trainer.default_local_dir={checkpoints}", *FAST, *overrides])
    if patch is not None:
        patch(trainer)
    import verl.utils.tracking as tracking

    original = tracking.Tracking.log

    def capture(self, data, step, *args, **kwargs):
        logged.append((step, dict(data)))
        return original(self, data, step, *args, **kwargs)

    tracking.Tracking.log = capture
    try:
        trainer.fit()
    finally:
        tracking.Tracking.log = original
    return trainer, {step: data for step, data in logged if "filter/gen_rounds" in data}  # training steps only


@pytest.mark.slow
def test_loop_filters_refills_and_resumes(work_dir, tmp_path):
    full, metrics = run(work_dir, tmp_path / "full", "trainer.total_training_steps=4", "trainer.save_freq=2")
    assert sorted(metrics) == [1, 2, 3, 4]
    for step, m in metrics.items():
        for key in ("rlpr/r_mean", "rlpr/r_prime_mean", "rlpr/r_hat_mean", "rlpr/valid_frac", "rlpr/format_mean",
                    "rlpr/repetition_frac", "rlpr/overlength", "filter/threshold", "filter/ema", "filter/kept_frac",
                    "filter/gen_rounds", "filter/cache_size", "timing/rlpr_scoring", "actor/pg_loss"):  # fmt: skip
            assert key in m, (step, key)
        assert 0.0 < m["rlpr/valid_frac"] <= 1.0  # the warm start writes the tags often, not always
    # before start_step (2) nothing is filtered; from then on θ = 0.5 * ema > 0 and low-std groups are dropped
    assert metrics[1]["filter/threshold"] == 0.0 and metrics[1]["filter/kept_frac"] == 1.0
    assert all(metrics[s]["filter/threshold"] > 0 for s in (2, 3, 4))
    assert metrics[2]["filter/ema"] == pytest.approx(metrics[2]["filter/threshold"] / 0.5)
    assert any(metrics[s]["filter/kept_frac"] < 1.0 for s in (2, 3, 4))  # low-std groups were dropped ...
    assert any(metrics[s]["filter/gen_rounds"] >= 2 for s in (2, 3, 4))  # ... and the batch refilled by more rounds
    for entry in full.step_log:
        assert len(entry["kept"]) == 4  # train_batch_size prompts kept every step
    state = torch.load(tmp_path / "full" / "global_step_4" / "rlpr_state.pt", weights_only=False)
    assert state["filter"]["step"] == 4 and "rng" in state and "dataloader" in state

    # interrupted after step 2, then resumed: the same thresholds and the same kept prompts
    run(work_dir, tmp_path / "resumed", "trainer.total_training_steps=2", "trainer.save_freq=2")
    resumed, resumed_metrics = run(work_dir, tmp_path / "resumed", "trainer.total_training_steps=4",
                                   "trainer.save_freq=2")  # fmt: skip
    assert sorted(resumed_metrics) == [3, 4]
    assert resumed.step_log == full.step_log
    for step in (3, 4):
        assert resumed_metrics[step]["filter/threshold"] == pytest.approx(metrics[step]["filter/threshold"], abs=1e-12)
        assert resumed_metrics[step]["rlpr/r_mean"] == pytest.approx(metrics[step]["rlpr/r_mean"], abs=1e-6)
    cache = json.loads((tmp_path / "resumed" / "rlpr_debias_cache.json").read_text())
    assert len(cache["entries"]) == 20  # r' of the initial policy for every training prompt, computed once


@pytest.mark.slow
def test_current_debias_mode_and_round_cap(work_dir, tmp_path):
    trainer, metrics = run(
        work_dir, tmp_path / "cur", "trainer.total_training_steps=2", "trainer.save_freq=-1",
        "rlpr.debias.mode=current", "rlpr.filter.beta=100.0", "rlpr.max_gen_rounds=2",
    )  # fmt: skip
    assert not (tmp_path / "cur" / "rlpr_debias_cache.json").exists()
    assert metrics[1]["rlpr/r_prime_mean"] > 0.0  # debias rows in the scoring batch
    # at step 2 a threshold of 100 x ema keeps nothing: two rounds, then no update, logged
    assert metrics[2]["filter/gen_rounds"] == 2.0 and metrics[2]["filter/round_cap_hit"] == 1.0
    assert metrics[2]["filter/skipped_update"] == 1.0 and "actor/pg_loss" not in metrics[2]
    assert trainer.step_log[-1]["kept"] == []


def test_bad_training_rows_fail_before_training(tmp_path):
    # Its own folder and a one-step warm start: the rows are checked before any model is used, so this test does not
    # wait for the module's warm-started model (a minute on 2 cores), which only the slow loops need.
    rows = smoke.sample_training_rows()
    rows[3]["reward_model"] = {"style": "model", "ground_truth": None}
    bad = tmp_path / "bad.parquet"
    pd.DataFrame(rows).to_parquet(bad)
    from rlpr.data.checks import BadDataError

    overrides = [f"data.train_files={bad}", f"trainer.default_local_dir={tmp_path / 'c'}"]
    with pytest.raises(BadDataError, match="row 3"):
        smoke.build_trainer(tmp_path / "work", overrides, warm_steps=1)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("algorithm.adv_estimator=gae", "algorithm.adv_estimator=gae"),
        ("critic.enable=true", "critic.enable"),
        ("algorithm.adv_estimator=remax", "algorithm.adv_estimator=remax"),
        ("algorithm.rollout_correction.bypass_mode=true", "algorithm.rollout_correction.bypass_mode"),
        ("algorithm.rollout_correction.rollout_is=token", "algorithm.rollout_correction.rollout_is"),
        ("algorithm.filter_groups.enable=true", "algorithm.filter_groups.enable"),
        ("global_profiler.steps=[1]", "global_profiler.steps"),
        ("trainer.critic_warmup=2", "trainer.critic_warmup"),
        ("trainer.rollout_data_dir=/tmp/rollouts", "trainer.rollout_data_dir"),
    ],
)
def test_settings_the_rlpr_fit_would_ignore_are_rejected(override, named):
    from cpu_backend import compose_cpu_config
    from harness.config_paths import recipe_config_dir

    config_dir = str(recipe_config_dir("rlpr"))
    with pytest.raises(ValueError, match=named.replace(".", r"\.").replace("[", r"\[")):
        check_trainer_supports(compose_cpu_config(smoke.SMOKE_RECIPE, [override], config_dir=config_dir))


def test_the_smoke_recipe_itself_is_supported():
    from cpu_backend import compose_cpu_config
    from harness.config_paths import recipe_config_dir

    check_trainer_supports(compose_cpu_config(smoke.SMOKE_RECIPE, config_dir=str(recipe_config_dir("rlpr"))))


@pytest.mark.slow
def test_batches_fit_the_workers_and_the_actor_runs_only_while_replicas_sleep(work_dir, tmp_path, monkeypatch):
    """An odd log-prob micro-batch size and 3 agent-loop workers: every compute_log_prob batch (r' pass, scoring, old
    log-probs) and every generation batch must be padded for the strict CPU backend, which also refuses any actor
    call while the replicas are awake (the r' pass before the first wake). An ESI-triggered save at step 1, and the
    validation dump written by the time fit() returns."""
    import rlpr.training.trainer as trainer_module

    esi_calls = []

    def esi(max_steps_duration, redundant_time=0, **_):
        esi_calls.append(max_steps_duration)
        return len(esi_calls) == 1  # the ESI capacity block expires during step 1

    monkeypatch.setattr(trainer_module, "should_save_ckpt_esi", esi)
    dump = tmp_path / "val_dump"
    trainer, metrics = run(
        work_dir, tmp_path / "ckpt", "trainer.total_training_steps=2", "trainer.save_freq=100", "trainer.test_freq=2",
        "data.train_max_samples=8", "data.val_max_samples=2", f"trainer.validation_data_dir={dump}",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=3",
        "actor_rollout_ref.rollout.agent.num_workers=3",
        "rlpr.filter.start_step=10",  # every step trains, whatever the sampled rewards (the filter is tested above)
    )  # fmt: skip
    assert sorted(metrics) == [1, 2] and all("actor/pg_loss" in metrics[s] for s in (1, 2))
    assert metrics[1]["rlpr/r_prime_mean"] > 0.0  # r' of the initial policy came from the sleeping-replica pass
    assert esi_calls[0] == 0.0 and esi_calls[1] > 0.0  # verl's rule: the longest step so far
    assert (tmp_path / "ckpt" / "global_step_1" / "rlpr_state.pt").exists()  # saved on ESI (save_freq=100)
    assert (tmp_path / "ckpt" / "latest_checkpointed_iteration.txt").read_text() == "2"
    assert trainer._dump_executor._shutdown and (dump / "2.jsonl").exists()  # flushed before fit() returned


class Killed(Exception):
    """Stands for a kill -9 or a preemption."""


def kill_after_checkpoint(trainer):
    original = trainer._save_checkpoint

    def save():
        original()
        raise Killed  # verl's tracker file already names this step

    trainer._save_checkpoint = save


def kill_in_update_weights(trainer):
    original = trainer.checkpoint_manager.update_weights

    def update_weights(global_steps=None):
        if global_steps == 1:
            raise Killed
        original(global_steps)

    trainer.checkpoint_manager.update_weights = update_weights


def kill_after_validation(trainer):
    original = trainer._validate

    def validate(*args, **kwargs):
        original(*args, **kwargs)
        raise Killed

    trainer._validate = validate


@pytest.fixture(scope="module")
def uninterrupted(work_dir, tmp_path_factory):
    return run(work_dir, tmp_path_factory.mktemp("uninterrupted"), *RESUME_RUN)


RESUME_RUN = ("trainer.total_training_steps=2", "trainer.save_freq=1", "trainer.test_freq=1", "data.val_max_samples=2")


@pytest.mark.slow
@pytest.mark.parametrize("kill", [kill_after_checkpoint, kill_in_update_weights, kill_after_validation])
def test_a_kill_between_checkpoint_and_step_end_resumes_exactly(work_dir, tmp_path, uninterrupted, kill):
    full, full_metrics = uninterrupted
    with pytest.raises(Killed):
        run(work_dir, tmp_path / "killed", *RESUME_RUN, patch=kill)
    assert (tmp_path / "killed" / "latest_checkpointed_iteration.txt").read_text() == "1"
    resume = [f"trainer.default_local_dir={tmp_path / 'killed'}"]
    if kill is kill_after_validation:  # resume from an explicit folder, with another output folder
        resume = [
            f"trainer.default_local_dir={tmp_path / 'elsewhere'}",
            "trainer.resume_mode=resume_path",
            f"trainer.resume_from_path={tmp_path / 'killed' / 'global_step_1'}",
            f"rlpr.debias.cache_path={tmp_path / 'killed' / 'rlpr_debias_cache.json'}",
        ]
    resumed, metrics = run(work_dir, tmp_path / "killed", *RESUME_RUN, *resume)
    assert sorted(metrics) == [2]
    assert resumed.step_log == full.step_log
    for key in ("filter/threshold", "filter/ema", "rlpr/r_mean", "rlpr/reward_mean", "actor/pg_loss"):
        if key in full_metrics[2]:
            assert metrics[2][key] == pytest.approx(full_metrics[2][key], abs=1e-6), key


@pytest.mark.slow
def test_a_refill_round_without_data_leaves_the_replicas_asleep(work_dir, tmp_path):
    """Round 0 keeps 2 of 4 prompts, the refill round finds the data exhausted: the update must still run with the
    replicas asleep (the strict CPU actor refuses otherwise), on the 2 kept prompts (one mini-batch of 2). The
    training rollouts are marked, so the streamed validation grader does no grading work on them."""
    from rlpr.training.trainer import DataExhausted

    graded = []

    def patch(trainer):
        trainer.std_filter.keep = lambda stds, sources: [i < 2 for i in range(len(stds))]
        draw, score = trainer._draw_prompts, trainer._score

        def draw_once(step, round_):
            if round_ > 0:
                raise DataExhausted
            return draw(step, round_)

        def spy(batch, *args, **kwargs):
            graded.extend(batch.non_tensor_batch["graded"].tolist())
            return score(batch, *args, **kwargs)

        trainer._draw_prompts, trainer._score = draw_once, spy

    _, metrics = run(
        work_dir, tmp_path / "ckpt", "trainer.total_training_steps=1", "trainer.save_freq=-1",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2", patch=patch,
    )  # fmt: skip
    assert metrics[1]["filter/gen_rounds"] == 1.0 and metrics[1]["filter/data_exhausted"] == 1.0
    assert "actor/pg_loss" in metrics[1]  # the update ran (while the replicas slept)
    assert graded and set(graded) == {0.0}  # every training rollout skipped by the grader
