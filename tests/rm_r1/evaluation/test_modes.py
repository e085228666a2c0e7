"""Reading a pairwise verdict or pointwise scores back into the original order."""

from __future__ import annotations

import pytest

from rm_r1.evaluation.modes import make_mode


def read_response(response, swap, mode, verdict_rule):
    return make_mode(mode, verdict_rule=verdict_rule).read(response, swap)


def test_read_response_maps_back_to_the_original_order():
    assert read_response("... <answer>[[B]]</answer>", True, "pairwise", "anywhere") == {"pick": 0}
    assert read_response("... <answer>[[B]]</answer>", False, "pairwise", "anywhere") == {"pick": 1}
    assert read_response("[[A]] or [[B]]", False, "pairwise", "anywhere") == {"pick": None}
    # the strict reference rule misses a verdict followed by more than 59 characters
    late = "<answer>[[A]]</answer>" + " trailing words" * 5
    assert read_response(late, False, "pairwise", "strict_tail") == {"pick": None}
    assert read_response(late, False, "pairwise", "anywhere") == {"pick": 0}
    assert read_response("Scores: \\boxed{9, 2}", True, "pointwise", "anywhere") == {"scores": [2, 9]}
    assert read_response("Scores: 9, 2", True, "pointwise", "anywhere") == {"scores": None}


def test_make_mode_names_what_it_cannot_build():
    with pytest.raises(ValueError, match="unknown judging mode 'listwise'"):
        make_mode("listwise")
    with pytest.raises(ValueError, match="pointwise mode has its own prompt"):
        make_mode("pointwise", prompt_file="p.txt")
