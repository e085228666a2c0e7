"""The learning-curve tasks: generators, surface forms, the true-equivalence grader and the rule verifier."""

from __future__ import annotations

from collections import Counter

import pytest

from rlpr.evaluation.validation import TRAINING_ROLLOUT
from rlpr.experiments import tasks
from rlpr.experiments.tasks import (
    FORMS,
    compute_score,
    exact_match,
    make_problems,
    number_words,
    parse_number,
    render,
    roman,
    truly_correct,
    warm_start_examples,
)


@pytest.mark.parametrize(
    ("n", "words", "numeral"),
    [(1, "one", "I"), (4, "four", "IV"), (9, "nine", "IX"), (12, "twelve", "XII"), (14, "fourteen", "XIV"),
     (19, "nineteen", "XIX"), (20, "twenty", "XX"), (24, "twenty-four", "XXIV"), (27, "twenty-seven", "XXVII")],
)  # fmt: skip
def test_forms_by_hand(n, words, numeral):
    assert number_words(n) == words
    assert roman(n) == numeral
    assert render(n, "digits") == str(n)
    assert render(n, "units") == f"{n} units"
    for form in FORMS:
        assert parse_number(render(n, form)) == n
        assert parse_number(f"  {render(n, form)} ") == n


@pytest.mark.parametrize("text", [None, "", "12 apples", "Twelve", "xii", "twelve units", "1 2", "28.0"])
def test_parse_number_rejects_other_text(text):
    assert parse_number(text) is None


def test_forms_out_of_range_are_errors():
    for bad in (0, 40):
        with pytest.raises(ValueError, match="1..39"):
            number_words(bad)
        with pytest.raises(ValueError, match="1..39"):
            roman(bad)
    with pytest.raises(ValueError, match="unknown form"):
        render(3, "hex")


def test_problems_split_seeded_and_disjoint():
    train, val = make_problems("exact", seed=0)
    assert (len(train), len(val)) == (529, 200)  # 9**3 triples
    triples = {(p.a, p.b, p.c) for p in train} | {(p.a, p.b, p.c) for p in val}
    assert len(triples) == 729
    assert make_problems("exact", 0) == (train, val)
    assert make_problems("exact", 1) != (train, val)
    assert all(p.reference == str(p.a + p.b + p.c) for p in train + val)
    p = train[0]
    assert p.messages() == [{"role": "system", "content": tasks.SYSTEM_PROMPT},
                            {"role": "user", "content": f"{p.a}+{p.b}+{p.c}"}]  # fmt: skip


def test_freeform_references_use_every_form():
    train, val = make_problems("freeform", seed=0)
    forms = Counter()
    for p in train + val:
        matches = [f for f in FORMS if render(p.total, f) == p.reference]
        assert len(matches) == 1
        forms[matches[0]] += 1
    assert set(forms) == set(FORMS)
    assert min(forms.values()) > 729 / len(FORMS) * 0.75  # drawn uniformly, not all in one form


def test_graders():
    ok = "<think> 3+4=7 </think> <answer> XII </answer>"
    assert truly_correct(ok, "12") and truly_correct(ok, "twelve") and truly_correct(ok, "12 units")
    assert exact_match(ok, "XII") == 1.0 and exact_match(ok, "12") == 0.0
    assert not truly_correct("<think> 3+4=7 </think> <answer> 13 </answer>", "12")
    assert not truly_correct("<think> 3+4=7 </think>", "12")  # no answer
    assert truly_correct("<answer> twelve </answer>", "XII")  # a direct answer counts
    with pytest.raises(ValueError, match="names no number"):
        truly_correct(ok, "a dozen")


def test_compute_score_grades_validation_and_skips_training_rollouts():
    assert compute_score("learning_curve/freeform", "<answer> XII </answer>", "twelve") == {
        "score": 1.0, "acc": 1.0, "graded": 1.0}  # fmt: skip
    assert compute_score("learning_curve/freeform", "<answer> XI </answer>", "twelve")["acc"] == 0.0
    skipped = compute_score("s", "<answer> XII </answer>", "12", {TRAINING_ROLLOUT: True})
    assert skipped["graded"] == 0.0
    compute_score("s", "x", "12", None, reward_router_address=None)  # verl's own keyword is accepted
    with pytest.raises(TypeError, match="judge_model"):
        compute_score("s", "x", "12", None, judge_model="m")


def test_warm_start_examples_noise_and_direct_answers():
    train, _ = make_problems("exact", seed=0)
    examples = warm_start_examples("exact", train, seed=0, copies=2, noisy_frac=0.4, direct_frac=0.2)
    assert len(examples) == 2 * len(train)
    by_question = {p.question: p for p in train}
    direct = noisy = consistent = 0
    for messages, response in examples:
        p = by_question[messages[-1]["content"]]
        if response.startswith("<answer>"):
            direct += 1
            assert response == f"<answer> {p.total} </answer>"
            continue
        prefix = f"<think> {p.a}+{p.b}="
        assert response.startswith(prefix)
        partial = int(response[len(prefix) :].split()[0])
        noisy += partial != p.a + p.b
        assert abs(partial - (p.a + p.b)) <= 2
        consistent += response.endswith(f"<answer> {partial + p.c} </answer>")
    assert consistent == len(examples) - direct  # every answer follows its own reasoning
    n = len(examples)
    assert 0.15 * n < direct < 0.25 * n
    assert 0.3 * (n - direct) < noisy < 0.5 * (n - direct)
    free = warm_start_examples("freeform", make_problems("freeform", 0)[0], seed=0)
    assert any("<answer> XI" in r for _, r in free) and any(" units </answer>" in r for _, r in free)
