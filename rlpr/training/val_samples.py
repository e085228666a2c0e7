"""Avg@k validation as the paper's trainer runs it: k responses sampled per question, k read from the file name.

A validation file named ``<name>_Avg<k>.<ext>`` (any case, e.g. ``gpqa_diamond_Avg4.parquet``) holds one row per
question, and each row is generated k times; a file without that suffix is generated once per row. verl 0.9.1 has one
``actor_rollout_ref.rollout.val_kwargs.n`` for all files, so the trainer instead hands verl a validation dataset in
which each row stands k times in a row (``RepeatedValDataset``), with ``val_kwargs.n`` = 1. Every copy carries a
``uid`` naming its question, which verl's ``_validate`` keeps (it draws a uid only for rows without one), so its
``mean@k`` and this project's ``avg@k`` group the k samples of one question.

k is a property of the file; rows reach the trainer merged, so k is mapped through each file's ``data_source``
values (one source in two files of different k is an error). A file with k > 1 whose rows already repeat a question
(the same data source, prompt and reference twice: the project's earlier preparation wrote k copies) is refused,
since sampling k per row would give k² samples per question.

With ``rlpr.val_samples_from_file_name: false`` rows are generated once each, as they are; copies of one question
then share a uid, so a file whose rows are repeated k times still reports avg@k with its true k.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from rlpr.evaluation.benchmarks import split_avg_suffix


def samples_per_row(path: str | Path) -> int:
    """k of a validation file: the ``_Avg<k>`` suffix of its name, in any case (``split_avg_suffix``), else 1."""
    _, k = split_avg_suffix(Path(str(path)).name.split(".", 1)[0], f"validation file {str(path)!r}")
    return 1 if k is None else k


def question_id(data_source: str, prompt: Any, reference: Any) -> str:
    """What identifies a question: a digest of its data source, prompt (chat messages) and reference answer."""
    text = json.dumps([data_source, prompt, reference], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def source_ks(files: Sequence[str | Path], sources_of: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """data_source -> k over the validation ``files`` (``sources_of[file]``: the data sources of its rows)."""
    ks: dict[str, int] = {}
    where: dict[str, str] = {}
    for path in files:
        k = samples_per_row(path)
        for source in dict.fromkeys(sources_of[str(path)]):
            if source in ks and ks[source] != k:
                raise ValueError(
                    f"data source {source!r} is in validation files {where[source]!r} (k={ks[source]}) and "
                    f"{str(path)!r} (k={k}); give each file its own data sources"
                )
            ks[source], where[source] = k, str(path)
    return ks


def check_not_repeated(path: str | Path, question_ids: Sequence[str], k: int) -> None:
    """Refuse a file of k > 1 whose rows repeat a question (it would be sampled k times per copy)."""
    if k <= 1:
        return
    copies = Counter(question_ids)
    repeated = sum(1 for n in copies.values() if n > 1)
    if repeated:
        most = max(copies.values())
        raise ValueError(
            f"validation file {str(path)!r} is named _Avg{k}, so each of its rows is sampled {k} times, but "
            f"{repeated} of its {len(copies)} questions appear more than once (up to {most} rows): its rows look "
            "repeated already (the earlier preparation wrote k copies). Prepare it again (one row per question) or "
            "set rlpr.val_samples_from_file_name=false to generate its rows once each"
        )


class RepeatedValDataset(Dataset):
    """Row i of ``base`` stands ``ks[i]`` times in a row; every item gets ``uid`` = ``uids[i]``."""

    def __init__(self, base: Any, ks: Sequence[int], uids: Sequence[str]):
        if not len(ks) == len(uids) == len(base):
            raise ValueError(f"{len(base)} rows but {len(ks)} k values and {len(uids)} uids")
        self.base = base
        self.uids = list(uids)
        self.rows = [i for i, k in enumerate(ks) for _ in range(int(k))]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int) -> dict:
        row = self.rows[item]
        return {**self.base[row], "uid": self.uids[row]}


def _column(dataset: Any, name: str) -> list:
    frame = getattr(dataset, "dataframe", None)
    if frame is None:
        raise ValueError(f"the validation dataset ({type(dataset).__name__}) has no dataframe to read {name!r} from")
    return list(frame[name])


def _ground_truth(reward_model: Any) -> Any:
    return reward_model.get("ground_truth") if isinstance(reward_model, Mapping) else None


def build_val_dataset(
    dataset: Any, files: Sequence[str | Path], prompt_key: str = "prompt", from_file_name: bool = True
) -> RepeatedValDataset:
    """The dataset verl validates on: ``dataset``'s rows, each k times (its file's k) when ``from_file_name``,
    once otherwise, with a question uid on every item (module docstring)."""
    sources = [str(s) for s in _column(dataset, "data_source")]
    prompts = _column(dataset, prompt_key)
    references = [_ground_truth(rm) for rm in _column(dataset, "reward_model")]
    uids = [question_id(s, p, r) for s, p, r in zip(sources, prompts, references, strict=True)]
    if not from_file_name:
        return RepeatedValDataset(dataset, [1] * len(sources), uids)
    from harness.rows import read_rows

    sources_of: dict[str, list[str]] = {}
    for path in map(str, files):
        rows = read_rows(path)
        ids = [
            question_id(str(r.get("data_source")), r.get(prompt_key), _ground_truth(r.get("reward_model")))
            for r in rows
        ]
        check_not_repeated(path, ids, samples_per_row(path))
        sources_of[path] = [str(r.get("data_source")) for r in rows]
    ks = source_ks([str(f) for f in files], sources_of)
    missing = sorted(set(sources) - set(ks))
    if missing:
        raise ValueError(f"validation rows of data sources {missing} are in none of the validation files {files}")
    return RepeatedValDataset(dataset, [ks[s] for s in sources], uids)
