"""Voting@k, knockout tournaments and round-robin ELO with deterministic fake judges."""

from __future__ import annotations

import math
import random

import pytest

from harness.generation import BackendError, Completion, request_seed
from rm_r1.evaluation.scaling import (
    averaged_elo,
    bradley_terry,
    knockout_tournament,
    meta_guided_keep,
    pairwise_judge,
    round_robin_elo,
    sequential_elo,
    swapped,
    unswap,
    voting,
)
from rm_r1.judge.prompts import build_judge_messages


def test_swapped_is_a_stable_fair_coin():
    coins = [swapped(0, f"pair-{i}", 0) for i in range(2000)]
    assert coins == [swapped(0, f"pair-{i}", 0) for i in range(2000)]
    assert 900 < sum(coins) < 1100
    assert coins != [swapped(1, f"pair-{i}", 0) for i in range(2000)]
    assert coins != [swapped(0, f"pair-{i}", 1) for i in range(2000)]


@pytest.mark.parametrize(
    "verdict, swap, expected", [("A", False, 0), ("B", False, 1), ("A", True, 1), ("B", True, 0), (None, True, None)]
)
def test_unswap(verdict, swap, expected):
    assert unswap(verdict, swap) == expected


def test_unswap_rejects_other_verdicts():
    with pytest.raises(ValueError, match="'C'"):
        unswap("C", False)


def test_voting_majority_and_agreement():
    vote = voting([0, 1, 0, None, 0], random.Random(0))
    assert vote.decision == 0
    assert vote.agreement == pytest.approx(3 / 5)
    assert vote.counts == {0: 3, 1: 1}
    assert vote.failures == 1


def test_voting_failures_abstain_or_count_as_wrong():
    verdicts = [None, None, 1]
    assert voting(verdicts, random.Random(0), failures="abstain").decision == 1
    assert voting(verdicts, random.Random(0), failures="wrong").decision is None
    assert voting([None, None], random.Random(0)).decision is None
    assert voting([None, None], random.Random(0)).agreement == 0.0


def test_voting_ties():
    assert voting([0, 1], random.Random(0), tie="wrong").decision is None
    picks = {voting([1, 0, None], random.Random(seed), tie="random").decision for seed in range(40)}
    assert picks == {0, 1}
    # a tie between a valid verdict and "no decision" under failures="wrong"
    assert voting([None, 1], random.Random(0), tie="wrong", failures="wrong").decision is None
    same = [voting([1, 0], random.Random(7)).decision for _ in range(5)]
    assert len(set(same)) == 1


@pytest.mark.parametrize("kwargs, match", [({"tie": "first"}, "tie rule"), ({"failures": "skip"}, "failure rule")])
def test_voting_bad_rules(kwargs, match):
    with pytest.raises(ValueError, match=match):
        voting([0], random.Random(0), **kwargs)
    with pytest.raises(ValueError, match="at least one"):
        voting([], random.Random(0))


def _quality_judge(quality, calls):
    def judge(a, b):
        calls.append((a, b))
        return "A" if quality[a] > quality[b] else "B"

    return judge


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 11])
def test_knockout_finds_the_best_with_n_minus_1_judgements(n):
    quality = random.Random(n).sample(range(100), n)
    calls = []
    result = knockout_tournament(n, _quality_judge(quality, calls), random.Random(3))
    assert result.winner == max(range(n), key=quality.__getitem__)
    assert len(calls) == len(result.matches) == n - 1
    assert result.failures == 0
    # a bye in every round with an odd number of players left
    alive, expected_byes = n, 0
    while alive > 1:
        expected_byes += alive % 2
        alive = (alive + 1) // 2
    assert len(result.byes) == expected_byes
    losers = [a if w == b else b for a, b, w in result.matches]
    assert sorted(losers + [result.winner]) == list(range(n))


def test_knockout_failed_judgements_are_coin_flips_and_counted():
    result = knockout_tournament(4, lambda a, b: None, random.Random(0))
    assert result.failures == 3 and len(result.matches) == 3
    with pytest.raises(ValueError, match="must return 'A', 'B' or None"):
        knockout_tournament(2, lambda a, b: "a", random.Random(0))


def test_knockout_pairing_is_seeded():
    def first(rng_seed):
        return knockout_tournament(6, lambda a, b: "A", random.Random(rng_seed)).matches

    assert first(1) == first(1)
    assert any(first(1) != first(s) for s in range(2, 6))


def test_elo_two_candidates_by_hand():
    result = round_robin_elo(2, lambda a, b: "A" if a == 0 else "B", random.Random(0), k_factor=32, initial=1000)
    # game 1 at equal ratings: the winner gains 32 * (1 - 0.5) = 16
    # game 2: expected score of the 1016-rated winner = 1 / (1 + 10 ** (-32 / 400)) = 0.546011...
    second = 32 * (1 - 1 / (1 + 10 ** (-32 / 400)))
    assert result.ratings[0] == pytest.approx(1016 + second)
    assert result.ratings[1] == pytest.approx(984 - second)
    assert sorted(result.games) == [(0, 1, 0), (1, 0, 0)]


def test_elo_ranks_a_transitive_judge_and_conserves_rating_mass():
    quality = [3, 9, 1, 7, 5]
    calls = []
    result = round_robin_elo(5, _quality_judge(quality, calls), random.Random(0))
    assert len(calls) == 20 and result.failures == 0
    assert sum(result.ratings) == pytest.approx(5000)
    assert max(range(5), key=result.ratings.__getitem__) == 1
    assert min(range(5), key=result.ratings.__getitem__) == 2
    single = round_robin_elo(5, _quality_judge(quality, []), random.Random(0), both_orders=False)
    assert len(single.games) == 10


def test_elo_skips_and_counts_failed_judgements():
    result = round_robin_elo(3, lambda a, b: None if {a, b} == {0, 2} else "A", random.Random(0))
    assert result.failures == 2 and len(result.games) == 4


class _RankingBackend:
    """A backend that prefers the candidate with the higher quality; it recognises the pair from the messages."""

    def __init__(self, conversation, candidates, quality, fail_on=None):
        self.routes = {
            repr(build_judge_messages(conversation, candidates[a], candidates[b])): (a, b)
            for a in range(len(candidates))
            for b in range(len(candidates))
            if a != b
        }
        self.quality, self.fail_on, self.requests = quality, fail_on, []

    def generate(self, requests, sampling):
        for index, request in enumerate(requests):
            self.requests.append(request)
            a, b = self.routes[repr(request.messages)]
            if self.fail_on in (a, b):
                yield Completion(index, None, "HTTP 503")
                continue
            yield Completion(index, f"<answer>[[{'A' if self.quality[a] > self.quality[b] else 'B'}]]</answer>")


def test_pairwise_judge_drives_a_tournament_with_a_backend():
    quality = (4, 17, 9, 12, 3)
    candidates = [f"My answer is {n}" for n in quality]
    backend = _RankingBackend("Pick a big number.", candidates, quality)
    judge = pairwise_judge(backend, "Pick a big number.", candidates, seed=5)
    assert judge(1, 0) == "A" and judge(0, 1) == "B"
    result = knockout_tournament(5, judge, random.Random(0))
    assert result.winner == 1
    assert len(backend.requests) == 2 + 4
    assert backend.requests[0].seed == request_seed(5, 1, 0) != request_seed(5, 0, 1)
    elo = round_robin_elo(5, judge, random.Random(0))
    assert max(range(5), key=elo.ratings.__getitem__) == 1
    failing_backend = _RankingBackend("Pick a big number.", candidates, quality, fail_on=0)
    failing = pairwise_judge(failing_backend, "Pick a big number.", candidates)
    with pytest.raises(BackendError, match="candidates 0 and 1 failed: HTTP 503"):
        failing(0, 1)


@pytest.mark.parametrize(
    "scores, kept",
    [
        ([5.0], [0]),
        ([3.0, 9.0, None, 9.0, 1.0, 5.0], [1, 3, 5]),  # top 3 of 6; the tie at 9 keeps both, then 5
        ([4.0, 4.0, 4.0], [0]),  # k // 2 = 1; equal scores keep the earlier sample
        ([None, None, None, None], [0, 1]),
        ([None, 2.0, -1.0, None, 0.5], [1, 4]),  # an unrated sample ranks below every rated one, even negative
    ],
)
def test_meta_guided_keep(scores, kept):
    assert meta_guided_keep(scores) == kept


def test_sequential_elo_depends_on_the_order_of_the_games_and_averaged_and_bt_do_not():
    games = [(0, 1, 0), (1, 2, 1), (2, 0, 2)]  # a cycle: every candidate wins once
    first, second = sequential_elo(3, games), sequential_elo(3, games[::-1])
    assert first != second  # the last winner ends on top
    assert max(range(3), key=first.__getitem__) == 2 and max(range(3), key=second.__getitem__) == 0
    # one game by hand: E = 0.5, the winner gains 16
    assert sequential_elo(2, [(0, 1, 1)]) == [984.0, 1016.0]
    rng = random.Random
    assert averaged_elo(3, games, rng(7), 16) == averaged_elo(3, games[::-1], rng(7), 16)
    assert bradley_terry(3, games) == pytest.approx(bradley_terry(3, games[::-1]), abs=1e-9)
    assert bradley_terry(3, games) == pytest.approx([1000.0] * 3, abs=1e-6)  # symmetric record, equal strengths


def test_bradley_terry_matches_the_closed_form_for_two_players():
    # 0 beats 1 three times, 1 beats 0 once; with 0.5 prior wins each way: 3.5 vs 1.5 of 5 games, so
    # p0 / p1 = 3.5 / 1.5 and the ratings sit 400 log10(7/3) apart around 1000
    games = [(0, 1, 0)] * 3 + [(1, 0, 1)]
    half = 200 * math.log10(7 / 3)
    assert bradley_terry(2, games) == pytest.approx([1000 + half, 1000 - half], abs=1e-6)
    assert bradley_terry(2, games, prior=0.0) == pytest.approx([1000 + 200 * math.log10(3), 1000 - 200 * math.log10(3)])


def test_elo_rejects_a_winner_outside_the_game():
    with pytest.raises(ValueError, match="winner must be one of the two players"):
        sequential_elo(3, [(0, 1, 2)])
    with pytest.raises(ValueError, match="winner must be one of the two players"):
        bradley_terry(3, [(0, 1, 2)])
