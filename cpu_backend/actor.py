"""An in-process actor/reference worker group backed by one transformers causal LM (smoke runs and tests only).

It answers the calls verl 0.9.1's classic ``RayPPOTrainer`` makes on ``actor_rollout_wg`` / ``ref_policy_wg``
(``compute_log_prob``, ``compute_ref_log_prob``, ``update_actor``, ``save_checkpoint``, ``load_checkpoint``) with the
same TensorDict contract as verl's ``ActorRolloutRefWorker``: nested (no-padding) ``input_ids`` / ``position_ids`` in,
nested per-token outputs plus non-tensor ``metrics`` out. The PPO loss is verl's own ``ppo_loss`` (policy-loss
registry of ``verl.trainer.ppo.core_algos``, ``agg_loss``, entropy and KL terms), the micro-batching is verl's
``prepare_micro_batches``, the optimizer and LR schedule are built from the actor's ``optim`` config as verl's FSDP
engine builds them. Data-parallel size is 1 and everything runs in the calling process on CPU. Real training uses
verl's Ray/FSDP/vLLM workers.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from tensordict import TensorDict
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.metric import Metric
from verl.utils.py_functional import append_to_dict
from verl.utils.seqlen_balancing import restore_dynamic_batch
from verl.utils.torch_functional import (
    entropy_from_logits,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
)
from verl.workers.config import ActorConfig
from verl.workers.config.optimizer import build_optimizer
from verl.workers.engine.utils import prepare_micro_batches
from verl.workers.utils.losses import ppo_loss
from verl.workers.utils.padding import build_attention_mask_from_nested

from cpu_backend.replicas import RolloutReplicas

__all__ = ["CpuActorRolloutWorkerGroup", "sequence_log_probs"]

_MODEL_DIR = "huggingface"
_TRAIN_STATE_FILE = "train_state.pt"


def sequence_log_probs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    temperature: float,
    calculate_entropy: bool = False,
) -> dict[str, torch.Tensor]:
    """Per-token log-probs (and entropies) of nested sequences under ``model`` with logits divided by ``temperature``.

    ``input_ids`` / ``position_ids`` are jagged nested tensors (one unpadded sequence per row). Entry ``j`` of a
    sequence's ``log_probs`` is ``log softmax(logits_j / T)[token_{j+1}]``; the last entry has no next token and is 0
    (verl's ``no_padding_2_padding`` never reads it). ``entropy`` entry ``j`` is the entropy of that distribution.
    Returns jagged nested tensors with the input's offsets.
    """
    offsets = input_ids.offsets()
    lengths = offsets.diff()
    batch_size, max_len = len(lengths), int(lengths.max())
    padded_ids = torch.nested.to_padded_tensor(input_ids, padding=0, output_size=(batch_size, max_len))
    padded_pos = torch.nested.to_padded_tensor(position_ids, padding=0, output_size=(batch_size, max_len))
    attention_mask = build_attention_mask_from_nested(input_ids, max_seq_len=max_len)

    logits = model(input_ids=padded_ids, attention_mask=attention_mask, position_ids=padded_pos, use_cache=False).logits
    logits = logits / temperature
    next_ids = torch.roll(padded_ids, shifts=-1, dims=1)
    log_probs = torch.log_softmax(logits, dim=-1).gather(-1, next_ids.unsqueeze(-1)).squeeze(-1)
    has_next = torch.arange(max_len).unsqueeze(0) < (lengths - 1).unsqueeze(1)
    log_probs = log_probs * has_next

    valid = attention_mask.bool()
    outputs = {"log_probs": torch.nested.nested_tensor_from_jagged(log_probs[valid], offsets)}
    if calculate_entropy:
        outputs["entropy"] = torch.nested.nested_tensor_from_jagged(entropy_from_logits(logits)[valid], offsets)
    return outputs


class CpuActorRolloutWorkerGroup:
    """verl's actor/rollout/reference worker group, in process, over one transformers model (tests and smoke runs only).

    The rollout side (``cpu_backend.rollout``) generates with the same ``model`` object, so weights never need syncing.
    The reference policy, when ``with_reference`` is set (KL loss or KL-in-reward on), is a frozen copy of the
    initial weights. With ``replicas`` (shared with the rollout and the checkpoint manager), every forward and update
    refuses to run while the rollout replicas are awake, as on a GPU node.
    """

    def __init__(
        self,
        config: DictConfig,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase | None = None,
        with_reference: bool = False,
        replicas: RolloutReplicas | None = None,
    ):
        """``config`` is the ``actor_rollout_ref`` section; its ``actor.optim.total_training_steps`` must be set."""
        # verl/workers/engine_workers.py:615 asserts the same
        if bool(config.actor.use_dynamic_bsz) != bool(config.rollout.log_prob_use_dynamic_bsz):
            raise ValueError(
                "actor_rollout_ref.actor.use_dynamic_bsz and actor_rollout_ref.rollout.log_prob_use_dynamic_bsz "
                f"must be equal, got {config.actor.use_dynamic_bsz} and {config.rollout.log_prob_use_dynamic_bsz}"
            )
        self.config = config
        self.replicas = replicas
        self.model = model.float().eval()
        self.tokenizer = tokenizer
        self.actor_config: ActorConfig = omega_conf_to_dataclass(config.actor)
        self.ref_model = copy.deepcopy(self.model).requires_grad_(False) if with_reference else None
        self.optim_config = omega_conf_to_dataclass(config.actor.optim)
        self.optimizer = build_optimizer(self.model.parameters(), self.optim_config)
        self.lr_scheduler = _build_lr_scheduler(self.optimizer, self.optim_config)
        self._dispatch_info: dict[str, list[int]] = {"actor": [0], "ref": [0]}
        self._saved_checkpoints: list[str] = []

    @classmethod
    def from_pretrained(
        cls,
        config: DictConfig,
        tokenizer: PreTrainedTokenizerBase | None = None,
        with_reference: bool = False,
        replicas: RolloutReplicas | None = None,
    ) -> CpuActorRolloutWorkerGroup:
        """Load ``config.model.path`` (float32) and build the worker group on it."""
        model = AutoModelForCausalLM.from_pretrained(os.path.expanduser(config.model.path), dtype=torch.float32)
        return cls(config, model, tokenizer=tokenizer, with_reference=with_reference, replicas=replicas)

    # ---- forward-only calls -------------------------------------------------------------------------------------

    def compute_log_prob(self, data: TensorDict) -> TensorDict:
        """Actor log-probs (and entropy when ``calculate_entropy``) for a no-padding TensorDict, as verl's worker."""
        self._require_replicas_asleep("compute_log_prob")
        return self._infer(
            self.model, data, self.config.rollout, role="actor", section_name="actor_rollout_ref.rollout"
        )

    def compute_ref_log_prob(self, data: TensorDict) -> TensorDict:
        """Reference-policy log-probs; needs ``with_reference=True`` (a KL term in the config)."""
        if self.ref_model is None:
            raise RuntimeError(
                "compute_ref_log_prob called but the CPU worker group has no reference model: it is built only when "
                "actor_rollout_ref.actor.use_kl_loss or algorithm.use_kl_in_reward is on"
            )
        self._require_replicas_asleep("compute_ref_log_prob")
        return self._infer(self.ref_model, data, self.config.ref, role="ref", section_name="actor_rollout_ref.ref")

    def _require_replicas_asleep(self, call: str) -> None:
        if self.replicas is not None:
            self.replicas.require_asleep(call)

    @torch.no_grad()
    def _infer(
        self, model: PreTrainedModel, data: TensorDict, section: DictConfig, role: str, section_name: str
    ) -> TensorDict:
        temperature = _temperature(data, role)
        calculate_entropy = bool(tu.get(data, "calculate_entropy", default=False))
        _assign_micro_batch_keys(
            data,
            use_dynamic_bsz=section.get("log_prob_use_dynamic_bsz", False),
            max_token_len_per_gpu=section.get("log_prob_max_token_len_per_gpu", None),
            micro_batch_size_per_gpu=section.get("log_prob_micro_batch_size_per_gpu", None),
            key=f"{section_name}.log_prob_micro_batch_size_per_gpu",
        )
        micro_batches, indices = prepare_micro_batches(data, dp_group=None, same_micro_num_in_dp=False)
        outputs: dict[str, list[torch.Tensor]] = {}
        for micro_batch in micro_batches:
            out = sequence_log_probs(
                model, micro_batch["input_ids"], micro_batch["position_ids"], temperature, calculate_entropy
            )
            for key, value in out.items():
                outputs.setdefault(key, []).extend(value.unbind())
        model_output = {}
        for key, tensors in outputs.items():
            nested = torch.nested.as_nested_tensor(tensors, layout=torch.jagged)
            model_output[key] = restore_dynamic_batch(nested, indices) if indices is not None else nested
        # No FLOPs counter on CPU: MFU is reported as 0 so the trainer's perf/mfu keys still exist.
        return tu.get_tensordict(model_output, non_tensor_dict={"metrics": {"mfu": 0.0}})

    # ---- training -----------------------------------------------------------------------------------------------

    def update_actor(self, data: TensorDict) -> TensorDict:
        """PPO update over ``epochs`` x mini-batches with verl's ``ppo_loss``; returns per-mini-batch metric lists.

        Reads the keys ``RayPPOTrainer._update_actor`` assigns (``mini_batch_size``, ``epochs``, ``seed``,
        ``dataloader_kwargs``, ``calculate_entropy``, ``temperature``). Each mini-batch is split into micro-batches
        (``ppo_micro_batch_size_per_gpu`` or dynamic by ``ppo_max_token_len_per_gpu``), gradients are accumulated,
        clipped to ``optim.clip_grad`` and applied with one optimizer step; the LR scheduler steps once per call.
        """
        self._require_replicas_asleep("update_actor")
        mini_batch_size = tu.pop(data, "mini_batch_size", default=None)
        if mini_batch_size is None:
            raise ValueError("update_actor needs a non-tensor 'mini_batch_size' entry (set by RayPPOTrainer)")
        epochs = tu.pop(data, "epochs", default=1)
        seed = tu.pop(data, "seed", default=42)
        dataloader_kwargs = tu.pop(data, "dataloader_kwargs", default={})
        temperature = _temperature(data, "actor")
        calculate_entropy = bool(tu.get(data, "calculate_entropy", default=False))
        if self.actor_config.use_kl_loss and "ref_log_prob" not in data.keys():
            raise ValueError("actor.use_kl_loss is on but the batch has no 'ref_log_prob' (run the reference first)")

        metrics: dict[str, list[float]] = {}
        self.model.train()
        try:
            for mini_batch in tu.make_iterator(data, mini_batch_size, epochs, seed, dataloader_kwargs):
                step_metrics = self._train_mini_batch(mini_batch, temperature, calculate_entropy)
                append_to_dict(metrics, step_metrics)
        finally:
            self.model.eval()
        self.lr_scheduler.step()
        metrics["lr"] = [float(self.lr_scheduler.get_last_lr()[0])]
        return tu.get_tensordict({}, non_tensor_dict={"metrics": metrics})

    def _train_mini_batch(self, mini_batch: TensorDict, temperature: float, calculate_entropy: bool) -> dict:
        actor = self.actor_config
        tu.assign_non_tensor(
            mini_batch,
            dp_size=1,
            batch_num_tokens=int(mini_batch["loss_mask"].sum().item()),
            global_batch_size=len(mini_batch),
        )
        _assign_micro_batch_keys(
            mini_batch,
            use_dynamic_bsz=actor.use_dynamic_bsz,
            max_token_len_per_gpu=actor.ppo_max_token_len_per_gpu,
            micro_batch_size_per_gpu=actor.ppo_micro_batch_size_per_gpu,
            key="actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
        )
        micro_batches, _ = prepare_micro_batches(mini_batch, dp_group=None, same_micro_num_in_dp=False)

        self.optimizer.zero_grad()
        per_micro: dict[str, Metric | list] = {}
        total_loss = 0.0
        for micro_batch in micro_batches:
            model_output = sequence_log_probs(
                self.model, micro_batch["input_ids"], micro_batch["position_ids"], temperature, calculate_entropy
            )
            loss, loss_metrics = ppo_loss(actor, model_output, micro_batch)
            loss.backward()
            total_loss += loss.item()
            append_to_dict(per_micro, loss_metrics)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.optim_config.clip_grad)
        if torch.isfinite(grad_norm):
            self.optimizer.step()
        else:
            self.optimizer.zero_grad()

        step_metrics = {key: _reduce_micro_batches(values) for key, values in per_micro.items()}
        step_metrics.update(loss=total_loss, grad_norm=float(grad_norm), mfu=0.0)
        return step_metrics

    # ---- checkpoints --------------------------------------------------------------------------------------------

    def save_checkpoint(
        self, local_path: str, hdfs_path: str | None = None, global_step: int = 0, max_ckpt_to_keep: int | None = None
    ) -> None:
        """Save the model (Hugging Face format under ``huggingface/``), optimizer, LR scheduler and RNG states.

        With ``max_ckpt_to_keep``, older checkpoints saved by this object are deleted as verl's checkpoint manager
        does.
        """
        if hdfs_path is not None:
            raise ValueError(f"the CPU backend saves locally only; got hdfs_path={hdfs_path!r}")
        os.makedirs(local_path, exist_ok=True)
        self.model.save_pretrained(os.path.join(local_path, _MODEL_DIR))
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(os.path.join(local_path, _MODEL_DIR))
        state = {
            "global_step": global_step,
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        }
        torch.save(state, os.path.join(local_path, _TRAIN_STATE_FILE))

        if local_path in self._saved_checkpoints:
            self._saved_checkpoints.remove(local_path)
        self._saved_checkpoints.append(local_path)
        if max_ckpt_to_keep is not None and max_ckpt_to_keep > 0:
            while len(self._saved_checkpoints) > max_ckpt_to_keep:
                shutil.rmtree(self._saved_checkpoints.pop(0), ignore_errors=True)

    def load_checkpoint(
        self, local_path: str, hdfs_path: str | None = None, del_local_after_load: bool = False
    ) -> None:
        """Restore what :meth:`save_checkpoint` wrote (weights in place, so the rollout sees them too)."""
        if hdfs_path is not None:
            raise ValueError(f"the CPU backend loads locally only; got hdfs_path={hdfs_path!r}")
        state_path = os.path.join(local_path, _TRAIN_STATE_FILE)
        model_path = os.path.join(local_path, _MODEL_DIR)
        if not (os.path.isfile(state_path) and os.path.isdir(model_path)):
            raise FileNotFoundError(
                f"{local_path!r} is not a CPU-backend actor checkpoint (expected {_MODEL_DIR}/ and {_TRAIN_STATE_FILE})"
            )
        loaded = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        self.model.load_state_dict(loaded.state_dict())
        state = torch.load(state_path, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        if del_local_after_load:
            shutil.rmtree(local_path, ignore_errors=True)

    # ---- no-ops the trainer may call ----------------------------------------------------------------------------

    def start_profile(self, **kwargs: Any) -> None:
        """Profiling is not supported on the CPU backend; the call is accepted and ignored."""

    def stop_profile(self, **kwargs: Any) -> None:
        """Profiling is not supported on the CPU backend; the call is accepted and ignored."""


def _temperature(data: TensorDict, role: str) -> float:
    temperature = tu.get(data, "temperature", default=None)
    if temperature is None:
        raise ValueError(
            f"{role} log-probs need a 'temperature' entry in the TensorDict (DataProto.meta_info['temperature'])"
        )
    if isinstance(temperature, torch.Tensor) and temperature.numel() != 1:
        raise ValueError(f"{role} log-probs: one scalar temperature expected, got shape {tuple(temperature.shape)}")
    return float(temperature)


def _assign_micro_batch_keys(
    data: TensorDict,
    use_dynamic_bsz: bool,
    max_token_len_per_gpu: int | None,
    micro_batch_size_per_gpu: int | None,
    key: str,
) -> None:
    """Set the keys verl's ``prepare_micro_batches`` reads.

    Without dynamic batch size the micro-batch size (config ``key``) must be set and divide this rank's batch, for
    training and inference alike: verl asserts both (verl/workers/engine_workers.py:636-637 and
    verl/workers/engine/utils.py:125); its callers pad the batch first (``pad_dataproto_to_divisor``).
    """
    if not use_dynamic_bsz and (micro_batch_size_per_gpu is None or len(data) % micro_batch_size_per_gpu):
        raise ValueError(
            f"{key}={micro_batch_size_per_gpu} must be set and divide the batch of {len(data)} sequences on this "
            "data-parallel rank (pad the batch to a multiple of data-parallel size x micro-batch size)"
        )
    tu.assign_non_tensor(
        data,
        use_dynamic_bsz=bool(use_dynamic_bsz),
        max_token_len_per_gpu=max_token_len_per_gpu,
        micro_batch_size_per_gpu=micro_batch_size_per_gpu,
    )


def _reduce_micro_batches(values: Metric | list) -> float:
    """One number per mini-batch: a verl ``Metric`` (``append_to_dict`` merges micro-batches into one) aggregates by its
    own rule (SUM for globally normalized losses, MEAN otherwise); plain numbers are averaged."""
    if isinstance(values, Metric):
        return float(values.aggregate())
    return float(np.mean([float(v) for v in values]))


def _build_lr_scheduler(optimizer: torch.optim.Optimizer, optim_config) -> torch.optim.lr_scheduler.LRScheduler:
    """The LR schedule verl's FSDP engine builds from the same ``optim`` config (constant or cosine with warmup)."""
    total_steps = optim_config.total_training_steps
    warmup_steps = optim_config.lr_warmup_steps
    if warmup_steps is None or warmup_steps <= 0:
        warmup_steps = int(optim_config.lr_warmup_steps_ratio * max(total_steps, 0))
    if optim_config.lr_scheduler_type == "constant":
        return get_constant_schedule_with_warmup(optimizer=optimizer, num_warmup_steps=warmup_steps)
    if optim_config.lr_scheduler_type == "cosine":
        if total_steps <= 0:
            raise ValueError("actor.optim.total_training_steps must be set (> 0) for the cosine LR schedule")
        return get_cosine_schedule_with_warmup(
            optimizer=optimizer,
            num_warmup_steps=warmup_steps,
            num_training_steps=total_steps,
            min_lr_ratio=optim_config.min_lr_ratio,
            num_cycles=optim_config.num_cycles,
            zero_indexed_step=optim_config.zero_indexed_step,
        )
    raise ValueError(
        f"actor.optim.lr_scheduler_type must be 'constant' or 'cosine', got {optim_config.lr_scheduler_type!r}"
    )
