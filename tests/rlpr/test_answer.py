"""Format reward, validity for a probability reward and repetition penalty (docs/rlpr.md#validity, #final-reward)."""

from collections import Counter

import pytest

from rlpr.answer import (
    answer_start,
    format_reward,
    repetition_penalty,
    repetition_words,
    whitespace_after_answer_tag,
)

WELL_FORMED = "<think>3 + 4 = 7</think><answer>7</answer>"


@pytest.mark.parametrize(
    ("response", "mode", "expected"),
    [
        (WELL_FORMED, "R1", 1.0),
        ("<think>\nz\n</think>\n<answer> 7 </answer>\n", "R1", 1.0),
        (" <think>z</think><answer>7</answer>", "R1", 0.0),  # must start with <think>
        ("<think>z</think><answer>7", "R1", 0.0),  # no </answer>
        ("<think>z</think><answer>7</answer></answer>", "R1", 0.0),  # doubled close
        ("<think>z</think><think>w</think><answer>7</answer>", "R1", 0.0),
        ("<think>z<answer>7</answer></think>", "R1", 0.0),  # wrong order
        ("<answer>7</answer><think>z</think>", "R1", 0.0),
        ("", "R1", 0.0),
        ("reasoning first <answer>7</answer>", "R1_nothink", 1.0),
        ("<answer>7</answer> trailing text", "R1_nothink", 1.0),
        ("</answer><answer>7", "R1_nothink", 0.0),
        ("<answer>7", "R1_nothink", 0.0),
        ("<answer>7</answer><answer>8</answer>", "R1_nothink", 0.0),
    ],
)
def test_format_reward(response, mode, expected):
    assert format_reward(response, mode) == expected


@pytest.mark.parametrize(
    ("response", "mode", "expected"),
    [
        (WELL_FORMED, "R1", WELL_FORMED.index("<answer>")),
        ("preamble <think>z</think> x <answer> 7", "R1", len("preamble <think>z</think> x ")),  # truncated: valid
        ("<think>z</think><answer>7</answer> after", "R1", len("<think>z</think>")),
        ("<think>z</think>", "R1", None),
        ("<think>z<answer>7</think>", "R1", None),
        ("<think>z</think><answer>7<answer>8", "R1", None),
        ("<think><think>z</think><answer>7", "R1", None),
        ("no tags at all", "R1_nothink", None),
        ("so <answer> 7", "R1_nothink", 3),
        ("<answer>1</answer><answer>2</answer>", "R1_nothink", None),
    ],
)
def test_answer_start(response, mode, expected):
    assert answer_start(response, mode) == expected


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="R2"):
        format_reward(WELL_FORMED, "R2")
    with pytest.raises(ValueError, match="R2"):
        answer_start(WELL_FORMED, "R2")
    with pytest.raises(ValueError, match="response must be a str"):
        format_reward(None)


def test_repetition_penalty_counts_windows():
    window = " ".join(f"w{i}" for i in range(10))
    assert repetition_penalty(" ".join([window] * 10)) == -1.0
    assert repetition_penalty(" ".join([window] * 9)) == 0.0  # 9 full copies; shifted windows occur 8-9 times
    # underscores split words: "a_b" is two words
    assert repetition_penalty(" ".join(["a_b"] * 14)) == -1.0  # 28 words, window "a b a b ..." occurs 10 times
    assert repetition_penalty(" ".join(["a_b"] * 13)) == 0.0  # 26 words: 17 windows alternate, each form 9 times
    # short texts never repeat
    assert repetition_penalty("x " * 10) == 0.0
    assert repetition_penalty("x " * 19) == -1.0  # 19 words: the all-x window occurs 10 times
    assert repetition_penalty("x " * 18) == 0.0
    assert repetition_penalty("a b c", window=1, limit=2) == 0.0
    assert repetition_penalty("a b a", window=1, limit=2) == -1.0


def _official_penalty(text: str) -> float:
    # The reference rule written out plainly: str.split(), then str.split("_") keeping the empty strings; windows of
    # 10 words, -1 iff one of them occurs 10 times.
    words = [part for word in text.split() for part in word.split("_")]
    if len(words) <= 10:
        return 0.0
    counts = Counter(tuple(words[i : i + 10]) for i in range(len(words) - 9))
    return -1.0 if max(counts.values()) >= 10 else 0.0


BLANK = "Fill in: " + "_" * 30 + " ."  # 31 empty words from one 30-underscore blank
DUNDER = " ".join(["__init__"] * 12)  # 5 words each ("", "", "init", "", ""): 60 words of period 5


@pytest.mark.parametrize(
    ("text", "official", "drop_empty"),
    [
        (BLANK, -1.0, 0.0),  # 22 windows of 10 empty words
        (DUNDER, -1.0, 0.0),  # the phase-0 window occurs 11 times; dropped empties leave 12 words "init": 3 windows
        ("def __init__(self): pass " * 3, 0.0, 0.0),
        (" ".join(["a_b"] * 14), -1.0, -1.0),  # no empty pieces: both rules agree
        ("x_ " * 9, 0.0, 0.0),  # 18 words "x", "": the two alternating windows occur 5 and 4 times
    ],
)
def test_repetition_penalty_keeps_empty_words_by_default(text, official, drop_empty):
    assert _official_penalty(text) == official
    assert repetition_penalty(text) == official
    assert repetition_penalty(text, split_rule="official") == official
    assert repetition_penalty(text, split_rule="drop_empty") == drop_empty


def test_repetition_words_rules():
    assert repetition_words("__init__ a_b") == ["", "", "init", "", "", "a", "b"]
    assert repetition_words("__init__ a_b", "drop_empty") == ["init", "a", "b"]
    assert repetition_words("_" * 3) == ["", "", "", ""]
    with pytest.raises(ValueError, match="split_rule 'words'"):
        repetition_words("a", "words")


@pytest.mark.parametrize(("window", "limit"), [(0, 10), (10, 0), (2.5, 10)])
def test_repetition_penalty_rejects_bad_arguments(window, limit):
    with pytest.raises(ValueError, match="window|limit"):
        repetition_penalty("a b c", window=window, limit=limit)


def test_whitespace_after_answer_tag():
    assert whitespace_after_answer_tag("\n 7") == "\n "
    assert whitespace_after_answer_tag("7") == " "
    assert whitespace_after_answer_tag("") == " "
