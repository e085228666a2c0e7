"""The official user-turn layout of RM-R1 (issue 19, item 9), next to a second implementation written from the
official data and evaluation code's behaviour: a single-turn pair is "[Client Question]" then each reply between
"[The Start of Chatbot X's Response]" and "[The End of Chatbot X's Response]", blocks separated by a blank line; a
multi-turn pair is one dialogue per chatbot, its turns on "User: " / "Chatbot X: " lines separated by single newlines,
between "[The Start of the Conversation between Chatbot X and the Client]" and its "[The End of ...]" line. The
instruct family puts that text in the user turn after the system prompt; the reasoning family has one user message
whose instructions wrap it."""

from __future__ import annotations

import pytest

from rm_r1.evaluation.modes import make_mode
from rm_r1.judge.prompts import build_judge_messages
from rm_r1.training.data import pair_key as content_key
from rm_r1.training.data import published_pair_key

QUESTION, REPLY_A, REPLY_B = "Name a prime.", "7 is prime.\n\nIt has two divisors.", "9"
DIALOGUE = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Name a prime."},
]


def official_single(question: str, a: str, b: str) -> str:
    text = "[Client Question]\n{q}\n\n[The Start of Chatbot A's Response]\n{a}\n[The End of Chatbot A's Response]\n\n"
    text += "[The Start of Chatbot B's Response]\n{b}\n[The End of Chatbot B's Response]"
    return text.format(q=question, a=a, b=b)


def official_multi(turns: list[dict], a: str, b: str) -> str:
    def dialogue(side: str, reply: str) -> str:
        said = [("User" if t["role"] == "user" else f"Chatbot {side}", t["content"]) for t in turns]
        body = "\n".join(f"{who}: {text}" for who, text in [*said, (f"Chatbot {side}", reply)])
        head = f"the Conversation between Chatbot {side} and the Client"
        return f"[The Start of {head}]\n{body}\n[The End of {head}]"

    return dialogue("A", a) + "\n\n" + dialogue("B", b)


@pytest.fixture
def instruct_file(tmp_path):
    path = tmp_path / "system.txt"
    path.write_text("You judge chat replies. End with {verdict_a} or {verdict_b}.\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def reasoning_file(tmp_path):
    path = tmp_path / "user.txt"
    path.write_text(
        "Judge the two replies to the client below. \n\n{conversation}\n\n"
        "Finish with '{verdict_a}' if Chatbot A is better, or '{verdict_b}' if Chatbot B is better.",
        encoding="utf-8",
    )
    return str(path)


def test_instruct_family_official_layout(instruct_file):
    messages = build_judge_messages(QUESTION, REPLY_A, REPLY_B, "instruct", instruct_file, layout="official")
    assert messages == [
        {
            "role": "system",
            "content": "You judge chat replies. End with <answer>[[A]]</answer> or <answer>[[B]]</answer>.",
        },
        {"role": "user", "content": official_single(QUESTION, REPLY_A, REPLY_B)},
    ]
    multi = build_judge_messages(DIALOGUE, REPLY_A, REPLY_B, "instruct", instruct_file, layout="official")
    assert multi[1]["content"] == official_multi(DIALOGUE[:-1] + DIALOGUE[-1:], REPLY_A, REPLY_B)


def test_reasoning_family_reproduces_the_official_user_message(reasoning_file):
    (message,) = build_judge_messages(QUESTION, REPLY_A, REPLY_B, "reasoning", reasoning_file, layout="official")
    expected = (
        "Judge the two replies to the client below. \n\n"
        + official_single(QUESTION, REPLY_A, REPLY_B)
        + "\n\nFinish with '<answer>[[A]]</answer>' if Chatbot A is better, or '<answer>[[B]]</answer>' if Chatbot B "
        "is better."
    )
    assert message == {"role": "user", "content": expected}


@pytest.mark.parametrize("conversation", [QUESTION, DIALOGUE])
def test_the_published_data_reader_reads_the_official_layout_back(conversation, instruct_file):
    messages = build_judge_messages(conversation, REPLY_A, REPLY_B, "instruct", instruct_file, layout="official")
    context = [{"role": "user", "content": QUESTION}] if isinstance(conversation, str) else conversation
    assert published_pair_key(messages) == content_key(context, REPLY_A, REPLY_B)
    project = build_judge_messages(conversation, REPLY_A, REPLY_B, "instruct", instruct_file)
    with pytest.raises(ValueError, match="official layout"):
        published_pair_key(project)  # the project's own layout is a different text


def test_evaluation_mode_passes_the_layout_on_and_checks_it(instruct_file):
    from rm_r1.evaluation.benchmarks import Comparison

    pair = Comparison(pair_id="p", conversation=QUESTION, chosen=REPLY_A, rejected=REPLY_B)
    mode = make_mode("pairwise", "instruct", prompt_file=instruct_file, layout="official")
    assert mode.messages(pair, swap=True)[1]["content"] == official_single(QUESTION, REPLY_B, REPLY_A)
    with pytest.raises(ValueError, match="unknown prompt layout"):
        make_mode("pairwise", "instruct", layout="paper")
    with pytest.raises(ValueError, match="pointwise"):
        make_mode("pointwise", "instruct", layout="official")
