"""The in-process rollout (verl's agent loop and reward loop around HF generate()) against direct computations."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from transformers import AutoModelForCausalLM
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

from cpu_backend import EngineActorWorkerGroup, HFGenerateClient, InProcessAgentLoopManager
from tests.cpu_backend.toy_reward import compute_score

MESSAGES = [
    [{"role": "user", "content": "What is 1 + 1?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a prime number."}],
    [{"role": "user", "content": "Say hi"}],
]


def gen_batch(step: int = 1, validate: bool = False) -> DataProto:
    """A generation batch as RayPPOTrainer._get_gen_batch hands it over (raw chat + reward keys)."""
    n = len(MESSAGES)
    raw_prompt = np.empty(n, dtype=object)
    for i, messages in enumerate(MESSAGES):
        raw_prompt[i] = messages
    return DataProto.from_single_dict(
        {
            "raw_prompt": raw_prompt,
            "data_source": np.array(["toy"] * n, dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": t} for t in ("2", "7", "hi")], dtype=object),
            "extra_info": np.array([{"index": i} for i in range(n)], dtype=object),
        },
        meta_info={"global_steps": step, "validate": validate},
    )


def make_manager(config, model, with_rewards=True) -> InProcessAgentLoopManager:
    client = HFGenerateClient(model, config.actor_rollout_ref.rollout)
    return InProcessAgentLoopManager(config, client, with_rewards=with_rewards)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()


def test_layout_and_streamed_rewards(grpo_config, model, small_tokenizer):
    out = make_manager(grpo_config, model).generate_sequences(gen_batch())

    prompts, responses = out.batch["prompts"], out.batch["responses"]
    attention, response_mask = out.batch["attention_mask"], out.batch["response_mask"]
    assert prompts.shape == (3, 64) and responses.shape == (3, 32)
    assert torch.equal(out.batch["input_ids"], torch.cat([prompts, responses], dim=1))
    prompt_attention, response_attention = attention[:, :64], attention[:, 64:]
    assert torch.equal(response_mask, response_attention)
    expected_positions = (torch.cumsum(attention, dim=1) - 1).clamp(min=0) * attention
    assert torch.equal(out.batch["position_ids"] * attention, expected_positions)
    for i, messages in enumerate(MESSAGES):
        # Prompts: the chat template with the generation prompt, left-padded.
        text = small_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        expected = small_tokenizer.encode(text, add_special_tokens=False)
        n_prompt, n_response = int(prompt_attention[i].sum()), int(response_attention[i].sum())
        assert prompt_attention[i, : 64 - n_prompt].sum() == 0
        assert prompts[i, 64 - n_prompt :].tolist() == expected
        # Responses: right-padded, ending with EOS unless cut at the length limit.
        assert response_attention[i, :n_response].all() and not response_attention[i, n_response:].any()
        if n_response < 32:
            assert responses[i, n_response - 1] == small_tokenizer.eos_token_id
        # Rewards: the user's compute_score on the decoded response, on the last response token only.
        text = small_tokenizer.decode(responses[i, :n_response], skip_special_tokens=True)
        score = compute_score("toy", text, ("2", "7", "hi")[i])
        assert out.batch["rm_scores"][i, n_response - 1] == score["score"]
        assert out.batch["rm_scores"][i].abs().sum() == abs(score["score"])
        assert out.non_tensor_batch["length"][i] == score["length"]
    assert out.meta_info["reward_extra_keys"] == ["score", "length"]
    assert out.non_tensor_batch["__num_turns__"].tolist() == [2, 2, 2]
    assert list(out.non_tensor_batch["multi_modal_inputs"]) == [{}, {}, {}]
    assert "agent_loop/generate_sequences/mean" in out.meta_info["timing"]


def test_sampling_is_seeded_per_request_and_leaves_global_rng_alone(grpo_config, model):
    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref.rollout.response_length = 8
    first = make_manager(config, model)
    torch.manual_seed(123)
    expected_draw = torch.rand(2)
    torch.manual_seed(123)
    a = first.generate_sequences(gen_batch(step=1)).batch["responses"]
    assert torch.equal(torch.rand(2), expected_draw)

    fresh = make_manager(config, model)
    assert torch.equal(fresh.generate_sequences(gen_batch(step=1)).batch["responses"], a)
    # A second round at the same step (e.g. a refill round) and the next step draw new samples.
    assert not torch.equal(fresh.generate_sequences(gen_batch(step=1)).batch["responses"], a)
    assert not torch.equal(fresh.generate_sequences(gen_batch(step=2)).batch["responses"], a)


def test_validation_uses_val_kwargs_greedy_decoding(grpo_config, model):
    out = make_manager(grpo_config, model).generate_sequences(gen_batch(validate=True))
    for i in range(len(MESSAGES)):
        prompt = out.batch["prompts"][i][out.batch["attention_mask"][i, :64].bool()]
        greedy = model.generate(prompt[None], max_new_tokens=32, do_sample=False)[0, len(prompt) :]
        n_response = int(out.batch["response_mask"][i].sum())
        assert out.batch["responses"][i, :n_response].tolist() == greedy.tolist()


def test_rollout_log_probs_equal_the_actor_forward(grpo_config, model, small_tokenizer):
    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref.rollout.temperature = 0.8
    config.actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu = 3
    group = EngineActorWorkerGroup(config.actor_rollout_ref)  # verl's worker, over the same initial weights
    out = make_manager(config, model).generate_sequences(gen_batch())

    out.meta_info["temperature"] = 0.8
    data = left_right_2_no_padding(out.select(batch_keys=list(out.batch.keys())).to_tensordict())
    tu.assign_non_tensor(data, calculate_entropy=False, compute_loss=False)  # as the trainer sends it
    actor = no_padding_2_padding(tu.get(group.compute_log_prob(data), "log_probs"), data)
    mask = out.batch["response_mask"].bool()
    torch.testing.assert_close(out.batch["rollout_log_probs"][mask], actor[mask], atol=1e-4, rtol=1e-4)


def test_without_rewards_inputs_pass_through(grpo_config, model):
    out = make_manager(grpo_config, model, with_rewards=False).generate_sequences(gen_batch())
    assert "rm_scores" not in out.batch.keys()
    assert "reward_extra_keys" not in out.meta_info
    assert [r["ground_truth"] for r in out.non_tensor_batch["reward_model"]] == ["2", "7", "hi"]
    assert len(out.non_tensor_batch["raw_prompt"]) == 3


def test_missing_raw_prompt_is_named(grpo_config, model):
    batch = gen_batch()
    batch.non_tensor_batch.pop("raw_prompt")
    with pytest.raises(ValueError, match="raw_prompt"):
        make_manager(grpo_config, model, with_rewards=False).generate_sequences(batch)


def test_rewards_are_called_as_the_ray_reward_loop_calls_them(grpo_config, model):
    # verl's RewardLoopWorker is a Ray async actor: its event loop runs in a thread that is not the main thread.
    config = copy.deepcopy(grpo_config)
    config.reward.custom_reward_function.name = "where_am_i"
    out = make_manager(config, model).generate_sequences(gen_batch())
    assert out.non_tensor_batch["main_thread"].tolist() == [0.0, 0.0, 0.0]


def test_rlpr_grader_skips_marked_training_rollouts_through_the_reward_loop(grpo_config, model):
    from rlpr.evaluation.validation import NOT_GRADED, mark_training_rollouts

    config = copy.deepcopy(grpo_config)
    config.reward.custom_reward_function.path = "pkg://rlpr.evaluation.validation"
    config.reward.custom_reward_function.name = "compute_score"
    with open_dict(config):  # the test rows' source "toy" is no benchmark
        config.reward.custom_reward_function.reward_kwargs = {"unknown_source_answer_type": "math"}
    manager = make_manager(config, model)
    training = gen_batch()
    mark_training_rollouts(training)
    out = manager.generate_sequences(training)
    assert out.non_tensor_batch["graded"].tolist() == [0.0, 0.0, 0.0]
    assert out.meta_info["reward_extra_keys"] == list(NOT_GRADED)
    assert out.batch["rm_scores"].abs().sum() == 0
    validation = manager.generate_sequences(gen_batch(validate=True))  # unmarked rows are graded
    assert validation.non_tensor_batch["graded"].tolist() == [1.0, 1.0, 1.0]


def test_batches_split_across_agent_workers_as_verl_splits_them(grpo_config, model):
    """verl's manager chunks a batch into agent.num_workers equal parts (DataProto.chunk asserts divisibility)."""
    config = copy.deepcopy(grpo_config)
    config.actor_rollout_ref.rollout.response_length = 8
    single = make_manager(config, model).generate_sequences(gen_batch())
    config.actor_rollout_ref.rollout.agent.num_workers = 3
    split = make_manager(config, model).generate_sequences(gen_batch())
    assert torch.equal(split.batch["responses"], single.batch["responses"])  # seeded per request, not per chunk
    config.actor_rollout_ref.rollout.agent.num_workers = 2
    with pytest.raises(AssertionError, match="only support equal chunk"):
        make_manager(config, model).generate_sequences(gen_batch())  # 3 rows, 2 workers


def test_generation_needs_awake_replicas(grpo_config, model):
    from cpu_backend import InProcessCheckpointManager
    from cpu_backend.replicas import RolloutReplicas

    replicas = RolloutReplicas()  # asleep, as init_workers leaves them
    client = HFGenerateClient(model, grpo_config.actor_rollout_ref.rollout)
    manager = InProcessAgentLoopManager(grpo_config, client, with_rewards=False, replicas=replicas)
    checkpoint_manager = InProcessCheckpointManager(client, replicas)
    with pytest.raises(RuntimeError, match="generate_sequences ran while the rollout replicas are asleep"):
        manager.generate_sequences(gen_batch())
    checkpoint_manager.update_weights(1)
    assert len(manager.generate_sequences(gen_batch())) == len(MESSAGES)
    checkpoint_manager.sleep_replicas()
    with pytest.raises(RuntimeError, match="asleep"):
        manager.generate_sequences(gen_batch())
