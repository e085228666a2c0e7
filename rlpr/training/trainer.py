"""``RLPRTrainer``: verl 0.9.1's classic ``RayPPOTrainer`` with the RLPR reward and the EMA std filter.

Per step (docs/architecture.md#the-rlpr-step):

1. draw ``data.train_batch_size`` prompts (cached overflow prompts first), generate ``rollout.n`` responses each
   (the generation batch padded to ``rollout.agent.num_workers`` as verl's ``_validate`` pads it), put the rollout
   replicas to sleep;
2. ONE actor ``compute_log_prob`` call, without entropy, on the scoring batch (o' rows, plus debias rows in debias
   mode ``current``) -> r, r', R per response (``rlpr.training.scoring``), computed once per sample;
3. group stds of R, the EMA filter (``rlpr.training.filter``); while fewer than ``train_batch_size`` prompts are kept,
   draw more prompts and, if there are any, wake the replicas and generate another round (at most
   ``rlpr.max_gen_rounds``); kept groups beyond the target go to an overflow cache and are generated again in a later
   step;
4. verl's own steps: old log-probs, the reference model only when a KL term is on, GRPO advantage, actor update,
   checkpoint (``rlpr_state.pt`` with filter, overflow cache, data position and RNG states is written into the step
   folder before verl's ``latest_checkpointed_iteration.txt`` moves), wake the replicas, validation.

Every actor forward (the r' pass, scoring, old log-probs, update) runs while the replicas sleep, on a batch padded to
a multiple of data-parallel size x log-prob micro-batch size, as verl's workers require.

The last step and the final validation run. Everything RLPR-specific is logged under ``rlpr/``, ``filter/`` and
``timing/rlpr_*``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from verl import DataProto
from verl.protocol import pad_dataproto_to_divisor, unpad_dataproto
from verl.trainer.ppo import ray_trainer as verl_ray_trainer
from verl.trainer.ppo.core_algos import agg_loss
from verl.trainer.ppo.metric_utils import compute_data_metrics, compute_throughout_metrics, compute_timing_metrics
from verl.trainer.ppo.ray_trainer import RayPPOTrainer, compute_advantage, compute_response_mask
from verl.trainer.ppo.utils import need_critic
from verl.utils import tensordict_utils as tu
from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path, should_save_ckpt_esi
from verl.utils.debug import marked_timer
from verl.utils.metric import reduce_metrics
from verl.workers.utils.padding import no_padding_2_padding

from harness.files import write_atomically
from harness.generation import pad_token_id
from rlpr.evaluation.validation import mark_training_rollouts
from rlpr.training.debias_cache import DebiasCache, prompt_key
from rlpr.training.dynamic_sampling import select_groups
from rlpr.training.filter import EmaStdFilter, group_stds
from rlpr.training.loss_tokens import check_policy_loss_tokens, reasoning_loss_mask
from rlpr.training.rollout import make_rollout
from rlpr.training.scoring import (
    COUNT_METRICS,
    DebiasConfig,
    RepetitionConfig,
    ScoringBatch,
    ScoringConfig,
    build_scoring_batch,
    compute_rewards,
    row_scores,
)

_Section = TypeVar("_Section")
STATE_FILE = "rlpr_state.pt"
DEBIAS_MODES = ("initial", "current")


def _from_section(cls: type[_Section], values: dict, where: str) -> _Section:
    """``cls(**values)`` for a config section whose keys are ``cls``'s field names; an unknown key is named."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected keys among {names}")
    return cls(**values)


def scoring_config_from(config: DictConfig) -> ScoringConfig:
    """The ``rlpr:`` section of a recipe as a ``ScoringConfig``: the section's keys named like its fields, with
    ``rlpr.repetition`` and ``rlpr.debias`` built field by field as ``RepetitionConfig`` and ``DebiasConfig``."""
    rl = OmegaConf.to_container(config.rlpr, resolve=True)
    values = {f.name: rl[f.name] for f in fields(ScoringConfig) if f.name in rl}
    values["repetition"] = _from_section(RepetitionConfig, rl.get("repetition") or {}, "rlpr.repetition")
    values["debias"] = _from_section(DebiasConfig, rl.get("debias") or {}, "rlpr.debias")
    if values.get("max_scoring_length") is None:  # the rollout's budget plus room for the answer tail
        values["max_scoring_length"] = int(config.data.max_response_length) + 64
    return ScoringConfig(**values)


def std_filter_from(config: DictConfig) -> EmaStdFilter:
    """The filter of ``rlpr.filter``: its keys are ``EmaStdFilter``'s arguments, by name."""
    return EmaStdFilter(**OmegaConf.to_container(config.rlpr.filter, resolve=True))


def place_on_last_token(rewards: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Token-level scores: each response's reward on its last valid token (verl's outcome-reward convention)."""
    scores = torch.zeros(response_mask.shape, dtype=torch.float32)
    last = (response_mask.sum(-1) - 1).clamp(min=0).long()
    scores[torch.arange(len(rewards)), last] = rewards.float()
    return scores


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_trainer_supports(config: DictConfig) -> None:
    """Raise ``ValueError`` naming each key whose setting ``RLPRTrainer.fit`` would otherwise silently ignore.

    RLPR's ``fit`` replaces verl's (verl/trainer/ppo/ray_trainer.py:1405): it has no critic, no REMAX baseline rollout,
    no rollout-correction step (bypass mode or IS/RS weights), no profiler hooks, no critic warmup and no rollout
    dump, and it filters groups with its own EMA std filter instead of verl's ``filter_groups``.
    """
    algorithm = config.algorithm
    correction = algorithm.get("rollout_correction") or {}
    profiler_steps = config.get("global_profiler", {}).get("steps")
    problems = []
    if need_critic(config):
        problems.append(
            f"algorithm.adv_estimator={algorithm.adv_estimator} / critic.enable: RLPR trains without a critic "
            "(use a critic-free estimator such as grpo)"
        )
    if str(algorithm.adv_estimator) == "remax":
        problems.append("algorithm.adv_estimator=remax: RLPR generates no greedy baseline rollout")
    for key in ("bypass_mode", "rollout_is", "rollout_rs"):
        if correction.get(key):
            problems.append(f"algorithm.rollout_correction.{key}={correction.get(key)}: not applied by RLPR")
    if (algorithm.get("filter_groups") or {}).get("enable"):
        problems.append("algorithm.filter_groups.enable=true: RLPR filters groups with rlpr.filter instead")
    if profiler_steps:
        problems.append(f"global_profiler.steps={list(profiler_steps)}: RLPR's fit does not drive the profiler")
    if int(config.trainer.get("critic_warmup", 0) or 0) > 0:
        problems.append(f"trainer.critic_warmup={config.trainer.critic_warmup}: RLPR has no critic warmup")
    if config.trainer.get("rollout_data_dir"):
        problems.append("trainer.rollout_data_dir: RLPR does not dump training rollouts")
    if problems:
        raise ValueError("settings the RLPR trainer does not support:\n  " + "\n  ".join(problems))


class DataExhausted(Exception):
    """The training data ran out (all epochs drawn) while filling a step."""


@dataclass
class StepRecord:
    """What filling one step produced: the batch to train on (None: no group kept) and what ``fit`` logs of it."""

    batch: DataProto | None
    exhausted: bool  # the training data ran out while filling the step
    scoring_tokens: int  # tokens of the scoring forwards, over all rounds
    rollout_tokens: int  # tokens of the generated rounds (prompt and response)


class RLPRTrainer(RayPPOTrainer):
    """The classic verl trainer with RLPR's reward, debiasing, std filter and dynamic sampling (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_trainer_supports(self.config)
        rl = self.config.rlpr
        if rl.debias.mode not in DEBIAS_MODES:
            raise ValueError(f"rlpr.debias.mode must be one of {DEBIAS_MODES}, got {rl.debias.mode!r}")
        if int(rl.max_gen_rounds) < 1:
            raise ValueError(f"rlpr.max_gen_rounds must be >= 1, got {rl.max_gen_rounds}")
        self.scoring_config = scoring_config_from(self.config)
        self.policy_loss_tokens = check_policy_loss_tokens(
            str(rl.get("policy_loss_tokens", "response")), self.scoring_config.format_mode
        )
        self.scoring_temperature = float(
            rl.get("scoring_temperature") or self.config.actor_rollout_ref.rollout.temperature
        )
        self.std_filter = std_filter_from(self.config)
        self.debias_cache: DebiasCache | None = None
        if rl.debias.mode == "initial":
            self.debias_cache = DebiasCache(
                rl.debias.cache_path,
                meta={
                    "score_method": self.scoring_config.score_method,
                    "tagged": self.scoring_config.debias.tagged,
                    "temperature": self.scoring_temperature,
                    "model": str(self.config.actor_rollout_ref.model.path),
                },
            )
        self.overflow: list[DataProto] = []  # prompts of kept groups beyond the target, generated again later
        self.step_log: list[dict] = []  # per step: threshold, ema and the kept prompts (also for tests)
        self._epoch = 0
        self._data_iter = None
        self._rng_at_save: dict | None = None  # RNG states written with this step's checkpoint
        self.max_steps_duration = 0.0  # for ESI-triggered saves, as verl's fit

    # ------------------------------------------------------------------------------------------------------------
    # the scoring forward

    def _log_prob_divisor(self, role: str) -> int:
        """Rows a compute_log_prob batch must be a multiple of: data-parallel size x micro-batch size per GPU.

        Without dynamic batch size each rank splits its share into micro-batches of
        ``log_prob_micro_batch_size_per_gpu`` and asserts it divides (verl/workers/engine/utils.py:125; the actor's
        size comes from ``rollout``, the reference's from ``ref``, verl/workers/engine_workers.py:548,623).
        """
        section = self.config.actor_rollout_ref.rollout if role == "actor" else self.config.actor_rollout_ref.ref
        worker_group = self.actor_rollout_wg if role == "actor" or self.ref_in_actor else self.ref_policy_wg
        divisor = self._get_dp_size(worker_group, "actor" if self.ref_in_actor else role)
        if not section.get("log_prob_use_dynamic_bsz", False):
            divisor *= int(section.log_prob_micro_batch_size_per_gpu)
        return divisor

    def _compute_old_log_prob(self, batch: DataProto):
        padded, pad = pad_dataproto_to_divisor(batch, self._log_prob_divisor("actor"))
        old_log_prob, mfu = super()._compute_old_log_prob(padded)
        return unpad_dataproto(old_log_prob, pad), mfu

    def _compute_ref_log_prob(self, batch: DataProto) -> DataProto:
        padded, pad = pad_dataproto_to_divisor(batch, self._log_prob_divisor("ref"))
        return unpad_dataproto(super()._compute_ref_log_prob(padded), pad)

    def _scoring_log_probs(self, scoring: ScoringBatch) -> torch.Tensor:
        """Per-token log-probs of the scoring batch's rows from ONE actor compute_log_prob call (no entropy).

        The batch goes out in the no-padding layout, built from the rows directly and equal to what
        ``left_right_2_no_padding`` makes of the padded batch padded to the divisor (verl/workers/utils/padding.py:23;
        ``rlpr.training.rollout.no_padding_layout``).
        """
        td = scoring.log_prob_input(self._log_prob_divisor("actor"), {"temperature": self.scoring_temperature})
        tu.assign_non_tensor(td, calculate_entropy=False, compute_loss=False)
        output = self.actor_rollout_wg.compute_log_prob(td)
        log_probs = no_padding_2_padding(tu.get(output, "log_probs"), td)
        return log_probs[: scoring.num_rows].float()

    def _prompt_ids_of_rows(self, rows: Iterable[Sequence[dict]]) -> list[list[int]]:
        kwargs = self.config.data.get("apply_chat_template_kwargs") or {}
        return [
            list(self.tokenizer.apply_chat_template(list(m), add_generation_prompt=True, **kwargs)["input_ids"])
            for m in rows
        ]

    def _prepare_initial_r_prime(self, batch_size: int = 256) -> dict[str, float]:
        """Debias mode ``initial``: r' of the initial policy for every training prompt, cached on disk.

        Runs before ``fit`` first wakes the rollout replicas (the actor never runs beside them). A resumed run finds
        the cache and computes nothing; prompts still missing are computed now (only possible before the first
        update: after it the initial weights are gone, and a miss later is an error).
        """
        cache = self.debias_cache
        cache.load()
        frame = self.train_dataset.dataframe
        messages = frame[self.config.data.get("prompt_key", "prompt")]
        refs = [str(rm["ground_truth"]).strip() for rm in frame["reward_model"]]
        ids = self._prompt_ids_of_rows(messages)
        keys = [prompt_key(i, r) for i, r in zip(ids, refs)]
        row_of_key: dict[str, int] = {}  # the first row of each prompt with a reference (rows of one key are alike)
        for j, (key, ref) in enumerate(zip(keys, refs)):
            if ref:
                row_of_key.setdefault(key, j)
        todo = [row_of_key[key] for key in cache.missing(list(row_of_key))]
        if todo and self.global_steps > 0:
            raise RuntimeError(
                f"{len(todo)} training prompts have no cached r' ({cache.path}) but training already started at "
                f"step {self.global_steps}: the initial policy is gone. Restore the cache file or use "
                "rlpr.debias.mode=current."
            )
        started = time.time()
        for lo in range(0, len(todo), batch_size):
            chunk = todo[lo : lo + batch_size]
            rollout = make_rollout(
                [ids[j] for j in chunk],
                [[] for _ in chunk],
                [refs[j] for j in chunk],
                [str(j) for j in chunk],
                pad_token_id(self.tokenizer),
            )
            scoring = build_scoring_batch(rollout, self.tokenizer, self.scoring_config, debias_rows=True)
            scores = row_scores(scoring, self._scoring_log_probs(scoring), self.scoring_config.score_method)
            done = [j for j in chunk if str(j) in scoring.prompt_row]  # a debias row over the cap is skipped, counted
            cache.put_many([keys[j] for j in done], [float(scores[scoring.prompt_row[str(j)]]) for j in done])
        if todo:
            cache.save()
            seconds = time.time() - started
            print(f"rlpr: r' of the initial policy for {len(todo)} prompts in {seconds:.1f} s -> {cache.path}")
        return {"rlpr/r_prime_cache_size": float(len(cache)), "rlpr/r_prime_computed": float(len(todo))}

    # ------------------------------------------------------------------------------------------------------------
    # prompts and generation rounds

    def _next_dataloader_batch(self) -> DataProto:
        while True:
            if self._data_iter is None:
                self._data_iter = iter(self.train_dataloader)
            try:
                return DataProto.from_single_dict(next(self._data_iter))
            except StopIteration:
                self._data_iter = None
                self._epoch += 1
                if self._epoch >= self.config.trainer.total_epochs:
                    raise DataExhausted from None

    def _draw_prompts(self, step: int, round_: int) -> DataProto:
        """This round's prompts: the overflow cache first, then ``train_batch_size`` fresh prompts."""
        parts, self.overflow = self.overflow, []
        try:
            parts.append(self._next_dataloader_batch())
        except DataExhausted:
            if not parts:
                raise
        batch = DataProto.concat(parts) if len(parts) > 1 else parts[0]
        batch.non_tensor_batch["uid"] = np.array([f"s{step}r{round_}p{i}" for i in range(len(batch))], dtype=object)
        batch.meta_info["temperature"] = self.config.actor_rollout_ref.rollout.temperature
        return batch

    def _generate(self, prompts: DataProto, timing_raw: dict) -> DataProto:
        """n responses per prompt, united with the prompt rows (verl's usual generation block).

        A round with overflow prompts has (overflow + train_batch_size) x n rows; the agent loop splits the batch
        across ``rollout.agent.num_workers`` and asserts they divide it (verl's ``DataProto.chunk``), so the batch is
        padded first and the padding dropped after, as verl's ``_validate`` does (ray_trainer.py:638-653).
        """
        mark_training_rollouts(prompts)  # the streamed validation grader skips them: RLPR scores them itself
        gen_batch = self._get_gen_batch(prompts)
        gen_batch.meta_info["global_steps"] = self.global_steps
        gen_batch = gen_batch.repeat(repeat_times=self.config.actor_rollout_ref.rollout.n, interleave=True)
        workers = int(self.config.actor_rollout_ref.rollout.agent.num_workers)
        gen_batch, pad = pad_dataproto_to_divisor(gen_batch, workers)
        with marked_timer("gen", timing_raw, color="red"):
            out = unpad_dataproto(self.async_rollout_manager.generate_sequences(gen_batch), pad)
            self.checkpoint_manager.sleep_replicas()
        for name, seconds in out.meta_info.pop("timing", {}).items():
            timing_raw[name] = timing_raw.get(name, 0.0) + seconds
        batch = prompts.repeat(repeat_times=self.config.actor_rollout_ref.rollout.n, interleave=True).union(out)
        if "response_mask" not in batch.batch.keys():
            batch.batch["response_mask"] = compute_response_mask(batch)
        return batch

    def _score(self, batch: DataProto, timing_raw: dict):
        """r, r', R for every response of a generated round (one scoring forward), and the forward's token count."""
        mode = self.config.rlpr.debias.mode
        started = time.perf_counter()
        with marked_timer("rlpr_build_batch", timing_raw):
            scoring = build_scoring_batch(batch, self.tokenizer, self.scoring_config, debias_rows=mode == "current")
        log_probs = self._scoring_log_probs(scoring) if scoring.num_rows else None
        r_prime = None
        if mode == "initial":
            wanted = scoring.r_prime_wanted()
            r_prime = dict(zip(wanted, self.debias_cache.get_many(list(wanted), list(wanted.values()))))
        rewards = compute_rewards(scoring, log_probs, self.scoring_config, r_prime)
        timing_raw["rlpr_scoring"] = timing_raw.get("rlpr_scoring", 0.0) + time.perf_counter() - started
        return rewards, scoring.num_tokens()

    def _collect_step_batch(self, step: int, metrics: dict, timing_raw: dict) -> StepRecord:
        """Generate, score and filter rounds until ``train_batch_size`` prompts are kept (or the round cap).

        Which groups train, wait in the overflow cache or are trimmed: ``rlpr.training.dynamic_sampling.select_groups``.
        """
        target = int(self.config.data.train_batch_size)
        mini_batch = int(self.config.actor_rollout_ref.actor.ppo_mini_batch_size)
        max_rounds = int(self.config.rlpr.max_gen_rounds)
        theta = self.std_filter.begin_step(step)
        decisions: list[tuple[str, bool]] = []  # (uid, passed the filter) of every group of the step, in round order
        selection = select_groups(decisions, target, mini_batch)
        taken_rows: dict[str, DataProto] = {}  # uid -> its rows, for groups within the target
        identities: dict[str, object] = {}  # uid -> the prompt's name in step_log
        round_metrics: list[dict] = []
        rounds = scoring_tokens = rollout_tokens = 0
        exhausted = False
        while selection.taken < target and rounds < max_rounds:
            try:
                prompts = self._draw_prompts(step, rounds)
            except DataExhausted:
                exhausted = True
                break
            if rounds > 0:  # a refill round: the replicas sleep since the last one, wake them only to generate
                self.checkpoint_manager.update_weights(self.global_steps)
            rounds += 1
            pristine = prompts.select_idxs(list(range(len(prompts))))  # _generate pops the prompt fields off prompts
            batch = self._generate(prompts, timing_raw)
            if "rm_scores" in batch.batch.keys():  # a rule reward streamed with the rollout; RLPR replaces it
                batch.batch.pop("rm_scores")
            rewards, tokens = self._score(batch, timing_raw)
            scoring_tokens += tokens
            rollout_tokens += int(batch.batch["attention_mask"].sum())
            round_metrics.append(rewards.metrics)
            stds = group_stds(rewards.reward.tolist(), list(batch.non_tensor_batch["uid"]))
            rows_of: dict[str, list[int]] = {}
            for row, uid in enumerate(batch.non_tensor_batch["uid"]):
                rows_of.setdefault(uid, []).append(row)
            sources = [str(batch.non_tensor_batch["data_source"][rows_of[u][0]]) for u in stds]
            self.std_filter.observe(stds.values())
            keep = self.std_filter.keep(list(stds.values()), sources)
            batch.batch["token_level_scores"] = place_on_last_token(rewards.reward, batch.batch["response_mask"])
            for name, values in (("rlpr_r", rewards.r), ("rlpr_r_hat", rewards.r_hat), ("rlpr_reward", rewards.reward)):
                batch.non_tensor_batch[name] = values.numpy().astype(np.float64)
            decisions += zip(stds, keep)
            selection = select_groups(decisions, target, mini_batch)
            taken, overflow = {*selection.kept, *selection.trimmed}, set(selection.overflow)
            prompt_index = {uid: i for i, uid in enumerate(prompts.non_tensor_batch["uid"])}
            for uid in stds:
                if uid in taken:
                    taken_rows[uid] = batch.select_idxs(rows_of[uid])
                    identities[uid] = self._prompt_identity(pristine, prompt_index[uid])
                elif uid in overflow:
                    row = pristine.select_idxs([prompt_index[uid]])
                    row.non_tensor_batch.pop("uid")  # a new uid is given when it is drawn again
                    self.overflow.append(row)
        for name in round_metrics[0] if round_metrics else []:  # counts add up over rounds, the rest is averaged
            values = [m[name] for m in round_metrics]
            metrics[name] = float(sum(values)) if name in COUNT_METRICS else float(np.mean(values))
        ema = self.std_filter.ema
        metrics.update(
            {
                "filter/threshold": theta,
                "filter/ema": float("nan") if ema is None else ema,
                "filter/kept_frac": sum(ok for _, ok in decisions) / len(decisions) if decisions else 0.0,
                "filter/gen_rounds": float(rounds),
                "filter/cache_size": float(len(self.overflow)),
                "filter/round_cap_hit": float(selection.taken < target and rounds >= max_rounds),
                "filter/data_exhausted": float(exhausted),
            }
        )
        if selection.taken < target:  # trained on whole mini-batches only, so verl's update sees the shape it expects
            print(f"rlpr: step {step} kept {selection.taken}/{target} prompts after {rounds} generation rounds"
                  + (" (training data exhausted)" if exhausted else " (rlpr.max_gen_rounds reached)"))  # fmt: skip
        self.step_log.append(
            {"step": step, "threshold": theta, "ema": ema, "kept": [identities[uid] for uid in selection.kept]}
        )
        kept_parts = [taken_rows[uid] for uid in selection.kept]
        return StepRecord(
            batch=DataProto.concat(kept_parts) if kept_parts else None,
            exhausted=exhausted,
            scoring_tokens=scoring_tokens,
            rollout_tokens=rollout_tokens,
        )

    @staticmethod
    def _prompt_identity(prompts: DataProto, index: int) -> object:
        """A stable name of prompt row ``index`` for logs: its dataset index when the row has one, else its uid."""
        extra = prompts.non_tensor_batch.get("extra_info")
        if extra is not None and isinstance(extra[index], dict) and "index" in extra[index]:
            return extra[index]["index"]
        return prompts.non_tensor_batch["uid"][index]

    # ------------------------------------------------------------------------------------------------------------
    # the update (verl's steps)

    def _update(self, batch: DataProto, metrics: dict, timing_raw: dict) -> None:
        if self.config.trainer.balance_batch:
            self._balance_batch(batch, metrics=metrics)
        batch.meta_info["global_token_num"] = torch.sum(batch.batch["attention_mask"], dim=-1).tolist()
        batch.meta_info["images_seqlens"] = []
        batch.meta_info["temperature"] = self.config.actor_rollout_ref.rollout.temperature
        with marked_timer("old_log_prob", timing_raw, color="blue"):
            old_log_prob, mfu = self._compute_old_log_prob(batch)
            actor_config = self.config.actor_rollout_ref.actor
            entropy = agg_loss(
                loss_mat=old_log_prob.batch["entropys"],
                loss_mask=batch.batch["response_mask"],
                loss_agg_mode=actor_config.loss_agg_mode,
                loss_scale_factor=actor_config.loss_scale_factor,
            )
            metrics.update({"actor/entropy": entropy.detach().item(), "perf/mfu/actor_infer": mfu})
            old_log_prob.batch.pop("entropys")
            batch = batch.union(old_log_prob)
            if "rollout_log_probs" in batch.batch.keys():  # the rollout's own log-probs: verl's weight-sync witness
                from verl.utils.debug.metrics import calculate_debug_metrics

                metrics.update(calculate_debug_metrics(batch))  # as verl's fit does (ray_trainer.py:1611-1615)
        if self.use_reference_policy:  # only when a KL term is on
            with marked_timer("ref", timing_raw, color="olive"):
                batch = batch.union(self._compute_ref_log_prob(batch))
        with marked_timer("adv", timing_raw, color="brown"):
            if self.config.algorithm.use_kl_in_reward:
                from verl.trainer.ppo.ray_trainer import apply_kl_penalty

                batch, kl_metrics = apply_kl_penalty(
                    batch, kl_ctrl=self.kl_ctrl_in_reward, kl_penalty=self.config.algorithm.kl_penalty
                )
                metrics.update(kl_metrics)
            else:
                batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
            batch = compute_advantage(
                batch,
                adv_estimator=self.config.algorithm.adv_estimator,
                gamma=self.config.algorithm.gamma,
                lam=self.config.algorithm.lam,
                num_repeat=self.config.actor_rollout_ref.rollout.n,
                norm_adv_by_std_in_grpo=self.config.algorithm.get("norm_adv_by_std_in_grpo", True),
                config=self.config.algorithm,
            )
        with marked_timer("update_actor", timing_raw, color="red"):
            full_mask = batch.batch["response_mask"]
            if self.policy_loss_tokens == "reasoning":  # the loss (and its token count) over the reasoning only
                loss_mask, whole = reasoning_loss_mask(batch.batch["responses"], full_mask, self.tokenizer)
                batch.batch["response_mask"] = loss_mask
                metrics["rlpr/loss_tokens_frac"] = float(loss_mask.sum() / full_mask.sum().clamp(min=1))
                metrics["rlpr/loss_whole_responses"] = float(whole)
            actor_output = self._update_actor(batch)
            batch.batch["response_mask"] = full_mask  # the data metrics count whole responses
        metrics.update(reduce_metrics(actor_output.meta_info["metrics"]))
        return batch

    # ------------------------------------------------------------------------------------------------------------
    # validation: verl's metrics plus Avg@k per source and the general / math / overall averages

    def _create_dataloader(self, train_dataset: Any, val_dataset: Any, collate_fn: Any, train_sampler: Any) -> None:
        """verl's loaders, then the validation rows each k times (k from the file name; rlpr.training.val_samples)."""
        super()._create_dataloader(train_dataset, val_dataset, collate_fn, train_sampler)
        from torchdata.stateful_dataloader import StatefulDataLoader

        from rlpr.training.val_samples import build_val_dataset

        data = self.config.data
        from_file_name = bool(self.config.rlpr.get("val_samples_from_file_name", True))
        if from_file_name and int(self.config.actor_rollout_ref.rollout.val_kwargs.n) != 1:
            raise ValueError(
                "rlpr.val_samples_from_file_name samples k per question from each file's _Avg<k> name; set "
                f"actor_rollout_ref.rollout.val_kwargs.n=1 (got {self.config.actor_rollout_ref.rollout.val_kwargs.n})"
            )
        files = list(data.val_files) if not isinstance(data.val_files, str) else [data.val_files]
        self.val_dataset = build_val_dataset(self.val_dataset, files, data.get("prompt_key", "prompt"), from_file_name)
        loader = self.val_dataloader
        self.val_dataloader = StatefulDataLoader(
            dataset=self.val_dataset,
            batch_size=data.val_batch_size or len(self.val_dataset),
            num_workers=loader.num_workers,
            shuffle=data.get("validation_shuffle", True),
            drop_last=False,
            collate_fn=loader.collate_fn,
        )

    def _val_metrics_update(
        self, data_sources: list, sample_uids: list, reward_extra_infos_dict: dict, sample_turns: list
    ) -> dict:
        metrics = super()._val_metrics_update(data_sources, sample_uids, reward_extra_infos_dict, sample_turns)
        accs = reward_extra_infos_dict.get("acc")
        if accs is not None and len(accs) == len(data_sources):
            from rlpr.evaluation.benchmarks import avg_at_k_metrics

            sources = list(map(str, data_sources))
            metrics.update(avg_at_k_metrics(sources, [float(a) for a in accs], question_ids=list(sample_uids)))
        return metrics

    # ------------------------------------------------------------------------------------------------------------
    # checkpoints

    def rlpr_state_dict(self) -> dict:
        return {
            "filter": self.std_filter.state_dict(),
            "overflow": self.overflow,
            "epoch": self._epoch,
            "dataloader": self.train_dataloader.state_dict(),
            "rng": _rng_state(),
            "step_log": self.step_log,
            "debias_cache_path": None if self.debias_cache is None else str(self.debias_cache.path),
        }

    def load_rlpr_state_dict(self, state: dict) -> None:
        self.std_filter.load_state_dict(state["filter"])
        self.overflow = list(state["overflow"])
        self._epoch = int(state["epoch"])
        self.train_dataloader.load_state_dict(state["dataloader"])
        self._data_iter = None
        self.step_log = list(state["step_log"])
        _set_rng_state(state["rng"])

    def _save_checkpoint(self):
        """Write ``rlpr_state.pt`` into the step folder (atomically), then verl's checkpoint and tracker file.

        verl's ``_save_checkpoint`` advances ``latest_checkpointed_iteration.txt`` as its last act
        (ray_trainer.py:1046-1050), so everything a resume needs must be in the folder before it. Nothing in the
        state changes between here and the next step's start except the RNG (validation may draw from it): ``fit``
        restores the RNG states saved here at the end of the step, so a resumed run continues exactly as this one.
        """
        folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
        os.makedirs(folder, exist_ok=True)
        state = self.rlpr_state_dict()
        path = os.path.join(folder, STATE_FILE)
        write_atomically(path, lambda tmp: torch.save(state, tmp))
        self._rng_at_save = state["rng"]
        super()._save_checkpoint()

    def _resume_folder(self) -> str:
        """The step folder verl's ``_load_checkpoint`` resumed from (ray_trainer.py:1052-1084)."""
        trainer = self.config.trainer
        if trainer.resume_mode == "resume_path":
            folder = trainer.resume_from_path
        else:
            folder = find_latest_ckpt_path(os.path.abspath(trainer.default_local_dir))
        return os.path.abspath(folder)

    def _load_checkpoint(self):
        super()._load_checkpoint()
        if self.global_steps == 0:
            return 0
        folder = self._resume_folder()
        path = os.path.join(folder, STATE_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"resuming from {folder} but it has no {STATE_FILE}: the RLPR filter state, overflow "
                "cache and data position are missing (was it written by another trainer?)"
            )
        self.load_rlpr_state_dict(torch.load(path, weights_only=False))
        print(f"rlpr: resumed filter/overflow/data state from {path}")
        return self.global_steps

    # ------------------------------------------------------------------------------------------------------------

    def fit(self) -> None:
        from verl.utils.tracking import Tracking

        if self._dump_executor._shutdown:  # verl's fit: a second fit() gets a fresh validation-dump executor
            self._init_dump_executor()
        tracker = Tracking(
            project_name=self.config.trainer.project_name,
            experiment_name=self.config.trainer.experiment_name,
            default_backend=self.config.trainer.logger,
            config=OmegaConf.to_container(self.config, resolve=True),
        )
        self.global_steps = 0
        self._load_checkpoint()
        start_metrics = {}
        if self.debias_cache is not None:  # the replicas still sleep (init_workers leaves them asleep)
            started = time.perf_counter()
            start_metrics.update(self._prepare_initial_r_prime())
            start_metrics["timing_s/rlpr_r_prime_initial"] = time.perf_counter() - started
        self.checkpoint_manager.update_weights(self.global_steps)
        if self.config.trainer.get("val_before_train", True) and self.global_steps == 0:
            start_metrics.update(self._validate())
            verl_ray_trainer.pprint(f"Initial validation metrics: {start_metrics}")  # verl's printer, as verl's fit
            if self.config.trainer.get("val_only", False):
                tracker.log(data=start_metrics, step=self.global_steps)
                self._shutdown_dump_executor()
                return
        if start_metrics:
            tracker.log(data=start_metrics, step=self.global_steps)

        self.global_steps += 1
        last_val_metrics = None
        while self.global_steps <= self.total_training_steps:
            step = self.global_steps
            is_last_step = step >= self.total_training_steps
            metrics: dict = {}
            timing_raw: dict = {}
            self._rng_at_save = None
            with marked_timer("step", timing_raw):
                record = self._collect_step_batch(step, metrics, timing_raw)
                batch = record.batch
                is_last_step = is_last_step or record.exhausted
                metrics["filter/skipped_update"] = float(batch is None)
                if batch is None:
                    print(f"rlpr: step {step} kept no prompt group: no update this step")
                else:
                    batch = self._update(batch, metrics, timing_raw)
                # ESI: save before a capacity block expires (ray_trainer.py:1693-1711). A step without an update is
                # saved too: its filter state, overflow cache and data position moved on.
                esi_close_to_expiration = should_save_ckpt_esi(
                    max_steps_duration=self.max_steps_duration,
                    redundant_time=self.config.trainer.esi_redundant_time,
                )
                if self.config.trainer.save_freq > 0 and (
                    is_last_step or step % self.config.trainer.save_freq == 0 or esi_close_to_expiration
                ):
                    if esi_close_to_expiration:
                        print("rlpr: saving a checkpoint: the ESI capacity block expires soon")
                    with marked_timer("save_checkpoint", timing_raw, color="green"):
                        self._save_checkpoint()
                with marked_timer("update_weights", timing_raw, color="red"):
                    self.checkpoint_manager.update_weights(self.global_steps)
            if self.config.trainer.test_freq > 0 and (is_last_step or step % self.config.trainer.test_freq == 0):
                with marked_timer("testing", timing_raw, color="green"):
                    val_metrics = self._validate()
                metrics.update(val_metrics)
                if is_last_step:
                    last_val_metrics = val_metrics
            self.max_steps_duration = max(self.max_steps_duration, timing_raw["step"])
            if metrics["filter/gen_rounds"]:
                metrics["rlpr/scoring_token_ratio"] = record.scoring_tokens / max(1, record.rollout_tokens)
            metrics["timing/rlpr_scoring"] = timing_raw.get("rlpr_scoring", 0.0)
            metrics["timing/rlpr_build_batch_frac"] = timing_raw.get("rlpr_build_batch", 0.0) / timing_raw["step"]
            metrics.update({"training/global_step": step, "training/epoch": self._epoch})
            if batch is not None:
                metrics.update(compute_data_metrics(batch=batch, use_critic=self.use_critic))
                metrics.update(compute_timing_metrics(batch=batch, timing_raw=timing_raw))
                n_gpus = self.resource_pool_manager.get_n_gpus()
                metrics.update(compute_throughout_metrics(batch=batch, timing_raw=timing_raw, n_gpus=n_gpus))
            else:  # no update: the phases that ran (generation, scoring) still show where the step's time went
                metrics.update({f"timing_s/{name}": seconds for name, seconds in timing_raw.items()})
            tracker.log(data=metrics, step=step)
            if self._rng_at_save is not None:  # continue from the RNG states the checkpoint holds
                _set_rng_state(self._rng_at_save)
            self.global_steps += 1
            if is_last_step:
                if record.exhausted and step < self.total_training_steps:
                    print(f"rlpr: training data exhausted after step {step} of {self.total_training_steps}")
                self._shutdown_dump_executor()
                verl_ray_trainer.pprint(f"Final validation metrics: {last_val_metrics}")
                return
        self._shutdown_dump_executor()
