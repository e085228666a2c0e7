"""Judge prompts: both families, single- and multi-turn conversations, user prompt files, the real chat template."""

from __future__ import annotations

import re

import pytest

from rm_r1.judge.prompts import build_judge_messages, load_prompt
from rm_r1.judge.verdicts import VERDICT_TAGS

MULTI_TURN = [
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "Seven."},
    {"role": "user", "content": "And an even one?"},
]


def test_instruct_family_is_system_then_user_with_the_chain_of_rubrics_structure():
    messages = build_judge_messages("What is 2+2?", "It is 4.", "It is 5.")
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    for tag in (
        "<type>",
        "<rubric>",
        "<justify>",
        "<eval>",
        "<quote_A>",
        "<summary_A>",
        "<quote_B>",
        "<summary_B>",
        "<solution>",
        "<type>Chat</type>",
        "<type>Reasoning</type>",
        VERDICT_TAGS["A"],
        VERDICT_TAGS["B"],
    ):
        assert tag in system, tag
    assert "{" not in system  # every placeholder was filled
    assert user.index("What is 2+2?") < user.index("It is 4.") < user.index("It is 5.")
    assert re.search(r"Chatbot A.*\n+It is 4\.", user) and re.search(r"Chatbot B.*\n+It is 5\.", user)
    assert "It is" not in system


def test_reasoning_family_is_one_user_message_holding_everything():
    messages = build_judge_messages("What is 2+2?", "It is 4.", "It is 5.", family="reasoning")
    assert [m["role"] for m in messages] == ["user"]
    text = messages[0]["content"]
    assert "{conversation}" not in text and "{verdict_a}" not in text
    assert text.count(VERDICT_TAGS["A"]) == 1 and text.count(VERDICT_TAGS["B"]) == 1
    assert text.index("What is 2+2?") < text.index("It is 4.") < text.index("It is 5.") < text.index(VERDICT_TAGS["A"])


def test_a_question_string_and_a_one_message_list_give_the_same_prompt():
    as_str = build_judge_messages("Hi?", "a", "b")
    as_list = build_judge_messages([{"role": "user", "content": "Hi?"}], "a", "b")
    assert as_str == as_list


@pytest.mark.parametrize("family", ["instruct", "reasoning"])
def test_multi_turn_shows_the_whole_dialogue_once_per_side(family):
    text = build_judge_messages(MULTI_TURN, "Two.", "Nine.", family=family)[-1]["content"]
    for side, reply in (("A", "Two."), ("B", "Nine.")):
        dialogue = f"User: Name a prime.\n\nChatbot {side}: Seven.\n\nUser: And an even one?\n\nChatbot {side}: {reply}"
        assert dialogue in text
    assert text.index("Chatbot A: Two.") < text.index("Chatbot B: Seven.")
    assert text.count("Name a prime.") == 2


def test_replies_with_braces_or_placeholder_names_are_kept_verbatim():
    reply = "def f(): return {'x': 1}  # {conversation} {verdict_a}"
    for family in ("instruct", "reasoning"):
        text = build_judge_messages("Write f.", reply, "pass", family=family)[-1]["content"]
        assert reply in text
        assert text.count(VERDICT_TAGS["A"]) == (1 if family == "reasoning" else 0)


@pytest.mark.parametrize("family", ["Instruct", "auto", "", "deepseek"])
def test_unknown_family_is_an_error_naming_it(family):
    with pytest.raises(ValueError, match=f"unknown prompt family {family!r}"):
        build_judge_messages("q", "a", "b", family=family)


@pytest.mark.parametrize(
    ("conversation", "match"),
    [
        ([], "non-empty"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "end with a user turn"),
        ([{"role": "bot", "content": "q"}], "message 0"),
        ([{"role": "user", "content": None}], "message 0"),
        (None, "question string"),
    ],
)
def test_bad_conversations_are_errors(conversation, match):
    with pytest.raises(ValueError, match=match):
        build_judge_messages(conversation, "a", "b")


def test_non_string_reply_is_an_error_naming_it():
    with pytest.raises(ValueError, match="reply_b"):
        build_judge_messages("q", "a", None)  # type: ignore[arg-type]


def test_user_prompt_files(tmp_path):
    system = tmp_path / "my_system.txt"
    system.write_text("Judge them. Answer {verdict_a} or {verdict_b}. Keep {braces}.\n", encoding="utf-8")
    messages = build_judge_messages("q", "a", "b", prompt_file=str(system))
    assert messages[0] == {
        "role": "system",
        "content": "Judge them. Answer <answer>[[A]]</answer> or <answer>[[B]]</answer>. Keep {braces}.",
    }
    user = tmp_path / "my_user.txt"
    user.write_text("Compare:\n{conversation}\nVerdict: {verdict_b} or {verdict_a}", encoding="utf-8")
    (message,) = build_judge_messages("q", "a", "b", family="reasoning", prompt_file=user)
    assert message["content"].startswith("Compare:\n[Client question]\nq\n")
    assert message["content"].endswith("Verdict: <answer>[[B]]</answer> or <answer>[[A]]</answer>")

    with pytest.raises(ValueError, match="exactly once"):
        load_prompt("reasoning", str(system))
    with pytest.raises(ValueError, match="must not contain"):
        load_prompt("instruct", str(user))
    with pytest.raises(ValueError, match="missing.txt"):
        load_prompt("instruct", str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_prompt("instruct", str(tmp_path / "empty.txt"))


@pytest.mark.parametrize("family", ["instruct", "reasoning"])
def test_messages_render_with_the_real_qwen_chat_template(qwen_tokenizer, family):
    messages = build_judge_messages(MULTI_TURN, "Two.", "Nine.", family=family)
    text = qwen_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert text.count("<|im_start|>") == 3  # system (given or Qwen's default) + user + generation prompt
    if family == "instruct":
        assert text.startswith("<|im_start|>system\nYou are an impartial judge.")
    else:
        assert "You are Qwen" in text  # Qwen's template adds its own default system prompt when none is given
    ids = qwen_tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert qwen_tokenizer.decode(ids) == text


def test_instruct_reasoning_class_covers_knowledge_and_multi_step_tasks_not_only_checkable_answers():
    system = load_prompt("instruct")
    reasoning_class = system[system.index("<type>Reasoning</type>") : system.index("<type>Chat</type>")]
    for kind in ("mathematics", "coding", "domain knowledge", "several steps of inference", "information combined"):
        assert kind in reasoning_class, kind


def test_reasoning_family_is_minimal_by_default_and_the_guided_variant_is_bundled():
    minimal = build_judge_messages("What is 2+2?", "4", "5", family="reasoning")[0]["content"]
    guided = build_judge_messages("What is 2+2?", "4", "5", family="reasoning", prompt_file="reasoning_guided")
    guided = guided[0]["content"]
    guidance = "solve it yourself first and check each reply against your solution"
    assert guidance not in minimal and guidance in guided
    assert "helpfulness, correctness, safety" not in minimal
    for text in (minimal, guided):
        assert text.count(VERDICT_TAGS["A"]) == 1 and "[Client question]\nWhat is 2+2?" in text
    with pytest.raises(ValueError, match="must not contain"):  # a reasoning-family text is no system prompt
        load_prompt("instruct", "reasoning_guided")
    with pytest.raises(ValueError, match=r"bundled variants: \['reasoning_guided'\]"):
        load_prompt("reasoning", "reasoning_unguided")
