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
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.generation import pad_token_id
from rlpr.answer import check_mode, format_reward, repetition_penalty
from rlpr.reward import FORMAT_COEF, check_method, check_shaping, final_rewards, sequence_scores
from rlpr.reward.o_prime import debias_tail, overlap_mask, parse_response
from rlpr.reward.token_bytes import TokenBytes, token_bytes
from rlpr.training.debias_cache import prompt_key
from rlpr.training.rollout import big_array, filled_mask, no_padding_layout, padded_layout

if TYPE_CHECKING:
    from tensordict import TensorDict
    from verl import DataProto

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
# The batch, in phases: read the rollout, parse the responses, index the prompts, list the debias candidates,
# tokenize the tails, apply the length budget, assemble the rows. Each phase returns a complete value, and
# ``build_scoring_batch`` constructs the ``ScoringBatch`` once, from all of them.


@dataclass(frozen=True)
class ScoringRows:
    """The built rows before any verl layout: left-padded prompts and right-padded responses with their lengths."""

    prompts: np.ndarray  # (rows, p_len)
    prompt_lengths: np.ndarray  # (rows,)
    responses: np.ndarray  # (rows, r_len)
    response_lengths: np.ndarray  # (rows,)


@dataclass(frozen=True)
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
    prompt_row: dict  # uid -> its debias row
    texts: list[str]  # decoded responses (special tokens at the end dropped)
    plain_texts: list[str]  # decoded responses without any special token (for P)
    debias_overlength: list[str]  # uids whose debias row exceeded max_scoring_length

    @property
    def num_rows(self) -> int:
        return 0 if self.rows is None else len(self.rows.prompts)

    def num_tokens(self) -> int:
        if self.rows is None:
            return 0
        return int(self.rows.prompt_lengths.sum() + self.rows.response_lengths.sum())

    @cached_property
    def data(self) -> DataProto | None:
        """The rows in the padded layout of verl's ``compute_log_prob`` (a ``DataProto``; None without rows)."""
        if self.rows is None:
            return None
        from verl import DataProto

        rows = self.rows
        return DataProto.from_dict(
            tensors=padded_layout(rows.prompts, rows.prompt_lengths, rows.responses, rows.response_lengths)
        )

    def log_prob_input(self, rows_multiple_of: int = 1, meta_info: dict | None = None) -> TensorDict:
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


# 1. Read the rollout


@dataclass(frozen=True)
class RolloutTokens:
    """What the scoring batch reads of a rollout: its token ids as numpy arrays, the references and the uids."""

    prompts: np.ndarray  # (n, prompt width) left-padded prompt ids
    prompt_mask: np.ndarray  # (n, prompt width) bool: the prompt's own tokens
    responses: np.ndarray  # (n, response width) right-padded sampled ids
    response_len: np.ndarray  # (n,) sampled tokens per response
    references: list[str]  # y* per response, stripped
    uids: list  # per response: the prompt group it was sampled for


def _references(rollout: DataProto) -> list[str]:
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


def read_rollout(rollout: DataProto, vocab_size: int) -> RolloutTokens:
    """The token ids, references and uids of a verl ``DataProto`` rollout (tensors ``prompts``, ``responses``,
    ``attention_mask``; non-tensors ``reward_model`` and ``uid``). A reference that is not a str, or a prompt or
    response token id outside 0..``vocab_size`` - 1, is an error naming the rows."""
    references = _references(rollout)
    uids = list(rollout.non_tensor_batch["uid"])
    prompts = rollout.batch["prompts"].numpy()
    responses = rollout.batch["responses"].numpy()
    attention = rollout.batch["attention_mask"].numpy()
    p_width, r_width = prompts.shape[1], responses.shape[1]
    prompt_mask = attention[:, :p_width].astype(bool)
    response_len = attention[:, p_width : p_width + r_width].sum(-1)
    _check_vocabulary(prompts, prompt_mask, responses, response_len, vocab_size)
    return RolloutTokens(prompts, prompt_mask, responses, response_len, references, uids)


# 2. Parse the responses


@dataclass(frozen=True)
class Candidates:
    """Rows the batch may hold, before the length budget, in candidate order. Per candidate: ``source``, the
    response it is read from (its prompt; for an o' row also its sampled tokens); ``keep``, the sampled response
    tokens it keeps (0 for a debias row); ``tails``, the string tokenized after them; ``spans``, the character span
    of y* in that string."""

    source: list[int]
    keep: list[int]
    tails: list[str]
    spans: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.source)

    def __add__(self, other: Candidates) -> Candidates:
        """These candidates, then ``other``'s."""
        return Candidates(
            self.source + other.source, self.keep + other.keep, self.tails + other.tails, self.spans + other.spans
        )


@dataclass(frozen=True)
class ParsedResponses:
    """Every response of the rollout read for o' (``rlpr.reward.o_prime.parse_response``)."""

    texts: list[str]  # without the special tokens at the end (what validity and the format reward read)
    plain_texts: list[str]  # without any special token (what the repetition penalty reads)
    status: list[str]  # "ok", "no_answer" or "empty_reference" (the budget may still refuse an "ok" one)
    o_prime: Candidates  # one per response of status "ok", in response order


def parse_responses(tokens: RolloutTokens, tb: TokenBytes, mode: str, eos_token: str) -> ParsedResponses:
    """Cut every response at its ``<answer>`` (by token bytes) and write its o' tail. A response without a valid
    answer in format ``mode`` (status ``no_answer``) or with an empty reference (``empty_reference``) gets no o'
    candidate."""
    texts, plain_texts, status = [], [], []
    source, keep, tails, spans = [], [], [], []
    for i, reference in enumerate(tokens.references):
        parsed = parse_response(tokens.responses[i, : tokens.response_len[i]], tb, reference, mode, eos_token)
        texts.append(parsed.text)
        plain_texts.append(parsed.plain)
        if parsed.tail is None:
            status.append("no_answer")
        elif not reference:
            status.append("empty_reference")
        else:
            status.append("ok")
            source.append(i)
            keep.append(parsed.keep)
            tails.append(parsed.tail)
            spans.append(parsed.ref_span)
    return ParsedResponses(texts, plain_texts, status, Candidates(source, keep, tails, spans))


# 3. Index the prompts


@dataclass(frozen=True)
class PromptIndex:
    """Each prompt read once per uid (and prompt ids), and the r' cache key of every response."""

    group: np.ndarray  # (n,) per response: the first response with its uid and its prompt ids
    ids: dict[int, np.ndarray]  # group -> its prompt ids, without padding
    keys: list[str]  # per response: prompt_key(prompt ids, reference)


def _prompt_groups(uids: list, prompts: np.ndarray, prompt_mask: np.ndarray) -> np.ndarray:
    """Per response, the first response with the same uid and the same prompt ids (its prompt is read once)."""
    n = len(uids)
    first: dict = {}
    rep = np.fromiter((first.setdefault(u, i) for i, u in enumerate(uids)), dtype=np.int64, count=n)
    if n:
        same = ((prompts == prompts[rep]) | ~prompt_mask).all(1) & (prompt_mask == prompt_mask[rep]).all(1)
        rep = np.where(same, rep, np.arange(n))
    return rep


def index_prompts(tokens: RolloutTokens) -> PromptIndex:
    """The prompt groups of the rollout, the prompt ids of each group, and each response's prompt key (computed once
    per group and reference)."""
    group = _prompt_groups(tokens.uids, tokens.prompts, tokens.prompt_mask)
    ids = {int(g): tokens.prompts[g][tokens.prompt_mask[g]] for g in np.unique(group)}
    key_of: dict[tuple[int, str], str] = {}
    keys = []
    for g, reference in zip(group.tolist(), tokens.references):
        if (g, reference) not in key_of:
            key_of[g, reference] = prompt_key(ids[g].tolist(), reference)
        keys.append(key_of[g, reference])
    return PromptIndex(group, ids, keys)


# 4. Debias candidates


def debias_candidates(uids: Sequence, references: Sequence[str], eos_token: str, tagged: bool) -> Candidates:
    """One debias candidate per uid (docs/rlpr.md#debias), read from the first of its responses with a non-empty
    reference: after the prompt, ``" " + y* + " "`` (``"<answer> " + y* + " </answer>"`` when ``tagged``) and eos."""
    first: dict = {}
    for i, (uid, reference) in enumerate(zip(uids, references)):
        if reference and uid not in first:
            first[uid] = i
    source = list(first.values())
    written = [debias_tail(references[i], eos_token, tagged) for i in source]
    return Candidates(source, [0] * len(source), [tail for tail, _ in written], [span for _, span in written])


# 5. Tokenize the tails


@dataclass(frozen=True)
class TailTokens:
    """The tokenization of every candidate's tail, in candidate order."""

    ids: list[list[int]]
    offsets: list[list[tuple[int, int]]]  # character (start, end) of each token in its tail
    lengths: np.ndarray  # (candidates,) int64: tokens per tail


def _encode(tokenizer: Any, texts: list[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
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


def tokenize_tails(tokenizer: Any, tails: list[str]) -> TailTokens:
    """Token ids and character offsets of every tail (no special tokens added; the eos in a tail is its text)."""
    ids, offsets = _encode(tokenizer, tails) if tails else ([], [])
    return TailTokens(ids, offsets, np.fromiter((len(t) for t in ids), np.int64, count=len(ids)))


# 6. The length budget


@dataclass(frozen=True)
class RowPlan:
    """Which candidates become rows, in row order (the o' rows first), and what that gives each response and uid."""

    selected: np.ndarray  # (rows,) int64: the candidate of each row
    o_prime_rows: int  # the first rows, the o' ones
    response_row: list[int]  # per response: its o' row, or -1
    prompt_row: dict  # uid -> its debias row
    overlength: frozenset[int]  # responses whose o' candidate the budget refused
    debias_overlength: list[str]  # uids (as str, sorted) whose debias candidate is over the budget


def plan_rows(
    o_prime: Candidates, debias: Candidates, tail_lengths: np.ndarray, uids: Sequence, limit: int | None
) -> RowPlan:
    """The length budget over the candidates (``tail_lengths``: tokens per tail, the o' candidates then the debias
    ones). A candidate fits when its kept sampled tokens plus its tail tokens number at most ``limit`` (None: every
    candidate fits). A debias candidate becomes a row when it fits; an o' candidate when it fits and its uid has no
    debias candidate over the budget (that prompt gets no r', so its responses get no r either)."""
    keep = np.array(o_prime.keep + debias.keep, dtype=np.int64)
    fits = keep + tail_lengths <= limit if limit is not None else np.ones(len(keep), dtype=bool)
    n_o = len(o_prime)
    too_long = {uids[i] for j, i in enumerate(debias.source, start=n_o) if not fits[j]}
    response_row = [-1] * len(uids)
    overlength = set()
    selected: list[int] = []
    for j, i in enumerate(o_prime.source):
        if not fits[j] or uids[i] in too_long:
            overlength.add(i)
        else:
            response_row[i] = len(selected)
            selected.append(j)
    o_prime_rows = len(selected)
    prompt_row = {}
    for j, i in enumerate(debias.source, start=n_o):
        if fits[j]:
            prompt_row[uids[i]] = len(selected)
            selected.append(j)
    return RowPlan(
        selected=np.array(selected, dtype=np.int64),
        o_prime_rows=o_prime_rows,
        response_row=response_row,
        prompt_row=prompt_row,
        overlength=frozenset(overlength),
        debias_overlength=sorted(map(str, too_long)),
    )


# 7. Assemble the rows


def assemble_rows(
    tokens: RolloutTokens,
    prompts: PromptIndex,
    candidates: Candidates,
    tails: TailTokens,
    plan: RowPlan,
    pad_id: int,
) -> tuple[ScoringRows, torch.Tensor]:
    """The rows of ``plan`` (at least one) and their (rows, response_len) y* mask. Each row: its source's prompt ids
    (left-padded with ``pad_id``), then, right-padded, the ``keep`` first sampled tokens of its source response and
    its tail tokens; the mask marks the tail tokens whose character span overlaps the row's y* span."""
    sel = plan.selected
    if not len(sel):
        raise ValueError("assemble_rows needs at least one selected candidate")
    m = len(sel)
    source = np.array(candidates.source, dtype=np.int64)[sel]
    row_prompts = [prompts.ids[int(g)] for g in prompts.group[source]]
    p_lengths = np.fromiter((len(p) for p in row_prompts), np.int64, count=m)
    keep_rows, tail_rows = np.array(candidates.keep, dtype=np.int64)[sel], tails.lengths[sel]
    r_lengths = keep_rows + tail_rows
    p_len, r_len = int(p_lengths.max()), int(r_lengths.max())
    dtype = tokens.responses.dtype
    prompts_out = big_array((m, p_len), dtype, pad_id)
    prompts_out[filled_mask(p_lengths, p_len, left=True)] = np.concatenate(row_prompts)
    # the kept sampled tokens: the o' rows' sampled responses, copied where they are kept (one masked copy)
    responses_out = big_array((m, r_len), dtype, pad_id)
    width = min(r_len, tokens.responses.shape[1], int(keep_rows.max()))
    for lo in range(0, plan.o_prime_rows, 256):  # in blocks of rows, so the gathered block stays small
        hi = min(lo + 256, plan.o_prime_rows)
        np.copyto(
            responses_out[lo:hi, :width],
            tokens.responses[source[lo:hi], :width],
            where=filled_mask(keep_rows[lo:hi], width, left=False),
        )
    # then the tails, and the y* mask over them
    chosen = np.zeros(len(candidates), dtype=bool)
    chosen[sel] = True
    candidate_of_token = np.repeat(np.arange(len(candidates)), tails.lengths)
    token_chosen = chosen[candidate_of_token]
    flat_ids = np.fromiter(chain.from_iterable(tails.ids), np.int64, count=int(tails.lengths.sum()))[token_chosen]
    flat_offsets = np.array(list(chain.from_iterable(tails.offsets)), dtype=np.int64).reshape(-1, 2)[token_chosen]
    token_spans = np.array(candidates.spans, dtype=np.int64)[candidate_of_token[token_chosen]]
    row_of_token = np.repeat(np.arange(m), tail_rows)
    column = np.repeat(keep_rows - (np.cumsum(tail_rows) - tail_rows), tail_rows) + np.arange(len(row_of_token))
    responses_out[row_of_token, column] = flat_ids
    answer_mask = big_array((m, r_len), bool, False)
    answer_mask[row_of_token, column] = overlap_mask(flat_offsets, token_spans)
    return ScoringRows(prompts_out, p_lengths, responses_out, r_lengths), torch.from_numpy(answer_mask)


def build_scoring_batch(
    rollout: DataProto, tokenizer: Any, config: ScoringConfig, *, debias_rows: bool = True
) -> ScoringBatch:
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
    tokens = read_rollout(rollout, len(tb.table))
    parsed = parse_responses(tokens, tb, config.format_mode, eos)
    prompts = index_prompts(tokens)
    debias = Candidates([], [], [], [])
    if debias_rows:
        debias = debias_candidates(tokens.uids, tokens.references, eos, config.debias.tagged)
    candidates = parsed.o_prime + debias
    tails = tokenize_tails(tokenizer, candidates.tails)
    plan = plan_rows(parsed.o_prime, debias, tails.lengths, tokens.uids, config.max_scoring_length)
    rows, answer_mask = None, torch.zeros(0, 0, dtype=torch.bool)
    if len(plan.selected):
        rows, answer_mask = assemble_rows(tokens, prompts, candidates, tails, plan, pad_id)
    return ScoringBatch(
        rows=rows,
        answer_mask=answer_mask,
        response_row=plan.response_row,
        status=["overlength" if i in plan.overlength else s for i, s in enumerate(parsed.status)],
        uids=tokens.uids,
        prompt_keys=prompts.keys,
        references=tokens.references,
        prompt_row=plan.prompt_row,
        texts=parsed.texts,
        plain_texts=parsed.plain_texts,
        debias_overlength=plan.debias_overlength,
    )


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
