"""How an RM-R1 judge's verdict is read (docs/rm_r1.md#verdict-rules): the one parser of training, evaluation and
the judge-as-reward loop.

A judge ends its output with ``<answer>[[A]]</answer>`` or ``<answer>[[B]]</answer>``. Four verdict rules
(``VERDICT_RULES``) read it:

* ``strict_tail`` (RM-R1's reference training rule, ``DEFAULT_VERDICT_RULE``): the last ``TAIL_CHARS`` characters of
  the response, decoded WITH special tokens (so an end token such as ``<|im_end|>`` takes part of the window), contain
  the exact tag of one side and not the other's. A verdict followed by 59 or more characters is missed;
  ``<answer> [[A]] </answer>`` is missed.
* ``last_answer`` (robust): the last ``<answer>`` opened in the response is closed, and what it holds is ``[[A]]`` or
  ``[[B]]`` up to surrounding whitespace.
* ``anywhere`` (the reference evaluation rule, ``EVALUATION_VERDICT_RULE``): exactly one of ``[[A]]`` / ``[[B]]``
  occurs anywhere in the response.
* ``rewardbench`` (allenai/reward-bench's generative scoring): A if ``[[A]]`` occurs anywhere, else B if ``[[B]]``
  does (so A wins when both appear); RewardBench counts a response with neither as half right
  (``UNPARSABLE_CREDIT``), which the evaluation applies; as a training reward it is simply -1.

The preference labels of the data (``LABEL_OF_SIDE``) are read back here too. The training reward built on the parser
is ``rm_r1.training.reward``.
"""

from __future__ import annotations

import re
from typing import Literal

Verdict = Literal["A", "B"]

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
VERDICT_MARKS: dict[str, str] = {"A": "[[A]]", "B": "[[B]]"}
VERDICT_TAGS: dict[str, str] = {side: f"{ANSWER_OPEN}{mark}{ANSWER_CLOSE}" for side, mark in VERDICT_MARKS.items()}
VERDICT_RULES = ("strict_tail", "last_answer", "anywhere", "rewardbench")
DEFAULT_VERDICT_RULE = "strict_tail"
"""The rule of training (RM-R1's reference reward) and of every parse that does not name one."""
EVALUATION_VERDICT_RULE = "anywhere"
"""The rule of evaluation (RM-R1's reference evaluation) and of the judge-as-reward loop, unless a run names another."""
UNPARSABLE_CREDIT: dict[str, float] = {"rewardbench": 0.5}
"""Evaluation credit of a single judgement without a verdict, per rule (0, i.e. wrong, for the rules not listed)."""
TAIL_CHARS = 80
LABEL_OF_SIDE: dict[Verdict, str] = {"A": "model_a", "B": "model_b"}
"""The preference label written for each side; ``LABELS`` reads these back, and the bare sides too."""
LABELS: dict[str, Verdict] = {**{label: side for side, label in LABEL_OF_SIDE.items()}, "A": "A", "B": "B"}

_BARE_MARK = re.compile(r"\s*\[\[([AB])\]\]\s*")


def check_verdict_rule(verdict_rule: str) -> str:
    """``verdict_rule`` when it is one of ``VERDICT_RULES``; a ``ValueError`` naming it otherwise."""
    if verdict_rule not in VERDICT_RULES:
        raise ValueError(f"unknown verdict rule {verdict_rule!r}; expected one of {VERDICT_RULES}")
    return verdict_rule


def label_side(label: str) -> Verdict:
    """The side ("A" or "B") a preference label names: ``model_a``/``A`` -> "A", ``model_b``/``B`` -> "B"."""
    if not isinstance(label, str) or label not in LABELS:
        raise ValueError(f"unknown preference label {label!r}; expected one of {tuple(LABELS)}")
    return LABELS[label]


def _only_one(found_a: bool, found_b: bool) -> Verdict | None:
    if found_a == found_b:
        return None
    return "A" if found_a else "B"


def parse_verdict(response: str, verdict_rule: str = DEFAULT_VERDICT_RULE) -> Verdict | None:
    """The side the judge's response chose under ``verdict_rule`` (see the module docstring), or None when it chose
    neither or both."""
    check_verdict_rule(verdict_rule)
    if not isinstance(response, str):
        raise ValueError(f"response must be a str, got {type(response).__name__}")
    if verdict_rule == "strict_tail":
        tail = response[-TAIL_CHARS:]
        return _only_one(VERDICT_TAGS["A"] in tail, VERDICT_TAGS["B"] in tail)
    if verdict_rule == "anywhere":
        return _only_one(VERDICT_MARKS["A"] in response, VERDICT_MARKS["B"] in response)
    if verdict_rule == "rewardbench":
        return "A" if VERDICT_MARKS["A"] in response else "B" if VERDICT_MARKS["B"] in response else None
    start = response.rfind(ANSWER_OPEN)
    if start < 0:
        return None
    start += len(ANSWER_OPEN)
    end = response.find(ANSWER_CLOSE, start)
    if end < 0:
        return None
    match = _BARE_MARK.fullmatch(response[start:end])
    return match.group(1) if match else None  # type: ignore[return-value]
