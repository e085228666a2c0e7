"""verl's own FSDP engine worker as the actor / reference worker group, in process on CPU (tests and smoke runs only).

This runs verl 0.9.1's real ``ActorRolloutRefWorker`` (``verl.workers.engine_workers``) with role ``actor``: its
micro-batching (and the asserts on it), padding removal, ``ppo_loss`` aggregation, FSDP2 wrapping, optimizer, LR
schedule and checkpoint format are verl's. What differs from a GPU run, and only this:

* verl 0.9.1 registers no CPU platform (its platform layer knows ``nvidia``, ``huawei`` and ``amd`` and falls back to
  ``nvidia``, i.e. ``torch.cuda`` and NCCL). ``cpu_backend.platform.CpuPlatform`` is registered through verl's own
  ``PlatformRegistry`` and made current with ``set_platform``; the FSDP engine, registered for ``cuda``/``npu`` only,
  is registered for ``cpu`` too.
* ``torch.distributed`` is a one-process gloo group (world size 1), created here when none exists.
* The config needs :data:`ENGINE_CPU_OVERRIDES`: FSDP2 (FSDP1 is built with ``sync_module_states=True``, which torch
  refuses for CPU parameters), SDPA attention instead of flash-attn (transformers builds the block-diagonal mask of
  packed sequences from ``position_ids``, so ``use_remove_padding`` stays available), no ``torch.compile`` and fp32
  parameters (exact comparisons in tests; bf16 autocast is also slow on CPU).
* The reference policy is a second, never-updated role-``actor`` worker: role ``ref`` wraps its model with
  ``CPUOffloadPolicy(pin_memory=True)``, and pinned memory needs an accelerator.

The rollout (HF ``generate()``) keeps its own model; :meth:`EngineActorWorkerGroup.sync_weights_to` copies the
actor's weights into it the way verl's ``update_weights`` reads them (``engine.get_per_tensor_param()``). With
``replicas`` (shared with the rollout and the checkpoint manager) every actor and reference call refuses to run
while the rollout replicas are awake, as on a GPU node (``cpu_backend.replicas``).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig
from tensordict import TensorDict
from transformers import PreTrainedModel
from verl.plugin.platform.platform_manager import get_platform, set_platform

from cpu_backend.platform import CpuPlatform, register_fsdp_engine
from cpu_backend.replicas import RolloutReplicas

__all__ = ["ENGINE_CPU_OVERRIDES", "EngineActorWorkerGroup", "check_engine_cpu_config"]

ENGINE_CPU_OVERRIDES: tuple[str, ...] = (
    "actor_rollout_ref.actor.strategy=fsdp2",
    "++actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false",
    "++actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32",
)
"""Hydra overrides (on top of ``cpu_backend.CPU_OVERRIDES``) that verl's FSDP engine needs to run on CPU."""


def _use_cpu_platform() -> None:
    """Make verl see the CPU (process-wide: every later ``verl.utils.device`` call answers ``cpu`` / ``gloo``)."""
    if not isinstance(get_platform(), CpuPlatform):
        set_platform(CpuPlatform())
    register_fsdp_engine()


def _init_single_process_group() -> None:
    """A one-process gloo group (verl's workers read RANK / WORLD_SIZE / MASTER_* from the environment)."""
    world_size = os.environ.setdefault("WORLD_SIZE", "1")
    if world_size != "1" or (dist.is_initialized() and dist.get_world_size() != 1):
        raise RuntimeError(f"the in-process engine worker needs world size 1, got WORLD_SIZE={world_size}")
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "0")  # read by verl's Worker, unused: the store below is in memory
    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


def check_engine_cpu_config(config: DictConfig, with_reference: bool = False) -> None:
    """Raise ``ValueError`` naming each ``actor_rollout_ref`` key that verl's FSDP engine cannot run with on CPU, or
    that verl's worker would reject with a bare assertion (the micro-batch settings, checked here by name)."""
    problems = []
    if config.actor.strategy != "fsdp2":
        problems.append(
            f"actor_rollout_ref.actor.strategy must be fsdp2, got {config.actor.strategy!r} (FSDP1 is built with "
            "sync_module_states=True, which torch refuses for CPU parameters)"
        )
    attention = config.model.get("override_config", {}).get("attn_implementation", "flash_attention_2")
    if attention not in ("sdpa", "eager"):
        problems.append(
            "actor_rollout_ref.model.override_config.attn_implementation must be sdpa or eager on CPU, got "
            f"{attention!r} (verl's default flash_attention_2 needs CUDA)"
        )
    dynamic = bool(config.actor.use_dynamic_bsz)
    if dynamic != bool(config.rollout.log_prob_use_dynamic_bsz):  # verl/workers/engine_workers.py:615
        problems.append(
            "actor_rollout_ref.actor.use_dynamic_bsz and actor_rollout_ref.rollout.log_prob_use_dynamic_bsz must be "
            f"equal, got {config.actor.use_dynamic_bsz} and {config.rollout.log_prob_use_dynamic_bsz}"
        )
    # verl/workers/engine_workers.py:636 (actor); the reference's becomes its ppo_micro_batch_size_per_gpu
    # (engine_workers.py:547-553), which verl/workers/config/actor.py:207 asserts
    sections = ("rollout", "ref") if with_reference else ("rollout",)
    for section in sections:
        if not dynamic and config[section].get("log_prob_micro_batch_size_per_gpu") is None:
            problems.append(
                f"actor_rollout_ref.{section}.log_prob_micro_batch_size_per_gpu must be set without dynamic batch size"
            )
    if problems:
        raise ValueError("config not runnable on verl's FSDP engine on CPU:\n  " + "\n  ".join(problems))


class EngineActorWorkerGroup:
    """The ``actor_rollout_wg`` / ``ref_policy_wg`` calls of verl's classic trainer, answered by verl's own
    ``ActorRolloutRefWorker`` (role ``actor``; a second one holds the reference when ``with_reference``), in this
    process on CPU.

    ``config`` is the ``actor_rollout_ref`` section composed with :data:`ENGINE_CPU_OVERRIDES`; its
    ``actor.optim.total_training_steps`` must be set. The workers get a copy (verl's init_model edits its config, and
    on a cluster it only ever sees a serialized copy). With ``replicas``, ``compute_log_prob``,
    ``compute_ref_log_prob`` and ``update_actor`` raise while the rollout replicas are awake.
    """

    def __init__(self, config: DictConfig, with_reference: bool = False, replicas: RolloutReplicas | None = None):
        from verl.workers.engine_workers import ActorRolloutRefWorker

        check_engine_cpu_config(config, with_reference)
        _use_cpu_platform()
        _init_single_process_group()
        self.actor_worker = ActorRolloutRefWorker(copy.deepcopy(config), role="actor")
        self.actor_worker.init_model()
        self.ref_worker = None
        if with_reference:
            # Role "ref" pins memory (CPUOffloadPolicy(pin_memory=True)), which needs an accelerator: a second,
            # never-updated actor worker over the same initial weights runs the same infer_batch with the
            # reference's micro-batch settings.
            ref_config = copy.deepcopy(config)
            for key in (
                "log_prob_micro_batch_size_per_gpu",
                "log_prob_use_dynamic_bsz",
                "log_prob_max_token_len_per_gpu",
            ):
                ref_config.rollout[key] = config.ref[key]
            self.ref_worker = ActorRolloutRefWorker(ref_config, role="actor")
            self.ref_worker.init_model()
        self.replicas = replicas
        self._dispatch_info: dict[str, list[int]] = {"actor": [0], "ref": [0]}

    def _require_replicas_asleep(self, call: str) -> None:
        if self.replicas is not None:
            self.replicas.require_asleep(call)

    def compute_log_prob(self, data: TensorDict) -> TensorDict:
        """Actor log-probs (and entropy when ``calculate_entropy``) of a no-padding TensorDict."""
        self._require_replicas_asleep("compute_log_prob")
        return self.actor_worker.compute_log_prob(data)

    def compute_ref_log_prob(self, data: TensorDict) -> TensorDict:
        """Reference-policy log-probs; needs ``with_reference=True`` (a KL term in the config)."""
        if self.ref_worker is None:
            raise RuntimeError(
                "compute_ref_log_prob called but no reference worker was built: it is built only when "
                "actor_rollout_ref.actor.use_kl_loss or algorithm.use_kl_in_reward is on"
            )
        self._require_replicas_asleep("compute_ref_log_prob")
        return self.ref_worker.compute_log_prob(data)

    def update_actor(self, data: TensorDict) -> TensorDict:
        """verl's PPO update over the mini-batches the trainer's non-tensor entries describe."""
        self._require_replicas_asleep("update_actor")
        return self.actor_worker.update_actor(data)

    def save_checkpoint(
        self, local_path: str, hdfs_path: str | None = None, global_step: int = 0, max_ckpt_to_keep: int | None = None
    ) -> None:
        """verl's FSDP checkpoint (model, optimizer, LR scheduler and RNG shards, plus ``huggingface/``)."""
        self.actor_worker.save_checkpoint(local_path, hdfs_path, global_step, max_ckpt_to_keep)

    def load_checkpoint(
        self, local_path: str, hdfs_path: str | None = None, del_local_after_load: bool = False
    ) -> None:
        """Restore what :meth:`save_checkpoint` wrote."""
        self.actor_worker.load_checkpoint(local_path, hdfs_path, del_local_after_load)

    @torch.no_grad()
    def sync_weights_to(self, model: PreTrainedModel) -> None:
        """Copy the actor's current weights into ``model`` (the rollout's), read as verl's ``update_weights`` reads
        them for vLLM (``engine.get_per_tensor_param()``, full tensors under Hugging Face names)."""
        params, _ = self.actor_worker.actor.engine.get_per_tensor_param()
        target = model.state_dict()
        missing = set(target)
        for name, tensor in params:
            if name not in target:
                raise KeyError(f"actor weight {name!r} has no counterpart in the rollout model")
            target[name].copy_(tensor)
            missing.discard(name)
        if missing:
            raise KeyError(f"the actor sent no weights for the rollout model's {sorted(missing)}")

    def start_profile(self, **kwargs: Any) -> None:
        """Profiling is not supported on CPU; the call is accepted and ignored."""

    def stop_profile(self, **kwargs: Any) -> None:
        """Profiling is not supported on CPU; the call is accepted and ignored."""
