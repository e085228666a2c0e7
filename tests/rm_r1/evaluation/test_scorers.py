"""Benchmark scoring against hand-computed numbers (docs/rm_r1.md#evaluation)."""

from __future__ import annotations

import pytest

from rm_r1.evaluation.scorers import REWARDBENCH_SECTIONS, score_rewardbench, score_rmb, score_rmbench


def _rb(subset, *corrects):
    return [{"subset": subset, "correct": c} for c in corrects]


def test_rewardbench_sections_weighted_by_example_count():
    records = _rb("alpacaeval-easy", 1, 0)  # 0.5
    for subset in ("alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"):
        records += _rb(subset, 1)
    for subset in REWARDBENCH_SECTIONS["Chat Hard"]:
        records += _rb(subset, 0, 0)
    for subset in REWARDBENCH_SECTIONS["Safety"]:
        records += _rb(subset, True)
    records += _rb("math-prm", 1, 1, 1)  # three records, but weight 984
    for lang in ("cpp", "go", "java", "js", "python", "rust"):
        records += _rb(f"hep-{lang}", 0)
    scores = score_rewardbench(records)
    chat = (100 * 0.5 + 95 + 95 + 28 + 40) / (100 + 95 + 95 + 28 + 40)
    assert scores["Chat"] == pytest.approx(chat)
    assert scores["Chat Hard"] == 0.0
    assert scores["Safety"] == 1.0
    assert scores["Reasoning"] == pytest.approx(984 / (984 + 6 * 164))
    assert scores["score"] == pytest.approx((chat + 0.0 + 1.0 + 0.5) / 4)
    assert scores["subsets"]["alpacaeval-easy"] == {"accuracy": 0.5, "count": 2}
    assert scores["missing_subsets"] == [] and scores["missing_sections"] == []


def test_rewardbench_missing_subsets_and_sections_are_reported():
    scores = score_rewardbench(_rb("hep-go", 1, 0) + _rb("math-prm", 0))
    assert scores["Reasoning"] == pytest.approx((164 * 0.5 + 984 * 0) / (164 + 984))
    assert scores["missing_sections"] == ["Chat", "Chat Hard", "Safety"]
    assert "hep-rust" in scores["missing_subsets"] and "hep-go" not in scores["missing_subsets"]
    assert scores["score"] is None and scores["averaged_sections"] == []
    assert "Chat" not in scores
    partial = score_rewardbench(_rb("hep-go", 1, 0) + _rb("math-prm", 0), allow_partial=True)
    assert partial["score"] == partial["Reasoning"] and partial["averaged_sections"] == ["Reasoning"]


def _without_safety():
    """Chat 1.0, Chat Hard 0.6, Reasoning 0.8 (every subset alike), no Safety record."""
    records = []
    for subset in REWARDBENCH_SECTIONS["Chat"]:
        records += _rb(subset, 1)
    for subset in REWARDBENCH_SECTIONS["Chat Hard"]:
        records += _rb(subset, 1, 1, 1, 0, 0)
    for subset in REWARDBENCH_SECTIONS["Reasoning"]:
        records += _rb(subset, 1, 1, 1, 1, 0)
    return records


def test_rewardbench_without_a_section_has_no_overall_score_unless_partial_is_allowed():
    # RewardBench's own code scores the missing section 0: (1.0 + 0.6 + 0 + 0.8) / 4 = 0.6; averaging the three
    # present (0.8) silently overstates it, so the overall score is withheld.
    scores = score_rewardbench(_without_safety())
    assert (scores["Chat"], scores["Chat Hard"], scores["Reasoning"]) == pytest.approx((1.0, 0.6, 0.8))
    assert scores["score"] is None and scores["missing_sections"] == ["Safety"]
    partial = score_rewardbench(_without_safety(), allow_partial=True)
    assert partial["score"] == pytest.approx(0.8)
    assert partial["averaged_sections"] == ["Chat", "Chat Hard", "Reasoning"]
    full = score_rewardbench(_without_safety() + _rb("donotanswer", 1))
    assert full["score"] == pytest.approx((1.0 + 0.6 + 1.0 + 0.8) / 4)
    assert full["averaged_sections"] == list(REWARDBENCH_SECTIONS)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"subset": "alpacaeval", "correct": 1}, "unknown RewardBench subset 'alpacaeval'"),
        ({"subset": "hep-go", "correct": 2}, "'correct' must be a number in"),
        ({"subset": "hep-go", "correct": None}, "'correct' must be a number in"),
        ({"subset": "hep-go"}, "'correct' must be a number in"),
    ],
)
def test_rewardbench_bad_records(bad, match):
    with pytest.raises(ValueError, match=match):
        score_rewardbench([bad])


def _matrix(sample, domain, m):
    return [
        {"id": sample, "domain": domain, "chosen_style": i, "rejected_style": j, "correct": m[i][j]}
        for i in range(3)
        for j in range(3)
    ]


def test_rmbench_true_matrix_per_domain_and_overall():
    # chat: two samples; the mean matrix is [[1, .5, 0], [1, 1, .5], [1, 1, 1]]
    chat = _matrix("c1", "chat", [[1, 1, 0], [1, 1, 1], [1, 1, 1]]) + _matrix(
        "c2", "chat", [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    )
    # safety pools the two files: refuse all right, response all wrong -> every cell 0.5
    safety = _matrix("s1", "safety-refuse", [[1] * 3] * 3) + _matrix("s2", "safety-response", [[0] * 3] * 3)
    # math: only the lower triangle right
    math = _matrix("m1", "math", [[0, 0, 0], [1, 0, 0], [1, 1, 0]])
    scores = score_rmbench(chat + safety + math)
    assert scores["chat"]["hard"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert scores["chat"]["normal"] == 1.0
    assert scores["chat"]["easy"] == 1.0
    assert scores["chat"]["total"] == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert scores["chat"]["samples"] == 2
    assert scores["safety"] == {"hard": 0.5, "normal": 0.5, "easy": 0.5, "total": 0.5, "samples": 2}
    assert scores["math"]["hard"] == 0 and scores["math"]["normal"] == 0 and scores["math"]["easy"] == 1
    assert scores["missing_domains"] == ["code"]
    assert scores["hard"] == pytest.approx((1 / 3 + 0 + 0.5) / 3)
    assert scores["easy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert scores["total"] == pytest.approx((scores["chat"]["total"] + 1 / 3 + 0.5) / 3)


def test_rmbench_same_id_in_two_domains_is_two_samples():
    scores = score_rmbench(_matrix(7, "chat", [[1] * 3] * 3) + _matrix(7, "code", [[0] * 3] * 3))
    assert scores["chat"]["total"] == 1.0 and scores["code"]["total"] == 0.0


def test_rmbench_incomplete_or_repeated_matrix_names_the_sample():
    records = _matrix("x9", "code", [[1] * 3] * 3)
    with pytest.raises(ValueError, match=r"'x9' \(code\) lacks cells \[\(2, 1\)\]"):
        score_rmbench([r for r in records if (r["chosen_style"], r["rejected_style"]) != (2, 1)])
    with pytest.raises(ValueError, match=r"'x9' \(code\) has cell \(0, 0\) twice"):
        score_rmbench(records + records[:1])


@pytest.mark.parametrize(
    "change, match",
    [
        ({"domain": "poetry"}, "unknown RM-Bench domain 'poetry'"),
        ({"chosen_style": 3}, "'chosen_style' must be 0, 1 or 2"),
        ({"rejected_style": "0"}, "'rejected_style' must be 0, 1 or 2"),
    ],
)
def test_rmbench_bad_records(change, match):
    with pytest.raises(ValueError, match=match):
        score_rmbench([{"id": 1, "domain": "chat", "chosen_style": 0, "rejected_style": 0, "correct": 1, **change}])


def test_rmb_four_parts():
    records = [{"section": "helpfulness", "kind": "pairwise", "correct": c} for c in (1, 0, 1)]
    records += [{"section": "harmlessness", "kind": "pairwise", "correct": 1}]
    records += [{"section": "helpfulness", "kind": "bon", "group": "g1", "correct": c} for c in (1, 1)]
    records += [{"section": "helpfulness", "kind": "bon", "group": "g2", "correct": c} for c in (1, 0, 1)]
    records += [{"section": "harmlessness", "kind": "bon", "group": "g3", "correct": 0}]
    scores = score_rmb(records)
    assert scores["pairwise_helpfulness"] == pytest.approx(2 / 3)
    assert scores["pairwise_harmlessness"] == 1.0
    assert scores["bon_helpfulness"] == 0.5
    assert scores["bon_harmlessness"] == 0.0
    assert scores["score"] == pytest.approx((2 / 3 + 1 + 0.5 + 0) / 4)
    assert scores["counts"] == {
        "pairwise_helpfulness": 3,
        "pairwise_harmlessness": 1,
        "bon_helpfulness": 2,
        "bon_harmlessness": 1,
    }
    assert scores["missing_parts"] == []


def test_rmb_per_category_scores():
    help_code, help_chat = "Pairwise_set/Helpfulness/Code/Data Management", "Pairwise_set/Helpfulness/Chat/Discussion"
    bon = "BoN_set/Harmlessness/S2"
    records = [{"section": "helpfulness", "kind": "pairwise", "category": help_code, "correct": c} for c in (1, 0, 1)]
    records += [{"section": "helpfulness", "kind": "pairwise", "category": help_chat, "correct": 0}]
    for group, corrects in (("g1", (1, 1)), ("g2", (1, 0)), ("g3", (1,))):
        records += [
            {"section": "harmlessness", "kind": "bon", "group": group, "category": bon, "correct": c} for c in corrects
        ]
    scores = score_rmb(records)
    assert scores["categories"] == {
        bon: {"accuracy": pytest.approx(2 / 3), "count": 3},  # groups g1, g3 fully right; g2 not
        help_chat: {"accuracy": 0.0, "count": 1},
        help_code: {"accuracy": pytest.approx(2 / 3), "count": 3},
    }
    assert list(scores["categories"]) == sorted(scores["categories"])
    assert scores["pairwise_helpfulness"] == pytest.approx(2 / 4)  # micro average over both categories
    assert score_rmb([{"section": "helpfulness", "kind": "pairwise", "correct": 1}])["categories"] == {}


def test_rmb_bon_group_needs_every_pair_fully_right_and_missing_parts_reported():
    records = [{"section": "harmlessness", "kind": "bon", "group": 1, "correct": c} for c in (1, 0.5)]
    scores = score_rmb(records)
    assert scores["bon_harmlessness"] == 0.0
    assert scores["score"] == 0.0
    assert scores["missing_parts"] == ["pairwise_helpfulness", "pairwise_harmlessness", "bon_helpfulness"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"section": "honesty", "kind": "pairwise", "correct": 1}, "'section' must be one of"),
        ({"section": "helpfulness", "kind": "listwise", "correct": 1}, "'kind' must be one of"),
        ({"section": "helpfulness", "kind": "bon", "correct": 1}, "has no 'group'"),
    ],
)
def test_rmb_bad_records(bad, match):
    with pytest.raises(ValueError, match=match):
        score_rmb([bad])
