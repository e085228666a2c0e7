"""Which prompt groups train, wait in the overflow cache or are trimmed (rlpr.training.dynamic_sampling), by hand."""

from __future__ import annotations

import pytest

from rlpr.training.dynamic_sampling import GroupSelection, select_groups


def test_groups_beyond_the_target_go_to_the_overflow_cache_in_round_order():
    # round 0: a passes, b fails, c passes; round 1: d fails, e passes, f passes. Target 3: a, c, e train; f waits.
    decisions = [("a", True), ("b", False), ("c", True), ("d", False), ("e", True), ("f", True)]
    assert select_groups(decisions, target=3, mini_batch=1) == GroupSelection(
        kept=["a", "c", "e"], overflow=["f"], trimmed=[]
    )
    # a full step is never trimmed, whatever the mini-batch size
    assert select_groups(decisions, target=3, mini_batch=2).kept == ["a", "c", "e"]


def test_a_short_step_trains_on_whole_mini_batches_only():
    # 5 of target 8 passed, mini-batches of 2: 5 // 2 * 2 = 4 train, the fifth passed group is dropped.
    decisions = [(f"g{i}", i not in (1, 4)) for i in range(7)]  # g0 g2 g3 g5 g6 pass
    selection = select_groups(decisions, target=8, mini_batch=2)
    assert selection == GroupSelection(kept=["g0", "g2", "g3", "g5"], overflow=[], trimmed=["g6"])
    assert selection.taken == 5
    # fewer passed groups than one mini-batch: nothing trains
    assert select_groups([("a", True), ("b", False)], target=4, mini_batch=2) == GroupSelection([], [], ["a"])
    assert select_groups([], target=4, mini_batch=2) == GroupSelection([], [], [])


def test_exactly_the_target_leaves_nothing_over():
    decisions = [("a", True), ("b", True), ("c", False)]
    assert select_groups(decisions, target=2, mini_batch=2) == GroupSelection(["a", "b"], [], [])


def test_the_selection_grows_monotonically_over_rounds():
    # the trainer calls select_groups after each round: a group taken in an early round stays taken
    round0 = [("a", True), ("b", False), ("c", True)]
    round1 = [("d", True), ("e", True), ("f", False)]
    first = select_groups(round0, target=4, mini_batch=4)
    second = select_groups(round0 + round1, target=4, mini_batch=4)
    assert (first.kept, first.trimmed) == ([], ["a", "c"])
    assert second == GroupSelection(["a", "c", "d", "e"], [], [])


@pytest.mark.parametrize(
    ("decisions", "target", "mini_batch", "match"),
    [
        ([("a", True), ("a", False)], 2, 1, r"repeat within a step: \['a'\]"),
        ([], 0, 1, "target and mini_batch must be >= 1"),
        ([], 2, 0, "target and mini_batch must be >= 1"),
    ],
)
def test_bad_input_is_named(decisions, target, mini_batch, match):
    with pytest.raises(ValueError, match=match):
        select_groups(decisions, target, mini_batch)
