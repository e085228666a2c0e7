"""Best-of-N strategies on RMB's best-of-N sets, with a stand-in judge that ranks the replies it is shown by a known
quality table (in process, and over HTTP through ``python -m rm_r1.evaluate --bon-strategy``)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from harness.generation import BackendError, Completion, Sampling
from rm_r1.evaluation.benchmarks import load_rmb
from rm_r1.evaluation.best_of_n import BON_FILE, Asker, BestOfN, bon_sets
from rm_r1.evaluation.evaluate import main

DATA = Path(__file__).parent / "eval_data" / "rmb"
SETS = {s.group: s for s in bon_sets(load_rmb(DATA))}  # harm-bon-1: 4 replies, help-bon-1: 3 replies


class QualityJudge:
    """Finds which candidate replies a prompt shows, in order, and answers by ``quality[group][index]``: a pairwise
    verdict for the higher one, or 1-10 scores for a rating prompt. ``garbage(group, shown)`` -> True makes it answer
    without a verdict. Counts the requests it answered."""

    def __init__(self, quality, garbage=lambda group, shown: False):
        self.quality, self.garbage, self.calls = quality, garbage, 0
        self.lock = threading.Lock()

    def answer(self, messages):
        text = messages[-1]["content"]
        group, found = next(
            (g, found)
            for g, s in SETS.items()
            if len(found := sorted((text.find(r), i) for i, r in enumerate(s.candidates) if r in text)) >= 2
        )
        shown = tuple(i for _, i in found)
        with self.lock:
            self.calls += 1
        if self.garbage(group, shown):
            return "I cannot tell."
        q = self.quality[group]
        if "[Reply 1]" in text:  # a rating prompt: one score per shown reply
            return "Scores: \\boxed{" + ", ".join(str(q[i]) for i in shown) + "}"
        a, b = shown
        return f"<answer>[[{'A' if q[a] > q[b] else 'B'}]]</answer>"


class Backend:
    def __init__(self, judge):
        self.judge = judge

    def generate(self, requests, sampling):
        for i, request in enumerate(requests):
            yield Completion(i, self.judge.answer(request.messages))


def _runner(tmp_path, judge, **options):
    tmp_path.mkdir(exist_ok=True)
    asker = Asker(Backend(judge), Sampling(), tmp_path / BON_FILE, seed=0)
    options = {"family": "instruct", "prompt_file": None, "verdict_rule": "anywhere", "seed": 0, **options}
    return BestOfN(asker, **options)


TRUE_ORDER = {"harm-bon-1": [9, 6, 3, 1], "help-bon-1": [8, 5, 2]}  # the best reply (index 0) is the best
LOSER_FIRST = {"harm-bon-1": [6, 9, 3, 1], "help-bon-1": [5, 2, 8]}  # a loser is rated above the best


@pytest.mark.parametrize("strategy", ["knockout", "elo", "pointwise"])
def test_strategies_pick_the_best_when_the_judge_ranks_it_first(tmp_path, strategy):
    judge = QualityJudge(TRUE_ORDER)
    summary = getattr(_runner(tmp_path, judge), strategy)(list(SETS.values())).summary()
    calls = {"knockout": (3 + 2) / 2, "elo": (4 * 3 + 3 * 2) / 2, "pointwise": 1.0}[strategy]  # n-1, n(n-1), 1
    assert summary == {
        "bon_harmlessness": 1.0, "bon_helpfulness": 1.0, "accuracy": 1.0, "records": 2,
        "judge_calls_per_record": calls, "reasks": 0, "coin_decisions": 0, "parse_failures": 0, "ties": 0,
    }  # fmt: skip
    assert judge.calls == 2 * calls

    wrong = getattr(_runner(tmp_path / "b", QualityJudge(LOSER_FIRST)), strategy)(list(SETS.values())).summary()
    assert wrong["accuracy"] == 0.0


@pytest.mark.parametrize("method", ["sequential", "averaged", "bradley-terry"])
def test_elo_methods_agree_on_a_consistent_judge(tmp_path, method):
    summary = _runner(tmp_path, QualityJudge(TRUE_ORDER), elo_method=method).elo(list(SETS.values())).summary()
    assert summary["accuracy"] == 1.0


def test_an_unparsable_match_is_asked_again_in_the_other_order_then_a_coin_decides(tmp_path):
    sets = [SETS["help-bon-1"]]  # 3 replies: 6 ordered games in the round robin

    def best_shown_first(group, shown):
        return shown[0] == 0

    judge = QualityJudge(TRUE_ORDER, best_shown_first)
    summary = _runner(tmp_path, judge, reasks=2).elo(sets).summary()
    # the 2 games with the best reply as A fail once and are answered flipped: 6 + 2 calls, 2 re-asks, no coin
    assert (summary["reasks"], summary["coin_decisions"], summary["judge_calls_per_record"]) == (2, 0, 8.0)
    assert summary["accuracy"] == 1.0

    never = QualityJudge(TRUE_ORDER, lambda group, shown: True)
    summary = _runner(tmp_path / "never", never, reasks=1).knockout(sets).summary()
    assert (summary["reasks"], summary["coin_decisions"], summary["judge_calls_per_record"]) == (2, 2, 4.0)
    summary = _runner(tmp_path / "never", never, reasks=1).pointwise(sets).summary()
    assert (summary["reasks"], summary["parse_failures"], summary["accuracy"]) == (1, 2, 0.0)


def test_a_rerun_reuses_every_stored_answer(tmp_path):
    judge = QualityJudge(TRUE_ORDER)
    first = {name: getattr(_runner(tmp_path, judge), name)(list(SETS.values())).summary() for name in
             ("knockout", "elo", "pointwise")}  # fmt: skip
    asked = judge.calls

    class Refuses:
        def generate(self, requests, sampling):
            raise AssertionError(f"asked again: {requests}")

    asker = Asker(Refuses(), Sampling(), tmp_path / BON_FILE, seed=0)
    runner = BestOfN(asker, family="instruct", prompt_file=None, verdict_rule="anywhere", seed=0)
    assert {name: getattr(runner, name)(list(SETS.values())).summary() for name in first} == first
    assert len((tmp_path / BON_FILE).read_text().splitlines()) == asked
    assert asker.new_calls == 0


def test_a_failure_a_retry_may_fix_is_not_stored(tmp_path):
    class Down:
        def generate(self, requests, sampling):
            for i, _ in enumerate(requests):
                yield Completion(i, None, "HTTP 503", permanent=False)

    runner = BestOfN(Asker(Down(), Sampling(), tmp_path / BON_FILE, 0), family="instruct", prompt_file=None,
                     verdict_rule="anywhere", seed=0)  # fmt: skip
    with pytest.raises(BackendError, match="best-of-N judgements failed .*rerun"):
        runner.elo([SETS["help-bon-1"]])
    assert not (tmp_path / BON_FILE).read_text()


def _pairs_judge(quality_judge):
    """The fake server's answer: right on the pair prompts of RMB's pairwise sets (the chosen reply is the first pair
    text the data holds), ``quality_judge`` on the rest."""
    pairs = {p.pair_id: p for p in load_rmb(DATA) if p.meta["kind"] == "pairwise"}

    def answer(body):
        text = body["messages"][-1]["content"]
        for p in pairs.values():
            if p.chosen in text and p.rejected in text:
                return f"<answer>[[{'A' if text.find(p.chosen) < text.find(p.rejected) else 'B'}]]</answer>"
        return quality_judge.answer(body["messages"])

    return answer


def test_evaluate_bon_strategies_over_http_resumes_and_reports(openai_server, tmp_path, capsys):
    quality = QualityJudge({"harm-bon-1": [9, 6, 3, 1], "help-bon-1": [5, 2, 8]})  # help: a loser on top
    args = [
        "--benchmark", "rmb", "--data", str(DATA), "--model", "judge", "--prompt-family", "instruct",
        "--backend", "openai", "--output-dir", str(tmp_path), "--retries", "0", "--timeout", "10", "--concurrency", "4",
        "--bon-strategy", "pairwise,knockout,elo,pointwise", "--elo-method", "bradley-terry",
    ]  # fmt: skip
    with openai_server(_pairs_judge(quality)) as server:
        assert main([*args, "--base-url", server.base_url]) == 0
        first = len(server.bodies)
        # 3 pairwise + 5 best-vs-loser pairs, then knockout 3 + 2, elo 12 + 6 (of which the 5 knockout matches,
        # same replies in the same order, are reused), pointwise 1 + 1
        assert len(load_rmb(DATA)) == 8 and first == 8 + 5 + (18 - 5) + 2
        summary = json.loads((tmp_path / "summary.json").read_text())
        bon = summary["best_of_n"]
        for strategy in ("pairwise", "knockout", "elo", "pointwise"):
            assert (bon[strategy]["bon_harmlessness"], bon[strategy]["bon_helpfulness"]) == (1.0, 0.0), strategy
            assert bon[strategy]["accuracy"] == 0.5 and bon[strategy]["records"] == 2
        assert [bon[s]["judge_calls_per_record"] for s in ("pairwise", "knockout", "elo", "pointwise")] == [
            2.5, 2.5, 9.0, 1.0,
        ]  # fmt: skip
        assert summary["results"]["greedy"]["scores"]["bon_helpfulness"] == 0.0
        printed = capsys.readouterr().out
        assert re.search(r"\| elo \| 0\.0 \| 100\.0 \| 50\.0 \| 9\.00 \| 0 \| 0 \|", printed), printed

        assert main([*args, "--base-url", server.base_url, "--elo-method", "sequential"]) == 0
        assert len(server.bodies) == first  # everything reused, re-scored under another ELO method
        assert json.loads((tmp_path / "summary.json").read_text())["settings"]["elo_method"] == "sequential"


def test_bon_strategy_needs_rmb(tmp_path):
    with pytest.raises(SystemExit, match="needs --benchmark rmb"):
        main(["--benchmark", "rewardbench", "--data", "x", "--model", "m", "--prompt-family", "instruct",
              "--backend", "openai", "--output-dir", str(tmp_path), "--bon-strategy", "elo"])  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# the order of the candidates never matters

WORDS = ("alpha", "bravo", "charlie", "delta", "echo")  # quality 4, 3, 2, 1, 0: alpha is the best reply
QUALITY = {f"the {w} reply": 4 - i for i, w in enumerate(WORDS)}


def _shown(text: str) -> list[str]:
    """The candidate replies a prompt shows, in the order shown."""
    return [reply for _, reply in sorted((text.find(r), r) for r in QUALITY if r in text)]


def transitive(a: str, b: str) -> str:
    return "A" if QUALITY[a] > QUALITY[b] else "B"


def position_biased(a: str, b: str) -> str:
    return "A"


def cyclic(a: str, b: str) -> str:  # a regular tournament on 5 replies: each beats the next two (mod 5)
    return "A" if (QUALITY[a] - QUALITY[b]) % 5 in (1, 2) else "B"


class TextJudge:
    def __init__(self, prefer):
        self.prefer = prefer

    def generate(self, requests, sampling):
        for i, request in enumerate(requests):
            shown = _shown(request.messages[-1]["content"])
            if len(shown) > 2:  # a rating prompt: the pairwise preference, counted as points against the others
                points = [sum(self.prefer(r, o) == "A" for o in shown if o != r) for r in shown]
                yield Completion(i, "Scores: \\boxed{" + ", ".join(str(2 + p) for p in points) + "}")
            else:
                yield Completion(i, f"<answer>[[{self.prefer(*shown)}]]</answer>")


@pytest.mark.parametrize("prefer", [transitive, position_biased, cyclic])
@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        ("elo", {"elo_method": "averaged"}),
        ("elo", {"elo_method": "bradley-terry"}),
        ("elo", {"elo_method": "sequential"}),
        ("knockout", {}),
        ("pointwise", {}),
    ],
)
def test_the_pick_and_the_score_do_not_depend_on_the_candidates_order(tmp_path, prefer, strategy, options):
    import random

    from rm_r1.evaluation.best_of_n import BonSet

    best, losers = list(QUALITY)[0], list(QUALITY)[1:]
    results = set()
    rng = random.Random(0)
    for i in range(100):
        order = rng.sample(losers, len(losers))
        s = BonSet("set", "helpfulness", "Which reply?", (best, *order))  # the best reply first, as RMB's sets are
        asker = Asker(TextJudge(prefer), Sampling(), tmp_path / f"{i}.jsonl", seed=0)
        runner = BestOfN(asker, family="instruct", prompt_file=None, verdict_rule="anywhere", seed=0, **options)
        tally = getattr(runner, strategy)([s])
        picked = frozenset(s.candidates[j] for j in tally.picks["set"])
        results.add((picked, tally.summary()["accuracy"], tally.ties))
    assert len(results) == 1, results  # before: averaged ELO and Bradley-Terry changed pick and score with the order
    ((picked, accuracy, ties),) = results
    if prefer is transitive:
        assert (picked, accuracy, ties) == ({best}, 1.0, 0)
    # every reply wins as A and loses as B (position bias), or beats two and loses to two (cyclic): the exact fit, the
    # one-prompt scores and the averaged ELO (within three standard errors) tie all five; one sequential order is an
    # estimate that may single one out, the same whatever the order of the candidates
    if prefer is not transitive and (
        options.get("elo_method") in ("bradley-terry", "averaged") or strategy == "pointwise"
    ):
        assert (picked, accuracy, ties) == (frozenset(QUALITY), 0.0, 1)
