"""The training rewards of a judge (rm_r1.training.reward): the pairwise preference reward and verl's compute_score,
and the pointwise strict-winner reward."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rm_r1.training.reward import compute_pointwise_score, compute_score, preference_reward, strict_winner_reward

A, B = "<answer>[[A]]</answer>", "<answer>[[B]]</answer>"
END = "<|im_end|>"


@pytest.mark.parametrize("label_a", ["model_a", "A"])
@pytest.mark.parametrize("label_b", ["model_b", "B"])
def test_preference_reward_is_plus_one_only_for_the_labelled_side(label_a, label_b):
    assert preference_reward("ok " + A, label_a) == 1.0
    assert preference_reward("ok " + A, label_b) == -1.0
    assert preference_reward("ok " + B, label_b) == 1.0
    assert preference_reward("ok " + B, label_a) == -1.0
    assert preference_reward(A + B, label_a) == -1.0
    assert preference_reward("", label_b) == -1.0
    assert preference_reward("<answer> [[B]] </answer>", label_b) == -1.0
    assert preference_reward("<answer> [[B]] </answer>", label_b, verdict_rule="last_answer") == 1.0


@pytest.mark.parametrize("label", ["model_c", "a", "Model_A", "", None, 1])
def test_unknown_label_is_an_error_naming_it(label):
    with pytest.raises(ValueError, match="unknown preference label"):
        preference_reward(A, label)
    with pytest.raises(ValueError, match=repr(label).replace("(", r"\(")):
        compute_score("skywork", A, label)


def test_compute_score_keys_and_values():
    right = compute_score("skywork", "reasoning " + B + END, "model_b")
    wrong = compute_score("skywork", "reasoning " + A + END, "model_b")
    missing = compute_score("skywork", "reasoning, no verdict", "model_a", extra_info={"index": 3})
    assert right == {"score": 1.0, "acc": 1.0, "verdict_found": 1.0}
    assert wrong == {"score": -1.0, "acc": 0.0, "verdict_found": 1.0}
    assert missing == {"score": -1.0, "acc": 0.0, "verdict_found": 0.0}


def test_compute_score_rule_is_a_reward_kwarg():
    spaced = "<answer> [[A]] </answer>"
    assert compute_score("s", spaced, "model_a")["score"] == -1.0
    assert compute_score("s", spaced, "model_a", verdict_rule="last_answer")["score"] == 1.0
    assert compute_score("s", "I pick [[A]].", "model_a", verdict_rule="anywhere")["score"] == 1.0
    # keywords verl's managers may add are accepted; anything else is a typo and named
    assert compute_score("s", A, "A", reward_router_address=None, reward_model_tokenizer=None)["acc"] == 1.0
    with pytest.raises(TypeError, match="rules"):
        compute_score("s", A, "model_a", rules="anywhere")
    with pytest.raises(TypeError, match="the only one it takes is 'verdict_rule'"):  # the key's old name
        compute_score("s", A, "model_a", rule="anywhere")
    with pytest.raises(ValueError, match="'anywhre'"):
        compute_score("s", A, "model_a", verdict_rule="anywhre")


def _reference_strict_tail(text: str, side: str) -> bool:
    """The reference rule written out independently: the labelled tag in the window, the other one absent."""
    window = text[len(text) - 80 :] if len(text) > 80 else text
    mine, other = (A, B) if side == "A" else (B, A)
    return window.find(mine) != -1 and window.find(other) == -1


@given(
    prefix=st.text(alphabet="ab <>[]/AB\n", max_size=120),
    verdict=st.sampled_from(["", A, B, A + B, "<answer> [[A]]</answer>"]),
    suffix=st.text(alphabet="xy <>\n", max_size=90),
    side=st.sampled_from(["A", "B"]),
)
def test_strict_tail_matches_an_independent_reading(prefix, verdict, suffix, side):
    text = prefix + verdict + suffix
    expected = 1.0 if _reference_strict_tail(text, side) else -1.0
    assert preference_reward(text, "model_" + side.lower()) == expected


@pytest.mark.parametrize(
    "scores, best, reward",
    [
        ((7, 4), 0, 1.0),
        ((7, 4), 1, -1.0),
        ((5, 5), 0, -1.0),
        ((3, 9, 8), 1, 1.0),
        ((3, 9, 9), 1, -1.0),
        (None, 0, -1.0),
    ],
)
def test_strict_winner_reward(scores, best, reward):
    assert strict_winner_reward(scores, best) == reward


def test_strict_winner_reward_bad_index():
    with pytest.raises(ValueError, match="best=2"):
        strict_winner_reward((1, 2), 2)


def test_compute_pointwise_score_for_verl():
    assert compute_pointwise_score("rm", "Scores: \\boxed{8, 3}", "model_a") == {
        "score": 1.0,
        "acc": 1.0,
        "scores_found": 1.0,
    }
    assert compute_pointwise_score("rm", "Scores: \\boxed{8, 3}", "model_b") == {
        "score": -1.0,
        "acc": 0.0,
        "scores_found": 1.0,
    }
    assert compute_pointwise_score("rm", "no scores", "model_a") == {"score": -1.0, "acc": 0.0, "scores_found": 0.0}
    assert compute_pointwise_score("rm", "\\boxed{1, 2, 9}", 2, {"num_replies": 3})["score"] == 1.0
    with pytest.raises(ValueError, match="not one of the 2 replies"):
        compute_pointwise_score("rm", "\\boxed{1, 2}", 5)
    with pytest.raises(ValueError, match="preference label"):
        compute_pointwise_score("rm", "\\boxed{1, 2}", "chosen")
    with pytest.raises(TypeError, match="unexpected reward kwargs"):
        compute_pointwise_score("rm", "\\boxed{1, 2}", "model_a", verdict_rule="anywhere")
