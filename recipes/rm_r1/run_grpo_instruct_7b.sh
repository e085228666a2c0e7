#!/usr/bin/env bash
# RM-R1 stage 2 (GRPO) for Qwen2.5-7B-Instruct after stage 1 (run_sft_instruct_7b.sh); instruct prompts
# (scripts/prepare_rm_r1_data.py --family instruct). Paper: lr 1e-6, 1 node(s) of 8 GPUs. --help lists the variables.
source "$(dirname "$0")/common.sh"
rm_r1_grpo grpo_instruct_7b instruct "$RM_R1_REPO/checkpoints/rm_r1/sft_instruct_7b/final_hf" 1e-6 1 \
    -- "$@"
