"""Early checks of RLPR training rows, so bad data fails before the first step with the row named.

A row (docs/data_formats.md#rlpr-training-rows) is bad when
* it cannot be read: a ``.jsonl`` line that is not valid UTF-8 or not JSON, a null row, or text holding a lone
  surrogate (``unreadable_row``);
* it has no ``data_source`` string (verl's reward loop reads it for every rollout) (``no_data_source``);
* it has no reference answer: ``reward_model.ground_truth`` missing, not a string, or blank (r would be computed over
  an empty y* and be 0 for every response) (``no_reference``);
* its reference is longer than ``max_reference_length`` tokens (``reference_too_long``): an o' holds y* and must fit
  the scoring budget (``rlpr.max_scoring_length``, by default ``data.max_response_length`` + 64), so such a reference
  could never earn a probability reward;
* its prompt is not a non-empty list of chat messages (``{"role": ..., "content": <string>}``) with some text: a
  plain-string prompt is rejected too, the r' pass needs messages (``empty_prompt``);
* its prompt is longer than ``data.max_prompt_length`` tokens once the tokenizer's chat template is applied with the
  generation prompt (as verl's ``RLHFDataset`` counts it) (``prompt_too_long``).

Policy ``error`` raises ``BadDataError`` listing the bad rows; policy ``filter`` drops them, logs them and reports
how many were dropped for which reason (``CheckedRows.counts``). A file that cannot be read as a whole (a broken
``.json`` or ``.parquet``), a file without rows, or nothing left after filtering is a ``BadDataError`` under both
policies.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.rows import BadDataError, read_file_rows

logger = logging.getLogger(__name__)

POLICIES = ("filter", "error")
UNREADABLE_ROW = "unreadable_row"
NO_DATA_SOURCE = "no_data_source"
NO_REFERENCE = "no_reference"
REFERENCE_TOO_LONG = "reference_too_long"
EMPTY_PROMPT = "empty_prompt"
PROMPT_TOO_LONG = "prompt_too_long"
_SHOWN = 20
_CHUNK = 512


@dataclass(frozen=True)
class BadRow:
    """One rejected row: where it is (``source`` and 0-based ``index``), which check failed, and the details."""

    source: str
    index: int
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.source} row {self.index}: {self.reason} ({self.detail})"


@dataclass
class CheckedRows:
    """The rows that passed (in their original order) and the rows that did not."""

    rows: list[dict[str, Any]]
    kept_indices: list[int]
    bad: list[BadRow] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of dropped rows per reason (for the logs and metrics)."""
        return dict(Counter(b.reason for b in self.bad))


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"unknown bad-prompt policy {policy!r}; expected one of {POLICIES}")
    return policy


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_problem(value: Any, where: str = "row") -> str | None:
    """Where a lone surrogate (text that cannot be encoded as UTF-8) sits in a row, if anywhere."""
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        return f"{where} holds a lone surrogate {found.group()!r} at character {found.start()}" if found else None
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        problem = _surrogate_problem(item, f"{where}[{key!r}]")
        if problem is not None:
            return problem
    return None


def _data_source_problem(row: Mapping[str, Any]) -> str | None:
    source = row.get("data_source")
    if not isinstance(source, str) or not source.strip():
        return f"data_source is {source!r}, expected a non-empty string (verl's reward loop reads it)"
    return None


def _reference_problem(row: Mapping[str, Any]) -> str | None:
    reward_model = row.get("reward_model")
    if not isinstance(reward_model, Mapping):
        return f"reward_model is {type(reward_model).__name__}, expected a dict with a string ground_truth"
    truth = reward_model.get("ground_truth")
    if not isinstance(truth, str):
        return f"reward_model.ground_truth is {type(truth).__name__} {truth!r}, expected a string"
    if not truth.strip():
        return f"reward_model.ground_truth is blank: {truth!r}"
    return None


def _prompt_problem(prompt: Any, prompt_key: str) -> str | None:
    if isinstance(prompt, str):
        return f"{prompt_key} is a string {prompt[:80]!r}, expected a list of chat messages {{'role', 'content'}}"
    if not isinstance(prompt, Sequence) or not prompt:
        return f"{prompt_key} is {prompt!r}, expected a non-empty list of chat messages"
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping) or not isinstance(message.get("content"), str) or "role" not in message:
            return f"{prompt_key}[{i}] is {message!r}, expected {{'role': ..., 'content': <string>}}"
    if not any(message["content"].strip() for message in prompt):
        return f"every message of {prompt_key} has blank content"
    return None


def _as_messages(prompt: str | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]


def prompt_lengths(
    prompts: Sequence[str | Sequence[Mapping[str, Any]]],
    tokenizer: Any,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> list[int]:
    """Token count of each prompt after the chat template with the generation prompt (a string is one user turn)."""
    lengths: list[int] = []
    kwargs = dict(chat_template_kwargs or {})
    for start in range(0, len(prompts), _CHUNK):
        texts = [
            tokenizer.apply_chat_template(_as_messages(p), add_generation_prompt=True, tokenize=False, **kwargs)
            for p in prompts[start : start + _CHUNK]
        ]
        lengths.extend(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return lengths


def _find_bad(
    rows: Sequence[Any],
    tokenizer: Any,
    max_prompt_length: int,
    prompt_key: str,
    chat_template_kwargs: Mapping[str, Any] | None,
    source: str,
    max_reference_length: int | None = None,
    unreadable: Mapping[int, str] | None = None,
) -> tuple[list[int], list[BadRow]]:
    bad: list[BadRow] = []
    well_formed: list[int] = []
    for i, row in enumerate(rows):
        if unreadable and i in unreadable:
            bad.append(BadRow(source, i, UNREADABLE_ROW, unreadable[i]))
            continue
        if not isinstance(row, Mapping):
            bad.append(BadRow(source, i, UNREADABLE_ROW, f"row is {row!r}, expected an object (dict)"))
            continue
        checks = (
            (UNREADABLE_ROW, _surrogate_problem(row)),
            (NO_DATA_SOURCE, _data_source_problem(row)),
            (NO_REFERENCE, _reference_problem(row)),
            (EMPTY_PROMPT, _prompt_problem(row.get(prompt_key), prompt_key)),
        )
        problem = next(((reason, detail) for reason, detail in checks if detail is not None), None)
        if problem is not None:
            bad.append(BadRow(source, i, *problem))
            continue
        well_formed.append(i)

    if max_reference_length is not None:
        # a token covers at least one UTF-8 byte: only references longer than the limit in bytes need tokenizing
        long = [i for i in well_formed if len(rows[i]["reward_model"]["ground_truth"].encode()) > max_reference_length]
        counts = reference_lengths([rows[i]["reward_model"]["ground_truth"] for i in long], tokenizer)
        too_long = {i: n for i, n in zip(long, counts) if n > max_reference_length}
        for i, n in too_long.items():
            detail = f"reward_model.ground_truth has {n} tokens > the reference limit {max_reference_length}"
            bad.append(BadRow(source, i, REFERENCE_TOO_LONG, detail))
        well_formed = [i for i in well_formed if i not in too_long]

    lengths = prompt_lengths([rows[i][prompt_key] for i in well_formed], tokenizer, chat_template_kwargs)
    kept: list[int] = []
    for i, length in zip(well_formed, lengths):
        if length > max_prompt_length:
            detail = f"{length} tokens after the chat template > data.max_prompt_length={max_prompt_length}"
            bad.append(BadRow(source, i, PROMPT_TOO_LONG, detail))
        else:
            kept.append(i)
    bad.sort(key=lambda b: b.index)
    return kept, bad


def reference_lengths(references: Sequence[str], tokenizer: Any) -> list[int]:
    """Token count of each reference answer on its own (no special tokens)."""
    lengths: list[int] = []
    for start in range(0, len(references), _CHUNK):
        encoded = tokenizer(list(references[start : start + _CHUNK]), add_special_tokens=False)["input_ids"]
        lengths.extend(len(ids) for ids in encoded)
    return lengths


def _apply_policy(bad: list[BadRow], total: int, where: str, policy: str) -> None:
    if total == 0:
        raise BadDataError(f"{where} holds no training rows")
    if not bad:
        return
    shown = "\n  ".join(str(b) for b in bad[:_SHOWN])
    more = f"\n  ... and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    counts = dict(Counter(b.reason for b in bad))
    summary = f"{len(bad)} of {total} training rows in {where} are bad {counts}:\n  {shown}{more}"
    if policy == "error":
        raise BadDataError(f"{summary}\nFix the data, or set rlpr.bad_prompt_policy=filter to drop such rows.")
    if len(bad) == total:
        raise BadDataError(f"no training rows left after dropping the bad ones: {summary}")
    logger.warning("dropping %s", summary)


def _check_length(max_prompt_length: int, name: str = "max_prompt_length") -> int:
    if isinstance(max_prompt_length, bool) or int(max_prompt_length) != max_prompt_length or max_prompt_length < 1:
        raise ValueError(f"{name} must be a positive integer, got {max_prompt_length!r}")
    return int(max_prompt_length)


def check_rows(
    rows: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    max_prompt_length: int,
    policy: str = "error",
    *,
    prompt_key: str = "prompt",
    chat_template_kwargs: Mapping[str, Any] | None = None,
    source: str = "rows",
    max_reference_length: int | None = None,
) -> CheckedRows:
    """Check every row (see the module docstring); raise ``BadDataError`` (policy ``error``) or drop the bad rows.

    ``source`` names the rows in messages (a file path); a row is named by its 0-based index in ``rows``.
    ``max_reference_length`` (tokens; None = no limit) bounds the reference answers.
    """
    check_policy(policy)
    max_prompt_length = _check_length(max_prompt_length)
    if max_reference_length is not None:
        max_reference_length = _check_length(max_reference_length, "max_reference_length")
    kept, bad = _find_bad(
        rows, tokenizer, max_prompt_length, prompt_key, chat_template_kwargs, source, max_reference_length
    )
    _apply_policy(bad, len(rows), source, policy)
    return CheckedRows(rows=[dict(rows[i]) for i in kept], kept_indices=kept, bad=bad)


def check_files(
    paths: str | Path | Iterable[str | Path],
    tokenizer: Any,
    max_prompt_length: int,
    policy: str = "error",
    *,
    prompt_key: str = "prompt",
    chat_template_kwargs: Mapping[str, Any] | None = None,
    max_reference_length: int | None = None,
) -> CheckedRows:
    """``check_rows`` over the rows of one or several data files (verl's ``data.train_files``), concatenated.

    Bad rows are named by file and row; ``kept_indices`` count over the concatenation. Under policy ``error`` all
    files are checked before the error is raised. A file without rows is an error under both policies.
    """
    paths = [str(paths)] if isinstance(paths, str | Path) else [str(p) for p in paths]
    check_policy(policy)
    max_prompt_length = _check_length(max_prompt_length)
    if max_reference_length is not None:
        max_reference_length = _check_length(max_reference_length, "max_reference_length")
    rows: list[dict[str, Any]] = []
    kept: list[int] = []
    bad: list[BadRow] = []
    offset = 0
    for path in paths:
        file_rows, unreadable = read_file_rows(Path(path).expanduser())
        if not file_rows:
            raise BadDataError(f"training file {path} holds no rows")
        file_kept, file_bad = _find_bad(
            file_rows,
            tokenizer,
            max_prompt_length,
            prompt_key,
            chat_template_kwargs,
            path,
            max_reference_length,
            unreadable,
        )
        rows.extend(file_rows[i] for i in file_kept)
        kept.extend(offset + i for i in file_kept)
        bad.extend(file_bad)
        offset += len(file_rows)
    _apply_policy(bad, offset, ", ".join(paths), policy)
    return CheckedRows(rows=rows, kept_indices=kept, bad=bad)
