"""DeepSeek-GRM pointwise judge: prompt, score parser, voting and the strict-winner reward."""

from __future__ import annotations

import random

import pytest

from rm_r1.judge.instructions import POINTWISE_INSTRUCTIONS, rating_instructions
from rm_r1.judge.pointwise import build_pointwise_messages, build_rating_messages, parse_scores, pointwise_voting


def test_messages_per_family():
    instruct = build_pointwise_messages("What is 2+2?", "4", "5", family="instruct")
    assert [m["role"] for m in instruct] == ["system", "user"]
    assert instruct[0]["content"] == POINTWISE_INSTRUCTIONS
    user = instruct[1]["content"]
    assert "What is 2+2?" in user and user.index("4") < user.index("5")
    reasoning = build_pointwise_messages("What is 2+2?", "4", "5", family="reasoning")
    assert len(reasoning) == 1 and reasoning[0]["role"] == "user"
    assert reasoning[0]["content"].startswith(POINTWISE_INSTRUCTIONS) and reasoning[0]["content"].endswith(user)
    assert "\\boxed{" in POINTWISE_INSTRUCTIONS
    with pytest.raises(ValueError, match="prompt family"):
        build_pointwise_messages("q", "a", "b", family="base")


@pytest.mark.parametrize(
    "response, expected",
    [
        ("Critique...\nScores: \\boxed{7, 4}", (7, 4)),
        ("\\boxed{1,10}", (1, 10)),
        ("draft \\boxed{2, 3} then final \\boxed{ 9 , 8 }", (9, 8)),
        ("Scores: \\boxed{10, 10}<|im_end|>", (10, 10)),
    ],
)
def test_parse_scores_valid(response, expected):
    assert parse_scores(response) == expected


@pytest.mark.parametrize(
    "response",
    [
        "",
        "Scores: 7, 4",
        "\\boxed{7}",
        "\\boxed{7, 4, 3}",
        "\\boxed{0, 4}",
        "\\boxed{7, 11}",
        "\\boxed{7.5, 4}",
        "\\boxed{-1, 4}",
        "\\boxed{A, B}",
        "\\boxed{7, 4} and later \\boxed{}",
        "\\boxed{7,, 4}",
    ],
)
def test_parse_scores_invalid(response):
    assert parse_scores(response) is None


def test_parse_scores_n_replies_and_type_check():
    assert parse_scores("\\boxed{3, 5, 9}", n=3) == (3, 5, 9)
    with pytest.raises(ValueError, match="must be a str"):
        parse_scores(None)


def test_pointwise_voting_sums_scores():
    vote = pointwise_voting([(7, 4), None, (5, 6), (6, 6)], 2, random.Random(0))
    assert vote.totals == (18, 16)
    assert vote.decision == 0
    assert vote.failures == 1


def test_pointwise_voting_tie_break_is_seeded_and_fair():
    decisions = [pointwise_voting([(5, 6), (6, 5)], 2, random.Random(s)).decision for s in range(60)]
    assert set(decisions) == {0, 1}
    assert decisions == [pointwise_voting([(5, 6), (6, 5)], 2, random.Random(s)).decision for s in range(60)]
    # a three-way tie never picks the loser
    picks = {pointwise_voting([(4, 4, 2, 4)], 4, random.Random(s)).decision for s in range(60)}
    assert picks == {0, 1, 3}


def test_pointwise_voting_without_any_parsed_sample():
    vote = pointwise_voting([None, None], 2, random.Random(0))
    assert vote.decision is None and vote.failures == 2 and vote.totals == (0, 0)
    with pytest.raises(ValueError, match="score 2 replies"):
        pointwise_voting([(1, 2, 3)], 2, random.Random(0))
    with pytest.raises(ValueError, match="at least one"):
        pointwise_voting([], 2, random.Random(0))


def test_rating_prompt_for_one_and_for_many_replies():
    (system, user) = build_rating_messages("What is 2+2?", ["4"], family="instruct")
    assert system["role"] == "system" and "Score: \\boxed{score of reply 1}" in system["content"]
    assert "one candidate final reply" in system["content"] and "Chatbot" not in system["content"]
    assert user["content"] == "[Client question]\nWhat is 2+2?\n\n[Reply 1]\n4\n[End of reply 1]"
    conversation = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "name three colours"},
    ]
    (message,) = build_rating_messages(conversation, ["red", "blue", "green"], family="reasoning")
    assert message["content"].startswith(rating_instructions(3))
    assert "Scores: \\boxed{score of reply 1, score of reply 2, score of reply 3}" in message["content"]
    assert message["content"].endswith(
        "[Conversation so far]\nUser: hi\n\nAssistant: hello\n\nUser: name three colours\n[End of the conversation]"
        "\n\n[Reply 1]\nred\n[End of reply 1]\n\n[Reply 2]\nblue\n[End of reply 2]"
        "\n\n[Reply 3]\ngreen\n[End of reply 3]"
    )
    # what the judge answers is read by the same parser, for the same number of replies
    assert parse_scores("... Score: \\boxed{6}", 1) == (6,)
    assert parse_scores("Scores: \\boxed{6, 2, 9}", 3) == (6, 2, 9)
    assert parse_scores("Scores: \\boxed{6, 2}", 3) is None


@pytest.mark.parametrize("bad", [[], ["ok", 3]])
def test_rating_prompt_rejects_no_replies_and_non_text(bad):
    with pytest.raises(ValueError, match="at least one reply|reply 2 must be a str"):
        build_rating_messages("q", bad)
