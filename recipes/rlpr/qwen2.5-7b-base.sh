#!/usr/bin/env bash
# RLPR on Qwen2.5-7B (base): the paper's main run (configs/rlpr/qwen2.5-7b-base.yaml). Run with --help for the environment variables it reads.
set -euo pipefail

RECIPE=qwen2.5-7b-base
DEFAULT_MODEL_PATH=Qwen/Qwen2.5-7B
# Training and validation parquet files prepared by rlpr.data_prep with format R1.
DEFAULT_DATA_DIR=${HOME}/data/rlpr/r1
DEFAULT_GPUS_PER_NODE=8

# shellcheck source=recipes/rlpr/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
rlpr_main "$@"
