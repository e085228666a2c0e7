"""The benchmark registry and the Avg@k table (``rlpr.evaluation.benchmarks``) against the paper's numbers."""

from __future__ import annotations

import pytest

from rlpr.evaluation.benchmarks import BENCHMARKS, avg_at_k_metrics, find_benchmark, split_avg_suffix
from rlpr.training.val_samples import samples_per_row

# The paper's Qwen2.5-7B RLPR row (docs/rlpr.md#paper-results) in percent, with its published general/overall averages.
PAPER = {
    "MMLU-Pro": 56.0,
    "GPQA-diamond": 37.6,
    "TheoremQA": 55.4,
    "WebInstruct-verified": 75.5,
    "MATH-500": 78.0,
    "Minerva": 56.5,
    "AIME2024": 16.3,
}


def test_avg_at_k_reproduces_the_papers_averages():
    sources, accs = [], []
    for name, pct in PAPER.items():
        n_right = round(pct * 10)  # 1000 samples per benchmark
        sources += [name] * 1000
        accs += [1.0] * n_right + [0.0] * (1000 - n_right)
    m = avg_at_k_metrics(sources, accs)
    assert m["val/MMLU-Pro/avg@2"] == pytest.approx(0.560)
    assert m["val/AIME2024/avg@16"] == pytest.approx(0.163)
    assert round(100 * m["val/general/avg"], 1) == 56.1
    assert round(100 * m["val/overall/avg"], 1) == 53.6
    assert m["val/math/avg"] == pytest.approx((0.780 + 0.565 + 0.163) / 3)
    assert len(m) == 7 + 3


def test_avg_at_k_is_unweighted_across_benchmarks_and_skips_unknown_sources_in_averages():
    m = avg_at_k_metrics(
        ["MATH-500", "MATH-500", "MATH-500", "MATH-500", "Minerva", "extra"], [1, 1, 1, 0, 0, 1], prefix="test"
    )
    assert m == {
        "test/MATH-500/avg@2": 0.75,
        "test/Minerva/avg@4": 0.0,
        "test/extra/acc": 1.0,
        "test/math/avg": 0.375,
        "test/overall/avg": 0.375,
    }


def test_avg_at_k_table_matches_the_paper_setup():
    assert {b.name: b.k for b in BENCHMARKS.values()} == {
        "MMLU-Pro": 2,
        "GPQA-diamond": 4,
        "TheoremQA": 2,
        "WebInstruct-verified": 2,
        "MATH-500": 2,
        "Minerva": 4,
        "AIME2024": 16,
    }
    assert {b.name for b in BENCHMARKS.values() if b.domain == "general"} == {
        "MMLU-Pro",
        "GPQA-diamond",
        "TheoremQA",
        "WebInstruct-verified",
    }


PAPER_FILES = {  # the paper's evaluation files -> (benchmark, k)
    "MMLUPro-1000_Avg2": ("MMLU-Pro", 2),
    "gpqa_diamond_Avg4": ("GPQA-diamond", 4),
    "Math-500_Avg2": ("MATH-500", 2),
    "WebInstruct-verified-val_Avg2": ("WebInstruct-verified", 2),
    "TheoremQA_Avg2": ("TheoremQA", 2),
    "Minerva_Avg4": ("Minerva", 4),
    "AIME2024_Avg16": ("AIME2024", 16),
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        *PAPER_FILES.items(),
        ("AIME2024_Avg8", ("AIME2024", 8)),
        ("GPQA-diamond", ("GPQA-diamond", 4)),
        ("mmlu-pro", ("MMLU-Pro", 2)),
    ],
)
def test_find_benchmark_reads_both_namings_and_k(source, expected):
    bench = find_benchmark(source)
    assert (bench.name, bench.k) == expected


def test_avg_at_k_under_the_papers_file_names():
    sources, accs = [], []
    for name, pct in PAPER.items():
        paper_name = next(f for f, (bench, _) in PAPER_FILES.items() if bench == name)
        sources += [paper_name] * 1000
        accs += [1.0] * round(pct * 10) + [0.0] * (1000 - round(pct * 10))
    m = avg_at_k_metrics(sources, accs)
    assert m == avg_at_k_metrics([find_benchmark(s).name for s in sources], accs)
    assert round(100 * m["val/general/avg"], 1) == 56.1 and round(100 * m["val/overall/avg"], 1) == 53.6
    assert avg_at_k_metrics(["AIME2024_Avg8"], [1.0]) == {
        "val/AIME2024/avg@8": 1.0,
        "val/math/avg": 1.0,
        "val/overall/avg": 1.0,
    }
    with pytest.raises(ValueError, match="'MMLU-Pro' and 'MMLUPro-1000_Avg2' are both MMLU-Pro"):
        avg_at_k_metrics(["MMLUPro-1000_Avg2", "MMLU-Pro"], [1.0, 0.0])


def test_avg_at_k_rejects_bad_input():
    with pytest.raises(ValueError, match="length"):
        avg_at_k_metrics(["MATH-500"], [1.0, 0.0])
    with pytest.raises(ValueError, match="MATH-500"):
        avg_at_k_metrics(["MATH-500"], [float("nan")])
    assert avg_at_k_metrics([], []) == {}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpqa_diamond_Avg4", ("gpqa_diamond", 4)),
        ("Math-500_avg2", ("Math-500", 2)),
        ("AIME2024_AVG16", ("AIME2024", 16)),
        ("x_Avg2_Avg4", ("x_Avg2", 4)),  # the last suffix is k
        ("MATH-500", ("MATH-500", None)),
        ("x_Avg", ("x_Avg", None)),
        ("x_Avg2b", ("x_Avg2b", None)),
        ("x_Avg2.parquet", ("x_Avg2.parquet", None)),  # a file's stem is read, not its name
    ],
)
def test_split_avg_suffix(name, expected):
    assert split_avg_suffix(name, "test") == expected


def test_a_k_below_one_is_an_error_naming_the_source_or_the_file():
    with pytest.raises(ValueError, match="data source 'MATH-500_Avg0': _Avg0 must name a positive number"):
        find_benchmark("MATH-500_Avg0")
    with pytest.raises(ValueError, match="validation file '/d/x_avg0.parquet': _Avg0 must name a positive number"):
        samples_per_row("/d/x_avg0.parquet")


def test_a_source_and_its_file_read_the_same_k():
    for stem, (name, k) in PAPER_FILES.items():
        assert samples_per_row(f"/data/{stem}.parquet") == find_benchmark(stem).k == k
        assert find_benchmark(stem).name == name
