"""Which judgements a run plans: seeded presentation orders, --limit keeping whole records."""

from __future__ import annotations

from pathlib import Path

from rm_r1.evaluation.benchmarks import load_rmb, load_rmbench
from rm_r1.evaluation.plan import limit_records, plan_jobs
from rm_r1.evaluation.scaling import swapped

DATA = Path(__file__).parent / "eval_data"


def test_plan_jobs_orders():
    pairs = load_rmb(DATA / "rmb")
    jobs = plan_jobs(pairs, seed=3, samples=4, both_orders=False)
    assert len(jobs) == 4 * len(pairs)
    assert all(job.swap == swapped(3, job.pair_id, job.sample) for job in jobs)
    both = plan_jobs(pairs, seed=3, samples=1, both_orders=True)
    assert [(j.sample, j.swap) for j in both[:2]] == [(0, False), (1, True)] and len(both) == 2 * len(pairs)


def test_limit_keeps_whole_records():
    rmbench = limit_records(load_rmbench(DATA / "rmbench"), 2)
    assert len(rmbench) == 18 and len({(c.meta["domain"], c.meta["id"]) for c in rmbench}) == 2
    rmb = limit_records(load_rmb(DATA / "rmb"), 3)
    assert [c.pair_id for c in rmb] == [
        "harm-bon-1/0",
        "harm-bon-1/1",
        "harm-bon-1/2",
        "help-bon-1/0",
        "help-bon-1/1",
        "harm-pair-1",
    ]
