#!/usr/bin/env bash
# RM-R1 stage 2 (GRPO) for Qwen2.5-14B-Instruct after stage 1 (run_sft_instruct_14b.sh); instruct prompts
# (scripts/prepare_rm_r1_data.py --family instruct). Paper: lr 7e-7, 2 node(s) of 8 GPUs. --help lists the variables.
source "$(dirname "$0")/common.sh"
rm_r1_grpo grpo_instruct_14b instruct "$RM_R1_REPO/checkpoints/rm_r1/sft_instruct_14b/final_hf" 7e-7 2 \
    -- "$@"
