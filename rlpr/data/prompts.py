"""The chat prompts of the RLPR recipes (docs/rlpr.md#prompts): the one place for the wording trained and evaluated on.

``R1`` (Qwen recipes): a system prompt asking for reasoning inside ``<think> </think>`` and then the final answer inside
``<answer> </answer>``, followed by the question as the user turn. ``R1_nothink`` (Llama, Gemma recipes): no system
prompt; the single user turn holds the question and an instruction to reason step by step and put the final answer
within ``<answer> </answer>`` (for multiple-choice questions, only the option letter).

Multiple-choice options follow the question as lettered lines (``format_options``); ``parse_options`` reads them back
for grading.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlpr.answer import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, check_mode

R1_SYSTEM_PROMPT = (
    "A conversation between a user and an assistant. The user poses a question and the assistant solves it. "
    "The assistant first works through the problem in its head and then states the answer. The reasoning goes "
    f"inside {THINK_OPEN} {THINK_CLOSE} tags and the final answer inside {ANSWER_OPEN} {ANSWER_CLOSE} tags, "
    f"like this: {THINK_OPEN} reasoning here {THINK_CLOSE} {ANSWER_OPEN} answer here {ANSWER_CLOSE}."
)

NOTHINK_INSTRUCTION = f"Reason step by step, and put the final answer within {ANSWER_OPEN} {ANSWER_CLOSE}."
NOTHINK_CHOICE_INSTRUCTION = (
    f"Reason step by step, and put only the letter of the correct option within {ANSWER_OPEN} {ANSWER_CLOSE}."
)


def build_r1_messages(question: str, fmt: str = "R1", multiple_choice: bool = False) -> list[dict[str, str]]:
    """Chat messages for ``question`` in format ``fmt`` (``R1``: system + user; ``R1_nothink``: one user turn).

    ``multiple_choice`` only changes ``R1_nothink``: the instruction then asks for the option letter alone.
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty str, got {question!r}")
    if check_mode(fmt) == "R1":
        return [{"role": "system", "content": R1_SYSTEM_PROMPT}, {"role": "user", "content": question}]
    instruction = NOTHINK_CHOICE_INSTRUCTION if multiple_choice else NOTHINK_INSTRUCTION
    return [{"role": "user", "content": f"{question}\n\n{instruction}"}]


OPTION_LETTERS = "ABCDEFGHIJ"
_OPTIONS_HEADER = "\n\nOptions:\n"
_OPTION_LINE = re.compile(r"([A-J])\. (.*)")


def format_options(question: str, options: Sequence[str]) -> str:
    """``question`` followed by its options as lines ``A. text``, ``B. text``, ... (2 to 10 options)."""
    if not 2 <= len(options) <= len(OPTION_LETTERS):
        raise ValueError(f"expected 2 to {len(OPTION_LETTERS)} options, got {len(options)}: {list(options)!r}")
    lines = [f"{letter}. {' '.join(str(option).split())}" for letter, option in zip(OPTION_LETTERS, options)]
    return question + _OPTIONS_HEADER + "\n".join(lines)


def parse_options(text: str) -> list[str]:
    """The option texts of a question written by ``format_options``, in letter order ([] if it has none)."""
    if _OPTIONS_HEADER not in text:
        return []
    options = []
    for letter, line in zip(OPTION_LETTERS, text.rsplit(_OPTIONS_HEADER, 1)[1].split("\n")):
        found = _OPTION_LINE.fullmatch(line)
        if found is None or found.group(1) != letter:
            return []
        options.append(found.group(2))
    return options
