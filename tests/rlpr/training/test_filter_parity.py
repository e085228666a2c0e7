"""The std filter's keep decision next to a second implementation of the official rule (issue 19, items 6 and 7).

Written from what the official trainer does: each group's std of R is the unbiased std (``torch.std``), 1.0 for a
group of one response; with a per-source table the std is MULTIPLIED by the source's factor, and a group is kept iff
that product is finite and at least β·ema, where ema follows the raw (unmultiplied) finite stds of every group.
"""

from __future__ import annotations

import math
import random

import torch

from rlpr.training.filter import EmaStdFilter, group_stds


def official_stds(rewards: list[float], groups: list[str]) -> dict[str, float]:
    by_group: dict[str, list[float]] = {}
    for reward, group in zip(rewards, groups):
        by_group.setdefault(group, []).append(reward)
    return {g: 1.0 if len(v) == 1 else torch.tensor(v, dtype=torch.float64).std().item() for g, v in by_group.items()}


def official_keep(stds: list[float], sources: list[str], factors: dict[str, float], threshold: float) -> list[bool]:
    scaled = [s * factors[src] for s, src in zip(stds, sources)]
    return [not (math.isnan(x) or math.isinf(x)) and x >= threshold for x in scaled]


def test_group_stds_match_the_official_including_groups_of_one():
    rng = random.Random(0)
    rewards, groups = [], []
    for g in range(40):
        for _ in range(rng.choice([1, 1, 2, 3, 8])):
            rewards.append(rng.choice([0.0, 0.1, -1.0, rng.random()]))
            groups.append(f"g{g}")
    ours, theirs = group_stds(rewards, groups), official_stds(rewards, groups)
    assert list(ours) == list(theirs)
    singletons = [g for g in ours if groups.count(g) == 1]
    assert singletons and all(ours[g] == 1.0 for g in singletons)
    for g in ours:
        assert math.isclose(ours[g], theirs[g], rel_tol=1e-12, abs_tol=1e-15), g


def test_keep_matches_the_official_over_random_steps():
    factors = {"WebInstruct": 1.5, "math": 0.75, "plain": 1.0}
    f = EmaStdFilter(beta=0.5, ema_start_step=1, start_step=3, momentum=0.9, beta_per_source=factors)
    rng = random.Random(1)
    compared = flipped = 0
    for step in range(1, 30):
        theta = f.begin_step(step)
        for _round in range(2):
            stds = [rng.choice([math.nan, 0.0, 0.05 * rng.randrange(20)]) for _ in range(24)]
            sources = [rng.choice(list(factors)) for _ in stds]
            f.observe(stds)
            keep = f.keep(stds, sources)
            if f.active:
                assert keep == official_keep(stds, sources, factors, theta)
                # how many decisions the earlier reading (beta replaced by the factor) would have made otherwise
                earlier = [not math.isnan(s) and s >= factors[src] * f.ema for s, src in zip(stds, sources)]
                flipped += sum(a != b for a, b in zip(keep, earlier))
                compared += len(keep)
            else:
                assert keep == [True] * len(stds)
    assert compared == 27 * 2 * 24 and flipped > 0
