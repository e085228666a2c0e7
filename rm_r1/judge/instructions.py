"""Every instruction text an RM-R1 judge or meta scorer is given, in one place.

* Pairwise judge (``rm_r1.judge.prompts``): the texts are files, one per prompt family (``PROMPT_FILES``: the
  instruct family's system prompt, the reasoning family's user turn) plus bundled variants (``BUNDLED_PROMPTS``),
  so that a user's ``--prompt-file`` replaces one like for like.
* Pointwise judge (DeepSeek-GRM's principles, critique, integer scores 1-10): ONE text, ``POINTWISE_TEMPLATE``, for
  its three uses: two replies shown as Chatbot A and Chatbot B (``POINTWISE_INSTRUCTIONS``, evaluation),
  ``count`` numbered candidate replies (``rating_instructions(count)``, best-of-N), and a single reply
  (``SINGLE_POINTWISE_INSTRUCTIONS``, the judge as a reward). Only the words naming what is rated differ.
* Meta scorer (meta-RM guided voting): ``META_INSTRUCTIONS``.
"""

from __future__ import annotations

from pathlib import Path

_PROMPT_DIR = Path(__file__).parent / "prompt_files"
PROMPT_FILES: dict[str, Path] = {
    "instruct": _PROMPT_DIR / "instruct_system.txt",
    "reasoning": _PROMPT_DIR / "reasoning_user.txt",
}
"""The pairwise judge's instructions per prompt family."""
BUNDLED_PROMPTS: dict[str, Path] = {
    "reasoning_guided": _PROMPT_DIR / "reasoning_guided_user.txt",
}
"""Prompt variants shipped with the package, chosen by name wherever a ``prompt_file`` is taken."""

POINTWISE_TEMPLATE = (
    "You are an impartial judge. You will see {shown}. Rate {rated} on its own merits.\n\n"
    "1. Principles: write the few principles that matter most for judging {judged} to this particular conversation "
    "(for example correctness, helpfulness, safety, depth, clarity), each with a weight, the weights adding up to "
    "100%. If the task has a checkable correct answer, work it out yourself first.\n"
    "2. Critique: judge {each} against every principle in turn, citing {whose} own words as evidence.\n"
    "3. {scores}: give {each} an integer score from 1 (useless or harmful) to 10 (could not be better){order}. End "
    "with this line and write nothing after it:\n"
    "{label}: \\boxed{{{slots}}}\n\n"
    "{bias}"
)
"""The pointwise judge's instructions; the fields name what is rated (``pointwise_instructions`` fills them in)."""


def pointwise_instructions(
    shown: str,
    rated: str,
    each: str,
    slots: str,
    bias: str,
    *,
    judged: str = "replies",
    whose: str = "the reply's",
    order: str = "",
    label: str = "Scores",
    heading: str | None = None,
) -> str:
    """``POINTWISE_TEMPLATE`` for one way of showing the replies: ``shown`` (what the judge sees), ``rated`` (what it
    rates), ``each`` (each reply, or the reply), ``slots`` (the boxed scores it writes), ``bias`` (what must not sway
    it); ``label`` heads the scores line, and step 3 unless ``heading`` is given."""
    return POINTWISE_TEMPLATE.format(
        shown=shown, rated=rated, judged=judged, each=each, whose=whose, scores=heading or label, order=order,
        label=label, slots=slots, bias=bias,
    )  # fmt: skip


POINTWISE_INSTRUCTIONS = pointwise_instructions(
    shown="a conversation between a client and two AI chatbots, Chatbot A and Chatbot B, which differ only in their "
    "final reply",
    rated="each final reply",
    each="each reply",
    order=", Chatbot A's score first",
    slots="score of Chatbot A, score of Chatbot B",
    bias="The order in which the replies appear, their length and the chatbots' names must not influence your scores.",
)
"""Two replies as Chatbot A and Chatbot B: the system prompt (instruct family) or the head of the one user message."""

SINGLE_POINTWISE_INSTRUCTIONS = pointwise_instructions(
    shown="a conversation between a client and an AI chatbot",
    rated="the chatbot's final reply",
    judged="a reply",
    each="the reply",
    whose="its",
    label="Score",
    slots="score",
    bias="The reply's length and the chatbot's name must not influence your score.",
)
"""One reply (the judge as a reward): the system prompt, or the head of the one user message."""


def rating_instructions(count: int) -> str:
    """The pointwise instructions for ``count`` >= 1 numbered candidate replies (one reply: a single score)."""
    if count < 1:
        raise ValueError(f"the judge rates at least one reply, got count={count}")
    shown = "a conversation between a client and an AI assistant, followed by "
    if count == 1:
        return pointwise_instructions(
            shown=shown + "one candidate final reply of the assistant, numbered 1",
            rated="the reply", each="the reply", slots="score of reply 1",
            bias="The reply's length and style must not influence your score beyond what they are worth.",
            label="Score", heading="Scores",
        )  # fmt: skip
    return pointwise_instructions(
        shown=shown + f"{count} candidate final replies of the assistant, numbered from 1 to {count}",
        rated="each reply", each="each reply", order=", in the order of the replies",
        slots=", ".join(f"score of reply {i}" for i in range(1, count + 1)),
        bias="The order in which the replies appear and their length must not influence your scores.",
    )  # fmt: skip


META_INSTRUCTIONS = (
    "You are reviewing the work of another judge. Below are the task the judge was given and the judgement it "
    "wrote. Decide whether the judgement is sound: does it read the conversation and the replies correctly, are its "
    "criteria fitting, is its reasoning free of factual and logical errors, and does its final answer follow from "
    "that reasoning? Explain briefly, then rate the judgement with an integer from 1 (wrong or unfounded) to 10 "
    "(entirely sound). End with this line and write nothing after it:\n"
    "Soundness: \\boxed{rating}"
)
"""The meta scorer's instructions (system prompt); the task and judgement follow in the user message."""
