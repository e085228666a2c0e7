"""Every answer parser of both recipes is linear in its input: timing on n and 8n characters of adversarial shapes
(a linear parser takes ~8x longer, a quadratic one ~64x), and hypothesis fuzzing on large inputs."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlpr.answer import ANSWER_OPEN, answer_start, format_reward, repetition_penalty, whitespace_after_answer_tag
from rlpr.evaluation.judge import JudgeError
from rlpr.evaluation.judge import parse_verdict as judge_verdict
from rlpr.evaluation.validation import choice_letter, compute_score, extract_answer, last_boxed, normalize_text
from rm_r1.judge.pointwise import parse_scores
from rm_r1.judge.verdicts import VERDICT_RULES
from rm_r1.judge.verdicts import parse_verdict as rm_verdict


def _rm_verdict(text: str, rule: str) -> str | None:
    return rm_verdict(text, rule)


def _judge(text: str) -> bool | None:
    try:
        return judge_verdict(text)
    except JudgeError:
        return None


PARSERS = {
    "extract_answer": extract_answer,
    "last_boxed": last_boxed,
    "choice_letter": choice_letter,
    "choice_letter+options": lambda s: choice_letter(s, ["alpha", "beta", s[:100]]),
    "normalize_text": normalize_text,
    "answer_start R1": answer_start,
    "answer_start R1_nothink": lambda s: answer_start(s, "R1_nothink"),
    "format_reward R1": format_reward,
    "format_reward R1_nothink": lambda s: format_reward(s, "R1_nothink"),
    "repetition_penalty": repetition_penalty,
    "whitespace_after_answer_tag": whitespace_after_answer_tag,
    "judge parse_verdict": _judge,
    **{f"rm_r1 parse_verdict {rule}": partial(_rm_verdict, rule=rule) for rule in VERDICT_RULES},
    "rm_r1 parse_scores": parse_scores,
}

# Shapes that make backtracking regexes or nested scans quadratic, as functions of a length n.
SHAPES = {
    "answer+spaces": lambda n: "answer" + " " * n,
    "answer+spaces+x": lambda n: "answer" + " " * n + "x",
    "answer is+spaces+x": lambda n: "the answer is" + " " * n + "x",
    "answer+colons": lambda n: "answer" + ": " * (n // 2) + "x",
    "answer repeated": lambda n: "answer " * (n // 7),
    "option+spaces": lambda n: "option" + " " * n + "x",
    "boxed repeated": lambda n: "\\boxed{" * (n // 7),
    "open braces": lambda n: "\\boxed{" + "{" * n,
    "text wrappers": lambda n: "\\text{" * (n // 6),
    "answer tags": lambda n: ANSWER_OPEN * (n // 8),
    "answer tag+spaces": lambda n: ANSWER_OPEN + " " * n + "[[A]",
    "spaces+x": lambda n: " " * n + "x",
    "punctuation": lambda n: "!" * n,
    "digits in a box": lambda n: "\\boxed{" + "1 " * (n // 2),
    "verdict marks": lambda n: "[[A]" * (n // 4),
    "words": lambda n: "a b " * (n // 4),
}

N = 2_000
LINEAR_BOUND = 30  # 8x the input: ~8 for a linear parser, ~64 for a quadratic one


def _cpu_seconds_per_call(fn, text: str) -> float:
    """Process CPU time of one call (calls repeated until 2 ms have passed: timer resolution and load do not matter)."""
    calls, start = 0, time.process_time()
    while True:
        fn(text)
        calls += 1
        elapsed = time.process_time() - start
        if elapsed >= 0.002:
            return elapsed / calls


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("parser", PARSERS)
def test_parser_is_linear(parser, shape):
    fn, make = PARSERS[parser], SHAPES[shape]
    small, large = make(N), make(8 * N)
    base = min(_cpu_seconds_per_call(fn, small) for _ in range(3))
    ratios = []
    for _ in range(5):  # passes at the first measurement under the bound; a quadratic parser never gets there
        ratios.append(_cpu_seconds_per_call(fn, large) / base)
        if ratios[-1] < LINEAR_BOUND or ratios[-1] > 2 * LINEAR_BOUND:
            break
    assert ratios[-1] < LINEAR_BOUND, f"{parser} on {shape!r}: 8x the input took {ratios} x the time"


# --- fuzzing -----------------------------------------------------------------------------------------------------

PIECES = [
    *"<think> </think> <answer> </answer> \\boxed{ \\fbox{ \\text{ { } answer Answer option ( ) : B j".split(),
    *"[[A]] [[B]] [[ ]] YES no 7 , $ . _ \u00e9 \ud800".split(),
    " ",
    " is ",
    "\n",
]
LARGE_TEXT = st.builds(
    lambda pieces, noise, repeat: "".join(pieces) * repeat + noise,
    st.lists(st.sampled_from(PIECES), max_size=300),
    st.text(max_size=300),
    st.integers(1, 30),
)
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@FUZZ
@given(LARGE_TEXT)
def test_rlpr_parsers_on_arbitrary_text(text):
    answer = extract_answer(text)
    assert answer is None or (answer == answer.strip() and answer and answer in text)
    assert choice_letter(text) in (None, *"ABCDEFGHIJ")
    assert isinstance(normalize_text(text), str)
    for mode in ("R1", "R1_nothink"):
        start = answer_start(text, mode)
        assert start is None or text.startswith(ANSWER_OPEN, start)
        assert format_reward(text, mode) in (0.0, 1.0)
    assert repetition_penalty(text) in (0.0, -1.0)
    assert _judge(text) in (None, True, False)


@FUZZ
@given(LARGE_TEXT)
def test_rm_r1_parsers_on_arbitrary_text(text):
    for rule in VERDICT_RULES:
        assert rm_verdict(text, rule) in (None, "A", "B")
    for n in (2, 3):
        scores = parse_scores(text, n)
        assert scores is None or (len(scores) == n and all(1 <= s <= 10 for s in scores))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(LARGE_TEXT)
def test_validation_compute_score_on_arbitrary_text(text):
    # multiple choice grades with the parsers alone (no math-verify process), so this stays fast
    out = asyncio.run(compute_score("GPQA-diamond", text, "B", {"question": "Q\nA. x\nB. y"}))
    assert out["acc"] in (0.0, 1.0) and out["graded"] == 1.0
