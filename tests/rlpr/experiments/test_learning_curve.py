"""The learning-curve command: reward AUCs by hand, the arm summary, and the --quick run end to end (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlpr.experiments import learning_curve as lc
from rlpr.experiments.tasks import TASKS

REPO = Path(__file__).parents[3]


def test_auc_table_by_hand():
    rows = [
        {"correct": 1, "rule": 1.0, "rlpr": 0.9, "rlpr_no_debias": 0.9, "naive_likelihood": 0.1},
        {"correct": 1, "rule": 0.0, "rlpr": 0.4, "rlpr_no_debias": 0.6, "naive_likelihood": 0.2},
        {"correct": 0, "rule": 0.0, "rlpr": 0.5, "rlpr_no_debias": 0.5, "naive_likelihood": 0.3},
        {"correct": 0, "rule": 0.0, "rlpr": 0.1, "rlpr_no_debias": 0.1, "naive_likelihood": 0.4},
    ]
    # pairs (correct, wrong): 4. rule: row 0 beats both, row 1 ties both (1/2 each) -> 3/4. rlpr: 0.9 beats both,
    # 0.4 beats only 0.1 -> 3/4. without debias: every pair ordered -> 1. naive: every pair reversed -> 0.
    assert lc.auc_table(rows) == {"rule": 0.75, "rlpr": 0.75, "rlpr_no_debias": 1.0, "naive_likelihood": 0.0}
    assert lc.auc_table([{**r, "correct": 1} for r in rows]) == dict.fromkeys(lc.REWARDS)


def test_arms_share_everything_but_their_own_overrides(tmp_path):
    common = set(lc.arm_overrides(tmp_path, "exact", lc.ARMS[2], lc.FULL, 0))
    assert "rlpr.policy_loss_tokens=reasoning" in lc.ARMS[-1].overrides
    for arm in lc.ARMS:
        own = lc.arm_overrides(tmp_path, "exact", arm, lc.FULL, 0)
        shared = [o for o in own if o not in arm.overrides and "experiment_name" not in o
                  and "default_local_dir" not in o]  # fmt: skip
        assert set(shared) <= common
        assert len(shared) == len(common) - 2
    assert [a.name for a in lc.ARMS] == list(lc.ARM_NAMES)
    assert {a.reward for a in lc.ARMS if a.trains} <= set(lc.REWARDS)


def test_summarize_arm(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [
        {"step": 0, "data": {"val-core/learning_curve/exact/acc/mean@2": 0.25, "rlpr/r_prime_cache_size": 3}},
        {"step": 1, "data": {"training/global_step": 1, "filter/kept_frac": 1.0, "rlpr/r_mean": 0.5}},
        {"step": 2, "data": {"training/global_step": 2, "filter/kept_frac": 0.5, "rlpr/r_mean": 0.7,
                             "filter/skipped_update": 1.0, "val-core/learning_curve/exact/acc/mean@2": 0.5}},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    s = lc.summarize_arm(path, lc.ARMS[2], lc.FULL)
    assert (s["val_acc_start"], s["val_acc_end"], s["steps"]) == (0.25, 0.5, 2)
    assert s["curve"] == [[0, 0.25], [2, 0.5]]
    assert (s["kept_frac_mean"], s["r_mean"], s["skipped_updates"]) == (0.75, pytest.approx(0.6), 1)
    path.write_text(json.dumps(records[1]) + "\n")
    with pytest.raises(RuntimeError, match="no validation before training"):
        lc.summarize_arm(path, lc.ARMS[2], lc.FULL)


def _val_acc(metrics_path: Path, task: str) -> dict[int, float]:
    """Validation accuracy per step, read straight from an arm's metrics file (verl's val-core key)."""
    out = {}
    for line in metrics_path.read_text().splitlines():
        record = json.loads(line)
        for key, value in record["data"].items():
            if key.startswith(f"val-core/learning_curve/{task}/acc/mean@"):
                out[record["step"]] = value
    return out


def _pairwise_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    out = tmp_path / "lc"
    cmd = [sys.executable, str(REPO / "scripts" / "learning_curve.py"), "--quick", "--output-dir", str(out)]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((out / "results" / "learning_curve.json").read_text())
    assert (out / "results" / "learning_curve.png").stat().st_size > 10_000
    assert results["seed"] == 0 and results["backend"] == "inprocess" and results["machine"]["cpus"]
    assert results["command"] == f"python scripts/learning_curve.py --quick --output-dir {out}"
    assert results["settings"]["steps"] == 2
    assert set(results["tasks"]) == set(TASKS)
    for task, entry in results["tasks"].items():
        assert list(entry["arms"]) == list(lc.ARM_NAMES)
        lines = (out / task / "shared" / "reward_quality_samples.jsonl").read_text().splitlines()
        samples = [json.loads(line) for line in lines]
        labels = [s["correct"] for s in samples]
        for arm in lc.ARMS:
            got = entry["arms"][arm.name]
            logged = _val_acc(out / task / arm.name / "metrics.jsonl", task)
            assert got["val_acc_start"] == logged[0]
            assert got["val_acc_end"] == logged[max(logged)]
            assert got["steps"] == (2 if arm.trains else 0)
            assert max(logged) == got["steps"]
            assert got["seed"] == 0 and got["backend"] == "inprocess" and got["wall_s"] > 0
            assert arm.name in got["command"]
            trained = [json.loads(line)["data"] for line in (out / task / arm.name / "metrics.jsonl").open()]
            fractions = [m["rlpr/loss_tokens_frac"] for m in trained if "rlpr/loss_tokens_frac" in m]
            if arm.name == "rlpr_reasoning_loss":  # the option reached the update: a loss mask on every step
                assert len(fractions) == 2 and all(0 < f <= 1 for f in fractions)
            else:
                assert fractions == []
            if arm.reward is None or len(set(labels)) < 2:
                assert got["reward_auc"] is None
            else:
                assert got["reward_auc"] == pytest.approx(_pairwise_auc([s[arm.reward] for s in samples], labels))
    # run again: every arm is found complete and skipped
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("done earlier, skipped") == len(TASKS) * len(lc.ARMS)
    # an arm whose result was lost resumes from its last checkpoint (the final step) instead of training again
    (out / "exact" / "rlpr" / "result.json").unlink()
    resumed = subprocess.run([*cmd, "--only", "exact/rlpr"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    result = json.loads((out / "exact" / "rlpr" / "result.json").read_text())
    assert result["resumed_from_step"] == 2 and result["steps"] == 2
