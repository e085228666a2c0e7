"""A fixed rollout on the real Qwen2.5 tokenizer and a digest of every output of ``build_scoring_batch`` for it.

The digests in ``data/scoring_golden.json`` were written by the builder as it was before its vectorised rewrite
(``python tests/rlpr/training/scoring_golden.py --write``), so ``test_scoring_golden.py`` proves the rewrite changed no
output.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

GOLDEN = Path(__file__).with_name("data") / "scoring_golden.json"
WORDS = (
    "the of and to in is that for it as with energy force mass price demand cell gene law therefore thus so we get "
    "3 4 12 3.14 x = + - ( ) , . ; : \n \n\n 能量 质量 因此 🙂 é ü <think> </think> <answer> </answer> < > answer "
    "</ >< _ __init__"
).split(" ")
REFERENCES = ["42 N", "Paris", "the demand curve shifts left", "3.0 x 10^8 m/s", "能量守恒", "巴黎 🗼", "", "  7  ",
              "a<answer>b"]  # fmt: skip
# (name, config kwargs, debias_rows)
CASES = [
    ("default", {}, True),
    ("no_debias_rows", {}, False),
    ("capped", {"max_scoring_length": 60}, True),
    ("nothink_tagged", {"format_mode": "R1_nothink", "debias": {"tagged": True}}, True),
]


def golden_rollout(tokenizer):
    """48 responses over 8 prompts: well-formed, truncated, tagless, doubled tags, merged tags, raw ids, multibyte."""
    from rlpr.training.rollout import make_rollout

    rng = random.Random(1234)
    prompts, responses, refs, uids = [], [], [], []
    for g in range(8):
        question = " ".join(rng.choice(WORDS[:40]) for _ in range(rng.randint(3, 30))) + "?"
        prompt = list(
            tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)[
                "input_ids"
            ]
        )
        reference = REFERENCES[g % len(REFERENCES)]
        for k in range(6):
            body = "".join(rng.choice(WORDS) + rng.choice(["", " ", "  "]) for _ in range(rng.randint(0, 60)))
            ws = rng.choice(["", " ", "\n", "  "])
            kind = (g * 6 + k) % 6
            if kind == 0:
                text = f"<think>{body}</think><answer>{ws}{rng.choice(WORDS)}</answer>"
            elif kind == 1:
                text = f"<think>\n{body}\n</think>\n<answer>{ws}{rng.choice(WORDS)}"
            elif kind == 2:
                text = f"pre {body}<think>x</think> <answer>{ws}Paris</answer> after"
            elif kind == 3:
                text = body
            elif kind == 4:
                text = f"Step by step {body}\n<answer>{ws}4</answer>"
            else:
                text = None
            if text is None:
                ids = [rng.randrange(0, 151665) for _ in range(rng.randint(0, 20))]
                ids += tokenizer("<think>a</think><answer>", add_special_tokens=False)["input_ids"]
            else:
                ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if rng.random() < 0.7:
                ids = ids + [tokenizer.eos_token_id]
            prompts.append(prompt)
            responses.append(ids)
            refs.append(reference)
            uids.append(f"u{g}")
    return make_rollout(prompts, responses, refs, uids, tokenizer.pad_token_id)


def _digest(value) -> str:
    if hasattr(value, "numpy"):
        array = value.numpy()
        value = {
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "bytes": hashlib.sha256(array.tobytes()).hexdigest(),
        }
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=True).encode()).hexdigest()[:24]


def digests(scoring) -> dict[str, str]:
    """One digest per output field of a ``ScoringBatch`` (tensors by dtype, shape and bytes)."""
    out = {name: _digest(scoring.data.batch[name]) for name in sorted(scoring.data.batch.keys())}
    out["answer_mask"] = _digest(scoring.answer_mask)
    for name in ("response_row", "status", "prompt_keys", "references", "texts"):
        out[name] = _digest(list(getattr(scoring, name)))
    out["uids"] = _digest([str(u) for u in scoring.uids])
    out["prompt_row"] = _digest(sorted((str(k), v) for k, v in scoring.prompt_row.items()))
    out["num_rows"] = _digest(scoring.num_rows)
    return out


def all_digests(tokenizer) -> dict[str, dict[str, str]]:
    from rlpr.training.scoring import DebiasConfig, ScoringConfig, build_scoring_batch

    rollout = golden_rollout(tokenizer)
    configs = {
        name: ScoringConfig(**{**kwargs, "debias": DebiasConfig(**kwargs.get("debias", {}))})
        for name, kwargs, _ in CASES
    }
    return {
        name: digests(build_scoring_batch(rollout, tokenizer, configs[name], debias_rows=debias))
        for name, _, debias in CASES
    }


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    from offline_models import load_qwen25_tokenizer

    GOLDEN.write_text(json.dumps(all_digests(load_qwen25_tokenizer()), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
