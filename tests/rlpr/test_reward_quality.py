"""scripts/reward_quality.py: ROC-AUC against a rank-statistic second implementation, and a CPU run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).parents[2]
DATA = Path(__file__).parent / "data"
_spec = importlib.util.spec_from_file_location("reward_quality", REPO / "scripts" / "reward_quality.py")
rq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rq)


def pairwise_auc(scores, labels):
    """Mann-Whitney: the share of (correct, incorrect) pairs ordered right, ties counting one half."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize(
    ("scores", "labels", "auc"),
    [
        ([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0], 0.75),  # pairs: 0.9>0.8, 0.9>0.6, 0.7<0.8, 0.7>0.6
        ([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], 1.0),
        ([0.1, 0.2, 0.3, 0.4], [1, 1, 0, 0], 0.0),
        ([0.5, 0.5, 0.5], [True, False, False], 0.5),
        ([1.0, 0.0, 1.0, 1.0, 0.0], [1, 0, 0, 1, 0], 5 / 6),  # 2 pos x 3 neg; one tie with a negative
    ],
)
def test_roc_auc_by_hand(scores, labels, auc):
    assert rq.roc_auc(scores, labels) == pytest.approx(auc)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]), st.booleans()), min_size=2, max_size=40))
def test_roc_auc_equals_the_rank_statistic(pairs):
    scores, labels = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(set(labels)) < 2:
        return
    assert rq.roc_auc(scores, labels) == pytest.approx(pairwise_auc(scores, labels))
    fpr, tpr = rq.roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert fpr == sorted(fpr) and tpr == sorted(tpr)


@pytest.mark.parametrize(
    ("scores", "labels", "match"),
    [([0.1, 0.2], [1, 1], "both"), ([0.1, 0.2], [1, 2], "label 1"), ([0.1], [0, 1], "scores")],
)
def test_roc_auc_rejects_bad_input(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        rq.roc_auc(scores, labels)


def test_bad_rows_are_named(tiny_model, small_tokenizer):
    with pytest.raises(ValueError, match="row 0 has no 'correct'"):
        rq.score_rows(tiny_model, small_tokenizer, [{"prompt": "q", "response": "r", "reference": "a"}])


def test_cpu_run_with_the_tiny_model(tiny_model, small_tokenizer, tmp_path):
    import rlpr
    from rlpr.data.prompts import build_r1_messages

    out = tmp_path / "rq"
    rq.main(
        [
            "--model",
            tiny_model.name_or_path,
            "--data",
            str(DATA / "reward_quality_rows.jsonl"),
            "--output-dir",
            str(out),
        ]
    )
    scored = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    rows = [json.loads(x) for x in (DATA / "reward_quality_rows.jsonl").read_text().splitlines()]
    assert [s["correct"] for s in scored] == [int(r["correct"]) for r in rows]

    # r of row 2 recomputed directly through the public single-example API
    text = small_tokenizer.apply_chat_template(
        build_r1_messages(rows[2]["prompt"]), tokenize=False, add_generation_prompt=True
    )
    prompt_ids = small_tokenizer(text, add_special_tokens=False)["input_ids"]
    response_ids = small_tokenizer(rows[2]["response"], add_special_tokens=False)["input_ids"]
    r = rlpr.score_response(tiny_model, small_tokenizer, prompt_ids, response_ids, "42")
    assert scored[2]["r"] == pytest.approx(r, rel=1e-5)
    assert 0.0 < scored[2]["seq_likelihood"] <= scored[2]["r"]  # a product of probabilities <= their mean

    assert scored[5]["valid"] is False and scored[5]["r"] == 0.0 and scored[5]["seq_likelihood"] == 0.0
    assert scored[0]["r_prime"] == scored[1]["r_prime"]  # r' depends on (prompt, reference) only
    for s in scored:
        assert s["r_hat"] == pytest.approx(min(max(s["r"] - s["r_prime"], 0.0), 1.0))
    assert [s["rule"] for s in scored] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]

    table = json.loads((out / "reward_quality.json").read_text())
    assert table["rule"]["roc_auc"] == 1.0
    for name in ("r", "r_hat", "seq_likelihood"):
        values = [s[name] for s in scored]
        assert table[name]["roc_auc"] == pytest.approx(pairwise_auc(values, [s["correct"] for s in scored]))
    md = (out / "reward_quality.md").read_text()
    assert "| rule grader | 1.000 |" in md and "6 rows; 1 responses invalid" in md
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
