"""RM-R1 training data (docs/rm_r1.md#training-data): pairs from the three sources, balanced A/B orders, a held-out
split, verl RL rows (judge prompt + label) and verl SFT rows (judge prompt + teacher trace) from either distillation
layout, the content match that keeps distillation pairs out of the RL set, and the prompt budget.

Every converter either returns a ``PreferencePair`` or raises ``SkippedRow`` with a short reason; the caller counts
the reasons per source. Problems that make a whole source unusable (missing columns, all named at once; a file that
is not valid JSON/UTF-8/parquet, named with its line) raise ``ValueError``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.config_paths import recipe_config_dir
from rm_r1.judge.prompts import build_judge_messages, check_family, context_messages
from rm_r1.judge.verdicts import DEFAULT_VERDICT_RULE, LABEL_OF_SIDE, label_side, parse_verdict


def recipe_length(config: str, key: str) -> int:
    """``data.<key>`` of the recipe ``configs/rm_r1/<config>``: the length limits live in the recipes only, so data
    preparation drops exactly what the trainer would refuse."""
    path = recipe_config_dir("rm_r1") / config
    value = (yaml.safe_load(path.read_text(encoding="utf-8")).get("data") or {}).get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{path}: data.{key} must be an integer number of tokens, got {value!r}")
    return value


SKYWORK = "Skywork/Skywork-Reward-Preference-80K-v0.2"
CODE_PREFERENCE = "Vezora/Code-Preference-Pairs"
MATH_STEP_DPO = "xinlai/Math-Step-DPO-10K"
SKYWORK_DROPPED_ORIGIN = "magpie_ultra"  # its rejected replies are multi-turn and contain "<im_start>": a spurious cue
CODE_SHUFFLE_SEED, CODE_PAIRS = 42, 8000
PROMPT_BUDGET = recipe_length("grpo.yaml", "max_prompt_length")  # rendered chat template + generation prompt
SFT_MAX_LENGTH = recipe_length("sft.yaml", "max_length")
ABILITY = "preference"
SFT_COLUMNS = ("conversation", "reply_a", "reply_b", "trace", "label")
DISTILL_SFT = "gaotang/RM-R1-Distill-SFT"
PUBLISHED_SFT_COLUMNS = ("context_messages", "winner")
"""The published distillation layout: the rendered judge prompt as chat messages, and the teacher's trace."""
PAPER_PAIRS = {SKYWORK: 54_146, CODE_PREFERENCE: CODE_PAIRS, MATH_STEP_DPO: 10_795}
"""Pairs per source in the paper's RL data (Skywork after the magpie_ultra filter)."""
PAPER_SKIPS = frozenset({f"origin {SKYWORK_DROPPED_ORIGIN}"})
"""Skip reasons the paper's pipeline applies too; every other reason drops a pair the paper kept."""
SHOWN_SKIPPED_ROWS = 3


class SkippedRow(ValueError):
    """A row that cannot become a training example; ``reason`` is the counter it is reported under."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: the shared context (chat messages ending with a user turn) and the two final replies."""

    source: str
    index: int
    context: list[dict[str, str]]
    chosen: str
    rejected: str
    origin: str = ""


def require_columns(column_names: Iterable[str], required: Sequence[str], where: str) -> None:
    """Raise ``ValueError`` naming every column of ``required`` that ``column_names`` lacks, and the expected ones."""
    column_names = set(column_names)
    missing = [c for c in required if c not in column_names]
    if missing:
        raise ValueError(
            f"{where}: missing columns {missing}; expected the columns {list(required)}; it has {sorted(column_names)}"
        )


def column_names(table: Any) -> list[str]:
    """The columns of a ``datasets.Dataset`` or of a list of rows (every key that some row has)."""
    if hasattr(table, "column_names"):
        return list(table.column_names)
    return sorted({key for row in table if isinstance(row, dict) for key in row})


def _checked_pair(
    source: str, index: int, context: Any, chosen: Any, rejected: Any, origin: str = ""
) -> PreferencePair:
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise SkippedRow("reply is not a string")
    if not chosen.strip() or not rejected.strip():
        raise SkippedRow("empty reply")
    if chosen.strip() == rejected.strip():
        raise SkippedRow("chosen identical to rejected")
    try:
        context = context_messages(context)
    except ValueError as error:
        raise SkippedRow("malformed conversation") from error
    if not context[-1]["content"].strip():
        raise SkippedRow("empty question")
    return PreferencePair(source, index, context, chosen, rejected, origin)


def skywork_pair(row: dict[str, Any], index: int) -> PreferencePair:
    """Skywork-Reward-Preference-80K-v0.2: ``chosen``/``rejected`` message lists sharing every turn but the last
    assistant one; ``source`` names the origin (``magpie_ultra`` rows are skipped)."""
    origin = row.get("source") or ""
    if origin == SKYWORK_DROPPED_ORIGIN:
        raise SkippedRow(f"origin {SKYWORK_DROPPED_ORIGIN}")
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if not isinstance(chosen, list) or not isinstance(rejected, list) or not chosen or not rejected:
        raise SkippedRow("malformed conversation")
    if not all(isinstance(m, dict) for m in chosen + rejected):  # e.g. a null message
        raise SkippedRow("malformed conversation")
    last_chosen, last_rejected = chosen[-1], rejected[-1]
    if not all(isinstance(m, dict) and m.get("role") == "assistant" for m in (last_chosen, last_rejected)):
        raise SkippedRow("last turn is not the assistant's")
    context = [{"role": m.get("role"), "content": m.get("content")} for m in chosen[:-1]]
    if context != [{"role": m.get("role"), "content": m.get("content")} for m in rejected[:-1]]:
        raise SkippedRow("chosen and rejected contexts differ")
    return _checked_pair(SKYWORK, index, context, last_chosen.get("content"), last_rejected.get("content"), origin)


def code_preference_pair(row: dict[str, Any], index: int) -> PreferencePair:
    """Code-Preference-Pairs: ``input`` (the question), ``accepted``, ``rejected``."""
    return _checked_pair(CODE_PREFERENCE, index, row.get("input"), row.get("accepted"), row.get("rejected"))


def math_step_pair(row: dict[str, Any], index: int) -> PreferencePair:
    """Math-Step-DPO-10K: the compared replies are ``initial_reason_steps`` + ``full_chosen`` and
    ``initial_reason_steps`` + ``full_rejected``."""
    steps = row.get("initial_reason_steps")
    if not isinstance(steps, str):
        raise SkippedRow("reply is not a string")
    full_chosen, full_rejected = row.get("full_chosen"), row.get("full_rejected")
    if not isinstance(full_chosen, str) or not isinstance(full_rejected, str):
        raise SkippedRow("reply is not a string")
    return _checked_pair(
        MATH_STEP_DPO, index, row.get("prompt"), steps + full_chosen, steps + full_rejected, row.get("dataset") or ""
    )


@dataclass(frozen=True)
class SourceSpec:
    hub_name: str
    columns: tuple[str, ...]
    to_pair: Callable[[dict[str, Any], int], PreferencePair]


SOURCES: dict[str, SourceSpec] = {
    "skywork": SourceSpec(SKYWORK, ("chosen", "rejected", "source"), skywork_pair),
    "code": SourceSpec(CODE_PREFERENCE, ("input", "accepted", "rejected"), code_preference_pair),
    "math": SourceSpec(
        MATH_STEP_DPO, ("prompt", "initial_reason_steps", "full_chosen", "full_rejected"), math_step_pair
    ),
}


def load_table(name_or_path: str, split: str = "train") -> Any:
    """The rows of a local parquet/json/jsonl file (a list of dicts; a broken or empty file is a ``ValueError``
    naming it, and the line of a ``.jsonl``), or a hub dataset (a ``datasets.Dataset``)."""
    path = Path(name_or_path)
    if path.suffix in (".parquet", ".json", ".jsonl"):
        if not path.is_file():
            raise ValueError(f"data file {name_or_path!r} does not exist")
        from harness.rows import read_rows  # the one reader of local row files

        rows = read_rows(path)
        if not rows:
            raise ValueError(f"data file {name_or_path!r} holds no rows")
        return rows
    import datasets

    return datasets.load_dataset(name_or_path, split=split)


def code_selection(count: int, seed: int = CODE_SHUFFLE_SEED, limit: int = CODE_PAIRS) -> list[int]:
    """Row indices of Code-Preference-Pairs as the paper used them: the order of ``datasets.Dataset.shuffle(seed)``
    (numpy's ``default_rng(seed).permutation``), the first ``limit``."""
    import numpy as np

    return np.random.default_rng(seed).permutation(count)[:limit].tolist()


@dataclass
class Report:
    """Counts for the summary: kept pairs and skip reasons per source, prompt-budget drops per (split, source)."""

    kept: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped_rows: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    over_budget: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    exclusion: dict[str, int] = field(default_factory=dict)

    def skip(self, source: str, reason: str, index: int) -> None:
        """Count row ``index`` of ``source`` as skipped for ``reason`` (the first few indices are kept to show)."""
        reasons = self.skipped.setdefault(source, {})
        reasons[reason] = reasons.get(reason, 0) + 1
        examples = self.skipped_rows.setdefault(source, {}).setdefault(reason, [])
        if len(examples) < SHOWN_SKIPPED_ROWS:
            examples.append(index)


def convert(rows: Iterable[tuple[int, dict[str, Any]]], source: str, report: Report) -> list[PreferencePair]:
    """Pairs from one source's (row index, row) items; every skipped row is counted under its reason in ``report``."""
    spec = SOURCES[source]
    pairs = []
    for index, row in rows:
        try:
            if not isinstance(row, dict):
                raise SkippedRow("row is not an object")
            pairs.append(spec.to_pair(row, index))
        except SkippedRow as skipped:
            report.skip(spec.hub_name, skipped.reason, index)
    report.kept[spec.hub_name] = len(pairs)
    return pairs


def held_out(count: int, val_size: float, seed: int) -> set[int]:
    """The indices (into ``count`` pairs) of the validation split: ``val_size`` pairs if >= 1, else that fraction
    (at least one pair when ``val_size`` > 0), drawn with ``seed``. ``val_size`` 0 holds none out."""
    if val_size < 0 or (val_size >= 1 and val_size != int(val_size)):
        raise ValueError(f"val_size must be a fraction in [0, 1) or a whole number of pairs, got {val_size}")
    if count == 0 or val_size == 0:
        return set()
    if count < 2:
        raise ValueError(
            f"val_size {val_size} needs at least 2 pairs (one to hold out), got {count}; "
            "use --val-size 0 for no validation split"
        )
    size = int(val_size) if val_size >= 1 else max(1, round(val_size * count))
    if size >= count:
        raise ValueError(f"val_size {val_size} leaves no training pairs out of {count}")
    return set(random.Random(seed).sample(range(count), size))


def balanced_swaps(count: int, seed: int | str, odd_one_swapped: bool = False) -> list[bool]:
    """One flag per pair, True = the chosen reply is shown as Chatbot B, in an order drawn with ``seed``:
    floor(count/2) True, plus the odd one when ``count`` is odd and ``odd_one_swapped``."""
    swapped = count // 2 + (count % 2 if odd_one_swapped else 0)
    flags = [True] * swapped + [False] * (count - swapped)
    random.Random(seed).shuffle(flags)
    return flags


def rl_row(
    pair: PreferencePair, swapped: bool, family: str, prompt_file: str | None, split: str, index: int
) -> dict[str, Any]:
    """A verl RL row: the judge prompt with the chosen reply as Chatbot B iff ``swapped``; the label names its side."""
    reply_a, reply_b = (pair.rejected, pair.chosen) if swapped else (pair.chosen, pair.rejected)
    return {
        "data_source": pair.source,
        "prompt": build_judge_messages(pair.context, reply_a, reply_b, family, prompt_file),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": LABEL_OF_SIDE["B" if swapped else "A"]},
        "extra_info": {
            "split": split,
            "index": index,
            "source_index": pair.index,
            "swapped": swapped,
            "origin": pair.origin,
            "family": family,
        },
    }


def rl_rows(
    pairs: Sequence[PreferencePair], split: str, family: str, prompt_file: str | None, seed: int, both_orders: bool
) -> list[dict[str, Any]]:
    """RL rows for one split: each pair in both orders, or once with a seeded A/B order balanced within each source
    (the odd pairs of odd-sized sources alternate sides, so the whole split is balanced too)."""
    check_family(family)
    by_source: dict[str, list[PreferencePair]] = {}
    for pair in pairs:
        by_source.setdefault(pair.source, []).append(pair)
    rows = []
    odd_one_swapped = False
    for source, group in by_source.items():
        if both_orders:
            orders_per_pair = [(False, True)] * len(group)
        else:
            flags = balanced_swaps(len(group), f"{seed}:{split}:{source}", odd_one_swapped)
            odd_one_swapped ^= len(group) % 2 == 1
            orders_per_pair = [(swapped,) for swapped in flags]
        for pair, orders in zip(group, orders_per_pair):
            for swapped in orders:
                rows.append(rl_row(pair, swapped, family, prompt_file, split, len(rows)))
    return rows


def token_counts(
    tokenizer: Any,
    conversations: Sequence[list[dict[str, str]]],
    add_generation_prompt: bool,
    batch_size: int = 256,
    progress: str | None = None,
) -> list[int]:
    """Length in tokens of each conversation rendered by ``tokenizer``'s chat template."""
    from tqdm.auto import tqdm

    counts = []
    starts = range(0, len(conversations), batch_size)
    for start in tqdm(starts, desc=progress, disable=progress is None, unit="batch"):
        texts = tokenizer.apply_chat_template(
            list(conversations[start : start + batch_size]), tokenize=False, add_generation_prompt=add_generation_prompt
        )
        counts.extend(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return counts


def within_budget(
    rows: list[dict[str, Any]], counts: Sequence[int], budget: int, report: Report, split: str
) -> list[dict[str, Any]]:
    """The rows whose count is at most ``budget``; the others are counted per (split, data_source) in ``report``."""
    kept = []
    for row, count in zip(rows, counts, strict=True):
        if count <= budget:
            kept.append(row)
        else:
            key = f"{split}/{row['data_source']}"
            report.over_budget[key] = report.over_budget.get(key, 0) + 1
    return kept


def sft_row(row: dict[str, Any], index: int, family: str, prompt_file: str | None) -> dict[str, Any]:
    """A verl SFT row (``messages`` = judge prompt + the teacher's trace as the assistant turn) from a distillation row
    with columns ``conversation`` (question or messages), ``reply_a``, ``reply_b``, ``trace``, ``label``.

    The trace must end with the labelled side's verdict tag (the ``strict_tail`` rule, which RL rewards), else the row
    is skipped: a model distilled on it would learn a verdict the reward reads differently.
    """
    trace = row["trace"]
    if not isinstance(trace, str) or not trace.strip():
        raise SkippedRow("empty trace")
    for name in ("reply_a", "reply_b"):
        if not isinstance(row[name], str) or not row[name].strip():
            raise SkippedRow("empty reply")
    try:
        side = label_side(row["label"])
    except ValueError as error:
        raise SkippedRow("unknown label") from error
    try:
        messages = build_judge_messages(row["conversation"], row["reply_a"], row["reply_b"], family, prompt_file)
    except ValueError as error:
        raise SkippedRow("malformed conversation") from error
    verdict = parse_verdict(trace, DEFAULT_VERDICT_RULE)
    if verdict is None:
        raise SkippedRow("trace does not end with one verdict tag")
    if verdict != side:
        raise SkippedRow("trace verdict disagrees with label")
    return {
        "messages": messages + [{"role": "assistant", "content": trace}],
        "data_source": "rm_r1_distill",
        "extra_info": {"index": index, "label": LABEL_OF_SIDE[side], "family": family},
    }


def published_sft_row(row: dict[str, Any], index: int) -> dict[str, Any]:
    """A verl SFT row from the published distillation layout (``gaotang/RM-R1-Distill-SFT``): ``context_messages``,
    the rendered judge prompt (system + user), then ``winner``, the teacher's trace, as the assistant turn.

    The prompt is used as written (it is the official instruct-family prompt, not this project's). The trace must end
    with one verdict tag (``strict_tail``), as for the project's layout; the layout carries no label, so the label
    recorded is the trace's verdict.
    """
    trace = row["winner"]
    if not isinstance(trace, str) or not trace.strip():
        raise SkippedRow("empty trace")
    try:
        messages = context_messages(row["context_messages"])
    except ValueError as error:
        raise SkippedRow("malformed conversation") from error
    verdict = parse_verdict(trace, DEFAULT_VERDICT_RULE)
    if verdict is None:
        raise SkippedRow("trace does not end with one verdict tag")
    return {
        "messages": messages + [{"role": "assistant", "content": trace}],
        "data_source": "rm_r1_distill",
        "extra_info": {"index": index, "label": LABEL_OF_SIDE[verdict], "family": "instruct"},
    }


def sft_layout(columns: Iterable[str], where: str) -> str:
    """``published`` (``PUBLISHED_SFT_COLUMNS``) or ``project`` (``SFT_COLUMNS``); neither is a ValueError naming
    ``where`` and both layouts."""
    columns = set(columns)
    if all(c in columns for c in PUBLISHED_SFT_COLUMNS):
        return "published"
    if all(c in columns for c in SFT_COLUMNS):
        return "project"
    raise ValueError(
        f"{where}: expected the distillation columns {list(SFT_COLUMNS)} (this project's layout) or "
        f"{list(PUBLISHED_SFT_COLUMNS)} (the published {DISTILL_SFT}); it has {sorted(columns)}"
    )


PairKey = tuple[str, tuple[str, str]]


def normalised(text: str) -> str:
    """``text`` with every run of whitespace made one space and the ends stripped."""
    return " ".join(text.split())


def pair_key(context: list[dict[str, str]], reply_1: str, reply_2: str) -> PairKey:
    """What identifies a pair by content, whichever reply was shown first: the normalised context (role and text of
    every message) and the two normalised replies in sorted order."""
    turns = "\n".join(f"{m['role']}: {normalised(m['content'])}" for m in context)
    first, second = sorted((normalised(reply_1), normalised(reply_2)))
    return turns, (first, second)


# The official user turn (rm_r1/dataset/mix_data in the RM-R1 repository): one question and two replies, or one whole
# dialogue per chatbot with "User: " / "Chatbot A: " lines (the reference spells one "Chabot B").
_PUBLISHED_SINGLE = re.compile(
    r"\[Client Question\]\n(?P<question>.*)\n\n\[The Start of Chatbot A's Response\]\n(?P<a>.*)\n"
    r"\[The End of Chatbot A's Response\]\n\n\[The Start of Chatbot B's Response\]\n(?P<b>.*)\n"
    r"\[The End of Chatbot B's Response\]",
    re.DOTALL,
)
_PUBLISHED_MULTI = re.compile(
    r"\[The Start of the Conversation between Chatbot A and the Client\]\n(?P<a>.*)\n"
    r"\[The End of the Conversation between Chatbot A and the Client\]\n\n"
    r"\[The Start of the Conversation between Chatbot B and the Client\]\n(?P<b>.*)\n"
    r"\[The End of the Conversation between Chatbot B and the Client\]",
    re.DOTALL,
)
_PUBLISHED_SPEAKER = re.compile(r"(?:^|\n)(User|Chatbot A|Chatbot B|Chabot B): ")


def _published_dialogue(text: str) -> tuple[list[dict[str, str]], str]:
    parts = _PUBLISHED_SPEAKER.split(text)
    if parts[0].strip() or len(parts) < 5:
        raise ValueError("not a 'User: ' / 'Chatbot X: ' dialogue of at least two turns")
    turns = [
        {"role": "user" if who == "User" else "assistant", "content": said}
        for who, said in zip(parts[1::2], parts[2::2])
    ]
    if turns[-1]["role"] != "assistant":
        raise ValueError("the dialogue does not end with the chatbot's reply")
    return turns[:-1], turns[-1]["content"]


def published_pair_key(messages: Any) -> PairKey:
    """The ``pair_key`` of a published distillation row, read back from its rendered user turn (``ValueError`` when
    the turn is not in the official layout)."""
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        raise ValueError("context_messages is not a message list")
    text = messages[-1].get("content")
    if not isinstance(text, str):
        raise ValueError("the last message has no text")
    single = _PUBLISHED_SINGLE.fullmatch(text.strip())
    if single:
        return pair_key([{"role": "user", "content": single["question"]}], single["a"], single["b"])
    multi = _PUBLISHED_MULTI.fullmatch(text.strip())
    if not multi:
        raise ValueError("the user turn is in neither official layout")
    (context_a, reply_a), (context_b, reply_b) = _published_dialogue(multi["a"]), _published_dialogue(multi["b"])
    if pair_key(context_a, "", "") != pair_key(context_b, "", ""):
        raise ValueError("the two dialogues do not share their context")
    return pair_key(context_a, reply_a, reply_b)


def sft_pair_keys(table: Any, where: str) -> tuple[set[PairKey], int]:
    """The ``pair_key`` of every row of a distillation set (either layout), and how many rows could not be read."""
    layout = sft_layout(column_names(table), where)
    keys: set[PairKey] = set()
    unreadable = 0
    for row in table:
        try:
            if not isinstance(row, dict):
                raise ValueError("row is not an object")
            if layout == "published":
                keys.add(published_pair_key(row.get("context_messages")))
            else:
                replies = row.get("reply_a"), row.get("reply_b")
                if not all(isinstance(reply, str) for reply in replies):
                    raise ValueError("a reply is not a string")
                keys.add(pair_key(context_messages(row.get("conversation")), *replies))
        except ValueError:
            unreadable += 1
    return keys, unreadable


def exclude_pairs(pairs: Sequence[PreferencePair], keys: set[PairKey], report: Report) -> list[PreferencePair]:
    """``pairs`` without those whose ``pair_key`` is in ``keys`` (e.g. the distillation pairs); the removed are counted
    per source in ``report.excluded`` and the keys matched by some pair in ``report.exclusion["matched"]``."""
    kept, matched = [], set()
    for pair in pairs:
        key = pair_key(pair.context, pair.chosen, pair.rejected)
        if key in keys:
            matched.add(key)
            report.excluded[pair.source] = report.excluded.get(pair.source, 0) + 1
        else:
            kept.append(pair)
    report.exclusion["matched"] = len(matched)
    return kept
