"""compute_score inside verl 0.9.1's real reward loop: Ray actors (CPU), configured by the GRPO recipe's reward section,
decode the responses and call ``pkg://rm_r1.training.reward`` / ``compute_score`` with the rule from
``reward.custom_reward_function.reward_kwargs``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "rm_r1"
A, B = "<answer>[[A]]</answer>", "<answer>[[B]]</answer>"

# (prompt, response text, end token generated?, label). The second response puts 50 characters between its verdict
# and the end token: inside the 80-character window of the text without special tokens (verl's default decoding),
# outside it once the end token's text "<|im_end|>" is counted (the reference's decoding).
SAMPLES = [
    ("Which is better?", "<type>Chat</type> reasons\n" + B, True, "model_b"),
    ("Compare these.", "<eval>A wins</eval>" + A + "x" * 50, True, "model_a"),
    ("Judge.", "<answer> [[A]] </answer>", True, "model_a"),
    ("Pick one.", "long thoughts " + A, False, "model_b"),
]
# Hand-computed scores per configuration.
EXPECTED = {
    ("naive", "last_answer"): [1.0, 1.0, 1.0, -1.0],
    ("SpecialTokenTextRewardManager", "strict_tail"): [1.0, -1.0, -1.0, -1.0],
}


def _batch(tokenizer):
    from verl import DataProto

    prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p, _, _, _ in SAMPLES]
    responses = [
        tokenizer(r, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if end else [])
        for _, r, end, _ in SAMPLES
    ]
    width_p, width_r = max(map(len, prompts)), max(map(len, responses)) + 3
    pad = tokenizer.pad_token_id
    prompt_ids = torch.tensor([[pad] * (width_p - len(p)) + p for p in prompts])
    response_ids = torch.tensor([r + [pad] * (width_r - len(r)) for r in responses])
    mask = torch.tensor(
        [
            [0] * (width_p - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (width_r - len(r))
            for p, r in zip(prompts, responses)
        ]
    )
    data = DataProto.from_dict(
        tensors={
            "prompts": prompt_ids,
            "responses": response_ids,
            "attention_mask": mask,
            "input_ids": torch.cat([prompt_ids, response_ids], dim=1),
        },
        non_tensors={
            "data_source": np.array(["skywork"] * len(SAMPLES), dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": s[3]} for s in SAMPLES], dtype=object),
            "extra_info": np.array([{"index": i} for i in range(len(SAMPLES))], dtype=object),
        },
    )
    return data, [len(r) for r in responses]


def _config(model_dir, manager: str, rule: str):
    """The RM-R1 GRPO reward section (shared by every setting; composed via grpo_instruct_7b.yaml), with the manager
    and rule under test."""
    from hydra import compose, initialize_config_dir

    overrides = [
        f"actor_rollout_ref.model.path={model_dir}",
        "reward.num_workers=1",
        f"reward.custom_reward_function.reward_kwargs.verdict_rule={rule}",
    ]
    if manager == "naive":
        overrides += ["reward.reward_manager.source=register", "reward.reward_manager.name=naive"]
    with initialize_config_dir(str(CONFIGS), version_base=None):
        config = compose("grpo_instruct_7b", overrides=overrides)
    assert (config.reward.custom_reward_function.path, config.reward.reward_manager.name) == (
        "pkg://rm_r1.training.reward",
        manager,
    )
    return config


@pytest.mark.slow
def test_compute_score_runs_in_verls_reward_loop(small_tokenizer, tmp_path):
    ray = pytest.importorskip("ray")
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    small_tokenizer.save_pretrained(tmp_path)
    data, response_lengths = _batch(small_tokenizer)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}},
    )
    try:
        for (manager, rule), expected in EXPECTED.items():
            loop = RewardLoopManager(_config(tmp_path, manager, rule))
            out = loop.compute_rm_score(data)
            for worker in loop.reward_loop_workers:  # the worker's actor name is reused by the next manager
                ray.kill(worker)
            scores = out.batch["rm_scores"]
            assert scores.shape == data.batch["responses"].shape
            last = torch.tensor(response_lengths) - 1
            assert scores[torch.arange(len(SAMPLES)), last].tolist() == expected, (manager, rule)
            assert scores.abs().sum().item() == len(SAMPLES)  # nothing but the last response token is rewarded
            assert sorted(out.meta_info["reward_extra_keys"]) == ["acc", "score", "verdict_found"]
            assert out.non_tensor_batch["score"].tolist() == expected
            assert out.non_tensor_batch["acc"].tolist() == [1.0 if s > 0 else 0.0 for s in expected]
            robust = 1.0 if rule == "last_answer" else 0.0
            assert out.non_tensor_batch["verdict_found"].tolist() == [1.0, robust, robust, 1.0]
    finally:
        ray.shutdown()
