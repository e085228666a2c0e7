"""verl's real FSDP engine worker, run in process on CPU, against independent float64 computations: log-probs of a plain
per-sequence forward, the PPO gradient of a hand-written loss, a checkpoint round trip and the rollout weight sync; and
the rules a GPU node enforces: no actor call beside awake rollout replicas, micro-batch sizes set and dividing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.distributed.tensor import DTensor
from transformers import AutoConfig, AutoModelForCausalLM
from verl.utils import tensordict_utils as tu
from verl.workers.utils.padding import no_padding_2_padding

from cpu_backend import compose_cpu_config
from cpu_backend.engine_actor import EngineActorWorkerGroup, check_engine_cpu_config
from cpu_backend.replicas import RolloutReplicas
from tests.cpu_backend.conftest import BATCH, base_overrides, no_padding, padded_batch, reference_log_probs
from tests.helpers.params import fast_and_slow

# fp32 forward of a 2-layer model with logits of order 10, against float64: rounding stays near 1e-5. The entropy,
# logsumexp(l) - sum(p * l), subtracts two such numbers and loses one more digit.
ATOL = RTOL = 1e-5
ENTROPY_TOL = 1e-4


@pytest.fixture(scope="module")
def engine_config(tiny_model_dir):
    config = compose_cpu_config(
        overrides=[
            *base_overrides(tiny_model_dir),
            "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
        ]
    )
    config.actor_rollout_ref.actor.optim.total_training_steps = 10
    return config.actor_rollout_ref


def plain_model(config, dtype=torch.float64):
    return AutoModelForCausalLM.from_pretrained(config.model.path, dtype=dtype, attn_implementation="eager")


def engine_log_probs(group: EngineActorWorkerGroup, batch, reference: bool = False, **flags) -> dict:
    data = no_padding(batch, compute_loss=False, **flags)
    call = group.compute_ref_log_prob if reference else group.compute_log_prob
    output = call(data)
    return {key: no_padding_2_padding(tu.get(output, key), data) for key in ("log_probs", "entropy") if key in output}


def on_policy_batch(group: EngineActorWorkerGroup, vocab: int):
    """Old log-probs from the engine itself (ratio 1 on the first step) and advantages +1/-1/+0.5/-0.5."""
    batch = padded_batch(vocab, temperature=1.0, seed=1)
    batch.batch["old_log_probs"] = engine_log_probs(group, batch)["log_probs"]
    batch.batch["advantages"] = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None] * batch.batch["response_mask"]
    return batch


def update(group: EngineActorWorkerGroup, batch, mini_batch_size: int = BATCH) -> dict:
    data = no_padding(
        batch,
        calculate_entropy=False,
        global_batch_size=mini_batch_size,
        mini_batch_size=mini_batch_size,
        epochs=1,
        seed=42,
        dataloader_kwargs={"shuffle": False},
        compute_loss=True,
    )
    return tu.get(group.update_actor(data), "metrics")


def actor_weights(group: EngineActorWorkerGroup) -> dict[str, torch.Tensor]:
    module = group.actor_worker.actor.engine.module
    return {name: param.full_tensor().clone() for name, param in module.state_dict().items()}


# verl's packed layout (use_remove_padding, the recipes' setting) in the fast loop; the padded one is slow.
@pytest.mark.parametrize(
    "remove_padding", fast_and_slow([False, True], ["packed"], id_of=["padded", "packed"].__getitem__)
)
def test_log_probs_and_entropy_equal_a_plain_float64_forward(engine_config, small_tokenizer, remove_padding):
    config = copy.deepcopy(engine_config)
    config.model.use_remove_padding = remove_padding
    group = EngineActorWorkerGroup(config)
    batch = padded_batch(len(small_tokenizer), temperature=0.7)

    output = engine_log_probs(group, batch, calculate_entropy=True)

    expected_log_probs, expected_entropy = reference_log_probs(plain_model(config), batch, 0.7)
    mask = batch.batch["response_mask"].bool()
    torch.testing.assert_close(
        output["log_probs"][mask].double(), expected_log_probs[mask].double(), atol=ATOL, rtol=RTOL
    )
    torch.testing.assert_close(
        output["entropy"][mask].double(), expected_entropy[mask].double(), atol=ENTROPY_TOL, rtol=ENTROPY_TOL
    )


def float64_ppo_gradient(config, batch) -> tuple[dict[str, torch.Tensor], float]:
    """The gradient of verl's on-policy PPO loss with token-mean aggregation, written out: at ratio 1 (inside the
    clip range) it is the gradient of -sum(A * ratio * mask) / sum(mask) with ratio = exp(log p - stop_grad(log p))."""
    model = plain_model(config)
    attention, responses = batch.batch["attention_mask"].bool(), batch.batch["response_mask"].bool()
    n_prompt = batch.batch["prompts"].shape[1]
    total = torch.zeros((), dtype=torch.float64)
    for i in range(len(attention)):  # one unpadded sequence at a time
        ids = batch.batch["input_ids"][i][attention[i]]
        start, n_response = int(attention[i, :n_prompt].sum()), int(responses[i].sum())
        logits = model(ids[None]).logits[0, start - 1 : start + n_response - 1]
        log_probs = torch.log_softmax(logits, dim=-1).gather(-1, ids[start:, None])[:, 0]
        ratio = torch.exp(log_probs - log_probs.detach())
        total = total + (batch.batch["advantages"][i, :n_response].double() * ratio).sum()
    loss = -total / responses.sum()
    loss.backward()
    return {name: param.grad for name, param in model.named_parameters()}, loss.item()


@pytest.mark.parametrize("micro_batch_size", fast_and_slow([1, 4], ["1"]))  # 1: accumulated over micro-batches
def test_update_gradient_equals_the_float64_ppo_gradient(engine_config, small_tokenizer, micro_batch_size):
    config = copy.deepcopy(engine_config)
    config.actor.ppo_micro_batch_size_per_gpu = micro_batch_size
    group = EngineActorWorkerGroup(config)
    batch = on_policy_batch(group, len(small_tokenizer))
    before = actor_weights(group)
    engine = group.actor_worker.actor.engine
    names = {param: name for name, param in engine.module.named_parameters()}
    stepped: dict[str, torch.Tensor] = {}  # the gradients the optimizer steps with (verl zeroes them afterwards)

    def keep_gradients(optimizer, args, kwargs):
        for group_ in optimizer.param_groups:
            for param in group_["params"]:
                grad = param.grad.full_tensor() if isinstance(param.grad, DTensor) else param.grad
                stepped[names[param]] = grad.clone()

    handle = engine.optimizer.register_step_pre_hook(keep_gradients)
    metrics = update(group, batch)
    handle.remove()

    expected, expected_loss = float64_ppo_gradient(config, batch)
    norm = torch.sqrt(sum((g**2).sum() for g in expected.values())).item()
    assert metrics["grad_norm"] == [pytest.approx(norm, rel=1e-4)]
    assert metrics["actor/pg_loss"] == [pytest.approx(expected_loss, abs=ATOL)]  # ratio 1 up to fp32 rounding
    assert metrics["actor/ppo_kl"] == [pytest.approx(0.0, abs=ATOL)]
    # verl clips the gradient to optim.clip_grad before the step.
    scale = min(1.0, config.actor.optim.clip_grad / norm)
    assert set(stepped) == set(expected)
    for name, grad in stepped.items():
        torch.testing.assert_close(grad.double(), expected[name] * scale, atol=1e-5 * scale * norm, rtol=1e-4)
    assert all(not torch.equal(before[k], v) for k, v in actor_weights(group).items())


def test_reference_keeps_the_initial_weights(engine_config, small_tokenizer):
    config = copy.deepcopy(engine_config)
    config.actor.use_kl_loss = True
    group = EngineActorWorkerGroup(config, with_reference=True)
    batch = on_policy_batch(group, len(small_tokenizer))
    initial = engine_log_probs(group, batch, reference=True)["log_probs"]
    expected, _ = reference_log_probs(plain_model(config), batch, 1.0)
    mask = batch.batch["response_mask"].bool()
    torch.testing.assert_close(initial[mask].double(), expected[mask].double(), atol=ATOL, rtol=RTOL)
    batch.batch["ref_log_prob"] = initial

    update(group, batch)

    assert not torch.equal(engine_log_probs(group, batch)["log_probs"][mask], initial[mask])
    torch.testing.assert_close(engine_log_probs(group, batch, reference=True)["log_probs"], initial, rtol=0, atol=0)


def test_compute_ref_log_prob_needs_a_reference(engine_config, small_tokenizer):
    group = EngineActorWorkerGroup(engine_config)
    with pytest.raises(RuntimeError, match="use_kl_loss"):
        engine_log_probs(group, padded_batch(len(small_tokenizer), temperature=1.0), reference=True)


def test_checkpoint_round_trip_resumes_the_same_trajectory(engine_config, small_tokenizer, tmp_path):
    group = EngineActorWorkerGroup(engine_config)
    batch = on_policy_batch(group, len(small_tokenizer))
    update(group, batch)
    saved = actor_weights(group)
    group.save_checkpoint(str(tmp_path / "actor"), None, 1)
    update(group, batch)  # weights, Adam moments and the LR schedule move on
    after_one_more = actor_weights(group)
    update(group, batch)

    group.load_checkpoint(str(tmp_path / "actor"))

    for name, value in actor_weights(group).items():
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0)
    update(group, batch)  # from the restored optimizer state the same step is taken again
    for name, value in actor_weights(group).items():
        torch.testing.assert_close(value, after_one_more[name], rtol=0, atol=0)
    # verl's format: sharded model/optimizer/extra state; huggingface/ holds config and tokenizer (weights only with
    # checkpoint.save_contents containing hf_model).
    assert AutoConfig.from_pretrained(str(tmp_path / "actor" / "huggingface")).vocab_size == len(small_tokenizer)


def test_sync_weights_to_gives_the_rollout_the_actor_weights(engine_config, small_tokenizer):
    group = EngineActorWorkerGroup(engine_config)
    update(group, on_policy_batch(group, len(small_tokenizer)))
    rollout = plain_model(engine_config, dtype=torch.float32)

    group.sync_weights_to(rollout)

    weights = actor_weights(group)
    for name, value in rollout.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)


def test_config_that_cannot_run_on_cpu_is_named(tiny_model_dir):
    config = compose_cpu_config(
        overrides=[
            *base_overrides(tiny_model_dir),
            "actor_rollout_ref.actor.strategy=fsdp",
            "++actor_rollout_ref.model.override_config.attn_implementation=flash_attention_2",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=null",
            "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
        ]
    ).actor_rollout_ref
    with pytest.raises(ValueError) as error:
        check_engine_cpu_config(config, with_reference=True)
    message = str(error.value)
    assert "actor_rollout_ref.actor.strategy must be fsdp2, got 'fsdp'" in message
    assert "attn_implementation must be sdpa or eager on CPU, got 'flash_attention_2'" in message
    assert "use_dynamic_bsz and actor_rollout_ref.rollout.log_prob_use_dynamic_bsz must be equal" in message
    assert "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu must be set" in message
    config.rollout.log_prob_use_dynamic_bsz = False  # now the actor's own log-prob micro-batch size is missing
    with pytest.raises(ValueError, match=r"actor_rollout_ref\.rollout\.log_prob_micro_batch_size_per_gpu must be set"):
        EngineActorWorkerGroup(config)


def test_actor_runs_only_while_replicas_sleep_and_on_batches_that_divide_into_micro_batches(
    engine_config, small_tokenizer
):
    """verl never runs the actor beside awake rollout replicas (verl/workers/engine_workers.py:728-733: sleep before
    update_weights, awake after it), and asserts that a log-prob batch splits into micro-batches
    (verl/workers/engine/utils.py:125), which the trainer pads for."""
    config = copy.deepcopy(engine_config)
    config.rollout.log_prob_micro_batch_size_per_gpu = 3
    config.ref.log_prob_micro_batch_size_per_gpu = 3
    config.actor.ppo_micro_batch_size_per_gpu = 1
    replicas = RolloutReplicas()  # asleep, as init_workers leaves them
    group = EngineActorWorkerGroup(config, with_reference=True, replicas=replicas)
    four = padded_batch(len(small_tokenizer), temperature=1.0, seed=1)
    for reference in (False, True):
        with pytest.raises(AssertionError, match="divisible by force_group_size \\* micro_batch_size_per_gpu"):
            engine_log_probs(group, four, reference=reference)
    three = four[:3]
    three.batch["old_log_probs"] = engine_log_probs(group, three)["log_probs"]
    three.batch["advantages"] = torch.tensor([1.0, -1.0, 0.5])[:, None] * three.batch["response_mask"]

    replicas.wake()
    for call in ("compute_log_prob", "compute_ref_log_prob"):
        with pytest.raises(RuntimeError, match=f"{call} ran while the rollout replicas are awake"):
            engine_log_probs(group, three, reference=call == "compute_ref_log_prob")
    with pytest.raises(RuntimeError, match="update_actor ran while the rollout replicas are awake"):
        update(group, three, mini_batch_size=3)
    replicas.sleep()
    assert metrics_have_loss(update(group, three, mini_batch_size=3))


def metrics_have_loss(metrics: dict) -> bool:
    return "actor/pg_loss" in metrics and all(value == value for value in metrics["actor/pg_loss"])  # not NaN
