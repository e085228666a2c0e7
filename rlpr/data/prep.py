"""RLPR data preparation (docs/data_formats.md#rlpr-source-datasets): training set and seven benchmarks as verl rows.

Every output row has verl's row format: ``data_source``, ``prompt`` (chat messages from ``rlpr.data.prompts``),
``ability``, ``reward_model: {style: "rule", ground_truth}``, ``extra_info: {index, split, question, answer_type,
sample}``. A benchmark file holds one row per question, as the paper's files do, and is named ``<name>_Avg<k>``
(k of the paper's Avg@k, ``rlpr.evaluation.benchmarks.BENCHMARKS``): validation and ``rlpr.evaluate`` sample k
responses per row from that name (``rlpr.training.val_samples``). ``data_source`` is the benchmark's name, so
validation reports Avg@k under that name. ``repeat`` writes each question that many times instead (the project's
earlier files; validate those with ``rlpr.val_samples_from_file_name=false``).

Columns read (the datasets' public column names; ``a | b`` means the first of them that the file has):

* ``train`` (openbmb/RLPR-Train-Dataset, split train): the last ``user`` message of ``prompt`` as the question,
  ``reward_model.ground_truth``; ``data_source``, ``ability`` and ``extra_info`` are kept.
* ``MMLU-Pro`` (TIGER-Lab/MMLU-Pro, test): ``question`` + ``options`` (a list, lettered A-J), ``answer`` (a letter).
  By default a seeded subset of 1,000 questions (the paper's ``MMLUPro-1000``; ``full=True`` keeps them all); the
  report's ``subset`` records the seed and the ``question_id`` (else the row index) of every question kept.
* ``GPQA-diamond`` (Idavidrein/gpqa, config gpqa_diamond, train): ``Question``, ``Correct Answer``,
  ``Incorrect Answer 1..3``, shuffled with a seed of (``--seed``, row index); the answer is the correct option's letter.
* ``TheoremQA`` (TIGER-Lab/TheoremQA, test): ``Question``, ``Answer`` (numbers and lists as Python prints them),
  ``Answer_type`` (bool and option answers are graded as text).
* ``WebInstruct-verified``, variant ``choice`` (the default; multiple choice A-D as in the paper's evaluation):
  ``question``, ``options`` (a list of 2 to 4 option texts), ``answer`` (the correct option's letter or its text);
  graded by letter. Variant ``free`` (TIGER-Lab/WebInstruct-verified, test, free-form): ``question``, ``answer``,
  ``answer_type`` (Multiple Choice, String, Boolean and Other answers are graded as text).
* ``MATH-500`` (HuggingFaceH4/MATH-500, test), ``Minerva`` (math-ai/minervamath, test), ``AIME2024``
  (HuggingFaceH4/aime_2024, train): ``problem | question | Problem``, ``answer | Answer``.

A file that lacks a column a dataset needs fails before any row is converted, naming every missing column and the
expected ones (``DATASETS[name].columns``). Rows whose question or answer is empty, that are not objects, or whose
``options`` are not a list are dropped and counted (``PrepReport.dropped``). The output folder is checked for
writing before anything is read, and every output file is written atomically.
"""

from __future__ import annotations

import json
import logging
import random
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.files import write_text_atomically
from harness.rows import read_rows, write_rows
from rlpr.answer import check_mode
from rlpr.data.prompts import OPTION_LETTERS, build_r1_messages, format_options
from rlpr.evaluation.benchmarks import BENCHMARKS

logger = logging.getLogger(__name__)

TRAIN = "train"
EMPTY_QUESTION = "empty_question"
EMPTY_ANSWER = "empty_answer"
NOT_A_ROW = "not_a_row"
BAD_OPTIONS = "bad_options"
ANSWER_NOT_AN_OPTION = "answer_not_an_option"
WEBINSTRUCT = "WebInstruct-verified"
WEBINSTRUCT_VARIANTS = ("choice", "free")


class _Skip(ValueError):
    """A row that cannot become an item; ``reason`` is the counter it is reported under."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Item:
    """One question as the model will see it, its reference answer and how that answer is graded."""

    question: str
    answer: str
    answer_type: str


class _Row:
    """Column access by the first of several names (the file's columns are checked up front: ``check_columns``)."""

    def __init__(self, dataset: str, row: Mapping[str, Any]):
        self.dataset, self.row = dataset, row

    def get(self, *names: str) -> Any:
        for name in names:
            if name in self.row:
                return self.row[name]
        return None


def _text(value: Any) -> str:
    """A cell as answer/question text: None -> "", numbers/bools/lists as Python prints them, strings stripped."""
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _train(row: _Row, index: int, seed: int) -> Item:
    messages = row.get("prompt")
    messages = messages if isinstance(messages, list | tuple) else []
    users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
    question = _text(users[-1].get("content")) if users else ""
    reward_model = row.get("reward_model")
    truth = reward_model.get("ground_truth") if isinstance(reward_model, Mapping) else None
    return Item(question, _text(truth), "math")


def _mmlu_pro(row: _Row, index: int, seed: int) -> Item:
    options = row.get("options")
    if not isinstance(options, list | tuple) or not all(isinstance(o, str) for o in options):
        raise _Skip(BAD_OPTIONS)  # e.g. null, or a string (which would split into one option per character)
    question, options = _text(row.get("question")), list(options)
    letter = _text(row.get("answer")).upper()
    if question and letter and letter not in OPTION_LETTERS[: len(options)]:
        raise ValueError(f"MMLU-Pro row {index}: answer {letter!r} is not one of its {len(options)} options")
    return Item(format_options(question, options) if question else "", letter, "choice")


def _gpqa(row: _Row, index: int, seed: int) -> Item:
    question = _text(row.get("Question"))
    correct = _text(row.get("Correct Answer"))
    options = [correct] + [_text(row.get(f"Incorrect Answer {i}")) for i in (1, 2, 3)]
    random.Random(f"{seed}-{index}").shuffle(options)
    letter = OPTION_LETTERS[options.index(correct)] if correct else ""
    return Item(format_options(question, options) if question else "", letter, "choice")


def _theoremqa(row: _Row, index: int, seed: int) -> Item:
    kind = _text(row.get("Answer_type")).lower()
    return Item(_text(row.get("Question")), _text(row.get("Answer")), "text" if kind in ("bool", "option") else "math")


_WEBINSTRUCT_TEXT_TYPES = frozenset({"multiple choice", "string", "boolean", "other"})


def _webinstruct(row: _Row, index: int, seed: int) -> Item:
    kind = _text(row.get("answer_type")).lower()
    answer_type = "text" if kind in _WEBINSTRUCT_TEXT_TYPES else "math"
    return Item(_text(row.get("question")), _text(row.get("answer")), answer_type)


_CHOICE_LETTER = re.compile(r"\(?([A-Da-d])\)?\.?")


def _webinstruct_choice(row: _Row, index: int, seed: int) -> Item:
    options = row.get("options")
    if not isinstance(options, list | tuple) or not all(isinstance(o, str) for o in options) or len(options) > 4:
        raise _Skip(BAD_OPTIONS)
    question, answer, options = _text(row.get("question")), _text(row.get("answer")), [o.strip() for o in options]
    found = _CHOICE_LETTER.fullmatch(answer)
    if found and found.group(1).upper() in OPTION_LETTERS[: len(options)]:
        letter = found.group(1).upper()
    elif answer and options.count(answer) == 1:
        letter = OPTION_LETTERS[options.index(answer)]
    elif answer:
        raise _Skip(ANSWER_NOT_AN_OPTION)
    else:
        letter = ""
    if question and len(options) < 2:
        raise _Skip(BAD_OPTIONS)
    return Item(format_options(question, options) if question else "", letter, "choice")


def _math(row: _Row, index: int, seed: int) -> Item:
    return Item(_text(row.get("problem", "question", "Problem")), _text(row.get("answer", "Answer")), "math")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives on the hub by default, the columns it needs and how one of its rows becomes an ``Item``.

    ``columns``: one entry per needed column, each a tuple of the names it may have (the first present is used).
    """

    hub: str
    config: str | None
    split: str
    convert: Callable[[_Row, int, int], Item]
    columns: tuple[tuple[str, ...], ...]
    subset: int | None = None  # the paper's subset size (a seeded selection unless ``full``)

    def describe_columns(self) -> str:
        return ", ".join(" | ".join(names) for names in self.columns)


_MATH_COLUMNS = (("problem", "question", "Problem"), ("answer", "Answer"))
_GPQA_COLUMNS = (("Question",), ("Correct Answer",), *((f"Incorrect Answer {i}",) for i in (1, 2, 3)))
DATASETS: dict[str, DatasetSpec] = {
    TRAIN: DatasetSpec("openbmb/RLPR-Train-Dataset", None, "train", _train, (("prompt",), ("reward_model",))),
    "MMLU-Pro": DatasetSpec(
        "TIGER-Lab/MMLU-Pro", None, "test", _mmlu_pro, (("question",), ("options",), ("answer",)), subset=1000
    ),
    "GPQA-diamond": DatasetSpec("Idavidrein/gpqa", "gpqa_diamond", "train", _gpqa, _GPQA_COLUMNS),
    "TheoremQA": DatasetSpec(
        "TIGER-Lab/TheoremQA", None, "test", _theoremqa, (("Question",), ("Answer",), ("Answer_type",))
    ),
    WEBINSTRUCT: DatasetSpec(
        "TIGER-Lab/WebInstruct-verified", None, "test", _webinstruct_choice, (("question",), ("options",), ("answer",))
    ),
    "MATH-500": DatasetSpec("HuggingFaceH4/MATH-500", None, "test", _math, _MATH_COLUMNS),
    "Minerva": DatasetSpec("math-ai/minervamath", None, "test", _math, _MATH_COLUMNS),
    "AIME2024": DatasetSpec("HuggingFaceH4/aime_2024", None, "train", _math, _MATH_COLUMNS),
}
# The free-form WebInstruct-verified validation set (this project's earlier default).
WEBINSTRUCT_FREE = DatasetSpec(
    "TIGER-Lab/WebInstruct-verified", None, "test", _webinstruct, (("question",), ("answer",), ("answer_type",))
)


def dataset_spec(dataset: str, variant: str | None = None) -> DatasetSpec:
    """The spec of ``dataset``; ``variant`` (WebInstruct-verified only) is ``choice`` (default) or ``free``."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    if variant is None or variant == "choice" and dataset == WEBINSTRUCT:
        return DATASETS[dataset]
    if dataset != WEBINSTRUCT or variant not in WEBINSTRUCT_VARIANTS:
        raise ValueError(f"variant {variant!r} is only for {WEBINSTRUCT} (one of {WEBINSTRUCT_VARIANTS})")
    return WEBINSTRUCT_FREE


def check_columns(dataset: str, rows: Sequence[Any], source: str = "", spec: DatasetSpec | None = None) -> None:
    """Raise ``ValueError`` naming EVERY column ``dataset`` (``spec``, default its own) needs that no row of ``rows``
    has, and the expected ones."""
    present: set[str] = set()
    for row in rows:
        if isinstance(row, Mapping):
            present.update(row)
    spec = spec or DATASETS[dataset]
    missing = [" | ".join(names) for names in spec.columns if not present.intersection(names)]
    if missing:
        where = f" ({source})" if source else ""
        hint = ""
        if spec is DATASETS.get(WEBINSTRUCT):
            hint = f" (the multiple-choice variant; variant 'free', --webinstruct free, reads {WEBINSTRUCT_FREE.hub})"
        raise ValueError(
            f"{dataset} data{where} lacks the columns {missing}; {dataset}{hint} needs: {spec.describe_columns()}; "
            f"the file has: {sorted(present)}"
        )


@dataclass
class PrepReport:
    """What one preparation did: rows read, questions kept, rows written (after repeats), drops by reason."""

    dataset: str
    source: str
    rows_in: int
    questions: int
    rows_out: int
    repeat: int
    dropped: dict[str, int] = field(default_factory=dict)
    variant: str | None = None
    subset: dict[str, Any] | None = None  # {seed, size, of, ids} when a seeded subset was taken


def load_source(source: str, config: str | None = None, split: str = "train") -> list[dict[str, Any]]:
    """Rows of a local ``.parquet``/``.jsonl``/``.json`` file, or of a hub dataset (name, config, split)."""
    path = Path(source).expanduser()
    if path.exists() or path.suffix in (".parquet", ".jsonl", ".json"):
        return read_rows(path)
    from datasets import load_dataset

    return load_dataset(source, config, split=split).to_list()


def prepare_rows(
    dataset: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    fmt: str = "R1",
    repeat: int | None = None,
    max_questions: int | None = None,
    seed: int = 0,
    split: str = "test",
    source: str = "",
    variant: str | None = None,
    full: bool = False,
) -> tuple[list[dict[str, Any]], PrepReport]:
    """verl rows for ``dataset`` (``train`` or a benchmark name) from its raw ``rows``, and the report.

    ``repeat``: rows per question (default 1; the k samples of Avg@k are drawn at validation); ``max_questions``
    keeps a random subset of that many questions (seeded by ``seed``, original order kept); without it a dataset
    with a paper subset (MMLU-Pro: 1,000) gets that subset unless ``full``. ``variant``: see ``dataset_spec``.
    """
    spec = dataset_spec(dataset, variant)
    check_mode(fmt)
    repeat = repeat if repeat is not None else 1
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be a positive int, got {repeat!r}")
    dropped: Counter[str] = Counter()
    kept: list[tuple[int, Mapping[str, Any], Item]] = []
    check_columns(dataset, rows, source, spec)
    for index, raw in enumerate(rows):
        if not isinstance(raw, Mapping):
            dropped[NOT_A_ROW] += 1
            continue
        try:
            item = spec.convert(_Row(dataset, raw), index, seed)
        except _Skip as skip:
            dropped[skip.reason] += 1
            continue
        if not item.question:
            dropped[EMPTY_QUESTION] += 1
        elif not item.answer:
            dropped[EMPTY_ANSWER] += 1
        else:
            kept.append((index, raw, item))
    limit = max_questions if max_questions is not None else (None if full else spec.subset)
    subset = None
    if limit is not None and limit < len(kept):
        chosen = sorted(random.Random(seed).sample(range(len(kept)), limit))
        ids = [kept[i][1].get("question_id", kept[i][0]) for i in chosen]
        subset = {"seed": seed, "size": limit, "of": len(kept), "ids": ids}
        kept = [kept[i] for i in chosen]
    out = []
    for index, raw, item in kept:
        row = _verl_row(dataset, raw, index, item, fmt, split)
        for sample in range(repeat):
            out.append({**row, "extra_info": {**row["extra_info"], "sample": sample}})
    used_variant = ("free" if spec is WEBINSTRUCT_FREE else "choice") if dataset == WEBINSTRUCT else None
    report = PrepReport(dataset, source, len(rows), len(kept), len(out), repeat, dict(dropped), used_variant, subset)
    if dropped:
        logger.warning("%s: dropped %s of %d rows", dataset, dict(dropped), len(rows))
    return out, report


def _verl_row(dataset: str, raw: Mapping[str, Any], index: int, item: Item, fmt: str, split: str) -> dict[str, Any]:
    extra = {"index": index, "split": split, "question": item.question, "answer_type": item.answer_type}
    if dataset == TRAIN:  # keep the training set's own source, ability and metadata
        data_source = _text(raw.get("data_source")) or "RLPR-Train"
        ability = _text(raw.get("ability")) or "general"
        extra = {**(raw.get("extra_info") or {}), **extra}
    else:
        data_source, ability = dataset, BENCHMARKS[dataset].domain
    return {
        "data_source": data_source,
        "prompt": build_r1_messages(item.question, fmt, multiple_choice=item.answer_type == "choice"),
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": item.answer},
        "extra_info": extra,
    }


def default_file_name(dataset: str) -> str:
    """``<name>_Avg<k>.parquet`` for a benchmark (the paper's naming), ``rlpr_train.parquet`` for training."""
    return "rlpr_train.parquet" if dataset == TRAIN else f"{dataset}_Avg{BENCHMARKS[dataset].k}.parquet"


def prepare_file(
    dataset: str,
    output: str | Path,
    *,
    source: str | None = None,
    config: str | None = None,
    split: str | None = None,
    fmt: str = "R1",
    repeat: int | None = None,
    max_questions: int | None = None,
    seed: int = 0,
    variant: str | None = None,
    full: bool = False,
) -> PrepReport:
    """Read ``dataset`` (from ``source``, default its hub name), write verl parquet to ``output``, return the report.

    The report is also written next to the output as ``<output>.report.json``.
    """
    spec = dataset_spec(dataset, variant)
    check_output(output)
    source = source or spec.hub
    split = split or spec.split
    rows = load_source(source, config if config is not None else spec.config, split)
    out, report = prepare_rows(
        dataset,
        rows,
        fmt=fmt,
        repeat=repeat,
        max_questions=max_questions,
        seed=seed,
        split=split,
        source=source,
        variant=variant,
        full=full,
    )
    if not out:
        raise ValueError(f"{dataset} from {source}: no usable rows (dropped {report.dropped} of {report.rows_in})")
    output = write_rows(out, output)
    write_text_atomically(Path(f"{output}.report.json"), json.dumps(asdict(report), indent=2) + "\n")
    return report


def check_output(output: str | Path) -> Path:
    """``output`` must be a ``.parquet`` path in a folder this process can write: checked before any work is done."""
    output = Path(output).expanduser()
    if output.suffix != ".parquet":
        raise ValueError(f"output {output} must be a .parquet file")
    if output.is_dir():
        raise ValueError(f"output {output} is a directory, expected a .parquet file")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output.parent):
            pass
    except OSError as err:
        raise ValueError(f"cannot write the output {output}: {err}") from err
    return output
