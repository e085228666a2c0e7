#!/usr/bin/env bash
# RM-R1 stage 2 (GRPO) for DeepSeek-R1-Distill-Qwen-32B (no stage 1); reasoning prompts
# (scripts/prepare_rm_r1_data.py --family reasoning). Paper: lr 8e-7, 4 node(s) of 8 GPUs. --help lists the variables.
source "$(dirname "$0")/common.sh"
rm_r1_grpo grpo_distill_32b reasoning deepseek-ai/DeepSeek-R1-Distill-Qwen-32B 8e-7 4 \
    actor_rollout_ref.actor.fsdp_config.param_offload=true \
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=true \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.4 \
    -- "$@"
