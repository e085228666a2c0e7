#!/usr/bin/env bash
# RM-R1 stage 2 (GRPO) for Qwen2.5-32B-Instruct after stage 1 (run_sft_instruct_32b.sh); instruct prompts
# (scripts/prepare_rm_r1_data.py --family instruct). Paper: lr 5e-7, 4 node(s) of 8 GPUs. --help lists the variables.
source "$(dirname "$0")/common.sh"
rm_r1_grpo grpo_instruct_32b instruct "$RM_R1_REPO/checkpoints/rm_r1/sft_instruct_32b/final_hf" 5e-7 4 \
    actor_rollout_ref.actor.fsdp_config.param_offload=true \
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=true \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.4 \
    -- "$@"
