"""Benchmark: building the RLPR scoring batch from token ids vs. decoding and re-tokenizing every o'.

Builds a synthetic rollout of N responses of about L tokens (real Qwen2.5 tokenizer, rebuilt offline), then measures
the process CPU time (``time.process_time``: all threads of this process, so other load on a shared machine does not
count and a multi-threaded tokenizer call is charged in full) of

* the project's builder (``rlpr.training.scoring.build_scoring_batch``): locates ``<answer>`` by byte offsets of the
  sampled tokens and tokenizes only the short tails; its time includes the response decode from the token byte table
  (the text the format reward reads afterwards) and the debias rows, and ends, like the baselines, at the token ids
  and y* mask of every row; the format reward and the repetition penalty are computed later from that text
  (``compute_rewards``) and are not timed on either side;
* the same builder plus the batch the trainer then sends to the actor's ``compute_log_prob`` (verl's no-padding
  layout, ``ScoringBatch.log_prob_input``), a cost the baselines leave out;
* the baseline doing what the reference implementation does: decode prompt + response, replace the answer in the
  string, re-tokenize the whole o' with offsets, and mask the reference by character offsets, one tokenizer call per
  response (o' rows only, no debias rows, no tensors: a lower bound on its cost);
* the same baseline with the tokenizer's batch API (one ``batch_decode`` and one batched call with offsets), which is
  what the reference does on a many-core node, where the fast tokenizer spreads the batch over threads.

Each side is the minimum over ``--repeats`` runs. Prints the core count, the times, the ratio with the trainer's batch
included, the batch-API ratio and, last, ``ratio: <single-call baseline time / project builder time>``.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verl import DataProto

WORDS = (
    "the of and to in is that for it as with was on be by this are or from at which an energy force mass velocity "
    "price demand market cell protein gene law court rule therefore thus hence so we get consider assume suppose "
    "compute equation value result check again first second finally 3 4 12 3.14 x y z = + - * / ( ) , . ; : "
    "能量 质量 因此 所以 🙂 é ü"
).split()


def synthetic_rollout(tokenizer: Any, n: int, length: int, seed: int) -> DataProto:
    from rlpr.data.prompts import build_r1_messages
    from rlpr.training.rollout import make_rollout

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


def _o_prime_texts(
    prompt_texts: list[str], response_texts: list[str], references: list[str], eos_token: str
) -> list[tuple[str, tuple[int, int]] | None]:
    """The reference's o' strings and the character span of y* in each (None for a response without ``<answer>``)."""
    out = []
    for prompt_text, response_text, ref in zip(prompt_texts, response_texts, references):
        cut = response_text.find("<answer>")
        if cut < 0:
            out.append(None)
            continue
        head = prompt_text + response_text[:cut] + "<answer> "
        out.append((head + ref + " </answer>" + eos_token, (len(head), len(head) + len(ref))))
    return out


def _split(rollout: DataProto) -> tuple[list[list[int]], list[list[int]]]:
    prompts, attn = rollout.batch["prompts"], rollout.batch["attention_mask"]
    p_len = prompts.shape[1]
    prompt_ids, response_ids = [], []
    for i in range(len(prompts)):
        ids = rollout.batch["input_ids"][i][attn[i].bool()].tolist()
        n_prompt = int(attn[i, :p_len].sum())
        prompt_ids.append(ids[:n_prompt])
        response_ids.append(ids[n_prompt:])
    return prompt_ids, response_ids


def _references(rollout: DataProto) -> list[str]:
    return [rm["ground_truth"] for rm in rollout.non_tensor_batch["reward_model"]]


def baseline(rollout: DataProto, tokenizer: Any) -> list[tuple[list[int], list[bool]]]:
    """Decode each prompt + response, swap in the reference, re-tokenize the whole o' with offsets: per response."""
    rows = []
    for prompt, response, ref in zip(*_split(rollout), _references(rollout)):
        prompt_text = tokenizer.decode(prompt, skip_special_tokens=False)
        response_text = tokenizer.decode(response, skip_special_tokens=True)
        [found] = _o_prime_texts([prompt_text], [response_text], [ref], tokenizer.eos_token)
        if found is None:
            continue
        enc = tokenizer(found[0], add_special_tokens=False, return_offsets_mapping=True)
        lo, hi = found[1]
        rows.append((enc["input_ids"], [s < hi and e > lo for s, e in enc["offset_mapping"]]))
    return rows


def baseline_batched(rollout: DataProto, tokenizer: Any) -> list[tuple[list[int], list[bool]]]:
    """The same with the tokenizer's batch API: one batch decode per side and one batched re-tokenization."""
    prompt_ids, response_ids = _split(rollout)
    prompt_texts = tokenizer.batch_decode(prompt_ids, skip_special_tokens=False)
    response_texts = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    found = [f for f in _o_prime_texts(prompt_texts, response_texts, _references(rollout), tokenizer.eos_token) if f]
    if not found:  # no response kept its <answer> (a length short enough to cut it off)
        return []
    enc = tokenizer([f[0] for f in found], add_special_tokens=False, return_offsets_mapping=True)
    return [
        (ids, [s < hi and e > lo for s, e in offsets])
        for ids, offsets, (_, (lo, hi)) in zip(enc["input_ids"], enc["offset_mapping"], found)
    ]


def cpu_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The least process CPU time of ``repeats`` calls of ``fn``, and its last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.process_time()
        result = fn()
        best = min(best, time.process_time() - started)
    return best, result


def main(argv: list[str] | None = None) -> None:
    from offline_models import load_qwen25_tokenizer
    from rlpr.reward.token_bytes import token_bytes
    from rlpr.training.scoring import ScoringConfig, build_scoring_batch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=1024)
    parser.add_argument("--length", type=int, default=3000, help="tokens per response")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; each side reports its fastest")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available to this process: {cores} (times are process CPU seconds, the least of {args.repeats} runs)")
    tokenizer = load_qwen25_tokenizer()
    t0 = time.process_time()
    token_bytes(tokenizer)  # built once per tokenizer and cached, like the tokenizer itself
    table_time = time.process_time() - t0
    rollout = synthetic_rollout(tokenizer, args.responses, args.length, args.seed)
    n_tokens = int(rollout.batch["attention_mask"].sum())
    print(f"rollout: {args.responses} responses, {n_tokens} tokens in all; token byte table built once in "
          f"{table_time:.2f} s (not counted)")  # fmt: skip

    warm = rollout.select_idxs(list(range(min(8, len(rollout)))))
    build_scoring_batch(warm, tokenizer, ScoringConfig())  # first calls warm the tokenizer's caches: not timed
    baseline(warm, tokenizer)
    baseline_batched(warm, tokenizer)
    project, scoring = cpu_seconds(lambda: build_scoring_batch(rollout, tokenizer, ScoringConfig()), args.repeats)

    def with_trainer_batch():
        built = build_scoring_batch(rollout, tokenizer, ScoringConfig())
        return built.log_prob_input(1, {"temperature": 1.0})

    with_batch, _ = cpu_seconds(with_trainer_batch, args.repeats)
    single, rows = cpu_seconds(lambda: baseline(rollout, tokenizer), args.repeats)
    batched, _ = cpu_seconds(lambda: baseline_batched(rollout, tokenizer), args.repeats)
    print(f"project builder: {project:.3f} s ({scoring.num_rows} rows incl. debias rows, response decode included)")
    print(f"project builder + the trainer's compute_log_prob batch: {with_batch:.3f} s")
    print(f"baseline, one tokenizer call per response: {single:.3f} s ({len(rows)} o' rows)")
    print(f"baseline, tokenizer batch API: {batched:.3f} s")
    print(f"ratio with the trainer's batch: {single / with_batch:.1f}")
    print(f"batch-API ratio: {batched / project:.1f}")
    print(f"ratio: {single / project:.1f}")


if __name__ == "__main__":
    main()
