#!/usr/bin/env bash
# RM-R1 stage 2 (GRPO) for DeepSeek-R1-Distill-Qwen-14B (no stage 1); reasoning prompts
# (scripts/prepare_rm_r1_data.py --family reasoning). Paper: lr 1e-6, 2 node(s) of 8 GPUs. --help lists the variables.
source "$(dirname "$0")/common.sh"
rm_r1_grpo grpo_distill_14b reasoning deepseek-ai/DeepSeek-R1-Distill-Qwen-14B 1e-6 2 \
    -- "$@"
