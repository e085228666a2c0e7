"""rm_r1.judge.instructions: the one pointwise instruction text gives, word for word, the three texts that were
written out separately before (their SHA-256 prefixes, taken from those separate copies), and differs only where
what is rated differs."""

from __future__ import annotations

import hashlib

import pytest

from rm_r1.judge.instructions import (
    META_INSTRUCTIONS,
    POINTWISE_INSTRUCTIONS,
    SINGLE_POINTWISE_INSTRUCTIONS,
    rating_instructions,
)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_each_use_is_the_text_it_was():
    assert digest(POINTWISE_INSTRUCTIONS) == "8e96573991684406"  # two replies, Chatbot A and Chatbot B
    assert digest(SINGLE_POINTWISE_INSTRUCTIONS) == "b4ccab1f99f2cb6b"  # one reply (the judge as a reward)
    assert [digest(rating_instructions(n)) for n in (1, 2, 3, 5)] == [
        "ca02ffbd9cfac25f",
        "8df268a04d5062a2",
        "329e151e800a40bc",
        "d65e9958a85b68bf",
    ]


def test_the_shared_steps_are_word_for_word_the_same():
    texts = [POINTWISE_INSTRUCTIONS, SINGLE_POINTWISE_INSTRUCTIONS, rating_instructions(1), rating_instructions(4)]
    for text in texts:
        assert text.startswith("You are an impartial judge. You will see a conversation between a client and ")
        assert "the weights adding up to 100%. If the task has a checkable correct answer, work it out yourself" in text
        assert text.count("\\boxed{") == 1 and "End with this line and write nothing after it:\n" in text
    assert "Scores: \\boxed{score of reply 1, score of reply 2, score of reply 3, score of reply 4}" in texts[3]
    assert SINGLE_POINTWISE_INSTRUCTIONS.endswith("must not influence your score.")
    assert "\\boxed{" not in META_INSTRUCTIONS.split("\n")[0] and META_INSTRUCTIONS.endswith("\\boxed{rating}")


def test_no_replies_is_refused():
    with pytest.raises(ValueError, match="count=0"):
        rating_instructions(0)
