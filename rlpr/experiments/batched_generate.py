"""A rollout client for the in-process CPU backend that answers concurrent requests with ONE batched ``generate()``.

``cpu_backend.HFGenerateClient`` runs ``model.generate()`` once per request (one response at a time, ~10 a second on
2 cores), which makes a learning curve of 128 responses a step and hundreds of validation samples too slow. verl's
agent loop sends all the requests of a batch concurrently (``asyncio.gather`` over the rows, on one event loop), so
this client queues them, waits until no new request arrived for ``QUIET_S`` seconds, and generates the queue as one
left-padded batch: the same model, sampling settings and length limit, one sampling seed per batch (derived as the
parent's per-request seed is, from the batch key and the smallest priority in the batch) instead of one per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import torch
from verl.workers.rollout.replica import TokenOutput

from cpu_backend.rollout import HFGenerateClient, check_text_only

QUIET_S = 0.005


class BatchedHFGenerateClient(HFGenerateClient):
    """``HFGenerateClient`` with concurrent requests generated together (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pending: list[tuple[list[int], dict[str, Any], int, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

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
        check_text_only(request_id, image_data, video_data, audio_data)
        future = asyncio.get_running_loop().create_future()
        self._pending.append((list(prompt_ids), dict(sampling_params), int(priority), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_when_quiet())
        return await future

    async def _flush_when_quiet(self) -> None:
        while True:
            seen = len(self._pending)
            await asyncio.sleep(QUIET_S)
            if len(self._pending) == seen:
                break
        batch, self._pending = self._pending, []
        groups: dict[tuple, list] = {}  # requests with different sampling settings are generated apart
        for item in batch:
            groups.setdefault(tuple(sorted(item[1].items())), []).append(item)
        for items in groups.values():
            try:
                outputs = self._generate_batch([i[0] for i in items], items[0][1], min(i[2] for i in items))
            except Exception as err:  # every waiting request learns of the failure
                for *_, future in items:
                    future.set_exception(err)
                continue
            for (*_, future), output in zip(items, outputs):
                future.set_result(output)

    def _generate_batch(self, prompts: list[list[int]], sampling_params: dict[str, Any], priority: int):
        options, want_logprobs = self.generate_options(sampling_params)
        config = self.model.generation_config
        pad = config.pad_token_id if config.pad_token_id is not None else 0
        eos = config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(self._request_seed(priority))
            output = self.model.generate(
                ids,
                attention_mask=mask,
                return_dict_in_generate=True,
                output_scores=want_logprobs,
                pad_token_id=pad,
                **options,
            )
        steps = self.global_steps
        results = []
        for row in range(len(prompts)):
            tokens = output.sequences[row, width:].tolist()
            cut = next((k + 1 for k, t in enumerate(tokens) if t in eos_ids), len(tokens))  # keep the EOS token
            tokens = tokens[:cut]
            log_probs = None
            if want_logprobs:
                log_probs = [
                    torch.log_softmax(output.scores[k][row].float(), dim=-1)[t].item() for k, t in enumerate(tokens)
                ]
            results.append(
                TokenOutput(
                    token_ids=tokens,
                    log_probs=log_probs,
                    stop_reason="completed",
                    num_preempted=0,
                    extra_fields={"global_steps": steps, "min_global_steps": steps, "max_global_steps": steps},
                )
            )
        return results
