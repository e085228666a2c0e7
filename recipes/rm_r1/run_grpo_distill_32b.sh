#!/usr/bin/env bash
# RM-R1 stage 2 (GRPO) for DeepSeek-R1-Distill-Qwen-32B (no stage 1).
# The paper's settings: configs/rm_r1/grpo_distill_32b.yaml; --help lists the variables that override them.
source "$(dirname "$0")/common.sh"
rm_r1_grpo grpo_distill_32b "$@"
