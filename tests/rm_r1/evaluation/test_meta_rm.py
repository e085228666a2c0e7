"""Meta-RM guided voting: the meta prompt and parser, a sequence-classification meta scorer on a tiny model, and
``python -m rm_r1.evaluate --k ... --meta-rm ...`` end to end against a local OpenAI-compatible server that serves
both the judge and the meta scorer."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
import torch

from harness.generation import GenerationRequest, chat_prompt_ids, request_seed
from rm_r1.evaluation.benchmarks import load_rmb
from rm_r1.evaluation.evaluate import main
from rm_r1.evaluation.meta_rm import ClassifierMeta, build_meta_messages, parse_meta_score
from rm_r1.evaluation.report import main as plot_main
from rm_r1.evaluation.report import scaling_curves
from rm_r1.evaluation.store import META_FILE
from rm_r1.judge.instructions import META_INSTRUCTIONS, POINTWISE_INSTRUCTIONS

DATA = Path(__file__).parent / "eval_data" / "rmb"
PAIRS = load_rmb(DATA)
KS = (1, 2, 4)


def test_meta_messages_and_parser():
    judge = [{"role": "system", "content": "Judge well."}, {"role": "user", "content": "Which reply?"}]
    system, user = build_meta_messages(judge, "B is better. <answer>[[B]]</answer>")
    assert system == {"role": "system", "content": META_INSTRUCTIONS}
    assert user["content"] == (
        "[The judge's task]\nJudge well.\n\nWhich reply?\n[End of the judge's task]\n\n"
        "[The judgement]\nB is better. <answer>[[B]]</answer>\n[End of the judgement]"
    )
    assert parse_meta_score("fine work\nSoundness: \\boxed{8}") == 8.0
    assert parse_meta_score("Soundness: \\boxed{11}") is None and parse_meta_score("sound") is None


def test_classifier_meta_scores_each_request_as_if_alone(small_tokenizer, tmp_path):
    from offline_models import load_tiny_qwen2

    load_tiny_qwen2(small_tokenizer, tmp_path)  # a causal checkpoint; the classifier head is new (random)
    scorer = ClassifierMeta(str(tmp_path), batch_size=3, device="cpu", dtype="float32")
    judge = [{"role": "user", "content": "Pick one."}]
    requests = [GenerationRequest(build_meta_messages(judge, text)) for text in ("A", "B is clearly better here", "A?")]
    ratings = sorted(scorer.score(requests), key=lambda r: r.index)
    assert [r.index for r in ratings] == [0, 1, 2] and all(r.error is None for r in ratings)
    for request, rating in zip(requests, ratings, strict=True):  # unpadded, one at a time
        ids = torch.tensor([chat_prompt_ids(scorer.tokenizer, request.messages)])
        with torch.no_grad():
            alone = scorer.model(input_ids=ids).logits.float().softmax(-1)[0, -1].item()
        assert 0.0 < rating.score < 1.0 and rating.score == pytest.approx(alone, abs=1e-5)


def _pair(text):
    """The pair whose two replies the text shows, and whether the chosen one is shown first."""
    (pair,) = [p for p in PAIRS if p.chosen in text and p.rejected in text]
    return pair, text.find(pair.chosen) < text.find(pair.rejected)


def right(pair_id, sample):
    return request_seed(0, pair_id, sample) % 3 != 0


class JudgeAndMetaScorer:
    """Judge (pairwise or pointwise, right or wrong per (pair, sample) by ``right``) and meta scorer in one, as the
    answer of a fake server: a meta prompt is rated 9 when the judgement it shows prefers the chosen reply, else 2."""

    def __init__(self):
        self.requests = {"judge": 0, "meta": 0}
        self.lock = threading.Lock()

    def __call__(self, body):
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        if system == META_INSTRUCTIONS:
            task, judgement = user.split("[The judgement]")
            pair, chosen_first = _pair(task)
            if "Scores:" in judgement:
                x, y = map(int, re.findall(r"\\boxed\{(\d+), (\d+)\}", judgement)[-1])
                picked_first = x > y
            else:
                picked_first = "[[A]]" in judgement
            with self.lock:
                self.requests["meta"] += 1
            return f"Soundness: \\boxed{{{9 if picked_first == chosen_first else 2}}}"
        pair, chosen_first = _pair(user)
        with self.lock:
            self.requests["judge"] += 1
        sample = next(s for s in range(max(KS)) if request_seed(0, pair.pair_id, s) == body["seed"])
        if system == POINTWISE_INSTRUCTIONS:  # a right sample favours the chosen reply by 8, a wrong one by -2
            chosen, rejected = (9, 1) if right(pair.pair_id, sample) else (4, 6)
            x, y = (chosen, rejected) if chosen_first else (rejected, chosen)
            return f"Scores: \\boxed{{{x}, {y}}}"
        first_wins = chosen_first == right(pair.pair_id, sample)
        return f"<answer>[[{'A' if first_wins else 'B'}]]</answer>"


def _args(url, out, mode):
    return [
        "--benchmark", "rmb", "--data", str(DATA), "--model", "judge", "--prompt-family", "instruct",
        "--backend", "openai", "--base-url", url, "--output-dir", str(out), "--retries", "0", "--timeout", "10",
        "--concurrency", "4", "--k", "1,2,4", "--tie", "wrong", "--mode", mode, "--meta-rm", "meta-judge",
    ]  # fmt: skip


@pytest.mark.parametrize("mode", ["pairwise", "pointwise"])
def test_meta_guided_voting_over_http_beside_plain_voting(openai_server, tmp_path, mode):
    scorer = JudgeAndMetaScorer()
    with openai_server(scorer) as server:
        assert main(_args(server.base_url, tmp_path, mode)) == 0
        assert scorer.requests == {"judge": 8 * 4, "meta": 8 * 4}
        results = json.loads((tmp_path / "summary.json").read_text())["results"]
        assert list(results) == [f"{kind}@{k}" for kind in ("voting", "meta") for k in KS]
        for k in KS:
            n_right = {p.pair_id: sum(right(p.pair_id, s) for s in range(k)) for p in PAIRS}
            # pairwise: a strict majority (ties wrong); pointwise: 8 n - 2 (k - n) > 0, i.e. 5 n > k (never a tie)
            weight = 2 if mode == "pairwise" else 5
            plain = sum(weight * n > k for n in n_right.values()) / len(PAIRS)
            keep = max(1, k // 2)  # the meta scorer rates right judgements 9 and wrong ones 2
            guided = sum(weight * min(n, keep) > keep for n in n_right.values()) / len(PAIRS)
            assert results[f"voting@{k}"]["accuracy"] == pytest.approx(plain)
            assert results[f"meta@{k}"]["accuracy"] == pytest.approx(guided)
        if mode == "pairwise":  # the data's seeds make the two differ here
            assert results["meta@4"]["accuracy"] > results["voting@4"]["accuracy"]
        assert len((tmp_path / META_FILE).read_text().splitlines()) == 8 * 4

        assert main(_args(server.base_url, tmp_path, mode)) == 0
        assert scorer.requests == {"judge": 8 * 4, "meta": 8 * 4}  # a rerun asks nothing again
        with pytest.raises(SystemExit, match="other settings.*meta_rm: 'meta-judge' -> 'other'"):
            main([*_args(server.base_url, tmp_path, mode)[:-1], "other"])
    assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_plot_of_pairwise_pointwise_and_meta_guided_voting(openai_server, tmp_path):
    scorer = JudgeAndMetaScorer()
    with openai_server(scorer) as server:
        for mode in ("pairwise", "pointwise"):
            assert main(_args(server.base_url, tmp_path / mode, mode)) == 0
    out = tmp_path / "voting.png"
    assert plot_main([str(out), str(tmp_path / "pairwise"), str(tmp_path / "pointwise")]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "pointwise" / "summary.json").read_text())["results"]
    assert set(scaling_curves(results, "rmb")) == {"voting", "meta"}
    with pytest.raises(SystemExit, match="different benchmarks"):
        rb = tmp_path / "rb"
        rb.mkdir()
        (rb / "summary.json").write_text(json.dumps({"settings": {"benchmark": "rewardbench", "mode": "pairwise"},
                                                     "results": {"voting@1": {"scores": {"score": 0.5}}}}))  # fmt: skip
        plot_main([str(out), str(tmp_path / "pairwise"), str(rb)])


def test_meta_rm_needs_k(tmp_path):
    with pytest.raises(SystemExit, match="--meta-rm needs --k"):
        main(["--benchmark", "rmb", "--data", str(DATA), "--model", "m", "--prompt-family", "instruct",
              "--backend", "openai", "--output-dir", str(tmp_path), "--meta-rm", "meta"])  # fmt: skip


def test_evaluate_with_a_classifier_as_meta_scorer(openai_server, small_tokenizer, tmp_path):
    from offline_models import load_tiny_qwen2

    load_tiny_qwen2(small_tokenizer, tmp_path / "meta")
    out = tmp_path / "out"
    args = _args("", out, "pairwise")[:-2] + ["--meta-rm", str(tmp_path / "meta"), "--meta-rm-backend", "classifier",
                                              "--limit", "2", "--device", "cpu", "--dtype", "float32"]  # fmt: skip
    scorer = JudgeAndMetaScorer()
    with openai_server(scorer) as server:
        args[args.index("--base-url") + 1] = server.base_url
        assert main(args) == 0
        judged = scorer.requests["judge"]
        assert scorer.requests["meta"] == 0  # the classifier rated every judgement, the server none
    records = [json.loads(line) for line in (out / META_FILE).read_text().splitlines()]
    assert len(records) == judged == 4 * json.loads((out / "summary.json").read_text())["pairs"]
    assert all(0.0 < r["meta_score"] < 1.0 and r["response"] is None for r in records)
    assert set(json.loads((out / "summary.json").read_text())["results"]) >= {"meta@1", "meta@2", "meta@4"}
