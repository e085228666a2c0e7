"""How each judging mode asks, reads and votes: one class per ``--mode`` of ``python -m rm_r1.evaluate``.

* ``Pairwise``: the RM-R1 judge prompt, a verdict ``[[A]]``/``[[B]]`` read with a verdict rule, majority voting
  (``rm_r1.evaluation.scaling.voting``).
* ``Pointwise``: the DeepSeek-GRM prompt, ``Scores: \\boxed{x, y}``, score sums with a seeded tie-break
  (``rm_r1.judge.pointwise.pointwise_voting``).

A reading is what one judgement says about the ORIGINAL order (chosen reply first); it is stored in the judgement's
record: ``{"pick": 0 | 1 | None}`` (0 = chosen, 1 = rejected) or ``{"scores": [chosen, rejected] | None}``. None means
no parsable answer, or a failed judgement (no response).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from rm_r1.evaluation.benchmarks import Comparison
from rm_r1.evaluation.scaling import unswap, voting
from rm_r1.judge.pointwise import build_pointwise_messages, parse_scores, pointwise_voting
from rm_r1.judge.prompts import build_judge_messages, check_layout
from rm_r1.judge.verdicts import EVALUATION_VERDICT_RULE, parse_verdict

MODES = ("pairwise", "pointwise")


class JudgeMode(Protocol):
    """A judging mode: how the judge is asked, how its answer is read, and how samples are voted."""

    key: ClassVar[str]
    """The reading's key (``pick`` or ``scores``); its value is None when the judgement gave no parsable answer."""
    answer: ClassVar[str]
    """What the judge answers with, in words (``verdict`` or ``scores``)."""

    def messages(self, comparison: Comparison, swap: bool) -> list[dict[str, str]]:
        """The judge's chat messages, with the chosen reply shown as B when ``swap``."""
        ...

    def read(self, response: str | None, swap: bool) -> dict[str, Any]:
        """The reading of one response (None: a failed judgement) shown in order ``swap``."""
        ...

    def vote(self, readings: Sequence[Mapping[str, Any]], rng: random.Random) -> tuple[bool, float]:
        """(whether the chosen reply wins, agreement) over a pair's readings; ``rng`` settles ties."""
        ...


def shown(comparison: Comparison, swap: bool) -> tuple[str, str]:
    """The replies as shown (A, B): chosen first, or rejected first when ``swap``."""
    return (comparison.rejected, comparison.chosen) if swap else (comparison.chosen, comparison.rejected)


@dataclass(frozen=True)
class Pairwise:
    """The RM-R1 judge: prompt ``family`` (or the instructions of ``prompt_file``), verdicts read under
    ``verdict_rule``, voting settled by ``tie`` and ``failures`` (``rm_r1.evaluation.scaling.TIE_RULES``,
    ``FAILURE_RULES``)."""

    family: str = "instruct"
    prompt_file: str | None = None
    verdict_rule: str = EVALUATION_VERDICT_RULE
    tie: str = "random"
    failures: str = "abstain"
    layout: str = "project"
    key: ClassVar[str] = "pick"
    answer: ClassVar[str] = "verdict"

    def messages(self, comparison: Comparison, swap: bool) -> list[dict[str, str]]:
        a, b = shown(comparison, swap)
        return build_judge_messages(
            comparison.conversation, a, b, family=self.family, prompt_file=self.prompt_file, layout=self.layout
        )

    def read(self, response: str | None, swap: bool) -> dict[str, Any]:
        return {"pick": None if response is None else unswap(parse_verdict(response, self.verdict_rule), swap)}

    def vote(self, readings: Sequence[Mapping[str, Any]], rng: random.Random) -> tuple[bool, float]:
        result = voting([r["pick"] for r in readings], rng, tie=self.tie, failures=self.failures)
        return result.decision == 0, result.agreement


@dataclass(frozen=True)
class Pointwise:
    """The DeepSeek-GRM pointwise judge in prompt ``family``: integer scores per reply, summed over samples; the
    argmax wins, ties broken by the seeded coin. Agreement = share of samples whose higher score went to the winner."""

    family: str = "instruct"
    key: ClassVar[str] = "scores"
    answer: ClassVar[str] = "scores"

    def messages(self, comparison: Comparison, swap: bool) -> list[dict[str, str]]:
        a, b = shown(comparison, swap)
        return build_pointwise_messages(comparison.conversation, a, b, self.family)

    def read(self, response: str | None, swap: bool) -> dict[str, Any]:
        scores = None if response is None else parse_scores(response)
        if scores is not None and swap:
            scores = scores[::-1]
        return {"scores": None if scores is None else list(scores)}

    def vote(self, readings: Sequence[Mapping[str, Any]], rng: random.Random) -> tuple[bool, float]:
        vote = pointwise_voting([None if r["scores"] is None else tuple(r["scores"]) for r in readings], 2, rng)
        winners = Counter(
            0 if r["scores"][0] > r["scores"][1] else 1 if r["scores"][1] > r["scores"][0] else None
            for r in readings
            if r["scores"] is not None
        )
        agreement = winners.get(vote.decision, 0) / len(readings) if vote.failures < len(readings) else 0.0
        return vote.decision == 0, agreement


def make_mode(
    name: str,
    family: str = "instruct",
    *,
    prompt_file: str | None = None,
    verdict_rule: str = EVALUATION_VERDICT_RULE,
    tie: str = "random",
    failures: str = "abstain",
    layout: str = "project",
) -> JudgeMode:
    """The mode ``name`` (one of ``MODES``). The pointwise judge has its own prompt and voting, so it takes only
    ``family``: a ``prompt_file`` is an error, the verdict and voting rules are not used."""
    if name == "pairwise":
        return Pairwise(family, prompt_file, verdict_rule, tie, failures, check_layout(layout))
    if name != "pointwise":
        raise ValueError(f"unknown judging mode {name!r}; expected one of {MODES}")
    if prompt_file:
        raise ValueError("--prompt-file replaces the pairwise judge prompt; pointwise mode has its own prompt")
    if layout != "project":
        raise ValueError("--prompt-layout lays out the pairwise judge prompt; pointwise mode has its own prompt")
    return Pointwise(family)
