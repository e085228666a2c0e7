"""The RM-R1 verdict parser and preference reward (docs/rm_r1.md#verdict-rules), shared by training and evaluation.

A judge ends its output with ``<answer>[[A]]</answer>`` or ``<answer>[[B]]</answer>``. Three rules read the verdict:

* ``strict_tail`` (RM-R1's reference training rule, the default): the last ``TAIL_CHARS`` characters of the response,
  decoded WITH special tokens (so an end token such as ``<|im_end|>`` takes part of the window), contain the exact tag
  of one side and not the other's. A verdict followed by 59 or more characters is missed; ``<answer> [[A]] </answer>``
  is missed.
* ``last_answer`` (robust): the last ``<answer>`` opened in the response is closed, and what it holds is ``[[A]]`` or
  ``[[B]]`` up to surrounding whitespace.
* ``anywhere`` (the reference evaluation rule): exactly one of ``[[A]]`` / ``[[B]]`` occurs anywhere in the response.
* ``rewardbench`` (allenai/reward-bench's generative scoring): A if ``[[A]]`` occurs anywhere, else B if ``[[B]]``
  does (so A wins when both appear); RewardBench counts a response with neither as half right
  (``UNPARSABLE_CREDIT``), which the evaluation applies; as a training reward it is simply -1.

verl's own reward managers hand ``compute_score`` the response decoded WITHOUT special tokens; to give
``strict_tail`` the reference's input, select ``SpecialTokenTextRewardManager`` (``reward.reward_manager.source:
importlib``, ``module.path: pkg://rm_r1.reward``, ``name: SpecialTokenTextRewardManager``).

The preference reward is R = +1 if the parsed verdict names the labelled (chosen) side, else R = -1 (wrong side, both,
none, malformed, truncated or empty output).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

from harness.verl_reward_call import VERL_CALL_KWARGS

Verdict = Literal["A", "B"]

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
VERDICT_MARKS: dict[str, str] = {"A": "[[A]]", "B": "[[B]]"}
VERDICT_TAGS: dict[str, str] = {side: f"{ANSWER_OPEN}{mark}{ANSWER_CLOSE}" for side, mark in VERDICT_MARKS.items()}
RULES = ("strict_tail", "last_answer", "anywhere", "rewardbench")
UNPARSABLE_CREDIT: dict[str, float] = {"rewardbench": 0.5}
"""Evaluation credit of a single judgement without a verdict, per rule (0, i.e. wrong, for the rules not listed)."""
TAIL_CHARS = 80
LABEL_OF_SIDE: dict[Verdict, str] = {"A": "model_a", "B": "model_b"}
"""The preference label written for each side; ``LABELS`` reads these back, and the bare sides too."""
LABELS: dict[str, Verdict] = {**{label: side for side, label in LABEL_OF_SIDE.items()}, "A": "A", "B": "B"}

_BARE_MARK = re.compile(r"\s*\[\[([AB])\]\]\s*")


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown verdict rule {rule!r}; expected one of {RULES}")
    return rule


def label_side(label: str) -> Verdict:
    """The side ("A" or "B") a preference label names: ``model_a``/``A`` -> "A", ``model_b``/``B`` -> "B"."""
    if not isinstance(label, str) or label not in LABELS:
        raise ValueError(f"unknown preference label {label!r}; expected one of {tuple(LABELS)}")
    return LABELS[label]


def _only_one(found_a: bool, found_b: bool) -> Verdict | None:
    if found_a == found_b:
        return None
    return "A" if found_a else "B"


def parse_verdict(response: str, rule: str = "strict_tail") -> Verdict | None:
    """The side the judge's response chose under ``rule`` (see the module docstring), or None when it chose neither
    or both."""
    check_rule(rule)
    if not isinstance(response, str):
        raise ValueError(f"response must be a str, got {type(response).__name__}")
    if rule == "strict_tail":
        tail = response[-TAIL_CHARS:]
        return _only_one(VERDICT_TAGS["A"] in tail, VERDICT_TAGS["B"] in tail)
    if rule == "anywhere":
        return _only_one(VERDICT_MARKS["A"] in response, VERDICT_MARKS["B"] in response)
    if rule == "rewardbench":
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


def preference_reward(response: str, label: str, rule: str = "strict_tail") -> float:
    """R = +1.0 if ``parse_verdict(response, rule)`` is the side ``label`` names (``model_a``/``model_b``/``A``/``B``),
    else -1.0."""
    side = label_side(label)
    return 1.0 if parse_verdict(response, rule) == side else -1.0


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's ``reward.custom_reward_function`` (``path: pkg://rm_r1.reward``, ``name: compute_score``).

    The verdict rule comes from ``reward.custom_reward_function.reward_kwargs.rule`` (default ``strict_tail``).
    Every sample returns the same keys: ``score`` = the preference reward (+1/-1), ``acc`` = 1.0 when the verdict is
    right else 0.0 (verl reports its mean as validation preference accuracy), ``verdict_found`` = 1.0 when the rule
    found exactly one verdict.
    """
    rule = kwargs.pop("rule", "strict_tail")
    unexpected = sorted(set(kwargs) - VERL_CALL_KWARGS)
    if unexpected:
        raise TypeError(f"compute_score got unexpected reward kwargs {unexpected}; the only one it takes is 'rule'")
    side = label_side(ground_truth)
    verdict = parse_verdict(solution_str, rule)
    correct = verdict == side
    return {
        "score": 1.0 if correct else -1.0,
        "acc": 1.0 if correct else 0.0,
        "verdict_found": 0.0 if verdict is None else 1.0,
    }


@cache
def _special_token_text_reward_manager() -> type:
    # Built on first use, so that importing the parser (evaluation, data preparation) does not import verl.
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    class _KeepSpecialTokens:
        """A view of a tokenizer whose ``decode`` always keeps special tokens (everything else is the tokenizer's)."""

        def __init__(self, tokenizer: Any) -> None:
            self._tokenizer = tokenizer

        def __getattr__(self, name: str) -> Any:
            if name == "_tokenizer":  # not set yet (copy, unpickling): no endless recursion
                raise AttributeError(name)
            return getattr(self._tokenizer, name)

        def decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str:
            return self._tokenizer.decode(token_ids, skip_special_tokens=False, **kwargs)

    class SpecialTokenTextRewardManager(NaiveRewardManager):
        """verl's naive reward manager, except that ``compute_score`` receives the response decoded WITH special
        tokens (e.g. a final ``<|im_end|>``), as RM-R1's reference reward did."""

        def __init__(self, config: Any, tokenizer: Any, compute_score: Any, **kwargs: Any) -> None:
            super().__init__(config, _KeepSpecialTokens(tokenizer), compute_score, **kwargs)

    SpecialTokenTextRewardManager.__module__ = __name__
    return SpecialTokenTextRewardManager


def __getattr__(name: str) -> Any:
    if name == "SpecialTokenTextRewardManager":
        return _special_token_text_reward_manager()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
