"""The training rewards of an RM-R1 judge, as verl's ``reward.custom_reward_function`` (docs/rm_r1.md#verdict-rules).

* ``compute_score`` (``path: pkg://rm_r1.training.reward``, ``name: compute_score``): the preference reward of a
  pairwise judge, R = +1 if the verdict (``rm_r1.judge.verdicts.parse_verdict`` under the run's verdict rule) names
  the labelled (chosen) side, else R = -1 (wrong side, both, none, malformed, truncated or empty output).
* ``compute_pointwise_score`` (``name: compute_pointwise_score``): the strict-winner reward of a pointwise judge
  (scores read by ``rm_r1.judge.pointwise.parse_scores``).

verl's own reward managers hand ``compute_score`` the response decoded WITHOUT special tokens; to give
``strict_tail`` the reference's input, select ``SpecialTokenTextRewardManager`` (``reward.reward_manager.source:
importlib``, ``module.path: pkg://rm_r1.training.reward``, ``name: SpecialTokenTextRewardManager``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from harness.verl_reward_call import VERL_CALL_KWARGS
from rm_r1.judge.pointwise import parse_scores
from rm_r1.judge.verdicts import DEFAULT_VERDICT_RULE, label_side, parse_verdict


def preference_reward(response: str, label: str, verdict_rule: str = DEFAULT_VERDICT_RULE) -> float:
    """R = +1.0 if ``parse_verdict(response, verdict_rule)`` is the side ``label`` names (``model_a``/``model_b``/``A``/
    ``B``), else -1.0."""
    side = label_side(label)
    return 1.0 if parse_verdict(response, verdict_rule) == side else -1.0


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's ``reward.custom_reward_function`` (``path: pkg://rm_r1.training.reward``, ``name: compute_score``).

    The verdict rule comes from ``reward.custom_reward_function.reward_kwargs.verdict_rule`` (default
    ``DEFAULT_VERDICT_RULE``).
    Every sample returns the same keys: ``score`` = the preference reward (+1/-1), ``acc`` = 1.0 when the verdict is
    right else 0.0 (verl reports its mean as validation preference accuracy), ``verdict_found`` = 1.0 when the rule
    found exactly one verdict.
    """
    verdict_rule = kwargs.pop("verdict_rule", DEFAULT_VERDICT_RULE)
    unexpected = sorted(set(kwargs) - VERL_CALL_KWARGS)
    if unexpected:
        raise TypeError(
            f"compute_score got unexpected reward kwargs {unexpected}; the only one it takes is 'verdict_rule'"
        )
    side = label_side(ground_truth)
    verdict = parse_verdict(solution_str, verdict_rule)
    correct = verdict == side
    return {
        "score": 1.0 if correct else -1.0,
        "acc": 1.0 if correct else 0.0,
        "verdict_found": 0.0 if verdict is None else 1.0,
    }


def strict_winner_reward(scores: Sequence[int] | None, best: int) -> float:
    """+1.0 iff scores[best] > scores[i] for every i != best; -1.0 otherwise (ties, or unparsed scores = None)."""
    if scores is None:
        return -1.0
    if not 0 <= best < len(scores):
        raise ValueError(f"best={best} is not the index of one of the {len(scores)} scored replies")
    return 1.0 if all(scores[best] > s for i, s in enumerate(scores) if i != best) else -1.0


def compute_pointwise_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | int,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's ``reward.custom_reward_function`` for a pointwise judge (``path: pkg://rm_r1.training.reward``,
    ``name: compute_pointwise_score``).

    ``ground_truth``: the best reply, ``model_a``/``model_b`` for a pair or its 0-based index among
    ``extra_info["num_replies"]`` (default 2) replies. Every sample returns ``score`` = the strict-winner reward
    (+1/-1), ``acc`` (1.0 when it is +1) and ``scores_found`` (1.0 when the scores parsed).
    """
    unexpected = sorted(set(kwargs) - VERL_CALL_KWARGS)
    if unexpected:
        raise TypeError(f"compute_pointwise_score got unexpected reward kwargs {unexpected}; it takes none")
    n = int((extra_info or {}).get("num_replies", 2))
    best = ground_truth if isinstance(ground_truth, int) else "AB".index(label_side(ground_truth))
    if not 0 <= best < n:
        raise ValueError(f"ground_truth {ground_truth!r} is not one of the {n} replies")
    scores = parse_scores(solution_str, n)
    reward = strict_winner_reward(scores, best)
    return {"score": reward, "acc": float(reward > 0), "scores_found": float(scores is not None)}


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
