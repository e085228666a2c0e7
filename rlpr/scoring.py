"""The RLPR scoring batch on token ids, and r, r', R from the log-probs the actor returns for it.

docs/architecture.md#the-rlpr-step (2-3). From a rollout ``DataProto`` this module builds ONE batch in the layout verl
0.9.1's ``compute_log_prob`` takes (``prompts`` left-padded, ``responses`` right-padded, ``input_ids``,
``attention_mask``, ``position_ids``, ``response_mask``):

* one o' row per valid response: the sampled prompt ids, the sampled response ids up to (not including) the token in
  which ``<answer>`` starts, then the tokenization of a short tail string only:
  ``<the characters of that token before <answer>>`` + ``<answer>`` + the whitespace the response put after
  ``<answer>`` (one space if none) + y* + `` </answer>`` + the eos token. The reasoning is never decoded and
  re-tokenized, so it keeps the segmentation the policy sampled.
* one debias row per unique prompt (uid): the prompt ids, then ``" " + y* + " "`` + the eos token (docs/rlpr.md#debias).

``<answer>`` is located by byte offsets of the decoded tokens, never by token-id patterns (tags merge with their
neighbours in BPE vocabularies). The answer mask of a row marks the response-side tokens whose character span
overlaps the inserted y*. ``compute_rewards`` turns the per-token log-probs of that batch into r per response, r' per
prompt and the final reward R (docs/rlpr.md#final-reward), with every invalid or skipped sample counted in the metrics.
"""

from __future__ import annotations

import json
import math
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers.convert_slow_tokenizer import bytes_to_unicode

from rlpr.answer import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    answer_start,
    check_mode,
    format_reward,
    repetition_penalty,
    whitespace_after_answer_tag,
)
from rlpr.debias_cache import prompt_key
from rlpr.reward import check_method, check_shaping, combine, debias, sequence_scores
from rlpr.rollout import pad_token_id

_ANSWER_OPEN_BYTES = ANSWER_OPEN.encode()

# Why a response got no probability reward (r = 0, no forward spent on it). Each is a counter in the metrics.
SKIP_REASONS = ("no_answer", "empty_reference", "overlength")
# Metrics of ``compute_rewards`` that count samples (summed over generation rounds; the others are means).
COUNT_METRICS = tuple(f"rlpr/{reason}" for reason in SKIP_REASONS) + ("rlpr/empty_answer_mask",)


@dataclass(frozen=True)
class ScoringConfig:
    """What decides the RLPR reward of a response (the ``rlpr:`` section of a recipe maps onto this)."""

    format_mode: str = "R1"
    score_method: str = "mean_prob"
    shaping: str = "clip"
    format_coef: float = 0.1
    repetition_window: int = 10
    repetition_limit: int = 10
    # True: P applies to every response (this project). False: only to responses whose reward is non-zero (the
    # reference implementation's behaviour, which leaves repetitive zero-reward responses unpunished).
    repetition_on_all: bool = True
    # Longest response side of an o' row (kept reasoning + tail); longer rows get r = 0 and are counted.
    max_scoring_length: int | None = None
    # r' sequence: " y* " (False, the reference's choice) or "<answer> y* </answer>" (True).
    debias_tagged: bool = False

    def __post_init__(self):
        check_mode(self.format_mode)
        check_method(self.score_method)
        check_shaping(self.shaping)
        if self.max_scoring_length is not None and self.max_scoring_length < 1:
            raise ValueError(f"max_scoring_length must be a positive int or None, got {self.max_scoring_length}")


# --------------------------------------------------------------------------------------------------------------------
# Token bytes


class TokenBytes:
    """The exact bytes each token id stands for, for byte-level BPE and sentencepiece-style vocabularies.

    Concatenating the bytes of a token sequence gives the UTF-8 bytes of its text, so byte offsets of the decoded
    tokens are exact even when a token holds only part of a multi-byte character.
    """

    def __init__(self, tokenizer):
        size = len(tokenizer)
        tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
        added = {i: tok.content for i, tok in tokenizer.added_tokens_decoder.items()}
        decoder = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
        byte_level = "ByteLevel" in json.dumps(decoder)
        inverse = {char: byte for byte, char in bytes_to_unicode().items()}
        table: list[bytes] = []
        for i, tok in enumerate(tokens):
            if i in added:
                table.append(added[i].encode())
            elif tok is None:
                table.append(b"")
            elif byte_level:
                table.append(bytes(inverse[c] for c in tok))
            elif len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):  # sentencepiece byte fallback
                table.append(bytes([int(tok[3:5], 16)]))
            else:
                table.append(tok.replace("\u2581", " ").encode())
        self.table = table
        self.array = np.empty(size, dtype=object)  # the same bytes, for vectorised lookups of id arrays
        self.array[:] = table
        self.lengths = np.fromiter((len(b) for b in table), dtype=np.int64, count=size)
        self.special_ids = frozenset(tokenizer.all_special_ids)

    def join(self, ids: Sequence[int] | np.ndarray) -> bytes:
        return b"".join(self.array[np.asarray(ids, dtype=np.int64)])


_TOKEN_BYTES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_bytes(tokenizer) -> TokenBytes:
    """The (cached) ``TokenBytes`` table of ``tokenizer``."""
    found = _TOKEN_BYTES.get(tokenizer)
    if found is None:
        found = _TOKEN_BYTES[tokenizer] = TokenBytes(tokenizer)
    return found


# --------------------------------------------------------------------------------------------------------------------
# Per-response parsing


@dataclass
class ParsedResponse:
    """A response cut for o': ``keep`` sampled response tokens, then ``tail`` (None when the response is invalid)."""

    text: str
    keep: int
    tail: str | None
    ref_span: tuple[int, int] | None


def parse_response(
    ids: Sequence[int] | np.ndarray, tb: TokenBytes, reference: str, mode: str, eos_token: str
) -> ParsedResponse:
    """Find ``<answer>`` by byte offsets in the sampled ``ids`` and build the o' tail string (see module docstring).

    Trailing special tokens (eos, padding) are not part of the response text.
    """
    ids = np.asarray(ids, dtype=np.int64)
    end = len(ids)
    while end > 0 and int(ids[end - 1]) in tb.special_ids:
        end -= 1
    ids = ids[:end]
    raw = tb.join(ids)
    text = raw.decode("utf-8", errors="replace")
    if answer_start(text, mode) is None:
        return ParsedResponse(text, 0, None, None)
    tag_byte = raw.index(_ANSWER_OPEN_BYTES)  # the only one: answer_start checked it (ASCII counts match bytes)
    lengths = tb.lengths[ids]
    starts = np.cumsum(lengths) - lengths
    k = int(np.searchsorted(starts, tag_byte, side="right")) - 1
    # step back to a token that starts on a character boundary, so the re-tokenized prefix is whole characters
    while k > 0 and (raw[starts[k]] & 0xC0) == 0x80:
        k -= 1
    prefix = raw[starts[k] : tag_byte].decode("utf-8", errors="replace")
    after = raw[tag_byte + len(_ANSWER_OPEN_BYTES) :].decode("utf-8", errors="ignore")
    head = prefix + ANSWER_OPEN + whitespace_after_answer_tag(after)
    tail = head + reference + " " + ANSWER_CLOSE + eos_token
    return ParsedResponse(text, k, tail, (len(head), len(head) + len(reference)))


def debias_tail(reference: str, eos_token: str, tagged: bool = False) -> tuple[str, tuple[int, int]]:
    """The r' continuation after the prompt and the character span of y* in it (docs/rlpr.md#debias)."""
    head = ANSWER_OPEN + " " if tagged else " "
    close = " " + ANSWER_CLOSE if tagged else " "
    return head + reference + close + eos_token, (len(head), len(head) + len(reference))


def _overlap_mask(offsets: Sequence[tuple[int, int]], span: tuple[int, int]) -> list[bool]:
    lo, hi = span
    return [s < hi and e > lo and e > s for s, e in offsets]


# --------------------------------------------------------------------------------------------------------------------
# The batch


@dataclass
class ScoringBatch:
    """The scoring batch plus the bookkeeping that maps its rows back to responses and prompts.

    ``data`` is None when no row was built (every response invalid and no debias row asked for).
    """

    data: object  # verl.DataProto | None
    answer_mask: torch.Tensor  # (rows, response_len) bool: the y* tokens of each row
    response_row: list[int]  # per response: its o' row, or -1 (invalid: r = 0)
    status: list[str]  # per response: "ok" or one of SKIP_REASONS
    uids: list  # per response
    prompt_keys: list[str]  # per response: prompt_key(prompt ids, reference)
    references: list[str]  # per response: y* (stripped)
    prompt_row: dict = field(default_factory=dict)  # uid -> its debias row
    texts: list[str] = field(default_factory=list)  # decoded responses (special tokens at the end dropped)

    @property
    def num_rows(self) -> int:
        return 0 if self.data is None else len(self.data)

    def num_tokens(self) -> int:
        return 0 if self.data is None else int(self.data.batch["attention_mask"].sum())


def _references(rollout) -> list[str]:
    refs = []
    for i, rm in enumerate(rollout.non_tensor_batch["reward_model"]):
        gt = rm.get("ground_truth") if isinstance(rm, Mapping) else None
        if not isinstance(gt, str):
            raise ValueError(
                f"rollout row {i}: reward_model.ground_truth must be the reference answer as a str, got {gt!r}"
            )
        refs.append(gt.strip())
    return refs


def _valid_lengths(rollout) -> tuple[torch.Tensor, torch.Tensor]:
    prompts, responses = rollout.batch["prompts"], rollout.batch["responses"]
    attn = rollout.batch["attention_mask"]
    p_len = prompts.shape[1]
    prompt_mask = attn[:, :p_len].bool()
    response_len = attn[:, p_len : p_len + responses.shape[1]].sum(-1)
    return prompt_mask, response_len


def build_scoring_batch(rollout, tokenizer, config: ScoringConfig, *, debias_rows: bool = True) -> ScoringBatch:
    """Build the o' rows (and, with ``debias_rows``, one debias row per uid) for ``rollout``.

    ``rollout`` is a verl ``DataProto`` with tensors ``prompts`` (left-padded), ``responses`` (right-padded),
    ``attention_mask`` (over prompt + response) and non-tensors ``reward_model`` (dicts holding ``ground_truth``) and
    ``uid``. The result's ``data`` is in the layout of verl's ``compute_log_prob`` with ``meta_info`` left to the
    caller (temperature). Invalid responses, empty references and over-long o' get no row and a status.
    """
    from verl import DataProto

    tb = token_bytes(tokenizer)
    eos = tokenizer.eos_token
    if eos is None:
        raise ValueError("the tokenizer has no eos token; o' ends with it (docs/rlpr.md#scoring-sequence)")
    pad_id = pad_token_id(tokenizer)
    refs = _references(rollout)
    uids = list(rollout.non_tensor_batch["uid"])
    prompt_mask, response_len = _valid_lengths(rollout)
    prompts, responses = rollout.batch["prompts"], rollout.batch["responses"]
    n = len(refs)
    limit = config.max_scoring_length

    prompt_ids = [prompts[i][prompt_mask[i]] for i in range(n)]
    keys = [prompt_key(prompt_ids[i].tolist(), refs[i]) for i in range(n)]
    status: list[str] = []
    texts: list[str] = []
    kept: list[tuple[int, int]] = []  # (response, number of sampled response tokens kept)
    tails: list[str] = []
    spans: list[tuple[int, int]] = []
    response_array = responses.numpy()
    vocab = len(tb.table)
    response_valid = torch.arange(responses.shape[1]) < response_len[:, None]
    out_of_vocab = (((prompts >= vocab) | (prompts < 0)) & prompt_mask).any(1)
    out_of_vocab |= (((responses >= vocab) | (responses < 0)) & response_valid).any(1)
    if out_of_vocab.any():
        rows = out_of_vocab.nonzero().flatten().tolist()
        raise ValueError(f"rollout rows {rows[:10]} hold token ids outside the tokenizer's vocabulary 0..{vocab - 1}")
    for i in range(n):
        parsed = parse_response(response_array[i, : int(response_len[i])], tb, refs[i], config.format_mode, eos)
        texts.append(parsed.text)
        if parsed.tail is None:
            status.append("no_answer")
        elif not refs[i]:
            status.append("empty_reference")
        else:
            status.append("ok")
            kept.append((i, parsed.keep))
            tails.append(parsed.tail)
            spans.append(parsed.ref_span)

    debias_uids: list = []
    if debias_rows:
        seen = set()
        for i in range(n):
            if refs[i] and uids[i] not in seen:
                seen.add(uids[i])
                debias_uids.append((uids[i], i))
        for _, i in debias_uids:
            tail, span = debias_tail(refs[i], eos, config.debias_tagged)
            tails.append(tail)
            spans.append(span)

    encoded = tokenizer(tails, add_special_tokens=False, return_offsets_mapping=True) if tails else None
    # a row: (prompt ids, response it continues or -1, sampled response tokens kept, tail ids, y* mask over the tail)
    rows: list[tuple[torch.Tensor, int, int, list[int], list[bool]]] = []
    response_row = [-1] * n
    for j, (i, keep) in enumerate(kept):
        tail_ids = encoded["input_ids"][j]
        if limit is not None and keep + len(tail_ids) > limit:
            status[i] = "overlength"
            continue
        response_row[i] = len(rows)
        rows.append((prompt_ids[i], i, keep, tail_ids, _overlap_mask(encoded["offset_mapping"][j], spans[j])))
    prompt_row = {}
    for j, (uid, i) in enumerate(debias_uids, start=len(kept)):
        prompt_row[uid] = len(rows)
        rows.append(
            (prompt_ids[i], -1, 0, encoded["input_ids"][j], _overlap_mask(encoded["offset_mapping"][j], spans[j]))
        )

    result = ScoringBatch(
        data=None,
        answer_mask=torch.zeros(0, 0, dtype=torch.bool),
        response_row=response_row,
        status=status,
        uids=uids,
        prompt_keys=keys,
        references=refs,
        prompt_row=prompt_row,
        texts=texts,
    )
    if not rows:
        return result

    p_len = max(len(row[0]) for row in rows)
    r_len = max(row[2] + len(row[3]) for row in rows)
    dtype = responses.dtype
    prompt_t = torch.full((len(rows), p_len), pad_id, dtype=dtype)
    response_t = torch.full((len(rows), r_len), pad_id, dtype=dtype)
    attn = torch.zeros(len(rows), p_len + r_len, dtype=torch.long)
    mask_t = torch.zeros(len(rows), r_len, dtype=torch.bool)
    for j, (prompt, source, keep, tail_ids, tail_mask) in enumerate(rows):
        end = keep + len(tail_ids)
        prompt_t[j, p_len - len(prompt) :] = prompt
        if keep:
            response_t[j, :keep] = responses[source, :keep]
        response_t[j, keep:end] = torch.tensor(tail_ids, dtype=dtype)
        mask_t[j, keep:end] = torch.tensor(tail_mask, dtype=torch.bool)
        attn[j, p_len - len(prompt) : p_len + end] = 1
    position_ids = torch.clip(torch.cumsum(attn, dim=-1) - 1, min=0)
    result.data = DataProto.from_dict(
        tensors={
            "prompts": prompt_t,
            "responses": response_t,
            "input_ids": torch.cat([prompt_t, response_t], dim=1),
            "attention_mask": attn,
            "position_ids": position_ids,
            "response_mask": attn[:, p_len:].clone(),
        }
    )
    result.answer_mask = mask_t
    return result


# --------------------------------------------------------------------------------------------------------------------
# Rewards from log-probs


def format_and_repetition(texts: Sequence[str], config: ScoringConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """F and P of every decoded response (docs/rlpr.md#final-reward)."""
    f = [format_reward(t, config.format_mode) for t in texts]
    p = [repetition_penalty(t, config.repetition_window, config.repetition_limit) for t in texts]
    return torch.tensor(f, dtype=torch.float64), torch.tensor(p, dtype=torch.float64)


@dataclass
class RlprRewards:
    """Per-response rewards (float64), F and P, and the batch metrics (``rlpr/*`` names)."""

    r: torch.Tensor
    r_prime: torch.Tensor
    r_hat: torch.Tensor
    reward: torch.Tensor
    format_scores: torch.Tensor
    repetition: torch.Tensor
    metrics: dict[str, float]
    r_prime_by_key: dict[str, float]  # r' per prompt key, as computed in this batch (for the r' cache)


def row_scores(scoring: ScoringBatch, log_probs: torch.Tensor | None, method: str) -> torch.Tensor:
    """f_seq of every row of the scoring batch from its (rows, response_len) log-probs."""
    if scoring.num_rows == 0:
        return torch.zeros(0, dtype=torch.float64)
    if log_probs is None or tuple(log_probs.shape) != tuple(scoring.answer_mask.shape):
        got = None if log_probs is None else tuple(log_probs.shape)
        raise ValueError(
            f"log_probs must have shape {tuple(scoring.answer_mask.shape)} (rows, response_len), got {got}"
        )
    return sequence_scores(log_probs, scoring.answer_mask, method)


def compute_rewards(
    scoring: ScoringBatch,
    log_probs: torch.Tensor | None,
    config: ScoringConfig,
    r_prime: Mapping[str, float] | None = None,
) -> RlprRewards:
    """r, r', r̂ and R = (1 - c)·r̂ + c·F + P for every response of the rollout (docs/rlpr.md#final-reward).

    r' comes from the batch's debias rows, or, for prompts without one, from ``r_prime`` (prompt key -> r', the
    initial-policy cache); a prompt with neither is an error naming it. Invalid responses have r = 0.
    """
    scores = row_scores(scoring, log_probs, config.score_method)
    n = len(scoring.status)
    r = torch.zeros(n, dtype=torch.float64)
    for i, row in enumerate(scoring.response_row):
        if row >= 0:
            r[i] = scores[row]
    from_batch = {
        scoring.prompt_keys[i]: float(scores[scoring.prompt_row[u]])
        for i, u in enumerate(scoring.uids)
        if u in scoring.prompt_row
    }
    used: dict[str, float] = {}
    missing = []
    for i, key in enumerate(scoring.prompt_keys):
        if key in from_batch:
            used[key] = from_batch[key]
        elif r_prime is not None and key in r_prime:
            used[key] = float(r_prime[key])
        elif config.shaping != "none" and scoring.references[i]:  # an empty y* has no r' (r' = 0, counted)
            missing.append(scoring.uids[i])
    if missing:
        raise KeyError(f"no r' for the prompts with uid {sorted(set(map(str, missing)))}: no debias row, not cached")
    rp = torch.tensor([used.get(key, 0.0) for key in scoring.prompt_keys], dtype=torch.float64)
    r_hat = torch.tensor([debias(float(a), float(b), config.shaping) for a, b in zip(r, rp)], dtype=torch.float64)
    f, p = format_and_repetition(scoring.texts, config)
    reward = torch.tensor(
        [combine(float(r_hat[i]), float(f[i]), 0.0, config.format_coef) for i in range(n)], dtype=torch.float64
    )
    penalised = p if config.repetition_on_all else torch.where(reward != 0, p, torch.zeros_like(p))
    reward = reward + penalised

    valid = torch.tensor([row >= 0 for row in scoring.response_row], dtype=torch.bool)
    counts = Counter(s for s in scoring.status if s != "ok")
    diff = r - rp
    n_valid = int(valid.sum())
    empty_mask = 0
    if scoring.num_rows:
        empty_mask = sum(1 for row in scoring.response_row if row >= 0 and not scoring.answer_mask[row].any())
    metrics = {
        "rlpr/valid_frac": n_valid / n if n else 0.0,
        "rlpr/r_mean": float(r[valid].mean()) if n_valid else 0.0,
        "rlpr/r_prime_mean": sum(used.values()) / len(used) if used else 0.0,
        "rlpr/r_hat_mean": float(r_hat.mean()) if n else 0.0,
        "rlpr/reward_mean": float(reward.mean()) if n else 0.0,
        "rlpr/clipped_frac": float(((diff[valid] < 0) | (diff[valid] > 1)).double().mean()) if n_valid else 0.0,
        "rlpr/format_mean": float(f.mean()) if n else 0.0,
        "rlpr/repetition_frac": float((p < 0).double().mean()) if n else 0.0,
        **{f"rlpr/{reason}": float(counts[reason]) for reason in SKIP_REASONS},
        "rlpr/empty_answer_mask": float(empty_mask),
    }
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise FloatingPointError(f"metric {name} is not finite ({value}); the scoring batch is inconsistent")
    return RlprRewards(
        r=r,
        r_prime=rp,
        r_hat=r_hat,
        reward=reward,
        format_scores=f,
        repetition=p,
        metrics=metrics,
        r_prime_by_key=from_batch,
    )
