"""RM-R1 judge prompts (docs/rm_r1.md#prompt-families): the instruct family (system + user turn), the reasoning family
(one user message, no system prompt).

The prompt texts live in ``rm_r1/judge/prompt_files/``; this module is the only code that reads them and lays out the
conversation and the two replies the judge compares. The built-in texts follow the semantics of the official prompts
(the reasoning family's is as minimal as the one the published distilled checkpoints were trained on); the bundled
variant ``reasoning_guided`` (``BUNDLED_PROMPTS``) adds guidance on how to compare, and is chosen by passing its name
as ``prompt_file``.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from rm_r1.judge.instructions import BUNDLED_PROMPTS, PROMPT_FILES
from rm_r1.judge.verdicts import VERDICT_TAGS

FAMILIES = ("instruct", "reasoning")
LAYOUTS = ("project", "official")
"""How the conversation and the two replies are laid out in the user turn (``render_comparison``): this project's
headers, or the layout of RM-R1's official data and evaluation, which the published checkpoints were trained and
evaluated on."""
CONVERSATION_PLACEHOLDER = "{conversation}"
SPEAKERS = {"user": "User", "system": "System"}  # assistant turns are spoken by "Chatbot A" / "Chatbot B"

_PLACEHOLDER = re.compile(r"\{(conversation|verdict_a|verdict_b)\}")


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown prompt family {family!r}; expected one of {FAMILIES}")
    return family


def _fill(template: str, values: dict[str, str]) -> str:
    # One pass, so that text inserted for one placeholder is never scanned for another.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


@lru_cache(maxsize=32)
def load_prompt(family: str = "instruct", prompt_file: str | None = None) -> str:
    """The judge instructions of ``family``, from the built-in file or from ``prompt_file``, verdict tags filled in.

    ``prompt_file``: a path, or the name of a bundled variant (``BUNDLED_PROMPTS``, e.g. ``reasoning_guided``) when no
    file of that name exists. A prompt file is UTF-8 text. ``{verdict_a}`` and ``{verdict_b}`` anywhere in it become
    the verdict tags (``<answer>[[A]]</answer>`` / ``<answer>[[B]]</answer>``); other braces are kept as written.
    instruct family: the whole text is the system prompt and must not contain ``{conversation}``.
    reasoning family: the text is the single user message and must contain ``{conversation}`` exactly once; the
    conversation and both replies are put there.
    """
    check_family(family)
    if prompt_file is None:
        path = PROMPT_FILES[family]
    elif prompt_file in BUNDLED_PROMPTS and not Path(prompt_file).exists():
        path = BUNDLED_PROMPTS[prompt_file]
    else:
        path = Path(prompt_file)
    if not path.is_file():
        raise ValueError(
            f"prompt_file {str(path)!r} does not exist or is not a file (bundled variants: {sorted(BUNDLED_PROMPTS)})"
        )
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"prompt_file {str(path)!r} is empty")
    count = text.count(CONVERSATION_PLACEHOLDER)
    if family == "instruct" and count:
        raise ValueError(
            f"prompt_file {str(path)!r}: an instruct-family system prompt must not contain "
            f"{CONVERSATION_PLACEHOLDER} (the conversation goes in the user turn)"
        )
    if family == "reasoning" and count != 1:
        raise ValueError(
            f"prompt_file {str(path)!r}: a reasoning-family prompt must contain "
            f"{CONVERSATION_PLACEHOLDER} exactly once, found it {count} times"
        )
    values = {"verdict_a": VERDICT_TAGS["A"], "verdict_b": VERDICT_TAGS["B"], "conversation": CONVERSATION_PLACEHOLDER}
    return _fill(text, values)


def context_messages(conversation: str | list[dict]) -> list[dict[str, str]]:
    """The shared context as chat messages: a question string becomes one user message; a message list is checked
    (roles user/assistant/system, string contents, at least one message, ending with a user turn)."""
    if isinstance(conversation, str):
        return [{"role": "user", "content": conversation}]
    if not isinstance(conversation, list) or not conversation:
        raise ValueError(f"conversation must be a question string or a non-empty message list, got {conversation!r}")
    messages = []
    for i, message in enumerate(conversation):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in ("user", "assistant", "system") or not isinstance(content, str):
            raise ValueError(
                f"conversation message {i} must be {{'role': user|assistant|system, 'content': str}}, got {message!r}"
            )
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise ValueError(
            f"conversation must end with a user turn (the compared replies answer it), "
            f"got a last message with role {messages[-1]['role']!r}"
        )
    return messages


def _official_comparison(context: list[dict[str, str]], reply_a: str, reply_b: str) -> str:
    # RM-R1's official user turn: "[Client Question]" and "[The Start/End of Chatbot X's Response]" blocks; for a
    # multi-turn context, one whole dialogue per chatbot between "[The Start/End of the Conversation between Chatbot X
    # and the Client]", its turns on single-newline-separated "User: " / "Chatbot X: " lines
    if len(context) == 1:
        question = context[0]["content"]
        blocks = [f"[Client Question]\n{question}"] + [
            f"[The Start of Chatbot {side}'s Response]\n{reply}\n[The End of Chatbot {side}'s Response]"
            for side, reply in (("A", reply_a), ("B", reply_b))
        ]
        return "\n\n".join(blocks)
    blocks = []
    for side, reply in (("A", reply_a), ("B", reply_b)):
        chatbot = f"Chatbot {side}"
        turns = context + [{"role": "assistant", "content": reply}]
        lines = "\n".join(f"{SPEAKERS.get(m['role'], chatbot)}: {m['content']}" for m in turns)
        between = f"the Conversation between {chatbot} and the Client"
        blocks.append(f"[The Start of {between}]\n{lines}\n[The End of {between}]")
    return "\n\n".join(blocks)


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown prompt layout {layout!r}; expected one of {LAYOUTS}")
    return layout


def render_comparison(conversation: str | list[dict], reply_a: str, reply_b: str, layout: str = "project") -> str:
    """The text showing the judge the conversation and both replies.

    ``layout`` ``project``: single-turn (the context is one user message): the question, then each reply, under this
    project's headers. Multi-turn: the whole dialogue once per side, with "User:" / "System:" lines and the assistant
    turns, the compared reply last, spoken by "Chatbot A" (resp. "Chatbot B"). ``official``: the same content in the
    layout of RM-R1's official data and evaluation (``LAYOUTS``).
    """
    for name, reply in (("reply_a", reply_a), ("reply_b", reply_b)):
        if not isinstance(reply, str):
            raise ValueError(f"{name} must be a str, got {type(reply).__name__}")
    context = context_messages(conversation)
    if check_layout(layout) == "official":
        return _official_comparison(context, reply_a, reply_b)
    if len(context) == 1:
        return (
            f"[Client question]\n{context[0]['content']}\n\n"
            f"[Chatbot A's reply]\n{reply_a}\n[End of Chatbot A's reply]\n\n"
            f"[Chatbot B's reply]\n{reply_b}\n[End of Chatbot B's reply]"
        )
    blocks = []
    for side, reply in (("A", reply_a), ("B", reply_b)):
        chatbot = f"Chatbot {side}"
        turns = context + [{"role": "assistant", "content": reply}]
        lines = "\n\n".join(f"{SPEAKERS.get(m['role'], chatbot)}: {m['content']}" for m in turns)
        blocks.append(
            f"[Conversation between the client and {chatbot}]\n{lines}\n[End of the conversation with {chatbot}]"
        )
    return "\n\n".join(blocks)


def build_judge_messages(
    conversation: str | list[dict],
    reply_a: str,
    reply_b: str,
    family: str = "instruct",
    prompt_file: str | os.PathLike | None = None,
    layout: str = "project",
) -> list[dict[str, str]]:
    """The chat messages that ask the judge to compare ``reply_a`` (Chatbot A) with ``reply_b`` (Chatbot B).

    ``conversation``: the user question (str), or the shared context as chat messages ending with the user turn the
    replies answer (single- or multi-turn). ``family``: ``instruct`` -> [system, user]; ``reasoning`` -> [user].
    ``prompt_file``: your own instructions instead of the built-in ones (or a bundled variant's name), a UTF-8 text file
    in which ``{verdict_a}`` / ``{verdict_b}`` become the verdict tags; for ``instruct`` it is the system prompt, for
    ``reasoning`` the user message, which must hold ``{conversation}`` once (where the conversation and replies go).
    See ``load_prompt``. ``layout``: how the user turn lays out the conversation and replies (``render_comparison``);
    ``official`` with a ``prompt_file`` holding the official instructions gives the official prompt of either family.
    """
    prompt = load_prompt(family, None if prompt_file is None else str(prompt_file))
    comparison = render_comparison(conversation, reply_a, reply_b, layout)
    if family == "instruct":
        return [{"role": "system", "content": prompt}, {"role": "user", "content": comparison}]
    return [{"role": "user", "content": prompt.replace(CONVERSATION_PLACEHOLDER, comparison)}]
