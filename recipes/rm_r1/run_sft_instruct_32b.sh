#!/usr/bin/env bash
# RM-R1 stage 1 (distillation SFT) for Qwen2.5-32B-Instruct on teacher traces.
# The paper's settings: configs/rm_r1/sft_instruct_32b.yaml; --help lists the variables that override them.
source "$(dirname "$0")/common.sh"
rm_r1_sft sft_instruct_32b "$@"
