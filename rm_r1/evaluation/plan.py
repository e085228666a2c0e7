"""Which judgements a run needs: the pairs kept by ``--limit``, every (pair, sample) with its presentation order, and
those not stored yet."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from rm_r1.evaluation.benchmarks import Comparison
from rm_r1.evaluation.scaling import swapped


@dataclass(frozen=True)
class Job:
    """One judgement: sample ``sample`` of pair ``pair_id``, shown with the chosen reply as B when ``swap``."""

    pair_id: str
    sample: int
    swap: bool


def limit_records(comparisons: list[Comparison], limit: int | None) -> list[Comparison]:
    """The comparisons of the first ``limit`` benchmark records (an RM-Bench sample or an RMB best-of-N group keeps
    all its pairs, so the scorers see whole records)."""
    if limit is None:
        return comparisons
    keep: dict[Any, None] = {}
    result = []
    for c in comparisons:
        key = (c.meta.get("domain"), c.meta["id"]) if "chosen_style" in c.meta else c.meta.get("group", c.pair_id)
        if key not in keep:
            if len(keep) == limit:
                continue
            keep[key] = None
        result.append(c)
    return result


def plan_jobs(comparisons: Sequence[Comparison], seed: int, samples: int, both_orders: bool) -> list[Job]:
    """Every judgement of the run: both orders (samples 0 = chosen as A, 1 = chosen as B), or ``samples`` seeded
    orders per pair (``rm_r1.evaluation.scaling.swapped``)."""
    if both_orders:
        return [Job(c.pair_id, s, bool(s)) for c in comparisons for s in (0, 1)]
    return [Job(c.pair_id, s, swapped(seed, c.pair_id, s)) for c in comparisons for s in range(samples)]


def pending_jobs(jobs: Sequence[Job], stored: Collection[tuple[str, int]]) -> list[Job]:
    """The jobs whose (pair_id, sample) is not among the ``stored`` judgements."""
    return [job for job in jobs if (job.pair_id, job.sample) not in stored]
