"""The backend calls of a run: every pending judgement asked in chunks, each stored as soon as it arrives."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.files import repair_jsonl_tail
from harness.generation import Completion, GenerationBackend, GenerationRequest, Sampling, request_seed
from rm_r1.evaluation.benchmarks import Comparison, replace_surrogates
from rm_r1.evaluation.meta_rm import MetaScorer, build_meta_messages
from rm_r1.evaluation.modes import JudgeMode
from rm_r1.evaluation.plan import Job, pending_jobs
from rm_r1.evaluation.store import append_judgement, read_judgements

log = logging.getLogger(__name__)

CHUNK = 1024  # judgements handed to the backend at a time (bounds memory; streams results between chunks)


def judgement_record(
    job: Job, completion: Completion, mode: JudgeMode, verdict_rule: str, meta: dict
) -> dict[str, Any]:
    """The stored line of one judgement: the job, its reading, ``verdict_rule``, the response (lone surrogates replaced
    and counted in ``surrogates_replaced``) or, for a refused request, None and the ``error``, and the pair's
    ``meta``."""
    text, replaced = (None, 0) if completion.text is None else replace_surrogates(completion.text)
    record = {"pair_id": job.pair_id, "sample": job.sample, "swap": job.swap, **mode.read(text, job.swap)}
    record["verdict_rule"] = verdict_rule
    record["response"] = text
    if text is None:
        record["error"] = replace_surrogates(str(completion.error))[0]
    elif completion.truncated is not None:
        record["truncated"] = completion.truncated
    if replaced:
        record["surrogates_replaced"] = replaced
    record["meta"] = meta
    return record


def run_judge(
    backend: GenerationBackend,
    mode: JudgeMode,
    comparisons: Sequence[Comparison],
    jobs: Sequence[Job],
    sampling: Sampling,
    results_path: Path,
    *,
    verdict_rule: str,
    seed: int,
) -> int:
    """Judge every job not yet in ``results_path``, appending one json line per judgement as it arrives
    (``judgement_record``; ``verdict_rule`` is recorded with it). Sampling of job (pair, sample) is seeded with
    ``request_seed(seed, pair, sample)``. A permanently refused request is stored as a failed judgement.

    Returns the number of judgements that failed for a reason a retry may fix (not written: a rerun retries them).
    """
    from tqdm import tqdm

    by_id = {c.pair_id: c for c in comparisons}
    repair_jsonl_tail(results_path, "it will be judged again")
    pending = pending_jobs(jobs, read_judgements(results_path))
    left = Counter(job.pair_id for job in pending)
    log.info(
        "%d judgements to make (%d stored already) for %d pairs", len(pending), len(jobs) - len(pending), len(left)
    )
    failed = 0
    bar = tqdm(total=len(left), unit="pair", desc="judging", dynamic_ncols=True)
    with results_path.open("a", encoding="utf-8") as out:
        for start in range(0, len(pending), CHUNK):
            chunk = pending[start : start + CHUNK]
            requests = [
                GenerationRequest(mode.messages(by_id[j.pair_id], j.swap), request_seed(seed, j.pair_id, j.sample))
                for j in chunk
            ]
            for completion in backend.generate(requests, sampling):
                job = chunk[completion.index]
                if completion.text is None and not completion.permanent:
                    failed += 1
                    log.warning("judgement %s #%d failed: %s", job.pair_id, job.sample, completion.error)
                    continue
                if completion.text is None:
                    log.error(
                        "judgement %s #%d refused by the server, stored as failed (no verdict): %s",
                        job.pair_id,
                        job.sample,
                        completion.error,
                    )
                append_judgement(out, judgement_record(job, completion, mode, verdict_rule, by_id[job.pair_id].meta))
                left[job.pair_id] -= 1
                if left[job.pair_id] == 0:
                    bar.update(1)
    bar.close()
    return failed


def run_meta(
    scorer: MetaScorer,
    mode: JudgeMode,
    comparisons: Sequence[Comparison],
    judgements: dict[tuple[str, int], dict[str, Any]],
    meta_path: Path,
    *,
    seed: int,
) -> int:
    """Meta-score every judgement not yet in ``meta_path`` (one json line each: pair_id, sample, ``meta_score``,
    the meta response, or the error of a refused request), as it arrives. A judgement without a response gets
    ``meta_score`` None without asking. Returns the number that failed for a reason a retry may fix (not written)."""
    by_id = {c.pair_id: c for c in comparisons}
    repair_jsonl_tail(meta_path, "it will be judged again")
    stored = read_judgements(meta_path)
    pending = [key for key in sorted(judgements) if key not in stored]
    log.info("%d judgements to meta-score (%d stored already)", len(pending), len(judgements) - len(pending))
    failed = 0
    with meta_path.open("a", encoding="utf-8") as out:
        for key in [k for k in pending if judgements[k]["response"] is None]:
            append_judgement(out, {"pair_id": key[0], "sample": key[1], "meta_score": None, "response": None})
        asked = [k for k in pending if judgements[k]["response"] is not None]
        for start in range(0, len(asked), CHUNK):
            chunk = asked[start : start + CHUNK]
            requests = []
            for pair_id, sample in chunk:
                record = judgements[(pair_id, sample)]
                task = mode.messages(by_id[pair_id], record["swap"])
                requests.append(
                    GenerationRequest(
                        build_meta_messages(task, record["response"]), request_seed(seed, "meta", pair_id, sample)
                    )
                )
            for rating in scorer.score(requests):
                pair_id, sample = chunk[rating.index]
                if rating.error is not None and not rating.permanent:
                    failed += 1
                    log.warning("meta score of %s #%d failed: %s", pair_id, sample, rating.error)
                    continue
                record = {"pair_id": pair_id, "sample": sample, "meta_score": rating.score, "response": rating.response}
                if rating.error is not None:
                    record["error"] = rating.error
                append_judgement(out, record)
    return failed
