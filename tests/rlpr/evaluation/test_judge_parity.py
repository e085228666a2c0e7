"""Parity of the validation judge with the paper's official evaluation code (issue 19, items 1, 2 and 4).

The second implementation here is written from what the official code does, not from this project's code: its
judge's reply is lower-cased and every ``\\boxed{<one letter>}`` in it is found; the last such letter is the verdict
(Y for free-form questions; for multiple choice the letter, compared with the reference letter). A reply without one
scores the sample wrong. Its multiple-choice judge is shown the question and the full response only.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from rlpr.evaluation.judge import (
    PAPER_CHOICE_SYSTEM_PROMPT,
    PAPER_SYSTEM_PROMPT,
    JudgeError,
    paper_messages,
    parse_paper_verdict,
)
from rlpr.evaluation.validation import compute_score

BOX = "\\boxed{"


def official_letter(reply: str) -> str | None:
    """The last single-letter box of the lower-cased reply, by a plain scan (no regular expression)."""
    low = reply.lower()
    letters = []
    at = low.find(BOX)
    while at >= 0:
        inner = at + len(BOX)
        if inner + 1 < len(low) and "a" <= low[inner] <= "z" and low[inner + 1] == "}":
            letters.append(low[inner])
        at = low.find(BOX, at + 1)
    return letters[-1] if letters else None


def official_correct(reply: str, reference: str, multiple_choice: bool) -> bool:
    letter = official_letter(reply)
    if letter is None:
        return False
    return letter == reference.lower() if multiple_choice else letter == "y"


def project_correct(reply: str, reference: str, multiple_choice: bool, rule: str) -> bool:
    """The project's verdict as validation scores it: no verdict after the retries keeps the rule miss (wrong)."""
    try:
        return parse_paper_verdict(reply, reference, multiple_choice, rule)
    except JudgeError:
        return False


# Box spellings a judge writes, free form and multiple choice, alone and in pairs (the second one is the last).
FREE_BOXES = ["\\boxed{Y}", "\\boxed{y}", "\\boxed{N}", "\\boxed{ Y }", "\\boxed{YES}", "\\boxed{\\text{Y}}", "none"]
CHOICE_BOXES = ["\\boxed{B}", "\\boxed{b}", "\\boxed{C}", "\\boxed{(B)}", "\\boxed{B.}", "\\boxed{Unclear}", "none"]


def _replies(boxes: list[str]) -> list[str]:
    singles = [f"Reasoning first. {b}" if b != "none" else "I cannot tell." for b in boxes]
    pairs = [f"Draft {a} ... so finally {b}" for a, b in itertools.product(boxes[:-1], repeat=2)]
    return singles + pairs


CASES = [(r, "3", False) for r in _replies(FREE_BOXES)] + [(r, "B", True) for r in _replies(CHOICE_BOXES)]


def test_the_official_rule_agrees_with_the_official_reading_on_every_crafted_reply():
    assert len(CASES) == 86
    for reply, reference, multiple_choice in CASES:
        assert project_correct(reply, reference, multiple_choice, "official") is official_correct(
            reply, reference, multiple_choice
        ), reply


def test_the_lenient_rule_is_a_different_reading():
    differ = [
        (r, ref, mc)
        for r, ref, mc in CASES
        if project_correct(r, ref, mc, "lenient") is not official_correct(r, ref, mc)
    ]
    # both ways: spellings only the lenient rule reads, and a letter box before a box it cannot read
    assert ("Reasoning first. \\boxed{YES}", "3", False) in differ
    assert ("Reasoning first. \\boxed{(B)}", "B", True) in differ
    assert ("Draft \\boxed{Y} ... so finally \\boxed{\\text{Y}}", "3", False) in differ
    assert ("Draft \\boxed{B} ... so finally \\boxed{Unclear}", "B", True) in differ
    # by hand: per family 2 singles (the spaced/word or bracketed/dotted boxes) + 8 pairs ending in such a box after
    # a box that is not a correct letter + 2 pairs ending in an unreadable box after a correct letter = 12
    assert len(differ) == 24


@pytest.mark.parametrize(
    ("reply", "multiple_choice", "expected"),
    [
        ("\\boxed{y}", False, True),  # any case
        ("\\boxed{A}", False, False),  # a letter that is not Y is a no, not a failure
        ("\\boxed{B} then \\boxed{Unclear}", True, True),
        ("\\boxed{unclear}", True, False),  # no option chosen: a verdict (wrong), not a failure
        ("\\boxed{none}", True, False),
    ],
)
def test_official_rule_verdicts(reply, multiple_choice, expected):
    assert parse_paper_verdict(reply, "B", multiple_choice) is expected


@pytest.mark.parametrize(("reply", "multiple_choice"), [("\\boxed{ Y }", False), ("\\boxed{YES}", False), ("Y", False)])
def test_official_rule_without_a_letter_box_is_no_verdict(reply, multiple_choice):
    with pytest.raises(JudgeError, match="boxed"):
        parse_paper_verdict(reply, "B", multiple_choice)


RESPONSE = "<think>The photon carries it.</think> <answer>the photon</answer>"
QUESTION = "Which particle carries light?\nOptions:\nA. electron\nB. photon\nC. gluon"


def test_the_multiple_choice_judge_never_sees_the_reference():
    system, user = paper_messages(QUESTION, "B", RESPONSE, multiple_choice=True)
    assert system == {"role": "system", "content": PAPER_CHOICE_SYSTEM_PROMPT}
    assert QUESTION in user["content"] and RESPONSE in user["content"]
    assert "Reference" not in user["content"] and "reference answer" not in PAPER_CHOICE_SYSTEM_PROMPT
    system, user = paper_messages("What is 2 + 1?", "3", RESPONSE, multiple_choice=False)
    assert system["content"] == PAPER_SYSTEM_PROMPT and "Reference answer:\n3" in user["content"]


def test_the_judge_prompts_say_what_the_official_ones_mean():
    for prompt in (PAPER_SYSTEM_PROMPT, PAPER_CHOICE_SYSTEM_PROMPT):
        assert "Do not work the problem out yourself" in prompt
    assert "most likely" in PAPER_CHOICE_SYSTEM_PROMPT and "\\boxed{none}" in PAPER_CHOICE_SYSTEM_PROMPT


def test_validation_compares_the_letter_the_judge_names_with_the_reference(openai_server):
    """End to end through compute_score: the judge (a canned endpoint that names B) sees no reference; the code
    decides. The same reply is right for reference B and wrong for C; a rule hit never asks the judge."""

    def answer(body):
        user = body["messages"][-1]["content"]
        assert "Reference" not in user and RESPONSE in user
        return "The response means the photon, option B. \\boxed{B}"

    server = openai_server(answer)
    kwargs = {"judge_base_url": server.base_url, "judge_model": "m", "judge_retries": 0}
    extra = {"question": QUESTION}
    for reference, acc in (("B", 1.0), ("C", 0.0)):
        out = asyncio.run(compute_score("gpqa_diamond_Avg4", RESPONSE, reference, extra, **kwargs))
        assert (out["acc"], out["judge_used"], out["judge_failed"]) == (acc, 1.0, 0.0)
    assert len(server.bodies) == 2
