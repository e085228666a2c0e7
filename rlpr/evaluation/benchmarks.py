"""The paper's benchmark suite (docs/rlpr.md#evaluation): names, the k of Avg@k, domains, and the Avg@k table.

* ``BENCHMARKS``: each benchmark's canonical name, k, domain, default answer type and other names;
  ``find_benchmark`` recognises a ``data_source`` (or file stem) in this project's naming or the paper's
  (``MMLUPro-1000_Avg2``, ``gpqa_diamond_Avg4``, ...), with k from an ``_Avg<k>`` suffix (``split_avg_suffix``, the
  one reader of that suffix: validation files take their k from it too, ``rlpr.training.val_samples``).
* ``avg_at_k_metrics`` turns per-sample accuracies into the paper's table: Avg@k per benchmark (each question is
  sampled k times, so Avg@k is the mean accuracy over a source's samples) and the unweighted means over the
  general-domain benchmarks, the math benchmarks, and all seven.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

DOMAINS = ("general", "math")


@dataclass(frozen=True)
class Benchmark:
    """One evaluation set: its canonical name, the k of its Avg@k, its domain, default answer type, and the other
    names its ``data_source`` may have (the paper's file names, e.g. ``MMLUPro-1000``)."""

    name: str
    k: int
    domain: str
    answer_type: str
    aliases: tuple[str, ...] = ()


# The paper's evaluation suite (docs/rlpr.md#evaluation). TheoremQA counts as general domain in the paper's averages.
# WebInstruct-verified is multiple choice (A-D) in the paper's evaluation; the free-form variant's rows say otherwise.
BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("MMLU-Pro", 2, "general", "choice", ("MMLUPro-1000", "MMLUPro", "MMLU_Pro")),
        Benchmark("GPQA-diamond", 4, "general", "choice", ("gpqa_diamond", "GPQA")),
        Benchmark("TheoremQA", 2, "general", "math"),
        Benchmark("WebInstruct-verified", 2, "general", "choice", ("WebInstruct-verified-val", "WebInstruct")),
        Benchmark("MATH-500", 2, "math", "math", ("Math500",)),
        Benchmark("Minerva", 4, "math", "math", ("minervamath",)),
        Benchmark("AIME2024", 16, "math", "math", ("AIME24", "aime_2024")),
    )
}
_BENCHMARK_NAMES = {alias.lower(): b for b in BENCHMARKS.values() for alias in (b.name, *b.aliases)}
_AVG_SUFFIX = re.compile(r"(.*?)_Avg(\d+)", re.IGNORECASE)


def split_avg_suffix(name: str, what: str) -> tuple[str, int | None]:
    """(``name`` without its ``_Avg<k>`` suffix, k), or (``name``, None) when it has none. The suffix is read in any
    case (``_avg2``, ``_AVG16``); a k below 1 is a ``ValueError`` naming ``what`` (the data source or file)."""
    found = _AVG_SUFFIX.fullmatch(name)
    if found is None:
        return name, None
    k = int(found.group(2))
    if k < 1:
        raise ValueError(f"{what}: _Avg{k} must name a positive number of samples per question")
    return found.group(1), k


def find_benchmark(data_source: str) -> Benchmark | None:
    """The benchmark a ``data_source`` (or file stem) names, with k from its ``_Avg<k>`` suffix when it has one.

    Names are matched without regard to case, in this project's naming (``MMLU-Pro``, ``GPQA-diamond_Avg4``) and the
    paper's (``MMLUPro-1000_Avg2``, ``gpqa_diamond_Avg4``, ``Math-500_Avg2``, ``WebInstruct-verified-val_Avg2``).
    None for any other name.
    """
    name, k = split_avg_suffix(str(data_source), f"data source {data_source!r}")
    bench = _BENCHMARK_NAMES.get(name.lower())
    return replace(bench, k=k) if bench is not None and k is not None else bench


def known_source_names() -> str:
    """Every benchmark name ``find_benchmark`` recognises (each may end in ``_Avg<k>``), for error messages."""
    return ", ".join(alias for b in BENCHMARKS.values() for alias in (b.name, *b.aliases))


def avg_at_k_metrics(
    data_sources: Sequence[str],
    accs: Sequence[float],
    prefix: str = "val",
    question_ids: Sequence[Hashable] | None = None,
) -> dict[str, float]:
    """Avg@k per data source and the paper's averages, as fractions in [0, 1].

    Keys: ``{prefix}/{benchmark}/avg@{k}`` for a source that names a benchmark (``find_benchmark``: the canonical
    name), ``{prefix}/{source}/acc`` for any other source, and ``{prefix}/general/avg``, ``{prefix}/math/avg``,
    ``{prefix}/overall/avg``: unweighted means of the per-benchmark Avg@k over the general-domain benchmarks
    (MMLU-Pro, GPQA-diamond, TheoremQA, WebInstruct-verified), the math benchmarks (MATH-500, Minerva, AIME2024) and
    all of them. Avg@k is the mean accuracy over all samples of the source.

    k: with ``question_ids`` (one per sample; the samples of one question share it), the number of samples each
    question of the source has, the same for all of them (else an error naming the source); without, the source's
    ``_Avg<k>`` suffix, else the benchmark table's k. Sources outside the table are not in the averages; an average is
    emitted only if at least one of its benchmarks is present. Two differently named sources of one benchmark (say
    ``MMLU-Pro`` and ``MMLUPro-1000_Avg2``) are an error: they would be averaged together.
    """
    if len(data_sources) != len(accs):
        raise ValueError(f"data_sources ({len(data_sources)}) and accs ({len(accs)}) differ in length")
    if question_ids is not None and len(question_ids) != len(accs):
        raise ValueError(f"question_ids ({len(question_ids)}) and accs ({len(accs)}) differ in length")
    per_source: dict[str, list[float]] = defaultdict(list)
    questions: dict[str, Counter] = defaultdict(Counter)
    for i, (source, acc) in enumerate(zip(data_sources, accs, strict=True)):
        acc = float(acc)
        if not math.isfinite(acc):
            raise ValueError(f"non-finite accuracy {acc} for data source {source!r}")
        per_source[str(source)].append(acc)
        if question_ids is not None:
            questions[str(source)][question_ids[i]] += 1
    metrics: dict[str, float] = {}
    by_domain: dict[str, list[float]] = defaultdict(list)
    seen: dict[str, str] = {}
    for source in sorted(per_source):
        mean = sum(per_source[source]) / len(per_source[source])
        bench = find_benchmark(source)
        if bench is None:
            metrics[f"{prefix}/{source}/acc"] = mean
            continue
        if bench.name in seen:
            raise ValueError(
                f"data sources {seen[bench.name]!r} and {source!r} are both {bench.name}; "
                "validate one file per benchmark"
            )
        seen[bench.name] = source
        k = bench.k
        if question_ids is not None:
            counts = set(questions[source].values())
            if len(counts) != 1:
                raise ValueError(
                    f"data source {source!r}: its questions have different numbers of samples {sorted(counts)}; "
                    "Avg@k needs the same k for every question"
                )
            k = counts.pop()
        metrics[f"{prefix}/{bench.name}/avg@{k}"] = mean
        by_domain[bench.domain].append(mean)
        by_domain["overall"].append(mean)
    for group in (*DOMAINS, "overall"):
        if by_domain[group]:
            metrics[f"{prefix}/{group}/avg"] = sum(by_domain[group]) / len(by_domain[group])
    return metrics
