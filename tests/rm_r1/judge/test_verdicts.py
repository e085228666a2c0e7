"""The verdict parser (rm_r1.judge.verdicts), each rule on valid and invalid outputs side by side."""

from __future__ import annotations

import pytest

from rm_r1.judge.verdicts import UNPARSABLE_CREDIT, VERDICT_TAGS, parse_verdict

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


def test_importing_the_parser_and_prompts_does_not_import_verl():
    import subprocess
    import sys

    code = (
        "import sys, rm_r1.judge.verdicts, rm_r1.judge.prompts, rm_r1.judge.instructions, rm_r1.training.reward\n"
        "assert 'verl' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
