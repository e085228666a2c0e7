"""Benchmark: building the RLPR scoring batch from token ids vs. decoding and re-tokenizing every o'.

Builds a synthetic rollout of N responses of about L tokens (real Qwen2.5 tokenizer, rebuilt offline), then times

* the project's builder (``rlpr.scoring.build_scoring_batch``): locates ``<answer>`` by byte offsets of the sampled
  tokens and tokenizes only the short tails; its time includes the response decode from the token byte table (the
  text the format reward reads afterwards), the debias rows and the padded tensors; the format reward and the
  repetition penalty are computed later from that text (``compute_rewards``) and are not timed on either side;
* a baseline doing what the reference implementation does: decode prompt + response, replace the answer in the
  string, re-tokenize the whole o' with offsets, and mask the reference by character offsets (o' rows only, no
  debias rows, no tensors: a lower bound on its cost).

Prints both times and, last, ``ratio: <baseline time / project time>``.
"""

from __future__ import annotations

import argparse
import random
import time

WORDS = (
    "the of and to in is that for it as with was on be by this are or from at which an energy force mass velocity "
    "price demand market cell protein gene law court rule therefore thus hence so we get consider assume suppose "
    "compute equation value result check again first second finally 3 4 12 3.14 x y z = + - * / ( ) , . ; : "
    "能量 质量 因此 所以 🙂 é ü"
).split()


def synthetic_rollout(tokenizer, n: int, length: int, seed: int):
    from rlpr.prompts import build_r1_messages
    from rlpr.rollout import make_rollout

    rng = random.Random(seed)
    prompts, responses, refs, uids = [], [], [], []
    group = 8
    for g in range(0, n, group):
        question = " ".join(rng.choice(WORDS) for _ in range(40)) + "?"
        messages = build_r1_messages(question)
        prompt = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
        reference = rng.choice(["42 N", "Paris", "the demand curve shifts left", "3.0 x 10^8 m/s", "能量守恒"])
        for _ in range(min(group, n - g)):
            words = [rng.choice(WORDS) for _ in range(int(length * 0.8))]
            text = "<think>\n" + " ".join(words) + "\n</think>\n<answer> " + rng.choice(WORDS) + " </answer>"
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:length] + [tokenizer.eos_token_id]
            prompts.append(prompt)
            responses.append(ids)
            refs.append(reference)
            uids.append(f"p{g}")
    return make_rollout(prompts, responses, refs, uids, tokenizer.pad_token_id)


def baseline(rollout, tokenizer):
    """Decode each prompt + response, swap in the reference, re-tokenize the whole o' with offsets."""
    prompts = rollout.batch["prompts"]
    attn = rollout.batch["attention_mask"]
    p_len = prompts.shape[1]
    rows = []
    for i in range(len(prompts)):
        ids = rollout.batch["input_ids"][i][attn[i].bool()].tolist()
        n_prompt = int(attn[i, :p_len].sum())
        prompt_text = tokenizer.decode(ids[:n_prompt], skip_special_tokens=False)
        response_text = tokenizer.decode(ids[n_prompt:], skip_special_tokens=True)
        cut = response_text.find("<answer>")
        if cut < 0:
            continue
        ref = rollout.non_tensor_batch["reward_model"][i]["ground_truth"]
        head = prompt_text + response_text[:cut] + "<answer> "
        full = head + ref + " </answer>" + tokenizer.eos_token
        enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        lo, hi = len(head), len(head) + len(ref)
        mask = [s < hi and e > lo for s, e in enc["offset_mapping"]]
        rows.append((enc["input_ids"], mask))
    return rows


def main(argv=None) -> None:
    from offline_models import load_qwen25_tokenizer
    from rlpr.scoring import ScoringConfig, build_scoring_batch, token_bytes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=1024)
    parser.add_argument("--length", type=int, default=3000, help="tokens per response")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    tokenizer = load_qwen25_tokenizer()
    t0 = time.perf_counter()
    token_bytes(tokenizer)  # built once per tokenizer and cached, like the tokenizer itself
    table_time = time.perf_counter() - t0
    rollout = synthetic_rollout(tokenizer, args.responses, args.length, args.seed)
    n_tokens = int(rollout.batch["attention_mask"].sum())
    print(f"rollout: {args.responses} responses, {n_tokens} tokens in all; token byte table built once in "
          f"{table_time:.2f} s (not counted)")  # fmt: skip

    warm = rollout.select_idxs(list(range(min(8, len(rollout)))))
    build_scoring_batch(warm, tokenizer, ScoringConfig())  # first calls warm the tokenizer's caches: not timed
    baseline(warm, tokenizer)
    t0 = time.perf_counter()
    scoring = build_scoring_batch(rollout, tokenizer, ScoringConfig())
    project = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = baseline(rollout, tokenizer)
    base = time.perf_counter() - t0
    print(f"project builder: {project:.3f} s ({scoring.num_rows} rows incl. debias rows, response decode included)")
    print(f"baseline (decode + re-tokenize): {base:.3f} s ({len(rows)} o' rows)")
    print(f"ratio: {base / project:.1f}")


if __name__ == "__main__":
    main()
