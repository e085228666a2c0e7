#!/usr/bin/env bash
# RM-R1 stage 2 (GRPO) for Qwen2.5-32B-Instruct after stage 1 (run_sft_instruct_32b.sh).
# The paper's settings: configs/rm_r1/grpo_instruct_32b.yaml; --help lists the variables that override them.
source "$(dirname "$0")/common.sh"
rm_r1_grpo grpo_instruct_32b "$@"
