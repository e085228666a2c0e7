"""rlpr.experiments.analysis: the shares of a final policy's responses, by hand."""

from __future__ import annotations

import pytest

from rlpr.experiments.analysis import answer_form, read_responses
from rlpr.experiments.tasks import Problem


def test_read_responses_by_hand():
    p = Problem(3, 4, 5, "12")  # a+b = 7, total 12
    responses = [
        "<think> 3+4=7 </think> <answer> twelve </answer>",  # right reasoning, consistent, right
        "<think> 3+4=7 </think> <answer> 13 </answer>",  # right reasoning, drifted answer
        "<think> 3+4=8 </think> <answer> XIII </answer>",  # wrong reasoning, consistent (8+5), wrong
        "<answer> 12 units </answer>",  # direct, right
        "<think> 3+4=7 </think> <answer> a dozen",  # right reasoning, unparsable answer
    ]
    got = read_responses([p] * 5, responses)
    assert got["samples"] == 5
    assert got["acc"] == pytest.approx(2 / 5)
    assert got["direct"] == pytest.approx(1 / 5)
    assert got["with_reasoning"] == pytest.approx(4 / 5)
    assert got["reasoning_ok"] == pytest.approx(3 / 4)
    assert got["consistent"] == pytest.approx(2 / 4)
    assert got["acc_if_reasoning_ok"] == pytest.approx(1 / 3)
    assert got["forms"] == {"digits": 0.2, "words": 0.2, "roman": 0.2, "units": 0.2, "other": 0.2}
    with pytest.raises(ValueError, match="2 problems but 1 responses"):
        read_responses([p, p], responses[:1])


def test_answer_form():
    assert [answer_form(a) for a in ("7", " seven", "VII", "7 units", "7.0", None)] == [
        "digits", "words", "roman", "units", "other", "other"]  # fmt: skip
