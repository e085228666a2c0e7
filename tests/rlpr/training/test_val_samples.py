"""Avg@k validation: k samples per question from the file name, next to a second implementation of the official
trainer's rule (issue 19, item 3).

The official trainer, for each validation file, reads n from the ``Avg<n>`` in the file's name (1 without it),
generates every row n times, and reports the mean accuracy over all samples of each data source. Here the files are
small local parquets with the real columns (written by the project's preparation, one row per question, and one in the
paper's naming), read by verl's own ``RLHFDataset``, collated by verl's ``collate_fn``, and the metrics come from
this project's ``avg_at_k_metrics`` and verl's ``process_validation_metrics`` on the uids verl would keep.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo.metric_utils import process_validation_metrics
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

from harness.rows import read_rows, write_rows
from rlpr.data.prep import load_source, prepare_rows
from rlpr.evaluation.benchmarks import avg_at_k_metrics
from rlpr.training.val_samples import build_val_dataset, samples_per_row

DATA = Path(__file__).parents[1] / "data"


def accuracy(question: str, sample: int) -> float:
    """A fixed grade per (question, sample): right on samples whose index has the question's length parity."""
    return float(sample % 2 == len(question) % 2 or sample % 3 == 2)


def official_avg(files: list[Path]) -> dict[str, float]:
    """The official rule, written from its behaviour: n from the file name, every row n times, mean per source."""
    per_source: dict[str, list[float]] = {}
    for path in files:
        found = re.search(r"Avg(\d+)", path.name, re.IGNORECASE)
        n = int(found.group(1)) if found else 1
        for row in read_rows(path):
            question = row["prompt"][-1]["content"]
            per_source.setdefault(row["data_source"], []).extend(accuracy(question, s) for s in range(n))
    return {source: sum(a) / len(a) for source, a in per_source.items()}


@pytest.fixture
def val_files(tmp_path):
    gpqa, _ = prepare_rows("GPQA-diamond", load_source(str(DATA / "gpqa_diamond.parquet")))
    math, _ = prepare_rows("MATH-500", load_source(str(DATA / "math500.jsonl")))
    aime, _ = prepare_rows("AIME2024", load_source(str(DATA / "aime2024.parquet")))
    paper = [{**row, "data_source": "Math-500_Avg2"} for row in math]
    return [
        write_rows(gpqa, tmp_path / "GPQA-diamond_Avg4.parquet"),
        write_rows(paper, tmp_path / "Math-500_avg2.parquet"),  # the paper's naming, another case
        write_rows(aime, tmp_path / "aime_plain.parquet"),  # no _Avg<k>: one sample per row
    ]


def _dataset(files, small_tokenizer):
    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 4096, "filter_overlong_prompts": False})
    return RLHFDataset([str(f) for f in files], small_tokenizer, config)


def test_k_comes_from_the_file_name_in_any_case():
    names = ["gpqa_diamond_Avg4.parquet", "/d/MMLU-Pro_avg2.parquet", "AIME2024_AVG16.jsonl", "sample.jsonl", "x.json"]
    assert [samples_per_row(n) for n in names] == [4, 2, 16, 1, 1]


def test_validation_samples_k_per_question_as_the_official_trainer(val_files, small_tokenizer):
    base = _dataset(val_files, small_tokenizer)
    dataset = build_val_dataset(base, val_files)
    rows = {str(f): read_rows(f) for f in val_files}
    assert len(dataset) == 4 * len(rows[str(val_files[0])]) + 2 * len(rows[str(val_files[1])]) + len(
        rows[str(val_files[2])]
    )
    batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
    assert "uid" in batch.non_tensor_batch  # verl's _validate keeps these uids (it draws new ones only if absent)
    sources = [str(s) for s in batch.non_tensor_batch["data_source"]]
    uids = list(batch.non_tensor_batch["uid"])
    seen: dict[str, int] = {}
    accs = []
    for uid, messages in zip(uids, batch.non_tensor_batch["raw_prompt"]):
        accs.append(accuracy(messages[-1]["content"], seen.get(uid, 0)))
        seen[uid] = seen.get(uid, 0) + 1
    expected = official_avg(val_files)
    metrics = avg_at_k_metrics(sources, accs, question_ids=uids)
    assert metrics["val/GPQA-diamond/avg@4"] == pytest.approx(expected["GPQA-diamond"], abs=1e-12)
    assert metrics["val/MATH-500/avg@2"] == pytest.approx(expected["Math-500_Avg2"], abs=1e-12)
    assert metrics["val/AIME2024/avg@1"] == pytest.approx(expected["AIME2024"], abs=1e-12)
    verl_metrics = process_validation_metrics(sources, uids, {"acc": accs})
    assert verl_metrics["GPQA-diamond"]["acc"]["mean@4"] == pytest.approx(expected["GPQA-diamond"], abs=1e-12)
    assert verl_metrics["Math-500_Avg2"]["acc"]["mean@2"] == pytest.approx(expected["Math-500_Avg2"], abs=1e-12)


def test_a_file_whose_rows_are_already_repeated_is_refused(tmp_path, small_tokenizer):
    rows, _ = prepare_rows("MATH-500", load_source(str(DATA / "math500.jsonl")), repeat=2)
    path = write_rows(rows, tmp_path / "MATH-500_Avg2.parquet")
    base = _dataset([path], small_tokenizer)
    with pytest.raises(ValueError, match=r"MATH-500_Avg2\.parquet.*look repeated already"):
        build_val_dataset(base, [path])
    # with sampling from the file name off, each row once; the copies share a uid, so k is still 2
    dataset = build_val_dataset(base, [path], from_file_name=False)
    items = [dataset[i] for i in range(len(dataset))]
    assert len(items) == len(rows)
    metrics = avg_at_k_metrics(
        [r["data_source"] for r in items], [1.0] * len(items), question_ids=[r["uid"] for r in items]
    )
    assert list(metrics)[0] == "val/MATH-500/avg@2"


def test_one_source_in_files_of_different_k_is_an_error(tmp_path, small_tokenizer):
    rows, _ = prepare_rows("MATH-500", load_source(str(DATA / "math500.jsonl")))
    first = write_rows(rows[:1], tmp_path / "a_Avg2.parquet")
    second = write_rows(rows[1:], tmp_path / "b_Avg4.parquet")
    with pytest.raises(ValueError, match="data source 'MATH-500' is in validation files"):
        build_val_dataset(_dataset([first, second], small_tokenizer), [first, second])


def test_unequal_samples_per_question_are_not_called_avg_at_k():
    with pytest.raises(ValueError, match="different numbers of samples"):
        avg_at_k_metrics(["MATH-500"] * 3, [1.0, 0.0, 1.0], question_ids=["q1", "q1", "q2"])
