"""The verdict parser and the preference reward, each rule on valid and invalid outputs side by side."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rm_r1.reward import UNPARSABLE_CREDIT, VERDICT_TAGS, compute_score, parse_verdict, preference_reward

A, B = "<answer>[[A]]</answer>", "<answer>[[B]]</answer>"
END = "<|im_end|>"


def test_tags_are_the_paper_strings():
    assert VERDICT_TAGS == {"A": A, "B": B}


# (response, strict_tail, last_answer, anywhere)
CASES = [
    ("<eval>A is right.</eval>\n" + A + END, "A", "A", "A"),
    ("<eval>B is right.</eval>\n" + B, "B", "B", "B"),
    ("", None, None, None),
    ("no verdict at all", None, None, None),
    # whitespace inside the block: only the robust rule accepts it; the marks are still there for `anywhere`
    ("<answer> [[A]] </answer>" + END, None, "A", "A"),
    ("<answer>\n[[B]]\n</answer>", None, "B", "B"),
    # both tags at the end
    (A + B, None, "B", None),
    # a verdict followed by 58 characters is still inside the 80-character window, 59 is not
    (A + "x" * 58, "A", "A", "A"),
    (A + "x" * 59, None, "A", "A"),
    # the end token counts in the window: 48 characters of text + <|im_end|> (10) = 58
    (A + "x" * 48 + END, "A", "A", "A"),
    (A + "x" * 49 + END, None, "A", "A"),
    # the judge mentions the other mark while reasoning, then gives its verdict
    ("Chatbot B wrote [[B]] somewhere; " + "y" * 100 + A, "A", "A", None),
    # a changed mind: the last block decides the robust rule
    (B + "\nWait, let me reconsider. " + "z" * 80 + A + END, "A", "A", None),
    (A + "\nActually " + B, None, "B", None),
    # truncated: the last <answer> is never closed (the tail window still holds the earlier tag)
    (A + " more thoughts <answer>[[", "A", None, "A"),
    ("x" * 80 + A + "y" * 70 + "<answer>[[", None, None, "A"),
    # the last block holds something other than a bare mark
    ("<answer>Chatbot [[A]] is better</answer>", None, None, "A"),
    ("<answer>[[C]]</answer>", None, None, None),
    ("<answer>A</answer>", None, None, None),
    ("[[A]]", None, None, "A"),
]


@pytest.mark.parametrize(("response", "strict", "last", "anywhere"), CASES)
def test_parse_verdict_rules(response, strict, last, anywhere):
    assert parse_verdict(response) == strict
    assert parse_verdict(response, "strict_tail") == strict
    assert parse_verdict(response, "last_answer") == last
    assert parse_verdict(response, "anywhere") == anywhere


@pytest.mark.parametrize(
    ("response", "verdict"),
    [
        (A + END, "A"),
        (B, "B"),
        (A + B, "A"),  # both: RewardBench's generative scoring looks for [[A]] first
        (B + "\nActually " + A, "A"),
        ("Chatbot [[B]] is better" + "x" * 200, "B"),  # anywhere, no tag needed, no window
        ("<answer>[[C]]</answer>", None),
        ("", None),
    ],
)
def test_rewardbench_rule_prefers_a_and_counts_no_verdict_as_half(response, verdict):
    assert parse_verdict(response, "rewardbench") == verdict
    assert UNPARSABLE_CREDIT == {"rewardbench": 0.5}  # every other rule scores a missing verdict wrong


def test_unknown_rule_and_non_string_response_are_errors():
    with pytest.raises(ValueError, match="'tail'"):
        parse_verdict(A, "tail")
    with pytest.raises(ValueError, match="str"):
        parse_verdict(None)  # type: ignore[arg-type]


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
    assert preference_reward("<answer> [[B]] </answer>", label_b, rule="last_answer") == 1.0


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
    assert compute_score("s", spaced, "model_a", rule="last_answer")["score"] == 1.0
    assert compute_score("s", "I pick [[A]].", "model_a", rule="anywhere")["score"] == 1.0
    # keywords verl's managers may add are accepted; anything else is a typo and named
    assert compute_score("s", A, "A", reward_router_address=None, reward_model_tokenizer=None)["acc"] == 1.0
    with pytest.raises(TypeError, match="rules"):
        compute_score("s", A, "model_a", rules="anywhere")
    with pytest.raises(ValueError, match="'anywhre'"):
        compute_score("s", A, "model_a", rule="anywhre")


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


def test_importing_the_parser_and_prompts_does_not_import_verl():
    import subprocess
    import sys

    code = "import sys, rm_r1.reward, rm_r1.prompts; assert 'verl' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
