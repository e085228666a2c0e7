"""The R1 / R1_nothink chat prompts."""

from __future__ import annotations

import pytest

from rlpr.answer import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from rlpr.data.prompts import R1_SYSTEM_PROMPT, build_r1_messages, format_options, parse_options


def test_r1_is_system_then_user_with_the_question_verbatim():
    msgs = build_r1_messages("What is 2+2?")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == R1_SYSTEM_PROMPT
    assert msgs[1]["content"] == "What is 2+2?"


def test_r1_system_prompt_names_all_four_tags_in_order():
    positions = [R1_SYSTEM_PROMPT.index(tag) for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)]
    assert positions == sorted(positions)


def test_r1_ignores_multiple_choice():
    assert build_r1_messages("Q?", multiple_choice=True) == build_r1_messages("Q?")


@pytest.mark.parametrize("multiple_choice", [False, True])
def test_nothink_is_one_user_turn_asking_for_answer_tags(multiple_choice):
    msgs = build_r1_messages("Which?", fmt="R1_nothink", multiple_choice=multiple_choice)
    assert len(msgs) == 1 and msgs[0]["role"] == "user"
    text = msgs[0]["content"]
    assert text.startswith("Which?")
    assert "step by step" in text
    assert f"{ANSWER_OPEN} {ANSWER_CLOSE}" in text
    assert THINK_OPEN not in text
    assert ("letter" in text) == multiple_choice


def test_chat_template_renders_the_r1_prompt(small_tokenizer):
    text = small_tokenizer.apply_chat_template(build_r1_messages("Q?"), tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n" + R1_SYSTEM_PROMPT + "<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    ("question", "fmt"), [("", "R1"), ("   ", "R1"), (None, "R1"), ("Q?", "R2"), ("Q?", "r1_nothink")]
)
def test_bad_input_is_rejected(question, fmt):
    with pytest.raises(ValueError, match="question|format mode"):
        build_r1_messages(question, fmt=fmt)


def test_options_are_lettered_lines_and_read_back():
    text = format_options("Pick one.", ["red", "a\nmulti-line  option", "blue"])
    assert text == "Pick one.\n\nOptions:\nA. red\nB. a multi-line option\nC. blue"
    assert parse_options(text) == ["red", "a multi-line option", "blue"]


@pytest.mark.parametrize("text", ["no options here", "Q\n\nOptions:\nA. x\nC. y", "Q\n\nOptions:\nA) x\nB) y"])
def test_parse_options_without_well_formed_options_is_empty(text):
    assert parse_options(text) == []


@pytest.mark.parametrize("n", [1, 11])
def test_format_options_needs_2_to_10(n):
    with pytest.raises(ValueError, match="options"):
        format_options("q", [str(i) for i in range(n)])
