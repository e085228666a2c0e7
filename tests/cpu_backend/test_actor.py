"""The in-process actor worker group against independent computations (plain forward, verl's own formulas), and its
checkpoints (weights, optimizer and LR-scheduler state, RNG round-trip)."""

from __future__ import annotations

import copy
import os
import random

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.utils.model import compute_position_id_with_mask
from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

from cpu_backend import CpuActorRolloutWorkerGroup

BATCH, PROMPT, RESPONSE = 4, 6, 5


def padded_batch(vocab: int, temperature: float, seed: int = 0) -> DataProto:
    """Left-padded prompts and right-padded responses of different lengths, as verl's rollout lays them out."""
    gen = torch.Generator().manual_seed(seed)
    prompts = torch.randint(0, vocab, (BATCH, PROMPT), generator=gen)
    responses = torch.randint(0, vocab, (BATCH, RESPONSE), generator=gen)
    prompt_mask = torch.ones(BATCH, PROMPT, dtype=torch.long)
    prompt_mask[0, :2] = 0
    prompt_mask[2, :1] = 0
    response_mask = torch.ones(BATCH, RESPONSE, dtype=torch.long)
    response_mask[1, 3:] = 0
    response_mask[3, 1:] = 0
    attention_mask = torch.cat([prompt_mask, response_mask], dim=1)
    return DataProto.from_single_dict(
        {
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": attention_mask,
            "position_ids": compute_position_id_with_mask(attention_mask),
            "response_mask": response_mask,
        },
        meta_info={"temperature": temperature},
    )


def no_padding(batch: DataProto, **non_tensor):
    data = left_right_2_no_padding(batch.to_tensordict())
    tu.assign_non_tensor(data, **non_tensor)
    return data


def reference_log_probs(model, batch: DataProto, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain per-sequence forward without padding: log_softmax(logits / T) of each response token, and the entropy."""
    log_probs = torch.zeros(BATCH, RESPONSE)
    entropy = torch.zeros(BATCH, RESPONSE)
    for i in range(BATCH):
        mask = batch.batch["attention_mask"][i].bool()
        ids = batch.batch["input_ids"][i][mask]
        n_prompt = int(batch.batch["attention_mask"][i, :PROMPT].sum())
        n_response = int(batch.batch["response_mask"][i].sum())
        with torch.no_grad():
            logp = torch.log_softmax(model(ids[None]).logits[0] / temperature, dim=-1)
        rows = logp[n_prompt - 1 : n_prompt + n_response - 1]
        log_probs[i, :n_response] = rows.gather(-1, ids[n_prompt:, None])[:, 0]
        entropy[i, :n_response] = -(rows.exp() * rows).sum(-1)
    return log_probs, entropy


def make_group(config, tokenizer, **kwargs) -> CpuActorRolloutWorkerGroup:
    return CpuActorRolloutWorkerGroup.from_pretrained(config.actor_rollout_ref, tokenizer=tokenizer, **kwargs)


@pytest.mark.parametrize(
    "micro", [{}, {"log_prob_micro_batch_size_per_gpu": 1}, {"log_prob_use_dynamic_bsz": True,
                                                                "log_prob_max_token_len_per_gpu": 12}]
)
def test_log_probs_and_entropy_equal_a_plain_forward(grpo_config, small_tokenizer, micro):
    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref.rollout.update(micro)
    config.actor_rollout_ref.actor.use_dynamic_bsz = config.actor_rollout_ref.rollout.log_prob_use_dynamic_bsz
    group = make_group(config, small_tokenizer)
    batch = padded_batch(len(small_tokenizer), temperature=0.7)
    data = no_padding(batch, calculate_entropy=True)

    output = group.compute_log_prob(data)

    log_probs = no_padding_2_padding(tu.get(output, "log_probs"), data)
    entropy = no_padding_2_padding(tu.get(output, "entropy"), data)
    expected_log_probs, expected_entropy = reference_log_probs(group.model, batch, 0.7)
    torch.testing.assert_close(log_probs, expected_log_probs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy, expected_entropy, atol=1e-4, rtol=1e-4)
    assert tu.get(output, "metrics") == {"mfu": 0.0}
    # Entry j predicts token j + 1; each sequence's last entry has no next token and is 0.
    lengths = data["input_ids"].offsets().diff()
    last = tu.get(output, "log_probs").values()[lengths.cumsum(0) - 1]
    assert torch.all(last == 0)


def test_temperature_is_required_and_named(grpo_config, small_tokenizer):
    group = make_group(grpo_config, small_tokenizer)
    batch = padded_batch(len(small_tokenizer), temperature=1.0)
    batch.meta_info.clear()
    with pytest.raises(ValueError, match="temperature"):
        group.compute_log_prob(no_padding(batch))


def test_reference_log_probs_need_a_reference(grpo_config, small_tokenizer):
    group = make_group(grpo_config, small_tokenizer)
    batch = padded_batch(len(small_tokenizer), temperature=1.0)
    with pytest.raises(RuntimeError, match="use_kl_loss"):
        group.compute_ref_log_prob(no_padding(batch))


@pytest.mark.parametrize(("micro", "section"), [(3, "rollout"), (None, "rollout"), (3, "ref"), (None, "ref")])
def test_log_prob_micro_batch_must_be_set_and_divide_the_batch(grpo_config, small_tokenizer, micro, section):
    """verl asserts it (verl/workers/engine/utils.py:125, engine_workers.py:636): no silent single micro-batch."""
    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref[section].log_prob_micro_batch_size_per_gpu = micro
    group = make_group(config, small_tokenizer, with_reference=section == "ref")
    data = no_padding(padded_batch(len(small_tokenizer), temperature=1.0))  # 4 sequences
    compute = group.compute_log_prob if section == "rollout" else group.compute_ref_log_prob
    with pytest.raises(ValueError, match=rf"actor_rollout_ref\.{section}\.log_prob_micro_batch_size_per_gpu={micro}"):
        compute(data)


def test_dynamic_batch_size_must_agree_between_actor_and_log_probs(grpo_config, small_tokenizer):
    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref.rollout.log_prob_use_dynamic_bsz = True
    with pytest.raises(ValueError, match="log_prob_use_dynamic_bsz"):
        make_group(config, small_tokenizer)


def test_actor_refuses_to_run_beside_awake_replicas(grpo_config, small_tokenizer):
    """verl never runs the actor while the rollout replicas are awake (verl/workers/engine_workers.py:728-733)."""
    from cpu_backend.replicas import RolloutReplicas

    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu = 2
    replicas = RolloutReplicas()
    group = make_group(config, small_tokenizer, with_reference=True, replicas=replicas)
    batch = training_batch(group, len(small_tokenizer))  # asleep: allowed
    replicas.wake()
    with pytest.raises(RuntimeError, match="compute_log_prob ran while the rollout replicas are awake"):
        group.compute_log_prob(no_padding(batch))
    with pytest.raises(RuntimeError, match="compute_ref_log_prob ran while"):
        group.compute_ref_log_prob(no_padding(batch))
    with pytest.raises(RuntimeError, match="update_actor ran while"):
        update(group, batch)
    replicas.sleep()
    assert "actor/pg_loss" in update(group, batch)


def training_batch(group: CpuActorRolloutWorkerGroup, vocab: int) -> DataProto:
    """A fixed PPO batch: on-policy old log-probs and advantages +1/-1/+0.5/-0.5 per sequence."""
    batch = padded_batch(vocab, temperature=1.0, seed=1)
    old = no_padding_2_padding(
        tu.get(group.compute_log_prob(no_padding(batch)), "log_probs"), no_padding(batch)
    )
    batch.batch["old_log_probs"] = old
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None] * batch.batch["response_mask"]
    batch.batch["advantages"] = advantages
    return batch


def update(group: CpuActorRolloutWorkerGroup, batch: DataProto, calculate_entropy: bool = False) -> dict:
    data = no_padding(
        batch,
        calculate_entropy=calculate_entropy,
        global_batch_size=2,
        mini_batch_size=2,
        epochs=1,
        seed=42,
        dataloader_kwargs={"shuffle": False},
        compute_loss=True,
    )
    return tu.get(group.update_actor(data), "metrics")


def current_log_probs(group, batch) -> torch.Tensor:
    data = no_padding(batch)
    return no_padding_2_padding(tu.get(group.compute_log_prob(data), "log_probs"), data)


def test_update_actor_follows_the_ppo_objective(grpo_config, small_tokenizer):
    group = make_group(grpo_config, small_tokenizer)
    batch = training_batch(group, len(small_tokenizer))
    mask = batch.batch["response_mask"].bool()
    advantages = batch.batch["advantages"]
    before = {k: v.clone() for k, v in group.model.state_dict().items()}

    metrics = update(group, batch)

    # Two mini-batches of 2 -> one value per mini-batch; lr is reported once per call.
    assert set(metrics) >= {"actor/pg_loss", "actor/pg_clipfrac", "actor/ppo_kl", "loss", "grad_norm", "mfu", "lr"}
    assert all(isinstance(v, float) for values in metrics.values() for v in values)
    assert len(metrics["actor/pg_loss"]) == 2 and metrics["lr"] == [1e-3]
    # The first mini-batch is on-policy (ratio 1): the token-mean PPO loss is minus the token-mean advantage.
    first = -(advantages[:2][mask[:2]]).mean().item()
    assert metrics["actor/pg_loss"][0] == pytest.approx(first, abs=1e-6)
    assert metrics["actor/ppo_kl"][0] == pytest.approx(0.0, abs=1e-6)
    assert any(not torch.equal(before[k], v) for k, v in group.model.state_dict().items())

    # More updates on the same batch keep lowering the surrogate loss: sequences with positive advantage gain
    # log-probability, negative ones lose it.
    for _ in range(3):
        update(group, batch)
    new = current_log_probs(group, batch)
    delta = ((new - batch.batch["old_log_probs"]) * mask).sum(-1) / mask.sum(-1)
    assert delta[0] > 0 and delta[2] > 0 and delta[1] < 0 and delta[3] < 0
    surrogate_before = -(advantages * mask).sum() / mask.sum()
    ratio = torch.exp(new - batch.batch["old_log_probs"])
    assert (-(advantages * ratio * mask).sum() / mask.sum()) < surrogate_before


def test_entropy_and_kl_terms(grpo_config, small_tokenizer):
    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref.actor.update({"use_kl_loss": True, "kl_loss_coef": 0.5, "entropy_coeff": 0.01})
    group = make_group(config, small_tokenizer, with_reference=True)
    batch = training_batch(group, len(small_tokenizer))
    mask = batch.batch["response_mask"].bool()
    reference = group.compute_ref_log_prob(no_padding(batch))
    batch.batch["ref_log_prob"] = no_padding_2_padding(tu.get(reference, "log_probs"), no_padding(batch))
    _, entropy = reference_log_probs(group.model, batch, 1.0)

    metrics = update(group, batch, calculate_entropy=True)

    assert metrics["actor/entropy_loss"][0] == pytest.approx(entropy[:2][mask[:2]].mean().item(), rel=1e-4)
    assert metrics["kl_loss"][0] == pytest.approx(0.0, abs=1e-6)  # actor == reference before the first step
    assert metrics["kl_loss"][1] > 0  # the second mini-batch sees the updated actor
    assert metrics["kl_coef"] == [0.5, 0.5]
    # The reference stays frozen at the initial weights.
    again = group.compute_ref_log_prob(no_padding(batch))
    torch.testing.assert_close(tu.get(again, "log_probs").values(), tu.get(reference, "log_probs").values())


def test_kl_loss_without_reference_batch_is_named(grpo_config, small_tokenizer):
    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref.actor.use_kl_loss = True
    group = make_group(config, small_tokenizer, with_reference=True)
    batch = training_batch(group, len(small_tokenizer))
    with pytest.raises(ValueError, match="ref_log_prob"):
        update(group, batch)


def test_micro_batch_that_does_not_divide_the_mini_batch_is_named(grpo_config, small_tokenizer):
    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu = 3
    group = make_group(config, small_tokenizer)
    batch = training_batch(group, len(small_tokenizer))
    with pytest.raises(ValueError, match="actor.ppo_micro_batch_size_per_gpu=3"):
        update(group, batch)


def snapshot(group: CpuActorRolloutWorkerGroup) -> dict:
    return {k: v.clone() for k, v in group.model.state_dict().items()}


def test_save_then_load_restores_weights_optimizer_and_rng(grpo_config, small_tokenizer, tmp_path):
    group = CpuActorRolloutWorkerGroup.from_pretrained(grpo_config.actor_rollout_ref, tokenizer=small_tokenizer)
    batch = training_batch(group, len(small_tokenizer))
    update(group, batch)
    saved_weights = snapshot(group)
    saved_optimizer = copy.deepcopy(group.optimizer.state_dict())
    saved_scheduler = group.lr_scheduler.state_dict()

    group.save_checkpoint(str(tmp_path / "global_step_1" / "actor"), None, 1, max_ckpt_to_keep=None)
    draws = (torch.rand(3), np.random.rand(3), random.random())
    update(group, batch)  # moves weights, optimizer moments and the scheduler on
    assert any(not torch.equal(saved_weights[k], v) for k, v in group.model.state_dict().items())

    group.load_checkpoint(str(tmp_path / "global_step_1" / "actor"), del_local_after_load=False)

    for key, value in group.model.state_dict().items():
        torch.testing.assert_close(value, saved_weights[key], rtol=0, atol=0)
    restored = group.optimizer.state_dict()
    for param_id, state in saved_optimizer["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(restored["state"][param_id][name], value, rtol=0, atol=0)
    assert group.lr_scheduler.state_dict() == saved_scheduler
    assert torch.equal(torch.rand(3), draws[0])
    assert np.array_equal(np.random.rand(3), draws[1])
    assert random.random() == draws[2]
    # The saved model folder is a plain Hugging Face checkpoint with its tokenizer.
    hf_dir = tmp_path / "global_step_1" / "actor" / "huggingface"
    reloaded = AutoModelForCausalLM.from_pretrained(str(hf_dir))
    torch.testing.assert_close(reloaded.state_dict()["lm_head.weight"], saved_weights["lm_head.weight"])
    assert (hf_dir / "tokenizer_config.json").exists()


def test_max_ckpt_to_keep_deletes_older_checkpoints(grpo_config, small_tokenizer, tmp_path):
    group = CpuActorRolloutWorkerGroup.from_pretrained(grpo_config.actor_rollout_ref)
    paths = [str(tmp_path / f"global_step_{step}" / "actor") for step in (1, 2, 3)]
    for step, path in enumerate(paths, start=1):
        group.save_checkpoint(path, None, step, max_ckpt_to_keep=2)
    assert [os.path.isdir(path) for path in paths] == [False, True, True]


def test_loading_a_folder_that_is_not_a_checkpoint_names_it(grpo_config, tmp_path):
    group = CpuActorRolloutWorkerGroup.from_pretrained(grpo_config.actor_rollout_ref)
    with pytest.raises(FileNotFoundError, match="not-a-checkpoint"):
        group.load_checkpoint(str(tmp_path / "not-a-checkpoint"))


@pytest.mark.parametrize("loss_agg_mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_update_is_independent_of_the_micro_batch_split(grpo_config, small_tokenizer, loss_agg_mode):
    """verl normalizes each micro-batch's loss by the whole mini-batch, so accumulation equals one big batch.

    What the split may change is the accumulated gradient, so that is what is compared, captured just before the
    optimizer step and in float64: comparing weights after an Adam step would amplify float noise wherever a
    gradient entry is near zero (Adam divides by its own running magnitude), and float32 rounding differs by machine.
    """
    runs = []
    for micro in (1, 2):
        config = copy.deepcopy(grpo_config)
        config.actor_rollout_ref.actor.update({"ppo_micro_batch_size_per_gpu": micro, "loss_agg_mode": loss_agg_mode})
        group = make_group(config, small_tokenizer)
        group.model.double()  # in place: the optimizer keeps the same parameter objects
        grads: dict[str, torch.Tensor] = {}

        def capture(_optimizer, _args, _kwargs, _grads=grads, _model=group.model):
            _grads.update({name: p.grad.clone() for name, p in _model.named_parameters() if p.grad is not None})

        group.optimizer.register_step_pre_hook(capture)
        metrics = update(group, training_batch(group, len(small_tokenizer)))
        runs.append((metrics, grads))
    (metrics_1, grads_1), (metrics_2, grads_2) = runs
    assert grads_1 and grads_1.keys() == grads_2.keys()
    for key in ("loss", "actor/pg_loss", "grad_norm"):  # the gradient norm is scale-sensitive
        assert metrics_1[key] == pytest.approx(metrics_2[key], rel=1e-9, abs=1e-12), key
    scale = max(float(g.abs().max()) for g in grads_1.values())
    for name, grad in grads_1.items():
        assert grad.dtype == torch.float64, name
        # float64 accumulation order differs between the splits: ~1e-16 relative; 1e-10 of the largest entry is ample
        torch.testing.assert_close(grad, grads_2[name], rtol=0, atol=1e-10 * scale)
