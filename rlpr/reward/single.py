"""Single-example RLPR scores for analysis and debugging, through the same batch builder training uses."""

from __future__ import annotations

from collections.abc import Sequence

from harness.generation import pad_token_id
from rlpr.training.hf_logprobs import response_log_probs
from rlpr.training.rollout import make_rollout
from rlpr.training.scoring import DebiasConfig, ScoringConfig, build_scoring_batch, row_scores


def _check_reference(reference: str) -> str:
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError(f"reference must be a non-empty str, got {reference!r}")
    return reference


def score_response(
    model,
    tokenizer,
    prompt_ids: Sequence[int],
    response_ids: Sequence[int],
    reference: str,
    *,
    mode: str = "R1",
    temperature: float = 1.0,
    method: str = "mean_prob",
) -> float | None:
    """The probability reward r of one sampled response (docs/rlpr.md#probability-reward), or None for an invalid one.

    ``prompt_ids``/``response_ids`` are the sampled token ids (chat template applied to the prompt); ``model`` is a
    transformers causal LM on any device. None means the response failed the format check or its o' is empty.
    """
    _check_reference(reference)
    rollout = make_rollout([prompt_ids], [response_ids], [reference], ["0"], pad_token_id(tokenizer))
    config = ScoringConfig(format_mode=mode, score_method=method)
    scoring = build_scoring_batch(rollout, tokenizer, config, debias_rows=False)
    if scoring.response_row[0] < 0:
        return None
    log_probs = response_log_probs(model, scoring.data, temperature)
    return float(row_scores(scoring, log_probs, method)[scoring.response_row[0]])


def score_direct_answer(
    model,
    tokenizer,
    prompt_ids: Sequence[int],
    reference: str,
    *,
    temperature: float = 1.0,
    method: str = "mean_prob",
    tagged: bool = False,
) -> float:
    """The debias term r' of a prompt: f_seq of y* answered directly after the prompt, with no reasoning (§2)."""
    _check_reference(reference)
    rollout = make_rollout([prompt_ids], [[]], [reference], ["0"], pad_token_id(tokenizer))
    config = ScoringConfig(score_method=method, debias=DebiasConfig(tagged=tagged))
    scoring = build_scoring_batch(rollout, tokenizer, config, debias_rows=True)
    log_probs = response_log_probs(model, scoring.data, temperature)
    return float(row_scores(scoring, log_probs, method)[scoring.prompt_row["0"]])
