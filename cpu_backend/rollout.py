"""In-process rollout: HF ``generate()`` behind verl's own agent loop (smoke runs and tests only).

``InProcessAgentLoopManager`` stands where verl's ``AgentLoopManager`` stands (``trainer.async_rollout_manager``). It
runs verl's real ``AgentLoopWorker`` in the calling process, so prompts are built from ``raw_prompt`` with the chat
template exactly as on GPU, outputs are padded and laid out by verl's code, and rewards come from verl's real
``RewardLoopWorker`` (``reward.custom_reward_function`` / ``reward.reward_manager``), called in-process instead of
through Ray, but as Ray calls it: the reward worker lives on its own event loop in a thread that is not the main
thread (a Ray async actor's loop), so a reward function that needs the main thread (e.g. a SIGALRM timeout) fails
here as it would on a cluster. Only the LLM server is replaced: ``HFGenerateClient`` answers the agent loop's
``generate`` requests with ``model.generate()`` on the rollout's own copy of the model; ``InProcessCheckpointManager``
copies the actor's weights into it on ``update_weights`` (as verl's checkpoint engine feeds vLLM) and tracks whether
the replicas are asleep (``cpu_backend.replicas``). Real training uses verl's Ray/vLLM workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel
from verl.experimental.agent_loop.agent_loop import AgentLoopManager, AgentLoopWorker
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
from verl.protocol import DataProto
from verl.workers.rollout.replica import TokenOutput

from cpu_backend.replicas import RolloutReplicas

__all__ = ["HFGenerateClient", "InProcessAgentLoopManager", "InProcessCheckpointManager"]


class HFGenerateClient:
    """The agent loop's LLM client (``LLMServerClient.generate`` contract) answered by ``model.generate()``.

    Sampling follows vLLM's conventions as verl passes them: ``temperature == 0`` is greedy, ``top_k == -1`` and
    ``top_p == 1`` disable those filters, at most ``rollout.response_length`` new tokens, the EOS token is kept in the
    returned ids. Each request draws from its own seed, derived from ``rollout.seed``, the trainer step, whether it is
    validation, the generation round within that step and the request's ``priority`` (its row in the batch), so
    outputs do not depend on the order in which the agent loop's coroutines reach the model and a resumed run
    regenerates what an uninterrupted run would.
    """

    def __init__(self, model: PreTrainedModel, rollout_config: DictConfig):
        self.model = model
        self.response_length = int(rollout_config.response_length)
        self.base_seed = int(rollout_config.get("seed", 0))
        self.global_steps: int | None = None
        self._batch_key: tuple = ()

    def begin_batch(self, batch_key: tuple) -> None:
        """Set the key (step, validate, round) that, with each request's priority, seeds the next batch's requests."""
        self._batch_key = batch_key

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        audio_data: list[Any] | None = None,
        priority: int = 0,
        **kwargs: Any,
    ) -> TokenOutput:
        """Generate one response for ``prompt_ids``; returns verl's ``TokenOutput``."""
        check_text_only(request_id, image_data, video_data, audio_data)
        options, want_logprobs = self.generate_options(sampling_params)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(self._request_seed(priority))
            output = self.model.generate(
                torch.tensor([prompt_ids], dtype=torch.long),
                attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                return_dict_in_generate=True,
                output_scores=want_logprobs,
                **options,
            )
        token_ids = output.sequences[0, len(prompt_ids) :].tolist()
        log_probs = None
        if want_logprobs:
            # vLLM's default "processed_logprobs": log-probs after temperature / top-k / top-p processing.
            log_probs = [
                torch.log_softmax(scores[0].float(), dim=-1)[token].item()
                for scores, token in zip(output.scores, token_ids)
            ]
        steps = self.global_steps
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs,
            stop_reason="completed",
            num_preempted=0,
            extra_fields={"global_steps": steps, "min_global_steps": steps, "max_global_steps": steps},
        )

    def generate_options(self, sampling_params: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """``model.generate()`` keyword arguments for verl's ``sampling_params`` (vLLM's conventions, see the class
        docstring), and whether log-probs are wanted."""
        temperature = float(sampling_params.get("temperature", 1.0))
        greedy = temperature == 0.0
        options: dict[str, Any] = {"do_sample": not greedy, "max_new_tokens": self.response_length}
        if not greedy:
            top_k = int(sampling_params.get("top_k", -1))
            options.update(temperature=temperature, top_p=float(sampling_params.get("top_p", 1.0)), top_k=max(top_k, 0))
        # Explicit, as verl sends it: the checkpoint's generation_config defaults must not leak in.
        options["repetition_penalty"] = float(sampling_params.get("repetition_penalty", 1.0))
        return options, bool(sampling_params.get("logprobs", False))

    def _request_seed(self, priority: int) -> int:
        key = repr((self.base_seed, *self._batch_key, int(priority))).encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") % (2**63)


def check_text_only(request_id: str, *media: Any) -> None:
    """Refuse a request with image, video or audio inputs: the CPU backend generates text only."""
    if any(media):
        raise ValueError(f"request {request_id}: the CPU backend generates text only (got multimodal inputs)")


class _LocalActorHandle:
    """Lets verl code call an in-process object as it calls a Ray actor: ``await handle.method.remote(...)``."""

    def __init__(self, target: Any):
        self._target = target

    def __getattr__(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(remote=getattr(self._target, name))


class _ThreadActorHandle:
    """An object built and run on its own event loop in a separate thread, called as verl calls a Ray async actor
    (``await handle.method.remote(...)``); the caller awaits the result from its own loop."""

    def __init__(self, cls: type, *args: Any):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{cls.__name__}-loop", daemon=True)
        self._thread.start()
        self._target = asyncio.run_coroutine_threadsafe(_construct(cls, *args), self._loop).result()

    def __getattr__(self, name: str) -> SimpleNamespace:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._target, name)

        async def remote(*args: Any, **kwargs: Any) -> Any:
            future = asyncio.run_coroutine_threadsafe(_invoke(method, args, kwargs), self._loop)
            return await asyncio.wrap_future(future)

        return SimpleNamespace(remote=remote)


async def _construct(cls: type, *args: Any) -> Any:
    return cls(*args)  # inside the actor's running loop: the loop verl's code captures is the one that runs it


async def _invoke(method: Any, args: tuple, kwargs: dict) -> Any:
    value = method(*args, **kwargs)  # on the actor's loop, sync or async
    return await value if asyncio.iscoroutine(value) else value


class InProcessAgentLoopManager(AgentLoopManager):
    """verl's ``AgentLoopManager`` with one in-process ``AgentLoopWorker`` (and ``RewardLoopWorker``) instead of Ray
    actors. ``generate_sequences(DataProto) -> DataProto`` returns what the GPU manager returns: ``prompts``
    (left-padded), ``responses`` (right-padded), ``input_ids``, ``attention_mask``, ``position_ids``,
    ``response_mask``, ``rm_scores`` and reward extra keys (when ``with_rewards``), ``__num_turns__``,
    ``multi_modal_inputs`` and ``meta_info['timing']``.

    ``with_rewards=False`` skips the reward loop (for trainers that score responses themselves, e.g. RLPR): no
    ``rm_scores``, and the input's non-tensor fields are passed through, as verl's worker does without reward workers.

    As verl's manager, it splits every batch into ``rollout.agent.num_workers`` equal chunks (``DataProto.chunk``
    asserts divisibility); the chunks all run on the one in-process worker. With ``replicas`` it refuses to generate
    while the replicas are asleep.
    """

    def __init__(
        self,
        config: DictConfig,
        client: HFGenerateClient,
        with_rewards: bool = True,
        replicas: RolloutReplicas | None = None,
    ):
        # One event loop for the manager's lifetime: verl's workers capture the loop they were built in.
        self._loop = asyncio.new_event_loop()
        reward_handles = [_ThreadActorHandle(RewardLoopWorker, config, None)] if with_rewards else None
        super().__init__(config, llm_client=client, reward_loop_worker_handles=reward_handles)
        self.client = client
        self.replicas = replicas
        worker = self._loop.run_until_complete(_build(AgentLoopWorker, config, client, None, reward_handles))
        self.agent_loop_workers = [worker] * int(config.actor_rollout_ref.rollout.agent.num_workers)
        self._round_key: tuple = ()
        self._round = 0

    def generate_sequences(self, prompts: DataProto) -> DataProto:
        """Roll out every row of ``prompts`` once (the trainer repeats rows for ``rollout.n`` / ``val_kwargs.n``)."""
        if "raw_prompt" not in prompts.non_tensor_batch:
            raise ValueError(
                "generate_sequences needs the 'raw_prompt' non-tensor field (chat messages); "
                "verl's RLHFDataset provides it with data.return_raw_chat=True"
            )
        if self.replicas is not None:
            self.replicas.require_awake("generate_sequences")
        if "priority" not in prompts.non_tensor_batch:
            prompts.non_tensor_batch["priority"] = np.arange(len(prompts), dtype=np.int64)
        step_key = (prompts.meta_info.get("global_steps", -1), bool(prompts.meta_info.get("validate", False)))
        self._round = self._round + 1 if step_key == self._round_key else 0
        self._round_key = step_key
        self.client.begin_batch((*step_key, self._round))

        # verl's AgentLoopManager.generate_sequences (verl/experimental/agent_loop/agent_loop.py:1247-1260)
        chunks = prompts.chunk(len(self.agent_loop_workers))
        outputs = [
            self._loop.run_until_complete(worker.generate_sequences.remote(chunk))
            for worker, chunk in zip(self.agent_loop_workers, chunks, strict=True)
        ]
        output = DataProto.concat(outputs)
        metrics = [out.meta_info.pop("metrics") for out in outputs]
        timing = self._performance_metrics(metrics, output)
        output.meta_info = {"timing": timing, **outputs[0].meta_info}
        return output


async def _build(cls: type, *args: Any) -> _LocalActorHandle:
    # Built inside the manager's running loop so that the loop verl's code captures is the one that runs it.
    return _LocalActorHandle(cls(*args))


class InProcessCheckpointManager:
    """Stands for verl's ``CheckpointEngineManager``.

    ``update_weights(global_steps)`` copies the actor's weights into the rollout's model with ``sync_weights``
    (``EngineActorWorkerGroup.sync_weights_to``; while the replicas still sleep, as verl requires,
    verl/workers/engine_workers.py:728-733), tells the rollout client the weights' version (vLLM servers report it as
    ``global_steps``), wakes ``replicas`` and records the call; ``sleep_replicas()`` puts them to sleep and is counted.
    """

    def __init__(
        self,
        client: HFGenerateClient,
        replicas: RolloutReplicas | None = None,
        sync_weights: Callable[[PreTrainedModel], None] | None = None,
    ):
        self.client = client
        self.replicas = replicas if replicas is not None else RolloutReplicas()
        self.sync_weights = sync_weights
        self.sleep_calls = 0
        self.update_calls: list[int | None] = []

    def sleep_replicas(self) -> None:
        """Nothing to free on CPU; the replicas are marked asleep and the call is counted."""
        self.replicas.sleep()
        self.sleep_calls += 1

    def update_weights(self, global_steps: int | None = None) -> None:
        """Give the rollout the actor's current weights, record their version and wake the replicas."""
        if self.sync_weights is not None:
            self.sync_weights(self.client.model)
        self.client.global_steps = global_steps
        self.replicas.wake()
        self.update_calls.append(global_steps)
