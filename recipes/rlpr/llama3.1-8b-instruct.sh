#!/usr/bin/env bash
# RLPR on Llama3.1-8B-Instruct (configs/rlpr/llama3.1-8b-instruct.yaml). Run with --help for the environment variables it reads.
set -euo pipefail

RECIPE=llama3.1-8b-instruct
DEFAULT_MODEL_PATH=meta-llama/Llama-3.1-8B-Instruct
# Training and validation parquet files prepared by rlpr.data_prep with format R1_nothink.
DEFAULT_DATA_DIR=${HOME}/data/rlpr/r1_nothink
DEFAULT_GPUS_PER_NODE=8

# shellcheck source=recipes/rlpr/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
rlpr_main "$@"
