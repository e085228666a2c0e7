#!/usr/bin/env bash
# RM-R1 stage 1 (distillation SFT) for Qwen2.5-14B-Instruct on teacher traces (scripts/prepare_rm_r1_data.py --sft).
# Paper: lr 3e-6, batch 128, 1 epoch, max length 12,288, cosine with 3% warm-up. --help lists the variables.
source "$(dirname "$0")/common.sh"
rm_r1_sft sft_instruct_14b Qwen/Qwen2.5-14B-Instruct 3e-6 \
    -- "$@"
