"""The transformers backend end to end with a tiny random Qwen2 judge (its verdicts are mostly garbage: the test
checks the pipeline, the counted parse failures and that batched decoding equals one-by-one greedy decoding)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from offline_models import load_tiny_qwen2
from rm_r1.evaluation.benchmarks import load_rmbench
from rm_r1.evaluation.evaluate import RESULTS_FILE, main
from rm_r1.judge.prompts import build_judge_messages

DATA = Path(__file__).parent / "eval_data"


def test_hf_backend_tiny_model_end_to_end(small_tokenizer, tmp_path):
    model_dir = tmp_path / "judge"
    model = load_tiny_qwen2(small_tokenizer, model_dir)
    out = tmp_path / "out"
    args = [
        "--benchmark", "rmbench", "--data", str(DATA / "rmbench"), "--limit", "1", "--model", str(model_dir),
        "--prompt-family", "reasoning", "--backend", "hf", "--output-dir", str(out), "--max-new-tokens", "5",
        "--batch-size", "4", "--device", "cpu", "--dtype", "float32",
    ]  # fmt: skip
    assert main(args) == 0

    records = [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines()]
    assert len(records) == 9  # one RM-Bench sample: its 3 x 3 style matrix
    summary = json.loads((out / "summary.json").read_text())
    unparsed = sum(("[[A]]" in r["response"]) == ("[[B]]" in r["response"]) for r in records)
    assert summary["parse_failures"] == unparsed
    assert summary["judgements"] == 9 and summary["results"]["greedy"]["scores"]["missing_domains"] == [
        "chat",
        "math",
        "code",
    ]

    # greedy decoding of each prompt on its own, without padding, gives the stored responses
    pairs = {p.pair_id: p for p in load_rmbench(DATA / "rmbench")}
    for record in records[:3]:
        pair = pairs[record["pair_id"]]
        a, b = (pair.rejected, pair.chosen) if record["swap"] else (pair.chosen, pair.rejected)
        messages = build_judge_messages(pair.conversation, a, b, family="reasoning")
        text = small_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = torch.tensor([small_tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            generated = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=5,
                do_sample=False,
                pad_token_id=small_tokenizer.pad_token_id,
            )
        new = generated[0, ids.shape[1] :]
        assert small_tokenizer.decode(new, skip_special_tokens=True) == record["response"]
        # cut by the budget: five new tokens and no end token among them
        cut = len(new) == 5 and small_tokenizer.eos_token_id not in new.tolist()
        assert record["truncated"] is cut
    assert summary["truncated_judgements"] == sum(r["truncated"] for r in records)
    assert summary["truncation_unknown"] == 0
    assert "judgements stopped at the generation budget" in (out / "summary.md").read_text()
