"""Load RewardBench, RM-Bench and RMB (docs/data_formats.md#rm-r1-benchmark-files) as judge comparisons.

Every loader returns ``Comparison`` objects: a stable ``pair_id``, the conversation, the chosen (better) and the
rejected reply, and ``meta``, the fields that the benchmark's scorer in ``rm_r1.evaluation.scorers`` reads. Local
sources are json (a list of rows), jsonl or parquet files, or folders of them; anything else is read as a hub dataset
name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rm_r1.evaluation.scorers import REWARDBENCH_SECTIONS, rmbench_domain

BENCHMARKS = ("rewardbench", "rmbench", "rmb")
HUB_SOURCES = {"rewardbench": ("allenai/reward-bench", "filtered"), "rmbench": ("THU-KEG/RM-Bench", "train")}
"""Benchmark -> (hub dataset, split). RMB has no hub copy: pass the folder of its json files (``RMB_dataset``)."""

_SUFFIXES = (".json", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Comparison:
    """One judged pair: ``conversation`` (a question string or chat messages ending with the user turn), the
    ``chosen`` (better) and ``rejected`` replies, and the scorer's fields in ``meta``."""

    pair_id: str
    conversation: str | list[dict[str, str]]
    chosen: str
    rejected: str
    meta: dict[str, Any] = field(default_factory=dict)


def _files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in _SUFFIXES)
    if not files:
        raise ValueError(f"{str(source)!r} holds no {'/'.join(_SUFFIXES)} files")
    return files


def _read_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()  # plain Python lists, not numpy arrays
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError(f"{str(path)!r}: expected a json list of rows, got {type(rows).__name__}")
    return rows


def read_rows(source: str | Path, hub_split: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(origin, row) for every row of a local file/folder, or of ``hub_split`` of a hub dataset when ``source`` is
    not a local path. ``origin`` names the file (or hub dataset) and row index, for error messages."""
    path = Path(source)
    if path.exists():
        for file in _files(path):
            for i, row in enumerate(_read_file(file)):
                yield f"{file}:{i}", row
        return
    if hub_split is None:
        raise ValueError(f"{str(source)!r} is not a local file or folder")
    import datasets

    for i, row in enumerate(datasets.load_dataset(str(source), split=hub_split)):
        yield f"{source}[{hub_split}]:{i}", row


def _field(origin: str, row: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    if name not in row:
        raise ValueError(f"{origin}: row has no {name!r} field (fields: {sorted(row)})")
    value = row[name]
    if not isinstance(value, kind):
        raise ValueError(f"{origin}: {name!r} must be {kind}, got {type(value).__name__}")
    return value


def _unique(comparisons: Iterable[tuple[str, Comparison]]) -> list[Comparison]:
    seen: dict[str, str] = {}
    result = []
    for origin, comparison in comparisons:
        if comparison.pair_id in seen:
            raise ValueError(f"pair {comparison.pair_id!r} appears twice: {seen[comparison.pair_id]} and {origin}")
        seen[comparison.pair_id] = origin
        result.append(comparison)
    return result


_REWARDBENCH_SUBSETS = frozenset(s for subsets in REWARDBENCH_SECTIONS.values() for s in subsets)


def load_rewardbench(source: str | Path = HUB_SOURCES["rewardbench"][0]) -> list[Comparison]:
    """RewardBench pairs (``prompt``, ``chosen``, ``rejected``, ``subset``, ``id``); meta = {"subset"}.

    A hub name loads its ``filtered`` split (2,985 pairs).
    """

    def rows() -> Iterator[tuple[str, Comparison]]:
        for origin, row in read_rows(source, HUB_SOURCES["rewardbench"][1]):
            pair_id = str(_field(origin, row, "id", (int, str)))
            subset = _field(origin, row, "subset")
            if subset not in _REWARDBENCH_SUBSETS:
                raise ValueError(
                    f"{origin}: unknown RewardBench subset {subset!r}; expected one of {sorted(_REWARDBENCH_SUBSETS)}"
                )
            yield (
                origin,
                Comparison(
                    pair_id=pair_id,
                    conversation=_field(origin, row, "prompt"),
                    chosen=_field(origin, row, "chosen"),
                    rejected=_field(origin, row, "rejected"),
                    meta={"subset": subset},
                ),
            )

    return _unique(rows())


def _rmbench_domain(origin: str, row: dict[str, Any]) -> str:
    if "domain" in row:
        return _field(origin, row, "domain")
    stem = Path(origin.rsplit(":", 1)[0]).stem
    for name in ("chat", "math", "code", "safety-refuse", "safety-response"):
        if stem.startswith(name):
            return name
    raise ValueError(f"{origin}: row has no 'domain' and the file name does not start with an RM-Bench domain")


def load_rmbench(source: str | Path = HUB_SOURCES["rmbench"][0]) -> list[Comparison]:
    """RM-Bench: the 9 (chosen style i, rejected style j) pairs of every sample.

    Rows: ``id``, ``prompt``, ``chosen`` and ``rejected`` (3 replies each, styles concise / detailed plain / detailed
    markdown), ``domain`` (or the domain from the file name, e.g. ``safety-refuse_filtered.json``).
    pair_id = ``<domain>/<id>/c<i>r<j>``; meta = {"id", "domain", "chosen_style": i, "rejected_style": j}.
    """

    def rows() -> Iterator[tuple[str, Comparison]]:
        for origin, row in read_rows(source, HUB_SOURCES["rmbench"][1]):
            sample = _field(origin, row, "id", (int, str))
            domain = _rmbench_domain(origin, row)
            rmbench_domain(domain)  # rejects a domain the scorer would not know
            chosen, rejected = (list(_field(origin, row, key, (list, tuple))) for key in ("chosen", "rejected"))
            if len(chosen) != 3 or len(rejected) != 3 or not all(isinstance(r, str) for r in chosen + rejected):
                raise ValueError(f"{origin}: 'chosen' and 'rejected' must hold 3 strings each (one per style)")
            prompt = _field(origin, row, "prompt")
            for i in range(3):
                for j in range(3):
                    yield (
                        origin,
                        Comparison(
                            pair_id=f"{domain}/{sample}/c{i}r{j}",
                            conversation=prompt,
                            chosen=chosen[i],
                            rejected=rejected[j],
                            meta={"id": sample, "domain": domain, "chosen_style": i, "rejected_style": j},
                        ),
                    )

    return _unique(rows())


def _rmb_messages(origin: str, row: dict[str, Any]) -> list[dict[str, str]]:
    turns = _field(origin, row, "conversation_input", (list, tuple))
    messages = []
    for turn in turns:
        if (
            not isinstance(turn, dict)
            or not isinstance(turn.get("role"), str)
            or not isinstance(turn.get("content"), str)
        ):
            raise ValueError(f"{origin}: every conversation_input turn needs string 'role' and 'content', got {turn!r}")
        messages.append({"role": turn["role"], "content": turn["content"]})
    return messages


def _rmb_answer(origin: str, name: str, reply: Any) -> str:
    if not isinstance(reply, dict) or not isinstance(reply.get("answer"), str):
        raise ValueError(f"{origin}: {name!r} must be {{'llm_name', 'answer': str}}, got {reply!r}")
    return reply["answer"]


def _rmb_section(origin: str, row: dict[str, Any], kind: str) -> str:
    path = _field(origin, row, "category_path").split("/")
    expected = {"pairwise": "Pairwise_set", "bon": "BoN_set"}[kind]
    if len(path) < 2 or path[0] != expected or path[1].lower() not in ("helpfulness", "harmlessness"):
        raise ValueError(
            f"{origin}: category_path {'/'.join(path)!r} should read {expected}/Helpfulness|Harmlessness/..."
        )
    return path[1].lower()


def load_rmb(source: str | Path) -> list[Comparison]:
    """RMB pairwise and best-of-N sets, from a folder of its json files (or one file).

    Pairwise rows (``pair_uid``, ``conversation_input``, ``chosen``, ``reject``, ``category_path``) give one pair,
    meta = {"section", "kind": "pairwise", "category"}. Best-of-N rows (``bon_uid``, ``bon_best``, ``loser_list``) give
    one pair per loser (best vs loser k, pair_id ``<bon_uid>/<k>``), meta = {"section", "kind": "bon", "group": bon_uid,
    "category"}. The section (helpfulness / harmlessness) is the second component of ``category_path``; ``category`` is
    the whole ``category_path`` (RMB's per-category scores).
    """
    if not Path(source).exists():
        raise ValueError(f"RMB source {str(source)!r} does not exist; pass the folder of RMB's json files")

    def rows() -> Iterator[tuple[str, Comparison]]:
        for origin, row in read_rows(source):
            messages = _rmb_messages(origin, row)
            if "pair_uid" in row:
                yield (
                    origin,
                    Comparison(
                        pair_id=str(row["pair_uid"]),
                        conversation=messages,
                        chosen=_rmb_answer(origin, "chosen", _field(origin, row, "chosen", dict)),
                        rejected=_rmb_answer(origin, "reject", _field(origin, row, "reject", dict)),
                        meta={
                            "section": _rmb_section(origin, row, "pairwise"),
                            "kind": "pairwise",
                            "category": row["category_path"],
                        },
                    ),
                )
            elif "bon_uid" in row:
                group = str(row["bon_uid"])
                section = _rmb_section(origin, row, "bon")
                best = _rmb_answer(origin, "bon_best", _field(origin, row, "bon_best", dict))
                losers = _field(origin, row, "loser_list", (list, tuple))
                if not losers:
                    raise ValueError(f"{origin}: 'loser_list' is empty")
                for k, loser in enumerate(losers):
                    yield (
                        origin,
                        Comparison(
                            pair_id=f"{group}/{k}",
                            conversation=messages,
                            chosen=best,
                            rejected=_rmb_answer(origin, f"loser_list[{k}]", loser),
                            meta={"section": section, "kind": "bon", "group": group, "category": row["category_path"]},
                        ),
                    )
            else:
                raise ValueError(f"{origin}: an RMB row needs 'pair_uid' (pairwise) or 'bon_uid' (best-of-N)")

    return _unique(rows())


def load_benchmark(benchmark: str, source: str | Path | None = None) -> list[Comparison]:
    """The comparisons of ``benchmark`` (rewardbench | rmbench | rmb) from ``source`` (default: its hub dataset).

    A source without any pair is an error naming it."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")
    if benchmark == "rmb":
        if source is None:
            raise ValueError("RMB has no hub copy: pass the folder of its json files as the source")
        comparisons = load_rmb(source)
    else:
        source = HUB_SOURCES[benchmark][0] if source is None else source
        comparisons = (load_rewardbench if benchmark == "rewardbench" else load_rmbench)(source)
    if not comparisons:
        raise ValueError(f"{str(source)!r} holds no {benchmark} pairs")
    return comparisons


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> tuple[str, int]:
    """``text`` with every lone surrogate (invalid in UTF-8, e.g. a json ``\\ud800`` escape) replaced by U+FFFD,
    and the number replaced."""
    return _SURROGATE.subn("\ufffd", text)


def _clean(value: Any) -> tuple[Any, int]:
    if isinstance(value, str):
        return replace_surrogates(value)
    if isinstance(value, list | tuple):
        cleaned = [_clean(v) for v in value]
        return type(value)(v for v, _ in cleaned), sum(n for _, n in cleaned)
    if isinstance(value, dict):
        items = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, sum(n for _, n in items.values())
    return value, 0


def replace_surrogates_in_pairs(comparisons: Sequence[Comparison]) -> tuple[list[Comparison], int]:
    """The comparisons with lone surrogates replaced in every text field (``replace_surrogates``), and the number of
    comparisons that held one (they cannot be sent to a server or written as UTF-8 otherwise)."""
    result, changed = [], 0
    for c in comparisons:
        fields = {name: getattr(c, name) for name in ("pair_id", "conversation", "chosen", "rejected", "meta")}
        cleaned = {name: _clean(value) for name, value in fields.items()}
        if any(n for _, n in cleaned.values()):
            changed += 1
            c = replace(c, **{name: value for name, (value, _) in cleaned.items()})
        result.append(c)
    return result, changed
