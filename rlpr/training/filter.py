"""The standard-deviation filter with an EMA threshold (docs/rlpr.md#std-filter), as an explicit state object.

For each prompt group the trainer computes σ_g, the unbiased std of the final reward R over the group's n responses
(``group_stds``), and keeps the group iff σ_g is finite and b·σ_g ≥ θ, where b is the group's source factor
(``beta_per_source[data_source]``, 1 for a source not listed). The threshold follows the schedule below
(E = ``ema_start_step``, S = ``start_step``, ρ = ``momentum``, m_t = mean of the finite σ over ALL candidate groups
generated in step t, kept and dropped, over every generation round of that step):

* steps < S: θ = 0, every group is kept; steps E..S-1 record m_t.
* step S: ema = (m_E + ... + m_{S-1}) / (number of those steps that had a finite σ).
* step t > S: ema ← ρ·ema + (1 - ρ)·m_{t-1}; a step without any finite σ leaves ema unchanged.
* θ = β·ema, the same for every group; the per-source factor b multiplies the group's std, as in the official code
  (keep iff σ_g·b ≥ β·ema), and never enters m (the EMA follows the raw σ).

All state lives in this object (never in the config) and round-trips through ``state_dict`` / ``load_state_dict``,
so a run resumed after step k produces the same thresholds as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

DEFAULT_EMA_START_STEP = 6
DEFAULT_START_STEP = 11
DEFAULT_MOMENTUM = 0.99

_STATE_KEYS = ("step", "ema", "warmup_means", "step_sum", "step_count")


def group_stds(rewards: Sequence[float], group_ids: Sequence[Hashable]) -> dict[Hashable, float]:
    """σ_g = sqrt(Σ_i (R_i - mean_g)² / (n_g - 1)), the unbiased std of the rewards of each group.

    ``rewards[i]`` belongs to group ``group_ids[i]``; the result maps each group id to its σ, in order of first
    appearance. A group of one response has no unbiased std; it gets 1.0, the official code's convention (as verl's
    GRPO advantage), so it is kept while θ ≤ 1 and counts in m like any other group.
    """
    if len(rewards) != len(group_ids):
        raise ValueError(f"rewards has {len(rewards)} entries but group_ids has {len(group_ids)}")
    groups: dict[Hashable, list[float]] = {}
    for i, (reward, gid) in enumerate(zip(rewards, group_ids)):
        value = float(reward)
        if not math.isfinite(value):
            raise ValueError(f"rewards[{i}] (group {gid!r}) is not finite: {value}")
        groups.setdefault(gid, []).append(value)
    stds: dict[Hashable, float] = {}
    for gid, values in groups.items():
        if len(values) < 2:
            stds[gid] = 1.0
            continue
        mean = math.fsum(values) / len(values)
        stds[gid] = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return stds


def _check_fraction(name: str, value: float, *, upper_inclusive: bool) -> float:
    value = float(value)
    ok = 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0
    if not ok:
        bound = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must lie in {bound}, got {value}")
    return value


def _check_beta(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


class EmaStdFilter:
    """Keeps the prompt groups whose reward std reaches θ = β·ema (schedule in the module docstring).

    Per step the trainer calls ``begin_step(step)`` once (it returns θ), then for every generation round
    ``observe(stds)`` with all candidate σ of that round and ``keep(stds, data_sources)`` for the keep-mask.

    Args:
        beta: β, the threshold as a fraction of the EMA of the mean group std (the paper: 0.5 Qwen2.5-7B,
            0.9 Llama3.1-8B-Instruct, 1.0 Gemma2-2B-it).
        ema_start_step: E, the first step whose mean σ enters the EMA.
        start_step: S, the first step that filters; E < S.
        momentum: ρ in ema ← ρ·ema + (1 - ρ)·m.
        beta_per_source: a factor b on the group std for particular ``data_source`` values (keep iff σ·b ≥ β·ema);
            other sources use b = 1.
    """

    def __init__(
        self,
        beta: float,
        ema_start_step: int = DEFAULT_EMA_START_STEP,
        start_step: int = DEFAULT_START_STEP,
        momentum: float = DEFAULT_MOMENTUM,
        beta_per_source: Mapping[str, float] | None = None,
    ) -> None:
        self.beta = _check_beta("beta", beta)
        self.momentum = _check_fraction("momentum", momentum, upper_inclusive=False)
        if int(ema_start_step) != ema_start_step or int(start_step) != start_step:
            raise ValueError(f"ema_start_step and start_step must be integers, got {ema_start_step}, {start_step}")
        if not ema_start_step < start_step:
            raise ValueError(
                f"ema_start_step ({ema_start_step}) must be smaller than start_step ({start_step}): "
                "the first EMA value is the mean of steps ema_start_step..start_step-1"
            )
        self.ema_start_step = int(ema_start_step)
        self.start_step = int(start_step)
        self.beta_per_source = {
            str(src): _check_beta(f"beta_per_source[{src!r}]", b) for src, b in (beta_per_source or {}).items()
        }
        self._step: int | None = None
        self._ema: float | None = None
        self._warmup_means: list[float] = []
        self._step_sum = 0.0
        self._step_count = 0

    @property
    def step(self) -> int | None:
        """The step last begun, or None before the first ``begin_step``."""
        return self._step

    @property
    def ema(self) -> float | None:
        """The EMA of the mean group std used for this step's θ; None while it has no value yet."""
        return self._ema

    @property
    def step_mean_std(self) -> float | None:
        """m of the current step so far: the mean of the finite σ observed since ``begin_step``; None if none."""
        return self._step_sum / self._step_count if self._step_count else None

    @property
    def active(self) -> bool:
        """Whether the current step filters (step ≥ start_step)."""
        return self._step is not None and self._step >= self.start_step

    def threshold(self) -> float:
        """θ for this step: β·ema once filtering is active and ema exists, else 0."""
        if not self.active or self._ema is None:
            return 0.0
        return self.beta * self._ema

    def source_factor(self, data_source: str | None) -> float:
        """b of ``data_source``: its ``beta_per_source`` entry, 1 for a source not listed (or None)."""
        return self.beta_per_source.get(data_source, 1.0) if data_source is not None else 1.0

    def begin_step(self, step: int) -> float:
        """Start training step ``step`` (strictly increasing); fold the previous step's m into the EMA; return θ."""
        if int(step) != step:
            raise ValueError(f"step must be an integer, got {step!r}")
        step = int(step)
        if self._step is not None and step <= self._step:
            raise ValueError(f"begin_step({step}) after step {self._step}: steps must increase")
        previous_mean = self.step_mean_std
        if self._step is not None and previous_mean is not None and self._step >= self.ema_start_step:
            if self._step < self.start_step:
                self._warmup_means.append(previous_mean)
            elif self._ema is None:
                # Every warm-up step lacked a finite σ, so the EMA starts from the first step that had one.
                self._ema = previous_mean
            else:
                self._ema = self.momentum * self._ema + (1.0 - self.momentum) * previous_mean
        if step >= self.start_step and self._ema is None and self._warmup_means:
            self._ema = math.fsum(self._warmup_means) / len(self._warmup_means)
            self._warmup_means = []
        self._step = step
        self._step_sum = 0.0
        self._step_count = 0
        return self.threshold()

    def observe(self, group_stds: Iterable[float]) -> None:
        """Record one generation round's candidate group stds for this step's m; non-finite values are ignored."""
        if self._step is None:
            raise RuntimeError("observe() called before begin_step()")
        for std in group_stds:
            value = float(std)
            if math.isfinite(value):
                if value < 0:
                    raise ValueError(f"a standard deviation cannot be negative, got {value}")
                self._step_sum += value
                self._step_count += 1

    def keep(self, group_stds: Sequence[float], data_sources: Sequence[str] | None = None) -> list[bool]:
        """Keep-mask: σ_g finite and σ_g·b(source of g) ≥ θ; before ``start_step`` every group is kept.

        ``data_sources[g]`` is group g's ``data_source`` (only needed with ``beta_per_source``).
        """
        if self._step is None:
            raise RuntimeError("keep() called before begin_step()")
        if data_sources is not None and len(data_sources) != len(group_stds):
            raise ValueError(f"group_stds has {len(group_stds)} entries but data_sources has {len(data_sources)}")
        if not self.active:
            return [True] * len(group_stds)
        sources = data_sources if data_sources is not None else [None] * len(group_stds)
        theta = self.threshold()
        return [
            math.isfinite(float(s)) and float(s) * self.source_factor(src) >= theta
            for s, src in zip(group_stds, sources)
        ]

    def state_dict(self) -> dict[str, Any]:
        """The filter's state as plain Python values (for ``torch.save`` / JSON)."""
        return {
            "step": self._step,
            "ema": self._ema,
            "warmup_means": list(self._warmup_means),
            "step_sum": self._step_sum,
            "step_count": self._step_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned; the hyper-parameters stay those given to the constructor."""
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise KeyError(f"EmaStdFilter state lacks {missing}; got keys {sorted(state)}")
        self._step = None if state["step"] is None else int(state["step"])
        self._ema = None if state["ema"] is None else float(state["ema"])
        self._warmup_means = [float(m) for m in state["warmup_means"]]
        self._step_sum = float(state["step_sum"])
        self._step_count = int(state["step_count"])
