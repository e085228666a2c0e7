"""Best-of-N selection on RMB's best-of-N sets (``python -m rm_r1.evaluate --benchmark rmb --bon-strategy ...``).

Each set holds the best reply and 2-6 losers. A strategy picks one reply; the record counts when it picks the best:

* ``pairwise``: RMB's own rule, the best reply must beat every loser in its pair judgement (read from the run's
  pair judgements, so it costs nothing extra here);
* ``knockout``: a knockout tournament (``rm_r1.evaluation.scaling.knockout_tournament``) that the best reply must win;
* ``elo``: a round robin in both orders; the best reply must hold the strictly highest rating (``--elo-method``);
* ``pointwise``: one prompt rating all n replies (``rm_r1.judge.pointwise.build_rating_messages``) in a seeded order;
  the best reply must get the strictly highest score.

No result depends on the order of the replies in the data: brackets, game orders, rating prompts and coins are drawn
over the replies in ``canonical_order`` (by content), and ratings closer than ``RATING_TOLERANCE`` are equal. A tie at
the top (two or more replies sharing the highest rating or score) is reported as a tie (``ties``) and, as RMB counts
a record only when the best reply beats every loser, does not count.

In a tournament match an unparsable verdict is asked again (up to ``reasks`` times, the order of the two replies
flipped each time, so that even greedy decoding sees a new prompt); after that a seeded coin decides. Re-asks and
coins are counted. Every answer is stored under its own key in ``bon_judgements.jsonl`` as it arrives, so a rerun
reuses them and asks only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.files import repair_jsonl_tail
from harness.generation import BackendError, GenerationBackend, GenerationRequest, Sampling, request_seed
from rm_r1.evaluation.benchmarks import Comparison
from rm_r1.evaluation.scaling import ELO_METHODS, bradley_terry, elo_runs, knockout_tournament, sequential_elo
from rm_r1.evaluation.store import append_judgement
from rm_r1.judge.pointwise import build_rating_messages, parse_scores
from rm_r1.judge.prompts import build_judge_messages
from rm_r1.judge.verdicts import parse_verdict

BON_STRATEGIES = ("pairwise", "knockout", "elo", "pointwise")
BON_FILE = "bon_judgements.jsonl"
RATING_TOLERANCE = 1e-6
"""ELO points: ratings closer than this are equal (a tie is never decided by float noise, ~1e-13 here)."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_order(candidates: Sequence[str]) -> list[int]:
    """The candidates' indices sorted by content (SHA-256 of the text, then the text): the order in which brackets,
    game orders and rating prompts are drawn, so that they depend on the replies and never on their order."""
    return sorted(range(len(candidates)), key=lambda i: (_digest(candidates[i]), candidates[i]))


def top(values: Sequence[float], tolerance: float = 0.0) -> tuple[int, ...]:
    """The indices whose value is within ``tolerance`` of the highest: one index, or a tie."""
    best = max(values)
    return tuple(i for i, v in enumerate(values) if v >= best - tolerance)


@dataclass(frozen=True)
class BonSet:
    """One best-of-N record: its ``group`` id, RMB ``section``, the conversation and the replies, best first."""

    group: str
    section: str
    conversation: str | list[dict[str, str]]
    candidates: tuple[str, ...]


def bon_sets(comparisons: Iterable[Comparison]) -> list[BonSet]:
    """The best-of-N sets behind RMB's best-vs-loser pairs (meta ``kind`` = ``bon``), losers in file order."""
    groups: dict[str, list[Comparison]] = defaultdict(list)
    for c in comparisons:
        if c.meta.get("kind") == "bon":
            groups[c.meta["group"]].append(c)
    return [
        BonSet(group, pairs[0].meta["section"], pairs[0].conversation, (pairs[0].chosen, *(p.rejected for p in pairs)))
        for group, pairs in groups.items()
    ]


class Asker:
    """Asks the backend for each keyed request at most once per output folder: answers (or a refusal, stored as
    None) are appended to ``path`` as they arrive and reused on a rerun. A failure a retry may fix raises
    ``BackendError`` and stores nothing."""

    def __init__(self, backend: GenerationBackend, sampling: Sampling, path: Path, seed: int):
        self.backend, self.sampling, self.path, self.seed = backend, sampling, path, seed
        repair_jsonl_tail(path, "it will be judged again")
        self.answers: dict[str, str | None] = {}
        if path.exists():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    record = json.loads(line)
                    self.answers[record["key"]] = record["response"]
                except (ValueError, KeyError, TypeError) as error:
                    raise ValueError(f"{path}:{number}: not a best-of-N judgement record ({error})") from error
        self.new_calls = 0

    def ask(self, items: Sequence[tuple[str, list[dict[str, str]]]]) -> list[str | None]:
        """The answers to (key, messages) items, asking the backend (in one batch) only for unstored keys."""
        pending = list({key: messages for key, messages in items if key not in self.answers}.items())
        if pending:
            requests = [GenerationRequest(messages, request_seed(self.seed, key)) for key, messages in pending]
            failed = []
            with self.path.open("a", encoding="utf-8") as out:
                for completion in self.backend.generate(requests, self.sampling):
                    key = pending[completion.index][0]
                    if completion.text is None and not completion.permanent:
                        failed.append(f"{key}: {completion.error}")
                        continue
                    record = {"key": key, "response": completion.text}
                    if completion.text is None:
                        record["error"] = str(completion.error)
                    append_judgement(out, record)
                    self.answers[key] = completion.text
                    self.new_calls += 1
            if failed:
                raise BackendError(f"{len(failed)} best-of-N judgements failed (first: {failed[0]}); rerun to retry")
        return [self.answers[key] for key, _ in items]


@dataclass
class Tally:
    """Per strategy: records right per section, judge calls used, re-asks, coin decisions, parse failures, ties at
    the top, and each record's pick (the indices at the top: one, or a tie)."""

    right: dict[str, list[bool]]
    calls: int = 0
    reasks: int = 0
    coins: int = 0
    parse_failures: int = 0
    ties: int = 0
    picks: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def record(self, s: BonSet, pick: tuple[int, ...]) -> None:
        """``pick`` for set ``s``: right when it is the best reply alone; a tie never counts (RMB's rule)."""
        self.picks[s.group] = pick
        self.ties += len(pick) > 1
        self.right[s.section].append(pick == (0,))

    def summary(self) -> dict[str, Any]:
        records = sum(len(v) for v in self.right.values())
        out: dict[str, Any] = {f"bon_{section}": sum(v) / len(v) for section, v in sorted(self.right.items()) if v}
        out["accuracy"] = sum(sum(v) for v in self.right.values()) / records
        out["records"] = records
        out["judge_calls_per_record"] = self.calls / records
        out.update(reasks=self.reasks, coin_decisions=self.coins, parse_failures=self.parse_failures, ties=self.ties)
        return out


class BestOfN:
    """Runs the tournament strategies of one evaluation: the judge prompt ``family`` (or ``prompt_file``), verdicts
    read under ``verdict_rule``, up to ``reasks`` re-asks per unparsable match, ``elo_method`` (``ELO_METHODS``) with
    ``permutations`` orders for ``averaged``; every coin and order seeded with ``seed``."""

    def __init__(
        self,
        asker: Asker,
        *,
        family: str,
        prompt_file: str | None,
        verdict_rule: str,
        seed: int,
        reasks: int = 2,
        elo_method: str = "averaged",
        permutations: int = 32,
    ):
        if reasks < 0:
            raise ValueError(f"reasks must be >= 0, got {reasks}")
        if elo_method not in ELO_METHODS:
            raise ValueError(f"unknown ELO method {elo_method!r}; expected one of {ELO_METHODS}")
        self.asker, self.family, self.prompt_file, self.verdict_rule, self.seed = (
            asker,
            family,
            prompt_file,
            verdict_rule,
            seed,
        )
        self.reasks, self.elo_method, self.permutations = reasks, elo_method, permutations

    def _match_item(self, s: BonSet, a: int, b: int, attempt: int) -> tuple[str, list[dict[str, str]]]:
        first, second = (a, b) if attempt % 2 == 0 else (b, a)
        messages = build_judge_messages(
            s.conversation, s.candidates[first], s.candidates[second], family=self.family, prompt_file=self.prompt_file
        )
        return f"match/{s.group}/{a}/{b}/{attempt}", messages

    def match(self, s: BonSet, a: int, b: int, tally: Tally) -> int:
        """The winner of a shown as A against b: asked up to 1 + ``reasks`` times, then a seeded coin."""
        for attempt in range(self.reasks + 1):
            if attempt:
                tally.reasks += 1
            (response,) = self.asker.ask([self._match_item(s, a, b, attempt)])
            tally.calls += 1
            verdict = None if response is None else parse_verdict(response, self.verdict_rule)
            if verdict is not None:
                flipped = attempt % 2 == 1
                return a if (verdict == "A") != flipped else b
        tally.coins += 1  # drawn from the two replies' contents, not their indices
        coin = random.Random(f"{self.seed}/{s.group}/{_digest(s.candidates[a])}/{_digest(s.candidates[b])}/coin")
        return coin.choice((a, b))

    def knockout(self, sets: Sequence[BonSet]) -> Tally:
        tally = Tally(defaultdict(list))
        for s in sets:
            order = canonical_order(s.candidates)  # the bracket is drawn over the replies by content

            def judge(a: int, b: int, s: BonSet = s, order: list[int] = order) -> str:
                return "A" if self.match(s, order[a], order[b], tally) == order[a] else "B"

            result = knockout_tournament(len(s.candidates), judge, random.Random(f"{self.seed}/{s.group}/knockout"))
            tally.record(s, (order[result.winner],))
        return tally

    def elo_top(self, n: int, games: Sequence[tuple[int, int, int]], group: str) -> tuple[int, ...]:
        """The players at the top of the ratings of ``games`` (``top``, within ``RATING_TOLERANCE``). ``averaged``
        ratings are means over game orders, so a player is also at the top when its mean is within three standard errors
        of the difference from the best one's (a tie the number of orders cannot resolve)."""
        if self.elo_method == "sequential":
            order = sorted(games)  # the same games in any order give the same shuffled order
            random.Random(f"{self.seed}/{group}/elo").shuffle(order)
            return top(sequential_elo(n, order), RATING_TOLERANCE)
        if self.elo_method == "bradley-terry":
            return top(bradley_terry(n, games), RATING_TOLERANCE)
        runs = elo_runs(n, games, random.Random(f"{self.seed}/{group}/elo"), self.permutations)
        means = [sum(run[i] for run in runs) / len(runs) for i in range(n)]
        variances = [
            sum((run[i] - means[i]) ** 2 for run in runs) / max(len(runs) - 1, 1) / len(runs) for i in range(n)
        ]
        best = max(range(n), key=lambda i: means[i])
        return tuple(
            i
            for i in range(n)
            if means[best] - means[i] <= max(RATING_TOLERANCE, 3 * math.sqrt(variances[best] + variances[i]))
        )

    def elo(self, sets: Sequence[BonSet]) -> Tally:
        tally = Tally(defaultdict(list))
        pairings = {s.group: [(a, b) for a in range(len(s.candidates)) for b in range(len(s.candidates)) if a != b]
                    for s in sets}  # fmt: skip
        self.asker.ask([self._match_item(s, a, b, 0) for s in sets for a, b in pairings[s.group]])  # one batch
        for s in sets:
            games = [(a, b, self.match(s, a, b, tally)) for a, b in pairings[s.group]]
            position = {index: p for p, index in enumerate(canonical_order(s.candidates))}
            canonical = [(position[a], position[b], position[w]) for a, b, w in games]
            order = canonical_order(s.candidates)
            tally.record(s, tuple(sorted(order[p] for p in self.elo_top(len(s.candidates), canonical, s.group))))
        return tally

    def _rating_item(self, s: BonSet, attempt: int) -> tuple[str, list[dict[str, str]], list[int]]:
        order = canonical_order(s.candidates)
        random.Random(f"{self.seed}/{s.group}/pointwise/{attempt}").shuffle(order)
        messages = build_rating_messages(s.conversation, [s.candidates[i] for i in order], self.family)
        return f"rating/{s.group}/{attempt}", messages, order

    def pointwise(self, sets: Sequence[BonSet]) -> Tally:
        """All replies rated in one prompt (re-asked in a new order when unparsable); right when the best reply's
        score is strictly the highest (a shared highest score is a tie), wrong when no answer parsed."""
        tally = Tally(defaultdict(list))
        self.asker.ask([self._rating_item(s, 0)[:2] for s in sets])
        for s in sets:
            scores = None
            for attempt in range(self.reasks + 1):
                if attempt:
                    tally.reasks += 1
                key, messages, order = self._rating_item(s, attempt)
                (response,) = self.asker.ask([(key, messages)])
                tally.calls += 1
                shown = None if response is None else parse_scores(response, len(order))
                if shown is not None:
                    scores = [0] * len(order)
                    for position, index in enumerate(order):
                        scores[index] = shown[position]
                    break
                tally.parse_failures += 1
            if scores is None:
                tally.picks[s.group] = ()
                tally.right[s.section].append(False)
            else:
                tally.record(s, top(scores))
        return tally


def pairwise_tally(sets: Sequence[BonSet], pair_scores: dict[str, Any], judgements_per_pair: int) -> dict[str, Any]:
    """The ``pairwise`` strategy from the run's own RMB scores (best reply beats every loser): its parts, and
    (n - 1) x ``judgements_per_pair`` judge calls per record."""
    records = len(sets)
    out = {key: pair_scores[key] for key in ("bon_helpfulness", "bon_harmlessness") if key in pair_scores}
    counts = pair_scores["counts"]
    out["accuracy"] = sum(out[key] * counts[key] for key in out) / records
    out["records"] = records
    out["judge_calls_per_record"] = sum(len(s.candidates) - 1 for s in sets) * judgements_per_pair / records
    return out
