"""RLPRTrainer end to end on the CPU backend: the real verl loop with the RLPR reward, filter, refill and resume."""

import json

import pandas as pd
import pytest
import torch

from rlpr import smoke

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


def run(work_dir, checkpoints, *overrides):
    logged = []
    trainer = smoke.build_trainer(work_dir, [f"trainer.default_local_dir={checkpoints}", *FAST, *overrides])
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


def test_bad_training_rows_fail_before_training(work_dir, tmp_path):
    rows = smoke.sample_training_rows()
    rows[3]["reward_model"] = {"style": "model", "ground_truth": None}
    bad = tmp_path / "bad.parquet"
    pd.DataFrame(rows).to_parquet(bad)
    from rlpr.data_checks import BadDataError

    with pytest.raises(BadDataError, match="row 3"):
        smoke.build_trainer(work_dir, [f"data.train_files={bad}", f"trainer.default_local_dir={tmp_path / 'c'}"])
