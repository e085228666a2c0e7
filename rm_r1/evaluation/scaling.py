"""Inference-time scaling of a judge (docs/rm_r1.md#inference-time-scaling): voting@k, meta-RM guided voting,
knockout, round-robin ELO (sequential, averaged over game orders, or a Bradley-Terry fit).

Everything takes plain verdicts or a judge callable and a seeded ``random.Random``, so it runs with a deterministic
fake judge in tests and with a real model in ``rm_r1.evaluate``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from harness.generation import BackendError, GenerationBackend, GenerationRequest, Sampling, request_seed
from rm_r1.judge.prompts import build_judge_messages
from rm_r1.judge.verdicts import EVALUATION_VERDICT_RULE, parse_verdict

TIE_RULES = ("random", "wrong")
"""How voting settles a tie for the most votes: a seeded coin among the leaders, or no decision (scored wrong)."""

FAILURE_RULES = ("abstain", "wrong")
"""What an unparsable sample does in voting: casts no vote, or votes for "no decision" (scored wrong if it leads)."""

Judge = Callable[[int, int], "str | None"]
"""``judge(a, b)`` compares candidate a (shown as reply A) with candidate b (shown as B): "A", "B" or None."""


def presentation_rng(seed: int, pair_id: str, sample: int) -> random.Random:
    """The random stream of one judged sample of one pair: stable across runs, processes and resumes."""
    return random.Random(f"{seed}/{pair_id}/{sample}")


def swapped(seed: int, pair_id: str, sample: int) -> bool:
    """Whether sample ``sample`` of pair ``pair_id`` shows the second reply as A (a seeded fair coin)."""
    return presentation_rng(seed, pair_id, sample).random() < 0.5


def unswap(verdict: str | None, swap: bool) -> int | None:
    """Index (0 = first, 1 = second original reply) that a verdict "A"/"B" picked; None stays None."""
    if verdict is None:
        return None
    if verdict not in ("A", "B"):
        raise ValueError(f"verdict must be 'A', 'B' or None, got {verdict!r}")
    return int((verdict == "B") != swap)


@dataclass(frozen=True)
class Vote:
    """Outcome of voting@k: the decision (None = no decision), its support and the raw counts."""

    decision: Hashable | None
    agreement: float
    counts: dict[Hashable, int]
    failures: int


def voting(
    verdicts: Sequence[Hashable | None],
    rng: random.Random,
    tie: str = "random",
    failures: str = "abstain",
) -> Vote:
    """Majority vote over k sampled verdicts (already mapped back to the original replies; None = parse failure).

    c(v) = number of samples with verdict v, over valid verdicts, plus c(None) when ``failures="wrong"``.
    Leaders = argmax_v c(v). One leader -> the decision; several -> ``tie="random"``: rng.choice(leaders) (ordered by
    first appearance), ``tie="wrong"``: None. A None decision means "no decision" and scores as wrong.
    agreement = max_v c(v) / k over valid verdicts only (0 when every sample failed).
    """
    if tie not in TIE_RULES:
        raise ValueError(f"unknown tie rule {tie!r}; expected one of {TIE_RULES}")
    if failures not in FAILURE_RULES:
        raise ValueError(f"unknown failure rule {failures!r}; expected one of {FAILURE_RULES}")
    if not verdicts:
        raise ValueError("voting needs at least one verdict")
    valid = Counter(v for v in verdicts if v is not None)
    n_failed = len(verdicts) - sum(valid.values())
    agreement = max(valid.values(), default=0) / len(verdicts)
    counts: Counter = Counter(valid)
    if failures == "wrong" and n_failed:
        counts[None] = n_failed
    if not counts:
        return Vote(None, agreement, dict(valid), n_failed)
    top = max(counts.values())
    leaders = [v for v in dict.fromkeys(verdicts) if counts.get(v) == top]
    if len(leaders) == 1:
        decision = leaders[0]
    else:
        decision = rng.choice(leaders) if tie == "random" else None
    return Vote(decision, agreement, dict(valid), n_failed)


def meta_guided_keep(meta_scores: Sequence[float | None]) -> list[int]:
    """Indices of the samples that meta-RM guided voting keeps (DeepSeek-GRM): the top max(1, k // 2) of the k
    samples by meta score, k = len(meta_scores). An unrated sample (None) ranks below every rated one; equal scores
    keep the earlier sample. Returned in sample order."""
    if not meta_scores:
        raise ValueError("meta-RM guided voting needs at least one sample")
    keep = max(1, len(meta_scores) // 2)
    ranked = sorted(range(len(meta_scores)), key=lambda i: (meta_scores[i] is None, -(meta_scores[i] or 0.0), i))
    return sorted(ranked[:keep])


@dataclass
class Knockout:
    """A knockout tournament: the winner, every match as (a, b, winner), the byes and the failed judgements."""

    winner: int
    matches: list[tuple[int, int, int]] = field(default_factory=list)
    byes: list[int] = field(default_factory=list)
    failures: int = 0


def knockout_tournament(n: int, judge: Judge, rng: random.Random) -> Knockout:
    """Best of n candidates by single elimination (RRM).

    Each round shuffles the remaining candidates with ``rng``; with an odd count the last one gets a bye; the rest
    meet in consecutive pairs (first of a pair shown as A) and the judge's pick advances. A failed judgement (None)
    is settled by a seeded coin and counted in ``failures``. Exactly n - 1 judgements.
    """
    if n < 1:
        raise ValueError(f"a tournament needs at least one candidate, got n={n}")
    result = Knockout(winner=0)
    alive = list(range(n))
    while len(alive) > 1:
        rng.shuffle(alive)
        advancing = []
        if len(alive) % 2:
            bye = alive.pop()
            result.byes.append(bye)
            advancing.append(bye)
        for a, b in zip(alive[::2], alive[1::2]):
            verdict = judge(a, b)
            if verdict not in ("A", "B", None):
                raise ValueError(f"judge({a}, {b}) must return 'A', 'B' or None, got {verdict!r}")
            if verdict is None:
                result.failures += 1
                verdict = rng.choice("AB")
            winner = a if verdict == "A" else b
            result.matches.append((a, b, winner))
            advancing.append(winner)
        alive = advancing
    result.winner = alive[0]
    return result


@dataclass
class Elo:
    """Round-robin ELO ratings per candidate, every game played as (a, b, winner), and the failed judgements."""

    ratings: list[float]
    games: list[tuple[int, int, int]] = field(default_factory=list)
    failures: int = 0


def round_robin_elo(
    n: int,
    judge: Judge,
    rng: random.Random,
    k_factor: float = 32.0,
    initial: float = 1000.0,
    both_orders: bool = True,
) -> Elo:
    """ELO ratings (per-candidate rewards) from a round robin of pairwise judgements (RRM).

    Games: every ordered pair (a, b), a != b, with a shown as A (``both_orders``, cancelling position bias), or every
    unordered pair once with a coin for which is A; played in an order shuffled by ``rng``. After each game, with
    S = 1 for the winner and 0 for the loser, E_a = 1 / (1 + 10^((R_b - R_a) / 400)), E_b = 1 - E_a:
    R_a += K (S_a - E_a), R_b += K (S_b - E_b), K = ``k_factor`` (the ratings keep summing to n * initial).
    A failed judgement (None) is no game: skipped and counted in ``failures``.
    """
    if n < 1:
        raise ValueError(f"a round robin needs at least one candidate, got n={n}")
    if both_orders:
        pairings = [(a, b) for a in range(n) for b in range(n) if a != b]
    else:
        pairings = [(a, b) if rng.random() < 0.5 else (b, a) for a in range(n) for b in range(a + 1, n)]
    rng.shuffle(pairings)
    result = Elo(ratings=[float(initial)] * n)
    ratings = result.ratings
    for a, b in pairings:
        verdict = judge(a, b)
        if verdict not in ("A", "B", None):
            raise ValueError(f"judge({a}, {b}) must return 'A', 'B' or None, got {verdict!r}")
        if verdict is None:
            result.failures += 1
            continue
        expected_a = 1.0 / (1.0 + 10.0 ** ((ratings[b] - ratings[a]) / 400.0))
        score_a = 1.0 if verdict == "A" else 0.0
        ratings[a] += k_factor * (score_a - expected_a)
        ratings[b] += k_factor * ((1.0 - score_a) - (1.0 - expected_a))
        result.games.append((a, b, a if verdict == "A" else b))
    return result


ELO_METHODS = ("sequential", "averaged", "bradley-terry")
"""How ratings come from a round robin's games: ELO updates in the order played (the final ratings depend on that
order), ELO averaged over seeded permutations of the games, or a Bradley-Terry fit (order-free by construction)."""


def sequential_elo(
    n: int, games: Sequence[tuple[int, int, int]], k_factor: float = 32.0, initial: float = 1000.0
) -> list[float]:
    """ELO ratings after the games (a, b, winner) in the given order, with the update of ``round_robin_elo``."""
    ratings = [float(initial)] * n
    for a, b, winner in games:
        if winner not in (a, b):
            raise ValueError(f"game {(a, b, winner)!r}: the winner must be one of the two players")
        expected_a = 1.0 / (1.0 + 10.0 ** ((ratings[b] - ratings[a]) / 400.0))
        delta = k_factor * ((1.0 if winner == a else 0.0) - expected_a)
        ratings[a] += delta
        ratings[b] -= delta
    return ratings


def averaged_elo(
    n: int,
    games: Sequence[tuple[int, int, int]],
    rng: random.Random,
    permutations: int = 32,
    k_factor: float = 32.0,
    initial: float = 1000.0,
) -> list[float]:
    """Mean over ``permutations`` orders of the games (shuffled with ``rng``) of ``sequential_elo``: an estimate
    that does not depend on the order in which ``games`` are given."""
    runs = elo_runs(n, games, rng, permutations, k_factor, initial)
    return [sum(run[i] for run in runs) / permutations for i in range(n)]


def elo_runs(
    n: int,
    games: Sequence[tuple[int, int, int]],
    rng: random.Random,
    permutations: int = 32,
    k_factor: float = 32.0,
    initial: float = 1000.0,
) -> list[list[float]]:
    """The ``sequential_elo`` ratings of each of ``permutations`` orders of the games (shuffled with ``rng``), whose
    mean ``averaged_elo`` is."""
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    order = sorted(games)  # the same games in any order give the same permutations
    runs = []
    for _ in range(permutations):
        rng.shuffle(order)
        runs.append(sequential_elo(n, order, k_factor, initial))
    return runs


def bradley_terry(
    n: int, games: Sequence[tuple[int, int, int]], initial: float = 1000.0, prior: float = 0.5, iterations: int = 500
) -> list[float]:
    """Bradley-Terry strengths p fitted to the games (P(i beats j) = p_i / (p_i + p_j)) on the ELO scale:
    rating_i = initial + 400 log10(p_i / geometric mean of p).

    Minorise-maximise updates p_i <- W_i / sum_j N_ij / (p_i + p_j) (W_i: wins of i, N_ij: games between i and j),
    each pair of candidates also credited with ``prior`` virtual wins each way so that a candidate that never won
    (or never lost) keeps a finite rating. The result does not depend on the order of ``games``."""
    wins = [prior * (n - 1)] * n
    meetings = [[0.0 if i == j else 2 * prior for j in range(n)] for i in range(n)]
    for a, b, winner in games:
        if winner not in (a, b):
            raise ValueError(f"game {(a, b, winner)!r}: the winner must be one of the two players")
        wins[winner] += 1
        meetings[a][b] += 1
        meetings[b][a] += 1
    strength = [1.0] * n
    for _ in range(iterations):
        new = []
        for i in range(n):
            denominator = sum(meetings[i][j] / (strength[i] + strength[j]) for j in range(n) if j != i)
            new.append(wins[i] / denominator if denominator else strength[i])
        scale = math.exp(sum(math.log(p) for p in new) / n)
        strength = [p / scale for p in new]
    return [initial + 400.0 * math.log10(p) for p in strength]


def pairwise_judge(
    backend: GenerationBackend,
    conversation: str | list[dict],
    candidates: Sequence[str],
    *,
    family: str = "instruct",
    prompt_file: str | None = None,
    sampling: Sampling | None = None,
    verdict_rule: str = EVALUATION_VERDICT_RULE,
    seed: int = 0,
) -> Judge:
    """A ``Judge`` over ``candidates`` (replies to ``conversation``) backed by a model: ``judge(a, b)`` shows
    candidate a as Chatbot A and b as Chatbot B, generates once (seed from (seed, a, b)) and parses the verdict
    with ``verdict_rule`` (greedy unless ``sampling`` says otherwise). A request the backend could not serve raises
    ``BackendError``."""
    sampling = sampling or Sampling()

    def judge(a: int, b: int) -> str | None:
        messages = build_judge_messages(
            conversation, candidates[a], candidates[b], family=family, prompt_file=prompt_file
        )
        (completion,) = backend.generate([GenerationRequest(messages, request_seed(seed, a, b))], sampling)
        if completion.text is None:
            raise BackendError(f"judging candidates {a} and {b} failed: {completion.error}")
        return parse_verdict(completion.text, verdict_rule)

    return judge
