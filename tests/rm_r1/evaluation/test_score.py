"""Scoring stored judgements: voting over samples in each mode, with its tie and failure rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from rm_r1.evaluation.benchmarks import load_rmb
from rm_r1.evaluation.modes import make_mode
from rm_r1.evaluation.score import score_judgements

DATA = Path(__file__).parent / "eval_data"


def _judgement(pair_id, sample, swap, response):
    return (pair_id, sample), {"pair_id": pair_id, "sample": sample, "swap": swap, "response": response}


def test_pointwise_voting_sums_scores_in_the_original_order():
    pairs = [p for p in load_rmb(DATA / "rmb") if p.pair_id == "harm-pair-1"]
    judgements = dict(
        [
            _judgement("harm-pair-1", 0, False, "Scores: \\boxed{7, 4}"),  # chosen 7, rejected 4
            _judgement("harm-pair-1", 1, True, "Scores: \\boxed{6, 8}"),  # shown swapped: chosen 8, rejected 6
            _judgement("harm-pair-1", 2, False, "Scores: \\boxed{2, 9}"),  # chosen 2, rejected 9
            _judgement("harm-pair-1", 3, False, "no scores"),
        ]
    )
    scored = score_judgements(
        "rmb", pairs, judgements, make_mode("pointwise"), seed=0, ks=[1, 2, 3, 4], both_orders=False
    )
    results = scored["results"]
    assert scored["parse_failures"] == 1
    assert results["voting@1"]["accuracy"] == 1.0 and results["voting@1"]["agreement"] == 1.0
    assert results["voting@2"]["accuracy"] == 1.0  # totals 15 vs 10
    assert results["voting@3"]["accuracy"] == 0.0  # totals 17 vs 19
    assert results["voting@3"]["agreement"] == pytest.approx(1 / 3)  # only sample 2 prefers the rejected reply
    assert results["voting@4"]["accuracy"] == 0.0 and results["voting@4"]["agreement"] == pytest.approx(1 / 4)
    assert results["voting@4"]["scores"]["pairwise_harmlessness"] == 0.0


def test_pairwise_voting_rules_in_scoring():
    pairs = [p for p in load_rmb(DATA / "rmb") if p.pair_id == "harm-pair-1"]
    judgements = dict(
        [
            _judgement("harm-pair-1", 0, True, "<answer>[[B]]</answer>"),  # chosen
            _judgement("harm-pair-1", 1, False, "<answer>[[B]]</answer>"),  # rejected
            _judgement("harm-pair-1", 2, False, "unsure"),
        ]
    )

    def accuracy(k, **rules):
        mode = make_mode("pairwise", verdict_rule="anywhere", **rules)
        scored = score_judgements("rmb", pairs, judgements, mode, seed=0, ks=[k], both_orders=False)
        return scored["results"][f"voting@{k}"]["accuracy"]

    assert accuracy(1, tie="wrong", failures="abstain") == 1.0
    assert accuracy(2, tie="wrong", failures="abstain") == 0.0  # 1-1 tie
    assert accuracy(3, tie="wrong", failures="wrong") == 0.0  # three-way tie with "no decision"
    coin = [accuracy(2, tie="random", failures="abstain") for _ in range(3)]
    assert len(set(coin)) == 1  # the coin is seeded by (seed, pair, k)
    with pytest.raises(ValueError, match="voting@4 needs 4 judgements"):
        accuracy(4, tie="wrong", failures="abstain")


def test_meta_guided_voting_keeps_the_best_rated_half_before_voting():
    pairs = [p for p in load_rmb(DATA / "rmb") if p.pair_id == "harm-pair-1"]
    picks = ["[[B]]", "[[B]]", "[[A]]", "[[A]]", "[[A]]", "[[B]]"]  # swap False: A = chosen
    judgements = dict(_judgement("harm-pair-1", s, False, f"<answer>{v}</answer>") for s, v in enumerate(picks))
    meta = {("harm-pair-1", s): m for s, m in enumerate([9.0, 8.0, 2.0, None, 7.0, 1.0])}
    scored = score_judgements(
        "rmb", pairs, judgements, make_mode("pairwise", tie="wrong"), seed=0, ks=[1, 2, 4, 6], both_orders=False,
        meta=meta,
    )  # fmt: skip
    results = scored["results"]
    assert list(results) == ["voting@1", "voting@2", "voting@4", "voting@6", "meta@1", "meta@2", "meta@4", "meta@6"]
    # plain: 1 rejected; 2 rejected; 4: 2-2 tie -> wrong under tie=wrong; 6: 3-3 tie -> wrong
    assert [results[f"voting@{k}"]["accuracy"] for k in (1, 2, 4, 6)] == [0.0, 0.0, 0.0, 0.0]
    # meta@1 keeps sample 0 (B); meta@2 keeps the better of 9, 8 (sample 0, B); meta@4 keeps samples 0, 1 (9, 8;
    # None ranks last): B, B; meta@6 keeps 0, 1, 4 (9, 8, 7): B, B, A -> rejected
    assert [results[f"meta@{k}"]["accuracy"] for k in (1, 2, 4, 6)] == [0.0, 0.0, 0.0, 0.0]
    meta = {("harm-pair-1", s): m for s, m in enumerate([1.0, 2.0, 6.0, 5.0, 9.0, None])}
    scored = score_judgements(
        "rmb", pairs, judgements, make_mode("pairwise", tie="wrong"), seed=0, ks=[2, 4, 6], both_orders=False,
        meta=meta,
    )  # fmt: skip
    results = scored["results"]
    # meta@2 keeps sample 1 (2 > 1): B; meta@4 keeps 2, 3 (6, 5): A, A; meta@6 keeps 2, 3, 4 (6, 5, 9): A, A, A
    assert [results[f"meta@{k}"]["accuracy"] for k in (2, 4, 6)] == [0.0, 1.0, 1.0]
    assert results["meta@4"]["agreement"] == 1.0


def _rewardbench_pairs():
    from rm_r1.evaluation.benchmarks import Comparison

    return [Comparison(f"p{i}", "q", "good", "bad", {"subset": "hep-go"}) for i in range(4)]


def test_rewardbench_rule_counts_a_missing_verdict_as_half_and_prefers_a():
    pairs = _rewardbench_pairs()
    judgements = dict(
        [
            _judgement("p0", 0, False, "<answer>[[A]]</answer>"),  # chosen shown as A: right
            _judgement("p1", 0, True, "[[B]] ... no, [[A]]"),  # both marks: A, i.e. the rejected reply: wrong
            _judgement("p2", 0, False, "I cannot decide"),  # no verdict: 0.5
            _judgement("p3", 0, True, None),  # refused by the server: no verdict either, 0.5
        ]
    )

    def greedy(rule, credit):
        mode = make_mode("pairwise", verdict_rule=rule)
        scored = score_judgements(
            "rewardbench", pairs, judgements, mode, seed=0, ks=None, both_orders=False, unparsable_credit=credit
        )
        return scored["results"]["greedy"]

    rewardbench = greedy("rewardbench", 0.5)
    assert rewardbench["accuracy"] == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
    assert rewardbench["scores"]["subsets"]["hep-go"]["accuracy"] == pytest.approx(0.5)
    assert greedy("anywhere", 0.0)["accuracy"] == pytest.approx(1 / 4)  # both marks and no verdict: wrong


def test_both_orders_with_half_credit_takes_the_lower_order():
    pairs = _rewardbench_pairs()[:2]
    judgements = dict(
        [
            _judgement("p0", 0, False, "[[A]]"),  # right
            _judgement("p0", 1, True, "unsure"),  # 0.5
            _judgement("p1", 0, False, "[[A]]"),  # right
            _judgement("p1", 1, True, "[[B]]"),  # right
        ]
    )
    scored = score_judgements(
        "rewardbench",
        pairs,
        judgements,
        make_mode("pairwise", verdict_rule="rewardbench"),
        seed=0,
        ks=None,
        both_orders=True,
        unparsable_credit=0.5,
    )
    assert scored["results"]["both"]["accuracy"] == pytest.approx((0.5 + 1) / 2)
    assert scored["results"]["mean"]["accuracy"] == pytest.approx((0.75 + 1) / 2)


def test_allow_partial_reaches_the_rewardbench_scorer():
    pairs = _rewardbench_pairs()[:1]
    judgements = dict([_judgement("p0", 0, False, "[[A]]")])
    mode = make_mode("pairwise")
    for allow, score in ((False, None), (True, 1.0)):
        scored = score_judgements(
            "rewardbench", pairs, judgements, mode, seed=0, ks=None, both_orders=False, allow_partial=allow
        )
        assert scored["results"]["greedy"]["scores"]["score"] == score
