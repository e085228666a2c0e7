"""The judge's work on each TRAINING step as step metrics (``judge/*``), for the judge-as-reward recipes.

verl 0.9.1's classic trainer puts the reward extra keys of training samples (``rm_r1.judge_reward.EXTRA_KEYS``) into
``batch.non_tensor_batch`` (verl/trainer/ppo/ray_trainer.py:1635-1636) and into the rollout dump
(ray_trainer.py:1721-1724, 514-546), but into no step metric; validation alone logs their means
(``val-aux/<source>/judge_*``). ``JudgeRewardTrainer`` adds ``judge_step_metrics`` of the training batch to the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from verl import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer

from rm_r1.judge_reward import EXTRA_KEYS


def judge_step_metrics(non_tensor_batch: Mapping[str, Any]) -> dict[str, float]:
    """The ``judge_*`` keys of one training batch's samples (``rm_r1.judge_reward.compute_score``), reduced to:

    * ``judge/calls_total`` = Σ calls, ``judge/calls_per_sample`` = Σ calls / n (n samples in the batch)
    * ``judge/failed_total`` = Σ failed calls (HTTP failures after the retries, outputs without a verdict or score),
      ``judge/failed_frac`` = Σ failed / Σ calls
    * ``judge/agreement_mean``: mean ``judge_agreement`` over the samples with at least one vote (a sample without
      one has no agreement to speak of; 0 when no sample voted, which ``judge/neutral_frac`` = 1 then says)
    * ``judge/truncated_total`` = the number of samples whose reply was cut to the judge's budget
    * ``judge/neutral_frac`` = the share of samples without any vote (rewarded ``neutral_reward``)

    A batch without judge keys (another reward) gives ``{}``; one with only some of them, or with values that are not
    finite numbers, is refused naming the key.
    """
    present = [key for key in EXTRA_KEYS if key in non_tensor_batch]
    if not present:
        return {}
    missing = [key for key in EXTRA_KEYS if key not in non_tensor_batch]
    if missing:
        raise ValueError(f"the batch has judge keys {present} but not {missing}; rm_r1.judge_reward returns them all")
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
    }


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
    """

    def _update_actor(self, batch: DataProto) -> DataProto:
        output = super()._update_actor(batch)
        output.meta_info["metrics"].update(judge_step_metrics(batch.non_tensor_batch))
        return output
