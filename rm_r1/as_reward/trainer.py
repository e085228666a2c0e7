"""The judge's work on each TRAINING step as step metrics (``judge/*``), for the judge-as-reward recipes.

verl 0.9.1's classic trainer puts the reward extra keys of training samples (``rm_r1.as_reward.reward.EXTRA_KEYS``) into
``batch.non_tensor_batch`` (verl/trainer/ppo/ray_trainer.py:1635-1636) and into the rollout dump
(ray_trainer.py:1721-1724, 514-546), but into no step metric; validation alone logs their means
(``val-aux/<source>/judge_*``). ``JudgeRewardTrainer`` adds ``judge_step_metrics`` of the training batch to the
step, logs one line per failure kind with an example, and stops training (``JudgeFailure``) when the judge keeps
failing: more than ``reward_kwargs.max_failed_frac`` of a step's calls on ``reward_kwargs.max_failed_steps``
consecutive training steps. Validation counts its failures by kind (``val-aux/judge/fail/<kind>``) and logs them, but
never stops.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from verl import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer

from rm_r1.as_reward.reward import DETAIL_KEY, EXTRA_KEYS, JudgeSettings

logger = logging.getLogger(__name__)


class JudgeFailure(RuntimeError):
    """The judge failed too often for training to go on (the message names it, the fraction and the failure)."""


@dataclass
class JudgeDetails:
    """The ``DETAIL_KEY`` strings of a batch, merged: failures by kind (count, first example), the endpoints, the
    latencies of the calls sent, and the earliest start and latest end of the samples' judging."""

    failures: dict[str, tuple[int, str]] = field(default_factory=dict)
    endpoints: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    start: float = float("inf")
    end: float = float("-inf")

    @classmethod
    def read(cls, column: Sequence[Any]) -> JudgeDetails:
        merged = cls()
        for i, text in enumerate(column):
            try:
                one = json.loads(text)
                failures = {kind: (int(n), str(example)) for kind, (n, example) in one["failures"].items()}
                latencies = [float(x) for x in one["latencies"]]
                start, end = (float(x) for x in one["span"])
                endpoint = str(one["endpoint"])
            except (TypeError, ValueError, KeyError) as err:
                raise ValueError(
                    f"batch key {DETAIL_KEY!r} of sample {i} is not rm_r1.as_reward.reward's: {err}"
                ) from err
            for kind, (n, example) in failures.items():
                count, first = merged.failures.get(kind, (0, example))
                merged.failures[kind] = (count + n, first)
            merged.endpoints[endpoint] += 1
            merged.latencies.extend(latencies)
            merged.start, merged.end = min(merged.start, start), max(merged.end, end)
        return merged

    def metrics(self, prefix: str = "judge") -> dict[str, float]:
        """``<prefix>/fail/<kind>`` counts; and, over the calls sent, ``latency_p50`` / ``latency_p95`` (seconds,
        numpy's linear percentiles) and ``requests_per_s`` = calls sent / (latest end - earliest start)."""
        out = {f"{prefix}/fail/{kind}": float(n) for kind, (n, _) in sorted(self.failures.items())}
        if self.latencies:
            p50, p95 = np.percentile(np.asarray(self.latencies), [50, 95])
            out[f"{prefix}/latency_p50"], out[f"{prefix}/latency_p95"] = float(p50), float(p95)
            if self.end > self.start:
                out[f"{prefix}/requests_per_s"] = len(self.latencies) / (self.end - self.start)
        return out

    def log(self, where: str) -> None:
        """One warning per failure kind, with its count and first example."""
        endpoints = ", ".join(sorted(self.endpoints))
        for kind, (n, example) in sorted(self.failures.items(), key=lambda item: -item[1][0]):
            logger.warning("judge %s: %d calls to %s failed with %s, e.g.: %s", where, n, endpoints, kind, example)

    def most_frequent(self) -> tuple[str, int, str] | None:
        if not self.failures:
            return None
        kind, (n, example) = max(self.failures.items(), key=lambda item: item[1][0])
        return kind, n, example


def judge_step_metrics(non_tensor_batch: Mapping[str, Any]) -> dict[str, float]:
    """The ``judge_*`` keys of one training batch's samples (``rm_r1.as_reward.reward.compute_score``), reduced to:

    * ``judge/calls_total`` = Σ calls, ``judge/calls_per_sample`` = Σ calls / n (n samples in the batch)
    * ``judge/failed_total`` = Σ failed calls (HTTP failures after the retries, outputs without a verdict or score),
      ``judge/failed_frac`` = Σ failed / Σ calls
    * ``judge/agreement_mean``: mean ``judge_agreement`` over the samples with at least one vote (a sample without
      one has no agreement to speak of; 0 when no sample voted, which ``judge/neutral_frac`` = 1 then says)
    * ``judge/truncated_total`` = the number of samples whose reply was cut to the judge's budget
    * ``judge/neutral_frac`` = the share of samples without any vote (rewarded ``neutral_reward``)

    * ``judge/cache_hits`` = the calls answered by an identical request's answer (sent once)
    * with ``DETAIL_KEY``: ``judge/fail/<kind>``, ``judge/latency_p50``, ``judge/latency_p95``, ``judge/requests_per_s``
      (``JudgeDetails.metrics``)

    A batch without judge keys (another reward) gives ``{}``; one with only some of them, or with values that are not
    finite numbers, is refused naming the key.
    """
    present = [key for key in EXTRA_KEYS if key in non_tensor_batch]
    if not present:
        return {}
    missing = [key for key in EXTRA_KEYS if key not in non_tensor_batch]
    if missing:
        raise ValueError(
            f"the batch has judge keys {present} but not {missing}; rm_r1.as_reward.reward returns them all"
        )
    values: dict[str, np.ndarray] = {}
    for key in EXTRA_KEYS:
        try:
            column = np.asarray(non_tensor_batch[key], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise ValueError(f"batch key {key!r} must hold one number per sample: {err}") from err
        if not np.isfinite(column).all():
            raise ValueError(f"batch key {key!r} holds a value that is not a finite number: {column.tolist()}")
        values[key] = column
    sizes = {key: len(column) for key, column in values.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"the judge keys must hold one value per sample each, got lengths {sizes}")
    n = len(values["judge_calls"])
    if n == 0:
        return {}
    calls, failed = values["judge_calls"].sum(), values["judge_failed"].sum()
    voted = values["judge_votes"] > 0
    return {
        "judge/calls_total": float(calls),
        "judge/calls_per_sample": float(calls / n),
        "judge/failed_total": float(failed),
        "judge/failed_frac": float(failed / calls) if calls else 0.0,
        "judge/agreement_mean": float(values["judge_agreement"][voted].mean()) if voted.any() else 0.0,
        "judge/truncated_total": float(values["judge_truncated"].sum()),
        "judge/neutral_frac": float(values["judge_neutral"].mean()),
        "judge/cache_hits": float(values["judge_cache_hits"].sum()),
        **(JudgeDetails.read(non_tensor_batch[DETAIL_KEY]).metrics() if DETAIL_KEY in non_tensor_batch else {}),
    }


class FailFast:
    """Counts consecutive training steps on which more than ``max_failed_frac`` of the judge calls failed, and raises
    ``JudgeFailure`` on the ``max_failed_steps``-th."""

    def __init__(self, max_failed_frac: float, max_failed_steps: int):
        self.max_failed_frac, self.max_failed_steps = max_failed_frac, max_failed_steps
        self.bad_steps = 0

    def observe(self, metrics: Mapping[str, float], details: JudgeDetails | None) -> None:
        frac = metrics.get("judge/failed_frac")
        if frac is None:
            return
        self.bad_steps = self.bad_steps + 1 if frac > self.max_failed_frac else 0
        if self.bad_steps < self.max_failed_steps:
            return
        endpoints = ", ".join(sorted(details.endpoints)) if details else "the judge"
        worst = details.most_frequent() if details else None
        failure = f"; most frequent failure: {worst[0]} ({worst[1]} calls), e.g.: {worst[2]}" if worst else ""
        raise JudgeFailure(
            f"stopping: the judge at {endpoints} failed {frac:.0%} of its calls "
            f"({metrics['judge/failed_total']:.0f} of {metrics['judge/calls_total']:.0f}) on the last step, and more "
            f"than {self.max_failed_frac:.0%} on {self.bad_steps} training steps in a row "
            f"(reward_kwargs.max_failed_frac={self.max_failed_frac}, max_failed_steps={self.max_failed_steps})"
            f"{failure}"
        )


class JudgeRewardTrainer(RayPPOTrainer):
    """verl's classic ``RayPPOTrainer`` that logs ``judge_step_metrics`` of every training step.

    The hook is ``_update_actor(batch)``: ``fit()`` calls it with the step's whole batch after the reward extra keys
    are in ``batch.non_tensor_batch`` (ray_trainer.py:1635-1636, 1690), reduces the returned
    ``meta_info["metrics"]`` with ``reduce_metrics`` into the step's metrics (ray_trainer.py:1718-1719) and logs those
    with ``logger.log(data=metrics, step=...)`` (ray_trainer.py:1802). ``fit()`` has no other hook that reaches the
    step's metrics with the batch: ``metrics`` and the logger are locals of ``fit()`` (ray_trainer.py:1419), and
    ``compute_data_metrics`` is a module function (ray_trainer.py:1772). ``reduce_metrics`` takes ``np.mean`` of a
    value unless its key contains "max" or "min" (verl/utils/metric/utils.py:49-57): the mean of one float is that
    float, and no ``judge/*`` name holds either word. Steps without an actor update (``trainer.critic_warmup`` > step,
    ray_trainer.py:1684-1686) log no judge metrics; GRPO has no critic to warm up.

    Before the actor update the step's judge failures are logged (``JudgeDetails.log``) and ``FailFast`` may stop
    training with ``JudgeFailure`` (no update, no checkpoint of that step). ``_val_metrics_update`` (verl's reduction of
    the validation samples, ray_trainer.py:721) adds ``val-aux/judge/fail/<kind>`` and logs the failures.
    """

    _fail_fast: FailFast | None = None

    def _judge_settings(self) -> JudgeSettings:
        kwargs = self.config.reward.custom_reward_function.get("reward_kwargs") or {}
        return JudgeSettings.from_kwargs(dict(kwargs))

    def _update_actor(self, batch: DataProto) -> DataProto:
        metrics = judge_step_metrics(batch.non_tensor_batch)
        column = batch.non_tensor_batch.get(DETAIL_KEY)
        details = None if column is None else JudgeDetails.read(column)
        if details is not None:
            details.log(f"training step {getattr(self, 'global_steps', '?')}")
        if metrics:
            if self._fail_fast is None:
                settings = self._judge_settings()
                self._fail_fast = FailFast(settings.max_failed_frac, settings.max_failed_steps)
            self._fail_fast.observe(metrics, details)
        output = super()._update_actor(batch)
        output.meta_info["metrics"].update(metrics)
        return output

    def _val_metrics_update(
        self, data_sources: list, sample_uids: list, reward_extra_infos_dict: dict, sample_turns: list
    ) -> dict:
        metrics = super()._val_metrics_update(data_sources, sample_uids, reward_extra_infos_dict, sample_turns)
        column = reward_extra_infos_dict.get(DETAIL_KEY)
        if column:
            details = JudgeDetails.read(column)
            details.log(f"validation at step {getattr(self, 'global_steps', '?')}")
            metrics.update(details.metrics(prefix="val-aux/judge"))
        return metrics
