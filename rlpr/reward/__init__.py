"""The RLPR reward math as pure functions (docs/rlpr.md#probability-reward, #debias, #final-reward).

Token probabilities in, rewards out. ``sequence_scores`` and ``final_rewards`` are the batched forms the trainer
uses; the scalar functions (``sequence_score``, ``debias``, ``combine``) are the public API for users' own tests and
analysis and hold the same arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

SCORE_METHODS = ("mean_prob", "geo_mean_prob", "seq_likelihood", "mean_logprob")
SHAPINGS = ("clip", "identity", "none")
# c in R = (1 - c)·r̂ + c·F + P: the paper's format coefficient, the default everywhere it is taken.
FORMAT_COEF = 0.1

# log p is floored here so that a probability that underflowed to 0 gives a large finite penalty, never -inf/NaN.
_MIN_LOGPROB = math.log(torch.finfo(torch.float32).tiny)


def check_method(method: str) -> str:
    if method not in SCORE_METHODS:
        raise ValueError(f"unknown sequence-score method {method!r}; expected one of {SCORE_METHODS}")
    return method


def check_shaping(shaping: str) -> str:
    if shaping not in SHAPINGS:
        raise ValueError(f"unknown shaping {shaping!r}; expected one of {SHAPINGS}")
    return shaping


def sequence_scores(log_probs: torch.Tensor, mask: torch.Tensor, method: str = "mean_prob") -> torch.Tensor:
    """f_seq per row over the masked tokens, in float64; a row with an empty mask scores 0.0.

    With p_t = exp(log_probs[t]) over the masked tokens of a row:
    ``mean_prob`` = mean p_t (the paper's choice); ``geo_mean_prob`` = exp(mean log p_t);
    ``seq_likelihood`` = exp(sum log p_t); ``mean_logprob`` = mean log p_t.
    """
    check_method(method)
    if log_probs.shape != mask.shape:
        raise ValueError(f"log_probs shape {tuple(log_probs.shape)} != mask shape {tuple(mask.shape)}")
    m = mask.to(torch.float64)
    lp = log_probs.to(torch.float64).clamp(min=_MIN_LOGPROB)
    lp = torch.where(m > 0, lp, torch.zeros_like(lp))  # padding may hold anything, even NaN
    count = m.sum(-1)
    safe = count.clamp(min=1)
    if method == "mean_prob":
        score = (lp.exp() * m).sum(-1) / safe
    elif method == "geo_mean_prob":
        score = ((lp * m).sum(-1) / safe).exp()
    elif method == "seq_likelihood":
        score = (lp * m).sum(-1).exp()
    else:
        score = (lp * m).sum(-1) / safe
    return torch.where(count > 0, score, torch.zeros_like(score))


def sequence_score(token_probs: Sequence[float] | torch.Tensor, method: str = "mean_prob") -> float:
    """f_seq over the probabilities of the reference-answer tokens (see ``sequence_scores``); empty input -> 0.0.

    Every probability must be a finite number in [0, 1].
    """
    check_method(method)
    probs = torch.as_tensor(token_probs, dtype=torch.float64).flatten()
    if torch.isnan(probs).any():
        raise ValueError(f"token_probs contains NaN: {probs.tolist()}")
    if ((probs < 0) | (probs > 1)).any():
        raise ValueError(f"token_probs must lie in [0, 1], got {probs.tolist()}")
    if probs.numel() == 0:
        return 0.0
    log_probs = torch.log(probs).unsqueeze(0)
    return float(sequence_scores(log_probs, torch.ones_like(log_probs), method)[0])


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def debias(r: float, r_prime: float, shaping: str = "clip") -> float:
    """r̂ from the probability reward r and the no-reasoning term r'.

    ``clip``: clip(r - r', 0, 1) (the paper's Eq. 4); ``identity``: r - r'; ``none``: r (no debiasing).
    """
    check_shaping(shaping)
    r, r_prime = _finite("r", r), _finite("r_prime", r_prime)
    if shaping == "none":
        return r
    if shaping == "identity":
        return r - r_prime
    return min(max(r - r_prime, 0.0), 1.0)


def combine(
    r_hat: float,
    format_score: float,
    repetition: float,
    format_coef: float = FORMAT_COEF,
    repetition_on_all: bool = True,
) -> float:
    """The final reward R = (1 - c)·r̂ + c·F + P with c = ``format_coef`` in [0, 1], F in [0, 1] and P <= 0.

    ``repetition_on_all``: P applies to every response (this project's default). False: P applies only where
    (1 - c)·r̂ + c·F is non-zero (the reference implementation, which leaves repetitive zero-reward responses
    unpunished).
    """
    r_hat = _finite("r_hat", r_hat)
    format_score = _finite("format_score", format_score)
    repetition = _finite("repetition", repetition)
    format_coef = _finite("format_coef", format_coef)
    if not 0.0 <= format_coef <= 1.0:
        raise ValueError(f"format_coef must lie in [0, 1], got {format_coef}")
    if not 0.0 <= format_score <= 1.0:
        raise ValueError(f"format_score must lie in [0, 1], got {format_score}")
    if repetition > 0:
        raise ValueError(f"repetition must be <= 0 (a penalty), got {repetition}")
    reward = (1.0 - format_coef) * r_hat + format_coef * format_score
    return reward + repetition if repetition_on_all or reward != 0 else reward


def final_rewards(
    r: torch.Tensor,
    r_prime: torch.Tensor,
    format_scores: torch.Tensor,
    repetition: torch.Tensor,
    *,
    shaping: str = "clip",
    format_coef: float = FORMAT_COEF,
    repetition_on_all: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """r̂ = ``debias(r, r')`` and R = ``combine(r̂, F, P)`` for every response, as float64 tensors."""
    if not (len(r) == len(r_prime) == len(format_scores) == len(repetition)):
        raise ValueError(
            f"r ({len(r)}), r_prime ({len(r_prime)}), format_scores ({len(format_scores)}) and repetition "
            f"({len(repetition)}) must have the same length"
        )
    r_hat = [debias(a, b, shaping) for a, b in zip(r.tolist(), r_prime.tolist())]
    reward = [
        combine(h, f, p, format_coef, repetition_on_all)
        for h, f, p in zip(r_hat, format_scores.tolist(), repetition.tolist())
    ]
    return torch.tensor(r_hat, dtype=torch.float64), torch.tensor(reward, dtype=torch.float64)
