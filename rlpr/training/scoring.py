"""The RLPR scoring batch on token ids, and r, r', R from the log-probs the actor returns for it.

docs/architecture.md#the-rlpr-step (2-3). From a rollout ``DataProto`` this module builds ONE batch of rows for verl
0.9.1's ``compute_log_prob``, laid out on demand either padded (``prompts`` left-padded, ``responses`` right-padded,
``input_ids``, ``attention_mask``, ``position_ids``, ``response_mask``) or in the no-padding form the trainer sends:

* one o' row per valid response: the sampled prompt ids, the sampled response ids up to (not including) the token in
  which ``<answer>`` starts, then the tokenization of a short tail string only:
  ``<the characters of that token before <answer>>`` + ``<answer>`` + the whitespace the response put after
  ``<answer>`` (one space if none) + y* + `` </answer>`` + the eos token. The reasoning is never decoded and
  re-tokenized, so it keeps the segmentation the policy sampled.
* one debias row per unique prompt (uid): the prompt ids, then ``" " + y* + " "`` + the eos token (docs/rlpr.md#debias).

``<answer>`` is located by byte offsets of the decoded tokens (``rlpr.reward.o_prime``, ``.token_bytes``), never by
token-id patterns (tags merge with their neighbours in BPE vocabularies). The answer mask of a row marks the
response-side tokens whose character span overlaps the inserted y*. ``compute_rewards`` turns the per-token log-probs
of that batch into r per response, r' per prompt and the final reward R (the arithmetic lives in ``rlpr.reward``),
with every invalid or skipped sample counted in the metrics.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain

import numpy as np
import torch

from harness.generation import pad_token_id
from rlpr.answer import check_mode, format_reward, repetition_penalty
from rlpr.reward import FORMAT_COEF, check_method, check_shaping, final_rewards, sequence_scores
from rlpr.reward.o_prime import debias_tail, overlap_mask, parse_response
from rlpr.reward.token_bytes import token_bytes
from rlpr.training.debias_cache import prompt_key
from rlpr.training.rollout import big_array, filled_mask, no_padding_layout, padded_layout

# Why a response got no probability reward (r = 0, no forward spent on it). Each is a counter in the metrics.
SKIP_REASONS = ("no_answer", "empty_reference", "overlength")
# Metrics of ``compute_rewards`` that count samples (summed over generation rounds; the others are means).
COUNT_METRICS = tuple(f"rlpr/{reason}" for reason in SKIP_REASONS) + (
    "rlpr/empty_answer_mask",
    "rlpr/debias_overlength",
)


@dataclass(frozen=True)
class RepetitionConfig:
    """The repetition penalty P (``rlpr.repetition``): -1 when some run of ``window`` words occurs ``limit`` times."""

    window: int = 10
    limit: int = 10
    # True: P applies to every response (this project). False: only to responses whose reward is non-zero (the
    # reference implementation's behaviour, which leaves repetitive zero-reward responses unpunished).
    apply_to_all: bool = True
    split_rule: str = "official"


@dataclass(frozen=True)
class DebiasConfig:
    """The debias term r' (``rlpr.debias``)."""

    # initial: r' of the initial policy, cached at ``cache_path``; current: r' of the current actor at every step.
    mode: str = "initial"
    # r' sequence: " y* " (False, the reference's choice) or "<answer> y* </answer>" (True).
    tagged: bool = False
    cache_path: str | None = None


@dataclass(frozen=True)
class ScoringConfig:
    """What decides the RLPR reward of a response: the ``rlpr:`` section's keys of the same names."""

    format_mode: str = "R1"
    score_method: str = "mean_prob"
    shaping: str = "clip"
    format_coef: float = FORMAT_COEF
    repetition: RepetitionConfig = field(default_factory=RepetitionConfig)
    # Longest response side of an o' row (kept reasoning + tail) or a debias row (y* + tail); longer o' rows get r = 0
    # and are counted; a longer debias row leaves its prompt without r', so its responses get r = 0 too (counted).
    max_scoring_length: int | None = None
    debias: DebiasConfig = field(default_factory=DebiasConfig)

    def __post_init__(self):
        check_mode(self.format_mode)
        check_method(self.score_method)
        check_shaping(self.shaping)
        if self.max_scoring_length is not None and self.max_scoring_length < 1:
            raise ValueError(f"max_scoring_length must be a positive int or None, got {self.max_scoring_length}")


# --------------------------------------------------------------------------------------------------------------------
# The batch


@dataclass
class ScoringRows:
    """The built rows before any verl layout: left-padded prompts and right-padded responses with their lengths."""

    prompts: np.ndarray  # (rows, p_len)
    prompt_lengths: np.ndarray  # (rows,)
    responses: np.ndarray  # (rows, r_len)
    response_lengths: np.ndarray  # (rows,)


@dataclass
class ScoringBatch:
    """The scoring batch plus the bookkeeping that maps its rows back to responses and prompts.

    ``rows`` is None when no row was built (every response invalid and no debias row asked for). The rows are laid
    out for verl on demand: ``data`` (the padded layout, built once when first read) or ``log_prob_input`` (the
    no-padding layout the trainer sends to ``compute_log_prob``, without building the padded one).
    """

    rows: ScoringRows | None
    answer_mask: torch.Tensor  # (rows, response_len) bool: the y* tokens of each row
    response_row: list[int]  # per response: its o' row, or -1 (invalid: r = 0)
    status: list[str]  # per response: "ok" or one of SKIP_REASONS
    uids: list  # per response
    prompt_keys: list[str]  # per response: prompt_key(prompt ids, reference)
    references: list[str]  # per response: y* (stripped)
    prompt_row: dict = field(default_factory=dict)  # uid -> its debias row
    texts: list[str] = field(default_factory=list)  # decoded responses (special tokens at the end dropped)
    plain_texts: list[str] = field(default_factory=list)  # decoded responses without any special token (for P)
    debias_overlength: list[str] = field(default_factory=list)  # uids whose debias row exceeded max_scoring_length

    @property
    def num_rows(self) -> int:
        return 0 if self.rows is None else len(self.rows.prompts)

    def num_tokens(self) -> int:
        if self.rows is None:
            return 0
        return int(self.rows.prompt_lengths.sum() + self.rows.response_lengths.sum())

    @cached_property
    def data(self):
        """The rows in the padded layout of verl's ``compute_log_prob`` (a ``DataProto``; None without rows)."""
        if self.rows is None:
            return None
        from verl import DataProto

        rows = self.rows
        return DataProto.from_dict(
            tensors=padded_layout(rows.prompts, rows.prompt_lengths, rows.responses, rows.response_lengths)
        )

    def log_prob_input(self, rows_multiple_of: int = 1, meta_info: dict | None = None):
        """The rows as the no-padding ``TensorDict`` of a new-engine ``compute_log_prob`` call, padded with copies
        of the first rows to a multiple of ``rows_multiple_of`` (``rlpr.training.rollout.no_padding_layout``)."""
        if self.rows is None:
            raise ValueError("the scoring batch has no rows to score")
        rows = self.rows
        return no_padding_layout(
            rows.prompts,
            rows.prompt_lengths,
            rows.responses,
            rows.response_lengths,
            rows_multiple_of=rows_multiple_of,
            meta_info=meta_info,
        )

    def r_prime_wanted(self) -> dict[str, str]:
        """Prompt key -> a name (``uid <uid>``) of every prompt whose responses need an r' from outside the batch."""
        skipped = set(self.debias_overlength)
        return {
            key: f"uid {uid}"
            for key, uid, ref in zip(self.prompt_keys, self.uids, self.references)
            if ref and uid not in self.prompt_row and str(uid) not in skipped
        }


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


def _check_vocabulary(
    prompts: np.ndarray, prompt_mask: np.ndarray, responses: np.ndarray, response_len: np.ndarray, vocab: int
) -> None:
    if all(a.size == 0 or (a.min() >= 0 and a.max() < vocab) for a in (prompts, responses)):
        return  # padding included, every id is in range: nothing to find
    response_valid = filled_mask(response_len, responses.shape[1], left=False)
    bad = (((prompts >= vocab) | (prompts < 0)) & prompt_mask).any(1)
    bad |= (((responses >= vocab) | (responses < 0)) & response_valid).any(1)
    if bad.any():
        rows = bad.nonzero()[0].tolist()
        raise ValueError(f"rollout rows {rows[:10]} hold token ids outside the tokenizer's vocabulary 0..{vocab - 1}")


def _encode(tokenizer, texts: list[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
    """Token ids and character offsets of ``texts`` (no special tokens added), as ``tokenizer(texts, ...)`` gives them.

    Each distinct text is tokenized once (the responses of a prompt mostly share their tail). The fast tokenizer's
    backend is called directly when its state is what that call would set anyway (no truncation, no padding): the
    same encodings without building a ``BatchEncoding``.
    """
    distinct = list(dict.fromkeys(texts))
    backend = tokenizer.backend_tokenizer
    if (
        backend.truncation is None
        and backend.padding is None
        and (backend.encode_special_tokens == bool(tokenizer.split_special_tokens))
    ):
        encodings = backend.encode_batch(distinct, add_special_tokens=False)
        ids, offsets = [e.ids for e in encodings], [e.offsets for e in encodings]
    else:
        encoded = tokenizer(distinct, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    where = {text: j for j, text in enumerate(distinct)}
    order = [where[text] for text in texts]
    return [ids[j] for j in order], [offsets[j] for j in order]


def _prompt_groups(uids: list, prompts: np.ndarray, prompt_mask: np.ndarray) -> np.ndarray:
    """Per response, the first response with the same uid and the same prompt ids (its prompt is read once)."""
    n = len(uids)
    first: dict = {}
    rep = np.fromiter((first.setdefault(u, i) for i, u in enumerate(uids)), dtype=np.int64, count=n)
    if n:
        same = ((prompts == prompts[rep]) | ~prompt_mask).all(1) & (prompt_mask == prompt_mask[rep]).all(1)
        rep = np.where(same, rep, np.arange(n))
    return rep


def build_scoring_batch(rollout, tokenizer, config: ScoringConfig, *, debias_rows: bool = True) -> ScoringBatch:
    """Build the o' rows (and, with ``debias_rows``, one debias row per uid) for ``rollout``.

    ``rollout`` is a verl ``DataProto`` with tensors ``prompts`` (left-padded), ``responses`` (right-padded),
    ``attention_mask`` (over prompt + response) and non-tensors ``reward_model`` (dicts holding ``ground_truth``) and
    ``uid``. The result's ``data`` is in the padded layout of verl's ``compute_log_prob`` and its
    ``log_prob_input(...)`` in the no-padding one, with ``meta_info`` (temperature) left to the caller. Invalid
    responses, empty references and over-long o' get no row and a status. A debias row longer than
    ``max_scoring_length`` is not built: its prompt has no r', so its responses get no o' row either (status
    ``overlength``, r = 0) and the prompt is listed in ``debias_overlength``.
    """

    tb = token_bytes(tokenizer)
    eos = tokenizer.eos_token
    if eos is None:
        raise ValueError("the tokenizer has no eos token; o' ends with it (docs/rlpr.md#scoring-sequence)")
    pad_id = pad_token_id(tokenizer)
    refs = _references(rollout)
    uids = list(rollout.non_tensor_batch["uid"])
    n = len(refs)
    limit = config.max_scoring_length
    prompts = rollout.batch["prompts"].numpy()
    responses = rollout.batch["responses"].numpy()
    attention = rollout.batch["attention_mask"].numpy()
    p_width, r_width = prompts.shape[1], responses.shape[1]
    prompt_mask = attention[:, :p_width].astype(bool)
    response_len = attention[:, p_width : p_width + r_width].sum(-1)
    _check_vocabulary(prompts, prompt_mask, responses, response_len, len(tb.table))

    status: list[str] = []
    texts: list[str] = []
    plain_texts: list[str] = []
    kept: list[int] = []  # responses with an o' candidate
    keeps: list[int] = []  # their number of sampled response tokens kept
    tails: list[str] = []
    spans: list[tuple[int, int]] = []
    for i in range(n):
        parsed = parse_response(responses[i, : response_len[i]], tb, refs[i], config.format_mode, eos)
        texts.append(parsed.text)
        plain_texts.append(parsed.plain)
        if parsed.tail is None:
            status.append("no_answer")
        elif not refs[i]:
            status.append("empty_reference")
        else:
            status.append("ok")
            kept.append(i)
            keeps.append(parsed.keep)
            tails.append(parsed.tail)
            spans.append(parsed.ref_span)

    # each prompt's ids and key once per uid (and prompt), not once per response
    rep = _prompt_groups(uids, prompts, prompt_mask)
    prompt_of = {int(g): prompts[g][prompt_mask[g]] for g in np.unique(rep)}
    key_of: dict[tuple[int, str], str] = {}
    keys = []
    for i in range(n):
        group = (int(rep[i]), refs[i])
        if group not in key_of:
            key_of[group] = prompt_key(prompt_of[group[0]].tolist(), refs[i])
        keys.append(key_of[group])

    debias_uids: list = []  # (uid, the response whose prompt and reference the debias row takes)
    if debias_rows:
        seen = set()
        for i in range(n):
            if refs[i] and uids[i] not in seen:
                seen.add(uids[i])
                debias_uids.append((uids[i], i))
        for _, i in debias_uids:
            tail, span = debias_tail(refs[i], eos, config.debias.tagged)
            tails.append(tail)
            spans.append(span)

    tail_ids, tail_offsets = _encode(tokenizer, tails) if tails else ([], [])
    tail_lengths = np.fromiter((len(t) for t in tail_ids), np.int64, count=len(tails))
    keep_of = np.array(keeps + [0] * len(debias_uids), dtype=np.int64)
    fits = keep_of + tail_lengths <= limit if limit is not None else np.ones(len(tails), dtype=bool)
    too_long_debias = {uid for j, (uid, _) in enumerate(debias_uids) if not fits[len(kept) + j]}
    response_row = [-1] * n
    prompt_row = {}
    selected: list[int] = []  # candidate rows (o' then debias) that are built, in row order
    for j, i in enumerate(kept):
        if not fits[j] or uids[i] in too_long_debias:
            status[i] = "overlength"
        else:
            response_row[i] = len(selected)
            selected.append(j)
    for j, (uid, _) in enumerate(debias_uids, start=len(kept)):
        if fits[j]:
            prompt_row[uid] = len(selected)
            selected.append(j)

    result = ScoringBatch(
        rows=None,
        answer_mask=torch.zeros(0, 0, dtype=torch.bool),
        response_row=response_row,
        status=status,
        uids=uids,
        prompt_keys=keys,
        references=refs,
        prompt_row=prompt_row,
        texts=texts,
        plain_texts=plain_texts,
        debias_overlength=sorted(map(str, too_long_debias)),
    )
    if not selected:
        return result

    sel = np.array(selected, dtype=np.int64)
    m = len(sel)
    source = np.array(kept + [i for _, i in debias_uids], dtype=np.int64)[sel]
    row_prompts = [prompt_of[int(g)] for g in rep[source]]
    p_lengths = np.fromiter((len(p) for p in row_prompts), np.int64, count=m)
    keep_rows, tail_rows = keep_of[sel], tail_lengths[sel]
    r_lengths = keep_rows + tail_rows
    p_len, r_len = int(p_lengths.max()), int(r_lengths.max())
    dtype = responses.dtype
    prompts_out = big_array((m, p_len), dtype, pad_id)
    prompts_out[filled_mask(p_lengths, p_len, left=True)] = np.concatenate(row_prompts)
    # the kept sampled tokens: the o' rows' sampled responses, copied where they are kept (one masked copy)
    responses_out = big_array((m, r_len), dtype, pad_id)
    width = min(r_len, r_width, int(keep_rows.max()))
    n_o = int((sel < len(kept)).sum())  # the o' rows come first
    for lo in range(0, n_o, 256):  # in blocks of rows, so the gathered block stays small
        hi = min(lo + 256, n_o)
        np.copyto(
            responses_out[lo:hi, :width],
            responses[source[lo:hi], :width],
            where=filled_mask(keep_rows[lo:hi], width, left=False),
        )
    # then the tails, and the y* mask over them
    chosen = np.zeros(len(tails), dtype=bool)
    chosen[sel] = True
    candidate_of_token = np.repeat(np.arange(len(tails)), tail_lengths)
    token_chosen = chosen[candidate_of_token]
    flat_ids = np.fromiter(chain.from_iterable(tail_ids), np.int64, count=int(tail_lengths.sum()))[token_chosen]
    flat_offsets = np.array(list(chain.from_iterable(tail_offsets)), dtype=np.int64).reshape(-1, 2)[token_chosen]
    token_spans = np.array(spans, dtype=np.int64)[candidate_of_token[token_chosen]]
    row_of_token = np.repeat(np.arange(m), tail_rows)
    column = np.repeat(keep_rows - (np.cumsum(tail_rows) - tail_rows), tail_rows) + np.arange(len(row_of_token))
    responses_out[row_of_token, column] = flat_ids
    answer_mask = big_array((m, r_len), bool, False)
    answer_mask[row_of_token, column] = overlap_mask(flat_offsets, token_spans)
    result.rows = ScoringRows(prompts_out, p_lengths, responses_out, r_lengths)
    result.answer_mask = torch.from_numpy(answer_mask)
    return result


# --------------------------------------------------------------------------------------------------------------------
# Rewards from log-probs


def format_and_repetition(
    texts: Sequence[str], plain_texts: Sequence[str], config: ScoringConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """F of every decoded response (``texts``) and P of the same responses without any special token
    (``plain_texts``), as the official code reads each (docs/rlpr.md#final-reward)."""
    f = [format_reward(t, config.format_mode) for t in texts]
    rep = config.repetition
    p = [repetition_penalty(t, rep.window, rep.limit, rep.split_rule) for t in plain_texts]
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
    used: dict[str, float] = dict(from_batch)
    wanted = scoring.r_prime_wanted()  # an empty y* or a debias row over the cap has no r' (r' = 0, r = 0, counted)
    if r_prime is not None:
        used.update((key, float(r_prime[key])) for key in wanted if key in r_prime and key not in used)
    missing = [name.removeprefix("uid ") for key, name in wanted.items() if key not in used]
    if config.shaping == "none":
        missing = []  # r̂ = r needs no r'
    if missing:
        raise KeyError(f"no r' for the prompts with uid {sorted(set(missing))}: no debias row, not cached")
    rp = torch.tensor([used.get(key, 0.0) for key in scoring.prompt_keys], dtype=torch.float64)
    f, p = format_and_repetition(scoring.texts, scoring.plain_texts, config)
    r_hat, reward = final_rewards(
        r,
        rp,
        f,
        p,
        shaping=config.shaping,
        format_coef=config.format_coef,
        repetition_on_all=config.repetition.apply_to_all,
    )

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
        "rlpr/debias_overlength": float(len(scoring.debias_overlength)),
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
    )
