"""The smoke commands on verl's own Ray + vLLM + FSDP2 path on CPU (``--backend real``, their default): each run is a
child process, checked for its exit status, its witness of the weight sync into vLLM, its memory and what it leaves
running."""

from __future__ import annotations

import time

import psutil
import pytest
import torch

from cpu_backend.real_stack import WITNESS, WITNESS_BOUND
from rlpr.reporting import read_metrics
from tests.real_stack.conftest import assert_clean_success, finish, run, start

pytestmark = [pytest.mark.slow, pytest.mark.real_stack]

REAL = "backend: verl's Ray + vLLM path on CPU"


def _witnessed(steps: dict, after: int) -> dict[int, float]:
    return {s: float(m[WITNESS]) for s, m in steps.items() if s > after and WITNESS in m}


def test_rlpr_two_steps_then_a_resume_to_four_with_the_saved_rlpr_state(tmp_path):
    from rlpr.main import compose_recipe
    from rlpr.training.trainer import std_filter_from

    out = tmp_path / "rlpr"
    first = run(["-m", "rlpr.smoke", "--output-dir", str(out), "trainer.total_training_steps=2"], tmp_path)
    assert_clean_success(first)
    assert REAL in first.out and "Done: step 2 of 2." in first.out
    for phase in ("generation", "old log-probs", "RLPR scoring forward", "r' pass (initial policy)", "update",
                  "weight sync"):  # fmt: skip
        assert f"\n{phase} " in first.out, phase
    steps, bad = read_metrics(out / "metrics.jsonl")
    assert bad == 0 and {0, 1, 2} <= set(steps)
    assert "timing_s/rlpr_r_prime_initial" in steps[0] and "timing_s/update_weights" in steps[1]
    witnessed = _witnessed(steps, after=1)
    assert witnessed and all(v < WITNESS_BOUND for v in witnessed.values()), witnessed
    saved = torch.load(out / "checkpoints" / "global_step_2" / "rlpr_state.pt", weights_only=False)

    second = run(["-m", "rlpr.smoke", "--output-dir", str(out), "trainer.total_training_steps=4"], tmp_path)
    assert_clean_success(second)
    assert "Resuming from step 2 of 4" in second.out and "Done: step 4 of 4." in second.out
    steps, bad = read_metrics(out / "metrics.jsonl")
    assert bad == 0 and {1, 2, 3, 4} <= set(steps)
    witnessed = _witnessed(steps, after=2)
    assert witnessed and all(v < WITNESS_BOUND for v in witnessed.values()), witnessed
    # the resumed run went on from the saved filter state: step 3's threshold is what that state gives for step 3
    resumed = std_filter_from(compose_recipe("smoke_cpu", ["actor_rollout_ref.model.path=m", "data.train_files=d",
                                                           "data.val_files=d"]))  # fmt: skip
    resumed.load_state_dict(saved["filter"])
    assert steps[3]["filter/threshold"] == pytest.approx(resumed.begin_step(3), rel=1e-12, abs=1e-15)
    final = torch.load(out / "checkpoints" / "global_step_4" / "rlpr_state.pt", weights_only=False)
    assert final["step_log"][:2] == saved["step_log"]  # the saved steps, then the resumed ones
    assert [entry["step"] for entry in final["step_log"]] == [1, 2, 3, 4]


def test_two_actor_ranks_and_two_vllm_replicas(tmp_path):
    out = tmp_path / "rlpr2"
    result = run(["-m", "rlpr.smoke", "--gpus", "2", "--output-dir", str(out), "trainer.total_training_steps=2"],
                 tmp_path)  # fmt: skip
    # 16 processes of ~0.6-1.1 GiB each (torch, verl and vLLM imported in every one): 12.3-12.6 GiB summed RSS
    # measured (8.6-8.9 GiB proportional), over the one-rank runs' 12 GiB budget
    assert_clean_success(result, rss_budget_gib=13.0)
    assert "(2 logical GPU(s)" in result.out
    steps, _ = read_metrics(out / "metrics.jsonl")
    witnessed = _witnessed(steps, after=1)
    assert witnessed and all(v < WITNESS_BOUND for v in witnessed.values()), witnessed
    shards = sorted(p.name for p in (out / "checkpoints" / "global_step_2" / "actor").glob("model_world_size_2_*"))
    assert shards == ["model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt"]


def test_rm_r1_grpo_with_its_kl_reference(tmp_path):
    out = tmp_path / "rm_r1"
    result = run(["-m", "rm_r1.smoke", "--output-dir", str(out), "trainer.total_training_steps=2"], tmp_path)
    assert_clean_success(result)
    assert REAL in result.out and "Done: step 2 of 2." in result.out
    steps, _ = read_metrics(out / "metrics.jsonl")
    assert "actor/kl_loss" in steps[2]  # the reference policy ran (verl's ref role, unpinned offload on CPU)
    witnessed = _witnessed(steps, after=1)
    assert witnessed and all(v < WITNESS_BOUND for v in witnessed.values()), witnessed


def _ray_worker(watch, title: str) -> psutil.Process | None:
    for proc in watch.root.children(recursive=True):
        try:
            if title in " ".join(proc.cmdline()) or title in proc.name():
                return proc
        except psutil.Error:
            pass
    return None


def test_a_killed_ray_worker_stops_the_run_in_time_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "fault"
    args = ["-m", "rlpr.smoke", "--output-dir", str(out), "trainer.save_freq=1", "trainer.total_training_steps=4"]
    started = time.monotonic()
    proc, watch = start(args, tmp_path)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline and proc.poll() is None:  # step 2 logged: its checkpoint is complete
        if metrics.exists() and 2 in read_metrics(metrics)[0]:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before step 2 was logged"
    worker = _ray_worker(watch, "ray::WorkerDict")
    assert worker is not None, "no FSDP worker process (ray::WorkerDict) found in the run's process tree"
    worker.kill()  # kill -9, in the middle of step 3
    killed = time.monotonic()
    result = finish(proc, watch, started, timeout=300)
    assert result.returncode != 0
    assert time.monotonic() - killed <= 120 + 5, "the command took longer than 120 s to stop"  # +5: finish's wait
    assert "the run stopped: a Ray worker process died" in result.err and "WorkerDict" in result.err, result.err[-3000:]
    assert result.leftovers == [], f"processes left running: {result.leftovers}"

    rerun = run(["-m", "rlpr.smoke", "--output-dir", str(out), "trainer.total_training_steps=3"], tmp_path)
    assert_clean_success(rerun)
    assert "Resuming from step 2 of 3" in rerun.out and "Done: step 3 of 3." in rerun.out
