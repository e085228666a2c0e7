"""Benchmark scores from the stored judgements (``rm_r1.evaluation.scorers`` scorers over per-pair correctness)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rm_r1.evaluation.benchmarks import Comparison
from rm_r1.evaluation.modes import JudgeMode
from rm_r1.evaluation.scaling import meta_guided_keep
from rm_r1.evaluation.scorers import SCORERS, scorer


def check_scorable(benchmark: str, comparisons: Sequence[Comparison]) -> None:
    """Run the benchmark's scorer on the pairs (all scored wrong) before any judging, so that data it cannot score
    fails now, not after the judge has run."""
    SCORERS[benchmark]([{**c.meta, "correct": 0.0} for c in comparisons])


def score_judgements(
    benchmark: str,
    comparisons: Sequence[Comparison],
    judgements: dict[tuple[str, int], dict[str, Any]],
    mode: JudgeMode,
    *,
    seed: int,
    ks: Sequence[int] | None,
    both_orders: bool,
    meta: dict[tuple[str, int], float | None] | None = None,
    allow_partial: bool = False,
    unparsable_credit: float = 0.0,
) -> dict[str, Any]:
    """Benchmark scores from the stored judgements, re-reading every response with ``mode`` (its verdict rule).

    Returns {"parse_failures": count, "failed_judgements": count, "results": {label: {"scores", "accuracy",
    ["agreement"]}}} with labels ``greedy`` (one judgement per pair), ``both`` / ``mean`` (``--both-orders``) or
    ``voting@k`` for each k, and with ``meta`` (a meta score per judgement, None = unrated) ``meta@k``: voting over
    the best-rated max(1, k // 2) of the first k samples (``rm_r1.evaluation.scaling.meta_guided_keep``). A pair
    correct = its chosen reply wins; ``accuracy`` = mean correct over pairs. A failed judgement (no response) reads like
    an unparsable one (wrong alone; the mode's failure rule decides in voting) but is counted in ``failed_judgements``,
    not ``parse_failures``. Ties are settled by coins seeded with (``seed``, pair id, and the sample or k).

    ``unparsable_credit``: what a single judgement without an answer counts (``greedy``, and each order of
    ``both`` / ``mean``; ``both`` takes the lower of the two orders): 0 (wrong) by default, 0.5 under RewardBench's
    own rule (``rm_r1.judge.verdicts.UNPARSABLE_CREDIT``). Voting settles such samples by the mode's failure rule
    instead. ``allow_partial``: RewardBench's overall score averages the sections present
    (``rm_r1.evaluation.scorers.score_rewardbench``).
    """
    readings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    parse_failures = failed_judgements = 0
    for (pair_id, sample), record in sorted(judgements.items()):
        reading = mode.read(record["response"], record["swap"])
        if record["response"] is None:
            failed_judgements += 1
        else:
            parse_failures += reading[mode.key] is None
        readings[pair_id].append({"sample": sample, **reading})
    missing = [c.pair_id for c in comparisons if c.pair_id not in readings]
    if missing:
        raise ValueError(f"{len(missing)} pairs have no judgement (first: {missing[:3]}); rerun to judge them")
    score = scorer(benchmark, allow_partial)

    def result(correct: dict[str, float], agreement: dict[str, float] | None = None) -> dict[str, Any]:
        records = [{**c.meta, "correct": correct[c.pair_id]} for c in comparisons]
        out = {"scores": score(records), "accuracy": sum(correct.values()) / len(correct)}
        if agreement is not None:
            out["agreement"] = sum(agreement.values()) / len(agreement)
        return out

    def alone_correct(reading: dict[str, Any], pair_id: str) -> float:
        """One judgement on its own (its coin only settles a pointwise tie)."""
        if unparsable_credit and reading[mode.key] is None:
            return unparsable_credit
        return float(mode.vote([reading], random.Random(f"{seed}/{pair_id}/tie/{reading['sample']}"))[0])

    results: dict[str, Any] = {}
    if both_orders:
        per_order = {c.pair_id: [alone_correct(r, c.pair_id) for r in readings[c.pair_id]] for c in comparisons}
        if any(len(v) != 2 for v in per_order.values()):
            raise ValueError("--both-orders needs exactly two judgements per pair (samples 0 and 1)")
        results["both"] = result({p: min(v) for p, v in per_order.items()})
        results["mean"] = result({p: sum(v) / 2 for p, v in per_order.items()})
    elif ks:
        for k in ks:
            short = [c.pair_id for c in comparisons if len(readings[c.pair_id]) < k]
            if short:
                raise ValueError(f"voting@{k} needs {k} judgements per pair; {len(short)} pairs have fewer")
            correct, agreement = {}, {}
            for c in comparisons:
                ok, agree = mode.vote(readings[c.pair_id][:k], random.Random(f"{seed}/{c.pair_id}/vote/{k}"))
                correct[c.pair_id], agreement[c.pair_id] = float(ok), agree
            results[f"voting@{k}"] = result(correct, agreement)
        for k in ks if meta is not None else ():
            correct, agreement = {}, {}
            for c in comparisons:
                first = readings[c.pair_id][:k]
                kept = meta_guided_keep([meta.get((c.pair_id, r["sample"])) for r in first])
                rng = random.Random(f"{seed}/{c.pair_id}/meta/{k}")
                ok, agree = mode.vote([first[i] for i in kept], rng)
                correct[c.pair_id], agreement[c.pair_id] = float(ok), agree
            results[f"meta@{k}"] = result(correct, agreement)
    else:
        results["greedy"] = result({c.pair_id: alone_correct(readings[c.pair_id][0], c.pair_id) for c in comparisons})
    return {"parse_failures": parse_failures, "failed_judgements": failed_judgements, "results": results}
